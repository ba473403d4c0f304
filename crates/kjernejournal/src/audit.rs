//! The audit: every access and change as a FHIR R4 AuditEvent (HL7 Norway's AuditEvent profile
//! and IHE BALP as a guide), chained by hash so that a changed, removed or reordered record is
//! detected. The row's other columns are facts repeated from the event for queries; verification
//! derives them from the event again, so the hash covers them too.

use aws_lc_rs::digest::{SHA256, digest};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::TryStreamExt;
use helsenett_core::{
    Fodselsnummer,
    fhir::{DNR, ENH, FNR, HPR, person_system},
};
use helsenett_store::{
    Record, Store, StoreError, Value as Column,
    hpr::PROFESSION_SYSTEM,
    kjernejournal::{actor_citizen, actor_client, actor_hpr},
    records::Profession,
    with_pool,
};
use serde_json::{Value, json};

use crate::access::{Access, Caller, Ctx, Refusal, Relation};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The identifier system of HelseID clients, for systems in `agent`.
pub const CLIENT_SYSTEM: &str = "urn:helsenett:helseid:client";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// What was done, in FHIR's AuditEvent.action terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
}

impl Action {
    fn code(self) -> &'static str {
        match self {
            Action::Read => "R",
            Action::Create => "C",
            Action::Update => "U",
            Action::Delete => "D",
        }
    }
    fn interaction(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// How the caller came in, granted or not: the `access` column and the purpose of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Emergency,
    Citizen,
    System,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Emergency => "emergency",
            Mode::Citizen => "citizen",
            Mode::System => "system",
        }
    }
    /// HL7 v3 ActReason: treatment, emergency treatment, patient request, operations.
    fn purpose(self) -> &'static str {
        match self {
            Mode::Normal => "TREAT",
            Mode::Emergency => "ETREAT",
            Mode::Citizen => "PATRQT",
            Mode::System => "HOPERAT",
        }
    }
    fn from_purpose(code: &str) -> Option<Mode> {
        [Mode::Normal, Mode::Emergency, Mode::Citizen, Mode::System]
            .into_iter()
            .find(|m| m.purpose() == code)
    }

    /// The mode of a decision, or of the attempt when refused.
    pub fn of(ctx: &Ctx, emergency: bool, decision: &Result<Access, Refusal>) -> Mode {
        match decision {
            Ok(Access::Normal(_)) => Mode::Normal,
            Ok(Access::Emergency) => Mode::Emergency,
            Ok(Access::Citizen) => Mode::Citizen,
            Ok(Access::System) => Mode::System,
            Err(_) => match ctx.caller {
                Caller::Personnel { .. } if emergency => Mode::Emergency,
                Caller::Personnel { .. } => Mode::Normal,
                Caller::Citizen { .. } => Mode::Citizen,
                Caller::System { .. } => Mode::System,
            },
        }
    }
}

/// One audit record before it is chained.
pub struct Event<'a> {
    pub recorded: i64,
    pub patient: &'a Fodselsnummer,
    pub ctx: &'a Ctx,
    /// The caller's organisation's name and profession, as the registers have them.
    pub organisation_name: Option<&'a str>,
    pub profession: Option<Profession>,
    pub action: Action,
    /// What was read or changed, in words, and the resource if it was one.
    pub what: &'a str,
    pub resource: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub mode: Mode,
    pub decision: &'a Result<Access, Refusal>,
    /// What came of a granted request, when there is more to say than "granted".
    pub result: Option<&'a str>,
}

/// The columns of a `kj_audit` row besides the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub recorded: i64,
    pub nin: String,
    pub actor: String,
    pub orgnr: Option<String>,
    pub access: String,
    pub outcome: String,
}

pub const GRANTED: &str = "granted";
pub const DENIED: &str = "denied";

