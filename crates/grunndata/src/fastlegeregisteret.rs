//! Fastlegeregisteret's HTTP API under `/fastlegeregisteret/api/v1`, after the operations of
//! NHN's `fastlegeregisteret-read.wsdl`: a person's GP (GetPatientGPDetails), GP history
//! (GetPatientGPHistory) and ConfirmGP; a list (GetGPContract) and its patients, paged
//! (GetGPPatientList); a GP's lists (GetGPWithAssociatedGPContracts); a municipality's lists
//! (QueryGPContracts). Scope `nhn:fastlegeregisteret/read`; changing GP needs `/write`, and a
//! citizen may change only their own. Every person returned or asked for is logged.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    routing::{get, post},
};
use chrono::NaiveDate;
use helsenett_core::{Fodselsnummer, HprNummer};
use helsenett_helseid::{Authorized, Principal, RequiredScope};
use helsenett_store::gp::{CHANGES_PER_YEAR, GpChange, GpContract, GpPlace};
use serde::{Deserialize, Serialize};

use crate::{
    error::GrunndataError,
    lookup::Asked,
    request::{hpr_number, json_body, nin, pairs, stated_purpose, values},
    state::{ApiState, Shared},
};

const AUDIENCE: &str = "nhn:fastlegeregisteret";
/// Patients or lists per page at most, and when the caller does not say.
const PAGE_MAX: i64 = 1_000;
const PAGE_DEFAULT: i64 = 100;

pub struct ReadFlr;
impl RequiredScope for ReadFlr {
    const AUDIENCE: &'static str = AUDIENCE;
    const SCOPE: &'static str = "nhn:fastlegeregisteret/read";
}

pub struct WriteFlr;
impl RequiredScope for WriteFlr {
    const AUDIENCE: &'static str = AUDIENCE;
    const SCOPE: &'static str = "nhn:fastlegeregisteret/write";
}

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/api/v1/patient/gp", post(patient_gp))
        .route("/api/v1/patient/gp-history", post(patient_history))
        .route("/api/v1/patient/confirm-gp", post(confirm_gp))
        .route("/api/v1/patient/change-gp", post(change_gp))
        .route("/api/v1/contracts", get(contracts))
        .route("/api/v1/contracts/{id}", get(contract))
        .route("/api/v1/contracts/{id}/patients", get(contract_patients))
        .route("/api/v1/gp/{hpr_number}", get(gp))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractDocument {
    pub id: i64,
    pub gp_hpr_number: u32,
    pub gp_name: String,
    pub office_organization_number: String,
    pub office_name: String,
    pub municipality: String,
    pub max_patients: i64,
    pub patients: i64,
    pub places_available: i64,
}

impl From<GpContract> for ContractDocument {
    fn from(c: GpContract) -> Self {
        ContractDocument {
            id: c.id,
            gp_hpr_number: c.gp.get(),
            gp_name: c.gp_name,
            office_organization_number: c.office.to_string(),
            office_name: c.office_name,
            municipality: c.municipality,
            max_patients: c.capacity,
            patients: c.patients,
            places_available: (c.capacity - c.patients).max(0),
        }
    }
}

/// A person's place on a list (PatientToGPContractAssociation).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceDocument {
    pub patient_nin: String,
    pub contract: ContractDocument,
    pub valid_from: NaiveDate,
    /// The first day the person was no longer on the list; `None` for the current place.
    pub valid_to: Option<NaiveDate>,
    pub end_reason: Option<&'static str>,
}

async fn place_document(
    state: &ApiState,
    nin: Fodselsnummer,
    place: GpPlace,
) -> Result<PlaceDocument, GrunndataError> {
    let contract = state
        .store
        .gp_contract(place.list_id)
        .await?
        .ok_or_else(|| {
            GrunndataError::Store(helsenett_store::StoreError::Corrupt(format!(
                "a place on GP list {} which does not exist",
                place.list_id
            )))
        })?;
    Ok(PlaceDocument {
        patient_nin: nin.to_string(),
        contract: contract.into(),
        valid_from: place.period.from,
        valid_to: place.period.to,
        end_reason: place.end_reason.map(|r| r.as_str()),
    })
}

