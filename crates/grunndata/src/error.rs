//! What can go wrong in the base registers, and the problem+json each answer gets. No message
//! carries a person's data: not the number asked for, not a name.

use axum::response::{IntoResponse, Response};
use helsenett_core::Problem;
use helsenett_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum GrunndataError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(&'static str),
    /// The request is well formed but the register's state refuses it (slug, why).
    #[error("{1}")]
    Conflict(&'static str, &'static str),
    /// The look-up log is failing, so nothing is returned (no log, no data).
    #[error("the look-up log cannot be written just now; no data is returned")]
    NotLogged(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl GrunndataError {
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        GrunndataError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    pub fn problem(&self) -> Problem {
        match self {
            GrunndataError::Invalid { .. } => {
                Problem::new(400, "invalid-request", "Invalid request")
                    .with_detail(self.to_string())
            }
            GrunndataError::Forbidden(_) => {
                Problem::new(403, "forbidden", "Not allowed for this caller")
                    .with_detail(self.to_string())
            }
            GrunndataError::NotFound(_) => {
                Problem::new(404, "not-found", "Not found").with_detail(self.to_string())
            }
            GrunndataError::Conflict(slug, _) => {
                Problem::new(409, slug, "Refused by the register's rules")
                    .with_detail(self.to_string())
            }
            GrunndataError::NotLogged(e) => {
                tracing::error!(error = %e, "a person look-up could not be logged");
                Problem::new(503, "audit-unavailable", "The look-up log did not answer")
                    .with_detail(self.to_string())
            }
            GrunndataError::Store(e) => {
                tracing::error!(error = %e, "base register store failure");
                Problem::new(
                    503,
                    "store-unavailable",
                    "The register's store did not answer",
                )
            }
        }
    }
}

impl IntoResponse for GrunndataError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}