impl Event<'_> {
    /// The AuditEvent, without its `id` (the sequence number, given when chained).
    pub fn to_fhir(&self) -> Value {
        let (who, role) = match &self.ctx.caller {
            Caller::Personnel { hpr, name, .. } => (
                json!({"identifier": {"system": HPR, "value": hpr.to_string()}, "display": name}),
                self.profession.map(|p| {
                    json!([{"coding": [{"system": PROFESSION_SYSTEM, "code": p.as_str(), "display": p.display()}]}])
                }),
            ),
            Caller::Citizen { pid, name, .. } => (
                json!({"identifier": {"system": person_system(pid), "value": pid.to_string()}, "display": name}),
                None,
            ),
            Caller::System { client_id } => (
                json!({"identifier": {"system": CLIENT_SYSTEM, "value": client_id}}),
                None,
            ),
        };
        let mut person = json!({"who": who, "requestor": true, "policy": [self.ctx.token_id]});
        if let Some(role) = role {
            person["role"] = role;
        }
        let mut organisation =
            json!({"identifier": {"system": ENH, "value": self.ctx.acting_for().to_string()}});
        if let Some(name) = self.organisation_name {
            organisation["display"] = json!(name);
        }
        let mut purpose = json!({"coding": [{"system": ACT_REASON, "code": self.mode.purpose()}]});
        if let Some(reason) = self.reason {
            purpose["text"] = json!(reason);
        }
        let mut part = json!({
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            "name": self.what,
        });
        if let Some(resource) = self.resource {
            part["what"] = json!({"reference": resource});
        }
        let (outcome, description) = match self.decision {
            Ok(access) => ("0", granted_text(*access, self.result)),
            Err(refusal) => (
                "4",
                format!("denied ({}): {}", refusal.code(), refusal.message()),
            ),
        };
        json!({
            "resourceType": "AuditEvent",
            "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110", "display": "Patient Record"},
            "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": self.action.interaction()}],
            "action": self.action.code(),
            "recorded": instant(self.recorded),
            "outcome": outcome,
            "outcomeDesc": description,
            "purposeOfEvent": [purpose],
            "agent": [
                person,
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "PROV", "display": "healthcare provider"}]},
                 "who": organisation, "requestor": false},
            ],
            "source": {
                "observer": {"display": "helsenett kjernejournal"},
                "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
            },
            "entity": [
                {
                    "what": {"identifier": {"system": person_system(self.patient), "value": self.patient.to_string()}},
                    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
                    "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"},
                },
                part,
            ],
        })
    }
}

fn granted_text(access: Access, result: Option<&str>) -> String {
    let how = match access {
        Access::Normal(Relation::Gp) => "granted: the patient is on the user's GP list",
        Access::Normal(Relation::Episode) => {
            "granted: the patient has an episode at the user's organisation"
        }
        Access::Emergency => "granted: emergency access",
        Access::Citizen => "granted: the citizen's own record",
        Access::System => "granted: reported by a source system",
    };
    match result {
        Some(result) => format!("{how}; {result}"),
        None => how.to_owned(),
    }
}

/// An instant as FHIR writes it (UTC, milliseconds).
pub fn instant(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The columns an AuditEvent implies; `None` if it lacks one (a tampered or foreign event).
pub fn columns(event: &Value) -> Option<Columns> {
    let recorded = DateTime::parse_from_rfc3339(event["recorded"].as_str()?)
        .ok()?
        .timestamp_millis();
    let nin = event["entity"][0]["what"]["identifier"]["value"]
        .as_str()?
        .to_owned();
    let who = &event["agent"][0]["who"]["identifier"];
    let value = who["value"].as_str()?;
    let actor = match who["system"].as_str()? {
        HPR => actor_hpr(value),
        FNR | DNR => actor_citizen(&value.parse().ok()?),
        CLIENT_SYSTEM => actor_client(value),
        _ => return None,
    };
    let orgnr = event["agent"][1]["who"]["identifier"]["value"]
        .as_str()
        .map(str::to_owned);
    let access = Mode::from_purpose(event["purposeOfEvent"][0]["coding"][0]["code"].as_str()?)?
        .as_str()
        .to_owned();
    let outcome = match event["outcome"].as_str()? {
        "0" => GRANTED,
        _ => DENIED,
    }
    .to_owned();
    Some(Columns {
        recorded,
        nin,
        actor,
        orgnr,
        access,
        outcome,
    })
}

/// A `kj_audit` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub columns: Columns,
    pub event: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// Record `seq` of the chain: `event` with its id, the columns read from it as `verify`
    /// reads them, and its link to `prev_hash`. `None` if the event lacks its own facts.
    pub fn chained(event: &Event, seq: i64, prev_hash: String) -> Option<AuditRow> {
        let mut fhir = event.to_fhir();
        fhir["id"] = seq.to_string().into();
        let columns = columns(&fhir)?;
        let event = fhir.to_string();
        let hash = link(seq, &prev_hash, &event);
        Some(AuditRow {
            seq,
            columns,
            event,
            prev_hash,
            hash,
        })
    }
}

impl Record for AuditRow {
    const TABLE: &'static str = "kj_audit";
    const COLUMNS: &'static [&'static str] = &[
        "seq",
        "recorded",
        "nin",
        "actor",
        "orgnr",
        "access",
        "outcome",
        "event",
        "prev_hash",
        "hash",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Column<'a>)) {
        let c = &self.columns;
        push(Column::Int(self.seq));
        push(Column::Int(c.recorded));
        push(Column::Text(&c.nin));
        push(Column::Text(&c.actor));
        push(Column::OptText(c.orgnr.as_deref()));
        push(Column::Text(&c.access));
        push(Column::Text(&c.outcome));
        push(Column::Text(&self.event));
        push(Column::Text(&self.prev_hash));
        push(Column::Text(&self.hash));
    }
}

