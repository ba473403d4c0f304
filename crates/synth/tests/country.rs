//! The synthetic country's promises, checked on both backends.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use chrono::NaiveDate;
use helsenett_core::{Fodselsnummer, HprNummer, Organisasjonsnummer};
use helsenett_store::{
    Store, hpr::Speciality, kjernejournal::Section, testing::each_backend, with_pool,
};
use helsenett_synth::{Options, Plan, SynthError, generate};
use indicatif::ProgressBar;
use openssl::{
    pkey::PKey,
    stack::Stack,
    x509::{X509, X509StoreContext, store::X509StoreBuilder},
};

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

fn plan() -> Plan {
    Plan::custom("test", &["Hammerfest", "Ålesund", "Drammen"], 3_000, 6).unwrap()
}

async fn make(store: &Store, seed: u64, export: Option<&Path>) -> helsenett_synth::Summary {
    let options = Options {
        seed,
        as_of: as_of(),
        export: export.map(Path::to_owned),
    };
    generate(store, plan(), options, &ProgressBar::hidden())
        .await
        .unwrap()
}

async fn strings(store: &Store, sql: &str) -> Vec<String> {
    with_pool!(store, pool => sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap())
}

async fn int(store: &Store, sql: &str) -> i64 {
    with_pool!(store, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap())
}

#[tokio::test]
async fn every_person_is_on_exactly_one_gp_list_held_by_a_doctor() {
    each_backend(|db| async move {
        let store = db.store;
        let summary = make(&store, 1, None).await;
        assert!(summary.persons >= 3_000, "{summary:?}");
        assert_eq!(int(&store, "SELECT COUNT(*) FROM gp_list_member").await, summary.persons as i64);
        assert_eq!(int(&store, "SELECT COUNT(*) FROM person p JOIN gp_list_member m ON m.nin = p.nin").await, summary.persons as i64);
        let orphans = "SELECT COUNT(*) FROM gp_list l LEFT JOIN health_personnel h ON h.hpr = l.gp_hpr AND h.profession = 'LE' WHERE h.hpr IS NULL";
        assert_eq!(int(&store, orphans).await, 0, "every list belongs to a registered doctor");
        let unreachable = "SELECT COUNT(*) FROM gp_list l LEFT JOIN communication_party c ON c.hpr = l.gp_hpr AND c.kind = 'Person' \
                           AND c.orgnr = l.office_orgnr WHERE c.her_id IS NULL";
        assert_eq!(int(&store, unreachable).await, 0, "every GP is a communication party at their office");
        let elsewhere = "SELECT COUNT(*) FROM gp_list_member m JOIN gp_list l ON l.id = m.list_id JOIN person p ON p.nin = m.nin \
                         WHERE p.municipality <> l.municipality";
        assert_eq!(int(&store, elsewhere).await, 0, "people are listed with a GP of their own municipality");
        let undated = "SELECT COUNT(*) FROM gp_list_member m JOIN person p ON p.nin = m.nin \
                       WHERE m.since < p.birth_date OR m.since < '2001-06-01' OR m.since > '2026-11-22'";
        assert_eq!(int(&store, undated).await, 0, "places began after birth and the scheme, by the country's date");
        let history = "SELECT COUNT(*) FROM gp_list_history";
        assert!(int(&store, history).await * 10 > summary.persons as i64, "about one in five changed GP before");
        let mismatched = "SELECT COUNT(*) FROM gp_list_history h JOIN gp_list_member m ON m.nin = h.nin \
                          WHERE h.valid_to <> m.since OR h.valid_from >= h.valid_to OR h.list_id = m.list_id \
                          OR h.end_reason <> 'changed-gp'";
        assert_eq!(int(&store, mismatched).await, 0, "an earlier place ended the day the current one began");
    })
    .await;
}

