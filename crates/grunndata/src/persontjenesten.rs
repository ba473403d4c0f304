//! Persontjenesten's HTTP API (NHN's `persontjenesten-api.yaml`, version 2) under
//! `/persontjenesten`: look-up by number (single and bulk) and by id, search, and the event
//! feed, each under `/api/no-legal-basis` and `/api/legal-basis` with the bundle's scope.

use std::collections::BTreeSet;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, header},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use helsenett_core::{Fodselsnummer, Problem};
use helsenett_helseid::{Authorized, Principal, RequiredScope};
use helsenett_store::{Store, StoreError, records::PersonId, with_pool};
use serde::Serialize;

use crate::{
    document::{Bundle, Historic, HistoricValue, Parts, PartsError, PersonDocument, View},
    error::GrunndataError,
    feed,
    lookup::Asked,
    request::{flag, nin, one, pairs, person_id, stated_purpose, values},
    search::Criteria,
    state::{ApiState, Shared},
};

pub const AUDIENCE: &str = "nhn:persontjenesten";
/// Numbers or ids per bulk request at most, as the contract says.
pub const BULK_MAX: usize = 100;
const API_VERSION: &str = "2";

/// The scope of a bundle, as a type for [`Authorized`].
pub trait BundleScope: RequiredScope + Send + Sync + 'static {
    const BUNDLE: Bundle;
}

pub struct ReadNoLegalBasis;
impl RequiredScope for ReadNoLegalBasis {
    const AUDIENCE: &'static str = AUDIENCE;
    const SCOPE: &'static str = "nhn:persontjenesten/ReadNoLegalBasis";
}
impl BundleScope for ReadNoLegalBasis {
    const BUNDLE: Bundle = Bundle::NoLegalBasis;
}

pub struct ReadWithLegalBasis;
impl RequiredScope for ReadWithLegalBasis {
    const AUDIENCE: &'static str = AUDIENCE;
    const SCOPE: &'static str = "nhn:persontjenesten/ReadWithLegalBasis";
}
impl BundleScope for ReadWithLegalBasis {
    const BUNDLE: Bundle = Bundle::LegalBasis;
}

pub fn router() -> Router<Shared> {
    Router::new()
        .nest("/api/no-legal-basis", bundle_routes::<ReadNoLegalBasis>())
        .nest("/api/legal-basis", bundle_routes::<ReadWithLegalBasis>())
        .layer(middleware::map_response(contract_media_type))
}

