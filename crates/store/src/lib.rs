//! One storage layer over two backends: SQLite, the embedded default (one WAL file in the data
//! dir), and PostgreSQL, for scale-out.
//!
//! **Architecture Invariant:** a `Store` holds no state beyond its connection pool. Any number of
//! `helsenett` processes may share one PostgreSQL database; everything they must agree on lives in
//! the database.
//!
//! Queries are written once, with `$N` placeholders that both backends accept, and run on the
//! concrete pool through [`with_pool!`], so each backend keeps its native driver and types.

mod append;
mod error;
pub mod gp;
pub mod hpr;
pub mod kjernejournal;
mod open;
pub mod records;
mod write;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use append::Appender;
pub use error::StoreError;
pub use open::{Backend, Load, SQLITE_FILE, Store, StoreTarget};
pub use write::{Prepared, Record, Value, Writer};

/// Runs `$body` with `$pool` bound to the store's concrete pool (`&SqlitePool` or `&PgPool`).
/// The body is compiled once per backend, so it may use anything both drivers support.
#[macro_export]
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::Store::Sqlite($pool) => $body,
            $crate::Store::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$tx` bound to a [`Writer`]'s concrete transaction, compiled once per
/// backend like [`with_pool!`]; use `&mut **$tx` as the executor.
#[macro_export]
macro_rules! with_tx {
    ($writer:expr, $tx:ident => $body:expr) => {
        match $writer {
            $crate::Writer::Sqlite($tx) => $body,
            $crate::Writer::Postgres($tx) => $body,
        }
    };
}
