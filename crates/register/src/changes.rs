//! What members and administrators may change, as pure functions from the register's current
//! state to the parties' new documents. Each checks who is asking and validates the result
//! before anything is written.

use chrono::NaiveDate;
use helsenett_core::{HerId, HprNummer, Organisasjonsnummer};
use helsenett_store::records::{CertificateUsage, OrganisationKind, PartyKind, ProcessRole};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    directory::Snapshot,
    error::RegisterError,
    model::{
        Address, AddressKind, OrganisationDetails, Party, Process, StoredCertificate, canonicalise,
    },
    storage::Change,
};

/// Who is changing the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Editor {
    /// An operator of the network: may change any entry and create organisations.
    Admin,
    /// A member organisation: may change its own entries only.
    Member(Organisasjonsnummer),
}

const MAX_NAME: usize = 200;
const MAX_LIST: usize = 500;

/// A new organisation with its own communication party.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrganisation {
    #[schema(value_type = String, example = "300000008")]
    pub orgnr: Organisasjonsnummer,
    pub name: String,
    #[schema(value_type = String, example = "gp_office")]
    pub business_type: OrganisationKind,
    #[schema(value_type = Option<String>)]
    pub parent_orgnr: Option<Organisasjonsnummer>,
    #[schema(example = "0301")]
    pub municipality: String,
    pub addresses: Vec<Address>,
    /// Municipalities served; the organisation's own when left out.
    pub coverage: Option<Vec<String>>,
    pub valid_from: Option<NaiveDate>,
}

/// A department, service or person under one of the member's parties.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewParty {
    #[schema(value_type = String, example = "Service")]
    pub kind: PartyKind,
    #[schema(value_type = String)]
    pub parent_her_id: HerId,
    pub name: String,
    #[schema(value_type = Option<String>)]
    pub hpr_number: Option<HprNummer>,
    /// The parent's when left out.
    pub municipality: Option<String>,
    pub coverage: Option<Vec<String>>,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
}

/// Fields to change; those left out stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartyUpdate {
    pub name: Option<String>,
    pub active: Option<bool>,
    pub municipality: Option<String>,
    pub coverage: Option<Vec<String>>,
    pub valid_from: Option<NaiveDate>,
    /// A date, or null to make the party valid until further notice.
    #[serde(default, with = "explicit_null")]
    #[schema(value_type = Option<NaiveDate>)]
    pub valid_to: Option<Option<NaiveDate>>,
    /// Organisations only.
    pub addresses: Option<Vec<Address>>,
}

