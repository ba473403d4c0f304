//! Identifiers as types. Each is parsed once at the edge (HTTP, CLI, file import) and is valid
//! from then on; code inside the network never handles a raw string where one of these belongs.

mod fnr;
mod mod11;
mod number;
mod orgnr;

use std::fmt;

pub use fnr::{Fodselsnummer, NumberKind, Sex};
pub use number::{HerId, HprNummer};
pub use orgnr::Organisasjonsnummer;

/// Why an identifier was refused. The message names the identifier and the rule it broke; it
/// never repeats a national identity number, because error messages end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}{}: {reason}", shown.as_ref().map(|v| format!(" {v:?}")).unwrap_or_default())]
pub struct IdError {
    /// The identifier's name as a user knows it, e.g. "organisasjonsnummer".
    pub what: &'static str,
    /// The rejected input, when it is safe to repeat.
    shown: Option<String>,
    pub reason: String,
}

impl IdError {
    fn new(what: &'static str, input: &str, reason: impl fmt::Display) -> Self {
        Self {
            what,
            shown: Some(truncate(input)),
            reason: reason.to_string(),
        }
    }

    fn redacted(what: &'static str, reason: impl fmt::Display) -> Self {
        Self {
            what,
            shown: None,
            reason: reason.to_string(),
        }
    }
}

/// Long garbage is cut so that a hostile input cannot flood a log line.
fn truncate(input: &str) -> String {
    const MAX: usize = 32;
    match input.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &input[..at]),
        None => input.to_owned(),
    }
}

/// Parses a string of exactly `len` ASCII digits.
fn digits<const N: usize>(
    what: &'static str,
    input: &str,
    redact: bool,
) -> Result<[u8; N], IdError> {
    let fail = |reason: String| {
        if redact {
            IdError::redacted(what, reason)
        } else {
            IdError::new(what, input, reason)
        }
    };
    let bytes = input.as_bytes();
    if bytes.len() != N {
        return Err(fail(format!(
            "must be exactly {N} digits, got {} characters",
            input.chars().count()
        )));
    }
    let mut out = [0u8; N];
    for (i, b) in bytes.iter().enumerate() {
        if !b.is_ascii_digit() {
            return Err(fail(format!(
                "must contain only digits (position {} is not)",
                i + 1
            )));
        }
        out[i] = b - b'0';
    }
    Ok(out)
}

/// Implements `Display`, `FromStr` and string serde for an identifier with a `parse` function.
macro_rules! string_identifier {
    ($ty:ty) => {
        impl std::str::FromStr for $ty {
            type Err = $crate::id::IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
use string_identifier;
