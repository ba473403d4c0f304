//! Opening, migrating and probing a store.

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use sqlx::{
    ConnectOptions, Connection,
    postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions},
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use crate::StoreError;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The file of the embedded store inside the data dir.
/// Bytes of the SQLite file each serving connection maps (`PRAGMA mmap_size`).
pub(crate) const SQLITE_MMAP_SIZE: &str = "1073741824";

pub const SQLITE_FILE: &str = "helsenett.db";
/// A new store while a country is being loaded into it.
const LOADING_FILE: &str = "helsenett.db.loading";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Where a store lives: the embedded file in a data dir, or a PostgreSQL URL.
#[derive(Debug, Clone)]
pub enum StoreTarget {
    DataDir(PathBuf),
    Postgres(String),
}

impl StoreTarget {
    /// PostgreSQL when a URL is given, else the embedded store in `data_dir`.
    pub fn new(data_dir: &Path, database_url: Option<&str>) -> Self {
        match database_url {
            Some(url) => StoreTarget::Postgres(url.to_owned()),
            None => StoreTarget::DataDir(data_dir.to_owned()),
        }
    }
}

/// A pool on one backend. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    Load,
}

/// How long to wait for a connection before saying the database is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens the store and brings its schema up to date.
    pub async fn open(target: &StoreTarget) -> Result<Self, StoreError> {
        match target {
            StoreTarget::DataDir(dir) => Self::open_sqlite(dir).await,
            StoreTarget::Postgres(url) => Self::open_postgres(postgres_options(url)?).await,
        }
    }

    /// Opens the store for loading a whole country. A new SQLite store is built in a file of its
    /// own with one connection, the rollback journal in memory and no fsync, and moved into place
    /// by [`Load::finish`]: a crash can then only lose the unfinished file, which the next load
    /// replaces. An existing store keeps its usual durability.
    pub async fn open_for_load(target: &StoreTarget) -> Result<Load, StoreError> {
        let new_sqlite_store = match target {
            StoreTarget::DataDir(dir) if !dir.join(SQLITE_FILE).exists() => Some(dir),
            _ => None,
        };
        let Some(dir) = new_sqlite_store else {
            return Ok(Load {
                store: Self::open(target).await?,
                rename: None,
            });
        };
        ensure_writable(dir)?;
        let partial = dir.join(LOADING_FILE);
        for stale in [partial.clone(), dir.join(format!("{LOADING_FILE}-journal"))] {
            if let Err(cause) = std::fs::remove_file(&stale)
                && cause.kind() != std::io::ErrorKind::NotFound
            {
                return Err(StoreError::DataDir {
                    dir: dir.clone(),
                    cause,
                });
            }
        }
        Ok(Load {
            store: Self::open_sqlite_file(&partial, Mode::Load).await?,
            rename: Some((partial, dir.join(SQLITE_FILE))),
        })
    }

    pub async fn open_sqlite(data_dir: &Path) -> Result<Self, StoreError> {
        ensure_writable(data_dir)?;
        Self::open_sqlite_file(&data_dir.join(SQLITE_FILE), Mode::Serve).await
    }

    async fn open_sqlite_file(path: &Path, mode: Mode) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL with NORMAL is durable across process crashes and loses at most the last
            // transactions on power loss; the exchange opts into FULL where a receipt depends on it.
            // A load keeps its rollback journal in memory instead: every page is written once, not
            // to the WAL and again at checkpoint. The next serving open switches back to WAL.
            .journal_mode(if mode == Mode::Load {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(if mode == Mode::Load {
                SqliteSynchronous::Off
            } else {
                SqliteSynchronous::Normal
            })
            // Statement journals of multi-row inserts stay off the disk.
            .pragma("temp_store", "MEMORY")
            // Pages are read from a shared mapping rather than copied into each connection's
            // cache, which another connection's write would invalidate anyway.
            .pragma("mmap_size", SQLITE_MMAP_SIZE)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Cache in KiB: 8 MiB per serving connection, small because every write by another
            // connection empties it and emptying costs in proportion to its size (pages come
            // from the mapping anyway); 64 MiB for the one loading connection, whose single
            // transaction spills to the file when it outgrows it (measured on norway: 56.6 s at
            // 64 MiB, about 61 s at 256 MiB, 72.7 s at 1 GiB).
            .pragma(
                "cache_size",
                if mode == Mode::Load {
                    "-65536"
                } else {
                    "-8192"
                },
            )
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(if mode == Mode::Load { 1 } else { 8 })
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|cause| StoreError::Connect {
                target: describe_sqlite(path),
                cause,
            })?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|cause| StoreError::Migrate {
                target: describe_sqlite(path),
                cause,
            })?;
        Ok(Store::Sqlite(pool))
    }

    pub async fn open_postgres(options: PgConnectOptions) -> Result<Self, StoreError> {
        let target = describe_postgres(&options);
        // One direct connection first: a pool retries until its timeout and then reports only
        // that it timed out, where this reports the cause (refused, bad password, no database).
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
            .map_err(|cause| StoreError::Connect {
                target: target.clone(),
                cause,
            })?;
        probe.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options.disable_statement_logging())
            .await
            .map_err(|cause| StoreError::Connect {
                target: target.clone(),
                cause,
            })?;
        // sqlx serialises concurrent migrators with an advisory lock, so many nodes may start at once.
        POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|cause| StoreError::Migrate { target, cause })?;
        Ok(Store::Postgres(pool))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// The same database over one connection of its own, for a task that writes in a loop (the
    /// Kjernejournal ledger): it never queues behind the shared pool, and its prepared statements
    /// stay warm. On SQLite it does not checkpoint after its commits (that stalled them; measured
    /// 4,144 → 4,510 record reads/s): whoever uses it runs [`Store::checkpoint`] on the shared
    /// store instead.
    pub fn dedicated(&self) -> Store {
        match self {
            Store::Sqlite(pool) => Store::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_lazy_with(
                        (*pool.connect_options())
                            .clone()
                            .pragma("wal_autocheckpoint", "0"),
                    ),
            ),
            Store::Postgres(pool) => Store::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_lazy_with((*pool.connect_options()).clone()),
            ),
        }
    }

    /// Copies SQLite's write-ahead log into the database as far as no reader holds it back, and
    /// never waits for a lock. PostgreSQL checkpoints by itself.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Store::Sqlite(pool) = self {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Readiness: the database answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        crate::with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    pub async fn close(&self) {
        crate::with_pool!(self, pool => pool.close().await)
    }
}

