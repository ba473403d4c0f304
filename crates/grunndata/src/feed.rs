//! The change-event feed, read from the database so that every node answers alike: up to 1,000
//! events from a sequence number, optionally of some event types only, and the latest event.

use helsenett_store::{Store, StoreError, with_pool};
use serde::Serialize;

use crate::error::GrunndataError;

/// Events per page, as the contract says.
pub const PAGE: i64 = 1_000;

/// Persontjenesten's event types, all of which a filter may name (the synthetic country makes
/// only some of them).
pub const EVENT_TYPES: [&str; 53] = [
    "Unknown",
    "PersonIsCreated",
    "PersonIsReactivated",
    "PersonIsUpdated",
    "PersonIsDiscontinued",
    "PersonIsContinuedAsValidUponMerger",
    "PersonIsDiscontinuedAsDuplicate",
    "PersonIsChangedBySplitting",
    "PersonIsRestoredBySplitting",
    "PersonIsDeceased",
    "PersonIsResident",
    "PersonIsEmigrated",
    "ChangeInStatus",
    "ChangeInIdentityVerification",
    "ChangeInForeignPersonIdentificationNumber",
    "ChangeInImmigrationAuthoritiesIdentificationNumber",
    "ChangeInIdentificationDocument",
    "ChangeInNorwegianIdentificationNumber",
    "ChangeInFalseIdentity",
    "ChangeInResiduaryEstateContactInformation",
    "ChangeInSharedResidence",
    "ChangeInBirth",
    "ChangeInBirthInNorway",
    "ChangeInGender",
    "ChangeInFamilyRelation",
    "ChangeInMaritalStatus",
    "ChangeInDeath",
    "ChangeInName",
    "ChangeInAddressProtection",
    "ChangeInResidentialAddress",
    "ChangeInResidentialAddressWithoutRelocation",
    "ChangeInPresentAddress",
    "ChangeInImmigrationToNorway",
    "ChangeInEmigrationFromNorway",
    "ChangeInUseOfSamiLanguage",
    "ChangeInSamiParliamentElectoralRegistryStatus",
    "ChangeInContactinformation",
    "ChangeInParentalResponsibility",
    "ChangeInCitizenship",
    "ChangeInResidency",
    "ChangeInResidencyOnSvalbard",
    "ChangeInGuardianship",
    "ChangeInPerson",
    "PersonCorrected",
    "PersonPopulated",
    "ChangeInPostalAddress",
    "ChangeInForeignPostalAddress",
    "ChangeInResidencePermit",
    "ChangeInDeprivedLegalAuthority",
    "CreatedAlternateIdentificationNumber",
    "UpdatedAlternateIdentificationNumber",
    "ChangeInLegalAuthority",
    "ChangeInCommonContactRegisterInformation",
];

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDocument {
    pub sequence_number: String,
    pub person_id: String,
    pub event_type: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDocumentSearchResult {
    pub results: Vec<EventDocument>,
    pub start_index: i32,
    pub end_index: i32,
}

/// `sequenceNumber` as the contract's pattern allows: a whole number from 1, no leading zero.
pub fn sequence_number(value: &str) -> Result<i64, GrunndataError> {
    let bad = || {
        GrunndataError::invalid(
            "sequenceNumber",
            "must be a whole number of at least 1, without sign or leading zeros",
        )
    };
    if value.is_empty()
        || value.len() > 18
        || value.starts_with('0')
        || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    value.parse().map_err(|_| bad())
}

/// Checks `eventTypes` values against the contract's list.
pub fn event_type(value: &str) -> Result<&'static str, GrunndataError> {
    EVENT_TYPES
        .iter()
        .copied()
        .find(|t| *t == value)
        .ok_or_else(|| {
            GrunndataError::invalid(
                "eventTypes",
                format!(
                    "{:?} is not an event type of Persontjenesten",
                    value.chars().take(60).collect::<String>()
                ),
            )
        })
}

/// Up to [`PAGE`] events from `from` (inclusive), of `types` when any are given.
pub async fn page(
    store: &Store,
    from: i64,
    types: &[&str],
) -> Result<Vec<EventDocument>, StoreError> {
    let mut sql = String::from(
        "SELECT e.seq, p.person_id, e.event_type FROM person_event e JOIN person p ON p.nin = e.nin \
         WHERE e.seq >= $1",
    );
    if !types.is_empty() {
        let placeholders: Vec<String> = (0..types.len()).map(|i| format!("${}", i + 3)).collect();
        sql.push_str(&format!(
            " AND e.event_type IN ({})",
            placeholders.join(", ")
        ));
    }
    sql.push_str(" ORDER BY e.seq LIMIT $2");
    let rows = with_pool!(store, pool => {
        let mut query = sqlx::query_as::<_, (i64, String, String)>(&sql).bind(from).bind(PAGE);
        for t in types {
            query = query.bind(*t);
        }
        query.fetch_all(pool).await
    })?;
    Ok(rows.into_iter().map(document).collect())
}

pub async fn latest(store: &Store) -> Result<Option<EventDocument>, StoreError> {
    let row = with_pool!(store, pool => sqlx::query_as::<_, (i64, String, String)>(
        "SELECT e.seq, p.person_id, e.event_type FROM person_event e JOIN person p ON p.nin = e.nin \
         ORDER BY e.seq DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(document))
}

fn document((seq, person_id, event_type): (i64, String, String)) -> EventDocument {
    EventDocument {
        sequence_number: seq.to_string(),
        person_id,
        event_type,
    }
}
