//! Person search by name, birth date and address, under the contract's rules: a name of at
//! least three letters, plus a birth date, a municipality or a street; at most a page of
//! results. Address criteria never match a person whose address the caller may not see, so a
//! search cannot reveal a protected address.

use chrono::NaiveDate;
use helsenett_core::Sex;

use crate::{
    document::Bundle,
    population::{Entry, State},
};

/// Results per search at most, as the contract says.
pub const PAGE: usize = 100;

/// The criteria of one search, as the form gives them.
#[derive(Debug, Default, Clone)]
pub struct Criteria {
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub full_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub family_name: Option<String>,
    pub street_address: Option<String>,
    pub postal_code: Option<String>,
    pub city_name: Option<String>,
    pub municipality_number: Option<String>,
}

/// A search the rules refuse, with the field and the rule.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub field: &'static str,
    pub reason: &'static str,
}

fn refused(field: &'static str, reason: &'static str) -> Refused {
    Refused { field, reason }
}

/// Born on one day, or in one year.
#[derive(Debug, Clone, Copy)]
enum Born {
    On(NaiveDate),
    In(i32),
}

/// Criteria checked and normalised (lower case, words split).
#[derive(Debug)]
pub struct Query {
    born: Option<Born>,
    sex: Option<Sex>,
    /// Every word must be one of the person's names.
    names: Vec<String>,
    given: Vec<String>,
    family: Option<String>,
    street: Option<String>,
    postal_code: Option<String>,
    city: Option<String>,
    municipality: Option<String>,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_lowercase).collect()
}

fn letters(s: &str) -> usize {
    s.chars().filter(|c| c.is_alphabetic()).count()
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Criteria {
    pub fn check(&self) -> Result<Query, Refused> {
        fn name_field<'v>(
            value: &'v Option<String>,
            field: &'static str,
            max: usize,
        ) -> Result<Option<&'v str>, Refused> {
            match non_empty(value) {
                None => Ok(None),
                Some(v) if v.chars().count() > max => Err(refused(field, "is too long")),
                Some(v)
                    if !v
                        .chars()
                        .all(|c| c.is_alphabetic() || c.is_whitespace() || c == '-') =>
                {
                    Err(refused(field, "may hold only letters, spaces and hyphens"))
                }
                Some(v) => Ok(Some(v)),
            }
        }
        let full = name_field(&self.full_name, "FullName", 600)?;
        let given = name_field(&self.given_name, "GivenName", 200)?;
        let middle = name_field(&self.middle_name, "MiddleName", 200)?;
        let family = name_field(&self.family_name, "FamilyName", 200)?;
        let city = name_field(&self.city_name, "CityName", 100)?;
        let name_letters: usize = [full, given, middle, family]
            .iter()
            .flatten()
            .map(|n| letters(n))
            .sum();
        if full.is_none() && given.is_none() && middle.is_none() && family.is_none() {
            return Err(refused(
                "FullName",
                "a name is required (FullName, GivenName, MiddleName or FamilyName)",
            ));
        }
        if name_letters < 3 {
            return Err(refused(
                "FullName",
                "the names must hold at least three letters in all",
            ));
        }
        let born = match non_empty(&self.birth_date) {
            None => None,
            Some(v) if v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit()) => Some(Born::In(
                v.parse()
                    .map_err(|_| refused("BirthDate", "is not a year"))?,
            )),
            Some(v) => Some(Born::On(NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(
                |_| refused("BirthDate", "must be a date (YYYY-MM-DD) or a year (YYYY)"),
            )?)),
        };
        let digits = |value: &Option<String>, field: &'static str| match non_empty(value) {
            None => Ok(None),
            Some(v) if v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(v.to_owned()))
            }
            Some(_) => Err(refused(field, "must be four digits")),
        };
        let municipality = digits(&self.municipality_number, "MunicipalityNumber")?;
        let postal_code = digits(&self.postal_code, "PostalCode")?;
        let street = match non_empty(&self.street_address) {
            None => None,
            Some(v) if v.chars().count() > 200 => {
                return Err(refused("StreetAddress", "is too long"));
            }
            Some(v) if !v.chars().all(|c| c.is_alphanumeric() || c.is_whitespace()) => {
                return Err(refused(
                    "StreetAddress",
                    "may hold only letters, digits and spaces",
                ));
            }
            Some(v) => Some(v.to_lowercase()),
        };
        let street_letters = street.as_deref().map_or(0, letters);
        if born.is_none() && municipality.is_none() && street_letters < 3 {
            return Err(refused(
                "BirthDate",
                "a birth date, a municipality number or a street of at least three letters is required",
            ));
        }
        let sex = match non_empty(&self.gender) {
            None => None,
            Some("Female") => Some(Sex::Female),
            Some("Male") => Some(Sex::Male),
            Some(_) => return Err(refused("Gender", "must be Female or Male")),
        };
        let mut names = full.map(words).unwrap_or_default();
        names.extend(middle.map(words).unwrap_or_default());
        Ok(Query {
            born,
            sex,
            names,
            given: given.map(words).unwrap_or_default(),
            family: family.map(str::to_lowercase),
            street,
            postal_code,
            city: city.map(str::to_lowercase),
            municipality,
        })
    }
}

