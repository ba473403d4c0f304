//! The country's base records: who lives where, who treats whom, and who can be reached how.
//! Later bounded contexts (register, grunndata) read these and add their own tables.

use std::sync::Arc;

use chrono::NaiveDate;
use helsenett_core::{Fodselsnummer, HerId, HprNummer, NumberKind, Organisasjonsnummer, Sex};
use serde::Serialize;
use sqlx::Row;

use crate::{Record, Store, StoreError, Value, with_pool};

/// Declares a closed set of string codes stored as TEXT.
macro_rules! codes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($(#[$vdoc])* #[serde(rename = $code)] $variant,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            pub fn parse(code: &str) -> Result<Self, $crate::StoreError> {
                match code {
                    $($code => Ok($name::$variant),)+
                    other => Err($crate::StoreError::Corrupt(format!("unknown {} {other:?}", stringify!($name)))),
                }
            }
        }
    };
}
pub(crate) use codes;

codes!(
    /// What an organisation is, in the terms of the address register.
    OrganisationKind {
        Municipality = "municipality",
        HealthTrust = "health_trust",
        Hospital = "hospital",
        GpOffice = "gp_office",
        Pharmacy = "pharmacy",
        Laboratory = "laboratory",
        NursingHome = "nursing_home",
        HomeCare = "home_care",
        PhysiotherapyClinic = "physiotherapy_clinic",
        DentalClinic = "dental_clinic",
        SpecialistPractice = "specialist_practice",
    }
);

codes!(
    /// The address register's kinds of communication party.
    PartyKind {
        Organisation = "Organization",
        Department = "Department",
        Service = "Service",
        Person = "Person",
    }
);

codes!(
    /// Health personnel categories, as HPR's codes (kodeverk 9060).
    Profession {
        Doctor = "LE",
        Nurse = "SP",
        /// Provisorfarmasøyt: the pharmacist who may run a pharmacy.
        Pharmacist = "FA1",
        Physiotherapist = "FT",
        Dentist = "TL",
    }
);

codes!(
    /// A person's relation to the population register (FREG's personstatus), as Persontjenesten
    /// names it.
    PersonStatus {
        Resident = "Resident",
        /// Holds a D-nummer: in Norway for a while, not resident.
        Temporary = "Temporary",
        Deceased = "Deceased",
        Emigrated = "Emigrated",
    }
);

codes!(
    /// Protection of a person's addresses (FREG's adressebeskyttelse), as Persontjenesten names
    /// it. Anything but `Unclassified` hides the address from callers without legal basis;
    /// `StrictlyConfidential` hides it from everyone.
    AddressProtection {
        Unclassified = "Unclassified",
        ClientAddress = "ClientAddress",
        Confidential = "Confidential",
        StrictlyConfidential = "StrictlyConfidential",
    }
);

codes!(
    /// What a certificate's key is for: each party has (or inherits) one current of each.
    CertificateUsage {
        Signing = "signing",
        Encryption = "encryption",
    }
);

/// A period from `from` up to, not including, `to` (open while `to` is `None`), as HPR and
/// Fastlegeregisteret keep theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
}

impl Period {
    pub fn holds_on(self, day: NaiveDate) -> bool {
        self.from <= day && self.to.is_none_or(|to| day < to)
    }

    pub(crate) fn values<'a>(&self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Owned(self.from.to_string()));
        push(Value::OptOwned(self.to.map(|d| d.to_string())));
    }

    pub(crate) fn stored(table: &str, from: &str, to: Option<&str>) -> Result<Period, StoreError> {
        let date = |d: &str| {
            d.parse::<NaiveDate>()
                .map_err(|e| corrupt(&format!("{table} period"), e))
        };
        let period = Period {
            from: date(from)?,
            to: to.map(date).transpose()?,
        };
        match period.to {
            Some(to) if to < period.from => Err(corrupt(
                &format!("{table} period"),
                format!("ends {to} before it begins {}", period.from),
            )),
            _ => Ok(period),
        }
    }
}

/// The stored and exported code of a legal sex.
pub fn sex_code(sex: Sex) -> &'static str {
    match sex {
        Sex::Female => "female",
        Sex::Male => "male",
    }
}

