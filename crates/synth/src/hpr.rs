//! Helsepersonellregisteret for the personnel a municipality's providers hired: when each was
//! authorised (doctors after a LIS1 licence since that scheme began), which doctors are
//! specialists, and the few whose authorisation was revoked or is or was suspended.

use std::collections::HashSet;

use chrono::{Days, Months, NaiveDate};
use helsenett_store::{
    hpr::{Authorisation, HprApproval, HprSpeciality, HprSuspension, Speciality},
    records::{HealthPersonnel, Period, Profession},
};
use rand::Rng;
use rand_chacha::ChaCha20Rng;

use crate::providers::Batch;

/// Doctors qualifying since then start with an 18-month LIS1 licence (the scheme of 2017).
const LIS1_SINCE: NaiveDate = NaiveDate::from_ymd_opt(2017, 9, 1).expect("a date");
const LIS1_MONTHS: u32 = 18;
/// Share of GPs approved as specialists in general practice (most; the rest are training).
const GP_SPECIALISTS: f64 = 0.75;
const REVOKED: f64 = 0.001;
const WITH_CONDITIONS: f64 = 0.002;
const SUSPENDED_NOW: f64 = 0.003;
const SUSPENDED_BEFORE: f64 = 0.005;

/// HPR's records for `batch.personnel`, drawn from `rng` alone so that the rest of the country
/// does not depend on them.
pub fn register(batch: &mut Batch, rng: &mut ChaCha20Rng, as_of: NaiveDate) {
    let gps: HashSet<_> = batch.gp_lists.iter().map(|l| l.gp).collect();
    let yesterday = as_of - Days::new(1);
    for p in &batch.personnel {
        let years = rng.random_range(24..=29);
        let qualified = (p.nin.birth_date() + Months::new(12 * years))
            .checked_add_days(Days::new(rng.random_range(0..365)))
            .unwrap_or(yesterday)
            .min(as_of - Days::new(30));
        let mut authorised = qualified;
        if p.profession == Profession::Doctor && qualified >= LIS1_SINCE {
            authorised = qualified + Months::new(LIS1_MONTHS);
            batch.hpr_approvals.push(approval(
                p,
                Authorisation::Lis1Licence,
                qualified,
                Some(authorised),
            ));
        }
        if authorised > as_of {
            continue;
        }
        let kind = if rng.random_bool(WITH_CONDITIONS) {
            Authorisation::AuthorisationWithConditions
        } else {
            Authorisation::Authorisation
        };
        let revoked = rng.random_bool(REVOKED).then(|| {
            let span = (as_of - authorised).num_days().max(2) as u64;
            authorised + Days::new(rng.random_range(1..span))
        });
        batch
            .hpr_approvals
            .push(approval(p, kind, authorised, revoked));
        if p.profession == Profession::Doctor {
            let speciality = if gps.contains(&p.hpr) {
                rng.random_bool(GP_SPECIALISTS)
                    .then_some(Speciality::GeneralPractice)
            } else {
                // Doctors in specialist practice are specialists by definition.
                Some(Speciality::OrthopaedicSurgery)
            };
            if let Some(speciality) = speciality {
                let from = (authorised + Months::new(12 * rng.random_range(5..=9))).min(yesterday);
                batch.hpr_specialities.push(HprSpeciality {
                    hpr: p.hpr,
                    profession: p.profession,
                    speciality,
                    period: Period {
                        from: from.max(authorised),
                        to: None,
                    },
                });
            }
        }
        suspensions(&mut batch.hpr_suspensions, p, authorised, as_of, rng);
    }
}

fn approval(
    p: &HealthPersonnel,
    authorisation: Authorisation,
    from: NaiveDate,
    to: Option<NaiveDate>,
) -> HprApproval {
    HprApproval {
        hpr: p.hpr,
        profession: p.profession,
        authorisation,
        period: Period { from, to },
    }
}

/// A suspension in force (until further notice, or for a set time), or one that has ended.
fn suspensions(
    out: &mut Vec<HprSuspension>,
    p: &HealthPersonnel,
    authorised: NaiveDate,
    as_of: NaiveDate,
    rng: &mut ChaCha20Rng,
) {
    let span = (as_of - authorised).num_days();
    let period = if rng.random_bool(SUSPENDED_NOW) {
        let from = as_of - Days::new(rng.random_range(0..180.min(span as u64 + 1)));
        let to = rng
            .random_bool(0.5)
            .then(|| from + Days::new(rng.random_range(200..730)));
        Period { from, to }
    } else if span > 400 && rng.random_bool(SUSPENDED_BEFORE) {
        let from = authorised + Days::new(rng.random_range(0..(span - 400) as u64));
        Period {
            from,
            to: Some(from + Days::new(rng.random_range(30..365))),
        }
    } else {
        return;
    };
    out.push(HprSuspension {
        hpr: p.hpr,
        profession: p.profession,
        period,
    });
}

