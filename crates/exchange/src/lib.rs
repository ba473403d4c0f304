//! Meldingstjener: the network's store-and-forward message exchange, following NHN's MSH API v2.
//! Senders submit MsgHead v1.2 business documents whose payload is sealed for the receiver (CMS,
//! signed then encrypted); the hub checks the envelope against the address register and the CPA,
//! keeps the message durably, and each receiver fetches it, marks it read and answers with an
//! AppRec that the sender sees. A message that is not fetched or answered in time raises a
//! non-delivery notice to its sender.
//!
//! **Architecture Invariant:** the hub reads envelopes, never payloads. Everything it needs to
//! route, check and count a message is in the clear MsgHead or AppRec; a sealed payload is passed
//! on as the sender wrote it.
//!
//! **Architecture Invariant:** a 2xx is a promise. Every accepted message, read mark and receipt
//! is committed (fsynced) before the answer is sent, and each message is stored once per
//! (sender, MsgId), so a retry after a lost answer gets the first answer again.

mod accept;
mod api;
pub mod apprec;
mod cache;
pub mod cms;
pub mod counter;
pub mod envelope;
mod error;
mod reads;
pub mod samsvar_api;
pub mod synthetic;
mod watch;
mod writer;
pub mod xml;

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use helsenett_core::{HerId, config::ExchangeConfig};
use helsenett_helseid::Principal;
use helsenett_register::{Register, model::Party};
use helsenett_store::Store;

pub use accept::Submission;
pub use api::{PREFIX, openapi};
pub use apprec::{AppRecError, AppRecStatus};
pub use cache::Accepted;
pub use error::{ErrorMessage, ExchangeError, Refusal};
pub use reads::{DeliveryRow, Entry, MessageRow, Unread};
pub use watch::Watched;
pub use writer::Stored;

use crate::{
    apprec::{AppRecVersion, Named, NewAppRec},
    cache::Cache,
    writer::Writer,
};

/// The name the hub gives software it writes AppRecs as.
pub const SOFTWARE: &str = "helsenett Meldingstjener";

/// The delivery guarantee's timings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub redelivery_ms: i64,
    pub redelivery_attempts: u32,
    pub apprec_deadline_ms: i64,
    pub watch_every: Duration,
}

impl From<&ExchangeConfig> for Settings {
    fn from(c: &ExchangeConfig) -> Self {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1_000)).unwrap_or(i64::MAX);
        Settings {
            redelivery_ms: ms(c.redelivery_seconds),
            redelivery_attempts: c.redelivery_attempts,
            apprec_deadline_ms: ms(c.apprec_deadline_seconds),
            watch_every: Duration::from_secs(c.watch_seconds.max(1)),
        }
    }
}

/// The exchange of one node. Cheap to clone.
#[derive(Clone)]
pub struct Exchange(Arc<Inner>);

struct Inner {
    store: Store,
    register: Register,
    writer: Writer,
    cache: Arc<Cache>,
    settings: Settings,
}

/// A message and the receivers whose deliveries the caller may see.
#[derive(Debug, Clone)]
pub struct Visible {
    pub accepted: Arc<Accepted>,
    pub receivers: Vec<HerId>,
}

/// Document bytes of recent messages each node keeps in memory.
const CACHE_BYTES: usize = 128 * 1024 * 1024;

