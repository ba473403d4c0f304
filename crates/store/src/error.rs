use std::path::PathBuf;

/// Storage failures, each phrased so that an operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {dir} is not usable: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("database URL is not valid: {0}")]
    Url(String),
    #[error("cannot migrate {target}: {source}")]
    Migrate {
        target: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}
