//! The ledger: every read and write of a record runs here, in the same database transaction as
//! its audit record. One task per node takes requests in batches; each batch is one transaction
//! that locks the chain's head, decides each request on facts read in that transaction, does what
//! was granted, appends the audit records and commits. Nobody gets an answer before the commit:
//! no audit, no data. Batching is what makes this fast; the lock on the head is what keeps one
//! chain across any number of nodes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use helsenett_core::{Fodselsnummer, time::now_millis};
use helsenett_store::{
    Backend, Store, StoreError, Writer,
    kjernejournal::{KjDocument, KjEpisode, Privacy, Section},
    with_tx,
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    access::{self, Access, Caller, Ctx, Intent, Refusal},
    audit::{self, Action, Event, Mode},
    facts::{self, Known},
};

/// Requests in one transaction at most: enough to carry thousands a second, few enough that
/// one batch's wait stays a few milliseconds.
const MAX_BATCH: usize = 256;
/// Requests waiting at most before callers wait to hand theirs over.
const QUEUE: usize = 4096;
/// How often the ledger's write-ahead log is checkpointed (SQLite), which its own connection
/// leaves to another: often enough that the log stays a few megabytes at thousands of reads/s.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// A new entry, validated, with its id given.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub id: String,
    pub section: Section,
    pub resource_type: &'static str,
    pub resource: String,
    pub episode: Option<KjEpisode>,
    pub document: Option<KjDocument>,
}

/// What a request asks the ledger to do.
#[derive(Debug, Clone)]
pub enum Op {
    ReadRecord,
    ReadDocument(String),
    Add(NewEntry),
    /// Removes an entry of the section (critical information, or the citizen's own).
    Remove(Section, String),
    /// The citizen's next of kin, all at once.
    ReplaceNextOfKin(Vec<NewEntry>),
    /// Health personnel register that no critical information is known.
    NilKnown,
    SetPrivacy(Privacy),
}

impl Op {
    /// Whether it leaves the record and its facts as they are.
    fn is_read(&self) -> bool {
        matches!(self, Op::ReadRecord | Op::ReadDocument(_))
    }

    fn intent(&self, emergency: bool) -> Intent {
        match self {
            Op::ReadRecord | Op::ReadDocument(_) => Intent::Read { emergency },
            Op::Add(entry) if access::INGESTED.contains(&entry.section) => {
                Intent::Ingest(entry.section)
            }
            Op::Add(NewEntry {
                section: Section::Critical,
                ..
            })
            | Op::Remove(Section::Critical, _)
            | Op::NilKnown => Intent::WriteCritical,
            Op::Add(_) | Op::Remove(..) | Op::ReplaceNextOfKin(_) | Op::SetPrivacy(_) => {
                Intent::WriteOwn
            }
        }
    }

    fn action(&self) -> Action {
        match self {
            Op::ReadRecord | Op::ReadDocument(_) => Action::Read,
            Op::Add(_) => Action::Create,
            Op::Remove(..) => Action::Delete,
            Op::ReplaceNextOfKin(_) | Op::NilKnown | Op::SetPrivacy(_) => Action::Update,
        }
    }

    /// What the audit says was read or changed.
    fn what(&self) -> (String, Option<String>) {
        match self {
            Op::ReadRecord => ("summary care record".into(), None),
            Op::ReadDocument(id) => (
                "shared document".into(),
                Some(format!("DocumentReference/{id}")),
            ),
            Op::Add(entry) => (
                format!("{} entry", entry.section.as_str()),
                Some(format!("{}/{}", entry.resource_type, entry.id)),
            ),
            Op::Remove(section, id) => (format!("{} entry {id}", section.as_str()), None),
            Op::ReplaceNextOfKin(_) => ("next of kin".into(), None),
            Op::NilKnown => ("critical information: none known".into(), None),
            Op::SetPrivacy(p) => (format!("access to the record: {}", p.as_str()), None),
        }
    }
}

/// One request: who, about whom, why, and what.
pub struct Request {
    pub ctx: Arc<Ctx>,
    pub patient: Fodselsnummer,
    pub reason: Option<String>,
    pub emergency: bool,
    pub op: Op,
}

