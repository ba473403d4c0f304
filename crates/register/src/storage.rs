//! The register in the database: its tables, read whole into a snapshot, and its changes, each
//! written to the tables and appended to the event feed in one transaction.
//!
//! **Invariant:** event ids are given out under one lock held until commit (SQLite's write lock;
//! a PostgreSQL advisory lock), so transactions commit in id order and a reader that has seen
//! event N has seen every event before it. The feed has no gaps and no reordering, whichever node
//! wrote.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use helsenett_core::{HerId, HprNummer, Organisasjonsnummer};
use helsenett_store::{
    Backend, Store, StoreError, Value,
    records::{CertificateUsage, OrganisationKind, PartyKind, ProcessRole},
    with_pool,
};
use sqlx::Row;

use crate::{
    directory::Snapshot,
    model::{
        Address, AddressKind, OrganisationDetails, Party, Process, StoredCertificate, canonicalise,
        version_list, versions,
    },
};

/// The advisory lock PostgreSQL writers of the register take ("helsreg" in ASCII).
const WRITE_LOCK: i64 = 0x0068_656c_7372_6567;

/// One row of the event feed, with the party's document as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub her_id: i64,
    pub change: String,
    pub actor: String,
    pub document: String,
}

impl StoredEvent {
    pub fn party(&self) -> Result<Party, StoreError> {
        serde_json::from_str(&self.document)
            .map_err(|e| corrupt(&format!("register_event {} document", self.id), e))
    }
}

/// A change to write: a party's whole new state.
#[derive(Debug, Clone)]
pub struct Change {
    pub change: &'static str,
    pub party: Party,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn instant(what: &str, ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(what, "out of range"))
}

fn her_id(what: &str, n: i64) -> Result<HerId, StoreError> {
    u32::try_from(n)
        .ok()
        .and_then(|n| HerId::new(n).ok())
        .ok_or_else(|| corrupt(what, format!("{n} is not a HER-id")))
}

/// The events after `after`, oldest first, at most `limit`.
pub async fn events_after(
    store: &Store,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = "SELECT id, at, her_id, change, actor, document FROM register_event \
               WHERE id > $1 ORDER BY id LIMIT $2";
    Ok(with_pool!(store, pool => {
        sqlx::query_as::<_, (i64, i64, i64, String, String, String)>(sql)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
    })
    .into_iter()
    .map(|(id, at, her_id, change, actor, document)| StoredEvent {
        id,
        at,
        her_id,
        change,
        actor,
        document,
    })
    .collect())
}

/// Reads the whole register as of one event, in one read transaction.
pub async fn load(store: &Store) -> Result<Snapshot, StoreError> {
    let begin = match store.backend() {
        Backend::Sqlite => "BEGIN",
        Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    };
    let tables = with_pool!(store, pool => {
        let mut tx = pool.begin_with(begin).await?;
        let event_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM register_event")
            .fetch_one(&mut *tx)
            .await?;
        let mut tables = Tables { event_id, ..Tables::default() };
        let rows = sqlx::query(
            "SELECT her_id, kind, name, orgnr, parent_her_id, hpr, municipality, active, valid_from, valid_to \
             FROM communication_party",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            tables.parties.push(PartyRow {
                her_id: r.try_get(0)?,
                kind: r.try_get(1)?,
                name: r.try_get(2)?,
                orgnr: r.try_get(3)?,
                parent: r.try_get(4)?,
                hpr: r.try_get(5)?,
                municipality: r.try_get(6)?,
                active: r.try_get(7)?,
                valid_from: r.try_get(8)?,
                valid_to: r.try_get(9)?,
            });
        }
        let rows = sqlx::query(
            "SELECT orgnr, kind, parent_orgnr, street_address, postal_code, postal_place, \
             post_address, post_code, post_place FROM organisation",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            tables.organisations.insert(
                r.try_get(0)?,
                OrganisationRow {
                    kind: r.try_get(1)?,
                    parent: r.try_get(2)?,
                    visiting: [r.try_get(3)?, r.try_get(4)?, r.try_get(5)?],
                    postal: [r.try_get(6)?, r.try_get(7)?, r.try_get(8)?],
                },
            );
        }
        tables.coverage = sqlx::query_as("SELECT her_id, municipality FROM party_coverage ORDER BY her_id, municipality")
            .fetch_all(&mut *tx)
            .await?;
        tables.cpp = sqlx::query_as(
            "SELECT her_id, message_type, role, versions, receipts, replies FROM cpp_process \
             ORDER BY her_id, message_type, role",
        )
        .fetch_all(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT her_id, usage, fingerprint, serial, issuer, subject, not_before, not_after, added_at, revoked_at, der \
             FROM certificate ORDER BY her_id, added_at, not_before, fingerprint",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            tables.certificates.push(CertificateRow {
                her_id: r.try_get(0)?,
                usage: r.try_get(1)?,
                text: [r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?],
                times: [r.try_get(6)?, r.try_get(7)?, r.try_get(8)?],
                revoked_at: r.try_get(9)?,
                der: r.try_get(10)?,
            });
        }
        tx.commit().await?;
        tables
    });
    tables.into_snapshot()
}

