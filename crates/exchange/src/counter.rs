//! Meldingsteller, the message counter: messages per day, sender organisation, receiver
//! organisation and message type, counted in the transaction that accepts each message so the
//! count is exact. Days are UTC dates.

use chrono::{DateTime, NaiveDate};
use helsenett_store::{Store, with_pool};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ExchangeError;

/// Rows one query returns at most.
pub const MAX_ROWS: i64 = 10_000;

/// The day (UTC) of an instant in milliseconds.
pub fn day_of(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis)
        .map(|at| at.date_naive().to_string())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CountQuery {
    /// First day, inclusive (YYYY-MM-DD).
    #[param(value_type = String)]
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    #[param(value_type = String)]
    pub to: Option<NaiveDate>,
    /// Sender organisation (organisasjonsnummer).
    pub sender_org: Option<String>,
    /// Receiver organisation (organisasjonsnummer).
    pub receiver_org: Option<String>,
    pub message_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Count {
    pub day: String,
    pub sender_org: String,
    pub receiver_org: String,
    pub message_type: String,
    pub messages: i64,
}

/// The counts matching `query`, by day, then sender, receiver and type. `only_org`, when given,
/// limits them to rows where that organisation is the sender or the receiver.
pub async fn counts(
    store: &Store,
    query: &CountQuery,
    only_org: Option<&str>,
) -> Result<Vec<Count>, ExchangeError> {
    let from = query.from.map(|d| d.to_string()).unwrap_or_default();
    let to = query
        .to
        .map(|d| d.to_string())
        .unwrap_or_else(|| "9999-12-31".to_owned());
    let rows: Vec<(String, String, String, String, i64)> = with_pool!(store, pool => {
        sqlx::query_as(
            "SELECT day, sender_org, receiver_org, message_type, messages FROM message_count \
             WHERE day >= $1 AND day <= $2 \
             AND ($3 IS NULL OR sender_org = $3) AND ($4 IS NULL OR receiver_org = $4) \
             AND ($5 IS NULL OR message_type = $5) \
             AND ($6 IS NULL OR sender_org = $6 OR receiver_org = $6) \
             ORDER BY day, sender_org, receiver_org, message_type LIMIT $7",
        )
        .bind(&from)
        .bind(&to)
        .bind(&query.sender_org)
        .bind(&query.receiver_org)
        .bind(&query.message_type)
        .bind(only_org)
        .bind(MAX_ROWS)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(day, sender_org, receiver_org, message_type, messages)| Count {
                day,
                sender_org,
                receiver_org,
                message_type,
                messages,
            },
        )
        .collect())
}