impl Exchange {
    /// Starts this node's writer. Must be called within a tokio runtime.
    pub fn start(store: Store, register: Register, settings: Settings) -> Self {
        let cache = Arc::new(Cache::new(CACHE_BYTES));
        Exchange(Arc::new(Inner {
            writer: Writer::start(store.clone(), cache.clone()),
            cache,
            store,
            register,
            settings,
        }))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    fn writer(&self) -> &Writer {
        &self.0.writer
    }

    /// Whether `her_id` belongs to the caller's organisation.
    fn owns(&self, principal: &Principal, her_id: HerId) -> bool {
        self.0
            .register
            .snapshot()
            .party(her_id)
            .is_some_and(|p| p.orgnr == principal.organisation)
    }

    /// Checks and stores a business document (MsgHead or AppRec) from the caller.
    pub async fn submit(
        &self,
        principal: &Principal,
        submission: &Submission<'_>,
    ) -> Result<Stored, ExchangeError> {
        let snapshot = self.0.register.snapshot();
        let message = accept::check(
            &snapshot,
            principal,
            submission,
            Utc::now(),
            self.0.settings.redelivery_ms,
        )?;
        let message_type = message.message_type.clone();
        let stored = self.0.writer.store(message).await?;
        if let Stored::Created(_) = stored {
            metrics::counter!("meldingsteller_messages_total", "message_type" => message_type)
                .increment(1);
        }
        Ok(stored)
    }

    /// The message `id` as accepted: from this node's cache, else the store.
    async fn accepted(&self, id: &str) -> Result<Arc<Accepted>, ExchangeError> {
        if let Some(accepted) = self.0.cache.get(id) {
            return Ok(accepted);
        }
        let accepted = Arc::new(
            reads::accepted(&self.0.store, id)
                .await?
                .ok_or_else(|| ExchangeError::NotFound(format!("no message has id {id}")))?,
        );
        self.0.cache.insert(accepted.clone());
        Ok(accepted)
    }

    /// The message `id` and the receivers whose deliveries `principal` may see: its sender sees
    /// every one, a receiver its own.
    pub async fn message(&self, principal: &Principal, id: &str) -> Result<Visible, ExchangeError> {
        let accepted = self.accepted(id).await?;
        let receivers: Vec<HerId> = if self.owns(principal, accepted.message.sender) {
            accepted.receivers.clone()
        } else {
            accepted
                .receivers
                .iter()
                .copied()
                .filter(|r| self.owns(principal, *r))
                .collect()
        };
        if receivers.is_empty() {
            return Err(ExchangeError::Forbidden(format!(
                "Not authorized to access message {id}"
            )));
        }
        Ok(Visible {
            accepted,
            receivers,
        })
    }

    /// The delivery states of message `id` that `principal` may see.
    pub async fn deliveries(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<Vec<DeliveryRow>, ExchangeError> {
        let visible = self.message(principal, id).await?;
        let mut deliveries = reads::deliveries(&self.0.store, id).await?;
        deliveries.retain(|d| visible.receivers.contains(&d.receiver));
        Ok(deliveries)
    }

    /// Unread messages of receivers the caller owns.
    pub async fn unread(
        &self,
        principal: &Principal,
        query: &Unread<'_>,
    ) -> Result<Vec<Entry>, ExchangeError> {
        let foreign: Vec<String> = query
            .receivers
            .iter()
            .filter(|her_id| !self.owns(principal, **her_id))
            .map(ToString::to_string)
            .collect();
        if !foreign.is_empty() {
            return Err(ExchangeError::Forbidden(format!(
                "Not authorized for HerId(s): {}",
                foreign.join(", ")
            )));
        }
        reads::unread(&self.0.store, query).await
    }

    /// Marks message `id` read by `receiver`, which the caller must own.
    pub async fn mark_read(
        &self,
        principal: &Principal,
        id: &str,
        receiver: HerId,
    ) -> Result<(), ExchangeError> {
        if !self.owns(principal, receiver) {
            return Err(ExchangeError::Forbidden(format!(
                "Not authorized for HerId(s): {receiver}"
            )));
        }
        self.0
            .writer
            .mark_read(
                id,
                receiver,
                Utc::now().timestamp_millis(),
                self.0.settings.apprec_deadline_ms,
            )
            .await
    }

    /// Writes and submits the AppRec `receiver` answers message `id` with, at the AppRec version
    /// the CPA agrees.
    pub async fn answer(
        &self,
        principal: &Principal,
        id: &str,
        receiver: HerId,
        status: AppRecStatus,
        errors: Vec<AppRecError>,
        source_system: &str,
    ) -> Result<Stored, ExchangeError> {
        if !self.owns(principal, receiver) {
            return Err(ExchangeError::Forbidden(format!(
                "Not authorized for HerId(s): {receiver}"
            )));
        }
        let found = self.accepted(id).await?;
        if !found.receivers.contains(&receiver) {
            return Err(ExchangeError::Forbidden(format!(
                "HER-id {receiver} is not a receiver of message {id}"
            )));
        }
        if found.message.is_apprec {
            return Err(ExchangeError::BadRequest(format!(
                "message {id} is an AppRec: receipts are not answered with receipts"
            )));
        }
        if status == AppRecStatus::Rejected && errors.is_empty() {
            return Err(ExchangeError::BadRequest(
                "appRecErrorList must name the errors when appRecStatus is Rejected".into(),
            ));
        }
        let errors = errors
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                e.checked()
                    .map_err(|m| ExchangeError::BadRequest(format!("appRecErrorList[{i}]: {m}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let snapshot = self.0.register.snapshot();
        let version = receipt_version(&snapshot, &found.message, receiver).ok_or_else(|| {
            Refusal::format(
                "T10",
                "/AppRec",
                format!(
                    "HER-id {} reads no AppRec version that HER-id {receiver} writes (see their CPA)",
                    found.message.sender
                ),
            )
        })?;
        let named = |her_id| {
            named(&snapshot, her_id).ok_or_else(|| {
                Refusal::format(
                    "E21",
                    "/AppRec",
                    format!("HER-id {her_id} is not in the address register"),
                )
            })
        };
        let apprec_id = uuid::Uuid::new_v4().to_string();
        let document = NewAppRec {
            version,
            id: &apprec_id,
            gen_date: Utc::now(),
            software: SOFTWARE,
            sender: &named(receiver)?,
            receiver: &named(found.message.sender)?,
            status,
            errors: &errors,
            original_type: &found.message.message_type,
            original_issued: &found.message.gen_date,
            original_id: &found.message.document_id,
        }
        .to_xml();
        self.submit(
            principal,
            &Submission {
                document: document.as_bytes(),
                content_type: "application/xml",
                receivers_subset: None,
                source_system,
            },
        )
        .await
    }

    /// Looks for deliveries that fell due every `watch_every`, until the process ends.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let exchange = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(exchange.0.settings.watch_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(e) = exchange.watch_once().await {
                    tracing::warn!(error = %e, "the exchange's delivery watch failed");
                }
            }
        })
    }