#[tokio::test]
async fn identifiers_are_valid_synthetic_and_unique() {
    each_backend(|db| async move {
        let store = db.store;
        make(&store, 2, None).await;
        for nin in strings(&store, "SELECT nin FROM person").await {
            let parsed = Fodselsnummer::parse(&nin).unwrap();
            assert!(parsed.is_synthetic(), "{nin}");
        }
        let birth_dates = strings(&store, "SELECT nin || ' ' || birth_date FROM person").await;
        for line in birth_dates {
            let (nin, date) = line.split_once(' ').unwrap();
            assert_eq!(Fodselsnummer::parse(nin).unwrap().birth_date().to_string(), date);
        }
        for orgnr in strings(&store, "SELECT orgnr FROM organisation").await {
            assert!(Organisasjonsnummer::parse(&orgnr).unwrap().is_synthetic(), "{orgnr}");
        }
        let parties_without_org = "SELECT COUNT(*) FROM communication_party c LEFT JOIN organisation o ON o.orgnr = c.orgnr WHERE o.orgnr IS NULL";
        assert_eq!(int(&store, parties_without_org).await, 0);
        let dangling_parent = "SELECT COUNT(*) FROM communication_party c LEFT JOIN communication_party p ON p.her_id = c.parent_her_id \
                               WHERE c.parent_her_id IS NOT NULL AND p.her_id IS NULL";
        assert_eq!(int(&store, dangling_parent).await, 0);
        let personnel_not_people = "SELECT COUNT(*) FROM health_personnel h LEFT JOIN person p ON p.nin = h.nin WHERE p.nin IS NULL";
        assert_eq!(int(&store, personnel_not_people).await, 0);
        assert_eq!(int(&store, "SELECT COUNT(DISTINCT nin) FROM health_personnel").await, int(&store, "SELECT COUNT(*) FROM health_personnel").await);
    })
    .await;
}

#[tokio::test]
async fn personnel_are_authorised_in_hpr_with_few_exceptions() {
    each_backend(|db| async move {
        let store = db.store;
        let summary = make(&store, 5, None).await;
        let day = as_of();
        let numbers = with_pool!(&store, pool => sqlx::query_scalar::<_, i64>("SELECT hpr FROM health_personnel")
            .fetch_all(pool).await.unwrap());
        assert_eq!(numbers.len(), summary.health_personnel);
        let gps: HashSet<i64> = with_pool!(&store, pool => sqlx::query_scalar::<_, i64>("SELECT gp_hpr FROM gp_list")
            .fetch_all(pool).await.unwrap()).into_iter().collect();
        let (mut authorised, mut suspended, mut gp_specialists) = (0, 0, 0);
        for n in &numbers {
            let entry = store.hpr_by_number(HprNummer::new(*n as u32).unwrap()).await.unwrap().unwrap();
            assert!(!entry.approvals.is_empty(), "{n} has an approval");
            let born = entry.personnel.nin.birth_date();
            for a in &entry.approvals {
                assert_eq!(a.profession, entry.personnel.profession);
                assert!(a.period.from >= born + chrono::Months::new(12 * 24), "{n} qualified at 24 or later");
                assert!(a.period.to.is_none_or(|to| to > a.period.from));
            }
            for s in &entry.specialities {
                assert!(entry.approvals.iter().any(|a| a.period.from <= s.period.from), "{n}: a speciality follows an approval");
            }
            authorised += usize::from(entry.authorised_on(day));
            suspended += usize::from(entry.suspensions.iter().any(|s| s.period.holds_on(day)));
            gp_specialists += usize::from(gps.contains(n) && entry.specialities.iter().any(|s| s.speciality == Speciality::GeneralPractice));
        }
        // The shares are the generator's unit tests'; a country this small only shows the links.
        assert!(authorised > 0 && authorised + suspended <= numbers.len());
        assert!(gp_specialists > 0, "{} GPs, none a specialist", gps.len());
    })
    .await;
}

#[tokio::test]
async fn next_of_kin_are_people_of_the_same_country() {
    each_backend(|db| async move {
        let store = db.store;
        make(&store, 3, None).await;
        for column in ["mother_nin", "father_nin", "spouse_nin"] {
            let dangling = format!("SELECT COUNT(*) FROM person c LEFT JOIN person r ON r.nin = c.{column} WHERE c.{column} IS NOT NULL AND r.nin IS NULL");
            assert_eq!(int(&store, &dangling).await, 0, "{column}");
            let some = format!("SELECT COUNT(*) FROM person WHERE {column} IS NOT NULL");
            assert!(int(&store, &some).await > 100, "{column} is used");
        }
        let asymmetric = "SELECT COUNT(*) FROM person a JOIN person b ON b.nin = a.spouse_nin WHERE b.spouse_nin IS NULL OR b.spouse_nin <> a.nin";
        assert_eq!(int(&store, asymmetric).await, 0);
        let young_parents = "SELECT COUNT(*) FROM person c JOIN person m ON m.nin = c.mother_nin WHERE m.birth_date > c.birth_date";
        assert_eq!(int(&store, young_parents).await, 0, "mothers are older than their children");
        let d_numbers = "SELECT COUNT(*) FROM person WHERE number_kind = 'dnr'";
        assert!(int(&store, d_numbers).await > 0);
    })
    .await;
}

