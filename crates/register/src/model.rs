//! The register's document of a communication party: everything the register knows about one
//! HER-id, as the API serves it, the event feed carries it and the export lists it. A party
//! holds only its own data; what it inherits (certificates, addresses) is resolved on look-up.

use std::{fmt, str::FromStr};

use chrono::{DateTime, NaiveDate, Utc};
use helsenett_core::{HerId, HprNummer, Organisasjonsnummer};
use helsenett_store::records::{CertificateUsage, OrganisationKind, PartyKind, ProcessRole};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Party {
    #[schema(value_type = String, example = "8000001")]
    pub her_id: HerId,
    /// Organization, Department, Service or Person, as NHN's register names them.
    #[schema(value_type = String, example = "Organization")]
    pub kind: PartyKind,
    pub name: String,
    /// The legal entity the party belongs to, whose certificates it inherits.
    #[schema(value_type = String, example = "300000008")]
    pub orgnr: Organisasjonsnummer,
    #[schema(value_type = Option<String>)]
    pub parent_her_id: Option<HerId>,
    /// Set on persons: their number in Helsepersonellregisteret.
    #[schema(value_type = Option<String>)]
    pub hpr_number: Option<HprNummer>,
    /// The municipality (four-digit number) the party is in.
    #[schema(example = "0301")]
    pub municipality: String,
    pub active: bool,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
    /// The legal entity's own details; present exactly on parties of kind Organization.
    pub organisation: Option<OrganisationDetails>,
    /// Municipalities the party serves.
    pub coverage: Vec<String>,
    /// Every certificate the party has held, oldest first.
    pub certificates: Vec<StoredCertificate>,
    /// The collaboration protocol profile.
    pub cpp: Vec<Process>,
}

impl Party {
    /// Whether messages may be addressed to the party on `day`: active, and within its validity.
    pub fn is_addressable(&self, day: NaiveDate) -> bool {
        self.active && self.valid_from <= day && self.valid_to.is_none_or(|to| day <= to)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganisationDetails {
    #[schema(value_type = String, example = "gp_office")]
    pub business_type: OrganisationKind,
    #[schema(value_type = Option<String>)]
    pub parent_orgnr: Option<Organisasjonsnummer>,
    /// The visiting address first; a postal address where it differs.
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    /// `RES` (visiting address) or `PST` (postal address), kodeverk 3401.
    #[serde(rename = "type")]
    pub kind: AddressKind,
    pub street: String,
    pub postal_code: String,
    pub postal_place: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AddressKind {
    #[serde(rename = "RES")]
    Visiting,
    #[serde(rename = "PST")]
    Postal,
}

/// A certificate as the register keeps it. Whether it is usable is decided at each look-up
/// (see [`CertificateStatus`]), never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoredCertificate {
    #[schema(value_type = String, example = "encryption")]
    pub usage: CertificateUsage,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    pub serial: String,
    pub issuer: String,
    pub subject: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub added_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The certificate, DER in standard base64.
    #[serde(with = "base64_der")]
    #[schema(value_type = String, format = Byte)]
    pub der: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum CertificateStatus {
    Valid,
    NotYetValid,
    Expired,
    Revoked,
}

impl fmt::Display for CertificateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertificateStatus::Valid => "valid",
            CertificateStatus::NotYetValid => "not yet valid",
            CertificateStatus::Expired => "expired",
            CertificateStatus::Revoked => "revoked",
        })
    }
}

impl StoredCertificate {
    pub fn status(&self, now: DateTime<Utc>) -> CertificateStatus {
        // Revoked whenever the register says so: another node's clock must not make a
        // revocation look undone.
        if self.revoked_at.is_some() {
            CertificateStatus::Revoked
        } else if now < self.not_before {
            CertificateStatus::NotYetValid
        } else if now >= self.not_after {
            CertificateStatus::Expired
        } else {
            CertificateStatus::Valid
        }
    }
}

/// One line of a CPP: a message type the party sends or receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Process {
    #[schema(example = "DIALOG_HELSEFAGLIG")]
    pub message_type: String,
    #[schema(value_type = String, example = "receiver")]
    pub role: ProcessRole,
    /// Versions handled, ascending.
    #[schema(value_type = Vec<String>, example = json!(["1.0", "1.1"]))]
    pub versions: Vec<Version>,
    /// AppRec versions returned for what is received, ascending.
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["1.0", "1.1"]))]
    pub receipts: Vec<Version>,
    /// Message types this one is answered with.
    #[serde(default)]
    pub replies: Vec<String>,
}

/// A message or receipt version, `major.minor`, ordered numerically (1.10 is after 1.9).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
}

impl FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a version (major.minor, such as 1.1)");
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        let number = |part: &str| {
            if part.is_empty() || part.len() > 4 || !part.bytes().all(|b| b.is_ascii_digit()) {
                Err(bad())
            } else {
                part.parse::<u16>().map_err(|_| bad())
            }
        };
        Ok(Version {
            major: number(major)?,
            minor: number(minor)?,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Now, to the millisecond: what the store keeps, so that the tables and the feed agree.
pub fn now() -> DateTime<Utc> {
    to_millis(Utc::now())
}

pub(crate) fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

/// Puts a party's lists in the one order the store reads them back in (byte order, never a
/// database collation): coverage, CPP lines by message type and role, versions ascending,
/// certificates by when they were added.
pub(crate) fn canonicalise(party: &mut Party) {
    party.coverage.sort();
    party.coverage.dedup();
    for p in &mut party.cpp {
        for list in [&mut p.versions, &mut p.receipts] {
            list.sort();
            list.dedup();
        }
    }
    party.cpp.sort_by(|a, b| {
        (&a.message_type, a.role.as_str()).cmp(&(&b.message_type, b.role.as_str()))
    });
    for c in &mut party.certificates {
        c.not_before = to_millis(c.not_before);
        c.not_after = to_millis(c.not_after);
        c.added_at = to_millis(c.added_at);
        c.revoked_at = c.revoked_at.map(to_millis);
    }
    party.certificates.sort_by(|a, b| {
        (a.added_at, a.not_before, &a.fingerprint).cmp(&(b.added_at, b.not_before, &b.fingerprint))
    });
}

/// Parses a stored space-separated version list.
pub(crate) fn versions(list: &str) -> Result<Vec<Version>, String> {
    list.split_whitespace().map(str::parse).collect()
}

/// Joins versions for storage.
pub(crate) fn version_list(versions: &[Version]) -> String {
    versions
        .iter()
        .map(Version::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

mod base64_der {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(der: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(der))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically_and_refuse_junk() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("1.10") > v("1.9"));
        assert!(v("2.0") > v("1.99"));
        assert_eq!(v("1.1").to_string(), "1.1");
        for bad in [
            "", "1", "1.", ".1", "1.1.1", "a.b", "1.-1", "99999.1", " 1.1",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
    }
}