mod explicit_null {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// The party `her_id` if `editor` may change it.
fn editable(base: &Snapshot, editor: Editor, her_id: HerId) -> Result<&Party, RegisterError> {
    let party = base
        .party(her_id)
        .ok_or(RegisterError::UnknownHerId(her_id))?;
    match editor {
        Editor::Admin => Ok(party),
        Editor::Member(orgnr) if orgnr == party.orgnr => Ok(party),
        Editor::Member(orgnr) => Err(RegisterError::Forbidden(format!(
            "HER-id {her_id} belongs to organisasjonsnummer {}; your token is for {orgnr}",
            party.orgnr
        ))),
    }
}

fn next_her_id(base: &Snapshot) -> Result<HerId, RegisterError> {
    let next = base.max_her_id().map_or(1, |h| h.get() + 1);
    HerId::new(next).map_err(|_| RegisterError::Conflict("the HER-id range is exhausted".into()))
}

pub fn create_organisation(
    base: &Snapshot,
    editor: Editor,
    new: NewOrganisation,
    today: NaiveDate,
) -> Result<Change, RegisterError> {
    if editor != Editor::Admin {
        return Err(RegisterError::Forbidden(
            "creating organisations needs scope nhn:adresseregisteret/admin".into(),
        ));
    }
    if base
        .parties()
        .any(|p| p.orgnr == new.orgnr && p.kind == PartyKind::Organisation)
    {
        return Err(RegisterError::Conflict(format!(
            "organisasjonsnummer {} is already in the register",
            new.orgnr
        )));
    }
    let party = Party {
        her_id: next_her_id(base)?,
        kind: PartyKind::Organisation,
        name: new.name,
        orgnr: new.orgnr,
        parent_her_id: None,
        hpr_number: None,
        coverage: new
            .coverage
            .unwrap_or_else(|| vec![new.municipality.clone()]),
        municipality: new.municipality,
        active: true,
        valid_from: new.valid_from.unwrap_or(today),
        valid_to: None,
        organisation: Some(OrganisationDetails {
            business_type: new.business_type,
            parent_orgnr: new.parent_orgnr,
            addresses: new.addresses,
        }),
        certificates: Vec::new(),
        cpp: Vec::new(),
    };
    Ok(Change {
        change: "created",
        party: validate(base, party)?,
    })
}

pub fn create_party(
    base: &Snapshot,
    editor: Editor,
    new: NewParty,
    today: NaiveDate,
) -> Result<Change, RegisterError> {
    let parent = editable(base, editor, new.parent_her_id).map_err(|e| match e {
        RegisterError::UnknownHerId(h) => {
            RegisterError::invalid("parentHerId", format!("HER-id {h} is not in the register"))
        }
        other => other,
    })?;
    if new.kind == PartyKind::Organisation {
        return Err(RegisterError::invalid(
            "kind",
            "organisations are created by an administrator (POST /organisations)",
        ));
    }
    let municipality = new
        .municipality
        .unwrap_or_else(|| parent.municipality.clone());
    let party = Party {
        her_id: next_her_id(base)?,
        kind: new.kind,
        name: new.name,
        orgnr: parent.orgnr,
        parent_her_id: Some(parent.her_id),
        hpr_number: new.hpr_number,
        coverage: new.coverage.unwrap_or_else(|| match new.kind {
            PartyKind::Person => Vec::new(),
            _ => vec![municipality.clone()],
        }),
        municipality,
        active: true,
        valid_from: new.valid_from.unwrap_or(today),
        valid_to: new.valid_to,
        organisation: None,
        certificates: Vec::new(),
        cpp: Vec::new(),
    };
    Ok(Change {
        change: "created",
        party: validate(base, party)?,
    })
}

pub fn update_party(
    base: &Snapshot,
    editor: Editor,
    her_id: HerId,
    update: PartyUpdate,
) -> Result<Change, RegisterError> {
    let mut party = editable(base, editor, her_id)?.clone();
    if let Some(name) = update.name {
        party.name = name;
    }
    if let Some(active) = update.active {
        party.active = active;
    }
    if let Some(municipality) = update.municipality {
        party.municipality = municipality;
    }
    if let Some(coverage) = update.coverage {
        party.coverage = coverage;
    }
    if let Some(valid_from) = update.valid_from {
        party.valid_from = valid_from;
    }
    if let Some(valid_to) = update.valid_to {
        party.valid_to = valid_to;
    }
    if let Some(addresses) = update.addresses {
        let Some(organisation) = party.organisation.as_mut() else {
            return Err(RegisterError::invalid(
                "addresses",
                "only an organisation has addresses; its units use the organisation's",
            ));
        };
        organisation.addresses = addresses;
    }
    Ok(Change {
        change: "updated",
        party: validate(base, party)?,
    })
}

/// Adds a certificate that [`crate::certs::check`] accepted for a party of `checked_for`.
pub fn add_certificate(
    base: &Snapshot,
    editor: Editor,
    her_id: HerId,
    certificate: StoredCertificate,
    checked_for: Organisasjonsnummer,
) -> Result<Change, RegisterError> {
    let mut party = editable(base, editor, her_id)?.clone();
    if party.orgnr != checked_for {
        return Err(RegisterError::Conflict(format!(
            "HER-id {her_id} moved to organisasjonsnummer {} while the certificate was checked; upload it again",
            party.orgnr
        )));
    }
    if let Some(holder) = holder_of(base, &certificate.fingerprint) {
        return Err(RegisterError::Conflict(format!(
            "this certificate (SHA-256 {}) is already registered for HER-id {holder}",
            certificate.fingerprint
        )));
    }
    party.certificates.push(certificate);
    Ok(Change {
        change: "certificateAdded",
        party: validate(base, party)?,
    })
}

/// The party holding the certificate with `fingerprint`, if any.
fn holder_of(base: &Snapshot, fingerprint: &str) -> Option<HerId> {
    base.parties()
        .find(|p| p.certificates.iter().any(|c| c.fingerprint == fingerprint))
        .map(|p| p.her_id)
}

pub fn revoke_certificate(
    base: &Snapshot,
    editor: Editor,
    her_id: HerId,
    fingerprint: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Change, RegisterError> {
    let mut party = editable(base, editor, her_id)?.clone();
    let certificate = party
        .certificates
        .iter_mut()
        .find(|c| c.fingerprint == fingerprint)
        .ok_or_else(|| {
            RegisterError::NotFound(format!(
                "HER-id {her_id} has no certificate with SHA-256 {fingerprint}"
            ))
        })?;
    if certificate.revoked_at.is_some() {
        return Err(RegisterError::Conflict(format!(
            "the certificate with SHA-256 {fingerprint} is already revoked"
        )));
    }
    certificate.revoked_at = Some(now);
    Ok(Change {
        change: "certificateRevoked",
        party: validate(base, party)?,
    })
}

pub fn set_cpp(
    base: &Snapshot,
    editor: Editor,
    her_id: HerId,
    cpp: Vec<Process>,
) -> Result<Change, RegisterError> {
    let mut party = editable(base, editor, her_id)?.clone();
    party.cpp = cpp;
    Ok(Change {
        change: "cppUpdated",
        party: validate(base, party)?,
    })
}

/// A party from an export, written as it is when it differs from the register's.
pub fn import(
    base: &Snapshot,
    party: Party,
    known: &dyn Fn(HerId) -> bool,
) -> Result<Option<Change>, RegisterError> {
    let party = validate_with(party, known)?;
    let current = base.party(party.her_id);
    if current.is_some_and(|p| **p == party) {
        return Ok(None);
    }
    // Certificate history is never erased, and a certificate belongs to one party.
    if let Some(current) = current
        && let Some(dropped) = current.certificates.iter().find(|c| {
            !party
                .certificates
                .iter()
                .any(|n| n.fingerprint == c.fingerprint)
        })
    {
        return Err(RegisterError::invalid(
            "certificates",
            format!(
                "drops the certificate with SHA-256 {}; history is kept",
                dropped.fingerprint
            ),
        ));
    }
    for c in &party.certificates {
        if let Some(holder) = holder_of(base, &c.fingerprint).filter(|h| *h != party.her_id) {
            return Err(RegisterError::invalid(
                "certificates",
                format!(
                    "the certificate with SHA-256 {} belongs to HER-id {holder}",
                    c.fingerprint
                ),
            ));
        }
    }
    if party.kind == PartyKind::Organisation
        && let Some(other) = base.parties().find(|p| {
            p.kind == PartyKind::Organisation && p.orgnr == party.orgnr && p.her_id != party.her_id
        })
    {
        return Err(RegisterError::invalid(
            "orgnr",
            format!(
                "organisasjonsnummer {} is HER-id {}'s already",
                party.orgnr, other.her_id
            ),
        ));
    }
    Ok(Some(Change {
        change: "imported",
        party,
    }))
}

fn validate(base: &Snapshot, party: Party) -> Result<Party, RegisterError> {
    validate_with(party, &|h| base.party(h).is_some())
}

/// Checks a party's document and puts its lists in canonical order. `exists` says whether a
/// parent HER-id is known.
fn validate_with(mut party: Party, exists: &dyn Fn(HerId) -> bool) -> Result<Party, RegisterError> {
    let name = party.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(RegisterError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    party.name = name.to_owned();
    municipality("municipality", &party.municipality)?;
    if party.coverage.len() > MAX_LIST {
        return Err(RegisterError::invalid(
            "coverage",
            format!("at most {MAX_LIST} municipalities"),
        ));
    }
    for m in &party.coverage {
        municipality("coverage", m)?;
    }
    if party.valid_to.is_some_and(|to| to < party.valid_from) {
        return Err(RegisterError::invalid("validTo", "is before validFrom"));
    }
    match (party.kind, party.parent_her_id) {
        (PartyKind::Organisation, Some(_)) => {
            return Err(RegisterError::invalid(
                "parentHerId",
                "an organisation's own party has no parent; name the parent organisation in parentOrgnr",
            ));
        }
        (PartyKind::Organisation, None) => {}
        (_, None) => {
            return Err(RegisterError::invalid(
                "parentHerId",
                "a department, service or person must belong to a parent party",
            ));
        }
        (_, Some(parent)) if parent == party.her_id => {
            return Err(RegisterError::invalid(
                "parentHerId",
                "a party cannot be its own parent",
            ));
        }
        (_, Some(parent)) if !exists(parent) => {
            return Err(RegisterError::invalid(
                "parentHerId",
                format!("HER-id {parent} is not in the register"),
            ));
        }
        _ => {}
    }
    match (party.kind, party.hpr_number) {
        (PartyKind::Person, None) => {
            return Err(RegisterError::invalid(
                "hprNumber",
                "a person must have an HPR-nummer",
            ));
        }
        (PartyKind::Person, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(RegisterError::invalid(
                "hprNumber",
                "only a person has an HPR-nummer",
            ));
        }
    }
    match (party.kind, party.organisation.as_mut()) {
        (PartyKind::Organisation, Some(org)) => addresses(&mut org.addresses)?,
        (PartyKind::Organisation, None) => {
            return Err(RegisterError::invalid(
                "organisation",
                "an organisation's party must carry the organisation's details",
            ));
        }
        (_, Some(_)) => {
            return Err(RegisterError::invalid(
                "organisation",
                "only an organisation's own party carries organisation details",
            ));
        }
        (_, None) => {}
    }
    cpp(&party.cpp)?;
    for (i, c) in party.certificates.iter().enumerate() {
        if c.fingerprint != crate::certs::fingerprint(&c.der) {
            return Err(RegisterError::invalid(
                format!("certificates[{i}].fingerprint"),
                "is not the SHA-256 of der",
            ));
        }
    }
    canonicalise(&mut party);
    Ok(party)
}

fn municipality(field: &str, number: &str) -> Result<(), RegisterError> {
    if number.len() == 4 && number.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(RegisterError::invalid(
            field,
            format!(
                "{:?} is not a municipality number (four digits)",
                truncate(number)
            ),
        ))
    }
}

fn addresses(addresses: &mut [Address]) -> Result<(), RegisterError> {
    addresses.sort_by_key(|a| a.kind == AddressKind::Postal);
    let visiting = addresses
        .iter()
        .filter(|a| a.kind == AddressKind::Visiting)
        .count();
    let postal = addresses.len() - visiting;
    if visiting != 1 || postal > 1 {
        return Err(RegisterError::invalid(
            "addresses",
            "an organisation has exactly one visiting address (RES) and at most one postal address (PST)",
        ));
    }
    for a in addresses.iter() {
        if a.street.trim().is_empty() || a.postal_place.trim().is_empty() {
            return Err(RegisterError::invalid(
                "addresses",
                "street and postalPlace must not be empty",
            ));
        }
        if a.postal_code.len() != 4 || !a.postal_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegisterError::invalid(
                "addresses",
                format!(
                    "{:?} is not a postal code (four digits)",
                    truncate(&a.postal_code)
                ),
            ));
        }
    }
    Ok(())
}

