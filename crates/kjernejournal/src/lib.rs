//! Kjernejournal, the summary care record: critical information, next of kin, the citizen's own
//! entries, medicines dispensed, hospital contacts, vaccinations and shared documents, as FHIR R4.
//! Health personnel read it with a treatment relation or in an emergency; the citizen reads and
//! limits it; every read and write is audited in its own transaction (the `ledger`) in a hash
//! chain (`audit`) that the citizen reads as an access log and the snooping rules (`detect`)
//! watch.

mod access;
mod api;
mod audit;
mod citizen;
mod detect;
mod error;
mod facts;
mod ledger;
mod record;
mod validate;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware,
    routing::{delete, get, post, put},
};
use helsenett_core::{config::KjernejournalConfig, fhir};
use helsenett_helseid::Guard;
use helsenett_store::Store;

pub use access::{Access, Caller, Ctx, Refusal, SECURITY_LEVEL};
pub use audit::{Broken, Columns, GENESIS, Verified, columns, link, verify};
pub use citizen::{AccessLog, Accessed, log as access_log};
pub use detect::{Alert, Rules};
pub use error::KjError;
pub use validate::{CRITICAL_TYPE, MAX_DOCUMENT_BYTES};

/// What handlers share.
pub struct ApiState {
    pub store: Store,
    pub guard: Guard,
    pub ledger: ledger::Ledger,
}

#[derive(Clone)]
pub struct Shared(Arc<ApiState>);

impl std::ops::Deref for Shared {
    type Target = ApiState;
    fn deref(&self) -> &ApiState {
        &self.0
    }
}

impl axum::extract::FromRef<Shared> for Guard {
    fn from_ref(state: &Shared) -> Guard {
        state.guard.clone()
    }
}

/// The node's Kjernejournal.
#[derive(Clone)]
pub struct Kjernejournal {
    state: Shared,
    rules: Rules,
}

impl Kjernejournal {
    /// Starts the ledger task and the snooping rules.
    pub fn start(store: Store, guard: Guard, config: &KjernejournalConfig) -> Kjernejournal {
        let ledger = ledger::Ledger::start(store.clone());
        let rules = Rules::from(config);
        detect::start(
            store.clone(),
            rules,
            std::time::Duration::from_secs(config.detect_seconds.max(1)),
        );
        Kjernejournal {
            state: Shared(Arc::new(ApiState {
                store,
                guard,
                ledger,
            })),
            rules,
        }
    }

    /// Runs the snooping rules now, as of `now` (milliseconds): tests, and an operator who
    /// will not wait. Returns the alerts raised.
    pub async fn detect(&self, now: i64) -> Result<usize, helsenett_store::StoreError> {
        detect::run(&self.state.store, self.rules, now).await
    }

    /// `/kjernejournal/api/v1`.
    pub fn router(&self) -> Router {
        let v1 = Router::new()
            .route("/record", post(api::read_record))
            .route("/document", post(api::read_document))
            .route("/Binary/{id}", get(api::binary))
            .route("/critical", post(api::add_critical))
            .route("/critical/none-known", post(api::none_known))
            .route("/critical/remove", post(api::remove_critical))
            // Twice the largest body, so that an oversized document gets its own error.
            .route(
                "/ingest",
                post(api::ingest).layer(DefaultBodyLimit::max(2 * api::MAX_INGEST_BYTES)),
            )
            .route("/citizen/record", get(citizen::record))
            .route("/citizen/document/{id}", get(citizen::document))
            .route("/citizen/entries", post(citizen::add_entry))
            .route("/citizen/entries/{id}", delete(citizen::remove_entry))
            .route("/citizen/next-of-kin", put(citizen::next_of_kin))
            .route(
                "/citizen/privacy",
                get(citizen::privacy).put(citizen::set_privacy),
            )
            .route("/citizen/access-log", get(citizen::access_log))
            .route("/alerts", get(api::alerts))
            .layer(middleware::map_response(fhir::as_operation_outcome));
        Router::new()
            .nest("/kjernejournal/api/v1", v1)
            .with_state(self.state.clone())
    }
}
