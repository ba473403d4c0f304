//! The population register's daily changes (`helsenett synth events --days N`): births, deaths,
//! moves, name changes, emigration and new address protection, at Norway's yearly rates scaled
//! to the country. Each day is one transaction that updates the persons and appends their
//! events to the feed, so a follower sees a whole day or none of it.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate};
use helsenett_core::{Fodselsnummer, NumberKind, Sex};
use helsenett_store::{
    Store, StoreError, Writer,
    gp::EndReason,
    records::{
        AddressProtection, GpListMember, Person, PersonEvent, PersonEventType, PersonId,
        PersonStatus,
    },
    with_pool, with_tx,
};
use rand::{Rng, seq::IndexedRandom};
use rand_chacha::ChaCha20Rng;
use serde_json::json;

use crate::{SynthError, people::NinAllocator, reference::reference, seeded_rng};

/// Changes per person per day, from Norway's yearly figures (births 52,000, deaths 43,000,
/// relocations about 600,000, name changes 25,000, emigrations 30,000, new address protection
/// about 1,000) over 5.5 million people and 365 days.
const BIRTHS: f64 = 2.6e-5;
const DEATHS: f64 = 2.1e-5;
const MOVES: f64 = 3.0e-4;
const NAME_CHANGES: f64 = 1.25e-5;
const EMIGRATIONS: f64 = 1.5e-5;
const PROTECTIONS: f64 = 5.0e-7;

/// What a run of days did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    pub days: u32,
    pub first_day: Option<NaiveDate>,
    pub births: u32,
    pub deaths: u32,
    pub moves: u32,
    pub name_changes: u32,
    pub emigrations: u32,
    pub protections: u32,
}

impl Changes {
    pub fn events(&self) -> u32 {
        self.births
            + self.deaths
            + self.moves
            + self.name_changes
            + self.emigrations
            + self.protections
    }
}

/// Makes `days` days of changes after the last day the feed holds (or the country's date),
/// calling `progress` after each day.
pub async fn run(
    store: &Store,
    days: u32,
    mut progress: impl FnMut(u32),
) -> Result<Changes, SynthError> {
    let country = store.country_info().await?.ok_or(SynthError::NoCountry)?;
    let (last_day, population) =
        with_pool!(store, pool => sqlx::query_as::<_, (Option<String>, i64)>(
        "SELECT (SELECT last_day FROM person_event_day), \
                (SELECT COUNT(*) FROM person WHERE status IN ('Resident', 'Temporary'))",
    )
    .fetch_one(pool)
    .await)
        .map_err(StoreError::from)?;
    let mut day = match last_day {
        Some(d) => d
            .parse::<NaiveDate>()
            .map_err(|e| StoreError::Corrupt(format!("person_event_day.last_day: {e}")))?,
        None => country.as_of,
    };
    let mut changes = Changes::default();
    let mut population = population.max(1) as f64;
    for n in 0..days {
        day = day + Days::new(1);
        changes.first_day.get_or_insert(day);
        let mut rng = seeded_rng(country.seed, &format!("events {day}"));
        let made = one_day(store, &mut rng, day, population).await?;
        population += f64::from(made.births) - f64::from(made.deaths + made.emigrations);
        changes.days += 1;
        changes.births += made.births;
        changes.deaths += made.deaths;
        changes.moves += made.moves;
        changes.name_changes += made.name_changes;
        changes.emigrations += made.emigrations;
        changes.protections += made.protections;
        progress(n + 1);
    }
    Ok(changes)
}

/// How many of something happen today: the expectation's whole part, plus one with the
/// probability of its fraction.
fn how_many(rng: &mut ChaCha20Rng, rate: f64, population: f64) -> u32 {
    let expected = rate * population;
    expected.floor() as u32 + u32::from(rng.random_bool(expected.fract()))
}

/// The persons a day touches, each once, as they end the day.
struct Day {
    date: NaiveDate,
    touched: BTreeMap<Fodselsnummer, Person>,
    born: Vec<(Person, i64)>,
    events: Vec<(Fodselsnummer, PersonEventType, Option<String>)>,
    made: Changes,
}

