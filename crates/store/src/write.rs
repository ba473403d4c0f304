//! Bulk writing of records, the way a whole country is loaded.

use sqlx::QueryBuilder;

use crate::{Store, StoreError, with_pool};

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

/// Parameters per statement, below SQLite's limit of 32,766 and PostgreSQL's of 65,535.
const MAX_PARAMETERS: usize = 30_000;

impl Store {
    /// Inserts `records` in one transaction with multi-row statements: all of them or none.
    pub async fn insert_all<R: Record>(&self, records: &[R]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let rows_per_statement = MAX_PARAMETERS / R::COLUMNS.len();
        let head = format!("INSERT INTO {} ({}) ", R::TABLE, R::COLUMNS.join(", "));
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in records.chunks(rows_per_statement) {
                let mut query = QueryBuilder::new(&head);
                query.push_values(chunk, |mut row, record| {
                    record.values(&mut |value| {
                        match value {
                            Value::Text(v) => row.push_bind(v),
                            Value::OptText(v) => row.push_bind(v),
                            Value::Owned(v) => row.push_bind(v),
                            Value::OptOwned(v) => row.push_bind(v),
                            Value::Int(v) => row.push_bind(v),
                            Value::OptInt(v) => row.push_bind(v),
                            Value::Bool(v) => row.push_bind(v),
                            Value::Bytes(v) => row.push_bind(v),
                        };
                    })
                });
                query.build().persistent(chunk.len() == rows_per_statement).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Number of rows in a table of the country schema.
    pub async fn count<R: Record>(&self) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {}", R::TABLE);
        Ok(with_pool!(self, pool => sqlx::query_scalar::<_, i64>(&sql).fetch_one(pool).await)?)
    }
}