#[derive(Default)]
struct Tables {
    event_id: i64,
    parties: Vec<PartyRow>,
    organisations: HashMap<String, OrganisationRow>,
    coverage: Vec<(i64, String)>,
    cpp: Vec<(i64, String, String, String, String, String)>,
    certificates: Vec<CertificateRow>,
}

struct PartyRow {
    her_id: i64,
    kind: String,
    name: String,
    orgnr: String,
    parent: Option<i64>,
    hpr: Option<i64>,
    municipality: String,
    active: bool,
    valid_from: String,
    valid_to: Option<String>,
}

struct OrganisationRow {
    kind: String,
    parent: Option<String>,
    visiting: [String; 3],
    postal: [Option<String>; 3],
}

struct CertificateRow {
    her_id: i64,
    usage: String,
    /// fingerprint, serial, issuer, subject
    text: [String; 4],
    /// not_before, not_after, added_at
    times: [i64; 3],
    revoked_at: Option<i64>,
    der: Vec<u8>,
}

impl Tables {
    fn into_snapshot(self) -> Result<Snapshot, StoreError> {
        let mut coverage: HashMap<i64, Vec<String>> = HashMap::new();
        for (her, municipality) in self.coverage {
            coverage.entry(her).or_default().push(municipality);
        }
        let mut cpp: HashMap<i64, Vec<Process>> = HashMap::new();
        for (her, message_type, role, list, receipts, replies) in self.cpp {
            let parse = |list: &str| versions(list).map_err(|e| corrupt("cpp_process versions", e));
            cpp.entry(her).or_default().push(Process {
                message_type,
                role: ProcessRole::parse(&role)?,
                versions: parse(&list)?,
                receipts: parse(&receipts)?,
                replies: replies.split_whitespace().map(str::to_owned).collect(),
            });
        }
        let mut certificates: HashMap<i64, Vec<StoredCertificate>> = HashMap::new();
        for c in self.certificates {
            let [fingerprint, serial, issuer, subject] = c.text;
            let [not_before, not_after, added_at] = c.times;
            certificates
                .entry(c.her_id)
                .or_default()
                .push(StoredCertificate {
                    usage: CertificateUsage::parse(&c.usage)?,
                    fingerprint,
                    serial,
                    issuer,
                    subject,
                    not_before: instant("certificate.not_before", not_before)?,
                    not_after: instant("certificate.not_after", not_after)?,
                    added_at: instant("certificate.added_at", added_at)?,
                    revoked_at: c
                        .revoked_at
                        .map(|at| instant("certificate.revoked_at", at))
                        .transpose()?,
                    der: c.der,
                });
        }
        let mut parties = Vec::with_capacity(self.parties.len());
        for row in self.parties {
            let kind = PartyKind::parse(&row.kind)?;
            let orgnr = Organisasjonsnummer::parse(&row.orgnr)
                .map_err(|e| corrupt("communication_party.orgnr", e))?;
            let organisation = match kind {
                PartyKind::Organisation => Some(organisation(
                    self.organisations.get(&row.orgnr).ok_or_else(|| {
                        corrupt(
                            "communication_party.orgnr",
                            format!("organisation {} is missing", row.orgnr),
                        )
                    })?,
                )?),
                _ => None,
            };
            let date = |what: &str, text: &str| {
                text.parse::<NaiveDate>()
                    .map_err(|e| corrupt(&format!("communication_party.{what}"), e))
            };
            let mut party = Party {
                her_id: her_id("communication_party.her_id", row.her_id)?,
                kind,
                name: row.name,
                orgnr,
                parent_her_id: row
                    .parent
                    .map(|p| her_id("communication_party.parent_her_id", p))
                    .transpose()?,
                hpr_number: row
                    .hpr
                    .map(|h| {
                        u32::try_from(h)
                            .ok()
                            .and_then(|h| HprNummer::new(h).ok())
                            .ok_or_else(|| corrupt("communication_party.hpr", h))
                    })
                    .transpose()?,
                municipality: row.municipality,
                active: row.active,
                valid_from: date("valid_from", &row.valid_from)?,
                valid_to: row.valid_to.map(|d| date("valid_to", &d)).transpose()?,
                organisation,
                coverage: coverage.remove(&row.her_id).unwrap_or_default(),
                certificates: certificates.remove(&row.her_id).unwrap_or_default(),
                cpp: cpp.remove(&row.her_id).unwrap_or_default(),
            };
            canonicalise(&mut party);
            parties.push(party);
        }
        Ok(Snapshot::new(self.event_id, parties))
    }
}

