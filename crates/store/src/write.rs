//! Bulk writing of records, the way a whole country is loaded.

use std::fmt::Write as _;

use sqlx::{
    Arguments, Database, Encode, Postgres, Sqlite, Transaction, Type, postgres::PgArguments,
    sqlite::SqliteArguments,
};

use crate::{Backend, Store, StoreError, gp, kjernejournal, with_pool, with_tx};

/// A column value, borrowed from the record that is being written.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    /// Text made for the write, such as an identifier's string form.
    Owned(String),
    OptOwned(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    Bytes(&'a [u8]),
}

/// A row type with a fixed table and column order.
pub trait Record {
    const TABLE: &'static str;
    const COLUMNS: &'static [&'static str];
    /// Hands each column's value to `push`, in `COLUMNS` order.
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>));
}

/// Indexes that a bulk load drops first and builds once at the end, each defined beside its
/// table's reads: rows arrive in an order that scatters their keys, and one build from the
/// finished table is much cheaper than keeping them up row by row.
const BULK_INDEXES: [&str; 3] = [
    gp::MEMBERS_BY_LIST,
    kjernejournal::ENTRIES_BY_NIN,
    kjernejournal::EPISODES_BY_NIN,
];

/// Parameters per statement, below SQLite's limit of 32,766 and PostgreSQL's of 65,535.
const MAX_PARAMETERS: usize = 30_000;

/// One open transaction that records are written in: everything written through it becomes
/// visible at [`Writer::commit`], or not at all if it is dropped or a write fails.
pub enum Writer {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Store {
    /// Starts a transaction for writing records.
    pub async fn writer(&self) -> Result<Writer, StoreError> {
        Ok(match self {
            Store::Sqlite(pool) => Writer::Sqlite(pool.begin().await?),
            Store::Postgres(pool) => Writer::Postgres(pool.begin().await?),
        })
    }

    /// Inserts `records` all or none. When one statement holds them all, it commits on its
    /// own: an explicit transaction would cost two more round trips to SQLite's worker thread,
    /// about 50 µs each (measured), for every batch of a group commit.
    pub async fn insert_all<R: Record>(&self, records: &[R]) -> Result<(), StoreError> {
        let prepared = Prepared::new(self.backend(), records)?;
        match (self, prepared.0) {
            (Store::Sqlite(pool), Statements::Sqlite(mut one)) if one.len() == 1 => {
                let s = one.remove(0);
                sqlx::query_with(&s.sql, s.args)
                    .persistent(s.reuse)
                    .execute(pool)
                    .await?;
            }
            (Store::Postgres(pool), Statements::Postgres(mut one)) if one.len() == 1 => {
                let s = one.remove(0);
                sqlx::query_with(&s.sql, s.args)
                    .persistent(s.reuse)
                    .execute(pool)
                    .await?;
            }
            (_, statements) => {
                let mut writer = self.writer().await?;
                writer.insert_prepared(Prepared(statements)).await?;
                writer.commit().await?;
            }
        }
        Ok(())
    }

    /// Number of rows in a table of the country schema.
    pub async fn count<R: Record>(&self) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {}", R::TABLE);
        Ok(with_pool!(self, pool => sqlx::query_scalar::<_, i64>(&sql).fetch_one(pool).await)?)
    }
}

/// Records turned into statements and their arguments, ready for a [`Writer`]. Building the
/// arguments is about half the cost of a bulk write and needs no connection, so a caller may do it
/// on another thread while the previous batch is being written.
pub struct Prepared(Statements);

struct Statement<A> {
    sql: String,
    args: A,
    /// Full-size statements share one prepared statement; the last, shorter one is used once.
    reuse: bool,
}

