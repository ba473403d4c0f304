//! What the API reads: mailboxes, messages and their delivery states. Reads go to the pool, not
//! through the writer; a message is visible as soon as its 201 was sent.

use helsenett_core::HerId;
use helsenett_store::{Store, with_pool};

use crate::{apprec::AppRecError, cache::Accepted, error::ExchangeError};

/// A message as stored, without its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: String,
    pub sender: HerId,
    pub document_id: String,
    pub gen_date: String,
    pub is_apprec: bool,
    pub content_type: String,
    pub message_type: String,
}

/// One receiver's delivery of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub receiver: HerId,
    pub transport_state: String,
    pub apprec_status: Option<u8>,
    pub apprec_errors: Vec<AppRecError>,
}

pub(crate) fn her_id(value: i64) -> Result<HerId, ExchangeError> {
    u32::try_from(value)
        .ok()
        .and_then(|v| HerId::new(v).ok())
        .ok_or_else(|| {
            ExchangeError::Store(helsenett_store::StoreError::Corrupt(format!(
                "{value} is stored as a HER-id"
            )))
        })
}

/// The columns of `message` a [`MessageRow`] is read from.
#[derive(sqlx::FromRow)]
struct MessageColumns {
    id: String,
    sender_her_id: i64,
    document_id: String,
    gen_date: String,
    is_apprec: bool,
    content_type: String,
    message_type: String,
}

impl MessageColumns {
    fn row(self) -> Result<MessageRow, ExchangeError> {
        Ok(MessageRow {
            id: self.id,
            sender: her_id(self.sender_her_id)?,
            document_id: self.document_id,
            gen_date: self.gen_date,
            is_apprec: self.is_apprec,
            content_type: self.content_type,
            message_type: self.message_type,
        })
    }
}

/// The message columns `SELECT`s name, from `message m`.
const MESSAGE_COLUMNS: &str =
    "m.id, m.sender_her_id, m.document_id, m.gen_date, m.is_apprec, m.content_type, m.message_type";

#[derive(sqlx::FromRow)]
struct AcceptedRow {
    #[sqlx(flatten)]
    message: MessageColumns,
    document: Vec<u8>,
    receiver_her_id: i64,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    #[sqlx(flatten)]
    message: MessageColumns,
    receiver_her_id: i64,
}

type DeliveryTuple = (i64, String, Option<i16>, Option<String>);

/// The message `id` as accepted, with its receivers; `None` if there is none.
pub async fn accepted(store: &Store, id: &str) -> Result<Option<Accepted>, ExchangeError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS}, m.document, d.receiver_her_id FROM message m \
         JOIN delivery d ON d.message_id = m.id WHERE m.id = $1 ORDER BY d.receiver_her_id"
    );
    let rows: Vec<AcceptedRow> = with_pool!(store, pool => {
        sqlx::query_as(&sql).bind(id).fetch_all(pool).await?
    });
    let receivers = rows
        .iter()
        .map(|row| her_id(row.receiver_her_id))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = rows.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some(Accepted {
        message: first.message.row()?,
        receivers,
        document: first.document,
    }))
}

/// The delivery states of message `id`, by receiver.
pub async fn deliveries(store: &Store, id: &str) -> Result<Vec<DeliveryRow>, ExchangeError> {
    let rows: Vec<DeliveryTuple> = with_pool!(store, pool => {
        sqlx::query_as(
            "SELECT receiver_her_id, transport_state, apprec_status, apprec_errors FROM delivery \
             WHERE message_id = $1 ORDER BY receiver_her_id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?
    });
    rows.into_iter()
        .map(|(receiver, transport_state, status, errors)| {
            Ok(DeliveryRow {
                receiver: her_id(receiver)?,
                transport_state,
                apprec_status: status.and_then(|s| u8::try_from(s).ok()),
                apprec_errors: match errors {
                    Some(json) => serde_json::from_str(&json).map_err(|e| {
                        helsenett_store::StoreError::Corrupt(format!("apprec_errors: {e}"))
                    })?,
                    None => Vec::new(),
                },
            })
        })
        .collect()
}

/// A mailbox query.
#[derive(Debug, Clone)]
pub struct Unread<'a> {
    pub receivers: &'a [HerId],
    pub sender: Option<HerId>,
    pub document_id: Option<&'a str>,
    pub limit: u32,
    pub descending: bool,
}

/// One entry of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub receiver: HerId,
    pub message: MessageRow,
}

/// The unread messages of `query.receivers`, by GenDate (then id, so paging is stable).
pub async fn unread(store: &Store, query: &Unread<'_>) -> Result<Vec<Entry>, ExchangeError> {
    let placeholders = (0..query.receivers.len())
        .map(|i| format!("${}", i + 4))
        .collect::<Vec<_>>()
        .join(", ");
    let order = if query.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS}, d.receiver_her_id FROM delivery d \
         JOIN message m ON m.id = d.message_id \
         WHERE d.read_at IS NULL AND d.receiver_her_id IN ({placeholders}) \
         AND ($1 IS NULL OR m.sender_her_id = $1) AND ($2 IS NULL OR m.document_id = $2) \
         ORDER BY d.gen_at {order}, d.message_id {order} LIMIT $3"
    );
    let sender = query.sender.map(|h| i64::from(h.get()));
    let rows: Vec<EntryRow> = with_pool!(store, pool => {
        let mut q = sqlx::query_as(&sql)
            .bind(sender)
            .bind(query.document_id)
            .bind(i64::from(query.limit));
        for receiver in query.receivers {
            q = q.bind(i64::from(receiver.get()));
        }
        q.fetch_all(pool).await?
    });
    rows.into_iter()
        .map(|row| {
            Ok(Entry {
                receiver: her_id(row.receiver_her_id)?,
                message: row.message.row()?,
            })
        })
        .collect()
}
