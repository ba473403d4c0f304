//! Persontjenesten's `Person` document, built from the register's record for one caller: only
//! the information parts asked for, only those the caller's bundle allows, and never an address
//! the person's address protection hides from that caller.

use chrono::NaiveDate;
use helsenett_core::{NumberKind, Sex};
use helsenett_store::records::{AddressProtection, PersonStatus};
use serde::Serialize;

use helsenett_helseid::RequiredScope;

use crate::{
    municipalities::Municipalities,
    persontjenesten::ReadWithLegalBasis,
    population::{Entry, State},
};

/// The authorization bundles of Persontjenesten, chosen by the route and the token's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bundle {
    NoLegalBasis,
    LegalBasis,
}

impl Bundle {
    pub fn as_str(self) -> &'static str {
        match self {
            Bundle::NoLegalBasis => "no-legal-basis",
            Bundle::LegalBasis => "legal-basis",
        }
    }

    /// What the look-up log records as the legal basis: the scope NHN granted, or none.
    pub fn legal_basis(self) -> &'static str {
        match self {
            Bundle::LegalBasis => ReadWithLegalBasis::SCOPE,
            Bundle::NoLegalBasis => "none (public information)",
        }
    }

    /// Whether the bundle shows an address with this protection. Strictly confidential
    /// addresses are shown to nobody; any protection hides the address without legal basis.
    pub fn shows_address(self, protection: AddressProtection) -> bool {
        match protection {
            AddressProtection::Unclassified => true,
            AddressProtection::StrictlyConfidential => false,
            AddressProtection::ClientAddress | AddressProtection::Confidential => {
                self == Bundle::LegalBasis
            }
        }
    }
}

/// Persontjenesten's information parts, in the contract's order.
pub const INFORMATION_PARTS: [&str; 35] = [
    "AddressProtection",
    "CitizenshipRetention",
    "ResidentialAddress",
    "UseOfSamiLanguage",
    "SharedResidence",
    "Death",
    "FalseIdentity",
    "FamilyRelation",
    "Birth",
    "BirthInNorway",
    "ParentalResponsibility",
    "SamiParliamentElectoralRegistryStatus",
    "NorwegianIdentificationNumber",
    "IdentityVerification",
    "ImmigrationToNorway",
    "Gender",
    "ResiduaryEstateContactInformation",
    "IdentificationDocument",
    "Name",
    "ResidencePermit",
    "StayOnSvalbard",
    "PresentAddress",
    "PostalAddress",
    "ForeignPostalAddress",
    "PreferredContactAddress",
    "MaritalStatus",
    "Citizenship",
    "Status",
    "ForeignPersonIdentificationNumber",
    "EmigrationFromNorway",
    "ImmigrationAuthoritiesIdentificationNumber",
    "GuardianshipOrFuturePowerOfAttorney",
    "DeprivedLegalAuthority",
    "CommonContactRegisterInformation",
    "LegalAuthority",
];

/// Parts only the legal-basis bundle may ask for: relations, civil status, citizenship and
/// identity papers, which the public bundle does not cover.
const LEGAL_BASIS_ONLY: [&str; 16] = [
    "FamilyRelation",
    "MaritalStatus",
    "ParentalResponsibility",
    "GuardianshipOrFuturePowerOfAttorney",
    "LegalAuthority",
    "DeprivedLegalAuthority",
    "Citizenship",
    "CitizenshipRetention",
    "ResidencePermit",
    "IdentityVerification",
    "IdentificationDocument",
    "FalseIdentity",
    "ForeignPersonIdentificationNumber",
    "ImmigrationAuthoritiesIdentificationNumber",
    "SharedResidence",
    "ResiduaryEstateContactInformation",
];

/// The information parts a request asked for, as a bit set over [`INFORMATION_PARTS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parts(u64);

/// Why a request's information parts were refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PartsError {
    Missing,
    Unknown(String),
    NeedsLegalBasis(&'static str),
}