/// The stored and exported code of a number kind.
pub fn kind_code(kind: NumberKind) -> &'static str {
    match kind {
        NumberKind::Fodselsnummer => "fnr",
        NumberKind::DNummer => "dnr",
    }
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Which country this store holds; written last, so its presence means the country is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountryInfo {
    pub size: String,
    pub seed: u64,
    pub as_of: NaiveDate,
    pub generator_version: String,
    pub generated_at: i64,
}

impl Record for CountryInfo {
    const TABLE: &'static str = "country";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "size",
        "seed",
        "as_of",
        "generator_version",
        "generated_at",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(1));
        push(Value::Text(&self.size));
        // Seeds are u64; the column is a signed BIGINT holding the same 64 bits.
        push(Value::Int(self.seed as i64));
        push(Value::Owned(self.as_of.to_string()));
        push(Value::Text(&self.generator_version));
        push(Value::Int(self.generated_at));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Municipality {
    pub number: String,
    pub name: String,
    pub county: String,
    pub population: u32,
}

impl Record for Municipality {
    const TABLE: &'static str = "municipality";
    const COLUMNS: &'static [&'static str] = &["number", "name", "county", "population"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Text(&self.number));
        push(Value::Text(&self.name));
        push(Value::Text(&self.county));
        push(Value::Int(self.population.into()));
    }
}

/// Text shared between records: a country repeats its names and places millions of times, and
/// a shared string costs a reference count where a `String` costs an allocation.
pub type Text = Arc<str>;

/// A postal address in Norway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub street: Text,
    pub postal_code: Text,
    pub postal_place: Text,
    pub municipality: Text,
}

impl Address {
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Text(&self.municipality));
        push(Value::Text(&self.street));
        push(Value::Text(&self.postal_code));
        push(Value::Text(&self.postal_place));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub nin: Fodselsnummer,
    /// Persontjenesten's opaque id: random, so that it reveals nothing about the person.
    pub id: PersonId,
    pub given_name: Text,
    pub family_name: Text,
    pub address: Address,
    pub mother: Option<Fodselsnummer>,
    pub father: Option<Fodselsnummer>,
    pub spouse: Option<Fodselsnummer>,
    pub status: PersonStatus,
    pub protection: AddressProtection,
    pub deceased: Option<NaiveDate>,
    /// The change event that produced this version (0 for the person as generated).
    pub last_event: i64,
}

/// Persontjenesten's id of a person: 128 random bits, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PersonId(pub u128);

impl PersonId {
    /// Parses the API's form; `None` for anything else (wrong length, upper case, not hex).
    pub fn parse(s: &str) -> Option<PersonId> {
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        (s.len() == 32 && s.bytes().all(lower_hex))
            .then(|| u128::from_str_radix(s, 16).ok().map(PersonId))
            .flatten()
    }
}

impl std::fmt::Display for PersonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::fmt::Debug for PersonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PersonId({self})")
    }
}

impl Record for Person {
    const TABLE: &'static str = "person";
    const COLUMNS: &'static [&'static str] = &[
        "nin",
        "number_kind",
        "given_name",
        "family_name",
        "birth_date",
        "sex",
        "municipality",
        "street_address",
        "postal_code",
        "postal_place",
        "mother_nin",
        "father_nin",
        "spouse_nin",
        "person_id",
        "status",
        "address_protection",
        "deceased_date",
        "last_event",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Owned(self.nin.to_string()));
        push(Value::Text(kind_code(self.nin.kind())));
        push(Value::Text(&self.given_name));
        push(Value::Text(&self.family_name));
        push(Value::Owned(self.nin.birth_date().to_string()));
        push(Value::Text(sex_code(self.nin.sex())));
        self.address.values(push);
        for relative in [self.mother, self.father, self.spouse] {
            push(Value::OptOwned(relative.map(|n| n.to_string())));
        }
        push(Value::Owned(self.id.to_string()));
        push(Value::Text(self.status.as_str()));
        push(Value::Text(self.protection.as_str()));
        push(Value::OptOwned(self.deceased.map(|d| d.to_string())));
        push(Value::Int(self.last_event));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organisation {
    pub orgnr: Organisasjonsnummer,
    pub name: String,
    pub kind: OrganisationKind,
    pub parent: Option<Organisasjonsnummer>,
    pub address: Address,
}

