//! The replay log: every JWT identifier HelseID has accepted (client assertions, DPoP proofs at
//! the token endpoint and at every resource server), kept in the database so that a JWT replayed
//! to another node is refused too, until it would have been refused as too old anyway.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use helsenett_store::{Store, StoreError, with_pool};

/// Expired rows are swept once per this many identifiers recorded.
const SWEEP_EVERY: u64 = 4096;

#[derive(Clone)]
pub struct JtiLog {
    store: Store,
    recorded: Arc<AtomicU64>,
}

impl JtiLog {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            recorded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records `key` (a namespaced jti) until `expires_at`; false when it was already recorded.
    pub async fn first_use(&self, key: &str, expires_at: i64) -> Result<bool, StoreError> {
        let inserted = with_pool!(&self.store, pool => sqlx::query(
            "INSERT INTO helseid_jti (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(key)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        if self.recorded.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep().await?;
        }
        Ok(inserted == 1)
    }

    /// Deletes everything HelseID keeps only for a while and that has expired.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let now = crate::now();
        for table in [
            "helseid_jti",
            "helseid_auth_request",
            "helseid_code",
            "helseid_revoked",
        ] {
            let sql = format!("DELETE FROM {table} WHERE expires_at < $1");
            with_pool!(&self.store, pool => sqlx::query(&sql).bind(now).execute(pool).await.map(drop))?;
        }
        Ok(())
    }
}

/// Whether the access token with `jti` has been revoked.
pub async fn is_revoked(store: &Store, jti: &str) -> Result<bool, StoreError> {
    let found = with_pool!(store, pool => sqlx::query_scalar::<_, i64>(
        "SELECT expires_at FROM helseid_revoked WHERE jti = $1",
    )
    .bind(jti)
    .fetch_optional(pool)
    .await)?;
    Ok(found.is_some())
}