#[cfg(test)]
mod tests {
    use helsenett_core::{HprNummer, NumberKind};
    use helsenett_store::{
        hpr::{ApprovalStatus, HprEntry},
        records::GpList,
    };
    use rand::SeedableRng;

    use super::*;

    /// 20,000 professionals aged 25 to 66, a third of them GPs.
    fn batch(as_of: NaiveDate) -> Batch {
        let mut batch = Batch::default();
        for i in 0..20_000u32 {
            let born = as_of - Days::new(365 * 25 + u64::from(i % 41) * 365 + u64::from(i % 300));
            let nin = (0..999)
                .find_map(|n| {
                    helsenett_core::Fodselsnummer::new(born, n, NumberKind::Fodselsnummer, true)
                })
                .expect("a number");
            let hpr = HprNummer::new(1_000_000 + i).expect("an HPR number");
            let profession = if i % 2 == 0 {
                Profession::Doctor
            } else {
                Profession::Nurse
            };
            if i % 3 == 0 && profession == Profession::Doctor {
                batch.gp_lists.push(GpList {
                    id: i.into(),
                    gp: hpr,
                    office: helsenett_core::Organisasjonsnummer::synthetic(1).expect("orgnr"),
                    municipality: "0301".into(),
                    capacity: 1_000,
                });
            }
            batch.personnel.push(HealthPersonnel {
                hpr,
                nin,
                profession,
                given_name: "Test".into(),
                family_name: "Person".into(),
            });
        }
        batch
    }

    fn entry(batch: &Batch, p: &HealthPersonnel) -> HprEntry {
        HprEntry {
            personnel: p.clone(),
            approvals: batch
                .hpr_approvals
                .iter()
                .filter(|a| a.hpr == p.hpr)
                .cloned()
                .collect(),
            specialities: batch
                .hpr_specialities
                .iter()
                .filter(|s| s.hpr == p.hpr)
                .cloned()
                .collect(),
            suspensions: batch
                .hpr_suspensions
                .iter()
                .filter(|s| s.hpr == p.hpr)
                .cloned()
                .collect(),
        }
    }

    #[test]
    fn nearly_everyone_is_authorised_and_the_exceptions_are_as_rare_as_in_norway() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let mut batch = batch(as_of);
        register(&mut batch, &mut ChaCha20Rng::seed_from_u64(7), as_of);
        let gps: HashSet<_> = batch.gp_lists.iter().map(|l| l.gp).collect();
        let (mut authorised, mut suspended, mut lis1, mut gp_specialists) = (0, 0, 0, 0);
        for p in &batch.personnel {
            let entry = entry(&batch, p);
            assert!(!entry.approvals.is_empty());
            authorised += usize::from(entry.authorised_on(as_of));
            suspended += usize::from(
                entry
                    .approvals
                    .iter()
                    .any(|a| entry.status_on(a, as_of) == ApprovalStatus::Suspended),
            );
            let on_licence = entry.approvals.iter().any(|a| {
                a.authorisation == Authorisation::Lis1Licence
                    && entry.status_on(a, as_of) == ApprovalStatus::Active
            });
            lis1 += usize::from(on_licence);
            if on_licence {
                assert_eq!(p.profession, Profession::Doctor);
                assert!(
                    entry.approvals.len() == 1,
                    "no authorisation yet while on LIS1"
                );
            }
            gp_specialists += usize::from(
                gps.contains(&p.hpr)
                    && entry
                        .specialities
                        .iter()
                        .any(|s| s.speciality == Speciality::GeneralPractice),
            );
        }
        let share = |n: usize, of: usize| n as f64 / of as f64;
        let all = batch.personnel.len();
        assert!(
            (0.985..0.999).contains(&share(authorised, all)),
            "{authorised} of {all}"
        );
        assert!(
            (0.0015..0.006).contains(&share(suspended, all)),
            "{suspended} suspended"
        );
        assert!(lis1 > 50, "young doctors start on a LIS1 licence: {lis1}");
        assert!(
            // Three in four authorised GPs; GPs still on a LIS1 licence are not specialists.
            (0.62..0.78).contains(&share(gp_specialists, gps.len())),
            "{gp_specialists} of {} GPs",
            gps.len()
        );
        assert!(
            !batch
                .hpr_suspensions
                .iter()
                .all(|s| s.period.holds_on(as_of)),
            "past ones too"
        );
    }
}