impl Record for Organisation {
    const TABLE: &'static str = "organisation";
    const COLUMNS: &'static [&'static str] = &[
        "orgnr",
        "name",
        "kind",
        "parent_orgnr",
        "municipality",
        "street_address",
        "postal_code",
        "postal_place",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Owned(self.orgnr.to_string()));
        push(Value::Text(&self.name));
        push(Value::Text(self.kind.as_str()));
        push(Value::OptOwned(self.parent.map(|p| p.to_string())));
        self.address.values(push);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthPersonnel {
    pub hpr: HprNummer,
    pub nin: Fodselsnummer,
    pub profession: Profession,
    pub given_name: String,
    pub family_name: String,
}

impl Record for HealthPersonnel {
    const TABLE: &'static str = "health_personnel";
    const COLUMNS: &'static [&'static str] =
        &["hpr", "nin", "profession", "given_name", "family_name"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.hpr.get().into()));
        push(Value::Owned(self.nin.to_string()));
        push(Value::Text(self.profession.as_str()));
        push(Value::Text(&self.given_name));
        push(Value::Text(&self.family_name));
    }
}

/// A GP's list (fastlegeliste) at an office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpList {
    pub id: i64,
    pub gp: HprNummer,
    pub office: Organisasjonsnummer,
    pub municipality: String,
    pub capacity: u32,
}

impl Record for GpList {
    const TABLE: &'static str = "gp_list";
    const COLUMNS: &'static [&'static str] =
        &["id", "gp_hpr", "office_orgnr", "municipality", "capacity"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.id));
        push(Value::Int(self.gp.get().into()));
        push(Value::Owned(self.office.to_string()));
        push(Value::Text(&self.municipality));
        push(Value::Int(self.capacity.into()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GpListMember {
    pub nin: Fodselsnummer,
    pub list_id: i64,
    /// The day the person's place on the list began.
    pub since: NaiveDate,
}

impl Record for GpListMember {
    const TABLE: &'static str = "gp_list_member";
    const COLUMNS: &'static [&'static str] = &["nin", "list_id", "since"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Owned(self.nin.to_string()));
        push(Value::Int(self.list_id));
        push(Value::Owned(self.since.to_string()));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommunicationParty {
    pub her_id: HerId,
    pub kind: PartyKind,
    pub name: String,
    /// The organisation the party belongs to, whose enterprise certificates it uses.
    pub orgnr: Organisasjonsnummer,
    pub parent: Option<HerId>,
    pub hpr: Option<HprNummer>,
    pub municipality: String,
    pub active: bool,
    pub valid_from: NaiveDate,
    /// The last day the party may be addressed, when its end is known.
    pub valid_to: Option<NaiveDate>,
}

impl Record for CommunicationParty {
    const TABLE: &'static str = "communication_party";
    const COLUMNS: &'static [&'static str] = &[
        "her_id",
        "kind",
        "name",
        "orgnr",
        "parent_her_id",
        "hpr",
        "municipality",
        "active",
        "valid_from",
        "valid_to",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.her_id.get().into()));
        push(Value::Text(self.kind.as_str()));
        push(Value::Text(&self.name));
        push(Value::Owned(self.orgnr.to_string()));
        push(Value::OptInt(self.parent.map(|p| p.get().into())));
        push(Value::OptInt(self.hpr.map(|h| h.get().into())));
        push(Value::Text(&self.municipality));
        push(Value::Bool(self.active));
        push(Value::Owned(self.valid_from.to_string()));
        push(Value::OptOwned(self.valid_to.map(|d| d.to_string())));
    }
}

codes!(
    /// The part a party plays in a process of its CPP.
    ProcessRole {
        Sender = "sender",
        Receiver = "receiver",
    }
);

/// One line of a party's collaboration protocol profile. Lists are space-separated; versions
/// ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CppProcess {
    pub her_id: HerId,
    pub message_type: String,
    pub role: ProcessRole,
    pub versions: String,
    /// AppRec versions the party returns for what it receives.
    pub receipts: String,
    /// Message types the party answers this one with.
    pub replies: String,
}

impl Record for CppProcess {
    const TABLE: &'static str = "cpp_process";
    const COLUMNS: &'static [&'static str] = &[
        "her_id",
        "message_type",
        "role",
        "versions",
        "receipts",
        "replies",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.her_id.get().into()));
        push(Value::Text(&self.message_type));
        push(Value::Text(self.role.as_str()));
        push(Value::Text(&self.versions));
        push(Value::Text(&self.receipts));
        push(Value::Text(&self.replies));
    }
}

