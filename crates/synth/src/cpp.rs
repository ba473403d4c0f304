//! Collaboration protocol profiles: the message types each kind of party sends and receives, at
//! which versions, with the AppRec versions it returns and the messages it answers with.
//! Older versions are always listed; newer ones only by some parties, as in the real network
//! where EPJ systems upgrade at different times. That makes the CPA (highest common version)
//! differ between pairs of parties.

use helsenett_core::HerId;
use helsenett_store::records::{CppProcess, OrganisationKind, PartyKind, ProcessRole};
use rand::Rng;
use rand_chacha::ChaCha20Rng;

pub const DIALOG: &str = "DIALOG_HELSEFAGLIG";
pub const EPIKRISE: &str = "EPIKRISE";
pub const HENVISNING: &str = "HENVISNING";
pub const REKVISISJON: &str = "REKVISISJON";
pub const SVARRAPPORT: &str = "SVARRAPPORT";
pub const PLO: &str = "PLO";
pub const APPREC: &str = "APPREC";

use ProcessRole::{Receiver as R, Sender as S};

/// (message type, role, versions each with the share of parties that support it).
type Profile = &'static [(&'static str, ProcessRole, &'static [(&'static str, f64)])];

const DIALOG_VERSIONS: &[(&str, f64)] = &[("1.0", 1.0), ("1.1", 0.85)];

const GP: Profile = &[
    (DIALOG, R, DIALOG_VERSIONS),
    (DIALOG, S, DIALOG_VERSIONS),
    (EPIKRISE, R, &[("1.2", 1.0)]),
    (SVARRAPPORT, R, &[("1.3", 1.0), ("1.4", 0.85)]),
    (PLO, R, &[("1.5", 1.0), ("1.6", 0.8)]),
    (PLO, S, &[("1.5", 1.0), ("1.6", 0.8)]),
    (HENVISNING, S, &[("1.1", 1.0), ("2.0", 0.4)]),
    (REKVISISJON, S, &[("1.6", 1.0)]),
];
const HOSPITAL: Profile = &[
    (HENVISNING, R, &[("1.1", 1.0), ("2.0", 0.5)]),
    (DIALOG, R, DIALOG_VERSIONS),
    (DIALOG, S, DIALOG_VERSIONS),
    (PLO, R, &[("1.6", 1.0)]),
    (PLO, S, &[("1.6", 1.0)]),
    (SVARRAPPORT, R, &[("1.4", 1.0)]),
    (EPIKRISE, S, &[("1.2", 1.0)]),
    (REKVISISJON, S, &[("1.6", 1.0)]),
];
const LABORATORY: Profile = &[
    (REKVISISJON, R, &[("1.6", 1.0)]),
    (SVARRAPPORT, S, &[("1.3", 1.0), ("1.4", 1.0)]),
    (DIALOG, R, &[("1.1", 1.0)]),
    (DIALOG, S, &[("1.1", 1.0)]),
];
const MUNICIPAL_CARE: Profile = &[
    (PLO, R, &[("1.5", 1.0), ("1.6", 0.85)]),
    (PLO, S, &[("1.5", 1.0), ("1.6", 0.85)]),
    (DIALOG, R, DIALOG_VERSIONS),
    (DIALOG, S, DIALOG_VERSIONS),
    (EPIKRISE, R, &[("1.2", 1.0)]),
];
const PHARMACY: Profile = &[(DIALOG, R, &[("1.1", 1.0)]), (DIALOG, S, &[("1.1", 1.0)])];
const CLINIC: Profile = &[
    (DIALOG, R, DIALOG_VERSIONS),
    (DIALOG, S, DIALOG_VERSIONS),
    (EPIKRISE, R, &[("1.2", 1.0)]),
    (EPIKRISE, S, &[("1.2", 1.0)]),
];
const SPECIALIST: Profile = &[
    (DIALOG, R, DIALOG_VERSIONS),
    (DIALOG, S, DIALOG_VERSIONS),
    (EPIKRISE, R, &[("1.2", 1.0)]),
    (EPIKRISE, S, &[("1.2", 1.0)]),
    (HENVISNING, R, &[("1.1", 1.0)]),
    (HENVISNING, S, &[("1.1", 1.0)]),
];

fn profile(organisation: OrganisationKind) -> Profile {
    use OrganisationKind::*;
    match organisation {
        GpOffice => GP,
        HealthTrust | Hospital => HOSPITAL,
        Laboratory => LABORATORY,
        Municipality | NursingHome | HomeCare => MUNICIPAL_CARE,
        Pharmacy => PHARMACY,
        PhysiotherapyClinic | DentalClinic => CLINIC,
        SpecialistPractice => SPECIALIST,
    }
}

/// What a receiver answers a message type with, as the standards pair them.
fn replies(message_type: &str) -> &'static str {
    match message_type {
        HENVISNING | DIALOG => DIALOG,
        REKVISISJON => SVARRAPPORT,
        PLO => PLO,
        _ => "",
    }
}

/// The CPP of a party of `kind` belonging to an organisation of `organisation` kind. Every party
/// receives AppRec 1.0, most also 1.1, and returns the versions it receives.
pub fn processes(
    rng: &mut ChaCha20Rng,
    her_id: HerId,
    organisation: OrganisationKind,
    kind: PartyKind,
) -> Vec<CppProcess> {
    let receipts = if rng.random_bool(0.8) {
        "1.0 1.1"
    } else {
        "1.0"
    };
    // A health trust exchanges nothing itself: its hospitals' departments do.
    let business =
        if kind == PartyKind::Organisation && organisation == OrganisationKind::HealthTrust {
            &[][..]
        } else {
            profile(organisation)
        };
    let mut lines: Vec<CppProcess> = business
        .iter()
        .map(|&(message_type, role, versions)| {
            let versions: Vec<&str> = versions
                .iter()
                .filter(|(_, share)| *share >= 1.0 || rng.random_bool(*share))
                .map(|(v, _)| *v)
                .collect();
            CppProcess {
                her_id,
                message_type: message_type.into(),
                role,
                versions: versions.join(" "),
                receipts: if role == R {
                    receipts.into()
                } else {
                    String::new()
                },
                replies: if role == R {
                    replies(message_type).into()
                } else {
                    String::new()
                },
            }
        })
        .collect();
    lines.push(CppProcess {
        her_id,
        message_type: APPREC.into(),
        role: R,
        versions: receipts.into(),
        receipts: String::new(),
        replies: String::new(),
    });
    lines
}
