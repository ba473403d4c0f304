//! The citizen's own routes under `/kjernejournal/api/v1/citizen`: their record and documents,
//! their next of kin and own entries, who may see the record (open, restricted, reserved), and
//! the access log: every access and attempt, in plain words, none left out. The person is the
//! one signed in; no route takes another person's number.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    response::Response,
};
use helsenett_core::Fodselsnummer;
use helsenett_helseid::{Authorized, Principal};
use helsenett_store::{
    StoreError,
    kjernejournal::{Privacy, Section},
    with_pool,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Shared,
    access::{Caller, Ctx, SECURITY_LEVEL},
    api::{self, UseRecord},
    audit::{self, CLIENT_SYSTEM},
    error::KjError,
    ledger::{Op, Request},
    validate::{self, MAX_NEXT_OF_KIN},
};

/// The signed-in person acting for themselves, whatever else they are.
fn citizen(principal: &Principal) -> Result<(Ctx, Fodselsnummer), KjError> {
    let user = principal
        .user()
        .ok_or(KjError::Refused(crate::access::Refusal::NotAPerson))?;
    let mut ctx = api::ctx_of(principal);
    ctx.caller = Caller::Citizen {
        pid: user.pid,
        name: user.name.clone(),
        security_level: user.security_level,
    };
    Ok((ctx, user.pid))
}

fn own(ctx: Ctx, pid: Fodselsnummer, op: Op) -> Request {
    Request {
        ctx: ctx.into(),
        patient: pid,
        reason: None,
        emergency: false,
        op,
    }
}

/// GET /citizen/record
pub async fn record(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let (ctx, pid) = citizen(&principal)?;
    api::record_response(&state, own(ctx, pid, Op::ReadRecord)).await
}

/// GET /citizen/document/{id}
pub async fn document(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    Path(id): Path<String>,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let (ctx, pid) = citizen(&principal)?;
    api::document_response(&state, own(ctx, pid, Op::ReadDocument(id))).await
}

/// POST /citizen/entries: one of the citizen's own entries (an Observation).
pub async fn add_entry(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    bytes: Bytes,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let (ctx, pid) = citizen(&principal)?;
    let entry = validate::entry(Section::Own, validate::parse(&bytes)?, &pid, &ctx)?;
    api::created(&state, ctx, pid, None, entry).await
}

/// DELETE /citizen/entries/{id}
pub async fn remove_entry(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    Path(id): Path<String>,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let (ctx, pid) = citizen(&principal)?;
    api::changed(&state, own(ctx, pid, Op::Remove(Section::Own, id))).await
}

