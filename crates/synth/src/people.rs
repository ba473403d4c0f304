//! People, made household by household so that next of kin (spouse, parents) are real people
//! of the same country, living at the same address.

use std::collections::HashMap;

use chrono::{Datelike, Days, NaiveDate};
use helsenett_core::{Fodselsnummer, NumberKind, Sex};
use helsenett_store::records::{Address, AddressProtection, Person, PersonId, PersonStatus, Text};
use rand::{Rng, seq::IndexedRandom};
use rand_chacha::ChaCha20Rng;

use crate::reference::{MunicipalityRef, Reference};

/// Hands out synthetic fødselsnummer and D-nummer without repeats: per birth date, kind and sex
/// it walks the individual numbers of that century in order, skipping those with no valid check
/// digits. Deterministic because people are made in a fixed order.
#[derive(Default)]
pub struct NinAllocator {
    next: HashMap<(NaiveDate, NumberKind, Sex), u16>,
}

impl NinAllocator {
    pub fn allocate(&mut self, mut birth: NaiveDate, kind: NumberKind, sex: Sex) -> Fodselsnummer {
        loop {
            let next = self.next.entry((birth, kind, sex)).or_insert(0);
            while let Some(individual) = individual_number(birth.year(), *next, sex) {
                *next += 1;
                if let Some(nin) = Fodselsnummer::new(birth, individual, kind, true) {
                    return nin;
                }
            }
            // Every number of this date is taken: the person is born a day earlier (never later,
            // which could be after the country's date or past 2039, where no number exists).
            birth = birth - Days::new(1);
        }
    }
}

/// The `i`th individual number of the given parity for a birth year, or `None` past the last.
fn individual_number(year: i32, i: u16, sex: Sex) -> Option<u16> {
    let parity = if sex == Sex::Male { 1 } else { 0 };
    let n = i * 2 + parity;
    match year {
        1900..=1939 => (n <= 499).then_some(n),
        1940..=1999 if n <= 499 => Some(n),
        1940..=1999 => (n - 500 + 900 <= 999).then_some(n - 500 + 900),
        2000..=2039 => (500 + n <= 999).then_some(500 + n),
        _ => None,
    }
}

/// Adult ages by decade from 20, weighted roughly as Norway's population pyramid.
const ADULT_DECADE_WEIGHTS: [u32; 8] = [14, 15, 15, 15, 13, 10, 5, 1];