#[tokio::test]
async fn kjernejournal_entries_are_their_persons_and_episodes_and_documents_have_entries() {
    each_backend(|db| async move {
        let store = db.store;
        let summary = make(&store, 8, None).await;
        let entries: Vec<(String, String, String, String, String)> = with_pool!(&store, pool => sqlx::query_as(
            "SELECT id, nin, section, resource_type, resource FROM kj_entry").fetch_all(pool).await.unwrap());
        let per_person = entries.len() as f64 / summary.persons as f64;
        assert!((0.12..0.26).contains(&per_person), "{per_person} entries a person");
        for (id, nin, section, resource_type, resource) in &entries {
            assert!(Section::parse(section).unwrap().resource_types().contains(&resource_type.as_str()), "{resource_type} in {section}");
            let resource: serde_json::Value = serde_json::from_str(resource).unwrap();
            assert_eq!((&resource["resourceType"], &resource["id"]), (&(resource_type.as_str().into()), &(id.as_str().into())));
            let who = if resource["patient"].is_null() { &resource["subject"] } else { &resource["patient"] };
            assert_eq!(who["identifier"]["value"], nin.as_str(), "{resource_type} {id}");
        }
        let not_people = "SELECT COUNT(*) FROM kj_entry e LEFT JOIN person p ON p.nin = e.nin WHERE p.nin IS NULL";
        assert_eq!(int(&store, not_people).await, 0);
        let stray_episodes = "SELECT COUNT(*) FROM kj_episode x LEFT JOIN kj_entry e ON e.id = x.entry_id AND e.nin = x.nin \
                              AND e.resource_type = 'Encounter' LEFT JOIN organisation o ON o.orgnr = x.orgnr AND o.kind = 'hospital' \
                              WHERE e.id IS NULL OR o.orgnr IS NULL";
        assert_eq!(int(&store, stray_episodes).await, 0, "every episode is an encounter's, at a hospital");
        assert_eq!(int(&store, "SELECT COUNT(*) FROM kj_episode").await, int(&store, "SELECT COUNT(*) FROM kj_entry WHERE resource_type = 'Encounter'").await);
        let stray_documents = "SELECT COUNT(*) FROM kj_document d LEFT JOIN kj_entry e ON e.id = d.entry_id \
                               AND e.resource_type = 'DocumentReference' WHERE e.id IS NULL";
        assert_eq!(int(&store, stray_documents).await, 0);
        assert!(int(&store, "SELECT COUNT(*) FROM kj_document").await > 0);
        assert!(int(&store, "SELECT COUNT(*) FROM kj_episode WHERE end_at IS NULL").await > 0, "someone is in hospital now");
        assert!(int(&store, "SELECT COUNT(*) FROM kj_record WHERE watched").await > 0, "the first municipality has a watched record");
        assert!(int(&store, "SELECT COUNT(*) FROM kj_record WHERE privacy <> 'open'").await > 0, "a record restricted or reserved");
    })
    .await;
}

#[tokio::test]
async fn certificates_chain_to_the_stored_ca_and_match_their_keys() {
    each_backend(|db| async move {
        let store = db.store;
        let summary = make(&store, 4, None).await;
        assert_eq!(summary.certificates, summary.organisations * 2);
        let ca = X509::from_pem(strings(&store, "SELECT certificate_pem FROM certificate_authority").await[0].as_bytes()).unwrap();
        let mut trust = X509StoreBuilder::new().unwrap();
        trust.add_cert(ca).unwrap();
        let trust = trust.build();
        let keys: HashMap<i64, String> = with_pool!(&store, pool => sqlx::query_as::<_, (i64, String)>("SELECT id, private_key_pem FROM synthetic_key").fetch_all(pool).await.unwrap()).into_iter().collect();
        assert_eq!(keys.len(), 6);
        // Each organisation's certificates are held by its own party.
        let rows: Vec<(String, Vec<u8>, i64, String)> = with_pool!(&store, pool => sqlx::query_as("SELECT p.orgnr, c.der, c.key_id, c.usage FROM certificate c \
            JOIN communication_party p ON p.her_id = c.her_id AND p.kind = 'Organization'").fetch_all(pool).await.unwrap());
        let mut usages: HashMap<String, HashSet<String>> = HashMap::new();
        for (orgnr, der, key_id, usage) in rows {
            let cert = X509::from_der(&der).unwrap();
            let mut context = X509StoreContext::new().unwrap();
            assert!(context.init(&trust, &cert, &Stack::new().unwrap(), |c| c.verify_cert()).unwrap(), "{orgnr} chains");
            let key = PKey::private_key_from_pem(keys[&key_id].as_bytes()).unwrap();
            assert!(cert.public_key().unwrap().public_eq(&key), "{orgnr} key matches");
            usages.entry(orgnr).or_default().insert(usage);
        }
        assert_eq!(usages.len(), summary.organisations);
        assert!(usages.values().all(|u| u.len() == 2), "a signing and an encryption certificate each");
    })
    .await;
}

