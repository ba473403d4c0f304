//! Reading a request: form and query pairs, JSON bodies, the identifiers in them, and the
//! stated purpose. Every error names the field and the rule, never the value sent.

use axum::http::HeaderMap;
use helsenett_core::{Fodselsnummer, HprNummer};
use helsenett_store::records::PersonId;

use crate::{
    error::GrunndataError,
    lookup::{NOT_STATED, PURPOSES},
};

/// The purpose the caller states in `nhn-purpose`, one of [`PURPOSES`]; [`NOT_STATED`] when
/// absent and not `required`.
pub fn stated_purpose(headers: &HeaderMap, required: bool) -> Result<&'static str, GrunndataError> {
    let stated = headers
        .get("nhn-purpose")
        .map(|v| v.to_str().map(str::trim));
    match stated {
        Some(Ok(value)) => PURPOSES
            .iter()
            .copied()
            .find(|p| *p == value)
            .ok_or_else(|| {
                GrunndataError::invalid(
                    "nhn-purpose",
                    format!("must be one of {}", PURPOSES.join(", ")),
                )
            }),
        Some(Err(_)) => Err(GrunndataError::invalid("nhn-purpose", "is not text")),
        None if required => Err(GrunndataError::invalid(
            "nhn-purpose",
            format!(
                "the header is required with legal basis: one of {}",
                PURPOSES.join(", ")
            ),
        )),
        None => Ok(NOT_STATED),
    }
}

/// A fødselsnummer or D-nummer from the request; the error names the rule, never the number.
pub fn nin(field: &str, value: &str) -> Result<Fodselsnummer, GrunndataError> {
    Fodselsnummer::parse(value.trim()).map_err(|e| GrunndataError::invalid(field, e.reason))
}

/// An HPR number from the request.
pub fn hpr_number(field: &str, value: &str) -> Result<HprNummer, GrunndataError> {
    HprNummer::parse(value.trim()).map_err(|e| GrunndataError::invalid(field, e.reason))
}

pub fn person_id(field: &str, value: &str) -> Result<PersonId, GrunndataError> {
    PersonId::parse(value)
        .ok_or_else(|| GrunndataError::invalid(field, "is not a person id (32 hexadecimal digits)"))
}

/// A JSON request body of the shape `shape` describes. The error says what is expected rather
/// than quoting the parser, whose message may quote the value sent.
pub fn json_body<T: for<'de> serde::Deserialize<'de>>(
    body: &[u8],
    shape: &str,
) -> Result<T, GrunndataError> {
    helsenett_core::json::from_body(body)
        .map_err(|_| GrunndataError::invalid("body", format!("must be a JSON object {shape}")))
}

/// `key=value` pairs of a query string or form body, decoded.
pub fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

pub fn values<'a>(pairs: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub fn one<'a>(
    pairs: &'a [(String, String)],
    key: &'static str,
) -> Result<Option<&'a str>, GrunndataError> {
    let mut found = values(pairs, key);
    let first = found.next();
    if found.next().is_some() {
        return Err(GrunndataError::invalid(key, "may be given once"));
    }
    Ok(first)
}

pub fn flag(pairs: &[(String, String)], key: &'static str) -> Result<bool, GrunndataError> {
    match one(pairs, key)? {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(GrunndataError::invalid(key, "must be true or false")),
    }
}
