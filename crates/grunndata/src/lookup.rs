//! The look-up log: every person a request returned (or asked for by number and did not find)
//! is logged with who asked, the purpose they stated and the legal basis they used. The rows are
//! queued before the answer leaves and committed within milliseconds (see
//! [`helsenett_store::Appender`]); while the log cannot be written, no data is returned.

use helsenett_core::Fodselsnummer;
use helsenett_helseid::Principal;
use helsenett_store::{Appender, records::PersonLookup};

use crate::error::GrunndataError;

/// Purposes a caller may state in the `nhn-purpose` header.
pub const PURPOSES: [&str; 6] = [
    "treatment",
    "administration",
    "quality-assurance",
    "emergency",
    "research",
    "registry-maintenance",
];
/// Recorded when a caller who need not state a purpose states none.
pub const NOT_STATED: &str = "not-stated";

/// What the log records about the request, beside each person.
pub struct Asked<'a> {
    pub principal: &'a Principal,
    /// The register and view: `no-legal-basis`, `legal-basis`, `hpr`, `fastlegeregisteret`.
    pub bundle: &'static str,
    /// The scope that gave the caller the data, or that none was needed.
    pub legal_basis: &'static str,
    pub purpose: &'static str,
    pub operation: &'static str,
}

impl Asked<'_> {
    /// Queues one row per person for the log.
    pub async fn log(
        &self,
        log: &Appender<PersonLookup>,
        persons: impl IntoIterator<Item = (Fodselsnummer, bool)>,
    ) -> Result<(), GrunndataError> {
        let at = helsenett_core::time::now_millis();
        let principal = self.principal;
        let client_id: helsenett_store::records::Text = principal.client_id.as_str().into();
        let token_id: helsenett_store::records::Text = principal.token_id.as_str().into();
        let user = principal.user();
        let rows: Vec<PersonLookup> = persons
            .into_iter()
            .map(|(nin, found)| PersonLookup {
                at,
                nin,
                operation: self.operation,
                bundle: self.bundle,
                legal_basis: self.legal_basis,
                purpose: self.purpose,
                found,
                client_id: client_id.clone(),
                orgnr: principal.organisation,
                child_orgnr: principal.child_organisation,
                user_pid: user.map(|u| u.pid),
                user_hpr: user.and_then(|u| u.hpr_number),
                token_id: token_id.clone(),
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        metrics::counter!("grunndata_person_lookups_total", "operation" => self.operation)
            .increment(rows.len() as u64);
        log.append(rows).await.map_err(GrunndataError::NotLogged)
    }
}
