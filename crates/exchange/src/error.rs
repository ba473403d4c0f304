//! Why the exchange refuses a request. Every refusal of a document carries the kodeverk 8221 code
//! an AppRec would use for it, so a sender's system can handle the API's answer and a receiver's
//! AppRec the same way.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use helsenett_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// A fault in a document, where it is and the AppRec error code for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Kodeverk 8221.
    pub code: &'static str,
    /// Where in the document, as an XPath-like path.
    pub path: String,
    pub message: String,
}

impl Refusal {
    pub fn format(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `/a/b/c` from `["a", "b", "c"]`.
pub fn at(path: &[&str]) -> String {
    path.iter().fold(String::new(), |mut s, step| {
        s.push('/');
        s.push_str(step);
        s
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The document is refused; `problems` lists every fault found (the first is the reason).
    #[error("{}: {}", .0[0].code, .0[0].message)]
    Refused(Vec<Refusal>),
    /// The request itself is malformed (headers, parameters, JSON).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what was accepted before.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Refusal> for ExchangeError {
    fn from(refusal: Refusal) -> Self {
        ExchangeError::Refused(vec![refusal])
    }
}

impl From<sqlx::Error> for ExchangeError {
    fn from(e: sqlx::Error) -> Self {
        ExchangeError::Store(e.into())
    }
}

/// The error body of NHN's MSH API (`ErrorMessage`), which EPJ systems' clients already parse.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessage {
    pub error: String,
    /// 1000 for a request or document that failed validation, 0 otherwise (as NHN's API).
    pub error_code: i32,
    pub validation_errors: Option<Vec<String>>,
    /// Never set: stack traces stay in the server's log.
    pub stack_trace: Option<String>,
    /// The id to quote when asking the operator; the server logs it with the cause.
    pub request_id: String,
}

/// `errorCode` of a refused request or document.
const VALIDATION: i32 = 1000;

impl ExchangeError {
    pub fn status(&self) -> StatusCode {
        match self {
            ExchangeError::Refused(_) | ExchangeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ExchangeError::Forbidden(_) => StatusCode::FORBIDDEN,
            ExchangeError::NotFound(_) => StatusCode::NOT_FOUND,
            ExchangeError::Conflict(_) => StatusCode::CONFLICT,
            // The store is the one thing a request cannot be blamed for: try again later.
            ExchangeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ExchangeError {
    fn into_response(self) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let status = self.status();
        let (error, error_code, validation_errors) = match &self {
            ExchangeError::Refused(refusals) => {
                let first = &refusals[0];
                let name = crate::apprec::error_name(first.code).unwrap_or_default();
                (
                    format!("{} {name}: {}", first.code, first.message),
                    VALIDATION,
                    Some(
                        refusals
                            .iter()
                            .map(|r| format!("{} {}: {}", r.code, r.path, r.message))
                            .collect(),
                    ),
                )
            }
            ExchangeError::BadRequest(message) => (message.clone(), VALIDATION, None),
            ExchangeError::Store(e) => {
                tracing::error!(request_id, error = %e, "the exchange's store failed");
                ("An unknown error occurred".to_owned(), 0, None)
            }
            other => (other.to_string(), 0, None),
        };
        metrics::counter!("exchange_refused_total", "status" => status.as_str().to_owned())
            .increment(1);
        (
            status,
            Json(ErrorMessage {
                error,
                error_code,
                validation_errors,
                stack_trace: None,
                request_id,
            }),
        )
            .into_response()
    }
}