/// A municipality a party serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyCoverage {
    pub her_id: HerId,
    pub municipality: String,
}

impl Record for PartyCoverage {
    const TABLE: &'static str = "party_coverage";
    const COLUMNS: &'static [&'static str] = &["her_id", "municipality"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.her_id.get().into()));
        push(Value::Text(&self.municipality));
    }
}

/// A private key of the synthetic country (PKCS#8 PEM).
#[derive(Debug, Clone)]
pub struct SyntheticKey {
    pub id: i64,
    pub private_key_pem: String,
}

impl Record for SyntheticKey {
    const TABLE: &'static str = "synthetic_key";
    const COLUMNS: &'static [&'static str] = &["id", "private_key_pem"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.id));
        push(Value::Text(&self.private_key_pem));
    }
}

#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub name: String,
    pub certificate_pem: String,
    pub private_key_pem: Option<String>,
}

impl Record for CertificateAuthority {
    const TABLE: &'static str = "certificate_authority";
    const COLUMNS: &'static [&'static str] = &["name", "certificate_pem", "private_key_pem"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Text(&self.name));
        push(Value::Text(&self.certificate_pem));
        push(Value::OptText(self.private_key_pem.as_deref()));
    }
}

/// A party's X.509 certificate (DER), as the address register serves it. Instants are
/// milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    pub her_id: HerId,
    pub usage: CertificateUsage,
    /// Hex, as issued.
    pub serial: String,
    pub issuer: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub der: Vec<u8>,
    pub added_at: i64,
    pub revoked_at: Option<i64>,
    pub key_id: Option<i64>,
}

impl Record for Certificate {
    const TABLE: &'static str = "certificate";
    const COLUMNS: &'static [&'static str] = &[
        "fingerprint",
        "her_id",
        "usage",
        "serial",
        "issuer",
        "subject",
        "not_before",
        "not_after",
        "der",
        "added_at",
        "revoked_at",
        "key_id",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Text(&self.fingerprint));
        push(Value::Int(self.her_id.get().into()));
        push(Value::Text(self.usage.as_str()));
        push(Value::Text(&self.serial));
        push(Value::Text(&self.issuer));
        push(Value::Text(&self.subject));
        push(Value::Int(self.not_before));
        push(Value::Int(self.not_after));
        push(Value::Bytes(&self.der));
        push(Value::Int(self.added_at));
        push(Value::OptInt(self.revoked_at));
        push(Value::OptInt(self.key_id));
    }
}

const PERSON_COLUMNS: &str = "nin, given_name, family_name, municipality, street_address, \
    postal_code, postal_place, mother_nin, father_nin, spouse_nin, person_id, status, \
    address_protection, deceased_date, last_event";