fn adult_age(rng: &mut ChaCha20Rng, min: u32, max: u32) -> u32 {
    loop {
        let total: u32 = ADULT_DECADE_WEIGHTS.iter().sum();
        let mut pick = rng.random_range(0..total);
        let decade = ADULT_DECADE_WEIGHTS
            .iter()
            .position(|&w| {
                if pick < w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .expect("in range");
        let age = 20 + decade as u32 * 10 + rng.random_range(0..10);
        if (min..=max).contains(&age) {
            return age;
        }
    }
}

pub struct PeopleMaker<'a> {
    pub rng: &'a mut ChaCha20Rng,
    pub reference: &'a Reference,
    pub nins: &'a mut NinAllocator,
    pub as_of: NaiveDate,
    pub municipality: &'a MunicipalityRef,
}

impl PeopleMaker<'_> {
    /// At least `target` people (whole households), in the order they were made.
    pub fn households(&mut self, target: u32) -> Vec<Person> {
        let mut people = Vec::with_capacity(target as usize + 4);
        while people.len() < target as usize {
            let household = people.len();
            let address = self.address();
            let roll: f64 = self.rng.random();
            if roll < 0.36 {
                let age = adult_age(self.rng, 20, 99);
                let sex = self.sex();
                // Some single working-age adults are here temporarily and have a D-nummer.
                let kind = if age < 60 && self.rng.random_bool(0.06) {
                    NumberKind::DNummer
                } else {
                    NumberKind::Fodselsnummer
                };
                let family = self.family_name();
                people.push(self.person(age, sex, kind, &family, &address));
            } else if roll < 0.92 {
                let with_children = roll >= 0.60;
                let (min, max) = if with_children { (25, 50) } else { (20, 95) };
                let age = adult_age(self.rng, min, max);
                let partner_age = (age as i32 + self.rng.random_range(-4..=4)).clamp(20, 99) as u32;
                let sex = self.sex();
                let partner_sex = if !with_children && self.rng.random_bool(0.04) {
                    sex
                } else {
                    other(sex)
                };
                let family = self.family_name();
                let partner_family = if self.rng.random_bool(0.5) {
                    family.clone()
                } else {
                    self.family_name()
                };
                let mut a = self.person(age, sex, NumberKind::Fodselsnummer, &family, &address);
                let mut b = self.person(
                    partner_age,
                    partner_sex,
                    NumberKind::Fodselsnummer,
                    &partner_family,
                    &address,
                );
                if self.rng.random_bool(0.7) {
                    a.spouse = Some(b.nin);
                    b.spouse = Some(a.nin);
                }
                let youngest_parent = age.min(partner_age);
                let children = if with_children {
                    self.children(youngest_parent, &family, &address, &[&a, &b])
                } else {
                    Vec::new()
                };
                people.extend([a, b]);
                people.extend(children);
            } else {
                let age = adult_age(self.rng, 22, 55);
                let sex = if self.rng.random_bool(0.8) {
                    Sex::Female
                } else {
                    Sex::Male
                };
                let family = self.family_name();
                let parent = self.person(age, sex, NumberKind::Fodselsnummer, &family, &address);
                let children = self.children(age, &family, &address, &[&parent]);
                people.push(parent);
                people.extend(children);
            }
            let protection = self.protection();
            for person in &mut people[household..] {
                person.protection = protection;
            }
        }
        people
    }

    /// A household's address protection: a few in a thousand have one, as in Norway, where
    /// strictly confidential addresses are the rarest.
    fn protection(&mut self) -> AddressProtection {
        match self.rng.random_range(0..10_000) {
            0..5 => AddressProtection::StrictlyConfidential,
            5..25 => AddressProtection::Confidential,
            25..30 => AddressProtection::ClientAddress,
            _ => AddressProtection::Unclassified,
        }
    }

    /// One to three children under 20 and at least 18 years younger than the youngest parent.
    fn children(
        &mut self,
        youngest_parent: u32,
        family: &Text,
        address: &Address,
        parents: &[&Person],
    ) -> Vec<Person> {
        let oldest = (youngest_parent - 18).min(19);
        let count = self.rng.random_range(1..=3);
        (0..count)
            .map(|_| {
                let age = self.rng.random_range(0..=oldest);
                let sex = self.sex();
                let mut child = self.person(age, sex, NumberKind::Fodselsnummer, family, address);
                for parent in parents {
                    match parent.nin.sex() {
                        Sex::Female => child.mother = Some(parent.nin),
                        Sex::Male => child.father = Some(parent.nin),
                    }
                }
                child
            })
            .collect()
    }

    fn person(
        &mut self,
        age: u32,
        sex: Sex,
        kind: NumberKind,
        family: &Text,
        address: &Address,
    ) -> Person {
        let days = u64::from(age) * 365 + u64::from(age / 4) + self.rng.random_range(0..365);
        let birth = self.as_of - Days::new(days);
        let names = match sex {
            Sex::Female => &self.reference.female_names,
            Sex::Male => &self.reference.male_names,
        };
        let mut given_name = names.choose(self.rng).expect("names").clone();
        if self.rng.random_bool(0.15) {
            let second = names.choose(self.rng).expect("names");
            given_name = format!("{given_name} {second}").into();
        }
        Person {
            nin: self.nins.allocate(birth, kind, sex),
            id: PersonId(self.rng.random()),
            given_name,
            family_name: family.clone(),
            address: address.clone(),
            mother: None,
            father: None,
            spouse: None,
            status: match kind {
                NumberKind::Fodselsnummer => PersonStatus::Resident,
                NumberKind::DNummer => PersonStatus::Temporary,
            },
            protection: AddressProtection::Unclassified,
            deceased: None,
            last_event: 0,
        }
    }

    fn sex(&mut self) -> Sex {
        if self.rng.random_bool(0.5) {
            Sex::Female
        } else {
            Sex::Male
        }
    }

    fn family_name(&mut self) -> Text {
        self.reference
            .family_names
            .choose(self.rng)
            .expect("family names")
            .clone()
    }

    /// A street address in the municipality.
    pub fn address(&mut self) -> Address {
        let street = self
            .reference
            .street_names
            .choose(self.rng)
            .expect("streets");
        let number = self.rng.random_range(1..=140);
        let letter = if self.rng.random_bool(0.1) {
            ["A", "B", "C"].choose(self.rng).expect("letters")
        } else {
            ""
        };
        Address {
            street: format!("{street} {number}{letter}").into(),
            postal_code: self.municipality.postcode.clone(),
            postal_place: self.municipality.postplace.clone(),
            municipality: self.municipality.number.clone(),
        }
    }
}

fn other(sex: Sex) -> Sex {
    match sex {
        Sex::Female => Sex::Male,
        Sex::Male => Sex::Female,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn allocator_never_repeats_and_keeps_sex_and_date() {
        let mut nins = NinAllocator::default();
        let date = NaiveDate::from_ymd_opt(1975, 6, 15).unwrap();
        let mut seen = HashSet::new();
        for i in 0..1_000 {
            let sex = if i % 2 == 0 { Sex::Female } else { Sex::Male };
            let nin = nins.allocate(date, NumberKind::Fodselsnummer, sex);
            assert!(seen.insert(nin), "repeated");
            assert_eq!(nin.sex(), sex);
            assert!(nin.is_synthetic());
            // After a date's numbers run out people move to the day before, never later.
            assert!(nin.birth_date() <= date);
        }
        assert!(
            seen.iter().any(|n| n.birth_date() < date),
            "1,000 people cannot share one date"
        );
    }

    #[test]
    fn individual_numbers_follow_the_century_ranges() {
        assert_eq!(individual_number(1950, 0, Sex::Female), Some(0));
        assert_eq!(individual_number(1950, 250, Sex::Female), Some(900));
        assert_eq!(individual_number(1950, 300, Sex::Female), None);
        assert_eq!(individual_number(1930, 250, Sex::Female), None);
        assert_eq!(individual_number(2010, 0, Sex::Male), Some(501));
        assert_eq!(individual_number(2010, 250, Sex::Female), None);
    }
}
