//! What every FHIR API of the network shares: the media type, the identifier systems of Norway's
//! national registers (OIDs as HL7 Norway's profiles name them), resources as response bodies,
//! and errors as OperationOutcome.

use axum::{
    body::to_bytes,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::{Fodselsnummer, NumberKind, Problem};

pub const CONTENT_TYPE: &str = "application/fhir+json";
/// Fødselsnummer, D-nummer, HPR-nummer and organisasjonsnummer (Enhetsregisteret).
pub const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
pub const DNR: &str = "urn:oid:2.16.578.1.12.4.1.4.2";
pub const HPR: &str = "urn:oid:2.16.578.1.12.4.1.4.4";
pub const ENH: &str = "urn:oid:2.16.578.1.12.4.1.4.101";

/// The identifier system of a person's number.
pub fn person_system(nin: &Fodselsnummer) -> &'static str {
    match nin.kind() {
        NumberKind::Fodselsnummer => FNR,
        NumberKind::DNummer => DNR,
    }
}

/// A FHIR resource as a response body (status 200 unless wrapped in a tuple).
pub struct Resource(pub Value);

impl IntoResponse for Resource {
    fn into_response(self) -> Response {
        json_response(self.0.to_string())
    }
}

/// FHIR JSON already serialised.
pub fn json_response(body: String) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// An OperationOutcome with one error issue.
pub fn operation_outcome(code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    })
}

/// The issue type (FHIR's IssueType) that best names an HTTP error status.
pub fn issue_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::UNAUTHORIZED => "login",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNSUPPORTED_MEDIA_TYPE => "not-supported",
        StatusCode::PAYLOAD_TOO_LARGE => "too-costly",
        StatusCode::CONFLICT => "conflict",
        StatusCode::SERVICE_UNAVAILABLE => "transient",
        _ => "exception",
    }
}

/// Turns every refusal (the guard's, the API's, axum's own) into an OperationOutcome with the
/// same status and headers, so a FHIR client always gets FHIR. A layer:
/// `.layer(axum::middleware::map_response(as_operation_outcome))`.
pub async fn as_operation_outcome(response: Response) -> Response {
    let status = response.status();
    let is_fhir = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_fhir {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, 1 << 16).await.unwrap_or_default();
    let diagnostics = serde_json::from_slice::<Problem>(&bytes)
        .map(|p| p.detail.unwrap_or(p.title))
        .unwrap_or_else(|_| status.canonical_reason().unwrap_or("error").to_owned());
    let outcome = operation_outcome(issue_code(status), &diagnostics);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Response::from_parts(parts, outcome.to_string().into())
}
