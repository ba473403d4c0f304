//! The small shared vocabulary of helsenett: identifiers checked at the edge, the error shape every
//! API returns, dates, and the server configuration.
//!
//! Nothing here does I/O except [`config::Config::load`], which reads one file.

pub mod config;
pub mod fhir;
pub mod id;
pub mod json;
pub mod problem;
pub mod time;

pub use id::{Fodselsnummer, HerId, HprNummer, IdError, NumberKind, Organisasjonsnummer, Sex};
pub use problem::Problem;
