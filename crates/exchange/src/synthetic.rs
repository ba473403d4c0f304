//! A synthetic party's keys, for a test lab acting as any member: the synthetic country keeps the
//! private keys of the certificates it issued (table `synthetic_key`). A real member keeps its
//! keys in its own EPJ and never gives them to the network.

use std::collections::HashSet;

use chrono::Utc;
use helsenett_core::HerId;
use helsenett_register::Snapshot;
use helsenett_store::{
    Store, StoreError,
    records::{CertificateUsage, PartyKind},
    with_pool,
};
use openssl::{
    pkey::{PKey, Private},
    x509::X509,
};

/// The message type of dialogue messages between health personnel.
pub const DIALOG: &str = "DIALOG_HELSEFAGLIG";

/// A certificate with its private key.
pub struct KeyPair {
    pub certificate: X509,
    pub key: PKey<Private>,
}

/// What a party signs and decrypts with.
pub struct Credentials {
    pub signing: KeyPair,
    pub encryption: KeyPair,
}

impl Credentials {
    /// The keys of `her_id`'s current certificates (its own or its nearest ancestor's).
    pub async fn of(store: &Store, snapshot: &Snapshot, her_id: HerId) -> Result<Self, StoreError> {
        Ok(Credentials {
            signing: pair(store, snapshot, her_id, CertificateUsage::Signing).await?,
            encryption: pair(store, snapshot, her_id, CertificateUsage::Encryption).await?,
        })
    }
}

async fn pair(
    store: &Store,
    snapshot: &Snapshot,
    her_id: HerId,
    usage: CertificateUsage,
) -> Result<KeyPair, StoreError> {
    let found = snapshot
        .certificate(her_id, usage, Utc::now())
        .ok_or_else(|| {
            StoreError::Corrupt(format!("HER-id {her_id} has no {usage:?} certificate"))
        })?;
    let pem: Option<String> = with_pool!(store, pool => {
        sqlx::query_scalar(
            "SELECT k.private_key_pem FROM certificate c JOIN synthetic_key k ON k.id = c.key_id \
             WHERE c.fingerprint = $1",
        )
        .bind(&found.certificate.fingerprint)
        .fetch_optional(pool)
        .await?
    });
    let pem = pem.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "HER-id {her_id}'s {usage:?} certificate has no synthetic key: it is not a synthetic party"
        ))
    })?;
    let bad = |e: openssl::error::ErrorStack| StoreError::Corrupt(format!("synthetic key: {e}"));
    Ok(KeyPair {
        certificate: X509::from_der(&found.certificate.der).map_err(bad)?,
        key: PKey::private_key_from_pem(pem.as_bytes()).map_err(bad)?,
    })
}

/// Up to `want` sender-receiver pairs for dialogue messages (DIALOG_HELSEFAGLIG): parties of
/// different organisations, with synthetic keys, whose CPA agrees on the message and an AppRec
/// back. Each party is in one pair at most.
pub async fn dialogue_pairs(
    store: &Store,
    snapshot: &Snapshot,
    want: usize,
) -> Result<Vec<(HerId, HerId)>, StoreError> {
    let today = Utc::now().date_naive();
    let candidates: Vec<_> = snapshot
        .parties()
        .filter(|p| {
            matches!(p.kind, PartyKind::Department | PartyKind::Person) && p.is_addressable(today)
        })
        .collect();
    let agree = |a: HerId, b: HerId| {
        snapshot.agreement(a, b).is_ok_and(|agreement| {
            agreement
                .processes
                .iter()
                .any(|p| p.message_type == DIALOG && p.receipt.is_some())
        })
    };
    // Parties without synthetic keys (or already paired) are passed over; keys are looked up
    // only for parties about to be paired, not for the whole register.
    let mut used = HashSet::new();
    let mut keyless = HashSet::new();
    let mut pairs = Vec::new();
    for a in &candidates {
        if pairs.len() == want {
            break;
        }
        if used.contains(&a.her_id) || !has_keys(store, snapshot, a.her_id, &mut keyless).await {
            continue;
        }
        for b in &candidates {
            if b.orgnr == a.orgnr
                || used.contains(&b.her_id)
                || keyless.contains(&b.her_id)
                || !agree(a.her_id, b.her_id)
            {
                continue;
            }
            if has_keys(store, snapshot, b.her_id, &mut keyless).await {
                used.extend([a.her_id, b.her_id]);
                pairs.push((a.her_id, b.her_id));
                break;
            }
        }
    }
    Ok(pairs)
}

/// Whether `her_id` has synthetic keys; remembers those that do not.
async fn has_keys(
    store: &Store,
    snapshot: &Snapshot,
    her_id: HerId,
    keyless: &mut HashSet<HerId>,
) -> bool {
    let has = Credentials::of(store, snapshot, her_id).await.is_ok();
    if !has {
        keyless.insert(her_id);
    }
    has
}
