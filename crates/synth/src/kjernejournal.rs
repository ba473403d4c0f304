//! Kjernejournal, the summary care record, for the synthetic country. A municipality's step
//! gives its people what needs no hospital (critical information, next of kin, their own notes,
//! medicines dispensed at the municipality's pharmacies, vaccinations, the record's state) and
//! hands back those drawn for a hospital contact; the county's step, once its hospitals exist,
//! gives them their encounters, the episodes those open, and some discharge summaries. Every
//! resource is FHIR R4 exactly as the kjernejournal API serves and accepts it.
//!
//! Entry ids are UUIDs of version 8 (RFC 9562's custom layout): the step and a count within it
//! in the first 48 bits, random bits from the step's stream in the rest. They sort in the order
//! the country is made, so the entries' primary key grows at its end; random ids (version 4)
//! scattered the inserts over the whole B-tree and made the norway load several times slower
//! to write them (measured).

mod catalogue;
mod fhir;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, SecondsFormat};
use helsenett_core::{Fodselsnummer, Sex};
use helsenett_store::{
    kjernejournal::{KjDocument, KjEntry, KjEpisode, KjRecord, Privacy, SYNTHETIC_AUTHOR},
    records::{Organisation, OrganisationKind, Person},
};
use openssl::{base64, sha::sha1};
use rand::{
    Rng,
    seq::{IndexedRandom, index},
};
use rand_chacha::ChaCha20Rng;

use crate::{
    providers::{Batch, age},
    reference::reference,
};
use catalogue::{
    CLASSES, COVID_19, CRITICAL_ITEMS, Critical, CriticalItem, DIAGNOSES, DRUGS, INFANTS,
    INFLUENZA, OWN_NOTES, PNEUMOCOCCAL,
};
use fhir::*;

// Shares: together about 0.2 entries a person (1.1 million for norway), which keeps the norway
// load within a minute: every entry costs the single writer about 11 µs (measured: 0.33 entries a
// person took the load from 47 s to 68 s). Real records hold far more; these are the kinds.
// Where a share grows with age it is (at birth, added per year of age).
/// Critical information, about 4 % overall: allergies are found and implants put in with age.
const CRITICAL: (f64, f64) = (0.027, 0.0004);
/// Of those with critical information, the share with a second item.
const SECOND_CRITICAL: f64 = 0.2;
/// Without critical information, the share for whom "none known" was registered.
const NIL_KNOWN: f64 = 0.02;
/// Adults who named a next of kin (5 %).
const NEXT_OF_KIN: f64 = 0.05;
/// Persons of 16 and over who wrote something about themselves.
const OWN: f64 = 0.01;
/// Medicines dispensed in the last three years, about 3 % overall (the old take the most);
/// far below the real share, which would take most of the budget.
const MEDICATION: (f64, f64) = (0.008, 0.0007);
/// Chance of each further dispensing, up to three: refills are common but the budget is tight.
const ANOTHER_DISPENSING: f64 = 0.2;
/// Those of 65 and over with last season's influenza vaccination registered here (a part of
/// the programme's coverage, for the budget).
const FLU_ELDERLY: f64 = 0.25;
/// Everyone else with one vaccination registered: risk groups, and infants' programme doses.
const VACCINATED_OTHERS: f64 = 0.01;
/// A hospital contact in the last three years, about 4 % overall and rising with age.
const CONTACT: (f64, f64) = (0.025, 0.00045);
/// Of the contacts, those still in hospital: 0.3 % of everyone, the treatment relations of now.
const ONGOING: f64 = 0.075;
/// Finished inpatient stays whose discharge summary is shared.
const DISCHARGE_SUMMARY: f64 = 0.3;
/// Discharge summaries labelled restricted (R), which an emergency access does not show.
const RESTRICTED_DOCUMENT: f64 = 0.1;
/// Records restricted and reserved, per 100,000 persons (0.1 % and 0.05 %).
const RESTRICTED: u32 = 100;
const RESERVED: u32 = 50;
/// One watched record (a public figure) per this many persons.
const WATCHED_PER: usize = 50_000;

/// Kjernejournal opened in 2013; nothing was registered before.
const OPENED: NaiveDate = NaiveDate::from_ymd_opt(2013, 1, 1).expect("a date");
const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

