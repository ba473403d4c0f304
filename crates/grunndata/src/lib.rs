//! Grunndata, the base registers: Persontjenesten (the population register),
//! Helsepersonellregisteret (HPR) and Fastlegeregisteret (GP lists). Each node holds the
//! population in memory, follows the register's change-event feed, and logs every look-up
//! of a person as it answers.

mod document;
mod error;
mod fastlegeregisteret;
mod feed;
mod fhir;
mod hpr;
mod lookup;
mod municipalities;
mod persontjenesten;
mod population;
mod request;
mod search;
mod state;

use std::{sync::Arc, time::Duration};

use axum::Router;
use helsenett_helseid::Guard;
use helsenett_store::{Appender, Store, StoreError};

pub use document::{Bundle, INFORMATION_PARTS};
pub use error::GrunndataError;
pub use lookup::PURPOSES;
pub use persontjenesten::{BULK_MAX, ReadNoLegalBasis, ReadWithLegalBasis};
pub use population::Population;

use crate::{
    municipalities::Municipalities,
    state::{ApiState, Shared},
};

/// How often a node looks for new events in the feed.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// The node's base registers.
#[derive(Clone)]
pub struct Grunndata {
    state: ApiState,
}

impl Grunndata {
    /// Loads the population and starts the look-up log and the feed follower.
    pub async fn start(store: Store, guard: Guard) -> Result<Grunndata, StoreError> {
        let population = Arc::new(Population::load(&store).await?);
        let municipalities = Arc::new(Municipalities::load(&store).await?);
        let follower = (store.clone(), Arc::downgrade(&population));
        tokio::spawn(async move {
            let (store, population) = follower;
            let mut tick = tokio::time::interval(FOLLOW_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(population) = population.upgrade() else {
                    return;
                };
                if let Err(e) = population.follow(&store).await {
                    tracing::warn!(error = %e, "following the population register's feed failed");
                }
            }
        });
        Ok(Grunndata {
            state: ApiState {
                log: Appender::start(store.clone()),
                store,
                guard,
                population,
                municipalities,
            },
        })
    }

    pub fn population(&self) -> &Population {
        &self.state.population
    }

    /// Applies the feed's new events now (tests, and a node that must be current at once).
    pub async fn follow(&self) -> Result<usize, StoreError> {
        self.state.population.follow(&self.state.store).await
    }

    /// Returns once every look-up answered so far is in the log: before a node stops, and
    /// before a test reads the log.
    pub async fn flush_log(&self) -> Result<(), StoreError> {
        self.state.log.flush().await
    }

    /// `/persontjenesten`, `/hpr`, `/fastlegeregisteret` and their FHIR views, `/grunndata/fhir`.
    pub fn router(&self) -> Router {
        Router::new()
            .nest("/persontjenesten", persontjenesten::router())
            .nest("/hpr", hpr::router())
            .nest("/fastlegeregisteret", fastlegeregisteret::router())
            .nest("/grunndata/fhir", fhir::router())
            .with_state(Shared(Arc::new(self.state.clone())))
    }
}