async fn one_day(
    store: &Store,
    rng: &mut ChaCha20Rng,
    date: NaiveDate,
    population: f64,
) -> Result<Changes, SynthError> {
    let mut day = Day {
        date,
        touched: BTreeMap::new(),
        born: Vec::new(),
        events: Vec::new(),
        made: Changes::default(),
    };
    let mut nins = NinAllocator::default();
    for _ in 0..how_many(rng, BIRTHS, population) {
        let Some(mother) = day.living(store, rng, 20..=44, Some(Sex::Female)).await? else {
            continue;
        };
        let sex = if rng.random_bool(0.5) {
            Sex::Female
        } else {
            Sex::Male
        };
        let mut nin = nins.allocate(date, NumberKind::Fodselsnummer, sex);
        // A number given on an earlier run for the same day is skipped.
        while store.person(nin).await?.is_some() {
            nin = nins.allocate(date, NumberKind::Fodselsnummer, sex);
        }
        let names = match sex {
            Sex::Female => &reference().female_names,
            Sex::Male => &reference().male_names,
        };
        let father = match mother.spouse {
            Some(spouse) if spouse.sex() == Sex::Male => Some(spouse),
            _ => None,
        };
        let child = Person {
            nin,
            id: PersonId(rng.random()),
            given_name: names.choose(rng).expect("names").clone(),
            family_name: mother.family_name.clone(),
            address: mother.address.clone(),
            mother: Some(mother.nin),
            father,
            spouse: None,
            status: PersonStatus::Resident,
            protection: mother.protection,
            deceased: None,
            last_event: 0,
        };
        // A newborn is put on the mother's GP's list, as the municipality does in Norway.
        let list = with_pool!(store, pool => sqlx::query_scalar::<_, i64>(
            "SELECT list_id FROM gp_list_member WHERE nin = $1",
        )
        .bind(mother.nin.to_string())
        .fetch_optional(pool)
        .await)
        .map_err(StoreError::from)?;
        day.events
            .push((nin, PersonEventType::PersonIsCreated, None));
        day.born.push((child, list.unwrap_or(0)));
        day.made.births += 1;
    }
    for _ in 0..how_many(rng, DEATHS, population) {
        if let Some(mut person) = day.living(store, rng, 60..=99, None).await? {
            person.status = PersonStatus::Deceased;
            person.deceased = Some(date);
            day.change(person, PersonEventType::PersonIsDeceased, None);
            day.made.deaths += 1;
        }
    }
    for _ in 0..how_many(rng, MOVES, population) {
        if let Some(mut person) = day.living(store, rng, 18..=90, None).await? {
            let previous = json!({
                "street": &*person.address.street,
                "postal_code": &*person.address.postal_code,
                "postal_place": &*person.address.postal_place,
                "municipality": &*person.address.municipality,
            });
            // Most moves are within the municipality; the rest go anywhere, weighted by people.
            let municipalities = &reference().municipalities;
            let to = if rng.random_bool(0.7) {
                municipalities
                    .iter()
                    .find(|m| *m.number == *person.address.municipality)
            } else {
                municipalities.choose_weighted(rng, |m| m.population).ok()
            };
            let Some(to) = to else { continue };
            let street = reference().street_names.choose(rng).expect("streets");
            person.address.street = format!("{street} {}", rng.random_range(1..=140)).into();
            person.address.postal_code = to.postcode.clone();
            person.address.postal_place = to.postplace.clone();
            person.address.municipality = to.number.clone();
            day.change(
                person,
                PersonEventType::ChangeInResidentialAddress,
                Some(previous.to_string()),
            );
            day.made.moves += 1;
        }
    }
    for _ in 0..how_many(rng, NAME_CHANGES, population) {
        if let Some(mut person) = day.living(store, rng, 20..=70, None).await? {
            let previous = json!({
                "given_name": &*person.given_name,
                "family_name": &*person.family_name,
            });
            let family = reference()
                .family_names
                .choose(rng)
                .expect("family names")
                .clone();
            if family == person.family_name {
                continue;
            }
            person.family_name = family;
            day.change(
                person,
                PersonEventType::ChangeInName,
                Some(previous.to_string()),
            );
            day.made.name_changes += 1;
        }
    }
    for _ in 0..how_many(rng, EMIGRATIONS, population) {
        if let Some(mut person) = day.living(store, rng, 20..=60, None).await? {
            person.status = PersonStatus::Emigrated;
            day.change(person, PersonEventType::PersonIsEmigrated, None);
            day.made.emigrations += 1;
        }
    }
    for _ in 0..how_many(rng, PROTECTIONS, population) {
        if let Some(mut person) = day.living(store, rng, 18..=70, None).await? {
            if person.protection != AddressProtection::Unclassified {
                continue;
            }
            person.protection = AddressProtection::Confidential;
            day.change(person, PersonEventType::ChangeInAddressProtection, None);
            day.made.protections += 1;
        }
    }
    let made = day.made;
    day.write(store).await?;
    Ok(made)
}