/// Fills the records of `batch.persons` and returns those drawn for a hospital contact, for
/// the county's step. `step` counts the steps of the country in the order they are made; the
/// first municipality has at least one watched record, so that even the smallest country has one.
pub fn records(
    batch: &mut Batch,
    rng: &mut ChaCha20Rng,
    as_of: NaiveDate,
    step: u16,
) -> Vec<Fodselsnummer> {
    let Batch {
        persons,
        organisations,
        kj_entries,
        kj_records,
        ..
    } = batch;
    let pharmacies: Vec<&Organisation> = organisations
        .iter()
        .filter(|o| o.kind == OrganisationKind::Pharmacy)
        .collect();
    let watched = watched(persons, rng, as_of, step == 0);
    let mut out = Entries::new(rng, kj_entries, as_of, step);
    let mut patients = Vec::new();
    // Households are made one at a time, so a household is a run of people at one address.
    for household in persons.chunk_by(|a, b| a.address == b.address) {
        for person in household {
            let (nin, age) = (person.nin, age(person.nin, as_of) as u32);
            let born = nin.birth_date();
            let critical = if out.rises(CRITICAL, age) {
                1 + usize::from(out.rng.random_bool(SECOND_CRITICAL))
            } else {
                0
            };
            if critical > 0 {
                let fitting = |c: &CriticalItem| u32::from(c.ages.contains(&age)) * c.weight;
                for item in CRITICAL_ITEMS
                    .choose_multiple_weighted(out.rng, critical, fitting)
                    .expect("valid weights")
                {
                    out.critical(nin, item);
                }
            }
            let privacy = match out.rng.random_range(0..100_000) {
                n if n < RESERVED => Privacy::Reserved,
                n if n < RESERVED + RESTRICTED => Privacy::Restricted,
                _ => Privacy::Open,
            };
            let nil_known = critical == 0 && out.rng.random_bool(NIL_KNOWN);
            let is_watched = watched.contains(&nin);
            if nil_known || is_watched || privacy != Privacy::Open {
                let updated = out.since(born);
                kj_records.push(KjRecord {
                    nin,
                    privacy,
                    nil_known_at: nil_known.then_some(updated),
                    watched: is_watched,
                    updated,
                });
            }
            if age >= 18 && out.rng.random_bool(NEXT_OF_KIN) {
                out.next_of_kin(person, household);
            }
            if age >= 16 && out.rng.random_bool(OWN) {
                out.own(nin);
            }
            if !pharmacies.is_empty() && out.rises(MEDICATION, age) {
                let pharmacy = *pharmacies.choose(out.rng).expect("a pharmacy");
                out.dispense(nin, age, pharmacy);
                for _ in 0..2 {
                    if !out.rng.random_bool(ANOTHER_DISPENSING) {
                        break;
                    }
                    out.dispense(nin, age, pharmacy);
                }
            }
            out.vaccinate(nin, age);
            if out.rises(CONTACT, age) {
                patients.push(nin);
            }
        }
    }
    patients
}

/// The hospital contacts of `patients` at the county's hospitals in `batch`: an encounter each,
/// with the episode it opens (a few are still in hospital), and for some inpatient stays the
/// discharge summary.
pub fn contacts(
    batch: &mut Batch,
    rng: &mut ChaCha20Rng,
    as_of: NaiveDate,
    step: u16,
    patients: &[Fodselsnummer],
) {
    let Batch {
        organisations,
        kj_entries,
        kj_documents,
        kj_episodes,
        ..
    } = batch;
    let hospitals: Vec<&Organisation> = organisations
        .iter()
        .filter(|o| o.kind == OrganisationKind::Hospital)
        .collect();
    let mut out = Entries::new(rng, kj_entries, as_of, step);
    for &nin in patients {
        let Some(&hospital) = hospitals.choose(out.rng) else {
            return;
        };
        let ongoing = out.rng.random_bool(ONGOING);
        // Those still in hospital were admitted: inpatient, the second class.
        let class = if ongoing {
            &CLASSES[1]
        } else {
            CLASSES
                .choose_weighted(out.rng, |c| c.weight)
                .expect("valid weights")
        };
        let (start, end) = if ongoing {
            (out.between(out.now - 10 * DAY, out.now), None)
        } else {
            let minutes = out.rng.random_range(class.minutes.clone());
            // Ended by the day before the country's date; outpatients come in the daytime.
            let mut start = out.between(out.now - 3 * 365 * DAY, out.now - DAY - minutes * MINUTE);
            if class.code == "AMB" {
                start = start / DAY * DAY + out.rng.random_range(7 * 60..15 * 60) * MINUTE;
            }
            (start, Some(start + minutes * MINUTE))
        };
        let id = out.id();
        let encounter = Resource::Encounter {
            id: &id,
            status: if ongoing { "in-progress" } else { "finished" },
            class: Coding {
                system: ACT_CODE,
                code: class.code,
                display: class.display,
            },
            subject: patient(nin),
            period: Period {
                start: instant(start),
                end: end.map(instant),
            },
            service_provider: organisation(hospital),
        };
        out.add(nin, start, encounter);
        kj_episodes.push(KjEpisode {
            entry_id: id.clone(),
            nin,
            orgnr: hospital.orgnr,
            start_at: start,
            end_at: end,
        });
        if let Some(end) = end
            && class.code == "IMP"
            && out.rng.random_bool(DISCHARGE_SUMMARY)
        {
            let age = age(nin, as_of) as u32;
            kj_documents.push(out.discharge_summary(nin, age, hospital, &id, start, end));
        }
    }
}