fn organisation(row: &OrganisationRow) -> Result<OrganisationDetails, StoreError> {
    let [street, postal_code, postal_place] = row.visiting.clone();
    let mut addresses = vec![Address {
        kind: AddressKind::Visiting,
        street,
        postal_code,
        postal_place,
    }];
    if let [Some(street), Some(postal_code), Some(postal_place)] = row.postal.clone() {
        addresses.push(Address {
            kind: AddressKind::Postal,
            street,
            postal_code,
            postal_place,
        });
    }
    Ok(OrganisationDetails {
        business_type: OrganisationKind::parse(&row.kind)?,
        parent_orgnr: row
            .parent
            .as_deref()
            .map(Organisasjonsnummer::parse)
            .transpose()
            .map_err(|e| corrupt("organisation.parent_orgnr", e))?,
        addresses,
    })
}

/// Writes changes under the register's write lock. `build` gets the events committed since
/// `after` (which the caller has not seen yet) and returns the changes to make; they are
/// written to the tables and appended to the feed in one transaction. Returns the catch-up
/// events and the new ones, in id order.
pub async fn commit<E>(
    store: &Store,
    after: i64,
    actor: &str,
    now: DateTime<Utc>,
    build: impl FnOnce(&[StoredEvent]) -> Result<Vec<Change>, E>,
) -> Result<Vec<StoredEvent>, E>
where
    E: From<StoreError>,
{
    let backend = store.backend();
    let begin = match backend {
        // Take the write lock now, not at the first write: reads below must see the latest.
        Backend::Sqlite => "BEGIN IMMEDIATE",
        // READ COMMITTED whatever the database's default: each statement after the lock must see
        // what the previous holder committed.
        Backend::Postgres => "BEGIN ISOLATION LEVEL READ COMMITTED",
    };
    let result: Result<Result<Vec<StoredEvent>, E>, sqlx::Error> = with_pool!(store, pool => async {
        let mut tx = pool.begin_with(begin).await?;
        if backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(WRITE_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let rows: Vec<(i64, i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT id, at, her_id, change, actor, document FROM register_event WHERE id > $1 ORDER BY id",
        )
        .bind(after)
        .fetch_all(&mut *tx)
        .await?;
        let mut events: Vec<StoredEvent> = rows
            .into_iter()
            .map(|(id, at, her_id, change, actor, document)| StoredEvent { id, at, her_id, change, actor, document })
            .collect();
        let changes = match build(&events) {
            Ok(changes) => changes,
            Err(e) => return Ok(Err(e)),
        };
        let mut next = match events.last() {
            Some(last) => last.id,
            None => sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM register_event")
                .fetch_one(&mut *tx)
                .await?,
        };
        for change in changes {
            for (sql, values) in projection(&change.party) {
                let mut query = sqlx::query(sql);
                for value in values {
                    query = match value {
                        Value::Text(v) => query.bind(v),
                        Value::OptText(v) => query.bind(v),
                        Value::Owned(v) => query.bind(v),
                        Value::OptOwned(v) => query.bind(v),
                        Value::Int(v) => query.bind(v),
                        Value::OptInt(v) => query.bind(v),
                        Value::Bool(v) => query.bind(v),
                        Value::Bytes(v) => query.bind(v),
                    };
                }
                query.execute(&mut *tx).await?;
            }
            next += 1;
            let event = StoredEvent {
                id: next,
                at: millis(now),
                her_id: change.party.her_id.get().into(),
                change: change.change.to_owned(),
                actor: actor.to_owned(),
                document: serde_json::to_string(&change.party).expect("a party serialises"),
            };
            sqlx::query(
                "INSERT INTO register_event (id, at, her_id, change, actor, document) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(event.id)
            .bind(event.at)
            .bind(event.her_id)
            .bind(&event.change)
            .bind(&event.actor)
            .bind(&event.document)
            .execute(&mut *tx)
            .await?;
            events.push(event);
        }
        tx.commit().await?;
        Ok(Ok(events))
    }.await);
    result.map_err(|e| E::from(StoreError::from(e)))?
}

type Statement<'a> = (&'static str, Vec<Value<'a>>);

/// The statements that make a party's rows equal its document. Certificates are kept forever
/// (history); everything else of the party is replaced.
fn projection(party: &Party) -> Vec<Statement<'_>> {
    let her = || Value::Int(party.her_id.get().into());
    let mut statements: Vec<Statement<'_>> = vec![(
        "INSERT INTO communication_party (her_id, kind, name, orgnr, parent_her_id, hpr, municipality, active, valid_from, valid_to) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (her_id) DO UPDATE SET \
         kind = excluded.kind, name = excluded.name, orgnr = excluded.orgnr, parent_her_id = excluded.parent_her_id, \
         hpr = excluded.hpr, municipality = excluded.municipality, active = excluded.active, \
         valid_from = excluded.valid_from, valid_to = excluded.valid_to",
        vec![
            her(),
            Value::Text(party.kind.as_str()),
            Value::Text(&party.name),
            Value::Owned(party.orgnr.to_string()),
            Value::OptInt(party.parent_her_id.map(|p| p.get().into())),
            Value::OptInt(party.hpr_number.map(|h| h.get().into())),
            Value::Text(&party.municipality),
            Value::Bool(party.active),
            Value::Owned(party.valid_from.to_string()),
            Value::OptOwned(party.valid_to.map(|d| d.to_string())),
        ],
    )];
    if let Some(org) = &party.organisation {
        let address = |kind: AddressKind| org.addresses.iter().find(|a| a.kind == kind);
        let visiting = address(AddressKind::Visiting);
        let postal = address(AddressKind::Postal);
        statements.push((
            "INSERT INTO organisation (orgnr, name, kind, parent_orgnr, municipality, street_address, postal_code, \
             postal_place, post_address, post_code, post_place) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (orgnr) DO UPDATE SET name = excluded.name, kind = excluded.kind, \
             parent_orgnr = excluded.parent_orgnr, municipality = excluded.municipality, \
             street_address = excluded.street_address, postal_code = excluded.postal_code, \
             postal_place = excluded.postal_place, post_address = excluded.post_address, \
             post_code = excluded.post_code, post_place = excluded.post_place",
            vec![
                Value::Owned(party.orgnr.to_string()),
                Value::Text(&party.name),
                Value::Text(org.business_type.as_str()),
                Value::OptOwned(org.parent_orgnr.map(|p| p.to_string())),
                Value::Text(&party.municipality),
                // Validation guarantees a visiting address on every organisation.
                Value::Text(visiting.map_or("", |a| &a.street)),
                Value::Text(visiting.map_or("", |a| &a.postal_code)),
                Value::Text(visiting.map_or("", |a| &a.postal_place)),
                Value::OptText(postal.map(|a| a.street.as_str())),
                Value::OptText(postal.map(|a| a.postal_code.as_str())),
                Value::OptText(postal.map(|a| a.postal_place.as_str())),
            ],
        ));
    }
    statements.push(("DELETE FROM party_coverage WHERE her_id = $1", vec![her()]));
    for municipality in &party.coverage {
        statements.push((
            "INSERT INTO party_coverage (her_id, municipality) VALUES ($1, $2)",
            vec![her(), Value::Text(municipality)],
        ));
    }
    statements.push(("DELETE FROM cpp_process WHERE her_id = $1", vec![her()]));
    for p in &party.cpp {
        statements.push((
            "INSERT INTO cpp_process (her_id, message_type, role, versions, receipts, replies) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                her(),
                Value::Text(&p.message_type),
                Value::Text(p.role.as_str()),
                Value::Owned(version_list(&p.versions)),
                Value::Owned(version_list(&p.receipts)),
                Value::Owned(p.replies.join(" ")),
            ],
        ));
    }
    for c in &party.certificates {
        statements.push((
            "INSERT INTO certificate (fingerprint, her_id, usage, serial, issuer, subject, not_before, not_after, der, \
             added_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (fingerprint) DO UPDATE SET revoked_at = excluded.revoked_at",
            vec![
                Value::Text(&c.fingerprint),
                her(),
                Value::Text(c.usage.as_str()),
                Value::Text(&c.serial),
                Value::Text(&c.issuer),
                Value::Text(&c.subject),
                Value::Int(millis(c.not_before)),
                Value::Int(millis(c.not_after)),
                Value::Bytes(&c.der),
                Value::Int(millis(c.added_at)),
                Value::OptInt(c.revoked_at.map(millis)),
            ],
        ));
    }
    statements
}
