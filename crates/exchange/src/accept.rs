//! The acceptance checks a business document passes before the hub takes responsibility for
//! it: well-formed, valid against its schema, from a sender the caller owns, to receivers that
//! exist and are active, in a message type and version the CPA between them supports. Each
//! failure is refused with the kodeverk 8221 code an AppRec would carry.

use chrono::{DateTime, Utc};
use helsenett_core::HerId;
use helsenett_helseid::Principal;
use helsenett_register::model::CertificateStatus;
use helsenett_register::{Snapshot, cpa, model::Party};
use helsenett_store::records::{CertificateUsage, ProcessRole};
use openssl::{sha::sha256, x509::X509};

use crate::{
    apprec::{AppRec, AppRecVersion, NS_V1_0, NS_V1_1},
    cms,
    envelope::{Envelope, MSGHEAD_NS},
    error::{ExchangeError, Refusal},
    writer::{Answer, NewDelivery, NewMessage},
    xml,
};

/// A document as submitted.
pub struct Submission<'a> {
    pub document: &'a [u8],
    pub content_type: &'a str,
    /// Only these receivers of the document are handled (`receiverHerIdsSubset`).
    pub receivers_subset: Option<&'a [HerId]>,
    pub source_system: &'a str,
}

/// The content types a business document may have: XML, as NHN's API requires.
const XML_TYPES: &[&str] = &["application/xml", "text/xml"];

