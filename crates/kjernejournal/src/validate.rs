//! Checks a FHIR resource sent to the record and makes it an entry: the resource type the
//! section takes, the patient named by identifier (and the right one), codes from the value sets
//! FHIR binds (required bindings) and the code systems the record uses, the sender's own
//! organisation where a source names itself, and a document's size. The server gives the id,
//! drops narrative (`text`: it is not shown, and HTML from elsewhere is not served), and keeps a
//! document's content apart from its metadata.

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, NaiveDate};
use helsenett_core::{
    Fodselsnummer, Organisasjonsnummer,
    fhir::{DNR, ENH, FNR, person_system},
};
use helsenett_store::kjernejournal::{KjDocument, KjEpisode, Section};
use serde_json::{Value, json};

use crate::{access::Ctx, ledger::NewEntry};

/// Largest document content (decoded). NHN's document sharing takes PDFs of a few megabytes.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;
/// Largest resource other than a document's content.
pub const MAX_RESOURCE_BYTES: usize = 64 * 1024;
/// Next of kin a citizen may name.
pub const MAX_NEXT_OF_KIN: usize = 10;
/// The code system that says which kind of critical information a Condition is.
pub const CRITICAL_TYPE: &str = "urn:helsenett:kjernejournal:critical-type";
const ATC: &str = "http://www.whocc.no/atc";
const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const DOCUMENT_TYPES: &[&str] = &[
    "application/pdf",
    "text/plain",
    "image/jpeg",
    "image/png",
    "application/xml",
];

/// Why a resource was not taken, as the OperationOutcome says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Malformed or not what the section takes: 400.
    #[error("{0}")]
    Structure(String),
    /// A code outside its value set or code system: 400 (issue code `code-invalid`).
    #[error("{0}")]
    Code(String),
    /// A source naming another organisation than its own: 403.
    #[error("{0}")]
    NotYours(String),
    /// A document's content over the limit: 413.
    #[error("{0}")]
    TooLarge(String),
}

fn structure(message: impl Into<String>) -> Invalid {
    Invalid::Structure(message.into())
}

/// Parses a body as one FHIR resource (a JSON object with `resourceType`).
pub fn parse(body: &[u8]) -> Result<Value, Invalid> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| structure(format!("the body is not JSON: {e}")))?;
    resource(value)
}

/// A JSON value that must be one FHIR resource.
pub fn resource(value: Value) -> Result<Value, Invalid> {
    if !value.is_object() || !value["resourceType"].is_string() {
        return Err(structure(
            "the body must be a FHIR resource: a JSON object with resourceType",
        ));
    }
    Ok(value)
}

/// The section a resource type goes in when a source system reports it.
pub fn ingested_section(resource_type: &str) -> Option<Section> {
    match resource_type {
        "MedicationDispense" => Some(Section::Medication),
        "Encounter" => Some(Section::Contact),
        "Immunization" => Some(Section::Vaccination),
        "DocumentReference" => Some(Section::Document),
        _ => None,
    }
}

/// The element that names the patient in each resource type the record takes.
fn patient_element(resource_type: &str) -> &'static str {
    match resource_type {
        "AllergyIntolerance" | "Device" | "RelatedPerson" | "Immunization" => "patient",
        _ => "subject",
    }
}

/// The patient a resource names by identifier.
pub fn patient_of(resource: &Value) -> Result<Fodselsnummer, Invalid> {
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    let element = patient_element(kind);
    let identifier = &resource[element]["identifier"];
    let system = identifier["system"].as_str().unwrap_or_default();
    let value = identifier["value"].as_str().ok_or_else(|| {
        structure(format!(
            "{kind}.{element} must name the patient by identifier ({FNR} or {DNR})"
        ))
    })?;
    if ![FNR, DNR].contains(&system) {
        return Err(Invalid::Code(format!(
            "{kind}.{element}.identifier.system must be {FNR} (fødselsnummer) or {DNR} (D-nummer)"
        )));
    }
    let nin = Fodselsnummer::parse(value)
        .map_err(|e| structure(format!("{kind}.{element}.identifier.value: {e}")))?;
    if person_system(&nin) != system {
        return Err(Invalid::Code(format!(
            "{kind}.{element}.identifier.system does not match the kind of number"
        )));
    }
    Ok(nin)
}