/// The link: SHA-256 over the sequence number, the previous hash and the event's JSON.
pub fn link(seq: i64, prev_hash: &str, event: &str) -> String {
    let input = format!("helsenett-kjernejournal-audit-v1\n{seq}\n{prev_hash}\n{event}");
    hex(digest(&SHA256, input.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub records: u64,
    /// The chain's last link: sequence number and hash. Keep it elsewhere to detect a later
    /// truncation (`--anchor`).
    pub head_seq: i64,
    pub head_hash: String,
}

/// The first break in the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("record {found} follows record {previous}: records are missing or were reordered")]
    Gap { previous: i64, found: i64 },
    #[error("record {seq} does not link to the record before it (prev_hash differs)")]
    Link { seq: i64 },
    #[error("record {seq} was changed: its hash does not match its content")]
    Hash { seq: i64 },
    #[error("record {seq}'s columns differ from its AuditEvent ({column})")]
    Columns { seq: i64, column: &'static str },
    #[error(
        "the chain ends at record {last} but its head says {head}: records were removed from the end or the head was changed"
    )]
    Head { last: i64, head: i64 },
    #[error(
        "record {seq} does not have the anchored hash: the chain was rewritten since the anchor was taken"
    )]
    Anchor { seq: i64 },
    #[error("the anchored record {seq} is not in the chain")]
    AnchorMissing { seq: i64 },
}

type Row = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
);

/// Walks the whole chain in order and checks every link, every hash and every row's columns
/// against its event; then the head, and an anchor (`(seq, hash)` from an earlier run) if given.
/// `progress` is called with each record's sequence number.
pub async fn verify(
    store: &Store,
    anchor: Option<(i64, &str)>,
    mut progress: impl FnMut(i64),
) -> Result<Result<Verified, Broken>, StoreError> {
    let (head_seq, head_hash) = with_pool!(store, pool => sqlx::query_as::<_, (i64, String)>(
        "SELECT seq, hash FROM kj_audit_head WHERE id = 1",
    )
    .fetch_one(pool)
    .await)?;
    let mut previous = (0i64, GENESIS.to_owned());
    let mut records = 0u64;
    let mut anchored = false;
    let outcome = with_pool!(store, pool => {
        let mut rows = sqlx::query_as::<_, Row>(
            "SELECT seq, recorded, nin, actor, orgnr, access, outcome, event, prev_hash, hash
             FROM kj_audit ORDER BY seq",
        )
        .fetch(pool);
        let mut outcome = Ok(());
        while let Some(row) = rows.try_next().await? {
            if let Err(broken) = check(&row, &previous, anchor, &mut anchored) {
                outcome = Err(broken);
                break;
            }
            progress(row.0);
            records += 1;
            previous = (row.0, row.9);
        }
        Ok::<_, StoreError>(outcome)
    })?;
    if let Err(broken) = outcome {
        return Ok(Err(broken));
    }
    if previous.0 != head_seq || previous.1 != head_hash {
        return Ok(Err(Broken::Head {
            last: previous.0,
            head: head_seq,
        }));
    }
    if let Some((seq, _)) = anchor
        && !anchored
    {
        return Ok(Err(Broken::AnchorMissing { seq }));
    }
    Ok(Ok(Verified {
        records,
        head_seq,
        head_hash,
    }))
}

fn check(
    row: &Row,
    (previous_seq, previous_hash): &(i64, String),
    anchor: Option<(i64, &str)>,
    anchored: &mut bool,
) -> Result<(), Broken> {
    let (seq, recorded, nin, actor, orgnr, access, outcome, event, prev_hash, hash) = row;
    let seq = *seq;
    if seq != previous_seq + 1 {
        return Err(Broken::Gap {
            previous: *previous_seq,
            found: seq,
        });
    }
    if prev_hash != previous_hash {
        return Err(Broken::Link { seq });
    }
    if link(seq, prev_hash, event) != *hash {
        return Err(Broken::Hash { seq });
    }
    let parsed: Value = serde_json::from_str(event).map_err(|_| Broken::Columns {
        seq,
        column: "event",
    })?;
    if parsed["id"].as_str() != Some(&seq.to_string()) {
        return Err(Broken::Columns { seq, column: "id" });
    }
    let implied = columns(&parsed).ok_or(Broken::Columns {
        seq,
        column: "event",
    })?;
    let differs = [
        ("recorded", implied.recorded == *recorded),
        ("nin", implied.nin == *nin),
        ("actor", implied.actor == *actor),
        ("orgnr", implied.orgnr == *orgnr),
        ("access", implied.access == *access),
        ("outcome", implied.outcome == *outcome),
    ]
    .into_iter()
    .find(|(_, same)| !same);
    if let Some((column, _)) = differs {
        return Err(Broken::Columns { seq, column });
    }
    if let Some((anchor_seq, anchor_hash)) = anchor
        && anchor_seq == seq
    {
        if hash != anchor_hash {
            return Err(Broken::Anchor { seq });
        }
        *anchored = true;
    }
    Ok(())
}
