//! The one test harness for storage: runs a test on a fresh SQLite data dir, and on a fresh
//! PostgreSQL schema when `HELSENETT_TEST_DATABASE_URL` is set (with a printed notice when not).

use std::{
    future::Future,
    io::Write,
    str::FromStr,
    sync::atomic::{AtomicU32, Ordering},
};

use sqlx::{
    Executor,
    postgres::{PgConnectOptions, PgPool},
};

use crate::Store;

pub const TEST_DATABASE_URL_VAR: &str = "HELSENETT_TEST_DATABASE_URL";

/// A store under test, able to open more handles on the same database (more "nodes").
pub struct TestDb {
    pub store: Store,
    location: Location,
}

enum Location {
    Sqlite(std::path::PathBuf),
    Postgres(Box<PgConnectOptions>),
}

impl TestDb {
    /// Another independent pool on the same database, as a second `helsenett` process would have.
    pub async fn open_another(&self) -> Store {
        match &self.location {
            Location::Sqlite(dir) => Store::open_sqlite(dir).await,
            Location::Postgres(options) => Store::open_postgres(options.as_ref().clone()).await,
        }
        .expect("open a second handle")
    }

    /// The data dir of the SQLite store, `None` on PostgreSQL.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        match &self.location {
            Location::Sqlite(dir) => Some(dir),
            Location::Postgres(_) => None,
        }
    }
}

/// The PostgreSQL URL for tests, or `None` after telling the user that PostgreSQL is skipped.
pub fn postgres_url() -> Option<String> {
    match std::env::var(TEST_DATABASE_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Written past the test harness's capture so that the skip is always visible.
            let _ = writeln!(
                std::io::stderr(),
                "notice: {TEST_DATABASE_URL_VAR} is not set; the PostgreSQL run of this test is skipped"
            );
            None
        }
    }
}

/// Runs `test` once per available backend, each on an empty, migrated database.
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(dir.path()).await.expect("open SQLite");
    // The harness owns the directory: a test's future may drop its `TestDb` early.
    test(TestDb {
        store: store.clone(),
        location: Location::Sqlite(dir.path().to_owned()),
    })
    .await;
    store.close().await;
    drop(dir);

    let Some(url) = postgres_url() else { return };
    let (admin, schema) = fresh_schema(&url).await;
    let options = PgConnectOptions::from_str(&url)
        .expect("test URL")
        .options([("search_path", schema.as_str())]);
    let store = Store::open_postgres(options.clone())
        .await
        .expect("open PostgreSQL");
    test(TestDb {
        store: store.clone(),
        location: Location::Postgres(Box::new(options)),
    })
    .await;
    store.close().await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .expect("drop test schema");
}

/// Creates a uniquely named schema so that tests never see each other's rows.
pub async fn fresh_schema(url: &str) -> (PgPool, String) {
    static N: AtomicU32 = AtomicU32::new(0);
    let admin = PgPool::connect(url)
        .await
        .expect("connect to the test PostgreSQL");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!(
        "test_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    );
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .expect("create test schema");
    (admin, schema)
}
