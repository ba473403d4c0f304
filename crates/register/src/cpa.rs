//! Collaboration protocol agreements: what one party may send another, computed from their two
//! CPPs by NHN's rule. A process is agreed when the sender's profile sends its message type and
//! the receiver's receives it; the version is the highest both list; no common version, no
//! agreement. The receipt is the highest AppRec version the receiver returns and the sender
//! receives.

use helsenett_core::HerId;
use helsenett_store::records::ProcessRole;
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::{Party, Process, Version};

/// The message type whose receiver-role versions say which AppRec versions a party can read.
pub const APPREC: &str = "APPREC";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agreement {
    #[schema(value_type = String)]
    pub from: HerId,
    #[schema(value_type = String)]
    pub to: HerId,
    pub processes: Vec<AgreedProcess>,
    /// Message types both profiles name for this direction but without a common version.
    pub without_common_version: Vec<Mismatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgreedProcess {
    pub message_type: String,
    #[schema(value_type = String, example = "1.1")]
    pub version: Version,
    /// The AppRec version the receiver answers with; none when the two share no AppRec version.
    #[schema(value_type = Option<String>, example = "1.1")]
    pub receipt: Option<Version>,
    pub replies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    pub message_type: String,
    #[schema(value_type = Vec<String>)]
    pub sender_versions: Vec<Version>,
    #[schema(value_type = Vec<String>)]
    pub receiver_versions: Vec<Version>,
}

impl Agreement {
    /// The agreed version of `message_type`, if any.
    pub fn version_of(&self, message_type: &str) -> Option<Version> {
        self.processes
            .iter()
            .find(|p| p.message_type == message_type)
            .map(|p| p.version)
    }
}

/// The agreement for messages from `from` to `to`.
pub fn agree(from: &Party, to: &Party) -> Agreement {
    let readable_receipts = line(&from.cpp, APPREC, ProcessRole::Receiver).map(|p| &p.versions[..]);
    let mut processes = Vec::new();
    let mut without_common_version = Vec::new();
    for receiving in to
        .cpp
        .iter()
        .filter(|p| p.role == ProcessRole::Receiver && p.message_type != APPREC)
    {
        let Some(sending) = line(&from.cpp, &receiving.message_type, ProcessRole::Sender) else {
            continue;
        };
        match highest_common(&sending.versions, &receiving.versions) {
            Some(version) => processes.push(AgreedProcess {
                message_type: receiving.message_type.clone(),
                version,
                receipt: readable_receipts
                    .and_then(|readable| highest_common(readable, &receiving.receipts)),
                replies: receiving.replies.clone(),
            }),
            None => without_common_version.push(Mismatch {
                message_type: receiving.message_type.clone(),
                sender_versions: sending.versions.clone(),
                receiver_versions: receiving.versions.clone(),
            }),
        }
    }
    Agreement {
        from: from.her_id,
        to: to.her_id,
        processes,
        without_common_version,
    }
}

fn line<'a>(cpp: &'a [Process], message_type: &str, role: ProcessRole) -> Option<&'a Process> {
    cpp.iter()
        .find(|p| p.role == role && p.message_type == message_type)
}

/// The highest version in both ascending lists.
fn highest_common(a: &[Version], b: &[Version]) -> Option<Version> {
    a.iter().rev().find(|v| b.binary_search(v).is_ok()).copied()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use helsenett_store::records::PartyKind;

    use super::*;

    fn v(list: &str) -> Vec<Version> {
        crate::model::versions(list).unwrap()
    }

    fn process(message_type: &str, role: ProcessRole, versions: &str, receipts: &str) -> Process {
        Process {
            message_type: message_type.into(),
            role,
            versions: v(versions),
            receipts: v(receipts),
            replies: vec![],
        }
    }

    fn party(her_id: u32, cpp: Vec<Process>) -> Party {
        Party {
            her_id: HerId::new(her_id).unwrap(),
            kind: PartyKind::Service,
            name: "x".into(),
            orgnr: helsenett_core::Organisasjonsnummer::synthetic(1).unwrap(),
            parent_her_id: None,
            hpr_number: None,
            municipality: "0301".into(),
            active: true,
            valid_from: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
            valid_to: None,
            organisation: None,
            coverage: vec![],
            certificates: vec![],
            cpp,
        }
    }

    use ProcessRole::{Receiver, Sender};

    #[test]
    fn highest_common_version_wins_and_none_gives_none() {
        let gp = party(
            1,
            vec![
                process("DIALOG_HELSEFAGLIG", Sender, "1.0 1.1", ""),
                process("HENVISNING", Sender, "2.0", ""),
                process(APPREC, Receiver, "1.0 1.1", ""),
            ],
        );
        let hospital = party(
            2,
            vec![
                process("DIALOG_HELSEFAGLIG", Receiver, "1.0", "1.0 1.1"),
                process("HENVISNING", Receiver, "1.1", "1.0"),
                process("EPIKRISE", Receiver, "1.2", "1.0"),
            ],
        );
        let agreement = agree(&gp, &hospital);
        // {1.0, 1.1} and {1.0} give 1.0; the receipt is the highest AppRec both handle.
        assert_eq!(agreement.processes.len(), 1);
        assert_eq!(agreement.version_of("DIALOG_HELSEFAGLIG"), v("1.0").pop());
        assert_eq!(agreement.processes[0].receipt, v("1.1").pop());
        // The GP sends HENVISNING 2.0, the hospital receives only 1.1: nothing agreed.
        assert_eq!(agreement.version_of("HENVISNING"), None);
        assert_eq!(
            agreement.without_common_version[0].message_type,
            "HENVISNING"
        );
        // The GP does not send EPIKRISE: not a mismatch, just not a process between them.
        assert_eq!(agreement.without_common_version.len(), 1);
        // Nothing goes the other way: the GP receives nothing.
        let back = agree(&hospital, &gp);
        assert!(back.processes.is_empty() && back.without_common_version.is_empty());
    }

    #[test]
    fn a_sender_that_reads_no_apprec_gets_no_receipt() {
        let sender = party(1, vec![process("PLO", Sender, "1.5 1.6", "")]);
        let receiver = party(2, vec![process("PLO", Receiver, "1.6", "1.1")]);
        let agreement = agree(&sender, &receiver);
        assert_eq!(agreement.version_of("PLO"), v("1.6").pop());
        assert_eq!(agreement.processes[0].receipt, None);
    }
}
