//! The register's HTTP API under `/adresseregisteret/v1`: JSON, HelseID-protected by scope, with
//! its OpenAPI document at `/adresseregisteret/v1/openapi.json`.

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{FromRef, Path, RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, NaiveDate, Utc};
use helsenett_core::{HerId, HprNummer, Organisasjonsnummer, Problem};
use helsenett_helseid::{Authorized, Guard, Principal, RequiredScope};
use helsenett_store::records::{CertificateUsage, PartyKind};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{OpenApi, ToSchema};

use crate::{
    Register, RegisterError,
    changes::{self, Editor, NewOrganisation, NewParty, PartyUpdate},
    cpa::{AgreedProcess, Agreement, Mismatch},
    directory::{Search, Snapshot},
    export,
    model::{
        Address, AddressKind, CertificateStatus, OrganisationDetails, Party, Process,
        StoredCertificate,
    },
    storage,
};

pub const PREFIX: &str = "/adresseregisteret/v1";
const AUDIENCE: &str = "nhn:adresseregisteret";
const ADMIN_SCOPE: &str = "nhn:adresseregisteret/admin";
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 500;
const DEFAULT_EVENTS: i64 = 1_000;
const MAX_EVENTS: i64 = 10_000;

pub struct ReadRegister;
impl RequiredScope for ReadRegister {
    const AUDIENCE: &'static str = AUDIENCE;
    const SCOPE: &'static str = "nhn:adresseregisteret/read";
}

pub struct WriteRegister;
impl RequiredScope for WriteRegister {
    const AUDIENCE: &'static str = AUDIENCE;
    const SCOPE: &'static str = "nhn:adresseregisteret/write";
}

pub struct AdminRegister;
impl RequiredScope for AdminRegister {
    const AUDIENCE: &'static str = AUDIENCE;
    const SCOPE: &'static str = ADMIN_SCOPE;
}

#[derive(Clone)]
struct AppState {
    register: Register,
    guard: Guard,
    openapi: std::sync::Arc<String>,
}

impl FromRef<AppState> for Guard {
    fn from_ref(state: &AppState) -> Guard {
        state.guard.clone()
    }
}

impl Register {
    /// The API, for a node whose HelseID has `issuer`.
    pub fn router(&self, guard: Guard, issuer: &str) -> Router {
        let state = AppState {
            register: self.clone(),
            guard,
            openapi: std::sync::Arc::new(openapi(issuer)),
        };
        Router::new()
            .route("/openapi.json", get(openapi_document))
            .route("/parties", get(search).post(create_party))
            .route("/parties/{her_id}", get(details).patch(update_party))
            .route(
                "/parties/{her_id}/certificates",
                get(certificates).post(add_certificate),
            )
            .route(
                "/parties/{her_id}/certificates/{fingerprint}/revocation",
                post(revoke_certificate),
            )
            .route(
                "/parties/{her_id}/certificate-for-encryption",
                get(certificate_for_encryption),
            )
            .route(
                "/parties/{her_id}/certificate-for-signature-validation",
                get(certificate_for_signature),
            )
            .route("/parties/{her_id}/cpp", get(cpp).put(set_cpp))
            .route("/cpa", get(cpa))
            .route("/events", get(events))
            .route("/export", get(export_all))
            .route("/organisations", post(create_organisation))
            .with_state(state)
            .fallback(not_found)
            .pipe(|api| Router::new().nest(PREFIX, api))
    }
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

async fn not_found(uri: axum::http::Uri) -> Response {
    Problem::new(404, "not-found", "No such resource")
        .with_detail(format!("{} is not served here", uri.path()))
        .into_response()
}

/// The OpenAPI document, with HelseID's discovery URL as the security scheme.
pub fn openapi(issuer: &str) -> String {
    use utoipa::openapi::security::{OpenIdConnect, SecurityScheme};
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "helseid",
        SecurityScheme::OpenIdConnect(OpenIdConnect::with_description(
            format!("{issuer}/.well-known/openid-configuration"),
            "A HelseID access token for audience nhn:adresseregisteret, sent as DPoP (with a proof) or Bearer".to_owned(),
        )),
    );
    doc.to_pretty_json()
        .expect("the OpenAPI document serialises")
}

