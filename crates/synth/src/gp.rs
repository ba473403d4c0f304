//! Fastlegeregisteret's dates for the places a municipality's people were given: when each
//! place began, and, for some, the GP they had before on another of the municipality's lists.

use chrono::{Days, NaiveDate};
use helsenett_store::{
    gp::{EndReason, GpListHistory},
    records::Period,
};
use rand::Rng;
use rand_chacha::ChaCha20Rng;

use crate::providers::Batch;

/// The GP scheme (fastlegeordningen) began on this day.
const SCHEME_BEGAN: NaiveDate = NaiveDate::from_ymd_opt(2001, 6, 1).expect("a date");
/// Share of people whose current place followed an earlier one.
const CHANGED_BEFORE: f64 = 0.2;

/// Dates every place in `batch` and adds the earlier places, drawn from `rng` alone.
pub fn places(batch: &mut Batch, rng: &mut ChaCha20Rng, as_of: NaiveDate) {
    let lists: Vec<i64> = batch.gp_lists.iter().map(|l| l.id).collect();
    for member in &mut batch.gp_members {
        let first = member.nin.birth_date().max(SCHEME_BEGAN);
        let days = (as_of - first).num_days().max(1) as u64;
        let since = first + Days::new(rng.random_range(0..days));
        member.since = since;
        if lists.len() < 2 || since <= first || !rng.random_bool(CHANGED_BEFORE) {
            continue;
        }
        // Any list but the current one, evenly: the last stands in for the current.
        let mut earlier = lists[rng.random_range(0..lists.len() - 1)];
        if earlier == member.list_id {
            earlier = lists[lists.len() - 1];
        }
        let from = first + Days::new(rng.random_range(0..(since - first).num_days() as u64));
        batch.gp_history.push(GpListHistory {
            nin: member.nin,
            list_id: earlier,
            period: Period {
                from,
                to: Some(since),
            },
            end_reason: EndReason::ChangedGp,
        });
    }
}
