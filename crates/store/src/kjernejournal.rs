//! Kjernejournal's rows: a person's entries (FHIR R4 resources kept as the JSON served), the
//! content of shared documents, and the episodes that give an organisation's staff a treatment
//! relation. The service's reads and its audit chain live in the kjernejournal crate, which runs
//! them inside its own transactions.

use helsenett_core::{Fodselsnummer, Organisasjonsnummer};

use crate::{Record, Value, records::codes};

codes!(
    /// The part of the record an entry belongs to.
    Section {
        /// Critical information: immediate-type allergies, serious conditions, complications
        /// with anaesthesia, implants.
        Critical = "critical",
        NextOfKin = "next-of-kin",
        /// What the citizen wrote about themselves.
        Own = "own",
        /// Medicines dispensed by pharmacies.
        Medication = "medication",
        /// Hospital contacts and visits.
        Contact = "contact",
        Vaccination = "vaccination",
        /// Shared documents (document references, IHE MHD style).
        Document = "document",
    }
);

codes!(
    /// How far a citizen has limited access to their record.
    Privacy {
        /// Health personnel with a treatment relation, and anyone in an emergency.
        Open = "open",
        /// Only with a treatment relation: no emergency access.
        Restricted = "restricted",
        /// No health personnel at all; only the citizen.
        Reserved = "reserved",
    }
);

/// Who wrote an entry or did what an audit record says: the one spelling both tables use.
pub fn actor_hpr(hpr: impl std::fmt::Display) -> String {
    format!("hpr:{hpr}")
}
pub fn actor_citizen(pid: &Fodselsnummer) -> String {
    format!("pid:{pid}")
}
pub fn actor_client(client_id: &str) -> String {
    format!("client:{client_id}")
}
/// The author of entries the synthetic country was made with.
pub const SYNTHETIC_AUTHOR: &str = "synthetic";

/// One FHIR resource of a person's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KjEntry {
    /// The resource's `id`.
    pub id: String,
    pub nin: Fodselsnummer,
    pub section: Section,
    pub resource_type: &'static str,
    pub author: String,
    /// Milliseconds since the epoch.
    pub recorded: i64,
    /// The resource as JSON, as the record serves it.
    pub resource: String,
}

impl Record for KjEntry {
    const TABLE: &'static str = "kj_entry";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "nin",
        "section",
        "resource_type",
        "author",
        "recorded",
        "resource",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Text(&self.id));
        push(Value::Owned(self.nin.to_string()));
        push(Value::Text(self.section.as_str()));
        push(Value::Text(self.resource_type));
        push(Value::Text(&self.author));
        push(Value::Int(self.recorded));
        push(Value::Text(&self.resource));
    }
}

/// The attachment of a `DocumentReference` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KjDocument {
    pub entry_id: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

impl Record for KjDocument {
    const TABLE: &'static str = "kj_document";
    const COLUMNS: &'static [&'static str] = &["entry_id", "content_type", "data"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Text(&self.entry_id));
        push(Value::Text(&self.content_type));
        push(Value::Bytes(&self.data));
    }
}

/// A stay or contact at an organisation (an `Encounter` entry). While it lasts (no end, or an
/// end still ahead) the organisation's health personnel have a treatment relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KjEpisode {
    pub entry_id: String,
    pub nin: Fodselsnummer,
    pub orgnr: Organisasjonsnummer,
    /// Milliseconds since the epoch.
    pub start_at: i64,
    pub end_at: Option<i64>,
}

impl Record for KjEpisode {
    const TABLE: &'static str = "kj_episode";
    const COLUMNS: &'static [&'static str] = &["entry_id", "nin", "orgnr", "start_at", "end_at"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Text(&self.entry_id));
        push(Value::Owned(self.nin.to_string()));
        push(Value::Owned(self.orgnr.to_string()));
        push(Value::Int(self.start_at));
        push(Value::OptInt(self.end_at));
    }
}

/// A record's state beyond its entries, for the persons who have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KjRecord {
    pub nin: Fodselsnummer,
    pub privacy: Privacy,
    /// When health personnel registered "no known critical information".
    pub nil_known_at: Option<i64>,
    /// An operator's marker for a person whose record draws curiosity.
    pub watched: bool,
    pub updated: i64,
}

impl Record for KjRecord {
    const TABLE: &'static str = "kj_record";
    const COLUMNS: &'static [&'static str] =
        &["nin", "privacy", "nil_known_at", "watched", "updated"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Owned(self.nin.to_string()));
        push(Value::Text(self.privacy.as_str()));
        push(Value::OptInt(self.nil_known_at));
        push(Value::Bool(self.watched));
        push(Value::Int(self.updated));
    }
}

/// The indexes by person that migration 0008 makes. A bulk load builds them once at the end:
/// a country's entries come municipality by municipality, in no order of fødselsnummer.
pub(crate) const ENTRIES_BY_NIN: &str = "CREATE INDEX kj_entry_by_nin ON kj_entry (nin, section)";
pub(crate) const EPISODES_BY_NIN: &str =
    "CREATE INDEX kj_episode_by_nin ON kj_episode (nin, orgnr)";

impl Section {
    /// The FHIR resource types an entry of this section may be.
    pub fn resource_types(self) -> &'static [&'static str] {
        match self {
            Section::Critical => &["AllergyIntolerance", "Condition", "Device"],
            Section::NextOfKin => &["RelatedPerson"],
            Section::Own => &["Observation"],
            Section::Medication => &["MedicationDispense"],
            Section::Contact => &["Encounter"],
            Section::Vaccination => &["Immunization"],
            Section::Document => &["DocumentReference"],
        }
    }
}
