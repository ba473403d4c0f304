//! The API for health personnel and source systems under `/kjernejournal/api/v1`: read a record
//! or one of its documents (with a reason; `emergency` breaks the glass), register critical
//! information or that none is known, and, for source systems, report dispensings, contacts,
//! vaccinations and documents. The patient is in the body, never in the URL (URLs end up in
//! logs). Every well-formed request is decided and audited by the ledger, refused or not.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use helsenett_core::{
    Fodselsnummer,
    fhir::{self, Resource},
};
use helsenett_helseid::{Authorized, Principal, RequiredScope};
use helsenett_store::kjernejournal::Section;
use serde::Deserialize;
use serde_json::json;

use crate::{
    Shared,
    access::{Access, Caller, Ctx},
    error::KjError,
    ledger::{Done, Op, Request},
    record,
    validate::{self, MAX_RESOURCE_BYTES},
};

/// Health personnel and citizens: read and change records.
pub struct UseRecord;
impl RequiredScope for UseRecord {
    const AUDIENCE: &'static str = "nhn:kjernejournal";
    const SCOPE: &'static str = "nhn:kjernejournal/api";
}

/// Source systems: report what happened into the record.
pub struct Ingest;
impl RequiredScope for Ingest {
    const AUDIENCE: &'static str = "nhn:kjernejournal";
    const SCOPE: &'static str = "nhn:kjernejournal/ingest";
}

/// Operators: the snooping alerts.
pub struct Operate;
impl RequiredScope for Operate {
    const AUDIENCE: &'static str = "nhn:kjernejournal";
    const SCOPE: &'static str = "nhn:kjernejournal/operator";
}

/// Longest stated reason.
pub const MAX_REASON: usize = 500;

/// The caller as the token says.
pub fn ctx_of(principal: &Principal) -> Ctx {
    let caller = match principal.user() {
        None => Caller::System {
            client_id: principal.client_id.clone(),
        },
        Some(user) => match user.hpr_number {
            Some(hpr) => Caller::Personnel {
                hpr,
                name: user.name.clone(),
                security_level: user.security_level,
            },
            None => Caller::Citizen {
                pid: user.pid,
                name: user.name.clone(),
                security_level: user.security_level,
            },
        },
    };
    Ctx {
        caller,
        organisation: principal.organisation,
        unit: principal.child_organisation,
        token_id: principal.token_id.clone(),
    }
}

/// A JSON request body; errors name the field, never the value.
pub fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8], shape: &'static str) -> Result<T, KjError> {
    helsenett_core::json::from_body(bytes).map_err(|e| KjError::Field {
        field: "body",
        rule: format!("{} must be {shape}", e.field),
    })
}

fn patient(value: &str) -> Result<Fodselsnummer, KjError> {
    Fodselsnummer::parse(value.trim()).map_err(|e| KjError::field("patient", e.reason))
}