impl Parts {
    /// Parses the `informationParts` values for `bundle`.
    pub fn parse<'a>(
        values: impl IntoIterator<Item = &'a str>,
        bundle: Bundle,
    ) -> Result<Parts, PartsError> {
        let mut parts = Parts::default();
        for value in values {
            let Some(i) = INFORMATION_PARTS.iter().position(|p| *p == value) else {
                // The value is the caller's own query text, not anyone's data.
                return Err(PartsError::Unknown(value.chars().take(60).collect()));
            };
            let name = INFORMATION_PARTS[i];
            if bundle == Bundle::NoLegalBasis && LEGAL_BASIS_ONLY.contains(&name) {
                return Err(PartsError::NeedsLegalBasis(name));
            }
            parts.0 |= 1 << i;
        }
        if parts.0 == 0 {
            return Err(PartsError::Missing);
        }
        Ok(parts)
    }

    fn has(self, name: &str) -> bool {
        INFORMATION_PARTS
            .iter()
            .position(|p| *p == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// An earlier value of a person's name or address, from the change that replaced it.
#[derive(Debug, Clone)]
pub struct Historic {
    pub replaced_on: NaiveDate,
    pub value: HistoricValue,
}

#[derive(Debug, Clone, serde::Deserialize, Serialize)]
#[serde(untagged)]
pub enum HistoricValue {
    Name {
        given_name: String,
        family_name: String,
    },
    Address {
        street: String,
        postal_code: String,
        postal_place: String,
        municipality: String,
    },
}

/// What a document is built from: the request's choices and the register around the person.
pub struct View<'a> {
    pub bundle: Bundle,
    pub parts: Parts,
    pub state: &'a State,
    pub municipalities: &'a Municipalities,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonDocument {
    pub id: String,
    pub sequence_number: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    norwegian_identification_number: Option<[IdentificationNumber; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Vec<Name>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gender: Option<[GenderEntry; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    birth: Option<[Birth; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<[Status; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    death: Option<Death>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address_protection: Option<[Protection; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    residential_address: Option<Vec<ResidentialAddress>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family_relation: Option<Vec<FamilyRelation>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdentificationNumber {
    is_valid: bool,
    identification_number: String,
    identification_number_type: &'static str,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Name {
    is_valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_to: Option<String>,
    given_name: String,
    family_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenderEntry {
    is_valid: bool,
    gender: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Birth {
    is_valid: bool,
    birth_date: String,
    /// A string in the contract.
    birth_year: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    is_valid: bool,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Death {
    is_valid: bool,
    deceased_date: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Protection {
    is_valid: bool,
    protection_level: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResidentialAddress {
    is_valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_to: Option<String>,
    address_confidentiality: &'static str,
    street_address: StreetAddress,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StreetAddress {
    address_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    address_number: Option<AddressNumber>,
    city: City,
    municipality_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    municipality_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    county_name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddressNumber {
    house_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    house_letter: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct City {
    city_name: String,
    postal_code: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FamilyRelation {
    is_valid: bool,
    related_person: String,
    related_persons_role: &'static str,
    my_role_for_related_person: &'static str,
}

/// A date as the contract writes it: a date-time whose time "must be ignored".
fn date_time(date: NaiveDate) -> String {
    format!("{date}T00:00:00+00:00")
}

impl View<'_> {
    /// The document of `person`, with `history` (oldest first) when the caller asked for it.
    pub fn document(&self, person: &Entry, history: &[Historic]) -> PersonDocument {
        let parts = self.parts;
        let nin = person.nin;
        let shows_address = self.bundle.shows_address(person.protection);
        PersonDocument {
            id: person.id.to_string(),
            sequence_number: person.last_event,
            norwegian_identification_number: parts.has("NorwegianIdentificationNumber").then(
                || {
                    [IdentificationNumber {
                        is_valid: true,
                        identification_number: nin.to_string(),
                        identification_number_type: match nin.kind() {
                            NumberKind::Fodselsnummer => "NationalIdentityNumber",
                            NumberKind::DNummer => "DNumber",
                        },
                        status: "InUse",
                    }]
                },
            ),
            name: parts.has("Name").then(|| {
                let earlier = history.iter().filter_map(|h| match &h.value {
                    HistoricValue::Name {
                        given_name,
                        family_name,
                    } => Some(Name {
                        is_valid: false,
                        valid_to: Some(date_time(h.replaced_on)),
                        given_name: given_name.clone(),
                        family_name: family_name.clone(),
                    }),
                    HistoricValue::Address { .. } => None,
                });
                std::iter::once(Name {
                    is_valid: true,
                    valid_to: None,
                    given_name: person.given_name.to_string(),
                    family_name: person.family_name.to_string(),
                })
                .chain(earlier)
                .collect()
            }),
            gender: parts.has("Gender").then(|| {
                [GenderEntry {
                    is_valid: true,
                    gender: match nin.sex() {
                        Sex::Female => "Female",
                        Sex::Male => "Male",
                    },
                }]
            }),
            birth: parts.has("Birth").then(|| {
                let born = nin.birth_date();
                [Birth {
                    is_valid: true,
                    birth_date: date_time(born),
                    birth_year: chrono::Datelike::year(&born).to_string(),
                }]
            }),
            status: parts.has("Status").then(|| {
                [Status {
                    is_valid: true,
                    status: person.status.as_str(),
                }]
            }),
            death: parts
                .has("Death")
                .then_some(person.deceased)
                .flatten()
                .map(|date| Death {
                    is_valid: true,
                    deceased_date: date_time(date),
                }),
            address_protection: parts.has("AddressProtection").then(|| {
                [Protection {
                    is_valid: true,
                    protection_level: person.protection.as_str(),
                }]
            }),
            residential_address: (parts.has("ResidentialAddress")
                && shows_address
                && person.status != PersonStatus::Emigrated)
                .then(|| {
                    let current = self.address(
                        person.protection,
                        None,
                        person.address.street,
                        person.address.postal_code,
                        person.address.postal_place,
                        person.address.municipality,
                    );
                    let earlier = history.iter().filter_map(|h| match &h.value {
                        HistoricValue::Address {
                            street,
                            postal_code,
                            postal_place,
                            municipality,
                        } => Some(self.address(
                            person.protection,
                            Some(h.replaced_on),
                            street,
                            postal_code,
                            postal_place,
                            municipality,
                        )),
                        HistoricValue::Name { .. } => None,
                    });
                    std::iter::once(current).chain(earlier).collect()
                }),
            family_relation: parts.has("FamilyRelation").then(|| self.family(person)),
        }
    }

    fn address(
        &self,
        protection: AddressProtection,
        replaced_on: Option<NaiveDate>,
        street: &str,
        postal_code: &str,
        postal_place: &str,
        municipality: &str,
    ) -> ResidentialAddress {
        // "Storgata 12B": the name, then the number with its letter.
        let (name, number) = match street.rsplit_once(' ') {
            Some((name, number)) if number.starts_with(|c: char| c.is_ascii_digit()) => {
                let digits = number.trim_end_matches(|c: char| c.is_ascii_alphabetic());
                let letter = &number[digits.len()..];
                (
                    name,
                    Some(AddressNumber {
                        house_number: digits.to_owned(),
                        house_letter: (!letter.is_empty()).then(|| letter.to_owned()),
                    }),
                )
            }
            _ => (street, None),
        };
        let known = self.municipalities.get(municipality);
        ResidentialAddress {
            is_valid: replaced_on.is_none(),
            valid_to: replaced_on.map(date_time),
            address_confidentiality: protection.as_str(),
            street_address: StreetAddress {
                address_name: name.to_owned(),
                address_number: number,
                city: City {
                    city_name: postal_place.to_owned(),
                    postal_code: postal_code.to_owned(),
                },
                municipality_number: municipality.to_owned(),
                municipality_name: known.map(|m| m.name.to_string()),
                county_name: known.map(|m| m.county.to_string()),
            },
        }
    }

    /// Parents, spouse and children, each named by fødselsnummer, seen from both sides.
    fn family(&self, person: &Entry) -> Vec<FamilyRelation> {
        let relation = |related: helsenett_core::Fodselsnummer, theirs, mine| FamilyRelation {
            is_valid: true,
            related_person: related.to_string(),
            related_persons_role: theirs,
            my_role_for_related_person: mine,
        };
        let mut relations = Vec::new();
        if let Some(mother) = person.mother {
            relations.push(relation(mother, "Mother", "Child"));
        }
        if let Some(father) = person.father {
            relations.push(relation(father, "Father", "Child"));
        }
        if let Some(spouse) = person.spouse {
            relations.push(relation(spouse, "SpouseOrPartner", "SpouseOrPartner"));
        }
        let parent_role = match person.nin.sex() {
            Sex::Female => "Mother",
            Sex::Male => "Father",
        };
        for child in self.state.children(&person.nin) {
            relations.push(relation(child, "Child", parent_role));
        }
        relations
    }
}
