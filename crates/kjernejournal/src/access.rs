//! Who may read or change a record, decided from the caller and the facts the ledger reads in the
//! same transaction as the audit record. Pure: every rule is here and tested here.

use helsenett_core::{Fodselsnummer, HprNummer, Organisasjonsnummer};
use helsenett_store::kjernejournal::{Privacy, Section};

/// HelseID's highest assurance level (BankID and equivalents); Kjernejournal needs it.
pub const SECURITY_LEVEL: u8 = 4;

/// The caller as the audit names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Signed-in health personnel: HelseID gives an HPR number only to the authorised.
    Personnel {
        hpr: HprNummer,
        name: String,
        security_level: u8,
    },
    /// A signed-in person without an HPR number, acting for themselves.
    Citizen {
        pid: Fodselsnummer,
        name: String,
        security_level: u8,
    },
    /// A system acting for its organisation (client credentials).
    System { client_id: String },
}

/// Who calls, for which organisation, under which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub caller: Caller,
    /// The legal entity the client acts for, and the unit within it if named.
    pub organisation: Organisasjonsnummer,
    pub unit: Option<Organisasjonsnummer>,
    pub token_id: String,
}

impl Ctx {
    /// The organisation the audit and the access log name: the unit when there is one.
    pub fn acting_for(&self) -> Organisasjonsnummer {
        self.unit.unwrap_or(self.organisation)
    }
}

/// What the caller asked to do, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Read the record (or a document in it); `emergency` is "break the glass".
    Read { emergency: bool },
    /// Register critical information, or that there is none known.
    WriteCritical,
    /// The citizen's own parts: next of kin, own entries, privacy.
    WriteOwn,
    /// A source system reports what happened (dispensing, contacts, vaccinations, documents).
    Ingest(Section),
}

/// What the ledger knows about the person and the caller's relation to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The population register has the person.
    pub exists: bool,
    pub privacy: Option<Privacy>,
    /// The person is on the caller's GP list.
    pub gp: bool,
    /// The person has an episode now at the caller's organisation or unit.
    pub episode: bool,
}

/// How access was given, as the audit and the access log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A treatment relation: the GP list, or an episode at the organisation.
    Normal(Relation),
    /// Break the glass: no relation, a reason, flagged for follow-up.
    Emergency,
    /// The citizen, in their own record.
    Citizen,
    /// A source system writing what it reports.
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Gp,
    Episode,
}

/// Why access was refused. Each is audited, and each message is safe to show the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    SecurityLevel,
    /// A system cannot read records or write critical information: a person must be signed in.
    NotAPerson,
    /// A citizen asked for someone else's record.
    NotYourRecord,
    /// A signed-in person without an HPR number tried a health-personnel action.
    NotPersonnel,
    NoRelation,
    /// The citizen limited access to those with a treatment relation.
    Restricted,
    /// The citizen reserved themselves: no health personnel at all.
    Reserved,
    /// A system may only report into the sections its kind of source owns.
    NotASource,
    UnknownPerson,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::SecurityLevel => {
                "Kjernejournal needs a sign-in at security level 4 (HelseID's highest)"
            }
            Refusal::NotAPerson => {
                "a person must be signed in: a system token cannot read or change the record"
            }
            Refusal::NotYourRecord => "a citizen may read and change only their own record",
            Refusal::NotPersonnel => {
                "only authorised health personnel (with an HPR number) may do this"
            }
            Refusal::NoRelation => {
                "no treatment relation with the patient (not on your GP list, no episode at your \
                 organisation); use emergency access with a reason if the situation requires it"
            }
            Refusal::Restricted => {
                "the patient has limited access to health personnel with a treatment relation: \
                 emergency access is not available"
            }
            Refusal::Reserved => {
                "the patient has reserved themselves against access by health personnel"
            }
            Refusal::NotASource => "this client may not report entries of this kind",
            Refusal::UnknownPerson => "no person with this number in the population register",
        }
    }

    /// The short code the audit and the access log keep.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::SecurityLevel => "security-level",
            Refusal::NotAPerson => "not-a-person",
            Refusal::NotYourRecord => "not-your-record",
            Refusal::NotPersonnel => "not-personnel",
            Refusal::NoRelation => "no-relation",
            Refusal::Restricted => "restricted",
            Refusal::Reserved => "reserved",
            Refusal::NotASource => "not-a-source",
            Refusal::UnknownPerson => "unknown-person",
        }
    }
}

