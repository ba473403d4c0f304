//! The audit on both backends: every read is in the patient's access log exactly once, and any
//! change to the chain behind the database's back is found by `verify`.

mod support;

use std::collections::HashMap;

use axum::http::StatusCode;
use futures_util::{StreamExt, stream};
use helsenett_kjernejournal::{Broken, verify};
use helsenett_store::{Store, testing::each_backend, with_pool};
use support::{SCOPE, node};

async fn exec(store: &Store, sql: &str) {
    with_pool!(store, pool => sqlx::raw_sql(sql).execute(pool).await.map(drop)).unwrap();
}

async fn broken(store: &Store, anchor: Option<(i64, &str)>) -> Option<Broken> {
    verify(store, anchor, |_| {}).await.unwrap().err()
}

#[tokio::test]
async fn ten_thousand_random_reads_each_appear_once_in_the_patient_s_log() {
    each_backend(|db| async move {
        let n = node(&db.store, 12_000).await;
        let (gp_pid, office, _) = n.gp().await;
        let epj = n.client("legevakt", office, &[SCOPE]).await;
        let doctor = n.sign_in(&epj, &n.professional(&gp_pid).await).await;
        let persons: Vec<(String,)> = n.rows("SELECT nin FROM person ORDER BY nin").await;
        assert!(persons.len() >= 10_000);
        // A fixed pseudo-random sequence: some people are read more than once, most not at all.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let picks: Vec<String> = (0..10_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                persons[(state % persons.len() as u64) as usize].0.clone()
            })
            .collect();
        // Many at once, as a busy emergency department would: the ledger batches them.
        // Persons who limited access are refused, and the refusal is logged like a read.
        let reads: Vec<(String, Option<i64>)> = stream::iter(picks)
            .map(|nin| {
                let (n, doctor) = (&n, &doctor);
                async move {
                    let a = n.read(doctor, &nin, true).await;
                    let seq = match a.status {
                        StatusCode::OK => Some(
                            a.body["identifier"]["value"]
                                .as_str()
                                .unwrap()
                                .parse()
                                .unwrap(),
                        ),
                        _ => {
                            a.outcome(StatusCode::FORBIDDEN, "the patient has");
                            None
                        }
                    };
                    (nin, seq)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let limited: Vec<(String,)> = n
            .rows("SELECT nin FROM kj_record WHERE privacy <> 'open'")
            .await;
        let mut expected: HashMap<String, Vec<Option<i64>>> = HashMap::new();
        for (nin, seq) in reads {
            expected.entry(nin).or_default().push(seq);
        }
        for (nin, seqs) in expected {
            let log =
                helsenett_kjernejournal::access_log(&n.store, &nin.parse().unwrap(), None, 500)
                    .await
                    .unwrap();
            assert!(log.next.is_none());
            assert_eq!(
                log.entries.len(),
                seqs.len(),
                "every read of {nin} is logged once"
            );
            let mut granted: Vec<i64> = seqs.iter().flatten().copied().collect();
            let mut logged: Vec<i64> = log
                .entries
                .iter()
                .filter(|e| e.outcome == "granted")
                .map(|e| e.seq)
                .collect();
            granted.sort_unstable();
            logged.sort_unstable();
            assert_eq!(
                logged, granted,
                "each read of {nin} is in their log exactly once"
            );
            assert!(log.entries.iter().all(|e| e.emergency));
            if granted.len() < seqs.len() {
                assert!(
                    limited.iter().any(|(l,)| *l == nin),
                    "only limited records are refused"
                );
            }
        }
        let verified = verify(&n.store, None, |_| {}).await.unwrap().unwrap();
        assert_eq!(verified.records, 10_000);
    })
    .await;
}

#[tokio::test]
async fn tampering_with_the_audit_is_refused_or_detected() {
    each_backend(|db| async move {
        let n = node(&db.store, 600).await;
        let (gp_pid, office, patient) = n.gp().await;
        let epj = n.client("gp-epj", office, &[SCOPE]).await;
        let gp = n.sign_in(&epj, &gp_pid).await;
        for _ in 0..5 {
            assert_eq!(n.read(&gp, &patient, false).await.status, StatusCode::OK);
        }
        let s = &n.store;
        let head = verify(s, None, |_| {}).await.unwrap().unwrap();
        assert_eq!((head.records, head.head_seq), (5, 5));
        let anchor = (head.head_seq, head.head_hash.as_str());

        // The database refuses changes and removals.
        let refused = with_pool!(s, pool => sqlx::query("UPDATE kj_audit SET nin = 'x' WHERE seq = 2")
            .execute(pool).await.map(drop));
        assert!(refused.unwrap_err().to_string().contains("append-only"));
        let refused = with_pool!(s, pool => sqlx::query("DELETE FROM kj_audit WHERE seq = 2")
            .execute(pool).await.map(drop));
        assert!(refused.is_err());

        // Someone with the database's keys drops the guard; the chain still tells.
        let drop_triggers = match s {
            Store::Sqlite(_) => "DROP TRIGGER kj_audit_no_update; DROP TRIGGER kj_audit_no_delete;",
            Store::Postgres(_) => "DROP TRIGGER kj_audit_no_change ON kj_audit;",
        };
        exec(s, drop_triggers).await;

        // A row moved to another patient (hidden from the citizen's log).
        exec(s, "UPDATE kj_audit SET nin = '01010112345' WHERE seq = 2").await;
        assert_eq!(broken(s, None).await, Some(Broken::Columns { seq: 2, column: "nin" }));
        exec(s, &format!("UPDATE kj_audit SET nin = '{patient}' WHERE seq = 2")).await;
        assert_eq!(broken(s, None).await, None);

        // The reason rewritten.
        exec(s, "UPDATE kj_audit SET event = REPLACE(event, 'akutt', 'rutine') WHERE seq = 3").await;
        assert_eq!(broken(s, None).await, Some(Broken::Hash { seq: 3 }));
        exec(s, "UPDATE kj_audit SET event = REPLACE(event, 'rutine', 'akutt') WHERE seq = 3").await;

        // A record removed from the middle.
        exec(s, "CREATE TABLE kept AS SELECT * FROM kj_audit WHERE seq = 3").await;
        exec(s, "DELETE FROM kj_audit WHERE seq = 3").await;
        assert_eq!(broken(s, None).await, Some(Broken::Gap { previous: 2, found: 4 }));
        exec(s, "INSERT INTO kj_audit SELECT * FROM kept").await;
        assert_eq!(broken(s, None).await, None);

        // The newest record removed: the head says otherwise.
        exec(s, "CREATE TABLE newest AS SELECT * FROM kj_audit WHERE seq = 5").await;
        exec(s, "DELETE FROM kj_audit WHERE seq = 5").await;
        assert_eq!(broken(s, None).await, Some(Broken::Head { last: 4, head: 5 }));
        // ... and with the head moved back too, only an anchor kept elsewhere tells.
        exec(s, "UPDATE kj_audit_head SET seq = 4, hash = (SELECT hash FROM kj_audit WHERE seq = 4)").await;
        assert_eq!(broken(s, None).await, None);
        assert_eq!(broken(s, Some(anchor)).await, Some(Broken::AnchorMissing { seq: 5 }));

        // The whole chain rebuilt from a changed record: consistent, but not the anchored one.
        exec(s, "INSERT INTO kj_audit SELECT * FROM newest").await;
        let rows: Vec<(i64, String)> = n.rows("SELECT seq, event FROM kj_audit ORDER BY seq").await;
        let mut previous = helsenett_kjernejournal::GENESIS.to_owned();
        let mut fifth = None;
        exec(s, "DELETE FROM kj_audit").await;
        assert_eq!(rows.len(), 5);
        for (seq, event) in &rows {
            let seq = *seq;
            let event = if seq == 2 { event.replace("akutt", "rutine") } else { event.clone() };
            let hash = helsenett_kjernejournal::link(seq, &previous, &event);
            let columns = helsenett_kjernejournal::columns(&serde_json::from_str(&event).unwrap()).unwrap();
            with_pool!(s, pool => sqlx::query(
                "INSERT INTO kj_audit (seq, recorded, nin, actor, orgnr, access, outcome, event, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .bind(seq).bind(columns.recorded).bind(&columns.nin).bind(&columns.actor)
                .bind(&columns.orgnr).bind(&columns.access).bind(&columns.outcome).bind(&event)
                .bind(&previous).bind(&hash)
                .execute(pool).await.map(drop)).unwrap();
            if seq == 5 {
                fifth = Some(hash.clone());
            }
            previous = hash;
        }
        exec(s, &format!("UPDATE kj_audit_head SET seq = 5, hash = '{previous}'")).await;
        assert_ne!(fifth.as_deref(), Some(anchor.1));
        assert_eq!(broken(s, None).await, None, "a rebuilt chain is consistent");
        assert_eq!(broken(s, Some(anchor)).await, Some(Broken::Anchor { seq: 5 }));
    })
    .await;
}