/// Parses a PostgreSQL URL. The URL itself is never repeated in the error: it may hold a password.
fn postgres_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Url(
            "it must begin with postgres:// (postgres://user:password@host:port/database)".into(),
        ));
    }
    PgConnectOptions::from_str(url).map_err(|e| StoreError::Url(e.to_string()))
}

/// A store opened by [`Store::open_for_load`].
pub struct Load {
    pub store: Store,
    /// The unfinished file and where it goes when the load is complete.
    rename: Option<(PathBuf, PathBuf)>,
}

impl Load {
    /// Closes the store after a successful load and, for a new SQLite store, makes its file
    /// durable and moves it into place.
    pub async fn finish(self) -> Result<(), StoreError> {
        self.store.close().await;
        let Some((partial, path)) = self.rename else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let fail = |cause| StoreError::DataDir {
            dir: dir.to_owned(),
            cause,
        };
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(fail)?;
        std::fs::rename(&partial, &path).map_err(fail)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)
    }
}

/// Creates the data dir if needed and proves it is writable, so the failure is reported as
/// "data dir is not writable" rather than as an obscure SQLite error later.
fn ensure_writable(dir: &Path) -> Result<(), StoreError> {
    let fail = |cause| StoreError::DataDir {
        dir: dir.to_owned(),
        cause,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".helsenett-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

fn describe_sqlite(path: &Path) -> String {
    format!("SQLite store {}", path.display())
}

/// Names host, port and database, never the password.
fn describe_postgres(options: &PgConnectOptions) -> String {
    format!(
        "PostgreSQL at {}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    )
}