/// The persons of a municipality whose records are watched: adults, one per `WATCHED_PER`.
fn watched(
    persons: &[Person],
    rng: &mut ChaCha20Rng,
    as_of: NaiveDate,
    first: bool,
) -> Vec<Fodselsnummer> {
    let adults: Vec<Fodselsnummer> = persons
        .iter()
        .map(|p| p.nin)
        .filter(|&nin| age(nin, as_of) >= 18)
        .collect();
    let count = ((persons.len() + WATCHED_PER / 2) / WATCHED_PER)
        .max(usize::from(first))
        .min(adults.len());
    index::sample(rng, adults.len(), count)
        .into_iter()
        .map(|i| adults[i])
        .collect()
}

/// One step's entries, drawn from its stream.
struct Entries<'a> {
    rng: &'a mut ChaCha20Rng,
    entries: &'a mut Vec<KjEntry>,
    as_of: NaiveDate,
    /// The country's date at midnight (UTC), in milliseconds.
    now: i64,
    step: u16,
    ids: u32,
}

impl<'a> Entries<'a> {
    fn new(
        rng: &'a mut ChaCha20Rng,
        entries: &'a mut Vec<KjEntry>,
        as_of: NaiveDate,
        step: u16,
    ) -> Self {
        Self {
            rng,
            entries,
            as_of,
            now: millis(as_of),
            step,
            ids: 0,
        }
    }

