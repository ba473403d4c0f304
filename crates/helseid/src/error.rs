//! OAuth 2.0 error responses (RFC 6749 §5.2, RFC 9449 §12.2): a registered error code, a
//! description that says exactly what was wrong, and a fresh DPoP nonce where the client needs one.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use helsenett_store::StoreError;
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
    /// Sent as `DPoP-Nonce`, with `use_dpop_nonce`.
    pub dpop_nonce: Option<String>,
    /// Sent as `WWW-Authenticate` (RFC 6750 §3), where a bearer token was refused.
    pub challenge: Option<&'static str>,
}

macro_rules! errors {
    ($($name:ident => $status:ident, $code:literal;)*) => {
        impl OAuthError {
            $(pub fn $name(description: impl Into<String>) -> Self {
                Self {
                    status: StatusCode::$status,
                    code: $code,
                    description: description.into(),
                    dpop_nonce: None,
                    challenge: None,
                }
            })*
        }
    };
}

errors! {
    invalid_request => BAD_REQUEST, "invalid_request";
    invalid_client => UNAUTHORIZED, "invalid_client";
    invalid_grant => BAD_REQUEST, "invalid_grant";
    invalid_scope => BAD_REQUEST, "invalid_scope";
    unauthorized_client => BAD_REQUEST, "unauthorized_client";
    unsupported_grant_type => BAD_REQUEST, "unsupported_grant_type";
    invalid_dpop_proof => BAD_REQUEST, "invalid_dpop_proof";
    invalid_client_metadata => BAD_REQUEST, "invalid_client_metadata";
    invalid_redirect_uri => BAD_REQUEST, "invalid_redirect_uri";
    invalid_token => UNAUTHORIZED, "invalid_token";
    access_denied => FORBIDDEN, "access_denied";
    temporarily_unavailable => SERVICE_UNAVAILABLE, "temporarily_unavailable";
}

impl OAuthError {
    pub fn use_dpop_nonce(nonce: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "use_dpop_nonce",
            description: "the DPoP proof must carry the server's nonce from the DPoP-Nonce header"
                .into(),
            dpop_nonce: Some(nonce),
            challenge: None,
        }
    }
}

/// Failures of HelseID itself rather than of a request.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("HelseID keys: {0}")]
    Crypto(String),
    #[error("HelseID replay log: {0}")]
    Replay(String),
    /// Registering the synthetic country's clients.
    #[error("synthetic HelseID clients: {0}")]
    Synthetic(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Store(e.into())
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        Failure::Store(e).into()
    }
}

impl From<Failure> for OAuthError {
    fn from(e: Failure) -> Self {
        tracing::error!(error = %e, "HelseID cannot answer");
        OAuthError::temporarily_unavailable("HelseID cannot answer right now; try again")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        metrics::counter!("helseid_errors_total", "error" => self.code).increment(1);
        let mut response = (
            self.status,
            Json(json!({ "error": self.code, "error_description": self.description })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(nonce) = self.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert("dpop-nonce", nonce);
        }
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