#[tokio::test]
async fn every_party_receives_receipts_and_cpps_differ() {
    each_backend(|db| async move {
        let store = db.store;
        make(&store, 5, None).await;
        let without = "SELECT COUNT(*) FROM communication_party c WHERE NOT EXISTS \
                       (SELECT 1 FROM cpp_process p WHERE p.her_id = c.her_id AND p.message_type = 'APPREC' AND p.role = 'receiver' AND p.versions LIKE '1.0%')";
        assert_eq!(int(&store, without).await, 0);
        let dialog_versions = "SELECT COUNT(DISTINCT her_id) FROM cpp_process WHERE message_type = 'DIALOG_HELSEFAGLIG' AND versions LIKE '%1.1'";
        let dialog_parties = "SELECT COUNT(DISTINCT her_id) FROM cpp_process WHERE message_type = 'DIALOG_HELSEFAGLIG'";
        let (newest, all) = (int(&store, dialog_versions).await, int(&store, dialog_parties).await);
        assert!(0 < newest && newest < all, "some parties lack the newest version: {newest} of {all}");
        for kind in ["gp_office", "pharmacy", "nursing_home", "home_care", "municipality", "health_trust", "hospital", "laboratory"] {
            assert!(int(&store, &format!("SELECT COUNT(*) FROM organisation WHERE kind = '{kind}'")).await > 0, "{kind}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_store_with_a_country_refuses_a_second() {
    each_backend(|db| async move {
        make(&db.store, 6, None).await;
        let options = Options { seed: 7, as_of: as_of(), export: None };
        let err = generate(&db.store, plan(), options, &ProgressBar::hidden()).await.unwrap_err();
        assert!(matches!(err, SynthError::AlreadyGenerated { seed: 6, .. }), "{err}");
        assert_eq!(err.to_string(), "the store already holds a synthetic country (size test, seed 6); use an empty data dir or database");
    })
    .await;
}

#[tokio::test]
async fn the_same_seed_makes_the_same_country_byte_for_byte() {
    let run = |seed: u64| async move {
        let data = tempfile::tempdir().unwrap();
        let export = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(data.path()).await.unwrap();
        make(&store, seed, Some(export.path())).await;
        store.close().await;
        [
            "persons.jsonl",
            "organisations.jsonl",
            "communication_parties.jsonl",
        ]
        .map(|f| std::fs::read(export.path().join(f)).unwrap())
    };
    let (a, b, c) = (run(11).await, run(11).await, run(12).await);
    assert!(a.iter().all(|f| !f.is_empty()));
    assert_eq!(a, b);
    assert_ne!(a[0], c[0]);
    let lines = String::from_utf8(a[0].clone()).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(
        Fodselsnummer::parse(first["nin"].as_str().unwrap())
            .unwrap()
            .is_synthetic()
    );
}

#[tokio::test]
async fn an_interrupted_country_is_not_extended() {
    each_backend(|db| async move {
        let m = helsenett_store::records::Municipality {
            number: "0301".into(),
            name: "Oslo".into(),
            county: "Oslo".into(),
            population: 1,
        };
        db.store.insert_all(&[m]).await.unwrap();
        let options = Options {
            seed: 1,
            as_of: as_of(),
            export: None,
        };
        let err = generate(&db.store, plan(), options, &ProgressBar::hidden())
            .await
            .unwrap_err();
        assert!(matches!(err, SynthError::Incomplete), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_failed_run_reports_why_and_leaves_nothing_behind() {
    each_backend(|db| async move {
        let occupied = tempfile::NamedTempFile::new().unwrap();
        let export = Some(occupied.path().join("export"));
        let options = Options {
            seed: 1,
            as_of: as_of(),
            export,
        };
        let err = generate(&db.store, plan(), options, &ProgressBar::hidden())
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("cannot write export"), "{err}");
        assert!(
            !db.store.holds_country_data().await.unwrap(),
            "the whole run is rolled back"
        );
        make(&db.store, 1, None).await;
    })
    .await;
}