impl Day {
    /// A random living person of an age in `ages` (and of `sex`), as changed so far today;
    /// `None` after a few misses (a small country has gaps).
    async fn living(
        &self,
        store: &Store,
        rng: &mut ChaCha20Rng,
        ages: std::ops::RangeInclusive<u32>,
        sex: Option<Sex>,
    ) -> Result<Option<Person>, StoreError> {
        for _ in 0..20 {
            let age = rng.random_range(ages.clone());
            let born = self.date - Days::new(u64::from(age) * 365 + rng.random_range(0..365));
            // Numbers begin DDMMYY (synthetic months + 80): seek to that date, or the next
            // one anyone was born on.
            let from = format!(
                "{:02}{:02}{:02}",
                born.day(),
                born.month() + 80,
                born.year() % 100
            );
            let nin = with_pool!(store, pool => sqlx::query_scalar::<_, String>(
                "SELECT nin FROM person WHERE nin >= $1 AND status IN ('Resident', 'Temporary') \
                 ORDER BY nin LIMIT 1",
            )
            .bind(from)
            .fetch_optional(pool)
            .await)?;
            let Some(nin) = nin else { continue };
            let nin = Fodselsnummer::parse(&nin)
                .map_err(|e| StoreError::Corrupt(format!("person.nin: {e}")))?;
            let person = match self.touched.get(&nin) {
                Some(p) => Some(p.clone()),
                None => store.person(nin).await?,
            };
            let Some(person) = person else { continue };
            let age_now = self.date.years_since(nin.birth_date()).unwrap_or(0);
            let alive = matches!(
                person.status,
                PersonStatus::Resident | PersonStatus::Temporary
            );
            if alive && ages.contains(&age_now) && sex.is_none_or(|s| s == nin.sex()) {
                return Ok(Some(person));
            }
        }
        Ok(None)
    }

    fn change(&mut self, person: Person, kind: PersonEventType, previous: Option<String>) {
        self.events.push((person.nin, kind, previous));
        self.touched.insert(person.nin, person);
    }

    /// Writes the day in one transaction: the feed's next numbers, new and changed persons,
    /// and the GP list places of the newborn and the dead.
    async fn write(mut self, store: &Store) -> Result<(), StoreError> {
        let mut writer = store.writer().await?;
        if let Writer::Postgres(tx) = &mut writer {
            // One writer of the feed at a time, so its numbers follow commit order.
            sqlx::query("SELECT pg_advisory_xact_lock(7263)")
                .execute(&mut **tx)
                .await?;
        }
        let last = with_tx!(&mut writer, tx => sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(seq) FROM person_event",
        )
        .fetch_one(&mut **tx)
        .await)?
        .unwrap_or(0);
        let registered_at = helsenett_core::time::now_millis();
        let mut events = Vec::with_capacity(self.events.len());
        for (i, (nin, event_type, previous)) in self.events.into_iter().enumerate() {
            let seq = last + 1 + i as i64;
            if let Some(p) = self.touched.get_mut(&nin) {
                p.last_event = seq;
            }
            if let Some((p, _)) = self.born.iter_mut().find(|(p, _)| p.nin == nin) {
                p.last_event = seq;
            }
            events.push(PersonEvent {
                seq,
                nin,
                event_type,
                effective_on: self.date,
                registered_at,
                previous,
            });
        }
        let (born, lists): (Vec<Person>, Vec<i64>) = self.born.into_iter().unzip();
        writer.insert_all(&born).await?;
        let members: Vec<GpListMember> = born
            .iter()
            .zip(lists)
            .filter(|(_, list)| *list != 0)
            .map(|(p, list_id)| GpListMember {
                nin: p.nin,
                list_id,
                since: self.date,
            })
            .collect();
        writer.insert_all(&members).await?;
        for person in self.touched.values() {
            let nin = person.nin.to_string();
            with_tx!(&mut writer, tx => {
                sqlx::query(
                    "UPDATE person SET given_name = $1, family_name = $2, municipality = $3, \
                     street_address = $4, postal_code = $5, postal_place = $6, status = $7, \
                     address_protection = $8, deceased_date = $9, last_event = $10 WHERE nin = $11",
                )
                .bind(&*person.given_name)
                .bind(&*person.family_name)
                .bind(&*person.address.municipality)
                .bind(&*person.address.street)
                .bind(&*person.address.postal_code)
                .bind(&*person.address.postal_place)
                .bind(person.status.as_str())
                .bind(person.protection.as_str())
                .bind(person.deceased.map(|d| d.to_string()))
                .bind(person.last_event)
                .bind(&nin)
                .execute(&mut **tx)
                .await?;
                // The dead and the emigrated leave their GP's list, as in Fastlegeregisteret,
                // and the place goes into their GP history.
                let ended = match person.status {
                    PersonStatus::Deceased => Some(EndReason::Deceased),
                    PersonStatus::Emigrated => Some(EndReason::Emigrated),
                    PersonStatus::Resident | PersonStatus::Temporary => None,
                };
                if let Some(reason) = ended {
                    sqlx::query(
                        "INSERT INTO gp_list_history (nin, list_id, valid_from, valid_to, end_reason) \
                         SELECT nin, list_id, since, $2, $3 FROM gp_list_member WHERE nin = $1",
                    )
                    .bind(&nin)
                    .bind(self.date.to_string())
                    .bind(reason.as_str())
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query("DELETE FROM gp_list_member WHERE nin = $1")
                        .bind(&nin)
                        .execute(&mut **tx)
                        .await?;
                }
            });
        }
        writer.insert_all(&events).await?;
        with_tx!(&mut writer, tx => sqlx::query(
            "INSERT INTO person_event_day (id, last_day) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET last_day = excluded.last_day",
        )
        .bind(self.date.to_string())
        .execute(&mut **tx)
        .await
        .map(|_| ()))?;
        writer.commit().await
    }
}