/// NHN's contract gives its `ProblemDetails` as `application/json`, not RFC 9457's
/// `application/problem+json`; a client generated from the contract looks for the former.
async fn contract_media_type(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == Problem::CONTENT_TYPE.as_bytes())
    {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

fn bundle_routes<S: BundleScope>() -> Router<Shared> {
    Router::new()
        .route("/person/get-by-nin", post(get_by_nin::<S>))
        .route("/person/bulk-by-nin", post(bulk_by_nin::<S>))
        .route("/person/bulk-by-id", post(bulk_by_id::<S>))
        .route("/person/{id}", get(get_by_id::<S>))
        .route("/search/person", post(search::<S>))
        .route("/event/latest", get(latest_event::<S>))
        .route("/event", get(events::<S>))
}

/// The `api-version` header, which the contract requires.
fn api_version(headers: &HeaderMap) -> Result<(), GrunndataError> {
    match headers
        .get("api-version")
        .map(|v| v.to_str().map(str::trim))
    {
        Some(Ok(API_VERSION | "2.0")) => Ok(()),
        Some(_) => Err(GrunndataError::invalid(
            "api-version",
            format!("is not supported: this server speaks {API_VERSION}"),
        )),
        None => Err(GrunndataError::invalid(
            "api-version",
            format!("the header is required ({API_VERSION})"),
        )),
    }
}

/// What every person look-up asks: which parts, with history or not, and for what purpose.
struct Request {
    parts: Parts,
    history: bool,
    purpose: &'static str,
}

fn request(
    headers: &HeaderMap,
    query: Option<&str>,
    bundle: Bundle,
) -> Result<Request, GrunndataError> {
    api_version(headers)?;
    let purpose = stated_purpose(headers, bundle == Bundle::LegalBasis)?;
    let query = pairs(query.unwrap_or_default().as_bytes());
    let parts = Parts::parse(values(&query, "informationParts"), bundle).map_err(|e| match e {
        PartsError::Missing => GrunndataError::invalid(
            "informationParts",
            "at least one information part is required",
        ),
        PartsError::Unknown(value) => GrunndataError::invalid(
            "informationParts",
            format!("{value:?} is not an information part of Persontjenesten"),
        ),
        PartsError::NeedsLegalBasis(part) => GrunndataError::Forbidden(format!(
            "the information part {part} needs the legal-basis bundle (/api/legal-basis, scope {})",
            ReadWithLegalBasis::SCOPE
        )),
    })?;
    Ok(Request {
        parts,
        history: flag(&query, "includeHistory")?,
        purpose,
    })
}

/// Earlier names and addresses of each person, newest first, when history was asked for.
async fn histories(
    store: &Store,
    nins: &[Fodselsnummer],
    wanted: bool,
) -> Result<Vec<Vec<Historic>>, StoreError> {
    let mut all = Vec::with_capacity(nins.len());
    for nin in nins {
        if !wanted {
            all.push(Vec::new());
            continue;
        }
        let rows = with_pool!(store, pool => sqlx::query_as::<_, (String, String)>(
            "SELECT effective_on, previous FROM person_event \
             WHERE nin = $1 AND previous IS NOT NULL ORDER BY seq DESC",
        )
        .bind(nin.to_string())
        .fetch_all(pool)
        .await)?;
        let mut history = Vec::with_capacity(rows.len());
        for (on, previous) in rows {
            let corrupt = |e: String| StoreError::Corrupt(format!("person_event.previous: {e}"));
            history.push(Historic {
                replaced_on: on
                    .parse()
                    .map_err(|e: chrono::ParseError| corrupt(e.to_string()))?,
                value: serde_json::from_str::<HistoricValue>(&previous)
                    .map_err(|e| corrupt(e.to_string()))?,
            });
        }
        all.push(history);
    }
    Ok(all)
}

/// Builds the documents of the persons found among `nins`, logs every number asked for, and
/// only then hands the documents back.
async fn look_up(
    state: &ApiState,
    principal: &Principal,
    bundle: Bundle,
    request: &Request,
    operation: &'static str,
    nins: &[Fodselsnummer],
) -> Result<Vec<PersonDocument>, GrunndataError> {
    let history = histories(&state.store, nins, request.history).await?;
    let (documents, found) = state.population.read(|population| {
        let view = View {
            bundle,
            parts: request.parts,
            state: population,
            municipalities: &state.municipalities,
        };
        let mut documents = Vec::with_capacity(nins.len());
        let mut found = Vec::with_capacity(nins.len());
        for (nin, history) in nins.iter().zip(&history) {
            let person = population.get(nin);
            found.push((*nin, person.is_some()));
            if let Some(person) = person {
                documents.push(view.document(&person, history));
            }
        }
        (documents, found)
    });
    let asked = Asked {
        principal,
        bundle: bundle.as_str(),
        legal_basis: bundle.legal_basis(),
        purpose: request.purpose,
        operation,
    };
    asked.log(&state.log, found).await?;
    Ok(documents)
}

async fn get_by_nin<S: BundleScope>(
    auth: Authorized<S>,
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, GrunndataError> {
    let request = request(&headers, query.as_deref(), S::BUNDLE)?;
    let form = pairs(&body);
    let value = one(&form, "nin")?.ok_or_else(|| GrunndataError::invalid("nin", "is required"))?;
    let nin = nin("nin", value)?;
    let mut documents = look_up(&state, &auth.0, S::BUNDLE, &request, "get-by-nin", &[nin]).await?;
    match documents.pop() {
        Some(document) => Ok(Json(document).into_response()),
        None => Err(GrunndataError::NotFound(
            "no person in the population register has this number",
        )),
    }
}

/// The distinct values of a bulk field, 1 to [`BULK_MAX`] of them.
fn bulk<'a>(
    form: &'a [(String, String)],
    key: &'static str,
) -> Result<Vec<&'a str>, GrunndataError> {
    let mut seen = BTreeSet::new();
    let all: Vec<&str> = values(form, key).filter(|v| seen.insert(*v)).collect();
    if all.is_empty() {
        return Err(GrunndataError::invalid(key, "at least one is required"));
    }
    if all.len() > BULK_MAX {
        return Err(GrunndataError::invalid(
            key,
            format!("at most {BULK_MAX} per request"),
        ));
    }
    Ok(all)
}