enum Statements {
    Sqlite(Vec<Statement<SqliteArguments<'static>>>),
    Postgres(Vec<Statement<PgArguments>>),
}

impl Prepared {
    pub fn new<R: Record>(backend: Backend, records: &[R]) -> Result<Self, StoreError> {
        Ok(Prepared(match backend {
            Backend::Sqlite => Statements::Sqlite(statements::<R, Sqlite>(records, backend)?),
            Backend::Postgres => Statements::Postgres(statements::<R, Postgres>(records, backend)?),
        }))
    }
}

/// Multi-row `INSERT`s of at most [`MAX_PARAMETERS`] parameters each. Values are bound owned, so
/// the arguments outlive `records` and the driver does not copy them again.
fn statements<R, DB>(
    records: &[R],
    backend: Backend,
) -> Result<Vec<Statement<DB::Arguments<'static>>>, StoreError>
where
    R: Record,
    DB: Database,
    String: Encode<'static, DB> + Type<DB>,
    Option<String>: Encode<'static, DB> + Type<DB>,
    i64: Encode<'static, DB> + Type<DB>,
    Option<i64>: Encode<'static, DB> + Type<DB>,
    bool: Encode<'static, DB> + Type<DB>,
    Vec<u8>: Encode<'static, DB> + Type<DB>,
{
    let columns = R::COLUMNS.len();
    let rows_per_statement = MAX_PARAMETERS / columns;
    let mut full_sql = None;
    records
        .chunks(rows_per_statement)
        .map(|chunk| {
            let full = chunk.len() == rows_per_statement;
            let sql = if full {
                full_sql
                    .get_or_insert_with(|| insert_sql::<R>(chunk.len(), backend))
                    .clone()
            } else {
                insert_sql::<R>(chunk.len(), backend)
            };
            let mut args = DB::Arguments::default();
            args.reserve(chunk.len() * columns, 0);
            let mut result = Ok(());
            for record in chunk {
                record.values(&mut |value| {
                    if result.is_ok() {
                        result = match value {
                            Value::Text(v) => args.add(v.to_owned()),
                            Value::OptText(v) => args.add(v.map(str::to_owned)),
                            Value::Owned(v) => args.add(v),
                            Value::OptOwned(v) => args.add(v),
                            Value::Int(v) => args.add(v),
                            Value::OptInt(v) => args.add(v),
                            Value::Bool(v) => args.add(v),
                            Value::Bytes(v) => args.add(v.to_vec()),
                        };
                    }
                });
            }
            result.map_err(|e| StoreError::Query(sqlx::Error::Encode(e)))?;
            Ok(Statement {
                sql,
                args,
                reuse: full,
            })
        })
        .collect()
}

/// `INSERT INTO table (columns) VALUES ($1, ...), ...` for `rows` rows. SQLite gets plain `?`:
/// it resolves each named parameter by a linear search, which makes a statement of 30,000
/// `$N` parameters take a second to prepare.
fn insert_sql<R: Record>(rows: usize, backend: Backend) -> String {
    let columns = R::COLUMNS.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        R::TABLE,
        R::COLUMNS.join(", ")
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    write!(sql, "${}", row * columns + column + 1).expect("writing to a String")
                }
            }
        }
        sql.push(')');
    }
    sql
}

impl Writer {
    /// Inserts `records` with multi-row statements.
    pub async fn insert_all<R: Record>(&mut self, records: &[R]) -> Result<(), StoreError> {
        let prepared = Prepared::new(self.backend(), records)?;
        self.insert_prepared(prepared).await
    }

    /// Runs statements made by [`Prepared::new`] for this writer's backend.
    pub async fn insert_prepared(&mut self, prepared: Prepared) -> Result<(), StoreError> {
        match (self, prepared.0) {
            (Writer::Sqlite(tx), Statements::Sqlite(statements)) => {
                for s in statements {
                    let query = sqlx::query_with(&s.sql, s.args).persistent(s.reuse);
                    query.execute(&mut **tx).await?;
                }
            }
            (Writer::Postgres(tx), Statements::Postgres(statements)) => {
                for s in statements {
                    let query = sqlx::query_with(&s.sql, s.args).persistent(s.reuse);
                    query.execute(&mut **tx).await?;
                }
            }
            _ => {
                return Err(StoreError::Internal(
                    "records prepared for one backend were written to the other",
                ));
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Writer::Sqlite(_) => Backend::Sqlite,
            Writer::Postgres(_) => Backend::Postgres,
        }
    }

    /// Drops the indexes that [`Writer::build_bulk_indexes`] builds once a bulk load is written.
    pub async fn drop_bulk_indexes(&mut self) -> Result<(), StoreError> {
        for create in BULK_INDEXES {
            let name = create.split(' ').nth(2).expect("CREATE INDEX <name>");
            self.execute(&format!("DROP INDEX {name}")).await?;
        }
        Ok(())
    }

    pub async fn build_bulk_indexes(&mut self) -> Result<(), StoreError> {
        for create in BULK_INDEXES {
            self.execute(create).await?;
        }
        Ok(())
    }

    async fn execute(&mut self, sql: &str) -> Result<(), StoreError> {
        with_tx!(self, tx => sqlx::query(sql).execute(&mut **tx).await.map(drop))?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Writer::Sqlite(tx) => tx.commit().await?,
            Writer::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}
