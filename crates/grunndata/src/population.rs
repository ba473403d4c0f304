//! The population register in memory: every person of the country, with the indexes look-ups
//! and searches need, as of one event of the feed. Each node loads it at start and follows the
//! feed (`person_event`) to stay current, so every node serves the same data within a second.
//!
//! A country of 5.5 million is held in about 100 bytes a person: names and places are numbers
//! into a table of shared strings, and persons are rows of one vector that the indexes point
//! into. A look-up reads a row as an [`Entry`] of borrowed strings.

use std::sync::RwLock;

use chrono::NaiveDate;
use helsenett_core::Fodselsnummer;
use helsenett_store::{
    Store, StoreError,
    records::{AddressProtection, Person, PersonId, PersonStatus, Text},
    with_pool,
};
use rustc_hash::FxHashMap;

/// Events read per poll at most.
const FOLLOW_BATCH: i64 = 10_000;

pub struct Population {
    state: RwLock<State>,
}

/// One person, compactly: strings are [`Strings`] numbers.
struct Row {
    id: [u8; 16],
    nin: Fodselsnummer,
    status: PersonStatus,
    protection: AddressProtection,
    given_name: u32,
    family_name: u32,
    street: u32,
    /// (postal code, postal place, municipality), as one number.
    place: u32,
    mother: Option<Fodselsnummer>,
    father: Option<Fodselsnummer>,
    spouse: Option<Fodselsnummer>,
    deceased: Option<NaiveDate>,
    last_event: i64,
}

/// A person as held, borrowed from the state: what look-ups and searches read, without a copy
/// or a reference count per field.
pub struct Entry<'a> {
    pub nin: Fodselsnummer,
    pub id: PersonId,
    pub given_name: &'a str,
    pub family_name: &'a str,
    pub address: AddressRef<'a>,
    pub mother: Option<Fodselsnummer>,
    pub father: Option<Fodselsnummer>,
    pub spouse: Option<Fodselsnummer>,
    pub status: PersonStatus,
    pub protection: AddressProtection,
    pub deceased: Option<NaiveDate>,
    pub last_event: i64,
}

pub struct AddressRef<'a> {
    pub street: &'a str,
    pub postal_code: &'a str,
    pub postal_place: &'a str,
    pub municipality: &'a str,
}

/// Each distinct string once, by number.
#[derive(Default)]
struct Strings {
    all: Vec<Text>,
    numbers: FxHashMap<Text, u32>,
}

impl Strings {
    fn number(&mut self, text: &Text) -> u32 {
        if let Some(&n) = self.numbers.get(text) {
            return n;
        }
        let n = self.all.len() as u32;
        self.all.push(text.clone());
        self.numbers.insert(text.clone(), n);
        n
    }

    fn get(&self, n: u32) -> &str {
        &self.all[n as usize]
    }
}

#[derive(Default)]
pub struct State {
    rows: Vec<Row>,
    strings: Strings,
    places: Vec<[u32; 3]>,
    place_numbers: FxHashMap<[u32; 3], u32>,
    by_nin: FxHashMap<Fodselsnummer, u32>,
    by_id: FxHashMap<[u8; 16], u32>,
    children: FxHashMap<Fodselsnummer, Vec<u32>>,
    by_birth: FxHashMap<NaiveDate, Vec<u32>>,
    /// Lower-cased family name to its bearers.
    by_family: FxHashMap<Box<str>, Vec<u32>>,
    /// The last event applied.
    seq: i64,
}

impl Population {
    /// Reads the whole population from the store.
    pub async fn load(store: &Store) -> Result<Population, StoreError> {
        // The feed position is read first: an event written during the load is then applied
        // again, which is harmless (applying reloads the person's row).
        let seq = last_event(store).await?;
        let count = store.person_count().await?;
        let mut state = State {
            seq,
            ..State::default()
        };
        state.rows.reserve_exact(count);
        state.by_nin.reserve(count);
        state.by_id.reserve(count);
        store.for_each_person(|person| state.insert(person)).await?;
        Ok(Population {
            state: RwLock::new(state),
        })
    }