async fn bulk_by_nin<S: BundleScope>(
    auth: Authorized<S>,
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<Vec<PersonDocument>>, GrunndataError> {
    let request = request(&headers, query.as_deref(), S::BUNDLE)?;
    let form = pairs(&body);
    let nins = bulk(&form, "nins")?
        .iter()
        .enumerate()
        .map(|(i, v)| nin(&format!("nins[{i}]"), v))
        .collect::<Result<Vec<_>, _>>()?;
    look_up(&state, &auth.0, S::BUNDLE, &request, "bulk-by-nin", &nins)
        .await
        .map(Json)
}

/// The numbers of the persons with these ids, in order; unknown ids are skipped.
fn nins_of(state: &ApiState, ids: &[PersonId]) -> Vec<Fodselsnummer> {
    state.population.read(|p| {
        ids.iter()
            .filter_map(|id| p.by_id(*id).map(|person| person.nin))
            .collect()
    })
}

async fn get_by_id<S: BundleScope>(
    auth: Authorized<S>,
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<PersonDocument>, GrunndataError> {
    let request = request(&headers, query.as_deref(), S::BUNDLE)?;
    let id = person_id("id", &id)?;
    let nins = nins_of(&state, &[id]);
    let mut documents = look_up(&state, &auth.0, S::BUNDLE, &request, "get-by-id", &nins).await?;
    documents
        .pop()
        .map(Json)
        .ok_or(GrunndataError::NotFound("no person has this id"))
}

async fn bulk_by_id<S: BundleScope>(
    auth: Authorized<S>,
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<Vec<PersonDocument>>, GrunndataError> {
    let request = request(&headers, query.as_deref(), S::BUNDLE)?;
    let form = pairs(&body);
    let ids = bulk(&form, "personIds")?
        .iter()
        .enumerate()
        .map(|(i, v)| person_id(&format!("personIds[{i}]"), v))
        .collect::<Result<Vec<_>, _>>()?;
    let nins = nins_of(&state, &ids);
    look_up(&state, &auth.0, S::BUNDLE, &request, "bulk-by-id", &nins)
        .await
        .map(Json)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PersonSearchResult {
    results: Vec<PersonDocument>,
    start_index: i32,
    end_index: i32,
}

async fn search<S: BundleScope>(
    auth: Authorized<S>,
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<PersonSearchResult>, GrunndataError> {
    let request = request(&headers, query.as_deref(), S::BUNDLE)?;
    let criteria: Criteria = criteria_form(&body)?;
    let query = criteria
        .check()
        .map_err(|r| GrunndataError::invalid(r.field, r.reason))?;
    let nins: Vec<Fodselsnummer> = state.population.read(|p| {
        query
            .run(p, S::BUNDLE)
            .iter()
            .map(|person| person.nin)
            .collect()
    });
    let results = look_up(&state, &auth.0, S::BUNDLE, &request, "search", &nins).await?;
    Ok(Json(PersonSearchResult {
        start_index: 0,
        end_index: results.len().saturating_sub(1) as i32,
        results,
    }))
}

/// The search form, each field at most once.
fn criteria_form(body: &[u8]) -> Result<Criteria, GrunndataError> {
    let form = pairs(body);
    let mut seen = BTreeSet::new();
    for (key, _) in &form {
        if !seen.insert(key.as_str()) {
            return Err(GrunndataError::invalid(
                key.chars().take(40).collect::<String>(),
                "may be given once",
            ));
        }
    }
    let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    Ok(Criteria {
        birth_date: get("BirthDate"),
        gender: get("Gender"),
        full_name: get("FullName"),
        given_name: get("GivenName"),
        middle_name: get("MiddleName"),
        family_name: get("FamilyName"),
        street_address: get("StreetAddress"),
        postal_code: get("PostalCode"),
        city_name: get("CityName"),
        municipality_number: get("MunicipalityNumber"),
    })
}

async fn latest_event<S: BundleScope>(
    _: Authorized<S>,
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<feed::EventDocument>, GrunndataError> {
    api_version(&headers)?;
    feed::latest(&state.store)
        .await?
        .map(Json)
        .ok_or(GrunndataError::NotFound("the feed holds no events yet"))
}

async fn events<S: BundleScope>(
    _: Authorized<S>,
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<feed::EventDocumentSearchResult>, GrunndataError> {
    api_version(&headers)?;
    let query = pairs(query.unwrap_or_default().as_bytes());
    let from = match one(&query, "sequenceNumber")? {
        Some(value) => feed::sequence_number(value)?,
        None => 1,
    };
    let types = values(&query, "eventTypes")
        .map(feed::event_type)
        .collect::<Result<Vec<_>, _>>()?;
    let results = feed::page(&state.store, from, &types).await?;
    Ok(Json(feed::EventDocumentSearchResult {
        start_index: 0,
        end_index: results.len().saturating_sub(1) as i32,
        results,
    }))
}
