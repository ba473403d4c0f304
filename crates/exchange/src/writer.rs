//! Every write of the exchange goes through one task per node that commits what requests queued
//! while the previous commit ran, in one transaction (group commit). A message is durable before
//! its sender hears 201: SQLite commits with `synchronous=FULL` on the writer's own connection,
//! PostgreSQL with its default `synchronous_commit`. One fsync then serves a whole batch, which
//! is what lets one node accept thousands of messages a second.
//!
//! A batch that fails on a database error is retried one command per transaction, so one bad
//! command fails alone.

use helsenett_core::HerId;
use helsenett_store::{Store, StoreError};
use sqlx::{Connection, pool::PoolConnection};
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use crate::{
    MessageRow,
    apprec::{AppRecError, AppRecStatus},
    cache::{Accepted, Cache},
    error::{ExchangeError, Refusal},
};

/// Commands taken into one transaction at most.
const MAX_BATCH: usize = 512;
/// Commands waiting for the writer at most; past it, requests wait to queue (back-pressure).
const QUEUE: usize = 8_192;

/// A message accepted for delivery, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub sender: HerId,
    pub sender_org: String,
    pub document_id: String,
    pub sha256: Vec<u8>,
    pub message_type: String,
    pub gen_date: String,
    pub gen_at: i64,
    pub is_apprec: bool,
    pub content_type: String,
    pub document: Vec<u8>,
    pub source_system: String,
    pub received_at: i64,
    pub deliveries: Vec<NewDelivery>,
    /// For an AppRec: the delivery it answers.
    pub answers: Option<Answer>,
    /// When each delivery first falls due for the watcher; none for what is not watched.
    pub due_at: Option<i64>,
}

impl NewMessage {
    fn into_accepted(self) -> Accepted {
        Accepted {
            message: MessageRow {
                id: self.id,
                sender: self.sender,
                document_id: self.document_id,
                gen_date: self.gen_date,
                is_apprec: self.is_apprec,
                content_type: self.content_type,
                message_type: self.message_type,
            },
            receivers: self.deliveries.iter().map(|d| d.receiver).collect(),
            document: self.document,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub receiver: HerId,
    pub receiver_org: String,
    pub expects_apprec: bool,
}

/// What an AppRec answers: the original sender's document to the AppRec's sender.
#[derive(Debug, Clone)]
pub struct Answer {
    pub original_sender: HerId,
    pub original_document_id: String,
    pub status: AppRecStatus,
    pub errors: Vec<AppRecError>,
}

/// How a stored message came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Created(String),
    /// The same document from the same sender was accepted before, under this id.
    Duplicate(String),
}

enum Command {
    Store(
        Box<NewMessage>,
        oneshot::Sender<Result<Stored, ExchangeError>>,
    ),
    MarkRead {
        message_id: String,
        receiver: HerId,
        at: i64,
        apprec_deadline_ms: i64,
        reply: oneshot::Sender<Result<(), ExchangeError>>,
    },
    /// The watcher's decision on a delivery that fell due at `due_at`; taken only if no other
    /// node took one since.
    Settle(
        Box<Settlement>,
        oneshot::Sender<Result<bool, ExchangeError>>,
    ),
}

/// What becomes of a due delivery.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub message_id: String,
    pub receiver: HerId,
    pub due_at: i64,
    pub action: Settle,
}

#[derive(Debug, Clone)]
pub enum Settle {
    /// Offer it again and look again at `next_due`.
    Redeliver { next_due: i64 },
    /// Give up: send the sender `notice`; `rejected` when the receiver never read it.
    Notice {
        notice: Box<NewMessage>,
        rejected: bool,
    },
}

impl Command {
    fn fail(self, e: ExchangeError) {
        match self {
            Command::Store(_, reply) => drop(reply.send(Err(e))),
            Command::MarkRead { reply, .. } => drop(reply.send(Err(e))),
            Command::Settle(_, reply) => drop(reply.send(Err(e))),
        }
    }
}

