//! What every register's handlers share.

use std::sync::Arc;

use axum::extract::FromRef;
use helsenett_core::Fodselsnummer;
use helsenett_helseid::Guard;
use helsenett_store::{Appender, Store, records::PersonLookup};

use crate::{municipalities::Municipalities, population::Population};

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub guard: Guard,
    pub population: Arc<Population>,
    pub municipalities: Arc<Municipalities>,
    pub log: Appender<PersonLookup>,
}

impl ApiState {
    /// Whether the population register has this person.
    pub fn knows(&self, nin: &Fodselsnummer) -> bool {
        self.population.read(|p| p.get(nin).is_some())
    }
}

/// The state handlers get: a request clones one pointer rather than every handle the API holds.
#[derive(Clone)]
pub struct Shared(pub Arc<ApiState>);

impl std::ops::Deref for Shared {
    type Target = ApiState;
    fn deref(&self) -> &ApiState {
        &self.0
    }
}

impl FromRef<Shared> for Guard {
    fn from_ref(state: &Shared) -> Guard {
        state.guard.clone()
    }
}
