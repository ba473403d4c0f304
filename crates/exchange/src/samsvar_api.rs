//! `POST /validate`: the validator (samsvar) as a service, for a vendor checking what its EPJ
//! writes before it sends it. The body is the document itself; the answer lists every problem
//! with its path, whether the document is valid or not.

use axum::{Json, body::Bytes, http::StatusCode};
use helsenett_helseid::Authorized;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ExchangeError, api::MshApi};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// The standard the root element names, e.g. "MsgHead v1.2"; none when it names none.
    pub standard: Option<String>,
    pub valid: bool,
    pub problems: Vec<ValidationProblem>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationProblem {
    /// Where, as an XPath-like path (`/MsgHead/MsgInfo/MsgId`).
    pub path: String,
    pub line: u32,
    pub message: String,
}

impl Validation {
    pub fn of(document: &[u8]) -> Self {
        let report = helsenett_samsvar::validate(document);
        Validation {
            standard: report.standard.map(|s| s.to_string()),
            valid: report.is_valid(),
            problems: report
                .problems
                .into_iter()
                .map(|p| ValidationProblem {
                    path: p.path,
                    line: p.line,
                    message: p.message,
                })
                .collect(),
        }
    }
}

#[utoipa::path(
    post, path = "/validate", tag = "Samsvar",
    request_body(content = String, content_type = "application/xml",
        description = "A MsgHead v1.2, AppRec v1.0/v1.1 or Dialogmelding v1.0/v1.1 document"),
    responses(
        (status = 200, description = "Every problem found, with its path", body = Validation),
        (status = 400, body = crate::ErrorMessage),
        (status = 413, description = "Larger than the server's request limit"),
    )
)]
pub(crate) async fn validate(
    _: Authorized<MshApi>,
    document: Bytes,
) -> Result<(StatusCode, Json<Validation>), ExchangeError> {
    if document.is_empty() {
        return Err(ExchangeError::BadRequest(
            "the body is empty: send the XML document itself".into(),
        ));
    }
    Ok((StatusCode::OK, Json(Validation::of(&document))))
}