/// A resource for `section` about `patient`, made an entry.
pub fn entry(
    section: Section,
    mut resource: Value,
    patient: &Fodselsnummer,
    ctx: &Ctx,
) -> Result<NewEntry, Invalid> {
    let kind = resource["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let Some(resource_type) = section
        .resource_types()
        .iter()
        .find(|t| **t == kind)
        .copied()
    else {
        return Err(structure(format!(
            "the {} section takes {}, not {kind:?}",
            section.as_str(),
            section.resource_types().join(", ")
        )));
    };
    if resource.get("contained").is_some() {
        return Err(structure(
            "contained resources are not accepted: name the patient and organisations by identifier",
        ));
    }
    if let Some(path) = literal_reference(&resource, resource_type) {
        return Err(structure(format!(
            "{path}: literal references are not accepted (they would point outside the record); \
             refer by identifier"
        )));
    }
    let element = patient_element(resource_type);
    if resource.get(element).is_none() {
        // The citizen's own parts and critical information are about the patient asked for.
        resource[element] =
            json!({"identifier": {"system": person_system(patient), "value": patient.to_string()}});
    }
    if patient_of(&resource)? != *patient {
        return Err(structure(format!(
            "{kind}.{element} names another patient than the record's"
        )));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let object = resource.as_object_mut().expect("parse checked an object");
    object.remove("text");
    object.insert("id".into(), json!(id));
    let mut episode = None;
    let mut document = None;
    match resource_type {
        "AllergyIntolerance" => allergy(&resource)?,
        "Condition" => condition(&resource)?,
        "Device" => device(&resource)?,
        "RelatedPerson" => related_person(&resource)?,
        "Observation" => own_entry(&resource)?,
        "MedicationDispense" => dispense(&resource, ctx)?,
        "Immunization" => immunization(&resource)?,
        "Encounter" => episode = Some(encounter(&resource, &id, patient, ctx)?),
        "DocumentReference" => document = Some(document_reference(&mut resource, &id, ctx)?),
        _ => unreachable!("every section's resource types are checked"),
    }
    let resource = resource.to_string();
    if resource.len() > MAX_RESOURCE_BYTES {
        return Err(Invalid::TooLarge(format!(
            "the resource is {} bytes; at most {MAX_RESOURCE_BYTES} are taken",
            resource.len()
        )));
    }
    Ok(NewEntry {
        id,
        section,
        resource_type,
        resource,
        episode,
        document,
    })
}

/// The path of the first `reference` element in `value`, if any.
fn literal_reference(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Object(map) if map.contains_key("reference") => Some(format!("{path}.reference")),
        Value::Object(map) => map
            .iter()
            .find_map(|(key, v)| literal_reference(v, &format!("{path}.{key}"))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| literal_reference(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// `resource[name]` must be one of `allowed` (a required binding); `optional` allows absence.
fn code(resource: &Value, name: &str, allowed: &[&str], optional: bool) -> Result<(), Invalid> {
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    match resource.get(name) {
        None if optional => Ok(()),
        None => Err(structure(format!("{kind}.{name} is required"))),
        Some(Value::String(v)) if allowed.contains(&v.as_str()) => Ok(()),
        Some(v) => Err(Invalid::Code(format!(
            "{kind}.{name} {v} is not one of {}",
            allowed.join(", ")
        ))),
    }
}

/// The codings of a CodeableConcept in `system`.
fn codings<'a>(concept: &'a Value, system: &str) -> Vec<&'a str> {
    concept["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["system"] == system)
        .filter_map(|c| c["code"].as_str())
        .collect()
}

/// A CodeableConcept at `name` must exist, with text or a coding; codings in `system` must pass
/// `check` and one must be there when `required`.
fn concept(
    resource: &Value,
    name: &str,
    system: &str,
    check: impl Fn(&str) -> bool,
    required: bool,
) -> Result<(), Invalid> {
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    let value = &resource[name];
    if !value.is_object() || (value["text"].as_str().is_none() && !value["coding"].is_array()) {
        return Err(structure(format!(
            "{kind}.{name} is required: a CodeableConcept with a coding or text"
        )));
    }
    let codes = codings(value, system);
    if let Some(bad) = codes.iter().find(|c| !check(c)) {
        return Err(Invalid::Code(format!(
            "{kind}.{name}: {bad:?} is not a valid code of {system}"
        )));
    }
    if required && codes.is_empty() {
        return Err(Invalid::Code(format!(
            "{kind}.{name} needs a coding from {system}"
        )));
    }
    Ok(())
}

/// A status CodeableConcept (clinicalStatus, verificationStatus) from its code system.
fn status_concept(
    resource: &Value,
    name: &str,
    system: &str,
    allowed: &[&str],
) -> Result<(), Invalid> {
    if resource.get(name).is_none() {
        return Ok(());
    }
    concept(resource, name, system, |c| allowed.contains(&c), true)
}

fn snomed(code: &str) -> bool {
    (6..=18).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// An ATC code at any level: A, A01, A01A, A01AB, A01AB01, of the 14 anatomical main groups.
fn atc(code: &str) -> bool {
    let b = code.as_bytes();
    let pattern: &[fn(u8) -> bool] = &[
        |c| b"ABCDGHJLMNPRSV".contains(&c),
        |c| c.is_ascii_digit(),
        |c| c.is_ascii_digit(),
        |c| c.is_ascii_uppercase(),
        |c| c.is_ascii_uppercase(),
        |c| c.is_ascii_digit(),
        |c| c.is_ascii_digit(),
    ];
    [1, 3, 4, 5, 7].contains(&b.len()) && b.iter().zip(pattern).all(|(c, ok)| ok(*c))
}

fn allergy(r: &Value) -> Result<(), Invalid> {
    status_concept(
        r,
        "clinicalStatus",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
        &["active", "inactive", "resolved"],
    )?;
    status_concept(
        r,
        "verificationStatus",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
        &["unconfirmed", "confirmed", "refuted", "entered-in-error"],
    )?;
    code(r, "type", &["allergy", "intolerance"], true)?;
    code(r, "criticality", &["low", "high", "unable-to-assess"], true)?;
    for category in r["category"].as_array().into_iter().flatten() {
        if !["food", "medication", "environment", "biologic"]
            .contains(&category.as_str().unwrap_or_default())
        {
            return Err(Invalid::Code(format!(
                "AllergyIntolerance.category {category} is not one of food, medication, environment, biologic"
            )));
        }
    }
    concept(r, "code", SNOMED, snomed, false)
}

fn condition(r: &Value) -> Result<(), Invalid> {
    status_concept(
        r,
        "clinicalStatus",
        "http://terminology.hl7.org/CodeSystem/condition-clinical",
        &[
            "active",
            "recurrence",
            "relapse",
            "inactive",
            "remission",
            "resolved",
        ],
    )?;
    let types: Vec<&str> = r["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| codings(c, CRITICAL_TYPE))
        .collect();
    match types.as_slice() {
        [t] if ["serious-condition", "anaesthesia-complication"].contains(t) => {}
        [] => {
            return Err(structure(format!(
                "Condition.category needs a coding from {CRITICAL_TYPE}: serious-condition or anaesthesia-complication"
            )));
        }
        other => {
            return Err(Invalid::Code(format!(
                "Condition.category {other:?}: one of serious-condition, anaesthesia-complication from {CRITICAL_TYPE}"
            )));
        }
    }
    concept(r, "code", SNOMED, snomed, false)
}

fn device(r: &Value) -> Result<(), Invalid> {
    code(
        r,
        "status",
        &["active", "inactive", "entered-in-error", "unknown"],
        true,
    )?;
    concept(r, "type", SNOMED, snomed, false)
}

fn related_person(r: &Value) -> Result<(), Invalid> {
    let relationships = r["relationship"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if relationships.is_empty() {
        return Err(structure("RelatedPerson.relationship is required"));
    }
    for relationship in relationships {
        concept(
            &json!({"resourceType": "RelatedPerson", "relationship": relationship}),
            "relationship",
            ROLE_CODE,
            |c| {
                [
                    "SPS", "DOMPART", "MTH", "FTH", "PRN", "CHILD", "SIB", "FRND", "GUARD", "NOK",
                ]
                .contains(&c)
            },
            false,
        )?;
    }
    let named = r["name"].as_array().is_some_and(|names| {
        names
            .iter()
            .any(|n| n["family"].is_string() || n["text"].is_string())
    });
    if !named {
        return Err(structure(
            "RelatedPerson.name is required: a family name or text",
        ));
    }
    Ok(())
}

fn own_entry(r: &Value) -> Result<(), Invalid> {
    code(
        r,
        "status",
        &["registered", "preliminary", "final", "amended"],
        false,
    )?;
    if !r["code"]["text"].is_string() && !r["code"]["coding"].is_array() {
        return Err(structure("Observation.code is required"));
    }
    match r["valueString"].as_str() {
        Some(text) if !text.trim().is_empty() && text.chars().count() <= 2000 => Ok(()),
        _ => Err(structure(
            "Observation.valueString is required: the citizen's own words, at most 2,000 characters",
        )),
    }
}

/// The organisation a source names must be its own (or the unit it acts for).
fn own_organisation(identifier: &Value, element: &str, ctx: &Ctx) -> Result<(), Invalid> {
    if identifier["system"] != ENH {
        return Err(Invalid::Code(format!(
            "{element} must name an organisation by identifier {ENH}"
        )));
    }
    let orgnr: Organisasjonsnummer = identifier["value"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|e| structure(format!("{element}.value: {e}")))?;
    if orgnr != ctx.organisation && Some(orgnr) != ctx.unit {
        return Err(Invalid::NotYours(format!(
            "{element} names another organisation than the client's: a source reports only its own"
        )));
    }
    Ok(())
}

fn dispense(r: &Value, ctx: &Ctx) -> Result<(), Invalid> {
    code(
        r,
        "status",
        &[
            "preparation",
            "in-progress",
            "cancelled",
            "on-hold",
            "completed",
            "entered-in-error",
            "stopped",
            "declined",
            "unknown",
        ],
        false,
    )?;
    concept(r, "medicationCodeableConcept", ATC, atc, true)?;
    date_time(r, "whenHandedOver")?;
    own_organisation(
        &r["performer"][0]["actor"]["identifier"],
        "MedicationDispense.performer[0].actor.identifier",
        ctx,
    )
}

fn immunization(r: &Value) -> Result<(), Invalid> {
    code(
        r,
        "status",
        &["completed", "entered-in-error", "not-done"],
        false,
    )?;
    concept(
        r,
        "vaccineCode",
        ATC,
        |c| atc(c) && c.starts_with("J07"),
        true,
    )?;
    date_time(r, "occurrenceDateTime").map(drop)
}

fn encounter(
    r: &Value,
    id: &str,
    patient: &Fodselsnummer,
    ctx: &Ctx,
) -> Result<KjEpisode, Invalid> {
    code(
        r,
        "status",
        &[
            "planned",
            "arrived",
            "triaged",
            "in-progress",
            "onleave",
            "finished",
            "cancelled",
            "entered-in-error",
            "unknown",
        ],
        false,
    )?;
    let class = &r["class"];
    let classes = [
        "AMB", "IMP", "EMER", "ACUTE", "NONAC", "OBSENC", "SS", "HH", "VR",
    ];
    if class["system"] != ACT_CODE || !classes.contains(&class["code"].as_str().unwrap_or_default())
    {
        return Err(Invalid::Code(format!(
            "Encounter.class must be a Coding of {ACT_CODE}: one of {}",
            classes.join(", ")
        )));
    }
    let identifier = &r["serviceProvider"]["identifier"];
    own_organisation(identifier, "Encounter.serviceProvider.identifier", ctx)?;
    let start = date_time(&r["period"], "start")
        .map_err(|_| structure("Encounter.period.start is required: a dateTime"))?;
    let end = match r["period"].get("end") {
        Some(_) => Some(date_time(&r["period"], "end")?),
        None => None,
    };
    if end.is_some_and(|end| end < start) {
        return Err(structure("Encounter.period.end is before its start"));
    }
    Ok(KjEpisode {
        entry_id: id.to_owned(),
        nin: *patient,
        orgnr: identifier["value"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| structure(format!("{e}")))?,
        start_at: start,
        end_at: end,
    })
}

/// A dateTime element as milliseconds: a full instant with zone, or a date (midnight UTC).
fn date_time(r: &Value, name: &str) -> Result<i64, Invalid> {
    let text = r[name]
        .as_str()
        .ok_or_else(|| structure(format!("{name} is required: a FHIR dateTime")))?;
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.timestamp_millis());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| {
            d.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis()
        })
        .map_err(|_| {
            structure(format!(
                "{name} {text:?} is not a FHIR dateTime (YYYY-MM-DD or an instant with a zone)"
            ))
        })
}

/// Checks a DocumentReference and takes its content out: the attachment keeps its metadata
/// (type, size, SHA-1 as FHIR's `hash`) and points to the content by `url`.
fn document_reference(r: &mut Value, id: &str, ctx: &Ctx) -> Result<KjDocument, Invalid> {
    code(
        r,
        "status",
        &["current", "superseded", "entered-in-error"],
        false,
    )?;
    concept(
        r,
        "type",
        LOINC,
        |c| {
            let mut parts = c.split('-');
            matches!((parts.next(), parts.next(), parts.next()),
                (Some(n), Some(d), None) if !n.is_empty() && n.len() <= 7
                    && n.bytes().all(|b| b.is_ascii_digit()) && d.len() == 1
                    && d.bytes().all(|b| b.is_ascii_digit()))
        },
        true,
    )?;
    let labels = crate::record::confidentiality(r);
    if labels.is_empty() {
        return Err(structure(format!(
            "DocumentReference.securityLabel needs a confidentiality code from {CONFIDENTIALITY}"
        )));
    }
    if let Some(bad) = labels
        .iter()
        .find(|l| !["U", "L", "M", "N", "R", "V"].contains(&l.as_str()))
    {
        return Err(Invalid::Code(format!(
            "DocumentReference.securityLabel {bad:?} is not one of U, L, M, N, R, V ({CONFIDENTIALITY})"
        )));
    }
    own_organisation(
        &r["author"][0]["identifier"],
        "DocumentReference.author[0].identifier",
        ctx,
    )?;
    let contents = r["content"].as_array().map(Vec::len).unwrap_or(0);
    if contents != 1 {
        return Err(structure(
            "DocumentReference.content must have exactly one attachment",
        ));
    }
    let attachment = &mut r["content"][0]["attachment"];
    let content_type = attachment["contentType"]
        .as_str()
        .ok_or_else(|| {
            structure("DocumentReference.content[0].attachment.contentType is required")
        })?
        .to_owned();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !DOCUMENT_TYPES.contains(&essence) {
        return Err(Invalid::Code(format!(
            "attachment.contentType {content_type:?} is not taken: one of {}",
            DOCUMENT_TYPES.join(", ")
        )));
    }
    let data = attachment["data"].as_str().ok_or_else(|| {
        structure("DocumentReference.content[0].attachment.data is required (base64)")
    })?;
    // Base64 is 4 characters for 3 bytes: refuse before decoding what would be too large.
    if data.len() / 4 * 3 > MAX_DOCUMENT_BYTES + 3 {
        return Err(Invalid::TooLarge(format!(
            "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    let bytes = STANDARD
        .decode(data)
        .map_err(|e| structure(format!("attachment.data is not base64: {e}")))?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(Invalid::TooLarge(format!(
            "the document is {} bytes; at most {MAX_DOCUMENT_BYTES} are taken",
            bytes.len()
        )));
    }
    let object = attachment.as_object_mut().expect("checked above");
    object.remove("data");
    object.insert("url".into(), json!(format!("Binary/{id}")));
    object.insert("size".into(), json!(bytes.len()));
    object.insert(
        "hash".into(),
        json!(STANDARD.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, &bytes))),
    );
    Ok(KjDocument {
        entry_id: id.to_owned(),
        content_type,
        data: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atc_codes_at_every_level() {
        for good in ["C", "C10", "C10A", "C10AA", "C10AA05", "J07BB02"] {
            assert!(atc(good), "{good}");
        }
        for bad in ["E10AA05", "C10AA5", "c10aa05", "C1", "C10AA055", ""] {
            assert!(!atc(bad), "{bad}");
        }
    }

    #[test]
    fn snomed_ids_are_digits() {
        assert!(snomed("39579001"));
        assert!(!snomed("3957"));
        assert!(!snomed("39579001x"));
    }
}