/// An entry as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub section: String,
    pub resource_type: String,
    pub resource: String,
}

/// What a granted request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Record {
        rows: Vec<Row>,
        nil_known: bool,
    },
    /// The document's entry and content; `None` if the record has no such document.
    Document(Option<(Row, String, Vec<u8>)>),
    Added,
    /// Whether there was such an entry to remove.
    Removed(bool),
    Updated,
    /// Nothing was changed, and why (for example "none known" while entries exist).
    Unchanged(&'static str),
}

/// The answer: the access given and what came of it, or the refusal; and the audit record's
/// sequence number either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub seq: i64,
    pub outcome: Result<(Access, Done), Refusal>,
}

type Reply = oneshot::Sender<Result<Answer, LedgerError>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// The transaction failed: nothing was read, changed or audited.
    #[error("the audit could not be written, so nothing was read or changed: {0}")]
    Unavailable(String),
}

/// The handle requests are sent through. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    queue: mpsc::Sender<(Request, Reply)>,
}

impl Ledger {
    /// Starts the node's ledger task, on a connection of its own, and what checkpoints for it.
    pub fn start(store: Store) -> Ledger {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store.dedicated(), rx));
        if store.backend() == Backend::Sqlite {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
                loop {
                    tick.tick().await;
                    if let Err(e) = store.checkpoint().await {
                        tracing::warn!(error = %e, "kjernejournal: a checkpoint failed; it runs again");
                    }
                }
            });
        }
        Ledger { queue }
    }

    /// Runs `request` and returns once its transaction committed.
    pub async fn submit(&self, request: Request) -> Result<Answer, LedgerError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || LedgerError::Unavailable("the ledger has stopped".into());
        self.queue
            .send((request, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<(Request, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let requests: Vec<&Request> = batch.iter().map(|(r, _)| r).collect();
        let started = std::time::Instant::now();
        let result = transact(&store, &requests).await;
        metrics::histogram!("kjernejournal_ledger_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("kjernejournal_ledger_batch_size").record(batch.len() as f64);
        match result {
            Ok(answers) => {
                for ((_, reply), answer) in batch.drain(..).zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = batch.len(), "a ledger transaction failed; nothing was read or changed");
                let message = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(LedgerError::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// One batch in one transaction.
async fn transact(store: &Store, requests: &[&Request]) -> Result<Vec<Answer>, StoreError> {
    let mut w = store.writer().await?;
    // The head first: a write, so SQLite takes its write lock now, and PostgreSQL's row lock
    // queues other nodes' batches behind this one.
    let (mut seq, mut hash) = with_tx!(&mut w, tx => sqlx::query_as::<_, (i64, String)>(
        "UPDATE kj_audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash",
    )
    .fetch_one(&mut **tx)
    .await)?;
    let mut answers = Vec::with_capacity(requests.len());
    let mut counted = Vec::with_capacity(requests.len());
    // Appended together at the end: one statement, not one a request.
    let mut appended = Vec::with_capacity(requests.len());
    let mut start = 0;
    while start < requests.len() {
        // Reads run together; a write runs alone, so that the requests after it see its change.
        let reads = requests[start..]
            .iter()
            .take_while(|r| r.op.is_read())
            .count();
        let run = &requests[start..start + reads.max(1)];
        start += run.len();
        let now = now_millis();
        let known = facts::known(&mut w, run, now).await?;
        let decisions: Vec<_> = run
            .iter()
            .zip(&known)
            .map(|(request, known)| {
                access::decide(
                    &request.ctx,
                    &request.patient,
                    request.op.intent(request.emergency),
                    &known.facts,
                )
            })
            .collect();
        let read = run
            .iter()
            .zip(&decisions)
            .filter(|(r, d)| d.is_ok() && matches!(r.op, Op::ReadRecord))
            .map(|(r, _)| r.patient.to_string());
        let records = facts::entries(&mut w, read).await?;
        for ((request, known), decision) in run.iter().zip(known).zip(decisions) {
            let done = match decision {
                Ok(access) => Some(perform(&mut w, request, access, &known, &records, now).await?),
                Err(_) => None,
            };
            let result = done.as_ref().and_then(describe);
            let (what, resource) = request.op.what();
            let mode = Mode::of(&request.ctx, request.emergency, &decision);
            let event = Event {
                recorded: now,
                patient: &request.patient,
                ctx: &request.ctx,
                organisation_name: known.organisation_name.as_deref(),
                profession: known.profession,
                action: request.op.action(),
                what: &what,
                resource: resource.as_deref(),
                reason: request.reason.as_deref(),
                mode,
                decision: &decision,
                result: result.as_deref(),
            };
            seq += 1;
            let row = audit::AuditRow::chained(&event, seq, std::mem::take(&mut hash))
                .ok_or_else(|| StoreError::Corrupt("an audit event lacks its own facts".into()))?;
            hash.clone_from(&row.hash);
            appended.push(row);
            counted.push((mode, decision.is_ok()));
            answers.push(Answer {
                seq,
                outcome: match (decision, done) {
                    (Ok(access), Some(done)) => Ok((access, done)),
                    (Err(refusal), _) => Err(refusal),
                    (Ok(_), None) => unreachable!("a granted request is performed"),
                },
            });
        }
    }
    w.insert_all(&appended).await?;
    with_tx!(&mut w, tx => sqlx::query("UPDATE kj_audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut **tx)
        .await
        .map(|r| r.rows_affected()))?;
    w.commit().await?;
    for (mode, granted) in counted {
        let outcome = if granted {
            audit::GRANTED
        } else {
            audit::DENIED
        };
        metrics::counter!("kjernejournal_audit_records_total", "access" => mode.as_str(), "outcome" => outcome)
            .increment(1);
    }
    Ok(answers)
}

/// What the audit adds after "granted" when a change did not happen as asked.
fn describe(done: &Done) -> Option<String> {
    match done {
        Done::Document(None) => Some("no such document in the record".into()),
        Done::Removed(false) => Some("no such entry: nothing removed".into()),
        Done::Unchanged(why) => Some(format!("nothing changed: {why}")),
        _ => None,
    }
}

/// Does what was granted.
async fn perform(
    w: &mut Writer,
    request: &Request,
    access: Access,
    known: &Known,
    records: &HashMap<String, Vec<Row>>,
    now: i64,
) -> Result<Done, StoreError> {
    let nin = request.patient.to_string();
    let author = author(&request.ctx.caller);
    Ok(match &request.op {
        Op::ReadRecord => Done::Record {
            rows: records.get(&nin).cloned().unwrap_or_default(),
            nil_known: known.nil_known,
        },
        Op::ReadDocument(id) => Done::Document(document(w, &nin, id, access).await?),
        Op::Add(entry) => {
            insert(w, &nin, &author, now, entry).await?;
            if entry.section == Section::Critical {
                with_tx!(w, tx => sqlx::query("UPDATE kj_record SET nil_known_at = NULL, updated = $2 WHERE nin = $1")
                    .bind(&nin)
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map(|r| r.rows_affected()))?;
            }
            Done::Added
        }
        Op::Remove(section, id) => {
            let removed = with_tx!(w, tx => sqlx::query(
                "DELETE FROM kj_entry WHERE id = $1 AND nin = $2 AND section = $3",
            )
            .bind(id)
            .bind(&nin)
            .bind(section.as_str())
            .execute(&mut **tx)
            .await
            .map(|r| r.rows_affected()))?;
            Done::Removed(removed > 0)
        }
        Op::ReplaceNextOfKin(entries) => {
            with_tx!(w, tx => sqlx::query("DELETE FROM kj_entry WHERE nin = $1 AND section = $2")
                .bind(&nin)
                .bind(Section::NextOfKin.as_str())
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()))?;
            for entry in entries {
                insert(w, &nin, &author, now, entry).await?;
            }
            Done::Updated
        }
        Op::NilKnown => {
            let critical = with_tx!(w, tx => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM kj_entry WHERE nin = $1 AND section = $2",
            )
            .bind(&nin)
            .bind(Section::Critical.as_str())
            .fetch_one(&mut **tx)
            .await)?;
            if critical > 0 {
                Done::Unchanged("critical information is registered; remove it first")
            } else {
                upsert_record(w, &nin, None, Some(now), now).await?;
                Done::Updated
            }
        }
        Op::SetPrivacy(privacy) => {
            upsert_record(w, &nin, Some(*privacy), None, now).await?;
            Done::Updated
        }
    })
}

fn author(caller: &Caller) -> String {
    use helsenett_store::kjernejournal::{actor_citizen, actor_client, actor_hpr};
    match caller {
        Caller::Personnel { hpr, .. } => actor_hpr(hpr),
        Caller::Citizen { pid, .. } => actor_citizen(pid),
        Caller::System { client_id } => actor_client(client_id),
    }
}

/// A document of the record, if the access may see it (confidentiality, see `record`).
async fn document(
    w: &mut Writer,
    nin: &str,
    id: &str,
    access: Access,
) -> Result<Option<(Row, String, Vec<u8>)>, StoreError> {
    let found = with_tx!(w, tx => sqlx::query_as::<_, (String, String, String, Vec<u8>)>(
        "SELECT e.section, e.resource, d.content_type, d.data
         FROM kj_entry e JOIN kj_document d ON d.entry_id = e.id
         WHERE e.id = $1 AND e.nin = $2",
    )
    .bind(id)
    .bind(nin)
    .fetch_optional(&mut **tx)
    .await)?;
    Ok(found.and_then(|(section, resource, content_type, data)| {
        let row = Row {
            id: id.to_owned(),
            section,
            resource_type: "DocumentReference".into(),
            resource,
        };
        crate::record::visible(&row, access).then_some((row, content_type, data))
    }))
}

/// Whose record a document is in: what a read by document id is decided and audited against.
pub async fn document_owner(store: &Store, id: &str) -> Result<Option<Fodselsnummer>, StoreError> {
    let nin = helsenett_store::with_pool!(store, pool => sqlx::query_scalar::<_, String>(
        "SELECT e.nin FROM kj_entry e JOIN kj_document d ON d.entry_id = e.id WHERE e.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    nin.map(|n| {
        n.parse()
            .map_err(|_| StoreError::Corrupt(format!("kj_entry {id} has no valid number")))
    })
    .transpose()
}

async fn insert(
    w: &mut Writer,
    nin: &str,
    author: &str,
    now: i64,
    entry: &NewEntry,
) -> Result<(), StoreError> {
    with_tx!(w, tx => sqlx::query(
        "INSERT INTO kj_entry (id, nin, section, resource_type, author, recorded, resource)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&entry.id)
    .bind(nin)
    .bind(entry.section.as_str())
    .bind(entry.resource_type)
    .bind(author)
    .bind(now)
    .bind(&entry.resource)
    .execute(&mut **tx)
    .await
    .map(|r| r.rows_affected()))?;
    if let Some(episode) = &entry.episode {
        w.insert_all(std::slice::from_ref(episode)).await?;
    }
    if let Some(document) = &entry.document {
        w.insert_all(std::slice::from_ref(document)).await?;
    }
    Ok(())
}

/// Sets the record's privacy or its "none known" time, keeping the rest.
async fn upsert_record(
    w: &mut Writer,
    nin: &str,
    privacy: Option<Privacy>,
    nil_known_at: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    with_tx!(w, tx => sqlx::query(
        "INSERT INTO kj_record (nin, privacy, nil_known_at, watched, updated)
         VALUES ($1, COALESCE($2, 'open'), $3, FALSE, $4)
         ON CONFLICT (nin) DO UPDATE SET
            privacy = COALESCE($2, kj_record.privacy),
            nil_known_at = COALESCE($3, kj_record.nil_known_at),
            updated = $4",
    )
    .bind(nin)
    .bind(privacy.map(Privacy::as_str))
    .bind(nil_known_at)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
