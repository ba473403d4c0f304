//! Helsepersonellregisteret's HTTP API under `/hpr/api/v1` (scope `nhn:hpr/read`): a
//! professional by HPR number or by fødselsnummer, with every approval, speciality and
//! suspension and where each stands today. The shape follows HPR's own (a person with
//! godkjenninger) with kodeverk 9060, 7704 and 7426 codings. Each professional returned, and
//! each fødselsnummer asked for and not found, is logged like any person look-up.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
    routing::{get, post},
};
use chrono::NaiveDate;
use helsenett_helseid::{Authorized, RequiredScope};
use helsenett_store::hpr::{
    AUTHORISATION_SYSTEM, ApprovalStatus, HprEntry, PROFESSION_SYSTEM, SPECIALITY_SYSTEM,
};
use serde::{Deserialize, Serialize};

use crate::{
    error::GrunndataError,
    lookup::Asked,
    request::{hpr_number, json_body, nin, stated_purpose},
    state::Shared,
};

pub struct ReadHpr;
impl RequiredScope for ReadHpr {
    const AUDIENCE: &'static str = "nhn:hpr";
    const SCOPE: &'static str = "nhn:hpr/read";
}

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/api/v1/personnel/get-by-nin", post(by_nin))
        .route("/api/v1/personnel/{hpr_number}", get(by_number))
}

#[derive(Debug, Serialize)]
pub struct Coding {
    pub system: &'static str,
    pub code: &'static str,
    pub display: &'static str,
}

/// A professional as the API shows them, on the day of the request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonnelDocument {
    pub hpr_number: u32,
    /// Only to a caller who asked by fødselsnummer: an HPR number must not unlock a person's
    /// number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nin: Option<String>,
    pub given_name: String,
    pub family_name: String,
    /// Whether any approval is valid and not suspended today.
    pub authorised: bool,
    pub approvals: Vec<ApprovalDocument>,
    pub specialities: Vec<SpecialityDocument>,
    pub suspensions: Vec<SuspensionDocument>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDocument {
    pub profession: Coding,
    pub authorisation: Coding,
    pub valid_from: NaiveDate,
    /// The first day it no longer holds (a licence's end, or a revocation).
    pub valid_to: Option<NaiveDate>,
    pub status: ApprovalStatus,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecialityDocument {
    pub profession: &'static str,
    pub speciality: Coding,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuspensionDocument {
    pub profession: &'static str,
    pub valid_from: NaiveDate,
    /// `None`: until further notice.
    pub valid_to: Option<NaiveDate>,
    pub in_force: bool,
}

fn document(entry: &HprEntry, today: NaiveDate, with_nin: bool) -> PersonnelDocument {
    let p = &entry.personnel;
    PersonnelDocument {
        hpr_number: p.hpr.get(),
        nin: with_nin.then(|| p.nin.to_string()),
        given_name: p.given_name.clone(),
        family_name: p.family_name.clone(),
        authorised: entry.authorised_on(today),
        approvals: entry
            .approvals
            .iter()
            .map(|a| ApprovalDocument {
                profession: Coding {
                    system: PROFESSION_SYSTEM,
                    code: a.profession.as_str(),
                    display: a.profession.display(),
                },
                authorisation: Coding {
                    system: AUTHORISATION_SYSTEM,
                    code: a.authorisation.as_str(),
                    display: a.authorisation.display(),
                },
                valid_from: a.period.from,
                valid_to: a.period.to,
                status: entry.status_on(a, today),
            })
            .collect(),
        specialities: entry
            .specialities
            .iter()
            .map(|s| SpecialityDocument {
                profession: s.profession.as_str(),
                speciality: Coding {
                    system: SPECIALITY_SYSTEM,
                    code: s.speciality.as_str(),
                    display: s.speciality.display(),
                },
                valid_from: s.period.from,
                valid_to: s.period.to,
            })
            .collect(),
        suspensions: entry
            .suspensions
            .iter()
            .map(|s| SuspensionDocument {
                profession: s.profession.as_str(),
                valid_from: s.period.from,
                valid_to: s.period.to,
                in_force: s.period.holds_on(today),
            })
            .collect(),
    }
}

fn asked<'a>(
    auth: &'a Authorized<ReadHpr>,
    headers: &HeaderMap,
    operation: &'static str,
) -> Result<Asked<'a>, GrunndataError> {
    Ok(Asked {
        principal: &auth.0,
        bundle: "hpr",
        legal_basis: ReadHpr::SCOPE,
        purpose: stated_purpose(headers, false)?,
        operation,
    })
}

const NOT_FOUND: &str = "no health personnel in HPR has this number";

async fn by_number(
    auth: Authorized<ReadHpr>,
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<Json<PersonnelDocument>, GrunndataError> {
    let asked = asked(&auth, &headers, "hpr-get-by-hpr")?;
    let number = hpr_number("hprNumber", &number)?;
    let entry = state
        .store
        .hpr_by_number(number)
        .await?
        .ok_or(GrunndataError::NotFound(NOT_FOUND))?;
    asked.log(&state.log, [(entry.personnel.nin, true)]).await?;
    Ok(Json(document(&entry, helsenett_core::time::today(), false)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByNin {
    nin: String,
}

async fn by_nin(
    auth: Authorized<ReadHpr>,
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PersonnelDocument>, GrunndataError> {
    let asked = asked(&auth, &headers, "hpr-get-by-nin")?;
    let request: ByNin = json_body(&body, r#"{"nin": "<11 digits>"}"#)?;
    let nin = nin("nin", &request.nin)?;
    let entry = state.store.hpr_by_nin(nin).await?;
    asked.log(&state.log, [(nin, entry.is_some())]).await?;
    let entry = entry.ok_or(GrunndataError::NotFound(
        "no health personnel in HPR has this fødselsnummer",
    ))?;
    Ok(Json(document(&entry, helsenett_core::time::today(), true)))
}