impl Query {
    /// Whether the query uses an address criterion.
    fn by_address(&self) -> bool {
        self.street.is_some()
            || self.postal_code.is_some()
            || self.city.is_some()
            || self.municipality.is_some()
    }

    fn matches(&self, person: &Entry, bundle: Bundle) -> bool {
        let nin = person.nin;
        if let Some(born) = self.born {
            let date = nin.birth_date();
            let ok = match born {
                Born::On(d) => date == d,
                Born::In(y) => chrono::Datelike::year(&date) == y,
            };
            if !ok {
                return false;
            }
        }
        if self.sex.is_some_and(|s| s != nin.sex()) {
            return false;
        }
        if self.by_address() && !bundle.shows_address(person.protection) {
            return false;
        }
        let given = words(person.given_name);
        let family = person.family_name.to_lowercase();
        let all_names: Vec<&str> = given
            .iter()
            .map(String::as_str)
            .chain(family.split_whitespace())
            .collect();
        if !self.names.iter().all(|w| all_names.contains(&w.as_str())) {
            return false;
        }
        if !self.given.iter().all(|w| given.contains(w)) {
            return false;
        }
        if self.family.as_ref().is_some_and(|f| *f != family) {
            return false;
        }
        let address = &person.address;
        if self
            .municipality
            .as_ref()
            .is_some_and(|m| **m != *address.municipality)
        {
            return false;
        }
        if self
            .postal_code
            .as_ref()
            .is_some_and(|p| **p != *address.postal_code)
        {
            return false;
        }
        if self
            .city
            .as_ref()
            .is_some_and(|c| *c != address.postal_place.to_lowercase())
        {
            return false;
        }
        if self
            .street
            .as_ref()
            .is_some_and(|s| !address.street.to_lowercase().starts_with(s.as_str()))
        {
            return false;
        }
        true
    }

    /// The first [`PAGE`] matches in fødselsnummer order.
    pub fn run<'s>(&self, state: &'s State, bundle: Bundle) -> Vec<Entry<'s>> {
        // The narrowest index the criteria allow; a scan of everyone only for a given name with
        // a municipality or street.
        let candidates: Box<dyn Iterator<Item = Entry<'s>>> = match (self.born, &self.family) {
            (Some(Born::On(date)), _) => Box::new(state.born_on(date)),
            (_, Some(family)) => Box::new(state.named(family)),
            _ => Box::new(state.all()),
        };
        let mut found: Vec<Entry<'s>> = candidates.filter(|p| self.matches(p, bundle)).collect();
        found.sort_unstable_by_key(|p| p.nin);
        found.truncate(PAGE);
        found
    }
}
