//! The FHIR R4 resources of the synthetic records, serialised as the kjernejournal API serves
//! them, and the references and codings they share.

use helsenett_core::{
    Fodselsnummer,
    fhir::{ENH, person_system},
};
use helsenett_store::{kjernejournal::Section, records::Organisation};
use serde::Serialize;

pub const SNOMED: &str = "http://snomed.info/sct";
pub const ATC: &str = "http://www.whocc.no/atc";
pub const ROLE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
pub const ALLERGY_CLINICAL: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
pub const ALLERGY_VERIFICATION: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
pub const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
pub const CONDITION_VERIFICATION: &str =
    "http://terminology.hl7.org/CodeSystem/condition-ver-status";
pub const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

/// The resources of a record, as FHIR R4 JSON: `resourceType` first, then the elements in the
/// specification's order. Elements left empty ("") are left out.
#[derive(Serialize)]
#[serde(tag = "resourceType", rename_all_fields = "camelCase")]
pub enum Resource<'a> {
    AllergyIntolerance {
        id: &'a str,
        clinical_status: Concept<'a>,
        verification_status: Concept<'a>,
        #[serde(rename = "type")]
        kind: &'a str,
        category: [&'a str; 1],
        criticality: &'a str,
        code: Concept<'a>,
        patient: Reference<'a>,
        recorded_date: String,
        reaction: [Reaction<'a>; 1],
    },
    Condition {
        id: &'a str,
        clinical_status: Concept<'a>,
        verification_status: Concept<'a>,
        category: [Concept<'a>; 2],
        code: Concept<'a>,
        subject: Reference<'a>,
        recorded_date: String,
    },
    Device {
        id: &'a str,
        status: &'a str,
        #[serde(rename = "type")]
        kind: Concept<'a>,
        patient: Reference<'a>,
        note: [Text<'a>; 1],
    },
    RelatedPerson {
        id: &'a str,
        active: bool,
        patient: Reference<'a>,
        relationship: [Concept<'a>; 1],
        name: [HumanName<'a>; 1],
        telecom: [ContactPoint<'a>; 1],
    },
    Observation {
        id: &'a str,
        status: &'a str,
        category: [Concept<'a>; 1],
        code: Text<'a>,
        subject: Reference<'a>,
        effective_date_time: String,
        performer: [Reference<'a>; 1],
        value_string: &'a str,
    },
    MedicationDispense {
        id: &'a str,
        status: &'a str,
        medication_codeable_concept: Concept<'a>,
        subject: Reference<'a>,
        performer: [Performer<'a>; 1],
        quantity: Quantity<'a>,
        when_handed_over: String,
        dosage_instruction: [Text<'a>; 1],
    },
    Immunization {
        id: &'a str,
        status: &'a str,
        vaccine_code: Concept<'a>,
        patient: Reference<'a>,
        occurrence_date_time: String,
        primary_source: bool,
    },
    Encounter {
        id: &'a str,
        status: &'a str,
        class: Coding<'a>,
        subject: Reference<'a>,
        period: Period,
        service_provider: Reference<'a>,
    },
    DocumentReference {
        id: &'a str,
        status: &'a str,
        #[serde(rename = "type")]
        kind: Concept<'a>,
        subject: Reference<'a>,
        date: String,
        author: [Reference<'a>; 1],
        security_label: [Concept<'a>; 1],
        content: [Content<'a>; 1],
        context: Context,
    },
}

impl<'a> Resource<'a> {
    /// The section of the record, the resource type and the id of the entry it makes.
    pub fn entry(&self) -> (Section, &'static str, &'a str) {
        match *self {
            Resource::AllergyIntolerance { id, .. } => {
                (Section::Critical, "AllergyIntolerance", id)
            }
            Resource::Condition { id, .. } => (Section::Critical, "Condition", id),
            Resource::Device { id, .. } => (Section::Critical, "Device", id),
            Resource::RelatedPerson { id, .. } => (Section::NextOfKin, "RelatedPerson", id),
            Resource::Observation { id, .. } => (Section::Own, "Observation", id),
            Resource::MedicationDispense { id, .. } => {
                (Section::Medication, "MedicationDispense", id)
            }
            Resource::Immunization { id, .. } => (Section::Vaccination, "Immunization", id),
            Resource::Encounter { id, .. } => (Section::Contact, "Encounter", id),
            Resource::DocumentReference { id, .. } => (Section::Document, "DocumentReference", id),
        }
    }
}

#[derive(Serialize)]
pub struct Coding<'a> {
    pub system: &'a str,
    pub code: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub display: &'a str,
}

/// A CodeableConcept of one coding.
#[derive(Serialize)]
pub struct Concept<'a> {
    pub coding: [Coding<'a>; 1],
    #[serde(skip_serializing_if = "str::is_empty")]
    pub text: &'a str,
}

pub fn concept<'a>(system: &'a str, code: &'a str, display: &'a str, text: &'a str) -> Concept<'a> {
    Concept {
        coding: [Coding {
            system,
            code,
            display,
        }],
        text,
    }
}

pub fn coded<'a>(system: &'a str, code: &'a str) -> Concept<'a> {
    concept(system, code, "", "")
}

/// A logical reference by identifier; `kind` names the type where the element allows several.
#[derive(Serialize)]
pub struct Reference<'a> {
    pub identifier: Identifier<'a>,
    #[serde(rename = "type", skip_serializing_if = "str::is_empty")]
    pub kind: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub display: &'a str,
}

#[derive(Serialize)]
pub struct Identifier<'a> {
    pub system: &'a str,
    pub value: String,
}

/// The patient, by fødselsnummer or D-nummer.
pub fn patient(nin: Fodselsnummer) -> Reference<'static> {
    Reference {
        identifier: Identifier {
            system: person_system(&nin),
            value: nin.to_string(),
        },
        kind: "",
        display: "",
    }
}

/// An organisation, by organisasjonsnummer.
pub fn organisation(org: &Organisation) -> Reference<'_> {
    Reference {
        identifier: Identifier {
            system: ENH,
            value: org.orgnr.to_string(),
        },
        kind: "",
        display: &org.name,
    }
}

#[derive(Serialize)]
pub struct Text<'a> {
    pub text: &'a str,
}

#[derive(Serialize)]
pub struct Reaction<'a> {
    pub manifestation: [Concept<'a>; 1],
    pub severity: &'a str,
}

#[derive(Serialize)]
pub struct HumanName<'a> {
    pub family: &'a str,
    pub given: Vec<&'a str>,
}

#[derive(Serialize)]
pub struct ContactPoint<'a> {
    pub system: &'a str,
    pub value: String,
    #[serde(rename = "use")]
    pub usage: &'a str,
}

#[derive(Serialize)]
pub struct Performer<'a> {
    pub actor: Reference<'a>,
}

#[derive(Serialize)]
pub struct Quantity<'a> {
    pub value: u32,
    pub unit: &'a str,
}

#[derive(Serialize)]
pub struct Period {
    pub start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Serialize)]
pub struct Content<'a> {
    pub attachment: Attachment<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment<'a> {
    pub content_type: &'a str,
    pub url: String,
    pub size: usize,
    pub hash: String,
    pub title: &'a str,
    pub creation: String,
}

#[derive(Serialize)]
pub struct Context {
    pub encounter: [Link; 1],
}

#[derive(Serialize)]
pub struct Link {
    pub reference: String,
}