    /// One look at due deliveries: re-deliveries and non-delivery notices.
    pub async fn watch_once(&self) -> Result<watch::Watched, ExchangeError> {
        watch::run(self, &self.0.register.snapshot(), Utc::now()).await
    }
}

/// The AppRec version `receiver` answers `message` with: the CPA's receipt for its process.
fn receipt_version(
    snapshot: &helsenett_register::Snapshot,
    message: &MessageRow,
    receiver: HerId,
) -> Option<AppRecVersion> {
    let agreement = snapshot.agreement(message.sender, receiver).ok()?;
    let receipt = agreement
        .processes
        .iter()
        .find(|p| p.message_type == message.message_type)?
        .receipt?;
    AppRecVersion::from_cpa(receipt.major, receipt.minor)
}

/// A party as a MsgHead or AppRec names it: a unit under its parent institution.
pub fn named(snapshot: &helsenett_register::Snapshot, her_id: HerId) -> Option<Named> {
    let party: &Party = snapshot.party(her_id)?;
    let unit = (party.her_id, party.name.clone());
    Some(match party.parent_her_id.and_then(|p| snapshot.party(p)) {
        Some(parent) => Named {
            institution: (parent.her_id, parent.name.clone()),
            department: Some(unit),
        },
        None => Named {
            institution: unit,
            department: None,
        },
    })
}