fn current_place(nin: Fodselsnummer, since: NaiveDate, contract: GpContract) -> PlaceDocument {
    PlaceDocument {
        patient_nin: nin.to_string(),
        contract: contract.into(),
        valid_from: since,
        valid_to: None,
        end_reason: None,
    }
}

fn asked<'a>(
    principal: &'a Principal,
    headers: &HeaderMap,
    legal_basis: &'static str,
    operation: &'static str,
) -> Result<Asked<'a>, GrunndataError> {
    Ok(Asked {
        principal,
        bundle: "fastlegeregisteret",
        legal_basis,
        // The register is read under a legal basis, which is granted for a purpose.
        purpose: stated_purpose(headers, true)?,
        operation,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatientRequest {
    patient_nin: String,
}
const PATIENT_SHAPE: &str = r#"{"patientNin": "<11 digits>"}"#;

/// [`CHANGES_PER_YEAR`] in words.
const TOO_MANY_CHANGES: &str =
    "the person has changed GP as often as the scheme allows in twelve months (twice)";
const _: () = assert!(CHANGES_PER_YEAR == 2, "TOO_MANY_CHANGES says twice");

const NOT_IN_REGISTER: &str = "no person in the population register has this number";

async fn patient_gp(
    auth: Authorized<ReadFlr>,
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PlaceDocument>, GrunndataError> {
    let asked = asked(&auth.0, &headers, ReadFlr::SCOPE, "flr-patient-gp")?;
    let request: PatientRequest = json_body(&body, PATIENT_SHAPE)?;
    let nin = nin("patientNin", &request.patient_nin)?;
    let current = state.store.gp_current(nin).await?;
    asked.log(&state.log, [(nin, current.is_some())]).await?;
    let (since, contract) = current.ok_or(GrunndataError::NotFound(
        "this person is on no GP's list, or is not in the population register",
    ))?;
    Ok(Json(current_place(nin, since, contract)))
}

async fn patient_history(
    auth: Authorized<ReadFlr>,
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<PlaceDocument>>, GrunndataError> {
    let asked = asked(&auth.0, &headers, ReadFlr::SCOPE, "flr-patient-gp-history")?;
    let request: PatientRequest = json_body(&body, PATIENT_SHAPE)?;
    let nin = nin("patientNin", &request.patient_nin)?;
    let found = state.knows(&nin);
    asked.log(&state.log, [(nin, found)]).await?;
    if !found {
        return Err(GrunndataError::NotFound(NOT_IN_REGISTER));
    }
    let mut documents = Vec::new();
    for place in state.store.gp_places(nin).await? {
        documents.push(place_document(&state, nin, place).await?);
    }
    Ok(Json(documents))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfirmRequest {
    patient_nin: String,
    hpr_number: u32,
    /// The day to confirm for; today when absent.
    at_date: Option<NaiveDate>,
}

#[derive(Serialize)]
struct Confirmed {
    confirmed: bool,
}

/// Whether the GP with this HPR number held the person's list on the day: what a service
/// asks before it trusts a GP relation (as Kjernejournal will).
async fn confirm_gp(
    auth: Authorized<ReadFlr>,
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Confirmed>, GrunndataError> {
    let asked = asked(&auth.0, &headers, ReadFlr::SCOPE, "flr-confirm-gp")?;
    let request: ConfirmRequest = json_body(
        &body,
        r#"{"patientNin": "<11 digits>", "hprNumber": <number>, "atDate": "<YYYY-MM-DD>" (optional)}"#,
    )?;
    let nin = nin("patientNin", &request.patient_nin)?;
    let gp = HprNummer::new(request.hpr_number)
        .map_err(|e| GrunndataError::invalid("hprNumber", e.reason))?;
    let day = request.at_date.unwrap_or_else(helsenett_core::time::today);
    let mut confirmed = false;
    for place in state.store.gp_places(nin).await? {
        if place.period.holds_on(day)
            && let Some(contract) = state.store.gp_contract(place.list_id).await?
        {
            confirmed |= contract.gp == gp;
        }
    }
    asked.log(&state.log, [(nin, state.knows(&nin))]).await?;
    Ok(Json(Confirmed { confirmed }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangeRequest {
    patient_nin: String,
    gp_contract_id: i64,
}

/// A signed-in person may change only their own GP; a system (the citizen portal's back end,
/// the register's own case handling) acts for anyone under the write scope.
fn may_change_for(principal: &Principal, nin: Fodselsnummer) -> Result<(), GrunndataError> {
    match principal.user() {
        Some(user) if user.pid != nin => Err(GrunndataError::Forbidden(
            "a signed-in citizen may change only their own GP".into(),
        )),
        _ => Ok(()),
    }
}

/// Moves the person to another list from today, if it has room.
async fn change_gp(
    auth: Authorized<WriteFlr>,
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PlaceDocument>, GrunndataError> {
    let asked = asked(&auth.0, &headers, WriteFlr::SCOPE, "flr-change-gp")?;
    let request: ChangeRequest = json_body(
        &body,
        r#"{"patientNin": "<11 digits>", "gpContractId": <number>}"#,
    )?;
    let nin = nin("patientNin", &request.patient_nin)?;
    may_change_for(&auth.0, nin)?;
    // Logged before the change: a change the log could not record is not made.
    asked.log(&state.log, [(nin, state.knows(&nin))]).await?;
    let today = helsenett_core::time::today();
    let outcome = state
        .store
        .change_gp(nin, request.gp_contract_id, today)
        .await?;
    match outcome {
        GpChange::Changed => {}
        GpChange::NoSuchList => return Err(GrunndataError::NotFound("no GP list has this id")),
        GpChange::NoSuchPerson => return Err(GrunndataError::NotFound(NOT_IN_REGISTER)),
        GpChange::NotEligible => {
            return Err(GrunndataError::Conflict(
                "not-eligible",
                "the person is registered as dead or emigrated and has no place in the GP scheme",
            ));
        }
        GpChange::AlreadyOnList => {
            return Err(GrunndataError::Conflict(
                "already-on-list",
                "the person is already on this list",
            ));
        }
        GpChange::ListFull => {
            return Err(GrunndataError::Conflict(
                "list-full",
                "the list has no places available",
            ));
        }
        GpChange::TooManyChanges => {
            return Err(GrunndataError::Conflict(
                "too-many-changes",
                TOO_MANY_CHANGES,
            ));
        }
    }
    let (since, contract) = state
        .store
        .gp_current(nin)
        .await?
        .ok_or(GrunndataError::NotFound(NOT_IN_REGISTER))?;
    Ok(Json(current_place(nin, since, contract)))
}

pub(crate) fn list_id(raw: &str) -> Result<i64, GrunndataError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| GrunndataError::invalid("id", "is not a GP list id (a positive number)"))
}

async fn contract(
    _auth: Authorized<ReadFlr>,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<ContractDocument>, GrunndataError> {
    let contract = state
        .store
        .gp_contract(list_id(&id)?)
        .await?
        .ok_or(GrunndataError::NotFound("no GP list has this id"))?;
    Ok(Json(contract.into()))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
    pub results: Vec<T>,
}

/// `page` (from 1) and `pageSize` (1 to [`PAGE_MAX`]) of a query string.
fn paging(pairs: &[(String, String)]) -> Result<(i64, i64), GrunndataError> {
    let number = |key: &'static str, default: i64, max: i64| match values(pairs, key).next() {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| GrunndataError::invalid(key, format!("must be 1 to {max}"))),
    };
    Ok((
        number("page", 1, i64::MAX / PAGE_MAX)?,
        number("pageSize", PAGE_DEFAULT, PAGE_MAX)?,
    ))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientOnList {
    pub patient_nin: String,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: NaiveDate,
    pub valid_from: NaiveDate,
}

/// One page of a list's patients; each patient on it is logged.
async fn contract_patients(
    auth: Authorized<ReadFlr>,
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page<PatientOnList>>, GrunndataError> {
    let asked = asked(&auth.0, &headers, ReadFlr::SCOPE, "flr-gp-patient-list")?;
    let id = list_id(&id)?;
    let (page, size) = paging(&pairs(query.unwrap_or_default().as_bytes()))?;
    if state.store.gp_contract(id).await?.is_none() {
        return Err(GrunndataError::NotFound("no GP list has this id"));
    }
    let (patients, total) = state
        .store
        .gp_list_patients(id, (page - 1) * size, size)
        .await?;
    asked
        .log(&state.log, patients.iter().map(|p| (p.nin, true)))
        .await?;
    Ok(Json(Page {
        total,
        page,
        page_size: size,
        results: patients
            .into_iter()
            .map(|p| PatientOnList {
                patient_nin: p.nin.to_string(),
                given_name: p.given_name,
                family_name: p.family_name,
                birth_date: p.birth_date,
                valid_from: p.since,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpDocument {
    pub hpr_number: u32,
    pub name: String,
    pub contracts: Vec<ContractDocument>,
}

async fn gp(
    _auth: Authorized<ReadFlr>,
    State(state): State<Shared>,
    Path(number): Path<String>,
) -> Result<Json<GpDocument>, GrunndataError> {
    let gp = hpr_number("hprNumber", &number)?;
    let contracts = state.store.gp_contracts_of(gp).await?;
    let name = contracts
        .first()
        .map(|c| c.gp_name.clone())
        .ok_or(GrunndataError::NotFound(
            "no GP with this HPR number holds a list",
        ))?;
    Ok(Json(GpDocument {
        hpr_number: gp.get(),
        name,
        contracts: contracts.into_iter().map(Into::into).collect(),
    }))
}

/// A municipality's lists, all or those with room: what a citizen chooses a new GP from.
async fn contracts(
    _auth: Authorized<ReadFlr>,
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page<ContractDocument>>, GrunndataError> {
    let pairs = pairs(query.unwrap_or_default().as_bytes());
    let (page, size) = paging(&pairs)?;
    let value = |key| values(&pairs, key).next();
    let municipality = value("municipality").ok_or_else(|| {
        GrunndataError::invalid(
            "municipality",
            "is required (a municipality number): the whole country's lists are not one query",
        )
    })?;
    if state.municipalities.get(municipality).is_none() {
        return Err(GrunndataError::invalid(
            "municipality",
            "is not a municipality number of the register",
        ));
    }
    let with_room = match value("withRoom") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(GrunndataError::invalid("withRoom", "must be true or false")),
    };
    let (contracts, total) = state
        .store
        .gp_contracts_in(municipality, with_room, (page - 1) * size, size)
        .await?;
    Ok(Json(Page {
        total,
        page,
        page_size: size,
        results: contracts.into_iter().map(Into::into).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use helsenett_core::{NumberKind, Organisasjonsnummer};
    use helsenett_helseid::{Actor, User};

    use super::*;

    fn person(n: u16) -> Fodselsnummer {
        let born = NaiveDate::from_ymd_opt(1985, 4, 12).unwrap();
        (n..999)
            .find_map(|i| Fodselsnummer::new(born, i, NumberKind::Fodselsnummer, true))
            .unwrap()
    }

    fn principal(actor: Actor) -> Principal {
        Principal {
            client_id: "portal".into(),
            organisation: (1..).find_map(Organisasjonsnummer::synthetic).unwrap(),
            child_organisation: None,
            actor,
            scopes: vec![WriteFlr::SCOPE.into()],
            token_id: "t".into(),
        }
    }

    #[test]
    fn a_citizen_changes_only_their_own_gp_and_a_system_anyone_s() {
        let (me, other) = (person(1), person(500));
        assert_ne!(me, other);
        let citizen = principal(Actor::Person(User {
            pid: me,
            name: "Test Person".into(),
            hpr_number: None,
            security_level: 4,
        }));
        assert!(may_change_for(&citizen, me).is_ok());
        let refused = may_change_for(&citizen, other).unwrap_err();
        assert!(matches!(refused, GrunndataError::Forbidden(_)), "{refused}");
        let system = principal(Actor::System);
        assert!(may_change_for(&system, other).is_ok());
    }
}