async fn openapi_document(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_str().to_owned(),
    )
        .into_response()
}

fn editor(principal: &Principal) -> Editor {
    if principal.has_scope(ADMIN_SCOPE) {
        Editor::Admin
    } else {
        Editor::Member(principal.organisation)
    }
}

fn actor(principal: &Principal) -> String {
    format!("{} ({})", principal.client_id, principal.organisation)
}

fn her_id_param(text: &str) -> Result<HerId, RegisterError> {
    HerId::parse(text).map_err(|e| RegisterError::invalid("herId", e))
}

/// A JSON body; an error names the field it is in (`cpp[0].versions[1]`), or `body`.
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, RegisterError> {
    helsenett_core::json::from_body(bytes).map_err(|e| RegisterError::invalid(e.field, e.reason))
}

/// A query string's parameters, refusing any not in `known` (a misspelt filter must not
/// silently widen a search).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, RegisterError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(RegisterError::invalid(
                unknown.chars().take(40).collect::<String>(),
                format!("is not a parameter here (known: {})", known.join(", ")),
            ));
        }
        Ok(Params(pairs))
    }

    fn get<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, RegisterError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(RegisterError::invalid(name, "is given more than once")),
            (Some((_, v)), None) => parse(v)
                .map(Some)
                .map_err(|e| RegisterError::invalid(name, e)),
        }
    }
}

