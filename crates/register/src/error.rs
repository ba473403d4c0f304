//! What can go wrong in the register, and the problem+json each answer gets.

use axum::response::{IntoResponse, Response};
use helsenett_core::{HerId, Problem};
use helsenett_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("HER-id {0} is not in the address register")]
    UnknownHerId(HerId),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("certificate rejected: {0}")]
    CertificateRejected(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegisterError {
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        RegisterError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    pub fn problem(&self) -> Problem {
        match self {
            RegisterError::UnknownHerId(_) => {
                Problem::new(404, "unknown-her-id", "Unknown HER-id").with_detail(self.to_string())
            }
            RegisterError::NotFound(_) => {
                Problem::new(404, "not-found", "Not found").with_detail(self.to_string())
            }
            RegisterError::Invalid { .. } => {
                Problem::new(400, "invalid-request", "Invalid request")
                    .with_detail(self.to_string())
            }
            RegisterError::Forbidden(_) => {
                Problem::new(403, "forbidden", "Not your entry").with_detail(self.to_string())
            }
            RegisterError::CertificateRejected(_) => {
                Problem::new(422, "certificate-rejected", "Certificate rejected")
                    .with_detail(self.to_string())
            }
            RegisterError::Conflict(_) => {
                Problem::new(409, "conflict", "Conflict").with_detail(self.to_string())
            }
            RegisterError::Store(e) => {
                tracing::error!(error = %e, "address register store failure");
                Problem::new(
                    503,
                    "store-unavailable",
                    "The register's store did not answer",
                )
            }
        }
    }
}

impl IntoResponse for RegisterError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}
