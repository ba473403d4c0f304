//! Collaboration protocol profiles: the message types and versions each kind of party receives.
//! Older versions are always listed; newer ones only by some parties, as in the real network
//! where EPJ systems upgrade at different times. That makes the CPA (highest common version)
//! differ between pairs of parties.

use helsenett_core::HerId;
use helsenett_store::records::{CppProcess, OrganisationKind, PartyKind};
use rand::Rng;
use rand_chacha::ChaCha20Rng;

pub const DIALOG: &str = "DIALOG_HELSEFAGLIG";
pub const EPIKRISE: &str = "EPIKRISE";
pub const HENVISNING: &str = "HENVISNING";
pub const SVARRAPPORT: &str = "SVARRAPPORT";
pub const PLO: &str = "PLO";
pub const APPREC: &str = "APPREC";

/// (message type, version, share of parties that support it).
type Profile = &'static [(&'static str, &'static str, f64)];

const RECEIPTS: Profile = &[(APPREC, "1.0", 1.0), (APPREC, "1.1", 0.8)];
const GP: Profile = &[
    (DIALOG, "1.0", 1.0),
    (DIALOG, "1.1", 0.9),
    (EPIKRISE, "1.2", 1.0),
    (SVARRAPPORT, "1.3", 1.0),
    (SVARRAPPORT, "1.4", 0.85),
    (PLO, "1.5", 1.0),
    (PLO, "1.6", 0.8),
];
const HOSPITAL: Profile = &[
    (HENVISNING, "1.1", 1.0),
    (HENVISNING, "2.0", 0.5),
    (DIALOG, "1.0", 1.0),
    (DIALOG, "1.1", 0.95),
    (PLO, "1.6", 1.0),
    (SVARRAPPORT, "1.4", 1.0),
];
const LABORATORY: Profile = &[(HENVISNING, "1.1", 1.0), (DIALOG, "1.1", 1.0)];
const MUNICIPAL_CARE: Profile = &[
    (PLO, "1.5", 1.0),
    (PLO, "1.6", 0.85),
    (DIALOG, "1.0", 1.0),
    (DIALOG, "1.1", 0.8),
    (EPIKRISE, "1.2", 1.0),
];
const PHARMACY: Profile = &[(DIALOG, "1.1", 1.0)];
const CLINIC: Profile = &[
    (DIALOG, "1.0", 1.0),
    (DIALOG, "1.1", 0.7),
    (EPIKRISE, "1.2", 1.0),
];
const SPECIALIST: Profile = &[
    (DIALOG, "1.0", 1.0),
    (DIALOG, "1.1", 0.7),
    (EPIKRISE, "1.2", 1.0),
    (HENVISNING, "1.1", 1.0),
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

/// The CPP of a party of `kind` belonging to an organisation of `organisation` kind.
pub fn processes(
    rng: &mut ChaCha20Rng,
    her_id: HerId,
    organisation: OrganisationKind,
    kind: PartyKind,
) -> Vec<CppProcess> {
    // A health trust receives nothing itself: its hospitals' departments do.
    let business =
        if kind == PartyKind::Organisation && organisation == OrganisationKind::HealthTrust {
            &[][..]
        } else {
            profile(organisation)
        };
    business
        .iter()
        .chain(RECEIPTS)
        .filter(|(_, _, share)| *share >= 1.0 || rng.random_bool(*share))
        .map(|&(message_type, version, _)| CppProcess {
            her_id,
            message_type,
            version,
        })
        .collect()
}