/// Sets whether a SQLite connection maps the file: a read of a whole table is done unmapped,
/// which would otherwise leave the table resident in this process for as long as it runs.
async fn map_file(conn: &mut sqlx::SqliteConnection, map: bool) -> Result<(), StoreError> {
    let size = if map {
        crate::open::SQLITE_MMAP_SIZE
    } else {
        "0"
    };
    sqlx::query(&format!("PRAGMA mmap_size = {size}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// Persons per chunk of [`Store::for_each_person`] on SQLite.
const CHUNK: usize = 10_000;

/// [`PERSON_COLUMNS`] as one tab-separated text, an absent value as an empty field (no stored
/// text holds a tab or a newline: names, places and codes).
const PERSON_LINE: &str = "nin || char(9) || given_name || char(9) || family_name || char(9) || \
    municipality || char(9) || street_address || char(9) || postal_code || char(9) || \
    postal_place || char(9) || COALESCE(mother_nin, '') || char(9) || COALESCE(father_nin, '') \
    || char(9) || COALESCE(spouse_nin, '') || char(9) || person_id || char(9) || status || \
    char(9) || address_protection || char(9) || COALESCE(deceased_date, '') || char(9) || \
    last_event";

fn person_row(line: &str) -> Result<PersonRow, StoreError> {
    let mut fields = line.split('\t');
    let mut next = || {
        fields
            .next()
            .map(str::to_owned)
            .ok_or_else(|| corrupt("person", "a row has too few columns"))
    };
    let optional = |s: String| (!s.is_empty()).then_some(s);
    Ok((
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        optional(next()?),
        optional(next()?),
        optional(next()?),
        next()?,
        next()?,
        next()?,
        optional(next()?),
        next()?
            .parse()
            .map_err(|e| corrupt("person.last_event", e))?,
    ))
}

type PersonRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    i64,
);

fn person_of(row: PersonRow) -> Result<Person, StoreError> {
    let (nin, given_name, family_name, municipality, street, postal_code, postal_place) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
    Ok(Person {
        nin: stored("person.nin", &nin, Fodselsnummer::parse)?,
        id: PersonId::parse(&row.10)
            .ok_or_else(|| corrupt("person.person_id", "not 32 hex digits"))?,
        given_name: given_name.into(),
        family_name: family_name.into(),
        address: Address {
            street: street.into(),
            postal_code: postal_code.into(),
            postal_place: postal_place.into(),
            municipality: municipality.into(),
        },
        mother: stored_opt("person.mother_nin", row.7, Fodselsnummer::parse)?,
        father: stored_opt("person.father_nin", row.8, Fodselsnummer::parse)?,
        spouse: stored_opt("person.spouse_nin", row.9, Fodselsnummer::parse)?,
        status: PersonStatus::parse(&row.11)?,
        protection: AddressProtection::parse(&row.12)?,
        deceased: row
            .13
            .map(|d| {
                d.parse::<NaiveDate>()
                    .map_err(|e| corrupt("person.deceased_date", e))
            })
            .transpose()?,
        last_event: row.14,
    })
}

/// Decodes a stored identifier, reporting a bad one as corruption rather than as user error.
pub(crate) fn stored<T>(
    column: &str,
    text: &str,
    parse: impl Fn(&str) -> Result<T, helsenett_core::IdError>,
) -> Result<T, StoreError> {
    parse(text).map_err(|e| corrupt(column, e))
}

fn stored_opt<T>(
    column: &str,
    text: Option<String>,
    parse: impl Fn(&str) -> Result<T, helsenett_core::IdError>,
) -> Result<Option<T>, StoreError> {
    text.map(|t| stored(column, &t, &parse)).transpose()
}

pub(crate) fn stored_number<T>(
    column: &str,
    n: i64,
    new: impl Fn(u32) -> Result<T, helsenett_core::IdError>,
) -> Result<T, StoreError> {
    u32::try_from(n)
        .map_err(|e| corrupt(column, e))
        .and_then(|n| new(n).map_err(|e| corrupt(column, e)))
}

impl Store {
    pub async fn country_info(&self) -> Result<Option<CountryInfo>, StoreError> {
        let sql =
            "SELECT size, seed, as_of, generator_version, generated_at FROM country WHERE id = 1";
        let row = with_pool!(self, pool => {
            sqlx::query(sql).fetch_optional(pool).await?.map(|r| {
                (r.get::<String, _>(0), r.get::<i64, _>(1), r.get::<String, _>(2), r.get::<String, _>(3), r.get::<i64, _>(4))
            })
        });
        row.map(|(size, seed, as_of, generator_version, generated_at)| {
            Ok(CountryInfo {
                size,
                seed: seed as u64,
                as_of: as_of.parse().map_err(|e| corrupt("country.as_of", e))?,
                generator_version,
                generated_at,
            })
        })
        .transpose()
    }

    /// True when any country table holds rows: a finished country, or an interrupted load.
    pub async fn holds_country_data(&self) -> Result<bool, StoreError> {
        let sql = "SELECT EXISTS (SELECT 1 FROM municipality) OR EXISTS (SELECT 1 FROM person) OR EXISTS (SELECT 1 FROM organisation)";
        Ok(with_pool!(self, pool => sqlx::query_scalar::<_, bool>(sql).fetch_one(pool).await)?)
    }

    pub async fn person(&self, nin: Fodselsnummer) -> Result<Option<Person>, StoreError> {
        let sql = format!("SELECT {PERSON_COLUMNS} FROM person WHERE nin = $1");
        let row = with_pool!(self, pool => sqlx::query_as::<_, PersonRow>(&sql)
            .bind(nin.to_string())
            .fetch_optional(pool)
            .await)?;
        row.map(person_of).transpose()
    }

    pub async fn organisation(
        &self,
        orgnr: Organisasjonsnummer,
    ) -> Result<Option<Organisation>, StoreError> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, (String, String, Option<String>, String, String, String, String)>(
            "SELECT name, kind, parent_orgnr, municipality, street_address, postal_code, postal_place
             FROM organisation WHERE orgnr = $1",
        )
        .bind(orgnr.to_string())
        .fetch_optional(pool)
        .await)?;
        row.map(
            |(name, kind, parent, municipality, street, postal_code, postal_place)| {
                Ok(Organisation {
                    orgnr,
                    name,
                    kind: OrganisationKind::parse(&kind)?,
                    parent: stored_opt(
                        "organisation.parent_orgnr",
                        parent,
                        Organisasjonsnummer::parse,
                    )?,
                    address: Address {
                        street: street.into(),
                        postal_code: postal_code.into(),
                        postal_place: postal_place.into(),
                        municipality: municipality.into(),
                    },
                })
            },
        )
        .transpose()
    }

    /// How many persons the register holds.
    pub async fn person_count(&self) -> Result<usize, StoreError> {
        let count = match self {
            Store::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                map_file(&mut conn, false).await?;
                let count = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM person")
                    .fetch_one(&mut *conn)
                    .await;
                map_file(&mut conn, true).await?;
                count?
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM person")
                    .fetch_one(pool)
                    .await?
            }
        };
        usize::try_from(count).map_err(|e| corrupt("person count", e))
    }

    /// Every person, in fødselsnummer order, streamed: a whole country does not fit twice in
    /// memory.
    pub async fn for_each_person(
        &self,
        mut each: impl FnMut(Person) + Send,
    ) -> Result<(), StoreError> {
        use futures_util::TryStreamExt;
        match self {
            Store::Sqlite(pool) => {
                // sqlx hands SQLite's rows over one by one from a worker thread, which made a
                // country of 5.5 million take minutes; a chunk of persons as one text is a
                // thousand times fewer hand-overs.
                let mut conn = pool.acquire().await?;
                map_file(&mut conn, false).await?;
                let mut after = String::new();
                let result = async {
                    loop {
                        let chunk = sqlx::query_scalar::<_, Option<String>>(&format!(
                            "SELECT group_concat(line, char(10)) FROM (SELECT {PERSON_LINE} \
                             AS line FROM person WHERE nin > $1 ORDER BY nin LIMIT {CHUNK})"
                        ))
                        .bind(&after)
                        .fetch_one(&mut *conn)
                        .await?;
                        let Some(chunk) = chunk else { return Ok(()) };
                        for line in chunk.split('\n') {
                            let person = person_of(person_row(line)?)?;
                            after = person.nin.to_string();
                            each(person);
                        }
                    }
                }
                .await;
                map_file(&mut conn, true).await?;
                result
            }
            Store::Postgres(pool) => {
                let sql = format!("SELECT {PERSON_COLUMNS} FROM person ORDER BY nin");
                let mut rows = sqlx::query_as::<_, PersonRow>(&sql).fetch(pool);
                while let Some(row) = rows.try_next().await? {
                    each(person_of(row)?);
                }
                Ok(())
            }
        }
    }

    pub async fn communication_party(
        &self,
        her_id: HerId,
    ) -> Result<Option<CommunicationParty>, StoreError> {
        let sql = "SELECT her_id, kind, name, orgnr, parent_her_id, hpr, municipality, active, valid_from, valid_to \
                   FROM communication_party WHERE her_id = $1";
        self.parties(sql, i64::from(her_id.get()))
            .await
            .map(|mut v| v.pop())
    }

    /// The first `limit` parties of a kind, by HER-id.
    pub async fn parties_of_kind(
        &self,
        kind: PartyKind,
        limit: i64,
    ) -> Result<Vec<CommunicationParty>, StoreError> {
        let sql = format!(
            "SELECT her_id, kind, name, orgnr, parent_her_id, hpr, municipality, active, valid_from, valid_to \
             FROM communication_party WHERE kind = '{}' ORDER BY her_id LIMIT $1",
            kind.as_str()
        );
        self.parties(&sql, limit).await
    }

    async fn parties(&self, sql: &str, param: i64) -> Result<Vec<CommunicationParty>, StoreError> {
        type Raw = (
            i64,
            String,
            String,
            String,
            Option<i64>,
            Option<i64>,
            String,
            bool,
            String,
            Option<String>,
        );
        let rows: Vec<Raw> =
            with_pool!(self, pool => sqlx::query_as(sql).bind(param).fetch_all(pool).await?);
        rows.into_iter()
            .map(
                |(
                    her_id,
                    kind,
                    name,
                    orgnr,
                    parent,
                    hpr,
                    municipality,
                    active,
                    valid_from,
                    valid_to,
                )| {
                    Ok(CommunicationParty {
                        her_id: stored_number("communication_party.her_id", her_id, HerId::new)?,
                        kind: PartyKind::parse(&kind)?,
                        name,
                        orgnr: stored(
                            "communication_party.orgnr",
                            &orgnr,
                            Organisasjonsnummer::parse,
                        )?,
                        parent: parent
                            .map(|p| {
                                stored_number("communication_party.parent_her_id", p, HerId::new)
                            })
                            .transpose()?,
                        hpr: hpr
                            .map(|h| stored_number("communication_party.hpr", h, HprNummer::new))
                            .transpose()?,
                        municipality,
                        active,
                        valid_from: valid_from
                            .parse()
                            .map_err(|e| corrupt("communication_party.valid_from", e))?,
                        valid_to: valid_to
                            .map(|d| d.parse())
                            .transpose()
                            .map_err(|e| corrupt("communication_party.valid_to", e))?,
                    })
                },
            )
            .collect()
    }
}