/// Checks `submission` against the register as of `snapshot`; the message to store if it passes.
pub fn check(
    snapshot: &Snapshot,
    principal: &Principal,
    submission: &Submission<'_>,
    now: DateTime<Utc>,
    first_due_ms: i64,
) -> Result<NewMessage, ExchangeError> {
    let media_type = submission
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !XML_TYPES.contains(&media_type.as_str()) {
        return Err(ExchangeError::BadRequest(format!(
            "contentType {:?} is not supported: a business document is application/xml",
            submission.content_type
        )));
    }
    let root = xml::parse(submission.document)
        .map_err(|e| Refusal::format("T01", "/", format!("not well-formed XML: {e}")))?;
    let is_msghead = match (root.ns.as_str(), root.name.as_str()) {
        (MSGHEAD_NS, "MsgHead") => true,
        (NS_V1_0 | NS_V1_1, "AppRec") => false,
        _ => return Err(Refusal::format(
            "T10",
            format!("/{}", root.name),
            format!(
                "the document is neither a MsgHead v1.2 ({MSGHEAD_NS}) nor an AppRec v1.0/v1.1: \
                 its root is {} in namespace {:?}",
                root.name, root.ns
            ),
        )
        .into()),
    };
    let report = helsenett_samsvar::validate(submission.document);
    if !report.is_valid() {
        return Err(ExchangeError::Refused(
            report
                .problems
                .into_iter()
                .map(|p| Refusal::format("T02", p.path, p.message))
                .collect(),
        ));
    }
    let received_at = now.timestamp_millis();
    let base = |id: String, sender: &Party, message_type: String| NewMessage {
        id: uuid::Uuid::new_v4().to_string(),
        sender: sender.her_id,
        sender_org: sender.orgnr.to_string(),
        document_id: id,
        sha256: sha256(submission.document).to_vec(),
        message_type,
        gen_date: String::new(),
        gen_at: 0,
        is_apprec: false,
        content_type: media_type.clone(),
        document: submission.document.to_vec(),
        source_system: submission.source_system.to_owned(),
        received_at,
        deliveries: Vec::new(),
        answers: None,
        due_at: Some(received_at + first_due_ms),
    };
    if is_msghead {
        let envelope = Envelope::read(&root).map_err(ExchangeError::Refused)?;
        let sender = sending_party(snapshot, principal, envelope.sender, now)?;
        let receivers = chosen_receivers(&envelope.receivers, submission.receivers_subset)?;
        let seals = envelope
            .sealed
            .iter()
            .enumerate()
            .map(|(i, der)| {
                cms::recipients(der).map_err(|e| {
                    Refusal::format(
                        "S99",
                        format!(
                            "/MsgHead/Document[{}]/RefDoc/Content/Base64Container",
                            i + 1
                        ),
                        format!("the sealed payload is not usable: {e}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut deliveries = Vec::with_capacity(receivers.len());
        for (i, receiver) in receivers.iter().enumerate() {
            let path = if i == 0 {
                "/MsgHead/MsgInfo/Receiver".to_owned()
            } else {
                format!("/MsgHead/MsgInfo/OtherReceiver[{i}]")
            };
            let party = receiving_party(snapshot, *receiver, now, &path)?;
            let expects_apprec = agreed(snapshot, sender, party, &envelope, &path)?;
            sealed_for(snapshot, party.her_id, &seals, now, &path)?;
            deliveries.push(NewDelivery {
                receiver: *receiver,
                receiver_org: party.orgnr.to_string(),
                expects_apprec,
            });
        }
        Ok(NewMessage {
            gen_date: envelope.gen_date,
            gen_at: envelope.gen_at.timestamp_millis(),
            deliveries,
            ..base(envelope.msg_id, sender, envelope.message_type)
        })
    } else {
        let receipt = AppRec::read(&root)?;
        let sender = sending_party(snapshot, principal, receipt.sender, now)?;
        let receiver = receiving_party(snapshot, receipt.receiver, now, "/AppRec/Receiver/HCP")?;
        if !reads_apprec(receiver, receipt.version) {
            return Err(Refusal::format(
                    "T10",
                    "/AppRec",
                    format!(
                        "HER-id {} does not read AppRec {} (its CPP lists the AppRec versions it receives)",
                        receiver.her_id,
                        match receipt.version {
                            AppRecVersion::V1_0 => "v1.0",
                            AppRecVersion::V1_1 => "v1.1",
                        }
                    ),
                )
                .into());
        }
        let gen_at = crate::envelope::parse_date_time(&receipt.gen_date)
            .map(|at| at.timestamp_millis())
            .ok_or_else(|| {
                Refusal::format(
                    "T02",
                    "/AppRec/GenDate",
                    format!("{:?} is not an xs:dateTime", receipt.gen_date),
                )
            })?;
        Ok(NewMessage {
            gen_date: receipt.gen_date.clone(),
            gen_at,
            is_apprec: true,
            deliveries: vec![NewDelivery {
                receiver: receiver.her_id,
                receiver_org: receiver.orgnr.to_string(),
                expects_apprec: false,
            }],
            answers: Some(Answer {
                original_sender: receipt.receiver,
                original_document_id: receipt.original_id.clone(),
                status: receipt.status,
                errors: receipt.errors.clone(),
            }),
            ..base(receipt.id.clone(), sender, cpa::APPREC.to_owned())
        })
    }
}

/// Every seal must open with `receiver`'s current encryption certificate: a message sealed for
/// another (an old or revoked certificate, another party) is one it could not read.
fn sealed_for(
    snapshot: &Snapshot,
    receiver: HerId,
    seals: &[Vec<cms::Recipient>],
    now: DateTime<Utc>,
    path: &str,
) -> Result<(), ExchangeError> {
    if seals.is_empty() {
        return Ok(());
    }
    let refuse = |message: String| ExchangeError::from(Refusal::format("S02", path, message));
    let found = snapshot
        .certificate(receiver, CertificateUsage::Encryption, now)
        .filter(|found| found.certificate.status(now) == CertificateStatus::Valid)
        .ok_or_else(|| {
            refuse(format!(
                "HER-id {receiver} has no valid encryption certificate in the address register"
            ))
        })?;
    let cert = X509::from_der(&found.certificate.der).map_err(|e| {
        ExchangeError::Store(helsenett_store::StoreError::Corrupt(format!(
            "certificate {}: {e}",
            found.certificate.fingerprint
        )))
    })?;
    match seals.iter().position(|r| !cms::addressed_to(r, &cert)) {
        None => Ok(()),
        Some(i) => Err(refuse(format!(
            "document {} is not sealed for HER-id {receiver}'s current encryption certificate \
             (serial {}, issuer {})",
            i + 1,
            found.certificate.serial,
            found.certificate.issuer
        ))),
    }
}

/// The sender, which must be active and belong to the caller's organisation.
fn sending_party<'s>(
    snapshot: &'s Snapshot,
    principal: &Principal,
    her_id: HerId,
    now: DateTime<Utc>,
) -> Result<&'s Party, ExchangeError> {
    match snapshot.party(her_id) {
        Some(party) if party.orgnr == principal.organisation => {
            if party.is_addressable(now.date_naive()) {
                Ok(party)
            } else {
                Err(ExchangeError::Forbidden(format!(
                    "HER-id {her_id} is not active in the address register"
                )))
            }
        }
        // Whether the HER-id exists is not told to someone who does not own it.
        _ => Err(ExchangeError::Forbidden(format!(
            "Not authorized for HerId(s): {her_id}"
        ))),
    }
}

fn receiving_party<'s>(
    snapshot: &'s Snapshot,
    her_id: HerId,
    now: DateTime<Utc>,
    path: &str,
) -> Result<&'s Party, ExchangeError> {
    match snapshot.party(her_id) {
        Some(party) if party.is_addressable(now.date_naive()) => Ok(party),
        Some(_) => Err(Refusal::format(
            "E21",
            path,
            format!("HER-id {her_id} is not an active communication party"),
        )
        .into()),
        None => Err(Refusal::format(
            "E21",
            path,
            format!("HER-id {her_id} is not in the address register"),
        )
        .into()),
    }
}

fn chosen_receivers(all: &[HerId], subset: Option<&[HerId]>) -> Result<Vec<HerId>, ExchangeError> {
    let Some(subset) = subset else {
        return Ok(all.to_vec());
    };
    if subset.is_empty() {
        return Err(ExchangeError::BadRequest(
            "receiverHerIdsSubset is empty: leave it out to deliver to every receiver".into(),
        ));
    }
    let mut chosen = Vec::with_capacity(subset.len());
    for her_id in subset {
        if !all.contains(her_id) {
            return Err(ExchangeError::BadRequest(format!(
                "receiverHerIdsSubset names HER-id {her_id}, which is not a receiver in the document"
            )));
        }
        if !chosen.contains(her_id) {
            chosen.push(*her_id);
        }
    }
    Ok(chosen)
}

/// Whether `sender` sends and `receiver` receives this message type at this version; if so,
/// whether the receiver returns an AppRec the sender reads.
fn agreed(
    snapshot: &Snapshot,
    sender: &Party,
    receiver: &Party,
    envelope: &Envelope,
    path: &str,
) -> Result<bool, ExchangeError> {
    let versions = |party: &Party, role: ProcessRole| {
        party
            .cpp
            .iter()
            .find(|p| p.message_type == envelope.message_type && p.role == role)
            .map(|p| p.versions.clone())
            .unwrap_or_default()
    };
    let list = |versions: &[helsenett_register::model::Version]| {
        if versions.is_empty() {
            "none".to_owned()
        } else {
            versions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let sends = versions(sender, ProcessRole::Sender);
    if !sends.contains(&envelope.version) {
        return Err(Refusal::format(
            "T10",
            "/MsgHead/MsgInfo/Type",
            format!(
                "the sender's CPP does not send {} {} (it sends versions: {})",
                envelope.message_type,
                envelope.version,
                list(&sends)
            ),
        )
        .into());
    }
    let receives = versions(receiver, ProcessRole::Receiver);
    if !receives.contains(&envelope.version) {
        return Err(Refusal::format(
            "T10",
            path,
            format!(
                "HER-id {} does not receive {} {} (it receives versions: {})",
                receiver.her_id,
                envelope.message_type,
                envelope.version,
                list(&receives)
            ),
        )
        .into());
    }
    Ok(snapshot
        .agreement(sender.her_id, receiver.her_id)
        .ok()
        .and_then(|agreement| {
            agreement
                .processes
                .into_iter()
                .find(|p| p.message_type == envelope.message_type)
        })
        .and_then(|process| process.receipt)
        .is_some())
}

/// Whether `party`'s CPP says it reads AppRecs of `version`.
fn reads_apprec(party: &Party, version: AppRecVersion) -> bool {
    party.cpp.iter().any(|p| {
        p.message_type == cpa::APPREC
            && p.role == ProcessRole::Receiver
            && p.versions
                .iter()
                .any(|v| AppRecVersion::from_cpa(v.major, v.minor) == Some(version))
    })
}
