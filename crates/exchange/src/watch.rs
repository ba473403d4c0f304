//! The delivery guarantee's clock. A delivery is watched from the moment its message is accepted
//! until it is settled. Unread past the re-delivery interval, it is re-delivered (kept in the
//! receiver's mailbox, counted, logged) up to the configured number of times; then its transport
//! state becomes Rejected and the sender gets a non-delivery notice. Read but not answered with
//! the AppRec the CPA promises by the deadline, the sender gets a notice too: a referral that
//! never arrives, or is never acknowledged, is a patient-safety incident and its sender must
//! know.
//!
//! The notice is an AppRec (status 2, Avvist, error X99) in the sender's mailbox, which every EPJ
//! already handles; its software name says the hub wrote it. Any number of nodes may watch: a
//! decision is taken only if the delivery is still as the node read it.

use chrono::{DateTime, Utc};
use helsenett_core::HerId;
use helsenett_register::Snapshot;
use helsenett_store::with_pool;
use openssl::sha::sha256;

use crate::{
    AppRecError, AppRecStatus, ExchangeError, MessageRow, SOFTWARE, Settings,
    apprec::{AppRecVersion, Named, NewAppRec},
    writer::{NewDelivery, NewMessage, Settle, Settlement},
};

/// Due deliveries taken per look.
const BATCH: i64 = 1_000;

/// What one look did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    pub redelivered: u64,
    pub notices: u64,
}

struct Due {
    message: MessageRow,
    sender_org: String,
    receiver: HerId,
    receiver_org: String,
    read: bool,
    redeliveries: u32,
    due_at: i64,
}

type DueTuple = (
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    String,
    Option<i64>,
    i64,
    i64,
);

pub(crate) async fn run(
    exchange: &crate::Exchange,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Result<Watched, ExchangeError> {
    let settings = exchange.settings();
    let now_ms = now.timestamp_millis();
    let rows: Vec<DueTuple> = with_pool!(exchange.store(), pool => {
        sqlx::query_as(
            "SELECT m.id, m.sender_her_id, m.sender_org, m.document_id, m.gen_date, m.message_type, \
             d.receiver_her_id, d.receiver_org, d.read_at, d.redeliveries, d.due_at \
             FROM delivery d JOIN message m ON m.id = d.message_id \
             WHERE d.due_at IS NOT NULL AND d.due_at <= $1 ORDER BY d.due_at LIMIT $2",
        )
        .bind(now_ms)
        .bind(BATCH)
        .fetch_all(pool)
        .await?
    });
    let mut watched = Watched::default();
    for row in rows {
        let due = due(row)?;
        let action = if !due.read && due.redeliveries < settings.redelivery_attempts {
            Settle::Redeliver {
                next_due: now_ms + settings.redelivery_ms,
            }
        } else {
            Settle::Notice {
                notice: Box::new(notice(snapshot, settings, &due, now)),
                rejected: !due.read,
            }
        };
        let redelivery = matches!(action, Settle::Redeliver { .. });
        let settlement = Settlement {
            message_id: due.message.id.clone(),
            receiver: due.receiver,
            due_at: due.due_at,
            action,
        };
        if !exchange.writer().settle(settlement).await? {
            continue;
        }
        if redelivery {
            watched.redelivered += 1;
            metrics::counter!("exchange_redeliveries_total").increment(1);
            tracing::info!(message = %due.message.id, receiver = %due.receiver,
                attempt = due.redeliveries + 1, "message re-delivered: not read yet");
        } else {
            watched.notices += 1;
            metrics::counter!("exchange_non_delivery_notices_total").increment(1);
            tracing::warn!(message = %due.message.id, receiver = %due.receiver, read = due.read,
                "non-delivery notice sent to the sender");
        }
    }
    Ok(watched)
}

fn due(row: DueTuple) -> Result<Due, ExchangeError> {
    let (id, sender, sender_org, document_id, gen_date, message_type, receiver, receiver_org) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    let (read_at, redeliveries, due_at) = (row.8, row.9, row.10);
    Ok(Due {
        message: MessageRow {
            id,
            sender: crate::reads::her_id(sender)?,
            document_id,
            gen_date,
            is_apprec: false,
            content_type: "application/xml".to_owned(),
            message_type,
        },
        sender_org,
        receiver: crate::reads::her_id(receiver)?,
        receiver_org,
        read: read_at.is_some(),
        redeliveries: u32::try_from(redeliveries).unwrap_or(u32::MAX),
        due_at,
    })
}

/// The AppRec that tells the sender its message was not delivered or not answered.
fn notice(snapshot: &Snapshot, settings: &Settings, due: &Due, now: DateTime<Utc>) -> NewMessage {
    let details = if due.read {
        format!(
            "Ikke besvart: HER-id {} hentet meldingen, men sendte ingen applikasjonskvittering innen fristen ({} timer).",
            due.receiver,
            settings.apprec_deadline_ms / 3_600_000
        )
    } else {
        format!(
            "Ikke levert: HER-id {} har ikke hentet meldingen etter {} forsøk over {} timer.",
            due.receiver,
            settings.redelivery_attempts,
            (i64::from(settings.redelivery_attempts) + 1) * settings.redelivery_ms / 3_600_000
        )
    };
    let version =
        crate::receipt_version(snapshot, &due.message, due.receiver).unwrap_or(AppRecVersion::V1_1);
    let id = uuid::Uuid::new_v4().to_string();
    let fallback = |her_id: HerId| Named {
        institution: (her_id, format!("HER-id {her_id}")),
        department: None,
    };
    let document = NewAppRec {
        version,
        id: &id,
        gen_date: now,
        software: SOFTWARE,
        sender: &crate::named(snapshot, due.receiver).unwrap_or_else(|| fallback(due.receiver)),
        receiver: &crate::named(snapshot, due.message.sender)
            .unwrap_or_else(|| fallback(due.message.sender)),
        status: AppRecStatus::Rejected,
        errors: &[AppRecError::new("X99", details)],
        original_type: &due.message.message_type,
        original_issued: &due.message.gen_date,
        original_id: &due.message.document_id,
    }
    .to_xml()
    .into_bytes();
    let received_at = now.timestamp_millis();
    NewMessage {
        sender: due.receiver,
        sender_org: due.receiver_org.clone(),
        document_id: id.clone(),
        sha256: sha256(&document).to_vec(),
        message_type: helsenett_register::cpa::APPREC.to_owned(),
        gen_date: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        gen_at: received_at,
        is_apprec: true,
        content_type: "application/xml".to_owned(),
        document,
        source_system: SOFTWARE.to_owned(),
        received_at,
        deliveries: vec![NewDelivery {
            receiver: due.message.sender,
            receiver_org: due.sender_org.clone(),
            expects_apprec: false,
        }],
        answers: None,
        // A notice is not itself watched.
        due_at: None,
        id,
    }
}