    /// Runs `f` on the current state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Applies the events written since the last call; returns how many.
    pub async fn follow(&self, store: &Store) -> Result<usize, StoreError> {
        let after = self.read(|s| s.seq);
        let changed = with_pool!(store, pool => sqlx::query_as::<_, (i64, String)>(
            "SELECT seq, nin FROM person_event WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(FOLLOW_BATCH)
        .fetch_all(pool)
        .await)?;
        let Some(&(last, _)) = changed.last() else {
            return Ok(0);
        };
        let mut nins: Vec<String> = changed.iter().map(|(_, nin)| nin.clone()).collect();
        nins.sort_unstable();
        nins.dedup();
        let mut persons = Vec::with_capacity(nins.len());
        for nin in &nins {
            let nin = Fodselsnummer::parse(nin)
                .map_err(|e| StoreError::Corrupt(format!("person_event.nin: {e}")))?;
            if let Some(person) = store.person(nin).await? {
                persons.push(person);
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for person in persons {
            state.replace(person);
        }
        state.seq = last;
        metrics::gauge!("grunndata_population_event").set(last as f64);
        Ok(changed.len())
    }
}

async fn last_event(store: &Store) -> Result<i64, StoreError> {
    Ok(
        with_pool!(store, pool => sqlx::query_scalar::<_, Option<i64>>(
        "SELECT MAX(seq) FROM person_event",
    )
    .fetch_one(pool)
    .await)?
        .unwrap_or(0),
    )
}

impl State {
    pub fn get(&self, nin: &Fodselsnummer) -> Option<Entry<'_>> {
        self.by_nin.get(nin).map(|&i| self.entry(i))
    }

    pub fn by_id(&self, id: PersonId) -> Option<Entry<'_>> {
        self.by_id.get(&id.0.to_be_bytes()).map(|&i| self.entry(i))
    }

    pub fn children(&self, nin: &Fodselsnummer) -> Vec<Fodselsnummer> {
        self.children.get(nin).map_or_else(Vec::new, |rows| {
            rows.iter().map(|&i| self.rows[i as usize].nin).collect()
        })
    }

    pub fn born_on(&self, date: NaiveDate) -> impl Iterator<Item = Entry<'_>> {
        self.entries(self.by_birth.get(&date))
    }

    /// Bearers of a family name, compared without case.
    pub fn named(&self, family_name: &str) -> impl Iterator<Item = Entry<'_>> {
        self.entries(self.by_family.get(family_name.to_lowercase().as_str()))
    }

    pub fn all(&self) -> impl Iterator<Item = Entry<'_>> {
        (0..self.rows.len() as u32).map(|i| self.entry(i))
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The event this state is as of.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    fn entries<'a>(&'a self, rows: Option<&'a Vec<u32>>) -> impl Iterator<Item = Entry<'a>> {
        rows.into_iter().flatten().map(|&i| self.entry(i))
    }

    fn entry(&self, i: u32) -> Entry<'_> {
        let row = &self.rows[i as usize];
        let [postal_code, postal_place, municipality] = self.places[row.place as usize];
        Entry {
            nin: row.nin,
            id: PersonId(u128::from_be_bytes(row.id)),
            given_name: self.strings.get(row.given_name),
            family_name: self.strings.get(row.family_name),
            address: AddressRef {
                street: self.strings.get(row.street),
                postal_code: self.strings.get(postal_code),
                postal_place: self.strings.get(postal_place),
                municipality: self.strings.get(municipality),
            },
            mother: row.mother,
            father: row.father,
            spouse: row.spouse,
            status: row.status,
            protection: row.protection,
            deceased: row.deceased,
            last_event: row.last_event,
        }
    }

    fn row(&mut self, person: &Person) -> Row {
        let address = &person.address;
        let place = [
            self.strings.number(&address.postal_code),
            self.strings.number(&address.postal_place),
            self.strings.number(&address.municipality),
        ];
        let place = match self.place_numbers.get(&place) {
            Some(&n) => n,
            None => {
                let n = self.places.len() as u32;
                self.places.push(place);
                self.place_numbers.insert(place, n);
                n
            }
        };
        Row {
            id: person.id.0.to_be_bytes(),
            nin: person.nin,
            status: person.status,
            protection: person.protection,
            given_name: self.strings.number(&person.given_name),
            family_name: self.strings.number(&person.family_name),
            street: self.strings.number(&address.street),
            place,
            mother: person.mother,
            father: person.father,
            spouse: person.spouse,
            deceased: person.deceased,
            last_event: person.last_event,
        }
    }

    /// Adds a person not yet held.
    fn insert(&mut self, person: Person) {
        let i = self.rows.len() as u32;
        let row = self.row(&person);
        self.rows.push(row);
        self.index(i, &person);
    }

    fn index(&mut self, i: u32, person: &Person) {
        let nin = person.nin;
        self.by_nin.insert(nin, i);
        self.by_id.insert(person.id.0.to_be_bytes(), i);
        for parent in [person.mother, person.father].into_iter().flatten() {
            self.children.entry(parent).or_default().push(i);
        }
        self.by_birth.entry(nin.birth_date()).or_default().push(i);
        self.by_family
            .entry(person.family_name.to_lowercase().into())
            .or_default()
            .push(i);
    }

    /// Puts a person's new version in place of the old, keeping the indexes true.
    fn replace(&mut self, person: Person) {
        let Some(&i) = self.by_nin.get(&person.nin) else {
            self.insert(person);
            return;
        };
        let old = self.entry(i);
        let (id, parents, born) = (old.id, [old.mother, old.father], old.nin.birth_date());
        let family: Box<str> = old.family_name.to_lowercase().into();
        self.by_id.remove(&id.0.to_be_bytes());
        for parent in parents.into_iter().flatten() {
            remove(self.children.get_mut(&parent), i);
        }
        remove(self.by_birth.get_mut(&born), i);
        remove(self.by_family.get_mut(&family), i);
        self.rows[i as usize] = self.row(&person);
        self.index(i, &person);
    }
}

fn remove(list: Option<&mut Vec<u32>>, i: u32) {
    if let Some(list) = list {
        list.retain(|n| *n != i);
    }
}