    /// A new resource id, after every id made before it (see the module's notes).
    fn id(&mut self) -> String {
        let mut bytes: [u8; 16] = self.rng.random();
        bytes[..2].copy_from_slice(&self.step.to_be_bytes());
        bytes[2..6].copy_from_slice(&self.ids.to_be_bytes());
        self.ids += 1;
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn add(&mut self, nin: Fodselsnummer, recorded: i64, resource: Resource) {
        let (section, resource_type, id) = resource.entry();
        self.entries.push(KjEntry {
            id: id.to_owned(),
            nin,
            section,
            resource_type,
            author: SYNTHETIC_AUTHOR.into(),
            recorded,
            resource: serde_json::to_string(&resource).expect("a resource serialises"),
        });
    }

    fn rises(&mut self, (at_birth, per_year): (f64, f64), age: u32) -> bool {
        self.rng
            .random_bool((at_birth + per_year * f64::from(age)).min(1.0))
    }

    /// An instant to the minute from `from` to `to` (`from` if the span is empty).
    fn between(&mut self, from: i64, to: i64) -> i64 {
        from + self.rng.random_range(0..=((to - from) / MINUTE).max(0)) * MINUTE
    }

    /// An instant from `day` (or Kjernejournal's opening, if later) to the country's date.
    fn since(&mut self, day: NaiveDate) -> i64 {
        let from = millis(day.max(OPENED)).min(self.now);
        self.between(from, self.now)
    }

    fn critical(&mut self, nin: Fodselsnummer, item: &CriticalItem) {
        let id = self.id();
        let recorded = self.since(nin.birth_date());
        let code = concept(SNOMED, item.code, item.display, item.text);
        let resource = match item.kind {
            Critical::Allergy(category) => Resource::AllergyIntolerance {
                id: &id,
                clinical_status: coded(ALLERGY_CLINICAL, "active"),
                verification_status: coded(ALLERGY_VERIFICATION, "confirmed"),
                kind: "allergy",
                category: [category],
                criticality: "high",
                code,
                patient: patient(nin),
                recorded_date: instant(recorded),
                reaction: [Reaction {
                    manifestation: [concept(SNOMED, "39579001", "Anaphylaxis", "")],
                    severity: "severe",
                }],
            },
            Critical::Condition(critical_type) => Resource::Condition {
                id: &id,
                clinical_status: coded(CONDITION_CLINICAL, "active"),
                verification_status: coded(CONDITION_VERIFICATION, "confirmed"),
                category: [
                    coded(CONDITION_CATEGORY, "problem-list-item"),
                    coded("urn:helsenett:kjernejournal:critical-type", critical_type),
                ],
                code,
                subject: patient(nin),
                recorded_date: instant(recorded),
            },
            Critical::Implant(note) => Resource::Device {
                id: &id,
                status: "active",
                kind: code,
                patient: patient(nin),
                note: [Text { text: note }],
            },
        };
        self.add(nin, recorded, resource);
    }

    /// The closest relative in the household (spouse, partner, parent, adult child), or else a
    /// sibling or friend living elsewhere, who is known here only by name and number.
    fn next_of_kin(&mut self, person: &Person, household: &[Person]) {
        let relative = household
            .iter()
            .filter_map(|other| relation(person, other, self.as_of).map(|r| (r, other)))
            .min_by_key(|(r, _)| r.0);
        let (code, display, given, family) = match relative {
            Some(((_, code, display), other)) => (
                code,
                display,
                other.given_name.clone(),
                other.family_name.clone(),
            ),
            None => {
                let names = reference();
                let given = if self.rng.random_bool(0.5) {
                    &names.female_names
                } else {
                    &names.male_names
                };
                let given = given.choose(self.rng).expect("names").clone();
                if self.rng.random_bool(0.4) {
                    ("SIB", "sibling", given, person.family_name.clone())
                } else {
                    let family = names.family_names.choose(self.rng).expect("names");
                    ("FRND", "unrelated friend", given, family.clone())
                }
            }
        };
        let id = self.id();
        let recorded = self.since(person.nin.birth_date() + Months::new(12 * 18));
        let mobile = format!("+47 4{:07}", self.rng.random_range(0..10_000_000));
        let resource = Resource::RelatedPerson {
            id: &id,
            active: true,
            patient: patient(person.nin),
            relationship: [concept(ROLE, code, display, "")],
            name: [HumanName {
                family: &family,
                given: given.split(' ').collect(),
            }],
            telecom: [ContactPoint {
                system: "phone",
                value: mobile,
                usage: "mobile",
            }],
        };
        self.add(person.nin, recorded, resource);
    }

    fn own(&mut self, nin: Fodselsnummer) {
        let id = self.id();
        let recorded = self.since(nin.birth_date() + Months::new(12 * 16));
        let text = *OWN_NOTES.choose(self.rng).expect("notes");
        let resource = Resource::Observation {
            id: &id,
            status: "final",
            category: [coded(OBSERVATION_CATEGORY, "survey")],
            code: Text {
                text: "Egne opplysninger",
            },
            subject: patient(nin),
            effective_date_time: instant(recorded),
            performer: [Reference {
                kind: "Patient",
                ..patient(nin)
            }],
            value_string: text,
        };
        self.add(nin, recorded, resource);
    }

    fn dispense(&mut self, nin: Fodselsnummer, age: u32, pharmacy: &Organisation) {
        let drug = DRUGS
            .choose_weighted(self.rng, |d| u32::from(d.ages.contains(&age)))
            .expect("a drug for every age");
        let id = self.id();
        let three_years_ago = self.as_of - Days::new(3 * 365);
        let handed_over = self.since(nin.birth_date().max(three_years_ago));
        let resource = Resource::MedicationDispense {
            id: &id,
            status: "completed",
            medication_codeable_concept: concept(ATC, drug.atc, drug.substance, drug.text),
            subject: patient(nin),
            performer: [Performer {
                actor: organisation(pharmacy),
            }],
            quantity: Quantity {
                value: self.rng.random_range(1..=2),
                unit: "pakning",
            },
            when_handed_over: instant(handed_over),
            dosage_instruction: [Text { text: drug.dosage }],
        };
        self.add(nin, handed_over, resource);
    }

    /// Influenza for half the old in the last season; one vaccination for a few others.
    fn vaccinate(&mut self, nin: Fodselsnummer, age: u32) {
        let born = nin.birth_date();
        let (vaccine, given) = if age >= 65 {
            if !self.rng.random_bool(FLU_ELDERLY) {
                return;
            }
            (INFLUENZA, self.flu_season())
        } else {
            if !self.rng.random_bool(VACCINATED_OTHERS) {
                return;
            }
            if age < 2 {
                // The latest dose of the programme's 3, 5 and 12 months that was due.
                let Some(due) = [12, 5, 3]
                    .into_iter()
                    .map(|m| born + Months::new(m))
                    .find(|&due| due < self.as_of)
                else {
                    return;
                };
                (INFANTS, self.between(millis(due), self.now))
            } else {
                match self.rng.random_range(0..20) {
                    0..12 => (INFLUENZA, self.flu_season()),
                    12..17 => (COVID_19, self.flu_season()),
                    _ => (
                        PNEUMOCOCCAL,
                        self.since(born.max(self.as_of - Days::new(5 * 365))),
                    ),
                }
            }
        };
        let id = self.id();
        let (atc, substance, text) = vaccine;
        let resource = Resource::Immunization {
            id: &id,
            status: "completed",
            vaccine_code: concept(ATC, atc, substance, text),
            patient: patient(nin),
            occurrence_date_time: instant(given),
            primary_source: true,
        };
        self.add(nin, given, resource);
    }

    /// An instant in the last season's vaccination campaign (October to December).
    fn flu_season(&mut self) -> i64 {
        let as_of = self.as_of;
        let year = if as_of.month() >= 10 {
            as_of.year()
        } else {
            as_of.year() - 1
        };
        let opened = NaiveDate::from_ymd_opt(year, 10, 1).expect("a date");
        let closed = millis(opened + Days::new(92)).min(self.now);
        self.between(millis(opened), closed)
    }

    /// A short plain-text discharge summary, marked synthetic, shared as a DocumentReference.
    fn discharge_summary(
        &mut self,
        nin: Fodselsnummer,
        age: u32,
        hospital: &Organisation,
        encounter: &str,
        start: i64,
        end: i64,
    ) -> KjDocument {
        let (diagnosis, course, _) = DIAGNOSES
            .choose_weighted(self.rng, |d| u32::from(d.2.contains(&age)))
            .expect("a diagnosis for every age");
        let text = format!(
            "SYNTETISK EPIKRISE - syntetiske testdata, ingen virkelig person (synthetic test data)\n\
             {}\nInnlagt {}, utskrevet {}.\nDiagnose: {diagnosis}.\nForløp: {course}\n\
             Videre plan: Kontroll hos fastlege om to til fire uker.\n",
            hospital.name,
            day(start),
            day(end),
        );
        let data = text.into_bytes();
        let date = (end + self.rng.random_range(30..48 * 60) * MINUTE).min(self.now);
        let label = if self.rng.random_bool(RESTRICTED_DOCUMENT) {
            "R"
        } else {
            "N"
        };
        let id = self.id();
        let resource = Resource::DocumentReference {
            id: &id,
            status: "current",
            kind: concept("http://loinc.org", "18842-5", "Discharge summary", ""),
            subject: patient(nin),
            date: instant(date),
            author: [organisation(hospital)],
            security_label: [coded(CONFIDENTIALITY, label)],
            content: [Content {
                attachment: Attachment {
                    content_type: DOCUMENT_TYPE,
                    url: format!("Binary/{id}"),
                    size: data.len(),
                    hash: base64::encode_block(&sha1(&data)),
                    title: "Epikrise",
                    creation: instant(date),
                },
            }],
            context: Context {
                encounter: [Link {
                    // As the served Bundle names its entries (fullUrl).
                    reference: format!("urn:uuid:{encounter}"),
                }],
            },
        };
        self.add(nin, date, resource);
        KjDocument {
            entry_id: id,
            content_type: DOCUMENT_TYPE.into(),
            data,
        }
    }
}

const DOCUMENT_TYPE: &str = "text/plain; charset=utf-8";

/// How `other` in `person`'s household stands to them as next of kin: a rank (lower is
/// closer), the v3 RoleCode and its display. Siblings and children under 18 are not chosen.
fn relation(
    person: &Person,
    other: &Person,
    as_of: NaiveDate,
) -> Option<(u8, &'static str, &'static str)> {
    let parent_of = |a: &Person, b: &Person| b.mother == Some(a.nin) || b.father == Some(a.nin);
    let adult = age(other.nin, as_of) >= 18;
    let siblings = (person.mother.is_some() && person.mother == other.mother)
        || (person.father.is_some() && person.father == other.father);
    if other.nin == person.nin || siblings {
        None
    } else if person.spouse == Some(other.nin) {
        Some((0, "SPS", "spouse"))
    } else if parent_of(other, person) {
        Some(match other.nin.sex() {
            Sex::Female => (2, "MTH", "mother"),
            Sex::Male => (2, "FTH", "father"),
        })
    } else if parent_of(person, other) {
        adult.then_some((3, "CHILD", "child"))
    } else {
        // Another adult of the household who is no parent, child or sibling: a partner.
        adult.then_some((1, "DOMPART", "domestic partner"))
    }
}

fn millis(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_millis()
}

/// A FHIR dateTime in UTC to the second, such as `2025-03-04T10:15:00Z`.
fn instant(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis)
        .expect("a date the country can have")
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn day(millis: i64) -> String {
    instant(millis)[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use helsenett_core::{NumberKind, Organisasjonsnummer, fhir::person_system};
    use helsenett_store::kjernejournal::Section;
    use rand::SeedableRng;
    use serde_json::Value;

    use super::*;
    use crate::people::{NinAllocator, PeopleMaker};

    const AS_OF: NaiveDate = NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date");

    fn org(n: u32, kind: OrganisationKind, name: &str, like: &Person) -> Organisation {
        Organisation {
            orgnr: Organisasjonsnummer::synthetic(n).expect("an orgnr"),
            name: name.into(),
            kind,
            parent: None,
            address: like.address.clone(),
        }
    }

    /// A municipality of 100,000 people in households, with a pharmacy, as the country's first
    /// step, and its county's step with two hospitals.
    fn steps() -> (Batch, Batch) {
        let reference = reference();
        let bergen = reference.municipalities.iter().find(|m| m.name == "Bergen");
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let persons = PeopleMaker {
            rng: &mut rng,
            reference,
            nins: &mut NinAllocator::default(),
            as_of: AS_OF,
            municipality: bergen.expect("Bergen"),
        }
        .households(100_000);
        let pharmacy = org(1, OrganisationKind::Pharmacy, "Torget apotek", &persons[0]);
        let hospitals = ["Bergen sykehus", "Voss sykehus"]
            .iter()
            .zip(2..)
            .map(|(name, n)| org(n, OrganisationKind::Hospital, name, &persons[0]))
            .collect();
        let mut municipality = Batch {
            persons,
            organisations: vec![pharmacy],
            ..Batch::default()
        };
        let patients = records(&mut municipality, &mut rng, AS_OF, 0);
        let mut county = Batch {
            organisations: hospitals,
            ..Batch::default()
        };
        contacts(&mut county, &mut rng, AS_OF, 1, &patients);
        (municipality, county)
    }

    fn between(what: &str, share: f64, low: f64, high: f64) {
        assert!((low..high).contains(&share), "{what}: {share}");
    }

    #[test]
    fn records_are_about_as_common_as_in_norway_within_the_budget() {
        let (municipality, county) = steps();
        let persons = &municipality.persons;
        let all = persons.len() as f64;
        let entries = municipality.kj_entries.iter().chain(&county.kj_entries);
        let per_person = entries.clone().count() as f64 / all;
        assert!(per_person < 0.22, "{per_person} entries a person");
        let mut with: HashMap<Section, HashSet<Fodselsnummer>> = HashMap::new();
        for e in entries {
            with.entry(e.section).or_default().insert(e.nin);
        }
        let share = |section: Section| with[&section].len() as f64 / all;
        let adults = persons.iter().filter(|p| age(p.nin, AS_OF) >= 18).count() as f64;
        between("critical", share(Section::Critical), 0.03, 0.05);
        let next_of_kin = share(Section::NextOfKin) * all / adults;
        between("next of kin, of adults", next_of_kin, 0.035, 0.065);
        between("own", share(Section::Own), 0.005, 0.012);
        between("medication", share(Section::Medication), 0.022, 0.04);
        between("contact", share(Section::Contact), 0.03, 0.05);
        let old: HashSet<_> = persons
            .iter()
            .filter(|p| age(p.nin, AS_OF) >= 65)
            .map(|p| p.nin)
            .collect();
        let vaccinated = &with[&Section::Vaccination];
        let old_vaccinated = vaccinated.intersection(&old).count() as f64;
        between(
            "influenza, of the old",
            old_vaccinated / old.len() as f64,
            0.2,
            0.3,
        );
        let others = (vaccinated.len() as f64 - old_vaccinated) / (all - old.len() as f64);
        between("vaccinated, of the rest", others, 0.005, 0.015);

        let records = &municipality.kj_records;
        let count = |f: &dyn Fn(&KjRecord) -> bool| records.iter().filter(|r| f(r)).count();
        let nil_known = count(&|r| r.nil_known_at.is_some()) as f64 / all;
        between("none known", nil_known, 0.012, 0.028);
        let restricted = count(&|r| r.privacy == Privacy::Restricted) as f64 / all;
        between("restricted", restricted, 0.0005, 0.0018);
        let reserved = count(&|r| r.privacy == Privacy::Reserved) as f64 / all;
        between("reserved", reserved, 0.0001, 0.001);
        assert_eq!(count(&|r| r.watched), 2, "one in 50,000");
        let critical = &with[&Section::Critical];
        assert_eq!(
            count(&|r| r.nil_known_at.is_some() && critical.contains(&r.nin)),
            0
        );

        let ongoing = county.kj_episodes.iter().filter(|e| e.end_at.is_none());
        between(
            "still in hospital",
            ongoing.count() as f64 / all,
            0.0015,
            0.0045,
        );
        let stays = county
            .kj_entries
            .iter()
            .filter(|e| e.resource.contains(r#""code":"IMP""#) && e.resource.contains(r#""end""#));
        let summaries = county.kj_documents.len() as f64 / stays.count() as f64;
        between("discharge summaries, of stays", summaries, 0.22, 0.38);
    }

    #[test]
    fn every_resource_is_its_persons_and_every_episode_and_document_has_its_entry() {
        let (municipality, county) = steps();
        let entries: Vec<&KjEntry> = municipality
            .kj_entries
            .iter()
            .chain(&county.kj_entries)
            .collect();
        for (i, e) in entries.iter().enumerate() {
            assert!(
                e.section.resource_types().contains(&e.resource_type),
                "{e:?}"
            );
            let resource: Value = serde_json::from_str(&e.resource).expect("JSON");
            assert_eq!(
                (&resource["resourceType"], &resource["id"]),
                (&e.resource_type.into(), &e.id.as_str().into())
            );
            let element = if resource["patient"].is_null() {
                "subject"
            } else {
                "patient"
            };
            let identifier = &resource[element]["identifier"];
            assert_eq!(identifier["value"], e.nin.to_string());
            assert_eq!(identifier["system"], person_system(&e.nin));
            assert!(
                i == 0 || entries[i - 1].id < e.id,
                "ids ascend in the order they are written"
            );
            assert!(
                e.recorded <= millis(AS_OF),
                "recorded by the country's date"
            );
        }
        assert!(
            entries.iter().any(|e| e.nin.kind() == NumberKind::DNummer),
            "D-nummer holders too"
        );

        let by_id: HashMap<&str, &KjEntry> = entries.iter().map(|e| (e.id.as_str(), *e)).collect();
        let hospitals: HashSet<_> = county.organisations.iter().map(|o| o.orgnr).collect();
        for episode in &county.kj_episodes {
            let encounter = by_id[episode.entry_id.as_str()];
            assert_eq!(
                (encounter.resource_type, encounter.nin),
                ("Encounter", episode.nin)
            );
            assert!(hospitals.contains(&episode.orgnr));
            let ended = |end: i64| episode.start_at < end && end < millis(AS_OF);
            assert!(episode.end_at.is_none_or(ended));
        }
        for document in &county.kj_documents {
            let entry = by_id[document.entry_id.as_str()];
            assert_eq!(entry.resource_type, "DocumentReference");
            let resource: Value = serde_json::from_str(&entry.resource).expect("JSON");
            let attachment = &resource["content"][0]["attachment"];
            assert_eq!(attachment["size"], document.data.len());
            assert_eq!(
                attachment["hash"],
                base64::encode_block(&sha1(&document.data))
            );
            assert_eq!(attachment["url"], format!("Binary/{}", entry.id));
            assert!(String::from_utf8_lossy(&document.data).starts_with("SYNTETISK"));
        }
    }
}