fn number<T>(range: std::ops::RangeInclusive<T>) -> impl Fn(&str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    move |s| match s.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub total_results: usize,
    pub page: usize,
    pub page_size: usize,
    pub parties: Vec<PartySummary>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartySummary {
    #[schema(value_type = String)]
    pub her_id: HerId,
    #[schema(value_type = String)]
    pub kind: PartyKind,
    pub name: String,
    #[schema(value_type = String)]
    pub orgnr: Organisasjonsnummer,
    #[schema(value_type = Option<String>)]
    pub parent_her_id: Option<HerId>,
    pub municipality: String,
    pub active: bool,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
}

impl From<&Party> for PartySummary {
    fn from(p: &Party) -> Self {
        PartySummary {
            her_id: p.her_id,
            kind: p.kind,
            name: p.name.clone(),
            orgnr: p.orgnr,
            parent_her_id: p.parent_her_id,
            municipality: p.municipality.clone(),
            active: p.active,
            valid_from: p.valid_from,
            valid_to: p.valid_to,
        }
    }
}

const SEARCH_PARAMS: &[&str] = &[
    "name",
    "orgnr",
    "herId",
    "municipality",
    "type",
    "messageType",
    "active",
    "page",
    "pageSize",
];

#[utoipa::path(get, path = "/parties", tag = "parties",
    params(
        ("name" = Option<String>, Query, description = "Part of the name, any case"),
        ("orgnr" = Option<String>, Query, description = "Organisasjonsnummer"),
        ("herId" = Option<String>, Query),
        ("municipality" = Option<String>, Query, description = "A municipality the party is in or serves"),
        ("type" = Option<String>, Query, description = "Organization, Department, Service or Person"),
        ("messageType" = Option<String>, Query, description = "A message type the party receives"),
        ("active" = Option<bool>, Query),
        ("page" = Option<usize>, Query, description = "From 1"),
        ("pageSize" = Option<usize>, Query, description = "1 to 500, default 50"),
    ),
    responses((status = 200, body = SearchResult), (status = 400, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/read"])))]
async fn search(
    State(state): State<AppState>,
    _: Authorized<ReadRegister>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchResult>, RegisterError> {
    let params = Params::parse(raw.as_deref(), SEARCH_PARAMS)?;
    let text = |s: &str| Ok(s.to_owned());
    let query = Search {
        name: params.get("name", text)?,
        orgnr: params.get("orgnr", |s| {
            Organisasjonsnummer::parse(s).map_err(|e| e.to_string())
        })?,
        her_id: params.get("herId", |s| HerId::parse(s).map_err(|e| e.to_string()))?,
        municipality: params.get("municipality", text)?,
        kind: params.get("type", |s| {
            PartyKind::parse(s)
                .map_err(|_| "must be Organization, Department, Service or Person".into())
        })?,
        receives: params.get("messageType", text)?,
        active: params.get("active", |s| {
            s.parse::<bool>()
                .map_err(|_| "must be true or false".into())
        })?,
    };
    let page = params.get("page", number(1..=1_000_000))?.unwrap_or(1);
    let page_size = params
        .get("pageSize", number(1..=MAX_PAGE_SIZE))?
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let snapshot = state.register.snapshot();
    let (total, parties) = snapshot.search(&query, (page - 1) * page_size, page_size);
    Ok(Json(SearchResult {
        total_results: total,
        page,
        page_size,
        parties: parties
            .into_iter()
            .map(|p| PartySummary::from(&**p))
            .collect(),
    }))
}

/// A certificate's description with its status now.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateView {
    #[schema(value_type = String, example = "encryption")]
    pub usage: CertificateUsage,
    pub status: CertificateStatus,
    pub fingerprint: String,
    pub serial: String,
    pub issuer: String,
    pub subject: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub added_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl CertificateView {
    fn new(c: &StoredCertificate, now: DateTime<Utc>) -> Self {
        CertificateView {
            usage: c.usage,
            status: c.status(now),
            fingerprint: c.fingerprint.clone(),
            serial: c.serial.clone(),
            issuer: c.issuer.clone(),
            subject: c.subject.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
            added_at: c.added_at,
            revoked_at: c.revoked_at,
        }
    }
}

/// Which certificate a party uses now for a purpose, and whose it is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InUse {
    /// The party that holds it: the party itself, or the ancestor it inherits from.
    #[schema(value_type = String)]
    pub held_by: HerId,
    pub inherited: bool,
    #[serde(flatten)]
    pub certificate: CertificateView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartyDetails {
    #[schema(value_type = String)]
    pub her_id: HerId,
    #[schema(value_type = String)]
    pub kind: PartyKind,
    pub name: String,
    #[schema(value_type = String)]
    pub orgnr: Organisasjonsnummer,
    #[schema(value_type = Option<String>)]
    pub parent_her_id: Option<HerId>,
    pub parent_name: Option<String>,
    #[schema(value_type = Option<String>)]
    pub hpr_number: Option<HprNummer>,
    pub municipality: String,
    pub active: bool,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
    /// Active and within its validity today: messages may be addressed to it.
    pub addressable: bool,
    pub organisation: Option<OrganisationDetails>,
    pub coverage: Vec<String>,
    pub cpp: Vec<Process>,
    /// The party's own certificates, oldest first.
    pub certificates: Vec<CertificateView>,
    pub encryption_certificate: Option<InUse>,
    pub signature_certificate: Option<InUse>,
}

fn in_use(
    snapshot: &Snapshot,
    her_id: HerId,
    usage: CertificateUsage,
    now: DateTime<Utc>,
) -> Option<InUse> {
    snapshot.certificate(her_id, usage, now).map(|found| InUse {
        held_by: found.holder,
        inherited: found.holder != her_id,
        certificate: CertificateView::new(found.certificate, now),
    })
}

fn party(snapshot: &Snapshot, her_id: HerId) -> Result<&Party, RegisterError> {
    snapshot
        .party(her_id)
        .map(|p| &**p)
        .ok_or(RegisterError::UnknownHerId(her_id))
}

fn details_of(snapshot: &Snapshot, p: &Party, now: DateTime<Utc>) -> PartyDetails {
    PartyDetails {
        her_id: p.her_id,
        kind: p.kind,
        name: p.name.clone(),
        orgnr: p.orgnr,
        parent_her_id: p.parent_her_id,
        parent_name: p
            .parent_her_id
            .and_then(|h| snapshot.party(h))
            .map(|parent| parent.name.clone()),
        hpr_number: p.hpr_number,
        municipality: p.municipality.clone(),
        active: p.active,
        valid_from: p.valid_from,
        valid_to: p.valid_to,
        addressable: p.is_addressable(now.date_naive()),
        organisation: p.organisation.clone(),
        coverage: p.coverage.clone(),
        cpp: p.cpp.clone(),
        certificates: p
            .certificates
            .iter()
            .map(|c| CertificateView::new(c, now))
            .collect(),
        encryption_certificate: in_use(snapshot, p.her_id, CertificateUsage::Encryption, now),
        signature_certificate: in_use(snapshot, p.her_id, CertificateUsage::Signing, now),
    }
}

#[utoipa::path(get, path = "/parties/{herId}", tag = "parties",
    params(("herId" = String, Path)),
    responses((status = 200, body = PartyDetails), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/read"])))]
async fn details(
    State(state): State<AppState>,
    _: Authorized<ReadRegister>,
    Path(her_id): Path<String>,
) -> Result<Json<PartyDetails>, RegisterError> {
    let her_id = her_id_param(&her_id)?;
    let snapshot = state.register.snapshot();
    let p = party(&snapshot, her_id)?;
    Ok(Json(details_of(&snapshot, p, Utc::now())))
}

/// A certificate with its DER, as the exchange needs it to encrypt or verify.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateWithDer {
    #[serde(flatten)]
    pub description: InUse,
    /// DER, standard base64.
    #[schema(format = Byte)]
    pub certificate: String,
}

fn usage_name(usage: CertificateUsage) -> &'static str {
    match usage {
        CertificateUsage::Encryption => "encryption",
        CertificateUsage::Signing => "signature",
    }
}

fn certificate_for(
    state: &AppState,
    her_id: &str,
    usage: CertificateUsage,
) -> Result<Json<CertificateWithDer>, RegisterError> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let her_id = her_id_param(her_id)?;
    let snapshot = state.register.snapshot();
    party(&snapshot, her_id)?;
    let now = Utc::now();
    let found = snapshot.certificate(her_id, usage, now).ok_or_else(|| {
        RegisterError::NotFound(format!(
            "HER-id {her_id} has no {} certificate, nor has any party it belongs to",
            usage_name(usage)
        ))
    })?;
    let status = found.certificate.status(now);
    if status != CertificateStatus::Valid {
        return Err(RegisterError::NotFound(format!(
            "HER-id {her_id} has no usable {} certificate: the one in use (SHA-256 {}, held by HER-id {}) is {}",
            usage_name(usage),
            found.certificate.fingerprint,
            found.holder,
            status,
        )));
    }
    Ok(Json(CertificateWithDer {
        certificate: STANDARD.encode(&found.certificate.der),
        description: InUse {
            held_by: found.holder,
            inherited: found.holder != her_id,
            certificate: CertificateView::new(found.certificate, now),
        },
    }))
}

#[utoipa::path(get, path = "/parties/{herId}/certificate-for-encryption", tag = "certificates",
    description = "The certificate to encrypt messages to the party with: its own, or inherited. 404 when there is none, or when the one in use is not valid now (revoked, expired, not yet valid): the detail says which.",
    params(("herId" = String, Path)),
    responses((status = 200, body = CertificateWithDer), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/read"])))]
async fn certificate_for_encryption(
    State(state): State<AppState>,
    _: Authorized<ReadRegister>,
    Path(her_id): Path<String>,
) -> Result<Json<CertificateWithDer>, RegisterError> {
    certificate_for(&state, &her_id, CertificateUsage::Encryption)
}

#[utoipa::path(get, path = "/parties/{herId}/certificate-for-signature-validation", tag = "certificates",
    params(("herId" = String, Path)),
    responses((status = 200, body = CertificateWithDer), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/read"])))]
async fn certificate_for_signature(
    State(state): State<AppState>,
    _: Authorized<ReadRegister>,
    Path(her_id): Path<String>,
) -> Result<Json<CertificateWithDer>, RegisterError> {
    certificate_for(&state, &her_id, CertificateUsage::Signing)
}

#[utoipa::path(get, path = "/parties/{herId}/certificates", tag = "certificates",
    description = "Every certificate the party has held, with DER: old signatures and messages stay verifiable after a rotation.",
    params(("herId" = String, Path)),
    responses((status = 200, body = Vec<StoredCertificate>), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/read"])))]
async fn certificates(
    State(state): State<AppState>,
    _: Authorized<ReadRegister>,
    Path(her_id): Path<String>,
) -> Result<Json<Vec<StoredCertificate>>, RegisterError> {
    let her_id = her_id_param(&her_id)?;
    let snapshot = state.register.snapshot();
    Ok(Json(party(&snapshot, her_id)?.certificates.clone()))
}

#[utoipa::path(get, path = "/parties/{herId}/cpp", tag = "cpp",
    params(("herId" = String, Path)),
    responses((status = 200, body = Vec<Process>), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/read"])))]
async fn cpp(
    State(state): State<AppState>,
    _: Authorized<ReadRegister>,
    Path(her_id): Path<String>,
) -> Result<Json<Vec<Process>>, RegisterError> {
    let her_id = her_id_param(&her_id)?;
    let snapshot = state.register.snapshot();
    Ok(Json(party(&snapshot, her_id)?.cpp.clone()))
}

#[utoipa::path(get, path = "/cpa", tag = "cpp",
    description = "The agreement for messages from one party to another: each process the sender sends and the receiver receives, at the highest version both list.",
    params(("from" = String, Query, description = "Sender HER-id"), ("to" = String, Query, description = "Receiver HER-id")),
    responses((status = 200, body = Agreement), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/read"])))]
async fn cpa(
    State(state): State<AppState>,
    _: Authorized<ReadRegister>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Agreement>, RegisterError> {
    let params = Params::parse(raw.as_deref(), &["from", "to"])?;
    let her = |s: &str| HerId::parse(s).map_err(|e| e.to_string());
    let from = params
        .get("from", her)?
        .ok_or_else(|| RegisterError::invalid("from", "is required"))?;
    let to = params
        .get("to", her)?
        .ok_or_else(|| RegisterError::invalid("to", "is required"))?;
    let snapshot = state.register.snapshot();
    snapshot
        .agreement(from, to)
        .map(Json)
        .map_err(RegisterError::UnknownHerId)
}

/// One change: the party's whole state after it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    pub event_id: i64,
    pub at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub her_id: HerId,
    /// created, updated, certificateAdded, certificateRevoked, cppUpdated or imported.
    pub change: &'a str,
    /// The HelseID client (and its organisation) that made it.
    pub actor: &'a str,
    #[schema(value_type = Party)]
    pub party: &'a RawValue,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage<'a> {
    pub events: Vec<Event<'a>>,
    /// Ask next with afterEventId set to this.
    pub last_event_id: i64,
}

#[utoipa::path(get, path = "/events", tag = "mirror",
    description = "Every change, in order, exactly once. Start from an export's asOfEventId.",
    params(("afterEventId" = i64, Query), ("limit" = Option<i64>, Query, description = "1 to 10000, default 1000")),
    responses((status = 200, body = EventPage), (status = 400, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/read"])))]
async fn events(
    State(state): State<AppState>,
    _: Authorized<ReadRegister>,
    RawQuery(raw): RawQuery,
) -> Result<Response, RegisterError> {
    let params = Params::parse(raw.as_deref(), &["afterEventId", "limit"])?;
    let after = params
        .get("afterEventId", number(0..=i64::MAX))?
        .ok_or_else(|| RegisterError::invalid("afterEventId", "is required (0 for the first)"))?;
    let limit = params
        .get("limit", number(1..=MAX_EVENTS))?
        .unwrap_or(DEFAULT_EVENTS);
    let stored = storage::events_after(state.register.store(), after, limit).await?;
    let mut events = Vec::with_capacity(stored.len());
    for e in &stored {
        let corrupt = |what: String| {
            helsenett_store::StoreError::Corrupt(format!("register_event {}: {what}", e.id))
        };
        let party: &RawValue =
            serde_json::from_str(&e.document).map_err(|err| corrupt(format!("document: {err}")))?;
        let her_id = u32::try_from(e.her_id)
            .ok()
            .and_then(|h| HerId::new(h).ok())
            .ok_or_else(|| corrupt(format!("{} is not a HER-id", e.her_id)))?;
        events.push(Event {
            event_id: e.id,
            at: DateTime::from_timestamp_millis(e.at).unwrap_or_default(),
            her_id,
            change: &e.change,
            actor: &e.actor,
            party,
        });
    }
    let page = EventPage {
        last_event_id: stored.last().map_or(after, |e| e.id),
        events,
    };
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/export", tag = "mirror",
    description = "The whole register as of one event, newline-delimited JSON: a header line (format, asOfEventId, parties) then one Party per line.",
    responses((status = 200, content_type = "application/x-ndjson", body = export::Header)),
    security(("helseid" = ["nhn:adresseregisteret/read"])))]
async fn export_all(
    State(state): State<AppState>,
    _: Authorized<ReadRegister>,
) -> Result<Response, RegisterError> {
    let snapshot = state.register.snapshot();
    let bytes = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(snapshot.len() * 2_048);
        export::write(&snapshot, &mut out).map(|()| out)
    })
    .await
    .map_err(|e| RegisterError::Store(helsenett_store::StoreError::Corrupt(e.to_string())))?
    .map_err(|e| RegisterError::Store(helsenett_store::StoreError::Corrupt(e.to_string())))?;
    Ok((
        [(header::CONTENT_TYPE, export::CONTENT_TYPE)],
        Body::from(bytes),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Writing

fn created(snapshot: &Snapshot, p: &Party) -> Response {
    (
        StatusCode::CREATED,
        Json(details_of(snapshot, p, Utc::now())),
    )
        .into_response()
}

/// Runs one change and answers with the party's new details.
async fn one_change(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    decide: impl FnOnce(&Snapshot, Editor) -> Result<crate::Change, RegisterError>,
) -> Result<Response, RegisterError> {
    let editor = editor(principal);
    let mut changes = state
        .register
        .change(&actor(principal), |base| {
            decide(base, editor).map(|c| vec![c])
        })
        .await?;
    let change = changes.pop().expect("one change was made");
    let snapshot = state.register.snapshot();
    Ok(match status {
        StatusCode::CREATED => created(&snapshot, &change.party),
        _ => Json(details_of(&snapshot, &change.party, Utc::now())).into_response(),
    })
}

#[utoipa::path(post, path = "/organisations", tag = "parties",
    request_body = NewOrganisation,
    responses((status = 201, body = PartyDetails), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/admin"])))]
async fn create_organisation(
    State(state): State<AppState>,
    auth: Authorized<AdminRegister>,
    bytes: Bytes,
) -> Result<Response, RegisterError> {
    let principal = auth.0;
    let new: NewOrganisation = body(&bytes)?;
    one_change(&state, &principal, StatusCode::CREATED, |base, editor| {
        changes::create_organisation(base, editor, new, Utc::now().date_naive())
    })
    .await
}

#[utoipa::path(post, path = "/parties", tag = "parties",
    description = "A department, service or person under a party of the caller's organisation.",
    request_body = NewParty,
    responses((status = 201, body = PartyDetails), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/write"])))]
async fn create_party(
    State(state): State<AppState>,
    auth: Authorized<WriteRegister>,
    bytes: Bytes,
) -> Result<Response, RegisterError> {
    let principal = auth.0;
    let new: NewParty = body(&bytes)?;
    one_change(&state, &principal, StatusCode::CREATED, |base, editor| {
        changes::create_party(base, editor, new, Utc::now().date_naive())
    })
    .await
}

#[utoipa::path(patch, path = "/parties/{herId}", tag = "parties",
    params(("herId" = String, Path)),
    request_body = PartyUpdate,
    responses((status = 200, body = PartyDetails), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/write"])))]
async fn update_party(
    State(state): State<AppState>,
    auth: Authorized<WriteRegister>,
    Path(her_id): Path<String>,
    bytes: Bytes,
) -> Result<Response, RegisterError> {
    let principal = auth.0;
    let her_id = her_id_param(&her_id)?;
    let update: PartyUpdate = body(&bytes)?;
    one_change(&state, &principal, StatusCode::OK, |base, editor| {
        changes::update_party(base, editor, her_id, update)
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateUpload {
    /// encryption or signature
    pub usage: String,
    /// PEM, or DER in base64.
    pub certificate: String,
    /// Intermediate CA certificates (PEM) between it and a trust anchor.
    #[serde(default)]
    pub chain: Vec<String>,
}

#[utoipa::path(post, path = "/parties/{herId}/certificates", tag = "certificates",
    description = "Adds a certificate to the party; it becomes the one in use for its purpose. It must chain to a trust anchor, be valid now, be RSA of at least 2048 bits, carry the key usage its purpose needs, and name the party's organisasjonsnummer.",
    params(("herId" = String, Path)),
    request_body = CertificateUpload,
    responses((status = 201, body = PartyDetails), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/write"])))]
async fn add_certificate(
    State(state): State<AppState>,
    auth: Authorized<WriteRegister>,
    Path(her_id): Path<String>,
    bytes: Bytes,
) -> Result<Response, RegisterError> {
    let principal = auth.0;
    let her_id = her_id_param(&her_id)?;
    let upload: CertificateUpload = body(&bytes)?;
    let usage = changes::usage(&upload.usage)?;
    // Checked before the write lock is taken: parsing and chain building must not hold up
    // every other writer of the register.
    let owner = party(&state.register.snapshot(), her_id)?.orgnr;
    let anchors = state.register.trust_anchors().await?;
    let checked = crate::certs::check(
        &upload.certificate,
        &upload.chain,
        usage,
        owner,
        &anchors,
        crate::model::now(),
    )
    .map_err(|e| RegisterError::CertificateRejected(e.0))?;
    one_change(&state, &principal, StatusCode::CREATED, |base, editor| {
        changes::add_certificate(base, editor, her_id, checked, owner)
    })
    .await
}

#[utoipa::path(post, path = "/parties/{herId}/certificates/{fingerprint}/revocation", tag = "certificates",
    params(("herId" = String, Path), ("fingerprint" = String, Path, description = "SHA-256 of the DER, hex")),
    responses((status = 200, body = PartyDetails), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/write"])))]
async fn revoke_certificate(
    State(state): State<AppState>,
    auth: Authorized<WriteRegister>,
    Path((her_id, fingerprint)): Path<(String, String)>,
) -> Result<Response, RegisterError> {
    let principal = auth.0;
    let her_id = her_id_param(&her_id)?;
    let fingerprint = fingerprint.to_ascii_lowercase();
    one_change(&state, &principal, StatusCode::OK, |base, editor| {
        changes::revoke_certificate(base, editor, her_id, &fingerprint, crate::model::now())
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CppUpdate {
    pub processes: Vec<Process>,
}

#[utoipa::path(put, path = "/parties/{herId}/cpp", tag = "cpp",
    params(("herId" = String, Path)),
    request_body = CppUpdate,
    responses((status = 200, body = PartyDetails), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("helseid" = ["nhn:adresseregisteret/write"])))]
async fn set_cpp(
    State(state): State<AppState>,
    auth: Authorized<WriteRegister>,
    Path(her_id): Path<String>,
    bytes: Bytes,
) -> Result<Response, RegisterError> {
    let principal = auth.0;
    let her_id = her_id_param(&her_id)?;
    let update: CppUpdate = body(&bytes)?;
    one_change(&state, &principal, StatusCode::OK, |base, editor| {
        changes::set_cpp(base, editor, her_id, update.processes)
    })
    .await
}

#[derive(OpenApi)]
#[openapi(
    info(title = "helsenett Adresseregisteret", description = "The address register: communication parties, certificates, CPP/CPA, export and event feed."),
    servers((url = "/adresseregisteret/v1")),
    paths(search, details, certificate_for_encryption, certificate_for_signature, certificates, cpp, cpa, events, export_all,
          create_organisation, create_party, update_party, add_certificate, revoke_certificate, set_cpp),
    components(schemas(Problem, Party, PartySummary, PartyDetails, SearchResult, CertificateView, InUse, CertificateWithDer,
        StoredCertificate, CertificateStatus, OrganisationDetails, Address, AddressKind, Process, Agreement, AgreedProcess,
        Mismatch, Event, EventPage, export::Header, NewOrganisation, NewParty, PartyUpdate, CertificateUpload, CppUpdate))
)]
struct ApiDoc;