/// Message types are upper-case codes; each (message type, role) is listed once.
fn cpp(cpp: &[Process]) -> Result<(), RegisterError> {
    if cpp.len() > MAX_LIST {
        return Err(RegisterError::invalid(
            "cpp",
            format!("at most {MAX_LIST} processes"),
        ));
    }
    for (i, p) in cpp.iter().enumerate() {
        let field = |name: &str| format!("cpp[{i}].{name}");
        let code = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        };
        if !code(&p.message_type) {
            return Err(RegisterError::invalid(
                field("messageType"),
                "must be 1 to 64 of A-Z, 0-9 and _ (such as DIALOG_HELSEFAGLIG)",
            ));
        }
        if p.versions.is_empty() {
            return Err(RegisterError::invalid(
                field("versions"),
                "must list at least one version",
            ));
        }
        if let Some(reply) = p.replies.iter().find(|r| !code(r)) {
            return Err(RegisterError::invalid(
                field("replies"),
                format!("{:?} is not a message type", truncate(reply)),
            ));
        }
        if p.role == ProcessRole::Sender && !p.receipts.is_empty() {
            return Err(RegisterError::invalid(
                field("receipts"),
                "a sender returns no receipts; list them on the receiver line",
            ));
        }
    }
    let mut keys: Vec<_> = cpp
        .iter()
        .map(|p| (&p.message_type, p.role.as_str()))
        .collect();
    keys.sort();
    if let Some(pair) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(RegisterError::invalid(
            "cpp",
            format!("{} is listed twice as {}", pair[0].0, pair[0].1),
        ));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

/// The usage named in a URL segment or a request body.
pub fn usage(name: &str) -> Result<CertificateUsage, RegisterError> {
    match name {
        "encryption" => Ok(CertificateUsage::Encryption),
        "signature" | "signing" => Ok(CertificateUsage::Signing),
        other => Err(RegisterError::invalid(
            "usage",
            format!(
                "{:?} is not a certificate usage (encryption or signature)",
                truncate(other)
            ),
        )),
    }
}