/// The queue in front of this node's writer task. Cheap to clone.
#[derive(Clone)]
pub struct Writer(mpsc::Sender<Command>);

impl Writer {
    pub fn start(store: Store, cache: Arc<Cache>) -> Self {
        let (queue, commands) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, cache, commands));
        Writer(queue)
    }

    pub async fn store(&self, message: NewMessage) -> Result<Stored, ExchangeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Store(Box::new(message), reply), answer)
            .await
    }

    pub async fn mark_read(
        &self,
        message_id: &str,
        receiver: HerId,
        at: i64,
        apprec_deadline_ms: i64,
    ) -> Result<(), ExchangeError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::MarkRead {
            message_id: message_id.to_owned(),
            receiver,
            at,
            apprec_deadline_ms,
            reply,
        };
        self.send(command, answer).await
    }

    /// Carries out `settlement`; false if another node settled the delivery first.
    pub async fn settle(&self, settlement: Settlement) -> Result<bool, ExchangeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Settle(Box::new(settlement), reply), answer)
            .await
    }

    async fn send<T>(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<T, ExchangeError>>,
    ) -> Result<T, ExchangeError> {
        let gone = || ExchangeError::Store(StoreError::Internal("the exchange's writer stopped"));
        self.0.send(command).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The writer's connection: its own for SQLite (the single writer, with full fsync), the pool
/// for PostgreSQL.
enum Held {
    Sqlite(Option<PoolConnection<sqlx::Sqlite>>),
    Postgres(sqlx::PgPool),
}

async fn run(store: Store, cache: Arc<Cache>, mut commands: mpsc::Receiver<Command>) {
    let mut held = match &store {
        Store::Sqlite(_) => Held::Sqlite(None),
        Store::Postgres(pool) => Held::Postgres(pool.clone()),
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while commands.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("exchange_write_batch").record(batch.len() as f64);
        let outcomes = match commit(&store, &mut held, &batch).await {
            Ok(outcomes) => outcomes,
            Err(e) if batch.len() == 1 => {
                tracing::warn!(error = %e, "an exchange write failed");
                for command in batch.drain(..) {
                    command.fail(ExchangeError::Store(repeated(&e)));
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "an exchange batch failed; retrying one by one");
                let mut outcomes = Vec::with_capacity(batch.len());
                for command in &batch {
                    outcomes.push(
                        match commit(&store, &mut held, std::slice::from_ref(command)).await {
                            Ok(mut one) => one.pop().unwrap_or(Outcome::Failed(
                                StoreError::Internal("a command came back without an outcome"),
                            )),
                            Err(e) => Outcome::Failed(repeated(&e)),
                        },
                    );
                }
                outcomes
            }
        };
        for (command, outcome) in batch.drain(..).zip(outcomes) {
            outcome.reply(command, &cache);
        }
    }
}

/// What one command came to, sent only once its transaction committed.
enum Outcome {
    Stored(Stored),
    Read,
    Settled(bool),
    Refused(ExchangeError),
    Failed(StoreError),
}

impl Outcome {
    /// Answers the command's request; what it stored goes into `cache` first, so that the
    /// request that follows the answer finds it there.
    fn reply(self, command: Command, cache: &Cache) {
        match (command, self) {
            (Command::Store(message, reply), Outcome::Stored(stored)) => {
                if let Stored::Created(_) = stored {
                    cache.insert(Arc::new(message.into_accepted()));
                }
                drop(reply.send(Ok(stored)))
            }
            (Command::MarkRead { reply, .. }, Outcome::Read) => drop(reply.send(Ok(()))),
            (Command::Settle(settlement, reply), Outcome::Settled(taken)) => {
                if let (true, Settle::Notice { notice, .. }) = (taken, settlement.action) {
                    cache.insert(Arc::new(notice.into_accepted()));
                }
                drop(reply.send(Ok(taken)))
            }
            (command, Outcome::Refused(e)) => command.fail(e),
            (command, Outcome::Failed(e)) => command.fail(ExchangeError::Store(e)),
            (command, _) => command.fail(ExchangeError::Store(StoreError::Internal(
                "an outcome does not match its command",
            ))),
        }
    }
}

/// A store error for each request that waited on a failed commit (sqlx errors are not `Clone`).
fn repeated(e: &sqlx::Error) -> StoreError {
    StoreError::Query(sqlx::Error::Protocol(e.to_string()))
}

async fn commit(
    store: &Store,
    held: &mut Held,
    batch: &[Command],
) -> Result<Vec<Outcome>, sqlx::Error> {
    match held {
        Held::Sqlite(slot) => {
            let conn = match slot {
                Some(conn) => conn,
                None => {
                    let Store::Sqlite(pool) = store else {
                        unreachable!("the writer's connection matches its store")
                    };
                    let mut conn = pool.acquire().await?;
                    // Durable at commit, not only at the next checkpoint: a 201 is a promise.
                    sqlx::query("PRAGMA synchronous = FULL")
                        .execute(&mut *conn)
                        .await?;
                    slot.insert(conn)
                }
            };
            let result = async {
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                let outcomes = sqlite_tx::batch(&mut tx, batch).await?;
                tx.commit().await?;
                Ok(outcomes)
            }
            .await;
            if result.is_err() {
                // A connection that failed mid-transaction is not trusted again.
                *slot = None;
            }
            result
        }
        Held::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let outcomes = postgres_tx::batch(&mut tx, batch).await?;
            tx.commit().await?;
            Ok(outcomes)
        }
    }
}

