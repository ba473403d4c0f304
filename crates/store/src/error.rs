use std::path::PathBuf;

/// Storage failures, each phrased so that an operator knows what to fix. The cause is part of
/// the message rather than a `source()`, so that a cause chain printed on one line does not
/// repeat it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {dir} is not usable: {cause}")]
    DataDir { dir: PathBuf, cause: std::io::Error },
    #[error("cannot open {target}: {cause}")]
    Connect { target: String, cause: sqlx::Error },
    #[error("database URL is not valid: {0}")]
    Url(String),
    #[error("cannot migrate {target}: {cause}")]
    Migrate {
        target: String,
        cause: sqlx::migrate::MigrateError,
    },
    #[error("database error: {0}")]
    Query(sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A mistake in the calling code, reported rather than panicked on.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl StoreError {
    /// A unique key was already taken (the row exists).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Query(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Query(e)
    }
}
