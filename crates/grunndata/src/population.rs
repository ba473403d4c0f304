//! The population register in memory: every person of the country, with the indexes look-ups
//! and searches need, as of one event of the feed. Each node loads it at start and follows the
//! feed (`person_event`) to stay current, so every node serves the same data within a second.

use std::sync::RwLock;

use chrono::NaiveDate;
use helsenett_core::Fodselsnummer;
use helsenett_store::{
    Store, StoreError,
    records::{Person, PersonId, Text},
    with_pool,
};
use rustc_hash::{FxHashMap, FxHashSet};

/// Events read per poll at most.
const FOLLOW_BATCH: i64 = 10_000;

pub struct Population {
    state: RwLock<State>,
}

#[derive(Default)]
pub struct State {
    persons: FxHashMap<Fodselsnummer, Person>,
    by_id: FxHashMap<PersonId, Fodselsnummer>,
    children: FxHashMap<Fodselsnummer, Vec<Fodselsnummer>>,
    by_birth: FxHashMap<NaiveDate, Vec<Fodselsnummer>>,
    /// Lower-cased family name to its bearers.
    by_family: FxHashMap<Box<str>, Vec<Fodselsnummer>>,
    /// The last event applied.
    seq: i64,
    /// One copy of each name and place: a country repeats them millions of times.
    interned: FxHashSet<Text>,
}

impl Population {
    /// Reads the whole population from the store.
    pub async fn load(store: &Store) -> Result<Population, StoreError> {
        // The feed position is read first: an event written during the load is then applied
        // again, which is harmless (applying reloads the person's row).
        let seq = last_event(store).await?;
        let mut state = State {
            seq,
            ..State::default()
        };
        store.for_each_person(|person| state.insert(person)).await?;
        state.interned = FxHashSet::default();
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
        state.interned = FxHashSet::default();
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
    pub fn get(&self, nin: &Fodselsnummer) -> Option<&Person> {
        self.persons.get(nin)
    }

    pub fn by_id(&self, id: PersonId) -> Option<&Person> {
        self.by_id.get(&id).and_then(|nin| self.persons.get(nin))
    }

    pub fn children(&self, nin: &Fodselsnummer) -> &[Fodselsnummer] {
        self.children.get(nin).map_or(&[], Vec::as_slice)
    }

    pub fn born_on(&self, date: NaiveDate) -> &[Fodselsnummer] {
        self.by_birth.get(&date).map_or(&[], Vec::as_slice)
    }

    /// Bearers of a family name, compared without case.
    pub fn named(&self, family_name: &str) -> &[Fodselsnummer] {
        self.by_family
            .get(family_name.to_lowercase().as_str())
            .map_or(&[], Vec::as_slice)
    }

    pub fn all(&self) -> impl Iterator<Item = &Person> {
        self.persons.values()
    }

    pub fn len(&self) -> usize {
        self.persons.len()
    }

    pub fn is_empty(&self) -> bool {
        self.persons.is_empty()
    }

    /// The event this state is as of.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    fn insert(&mut self, mut person: Person) {
        self.intern(&mut person);
        let nin = person.nin;
        self.by_id.insert(person.id, nin);
        for parent in [person.mother, person.father].into_iter().flatten() {
            self.children.entry(parent).or_default().push(nin);
        }
        self.by_birth.entry(nin.birth_date()).or_default().push(nin);
        self.by_family
            .entry(person.family_name.to_lowercase().into())
            .or_default()
            .push(nin);
        self.persons.insert(nin, person);
    }

    /// Puts a person's new version in place of the old, keeping the indexes true.
    fn replace(&mut self, person: Person) {
        if let Some(old) = self.persons.remove(&person.nin) {
            let nin = old.nin;
            self.by_id.remove(&old.id);
            for parent in [old.mother, old.father].into_iter().flatten() {
                remove(self.children.get_mut(&parent), nin);
            }
            remove(self.by_birth.get_mut(&nin.birth_date()), nin);
            remove(
                self.by_family
                    .get_mut(old.family_name.to_lowercase().as_str()),
                nin,
            );
        }
        self.insert(person);
    }

    fn intern(&mut self, person: &mut Person) {
        for text in [
            &mut person.given_name,
            &mut person.family_name,
            &mut person.address.street,
            &mut person.address.postal_code,
            &mut person.address.postal_place,
            &mut person.address.municipality,
        ] {
            match self.interned.get(&**text) {
                Some(shared) => *text = shared.clone(),
                None => {
                    self.interned.insert(text.clone());
                }
            }
        }
    }
}

fn remove(list: Option<&mut Vec<Fodselsnummer>>, nin: Fodselsnummer) {
    if let Some(list) = list {
        list.retain(|n| *n != nin);
    }
}