/// Meldingsteller increments of one batch, by (day, sender org, receiver org, type): one upsert
/// per key and batch rather than per message.
type Counts = std::collections::BTreeMap<(String, String, String, String), i64>;

fn count(counts: &mut Counts, m: &NewMessage) {
    let day = crate::counter::day_of(m.received_at);
    for d in &m.deliveries {
        *counts
            .entry((
                day.clone(),
                m.sender_org.clone(),
                d.receiver_org.clone(),
                m.message_type.clone(),
            ))
            .or_default() += 1;
    }
}

/// The statements, written once and compiled for each backend's connection type.
macro_rules! statements {
    ($($item:item)*) => {
        mod sqlite_tx { use super::*; type Db = sqlx::Sqlite; $($item)* }
        mod postgres_tx { use super::*; type Db = sqlx::Postgres; $($item)* }
    };
}

statements! {
    pub(super) async fn batch(
        c: &mut <Db as sqlx::Database>::Connection,
        batch: &[Command],
    ) -> Result<Vec<Outcome>, sqlx::Error> {
        let mut counts = Counts::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for command in batch {
            outcomes.push(match command {
                Command::Store(message, _) => store_message(c, message, &mut counts).await?,
                Command::MarkRead { message_id, receiver, at, apprec_deadline_ms, .. } => {
                    mark_read(c, message_id, *receiver, *at, *apprec_deadline_ms).await?
                }
                Command::Settle(settlement, _) => settle(c, settlement).await?,
            });
        }
        for ((day, sender_org, receiver_org, message_type), messages) in counts {
            sqlx::query(
                "INSERT INTO message_count (day, sender_org, receiver_org, message_type, messages) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (day, sender_org, receiver_org, message_type) \
                 DO UPDATE SET messages = message_count.messages + excluded.messages",
            )
            .bind(day)
            .bind(sender_org)
            .bind(receiver_org)
            .bind(message_type)
            .bind(messages)
            .execute(&mut *c)
            .await?;
        }
        Ok(outcomes)
    }

    /// The message stored before under `m`'s sender and MsgId: the same document again, or a
    /// refusal if it differs.
    async fn earlier(
        c: &mut <Db as sqlx::Database>::Connection,
        m: &NewMessage,
    ) -> Result<Option<Outcome>, sqlx::Error> {
        let earlier: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, document_sha256 FROM message WHERE sender_her_id = $1 AND document_id = $2",
        )
        .bind(i64::from(m.sender.get()))
        .bind(&m.document_id)
        .fetch_optional(&mut *c)
        .await?;
        Ok(earlier.map(|(id, sha256)| {
            if sha256 == m.sha256 {
                Outcome::Stored(Stored::Duplicate(id))
            } else {
                Outcome::Refused(ExchangeError::Refused(vec![Refusal::format(
                    "E10",
                    if m.is_apprec { "/AppRec/Id" } else { "/MsgHead/MsgInfo/MsgId" },
                    format!(
                        "{:?} was already used by HER-id {} for another document",
                        m.document_id, m.sender
                    ),
                )]))
            }
        }))
    }

    async fn store_message(
        c: &mut <Db as sqlx::Database>::Connection,
        m: &NewMessage,
        counts: &mut Counts,
    ) -> Result<Outcome, sqlx::Error> {
        let Some(answer) = &m.answers else {
            // The common case first: a new MsgId goes straight in, a repeated one is looked up.
            if !insert_message(c, m, None).await? {
                return Ok(earlier(c, m).await?.unwrap_or_else(|| {
                    Outcome::Failed(StoreError::Internal("a conflicting message vanished"))
                }));
            }
            count(counts, m);
            return Ok(Outcome::Stored(Stored::Created(m.id.clone())));
        };
        if let Some(outcome) = earlier(c, m).await? {
            return Ok(outcome);
        }
        let sender = i64::from(m.sender.get());
        let found: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT d.message_id, d.apprec_id FROM message o \
             JOIN delivery d ON d.message_id = o.id AND d.receiver_her_id = $3 \
             WHERE o.sender_her_id = $1 AND o.document_id = $2",
        )
        .bind(i64::from(answer.original_sender.get()))
        .bind(&answer.original_document_id)
        .bind(sender)
        .fetch_optional(&mut *c)
        .await?;
        let Some((original, apprec_id)) = found else {
            return Ok(Outcome::Refused(ExchangeError::Refused(vec![Refusal::format(
                "E10",
                "/AppRec/OriginalMsgId/Id",
                format!(
                    "HER-id {} sent HER-id {} no message with MsgId {:?}",
                    answer.original_sender, m.sender, answer.original_document_id
                ),
            )])));
        };
        if apprec_id.is_some() {
            return Ok(Outcome::Refused(ExchangeError::Conflict(format!(
                "HER-id {} has already answered message {original} with an AppRec",
                m.sender
            ))));
        }
        insert_message(c, m, Some(&original)).await?;
        count(counts, m);
        let errors = serde_json::to_string(&answer.errors).expect("errors serialise");
        // Read and answered: nothing is left to watch.
        sqlx::query(
            "UPDATE delivery SET apprec_status = $1, apprec_errors = $2, apprec_id = $3, \
             due_at = CASE WHEN read_at IS NULL THEN due_at ELSE NULL END \
             WHERE message_id = $4 AND receiver_her_id = $5",
        )
        .bind(i16::from(answer.status.code()))
        .bind(errors)
        .bind(&m.id)
        .bind(original)
        .bind(sender)
        .execute(&mut *c)
        .await?;
        Ok(Outcome::Stored(Stored::Created(m.id.clone())))
    }

    /// Stores `m` and its deliveries; false, and nothing stored, if its sender used its MsgId
    /// before.
    async fn insert_message(
        c: &mut <Db as sqlx::Database>::Connection,
        m: &NewMessage,
        original_id: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let sender = i64::from(m.sender.get());
        let inserted = sqlx::query(
            "INSERT INTO message (id, sender_her_id, sender_org, document_id, document_sha256, \
             message_type, gen_date, gen_at, is_apprec, content_type, document, original_id, \
             source_system, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (sender_her_id, document_id) DO NOTHING",
        )
        .bind(&m.id)
        .bind(sender)
        .bind(&m.sender_org)
        .bind(&m.document_id)
        .bind(&m.sha256)
        .bind(&m.message_type)
        .bind(&m.gen_date)
        .bind(m.gen_at)
        .bind(m.is_apprec)
        .bind(&m.content_type)
        .bind(&m.document)
        .bind(original_id)
        .bind(&m.source_system)
        .bind(m.received_at)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        for d in &m.deliveries {
            sqlx::query(
                "INSERT INTO delivery (message_id, receiver_her_id, receiver_org, gen_at, \
                 transport_state, expects_apprec, due_at) VALUES ($1, $2, $3, $4, 'Unconfirmed', $5, $6)",
            )
            .bind(&m.id)
            .bind(i64::from(d.receiver.get()))
            .bind(&d.receiver_org)
            .bind(m.gen_at)
            .bind(d.expects_apprec)
            .bind(m.due_at)
            .execute(&mut *c)
            .await?;
        }
        Ok(true)
    }

    async fn settle(
        c: &mut <Db as sqlx::Database>::Connection,
        s: &Settlement,
    ) -> Result<Outcome, sqlx::Error> {
        let receiver = i64::from(s.receiver.get());
        let taken = match &s.action {
            Settle::Redeliver { next_due } => sqlx::query(
                "UPDATE delivery SET redeliveries = redeliveries + 1, due_at = $4 \
                 WHERE message_id = $1 AND receiver_her_id = $2 AND due_at = $3",
            )
            .bind(&s.message_id)
            .bind(receiver)
            .bind(s.due_at)
            .bind(next_due)
            .execute(&mut *c)
            .await?
            .rows_affected() == 1,
            Settle::Notice { notice, rejected } => {
                let taken = sqlx::query(
                    "UPDATE delivery SET due_at = NULL, \
                     transport_state = CASE WHEN $4 THEN 'Rejected' ELSE transport_state END \
                     WHERE message_id = $1 AND receiver_her_id = $2 AND due_at = $3",
                )
                .bind(&s.message_id)
                .bind(receiver)
                .bind(s.due_at)
                .bind(rejected)
                .execute(&mut *c)
                .await?
                .rows_affected() == 1;
                if taken {
                    insert_message(c, notice, Some(&s.message_id)).await?;
                    sqlx::query(
                        "UPDATE delivery SET notice_id = $3 WHERE message_id = $1 AND receiver_her_id = $2",
                    )
                    .bind(&s.message_id)
                    .bind(receiver)
                    .bind(&notice.id)
                    .execute(&mut *c)
                    .await?;
                }
                taken
            }
        };
        Ok(Outcome::Settled(taken))
    }

    async fn mark_read(
        c: &mut <Db as sqlx::Database>::Connection,
        message_id: &str,
        receiver: HerId,
        at: i64,
        apprec_deadline_ms: i64,
    ) -> Result<Outcome, sqlx::Error> {
        let receiver = i64::from(receiver.get());
        // A receiver that still owes an AppRec is watched until the deadline; else it is settled.
        let updated = sqlx::query(
            "UPDATE delivery SET read_at = $3, transport_state = 'Acknowledged', \
             due_at = CASE WHEN expects_apprec AND apprec_id IS NULL THEN $4 ELSE NULL END \
             WHERE message_id = $1 AND receiver_her_id = $2 AND read_at IS NULL",
        )
        .bind(message_id)
        .bind(receiver)
        .bind(at)
        .bind(at + apprec_deadline_ms)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if updated == 1 {
            return Ok(Outcome::Read);
        }
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT receiver_her_id FROM delivery WHERE message_id = $1 AND receiver_her_id = $2",
        )
        .bind(message_id)
        .bind(receiver)
        .fetch_optional(&mut *c)
        .await?;
        Ok(match exists {
            // Marking read twice is harmless: the client may not have seen the first answer.
            Some(_) => Outcome::Read,
            None => Outcome::Refused(ExchangeError::NotFound(format!(
                "message {message_id} has no receiver with HER-id {receiver}"
            ))),
        })
    }
}
