//! Adresseregisteret: the network's authoritative yellow pages. Who can be reached (every
//! communication party with its HER-id), with which certificates, and which message types and
//! versions each party sends and receives (its CPP), from which the agreement between any two
//! parties (their CPA) is computed.
//!
//! **Architecture Invariant:** the database is the truth, and every change to it is one event in
//! a gap-free, ordered feed. Each node serves reads from an in-memory [`Snapshot`] as of one event
//! and moves it forward by reading the feed, so look-ups never touch the database and any number
//! of nodes converge on the same state.

mod api;
pub mod certs;
pub mod changes;
pub mod cpa;
pub mod directory;
mod error;
pub mod export;
pub mod model;
pub mod storage;

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use chrono::Utc;
use helsenett_store::{Store, StoreError, with_pool};

pub use api::{AdminRegister, ReadRegister, WriteRegister, openapi};
pub use changes::Editor;
pub use directory::{Search, Snapshot};
pub use error::RegisterError;
pub use storage::Change;

/// Events read per query when catching up.
const CATCH_UP_BATCH: i64 = 10_000;

/// The register of one node. Cheap to clone.
#[derive(Clone)]
pub struct Register(Arc<Inner>);

struct Inner {
    store: Store,
    current: ArcSwap<Snapshot>,
    /// Moves `current` forward one writer at a time, so no snapshot replaces a newer one.
    advancing: tokio::sync::Mutex<()>,
}

impl Register {
    /// Reads the whole register from `store`.
    pub async fn open(store: Store) -> Result<Self, StoreError> {
        let snapshot = storage::load(&store).await?;
        tracing::info!(
            parties = snapshot.len(),
            event_id = snapshot.event_id,
            "address register loaded"
        );
        Ok(Register(Arc::new(Inner {
            store,
            current: ArcSwap::from_pointee(snapshot),
            advancing: tokio::sync::Mutex::new(()),
        })))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The register as this node knows it now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.0.current.load_full()
    }

    /// Reads the feed until this node has every committed change.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let _advancing = self.0.advancing.lock().await;
        loop {
            let base = self.snapshot();
            let events =
                storage::events_after(&self.0.store, base.event_id, CATCH_UP_BATCH).await?;
            let Some(last) = events.last().map(|e| e.id) else {
                return Ok(());
            };
            let parties = events
                .iter()
                .map(storage::StoredEvent::party)
                .collect::<Result<Vec<_>, _>>()?;
            self.0.current.store(Arc::new(base.with(last, parties)));
            metrics::gauge!("register_event_id").set(last as f64);
            if (events.len() as i64) < CATCH_UP_BATCH {
                return Ok(());
            }
        }
    }

    /// Follows the feed every `every` until the process ends.
    pub fn follow(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let register = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(e) = register.refresh().await {
                    tracing::warn!(error = %e, "cannot read the address register's event feed");
                }
            }
        })
    }

    /// Makes the changes `decide` returns from the latest state, as `actor`. The state `decide`
    /// sees includes every change committed by any node; the result is visible on this node
    /// when this returns.
    pub async fn change(
        &self,
        actor: &str,
        decide: impl FnOnce(&Snapshot) -> Result<Vec<Change>, RegisterError>,
    ) -> Result<Vec<Change>, RegisterError> {
        let _advancing = self.0.advancing.lock().await;
        let base = self.snapshot();
        let mut decided = Vec::new();
        let events = storage::commit(&self.0.store, base.event_id, actor, Utc::now(), |seen| {
            let parties = seen
                .iter()
                .map(storage::StoredEvent::party)
                .collect::<Result<Vec<_>, _>>()?;
            let latest = match seen.last() {
                Some(last) => base.with(last.id, parties),
                None => base.with(base.event_id, []),
            };
            decided = decide(&latest)?;
            Ok::<_, RegisterError>(decided.clone())
        })
        .await?;
        if let Some(last) = events.last() {
            let parties = events
                .iter()
                .map(storage::StoredEvent::party)
                .collect::<Result<Vec<_>, _>>()?;
            self.0.current.store(Arc::new(base.with(last.id, parties)));
        }
        for change in &decided {
            metrics::counter!("register_changes_total", "change" => change.change).increment(1);
        }
        Ok(decided)
    }

    /// The trust anchors uploads are checked against: the CAs in the store.
    pub async fn trust_anchors(&self) -> Result<certs::TrustAnchors, RegisterError> {
        let pems: Vec<String> = with_pool!(&self.0.store, pool => {
            sqlx::query_scalar("SELECT certificate_pem FROM certificate_authority ORDER BY name")
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        certs::TrustAnchors::from_pems(pems.iter().map(String::as_str)).map_err(|e| {
            StoreError::Corrupt(format!(
                "certificate_authority holds an unreadable PEM: {e}"
            ))
            .into()
        })
    }
}
