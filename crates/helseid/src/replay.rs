//! The replay log: every JWT identifier HelseID has accepted (client assertions, DPoP proofs at
//! the token endpoint and at every resource server), kept in the database so that a JWT replayed
//! to another node is refused too, until it would have been refused as too old anyway.
//!
//! Identifiers are written by one task per node in group commits: requests that arrive together
//! share one statement and one transaction, so the log costs one write per batch rather than
//! one per request, and SQLite's single writer is never contended by the log.

use std::{collections::HashSet, fmt::Write as _};

use helsenett_store::{Store, StoreError, with_pool};
use tokio::sync::{mpsc, oneshot};

use crate::Failure;

/// Largest group commit: 2 parameters each, far below either backend's limit.
const MAX_BATCH: usize = 256;
/// Expired rows are swept after about this many identifiers.
const SWEEP_EVERY: usize = 8192;

struct Entry {
    key: String,
    expires_at: i64,
    first: oneshot::Sender<Result<bool, String>>,
}

#[derive(Clone)]
pub struct JtiLog {
    entries: mpsc::Sender<Entry>,
}

impl JtiLog {
    /// Starts the node's writer task; it ends when the last handle is dropped.
    pub fn start(store: Store) -> Self {
        let (entries, incoming) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write(store, incoming));
        Self { entries }
    }

    /// Records `key` (a namespaced jti) until `expires_at`; false when it was already recorded.
    pub async fn first_use(&self, key: String, expires_at: i64) -> Result<bool, Failure> {
        Ok(self.first_use_all(vec![(key, expires_at)]).await?[0])
    }

    /// Records several keys in the same group commit; for each, whether it was new.
    pub async fn first_use_all(&self, keys: Vec<(String, i64)>) -> Result<Vec<bool>, Failure> {
        let stopped = || Failure::Replay("the writer has stopped".into());
        let mut answers = Vec::with_capacity(keys.len());
        for (key, expires_at) in keys {
            let (first, answer) = oneshot::channel();
            self.entries
                .send(Entry {
                    // 128 bits of SHA-256: short keys keep the index small; a collision would
                    // need 2^64 identifiers.
                    key: crate::jose::b64url(&openssl::sha::sha256(key.as_bytes())[..16]),
                    expires_at,
                    first,
                })
                .await
                .map_err(|_| stopped())?;
            answers.push(answer);
        }
        let mut firsts = Vec::with_capacity(answers.len());
        for answer in answers {
            firsts.push(
                answer
                    .await
                    .map_err(|_| stopped())?
                    .map_err(Failure::Replay)?,
            );
        }
        Ok(firsts)
    }
}

async fn write(store: Store, mut incoming: mpsc::Receiver<Entry>) {
    let mut since_sweep = 0;
    // A quiet node sweeps too: pending logins and codes expire whether or not tokens are issued.
    let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        let entry = tokio::select! {
            entry = incoming.recv() => match entry {
                Some(entry) => entry,
                None => break,
            },
            _ = every_minute.tick() => {
                if let Err(e) = sweep(&store).await {
                    tracing::warn!(error = %e, "expired HelseID rows were not swept");
                }
                continue;
            }
        };
        let mut batch = vec![entry];
        while batch.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        since_sweep += batch.len();
        match insert(&store, &batch).await {
            Ok(inserted) => {
                // A key twice in one batch: the first is new, the second a replay.
                let mut answered = HashSet::new();
                for entry in batch {
                    let first = inserted.contains(&entry.key) && answered.insert(entry.key);
                    let _ = entry.first.send(Ok(first));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the replay log cannot be written");
                for entry in batch {
                    let _ = entry.first.send(Err(e.to_string()));
                }
            }
        }
        if since_sweep >= SWEEP_EVERY {
            since_sweep = 0;
            if let Err(e) = sweep(&store).await {
                tracing::warn!(error = %e, "expired HelseID rows were not swept");
            }
        }
    }
}

/// Inserts the batch in one statement; returns the keys that were new.
async fn insert(store: &Store, batch: &[Entry]) -> Result<HashSet<String>, StoreError> {
    let mut sql = String::from("INSERT INTO helseid_jti (jti, expires_at) VALUES ");
    for i in 0..batch.len() {
        let sep = if i == 0 { "" } else { ", " };
        write!(sql, "{sep}(${}, ${})", 2 * i + 1, 2 * i + 2).expect("writing to a String");
    }
    sql.push_str(" ON CONFLICT (jti) DO NOTHING RETURNING jti");
    let inserted = with_pool!(store, pool => {
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for entry in batch {
            query = query.bind(&entry.key).bind(entry.expires_at);
        }
        query.fetch_all(pool).await
    })?;
    Ok(inserted.into_iter().collect())
}

/// Rows are kept this long past their expiry, so that a node whose clock runs behind the
/// sweeping node's still finds them.
const SWEEP_MARGIN_SECONDS: i64 = 300;

/// Deletes everything HelseID keeps only for a while and that has expired.
pub async fn sweep(store: &Store) -> Result<(), StoreError> {
    let now = crate::now() - SWEEP_MARGIN_SECONDS;
    for table in [
        "helseid_jti",
        "helseid_auth_request",
        "helseid_code",
        "helseid_revoked",
    ] {
        let sql = format!("DELETE FROM {table} WHERE expires_at < $1");
        with_pool!(store, pool => sqlx::query(&sql).bind(now).execute(pool).await.map(drop))?;
    }
    Ok(())
}

/// Revoked tokens as a node knows them: every unexpired revocation in the database, read again
/// once a second, and this node's own revocations at once. The guard asks on every request, so
/// the answer comes from memory. Revocations are few (tokens live minutes), so each read takes
/// them all, and no node's clock decides what another node sees.
pub struct Revocations {
    store: Store,
    known: std::sync::RwLock<Known>,
    reading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Known {
    /// jti → when the token expires.
    jtis: std::collections::HashMap<String, i64>,
    read_at: Option<std::time::Instant>,
}

/// How stale a node's view of other nodes' revocations may be.
pub const REVOCATION_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

impl Revocations {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            known: std::sync::RwLock::new(Known::default()),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        if self.is_stale() {
            let _reading = self.reading.lock().await;
            // Whoever held the lock may have read them meanwhile.
            if self.is_stale() {
                self.read().await?;
            }
        }
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        Ok(known.jtis.contains_key(jti))
    }

    fn is_stale(&self) -> bool {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known
            .read_at
            .is_none_or(|t| t.elapsed() >= REVOCATION_REFRESH)
    }

    async fn read(&self) -> Result<(), StoreError> {
        let now = crate::now();
        let rows = with_pool!(&self.store, pool => sqlx::query_as::<_, (String, i64)>(
            "SELECT jti, expires_at FROM helseid_revoked WHERE expires_at >= $1",
        )
        .bind(now)
        .fetch_all(pool)
        .await)?;
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        known.jtis = rows.into_iter().collect();
        known.read_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// Revokes the access token with `jti`, remembered until it would expire anyway.
    pub async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        with_pool!(&self.store, pool => sqlx::query(
            "INSERT INTO helseid_revoked (jti, expires_at) VALUES ($1, $2)
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(drop))?;
        self.known
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .jtis
            .insert(jti.to_owned(), expires_at);
        metrics::counter!("helseid_tokens_revoked_total").increment(1);
        Ok(())
    }
}