/// The sections a source system reports into.
pub const INGESTED: &[Section] = &[
    Section::Medication,
    Section::Contact,
    Section::Vaccination,
    Section::Document,
];

/// The rules. The order matters only for which refusal is named: identity first, then the
/// person, then the citizen's choices, then the relation.
pub fn decide(
    ctx: &Ctx,
    patient: &Fodselsnummer,
    intent: Intent,
    facts: &Facts,
) -> Result<Access, Refusal> {
    let privacy = facts.privacy.unwrap_or(Privacy::Open);
    match (&ctx.caller, intent) {
        (Caller::System { .. }, Intent::Ingest(section)) => {
            if !INGESTED.contains(&section) {
                return Err(Refusal::NotASource);
            }
            if !facts.exists {
                return Err(Refusal::UnknownPerson);
            }
            // A reservation stops access, not the record of what happened: a source system's
            // report is kept, and shown to no health personnel while the reservation lasts.
            Ok(Access::System)
        }
        (Caller::System { .. }, _) => Err(Refusal::NotAPerson),
        (_, Intent::Ingest(_)) => Err(Refusal::NotASource),
        (
            Caller::Citizen {
                pid,
                security_level,
                ..
            },
            intent,
        ) => {
            if *security_level < SECURITY_LEVEL {
                return Err(Refusal::SecurityLevel);
            }
            if pid != patient {
                return Err(Refusal::NotYourRecord);
            }
            match intent {
                Intent::WriteCritical => Err(Refusal::NotPersonnel),
                _ if !facts.exists => Err(Refusal::UnknownPerson),
                _ => Ok(Access::Citizen),
            }
        }
        (Caller::Personnel { security_level, .. }, intent) => {
            if *security_level < SECURITY_LEVEL {
                return Err(Refusal::SecurityLevel);
            }
            let emergency = match intent {
                Intent::Read { emergency } => emergency,
                Intent::WriteCritical => false,
                // Health personnel change no one's own parts, not even in an emergency.
                Intent::WriteOwn => return Err(Refusal::NotYourRecord),
                Intent::Ingest(_) => unreachable!("matched above"),
            };
            if !facts.exists {
                return Err(Refusal::UnknownPerson);
            }
            if privacy == Privacy::Reserved {
                return Err(Refusal::Reserved);
            }
            let relation = if facts.gp {
                Some(Relation::Gp)
            } else if facts.episode {
                Some(Relation::Episode)
            } else {
                None
            };
            match (relation, emergency) {
                // A relation is the normal way in, even when the caller pressed "emergency".
                (Some(relation), _) => Ok(Access::Normal(relation)),
                (None, true) if privacy == Privacy::Restricted => Err(Refusal::Restricted),
                (None, true) => Ok(Access::Emergency),
                (None, false) => Err(Refusal::NoRelation),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nin(seq: u16) -> Fodselsnummer {
        let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        (seq..999)
            .find_map(|i| {
                Fodselsnummer::new(date, i, helsenett_core::NumberKind::Fodselsnummer, true)
            })
            .unwrap()
    }

    fn ctx(caller: Caller) -> Ctx {
        Ctx {
            caller,
            organisation: "974703300".parse().unwrap(),
            unit: None,
            token_id: "t".into(),
        }
    }

    fn doctor(level: u8) -> Ctx {
        ctx(Caller::Personnel {
            hpr: HprNummer::new(9_123_456).unwrap(),
            name: "Kari Lege".into(),
            security_level: level,
        })
    }

    fn facts(privacy: Privacy, gp: bool, episode: bool) -> Facts {
        Facts {
            exists: true,
            privacy: Some(privacy),
            gp,
            episode,
        }
    }

    const READ: Intent = Intent::Read { emergency: false };
    const EMERGENCY: Intent = Intent::Read { emergency: true };

    #[test]
    fn personnel_need_a_relation_or_an_emergency() {
        let p = nin(100);
        let d = doctor(4);
        let open = |gp, ep| facts(Privacy::Open, gp, ep);
        assert_eq!(
            decide(&d, &p, READ, &open(true, false)),
            Ok(Access::Normal(Relation::Gp))
        );
        assert_eq!(
            decide(&d, &p, READ, &open(false, true)),
            Ok(Access::Normal(Relation::Episode))
        );
        assert_eq!(
            decide(&d, &p, READ, &open(false, false)),
            Err(Refusal::NoRelation)
        );
        assert_eq!(
            decide(&d, &p, EMERGENCY, &open(false, false)),
            Ok(Access::Emergency)
        );
        // With a relation an emergency read is a normal one: nothing to follow up.
        assert_eq!(
            decide(&d, &p, EMERGENCY, &open(true, false)),
            Ok(Access::Normal(Relation::Gp))
        );
        assert_eq!(
            decide(&doctor(3), &p, EMERGENCY, &open(true, false)),
            Err(Refusal::SecurityLevel)
        );
        assert_eq!(
            decide(&d, &p, Intent::WriteCritical, &open(false, false)),
            Err(Refusal::NoRelation)
        );
        assert_eq!(
            decide(&d, &p, Intent::WriteOwn, &open(true, false)),
            Err(Refusal::NotYourRecord)
        );
        let unknown = Facts::default();
        assert_eq!(
            decide(&d, &p, EMERGENCY, &unknown),
            Err(Refusal::UnknownPerson)
        );
    }

    #[test]
    fn the_citizen_s_choices_bind_personnel() {
        let p = nin(100);
        let d = doctor(4);
        let restricted = |gp| facts(Privacy::Restricted, gp, false);
        assert_eq!(
            decide(&d, &p, EMERGENCY, &restricted(false)),
            Err(Refusal::Restricted)
        );
        assert_eq!(
            decide(&d, &p, READ, &restricted(true)),
            Ok(Access::Normal(Relation::Gp))
        );
        let reserved = facts(Privacy::Reserved, true, true);
        assert_eq!(decide(&d, &p, READ, &reserved), Err(Refusal::Reserved));
        assert_eq!(decide(&d, &p, EMERGENCY, &reserved), Err(Refusal::Reserved));
    }

    #[test]
    fn citizens_have_their_own_record_only() {
        let me = nin(100);
        let other = nin(200);
        let citizen = ctx(Caller::Citizen {
            pid: me,
            name: "Ola".into(),
            security_level: 4,
        });
        let f = facts(Privacy::Reserved, false, false);
        assert_eq!(decide(&citizen, &me, READ, &f), Ok(Access::Citizen));
        assert_eq!(
            decide(&citizen, &me, Intent::WriteOwn, &f),
            Ok(Access::Citizen)
        );
        assert_eq!(
            decide(&citizen, &other, EMERGENCY, &f),
            Err(Refusal::NotYourRecord)
        );
        assert_eq!(
            decide(&citizen, &me, Intent::WriteCritical, &f),
            Err(Refusal::NotPersonnel)
        );
    }

    #[test]
    fn systems_only_report_into_their_sections() {
        let p = nin(100);
        let system = ctx(Caller::System {
            client_id: "apotek".into(),
        });
        let f = facts(Privacy::Reserved, false, false);
        assert_eq!(
            decide(&system, &p, Intent::Ingest(Section::Medication), &f),
            Ok(Access::System)
        );
        assert_eq!(
            decide(&system, &p, Intent::Ingest(Section::Critical), &f),
            Err(Refusal::NotASource)
        );
        assert_eq!(decide(&system, &p, READ, &f), Err(Refusal::NotAPerson));
        assert_eq!(
            decide(&doctor(4), &p, Intent::Ingest(Section::Contact), &f),
            Err(Refusal::NotASource)
        );
    }
}