codes!(
    /// The population register's kinds of change (Persontjenesten's `EventType`) that the
    /// synthetic country makes.
    PersonEventType {
        PersonIsCreated = "PersonIsCreated",
        PersonIsDeceased = "PersonIsDeceased",
        PersonIsEmigrated = "PersonIsEmigrated",
        ChangeInName = "ChangeInName",
        ChangeInResidentialAddress = "ChangeInResidentialAddress",
        ChangeInAddressProtection = "ChangeInAddressProtection",
    }
);

/// One change in the population register's event feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonEvent {
    pub seq: i64,
    pub nin: Fodselsnummer,
    pub event_type: PersonEventType,
    pub effective_on: NaiveDate,
    pub registered_at: i64,
    /// What the change replaced, as JSON (for history).
    pub previous: Option<String>,
}

impl Record for PersonEvent {
    const TABLE: &'static str = "person_event";
    const COLUMNS: &'static [&'static str] = &[
        "seq",
        "nin",
        "event_type",
        "effective_on",
        "registered_at",
        "previous",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.seq));
        push(Value::Owned(self.nin.to_string()));
        push(Value::Text(self.event_type.as_str()));
        push(Value::Owned(self.effective_on.to_string()));
        push(Value::Int(self.registered_at));
        push(Value::OptText(self.previous.as_deref()));
    }
}