/// PUT /citizen/next-of-kin: the whole list, as a Bundle (type collection) of RelatedPerson.
pub async fn next_of_kin(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    bytes: Bytes,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let (ctx, pid) = citizen(&principal)?;
    let bundle = validate::parse(&bytes)?;
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "collection" {
        return Err(validate::Invalid::Structure(
            "the body must be a Bundle of type collection with a RelatedPerson per next of kin"
                .into(),
        )
        .into());
    }
    let resources = bundle["entry"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if resources.len() > MAX_NEXT_OF_KIN {
        return Err(
            validate::Invalid::Structure(format!("at most {MAX_NEXT_OF_KIN} next of kin")).into(),
        );
    }
    let entries = resources
        .iter()
        .map(|e| {
            let resource = validate::resource(e["resource"].clone())?;
            validate::entry(Section::NextOfKin, resource, &pid, &ctx)
        })
        .collect::<Result<Vec<_>, _>>()?;
    api::changed(&state, own(ctx, pid, Op::ReplaceNextOfKin(entries))).await
}

#[derive(Serialize, Deserialize)]
pub struct PrivacyBody {
    /// open, restricted or reserved.
    pub privacy: Privacy,
}

/// GET /citizen/privacy
pub async fn privacy(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let (_, pid) = citizen(&principal)?;
    let stored = with_pool!(&state.store, pool => sqlx::query_scalar::<_, String>(
        "SELECT privacy FROM kj_record WHERE nin = $1",
    )
    .bind(pid.to_string())
    .fetch_optional(pool)
    .await)
    .map_err(StoreError::from)?;
    let privacy = stored
        .as_deref()
        .map(Privacy::parse)
        .transpose()?
        .unwrap_or(Privacy::Open);
    Ok(api::plain(PrivacyBody { privacy }))
}

/// PUT /citizen/privacy: open, restricted (only those with a treatment relation) or reserved
/// (no health personnel).
pub async fn set_privacy(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    bytes: Bytes,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let (ctx, pid) = citizen(&principal)?;
    let body: PrivacyBody =
        api::body(&bytes, r#"{"privacy": "open" | "restricted" | "reserved"}"#)?;
    api::changed(&state, own(ctx, pid, Op::SetPrivacy(body.privacy))).await?;
    Ok(api::plain(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Entries older than this audit record (from `next`).
    before: Option<i64>,
    limit: Option<i64>,
}

/// Entries per page at most, and by default.
const MAX_PAGE: i64 = 500;
const PAGE: i64 = 100;

/// One access, as the citizen reads it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Accessed {
    /// The audit record's number.
    pub seq: i64,
    pub time: String,
    /// read, create, update, delete.
    pub action: String,
    pub what: String,
    /// normal, emergency, citizen, system.
    pub access: String,
    pub emergency: bool,
    /// granted or denied.
    pub outcome: String,
    pub reason: Option<String>,
    pub organisation: Option<String>,
    pub organisation_number: Option<String>,
    /// Who: a person's name, "you", or a system.
    pub person: Option<String>,
    pub role: Option<String>,
    pub hpr_number: Option<String>,
    pub system: Option<String>,
    /// The same in one sentence (Norwegian).
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessLog {
    pub entries: Vec<Accessed>,
    /// `before` for the next page; absent on the last.
    pub next: Option<i64>,
}

/// GET /citizen/access-log?before=&limit=: newest first.
pub async fn access_log(
    State(state): State<Shared>,
    auth: Authorized<UseRecord>,
    Query(page): Query<Page>,
) -> Result<Response, KjError> {
    let principal = auth.0;
    let (ctx, pid) = citizen(&principal)?;
    if matches!(ctx.caller, Caller::Citizen { security_level, .. } if security_level < SECURITY_LEVEL)
    {
        return Err(KjError::Refused(crate::access::Refusal::SecurityLevel));
    }
    let limit = page.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(KjError::field("limit", format!("must be 1 to {MAX_PAGE}")));
    }
    Ok(api::plain(
        log(&state.store, &pid, page.before, limit).await?,
    ))
}

/// A page of `pid`'s access log.
pub async fn log(
    store: &helsenett_store::Store,
    pid: &Fodselsnummer,
    before: Option<i64>,
    limit: i64,
) -> Result<AccessLog, StoreError> {
    let rows = with_pool!(store, pool => sqlx::query_as::<_, (i64, String)>(
        "SELECT seq, event FROM kj_audit WHERE nin = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
    )
    .bind(pid.to_string())
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(pool)
    .await)?;
    let more = rows.len() as i64 > limit;
    let entries = rows
        .into_iter()
        .take(limit as usize)
        .map(|(seq, event)| {
            serde_json::from_str(&event)
                .map(|event: Value| plain_terms(seq, &event))
                .map_err(|_| StoreError::Corrupt(format!("audit record {seq} is not JSON")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = more.then(|| entries.last().map(|e| e.seq)).flatten();
    Ok(AccessLog { entries, next })
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// An AuditEvent in plain terms.
fn plain_terms(seq: i64, event: &Value) -> Accessed {
    let agent = &event["agent"][0];
    let who = &agent["who"];
    let system = who["identifier"]["system"].as_str().unwrap_or_default();
    let access = audit::columns(event)
        .map(|c| c.access)
        .unwrap_or_else(|| "unknown".into());
    let granted = event["outcome"] == "0";
    let organisation = text(&event["agent"][1]["who"]["display"]);
    let role = text(&agent["role"][0]["coding"][0]["display"]);
    let (person, hpr_number, client) = match system {
        helsenett_core::fhir::HPR => (
            text(&who["display"]),
            text(&who["identifier"]["value"]),
            None,
        ),
        CLIENT_SYSTEM => (None, None, text(&who["identifier"]["value"])),
        _ => (Some("deg".into()), None, None),
    };
    let action = event["subtype"][0]["code"]
        .as_str()
        .unwrap_or("read")
        .to_owned();
    let what = text(&event["entity"][1]["name"]).unwrap_or_default();
    let reason = text(&event["purposeOfEvent"][0]["text"]);
    let emergency = access == "emergency";
    let actor = match (&person, &client) {
        (Some(name), _) if hpr_number.is_some() => {
            let role = role
                .as_deref()
                .map(|r| format!(" ({})", r.to_lowercase()))
                .unwrap_or_default();
            let at = organisation
                .as_deref()
                .map(|o| format!(" ved {o}"))
                .unwrap_or_default();
            format!("{name}{role}{at}")
        }
        (_, Some(client)) => {
            let at = organisation
                .as_deref()
                .map(|o| format!(" hos {o}"))
                .unwrap_or_default();
            format!("Systemet {client}{at}")
        }
        _ => "Du".into(),
    };
    let deed = match (action.as_str(), what.as_str()) {
        ("read", "shared document") => "åpnet et delt dokument i kjernejournalen din".to_owned(),
        ("read", _) => "åpnet kjernejournalen din".to_owned(),
        ("create", w) => format!("la til i kjernejournalen din ({w})"),
        ("delete", w) => format!("fjernet fra kjernejournalen din ({w})"),
        (_, w) => format!("endret kjernejournalen din ({w})"),
    };
    let mut sentence = if granted {
        format!("{actor} {deed}")
    } else {
        format!("{actor} ble nektet tilgang da hen forsøkte dette: {deed}")
    };
    if emergency {
        sentence.push_str(", med nødtilgang (akuttsituasjon)");
    }
    sentence.push('.');
    if let Some(reason) = &reason {
        sentence.push_str(&format!(" Begrunnelse: «{reason}»."));
    }
    Accessed {
        seq,
        time: text(&event["recorded"]).unwrap_or_default(),
        action,
        what,
        access,
        emergency,
        outcome: if granted {
            audit::GRANTED
        } else {
            audit::DENIED
        }
        .into(),
        reason,
        organisation,
        organisation_number: text(&event["agent"][1]["who"]["identifier"]["value"]),
        person,
        role,
        hpr_number,
        system: client,
        text: sentence,
    }
}
