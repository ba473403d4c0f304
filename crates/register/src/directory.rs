//! The register held in memory: an immutable snapshot of every party as of one event, swapped
//! whole when newer events arrive. Look-ups, searches, CPAs and exports read a snapshot without
//! a lock or a query, so they are consistent by construction: everything in a snapshot is as of
//! its event id, and a mirror that starts from an export continues with the next event.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use helsenett_core::{HerId, Organisasjonsnummer};
use helsenett_store::records::{CertificateUsage, PartyKind, ProcessRole};
use rustc_hash::FxHashMap;

use crate::{
    cpa::{self, Agreement},
    model::{Party, StoredCertificate},
};

/// Parent links deeper than this are a loop (a department of a department of ...).
const MAX_DEPTH: usize = 16;

#[derive(Default)]
pub struct Snapshot {
    /// The last event this snapshot includes (0: the loaded country, before any change).
    pub event_id: i64,
    parties: FxHashMap<HerId, Entry>,
    /// Every party by HER-id.
    ordered: Vec<Entry>,
}

/// A party with its name folded for search; shared between snapshots, so that the next
/// snapshot copies pointers, not parties.
type Entry = (Arc<Party>, Arc<str>);

fn entry(party: Party) -> Entry {
    let folded = fold(&party.name).into();
    (Arc::new(party), folded)
}

/// A certificate found for a party: its own, or the nearest ancestor's.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    pub holder: HerId,
    pub certificate: &'a StoredCertificate,
}

/// What a search asks for; every given criterion must hold.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Case-insensitive part of the name.
    pub name: Option<String>,
    pub orgnr: Option<Organisasjonsnummer>,
    pub her_id: Option<HerId>,
    /// A municipality the party is in or serves.
    pub municipality: Option<String>,
    pub kind: Option<PartyKind>,
    /// A message type the party receives.
    pub receives: Option<String>,
    pub active: Option<bool>,
}

impl Search {
    fn matches(&self, party: &Party, folded_name: &str) -> bool {
        self.her_id.is_none_or(|h| party.her_id == h)
            && self.orgnr.is_none_or(|o| party.orgnr == o)
            && self.kind.is_none_or(|k| party.kind == k)
            && self.active.is_none_or(|a| party.active == a)
            && self.name.as_deref().is_none_or(|n| folded_name.contains(n))
            && self
                .municipality
                .as_deref()
                .is_none_or(|m| party.municipality == m || party.coverage.iter().any(|c| c == m))
            && self.receives.as_deref().is_none_or(|t| {
                party
                    .cpp
                    .iter()
                    .any(|p| p.role == ProcessRole::Receiver && p.message_type == t)
            })
    }
}

/// How names are compared in search.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

impl Snapshot {
    pub fn new(event_id: i64, parties: impl IntoIterator<Item = Party>) -> Self {
        let mut snapshot = Snapshot {
            event_id,
            ..Snapshot::default()
        };
        snapshot.parties = parties.into_iter().map(|p| (p.her_id, entry(p))).collect();
        snapshot.reindex();
        snapshot
    }

    fn reindex(&mut self) {
        let mut ordered: Vec<Entry> = self.parties.values().cloned().collect();
        ordered.sort_unstable_by_key(|(p, _)| p.her_id);
        self.ordered = ordered;
    }

    /// This snapshot with `parties` replaced as of `event_id`.
    pub(crate) fn with(&self, event_id: i64, parties: impl IntoIterator<Item = Party>) -> Self {
        let mut next = Snapshot {
            event_id,
            parties: self.parties.clone(),
            ordered: Vec::new(),
        };
        for party in parties {
            next.parties.insert(party.her_id, entry(party));
        }
        next.reindex();
        next
    }

    pub fn len(&self) -> usize {
        self.parties.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parties.is_empty()
    }

    pub fn party(&self, her_id: HerId) -> Option<&Arc<Party>> {
        self.parties.get(&her_id).map(|(p, _)| p)
    }

    /// Every party, by HER-id.
    pub fn parties(&self) -> impl ExactSizeIterator<Item = &Arc<Party>> {
        self.ordered.iter().map(|(p, _)| p)
    }

    /// The highest HER-id given out, so the next is one above it.
    pub fn max_her_id(&self) -> Option<HerId> {
        self.ordered.last().map(|(p, _)| p.her_id)
    }

    /// The parties matching `search`, by HER-id: the total and those from `skip`, at most `take`.
    pub fn search(&self, search: &Search, skip: usize, take: usize) -> (usize, Vec<&Arc<Party>>) {
        let search = Search {
            name: search.name.as_deref().map(fold),
            ..search.clone()
        };
        let candidates: &[Entry] = match search.her_id {
            // At most one party can match: look it up rather than scan.
            Some(her_id) => self.parties.get(&her_id).map_or(&[], std::slice::from_ref),
            None => &self.ordered,
        };
        let mut total = 0;
        let mut page = Vec::with_capacity(take.min(1_000));
        for (party, folded) in candidates {
            if search.matches(party, folded) {
                if total >= skip && page.len() < take {
                    page.push(party);
                }
                total += 1;
            }
        }
        (total, page)
    }

    /// The agreement for messages from `from` to `to`, or the HER-id that is not in the register.
    pub fn agreement(&self, from: HerId, to: HerId) -> Result<Agreement, HerId> {
        let sender = self.party(from).ok_or(from)?;
        let receiver = self.party(to).ok_or(to)?;
        Ok(cpa::agree(sender, receiver))
    }

    /// The certificate a party uses for `usage` at `now`: its own current one, or, when it has
    /// none of that use, its nearest ancestor's. `None` when no party up the chain has one.
    pub fn certificate(
        &self,
        her_id: HerId,
        usage: CertificateUsage,
        now: DateTime<Utc>,
    ) -> Option<Found<'_>> {
        let mut party = self.party(her_id)?;
        for _ in 0..MAX_DEPTH {
            if let Some(certificate) = current(&party.certificates, usage, now) {
                return Some(Found {
                    holder: party.her_id,
                    certificate,
                });
            }
            party = self.party(party.parent_her_id?)?;
        }
        None
    }
}

/// Of a party's own certificates for `usage`: the most recently added that is in force now;
/// failing that the most recently added, so that a look-up can say why it cannot be used.
pub fn current(
    certificates: &[StoredCertificate],
    usage: CertificateUsage,
    now: DateTime<Utc>,
) -> Option<&StoredCertificate> {
    let of_usage = || certificates.iter().filter(move |c| c.usage == usage);
    let newest = |a: &&StoredCertificate, b: &&StoredCertificate| {
        (a.added_at, a.not_before).cmp(&(b.added_at, b.not_before))
    };
    of_usage()
        .filter(|c| c.status(now) == crate::model::CertificateStatus::Valid)
        .max_by(newest)
        .or_else(|| of_usage().max_by(newest))
}