/// One person looked up: who asked, for what purpose, under which legal basis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonLookup {
    pub at: i64,
    pub nin: Fodselsnummer,
    pub operation: &'static str,
    pub bundle: &'static str,
    pub legal_basis: &'static str,
    pub purpose: &'static str,
    pub found: bool,
    pub client_id: Text,
    pub orgnr: Organisasjonsnummer,
    pub child_orgnr: Option<Organisasjonsnummer>,
    pub user_pid: Option<Fodselsnummer>,
    pub user_hpr: Option<HprNummer>,
    pub token_id: Text,
}

impl Record for PersonLookup {
    const TABLE: &'static str = "person_lookup";
    const COLUMNS: &'static [&'static str] = &[
        "at",
        "nin",
        "operation",
        "bundle",
        "legal_basis",
        "purpose",
        "found",
        "client_id",
        "orgnr",
        "child_orgnr",
        "user_pid",
        "user_hpr",
        "token_id",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.at));
        push(Value::Owned(self.nin.to_string()));
        push(Value::Text(self.operation));
        push(Value::Text(self.bundle));
        push(Value::Text(self.legal_basis));
        push(Value::Text(self.purpose));
        push(Value::Bool(self.found));
        push(Value::Text(&self.client_id));
        push(Value::Owned(self.orgnr.to_string()));
        push(Value::OptOwned(self.child_orgnr.map(|o| o.to_string())));
        push(Value::OptOwned(self.user_pid.map(|p| p.to_string())));
        push(Value::OptInt(self.user_hpr.map(|h| h.get().into())));
        push(Value::Text(&self.token_id));
    }
}
