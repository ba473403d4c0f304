//! Every error of Kjernejournal's API as an OperationOutcome with a status that names it.
//! Messages name the rule and the field, never a value sent or anyone's data.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use helsenett_core::fhir::{self, issue_code};

use crate::{access::Refusal, ledger::LedgerError, validate::Invalid};

#[derive(Debug, thiserror::Error)]
pub enum KjError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    /// A field of the request (not of a FHIR resource) is missing or wrong.
    #[error("{field}: {rule}")]
    Field { field: &'static str, rule: String },
    /// Refused, and audited as refused.
    #[error("{}", .0.message())]
    Refused(Refusal),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Unavailable(#[from] LedgerError),
    #[error("the store failed: {0}")]
    Store(#[from] helsenett_store::StoreError),
}

impl KjError {
    pub fn field(field: &'static str, rule: impl Into<String>) -> Self {
        KjError::Field {
            field,
            rule: rule.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            KjError::Invalid(Invalid::NotYours(_)) => StatusCode::FORBIDDEN,
            KjError::Invalid(Invalid::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            KjError::Invalid(_) | KjError::Field { .. } => StatusCode::BAD_REQUEST,
            KjError::Refused(Refusal::UnknownPerson) | KjError::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            KjError::Refused(_) => StatusCode::FORBIDDEN,
            KjError::Conflict(_) => StatusCode::CONFLICT,
            KjError::Unavailable(_) | KjError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for KjError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = match &self {
            KjError::Invalid(Invalid::Code(_)) => "code-invalid",
            KjError::Invalid(Invalid::TooLarge(_)) => "too-long",
            _ => issue_code(status),
        };
        if matches!(self, KjError::Store(_)) {
            tracing::error!(error = %self, "kjernejournal: the store failed");
        }
        let outcome = fhir::operation_outcome(code, &self.to_string());
        (status, fhir::Resource(outcome)).into_response()
    }
}