fn reason(value: &str) -> Result<String, KjError> {
    let reason = value.trim();
    if reason.is_empty() {
        return Err(KjError::field(
            "reason",
            "is required: why you need the record",
        ));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(KjError::field(
            "reason",
            format!("is longer than {MAX_REASON} characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// Runs a request through the ledger; a refusal becomes the error it is.
pub async fn submit(state: &Shared, request: Request) -> Result<(i64, Access, Done), KjError> {
    let answer = state.ledger.submit(request).await?;
    match answer.outcome {
        Ok((access, done)) => Ok((answer.seq, access, done)),
        Err(refusal) => Err(KjError::Refused(refusal)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReadBody {
    patient: String,
    reason: String,
    #[serde(default)]
    emergency: bool,
    /// For a document: its DocumentReference id.
    #[serde(default)]
    document: Option<String>,
}

const READ_SHAPE: &str = r#"{"patient": "<fødselsnummer>", "reason": "<why>", "emergency": false, "document": "<id, for a document>"}"#;

/// POST /record: the record as a FHIR Bundle.
pub async fn read_record(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    bytes: Bytes,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let b: ReadBody = body(&bytes, READ_SHAPE)?;
    if b.document.is_some() {
        return Err(KjError::field("document", "belongs to POST /document"));
    }
    let patient = patient(&b.patient)?;
    let request = Request {
        ctx: ctx_of(&principal).into(),
        patient,
        reason: Some(reason(&b.reason)?),
        emergency: b.emergency,
        op: Op::ReadRecord,
    };
    record_response(&state, request).await
}

/// Reads a record through the ledger and serves it.
pub async fn record_response(state: &Shared, request: Request) -> Result<Response, KjError> {
    let patient = request.patient;
    let (seq, access, done) = submit(state, request).await?;
    let Done::Record { rows, nil_known } = done else {
        unreachable!("a record read answers with the record")
    };
    let now = helsenett_core::time::now_millis();
    Ok(fhir::json_response(record::bundle(
        &patient, &rows, nil_known, access, seq, now,
    )))
}

/// POST /document: a shared document's content, as it was sent.
pub async fn read_document(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    bytes: Bytes,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let b: ReadBody = body(&bytes, READ_SHAPE)?;
    let Some(id) = b.document else {
        return Err(KjError::field(
            "document",
            "is required: the DocumentReference id",
        ));
    };
    let request = Request {
        ctx: ctx_of(&principal).into(),
        patient: patient(&b.patient)?,
        reason: Some(reason(&b.reason)?),
        emergency: b.emergency,
        op: Op::ReadDocument(id),
    };
    document_response(&state, request).await
}

/// Reads a document through the ledger and serves its content.
pub async fn document_response(state: &Shared, request: Request) -> Result<Response, KjError> {
    let (_, _, done) = submit(state, request).await?;
    let Done::Document(Some((_, content_type, data))) = done else {
        return Err(KjError::NotFound(
            "the record has no such document, or none you may see",
        ));
    };
    let mut response = data.into_response();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// The headers that carry a read's reason and emergency flag where there is no body.
pub const REASON_HEADER: &str = "nhn-reason";
pub const EMERGENCY_HEADER: &str = "nhn-emergency";

/// GET /Binary/{id}: a document's content, where its DocumentReference's `attachment.url`
/// points. The patient is the document's; the reason is in `nhn-reason` (percent-encoded UTF-8
/// allowed), an emergency is `nhn-emergency: true`. A citizen's token reads their own documents.
pub async fn binary(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let text = |name: &'static str| -> Result<Option<String>, KjError> {
        headers
            .get(name)
            .map(|v| {
                let raw = v
                    .to_str()
                    .map_err(|_| KjError::field(name, "is not text"))?;
                url::form_urlencoded::parse(format!("v={raw}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .ok_or_else(|| KjError::field(name, "is not text"))
            })
            .transpose()
    };
    let emergency = match text(EMERGENCY_HEADER)?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(KjError::field(EMERGENCY_HEADER, "must be true or false")),
    };
    let ctx = ctx_of(&principal);
    let stated = match (&ctx.caller, text(REASON_HEADER)?) {
        (Caller::Citizen { .. }, given) => given.as_deref().map(reason).transpose()?,
        (_, Some(given)) => Some(reason(&given)?),
        (_, None) => {
            return Err(KjError::field(
                REASON_HEADER,
                "is required: why you need the document",
            ));
        }
    };
    let Some(patient) = crate::ledger::document_owner(&state.store, &id).await? else {
        return Err(KjError::NotFound(
            "the record has no such document, or none you may see",
        ));
    };
    let request = Request {
        ctx: ctx.into(),
        patient,
        reason: stated,
        emergency,
        op: Op::ReadDocument(id),
    };
    document_response(&state, request).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CriticalBody {
    patient: String,
    reason: String,
    resource: serde_json::Value,
}

/// POST /critical: registers one piece of critical information (AllergyIntolerance,
/// Condition or Device); answers 201 with the resource as stored.
pub async fn add_critical(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    bytes: Bytes,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let b: CriticalBody = body(
        &bytes,
        r#"{"patient": "<fødselsnummer>", "reason": "<why>", "resource": {FHIR AllergyIntolerance, Condition or Device}}"#,
    )?;
    let patient = patient(&b.patient)?;
    let reason = reason(&b.reason)?;
    let resource = validate::resource(b.resource)?;
    let ctx = ctx_of(&principal);
    let entry = validate::entry(Section::Critical, resource, &patient, &ctx)?;
    created(&state, ctx, patient, Some(reason), entry).await
}

/// Adds an entry through the ledger; 201 with the resource.
pub async fn created(
    state: &Shared,
    ctx: Ctx,
    patient: Fodselsnummer,
    reason: Option<String>,
    entry: crate::ledger::NewEntry,
) -> Result<Response, KjError> {
    let resource = entry.resource.clone();
    let location = format!("{}/{}", entry.resource_type, entry.id);
    submit(
        state,
        Request {
            ctx: ctx.into(),
            patient,
            reason,
            emergency: false,
            op: Op::Add(entry),
        },
    )
    .await?;
    let mut response = fhir::json_response(resource);
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    patient: String,
    reason: String,
    /// The entry to remove.
    #[serde(default)]
    id: Option<String>,
}

/// POST /critical/none-known: health personnel state that no critical information is known.
pub async fn none_known(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    bytes: Bytes,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let b: ChangeBody = body(
        &bytes,
        r#"{"patient": "<fødselsnummer>", "reason": "<why>"}"#,
    )?;
    let request = Request {
        ctx: ctx_of(&principal).into(),
        patient: patient(&b.patient)?,
        reason: Some(reason(&b.reason)?),
        emergency: false,
        op: Op::NilKnown,
    };
    changed(&state, request).await
}

/// POST /critical/remove: removes one piece of critical information.
pub async fn remove_critical(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    bytes: Bytes,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let b: ChangeBody = body(
        &bytes,
        r#"{"patient": "<fødselsnummer>", "reason": "<why>", "id": "<entry id>"}"#,
    )?;
    let Some(id) = b.id else {
        return Err(KjError::field("id", "is required: the entry to remove"));
    };
    let request = Request {
        ctx: ctx_of(&principal).into(),
        patient: patient(&b.patient)?,
        reason: Some(reason(&b.reason)?),
        emergency: false,
        op: Op::Remove(Section::Critical, id),
    };
    changed(&state, request).await
}

/// Runs a change through the ledger; answers with an informational OperationOutcome.
pub async fn changed(state: &Shared, request: Request) -> Result<Response, KjError> {
    let (_, _, done) = submit(state, request).await?;
    let message = match done {
        Done::Updated | Done::Added => "changed",
        Done::Removed(true) => "removed",
        Done::Removed(false) => return Err(KjError::NotFound("the record has no such entry")),
        Done::Unchanged(why) => return Err(KjError::Conflict(why)),
        Done::Record { .. } | Done::Document(_) => unreachable!("a change answers with a change"),
    };
    Ok(Resource(json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": message}],
    }))
    .into_response())
}

/// The largest body `/ingest` reads: a resource with a document of the largest size in base64.
pub const MAX_INGEST_BYTES: usize = MAX_RESOURCE_BYTES + validate::MAX_DOCUMENT_BYTES / 3 * 4 + 4;

/// POST /ingest: a source system reports a MedicationDispense, Encounter, Immunization or
/// DocumentReference (content inline as base64) about the patient it names.
pub async fn ingest(
    State(state): State<Shared>,
    auth: Authorized<Ingest>,
    bytes: Bytes,
) -> Result<Response, KjError> {
    let principal = auth.0;
    if bytes.len() > MAX_INGEST_BYTES {
        return Err(validate::Invalid::TooLarge(format!(
            "the body is larger than a resource with a document of {} bytes",
            validate::MAX_DOCUMENT_BYTES
        ))
        .into());
    }
    let resource = validate::parse(&bytes)?;
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    let Some(section) = validate::ingested_section(kind) else {
        return Err(validate::Invalid::Structure(format!(
            "{kind:?} is not reported by source systems: MedicationDispense, Encounter, Immunization or DocumentReference"
        ))
        .into());
    };
    let patient = validate::patient_of(&resource)?;
    let ctx = ctx_of(&principal);
    let entry = validate::entry(section, resource, &patient, &ctx)?;
    created(&state, ctx, patient, None, entry).await
}

/// The API's JSON for things that are not FHIR resources (the access log, alerts).
pub fn plain<T: serde::Serialize>(value: T) -> Response {
    Json(value).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertPage {
    /// Alerts after this id (the last one seen).
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

/// GET /alerts?after=&limit=: snooping alerts, oldest first, for the operator.
pub async fn alerts(
    State(state): State<Shared>,
    _operator: Authorized<Operate>,
    axum::extract::Query(page): axum::extract::Query<AlertPage>,
) -> Result<Response, KjError> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(KjError::field("limit", "must be 1 to 1000"));
    }
    Ok(plain(
        crate::detect::alerts(&state.store, page.after, limit).await?,
    ))
}
