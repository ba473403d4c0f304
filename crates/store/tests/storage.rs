//! The storage suite: every test runs on SQLite and on PostgreSQL.

use chrono::NaiveDate;
use helsenett_core::{Fodselsnummer, HerId, HprNummer, NumberKind, Organisasjonsnummer};
use helsenett_store::{
    Backend, SQLITE_FILE, Store, StoreError, StoreTarget, records::*, testing::each_backend,
};

fn nin(day: u32, individual: u16) -> Fodselsnummer {
    let date = NaiveDate::from_ymd_opt(1980, 5, day).unwrap();
    (individual..)
        .find_map(|i| Fodselsnummer::new(date, i, NumberKind::Fodselsnummer, true))
        .unwrap()
}

fn orgnr(seq: u32) -> Organisasjonsnummer {
    (seq..).find_map(Organisasjonsnummer::synthetic).unwrap()
}

fn address() -> Address {
    Address {
        street: "Storgata 1".into(),
        postal_code: "0150".into(),
        postal_place: "OSLO".into(),
        municipality: "0301".into(),
    }
}

fn person(n: Fodselsnummer) -> Person {
    Person {
        nin: n,
        given_name: "Kari".into(),
        family_name: "Nordmann".into(),
        address: address(),
        mother: None,
        father: None,
        spouse: None,
        id: PersonId(n.to_string().parse().expect("digits")),
        status: PersonStatus::Resident,
        protection: AddressProtection::Unclassified,
        deceased: None,
        last_event: 0,
    }
}

fn oslo() -> Municipality {
    Municipality {
        number: "0301".into(),
        name: "Oslo".into(),
        county: "Oslo".into(),
        population: 717_710,
    }
}

#[tokio::test]
async fn records_read_back_as_written() {
    each_backend(|db| async move {
        let store = db.store;
        let (a, b) = (nin(1, 10), nin(2, 10));
        let mut child = person(a);
        child.mother = Some(b);
        child.given_name = "Åse Ørjan".into();
        store.insert_all(&[oslo()]).await.unwrap();
        store.insert_all(&[child.clone(), person(b)]).await.unwrap();
        assert_eq!(store.person(a).await.unwrap(), Some(child));
        assert_eq!(store.person(nin(3, 10)).await.unwrap(), None);

        let office = orgnr(100);
        let party = CommunicationParty {
            her_id: HerId::new(900_000_001).unwrap(),
            kind: PartyKind::Person,
            name: "Lege Kari Nordmann".into(),
            orgnr: office,
            parent: Some(HerId::new(900_000_000).unwrap()),
            hpr: Some(HprNummer::new(900_000_001).unwrap()),
            municipality: "0301".into(),
            active: true,
            valid_from: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
            valid_to: Some(NaiveDate::from_ymd_opt(2030, 12, 31).unwrap()),
        };
        store
            .insert_all(std::slice::from_ref(&party))
            .await
            .unwrap();
        assert_eq!(
            store.communication_party(party.her_id).await.unwrap(),
            Some(party.clone())
        );
        assert_eq!(
            store.parties_of_kind(PartyKind::Person, 10).await.unwrap(),
            vec![party.clone()]
        );
        assert!(
            store
                .parties_of_kind(PartyKind::Service, 10)
                .await
                .unwrap()
                .is_empty()
        );

        store
            .insert_all(&[CppProcess {
                her_id: party.her_id,
                message_type: "DIALOG_HELSEFAGLIG".into(),
                role: ProcessRole::Receiver,
                versions: "1.0 1.1".into(),
                receipts: "1.0".into(),
                replies: "DIALOG_HELSEFAGLIG".into(),
            }])
            .await
            .unwrap();
        assert_eq!(store.count::<CppProcess>().await.unwrap(), 1);
        store
            .insert_all(&[SyntheticKey {
                id: 1,
                private_key_pem: "PEM".into(),
            }])
            .await
            .unwrap();
        let cert = Certificate {
            fingerprint: "ab".repeat(32),
            her_id: party.her_id,
            usage: CertificateUsage::Encryption,
            serial: "01".into(),
            issuer: "CN=ca".into(),
            subject: "CN=x".into(),
            not_before: 1,
            not_after: 2,
            der: vec![0x30, 0x00, 0xff],
            added_at: 1,
            revoked_at: None,
            key_id: Some(1),
        };
        store.insert_all(std::slice::from_ref(&cert)).await.unwrap();
        assert_eq!(store.count::<Certificate>().await.unwrap(), 1);

        let list = GpList {
            id: 7,
            gp: HprNummer::new(900_000_001).unwrap(),
            office,
            municipality: "0301".into(),
            capacity: 1200,
        };
        store.insert_all(std::slice::from_ref(&list)).await.unwrap();
        let since = NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
        store
            .insert_all(&[GpListMember {
                nin: a,
                list_id: 7,
                since,
            }])
            .await
            .unwrap();
        let places = store.gp_places(a).await.unwrap();
        assert_eq!(places.len(), 1);
        assert_eq!(
            (
                places[0].list_id,
                places[0].period.from,
                places[0].period.to
            ),
            (7, since, None)
        );
        assert!(store.gp_places(b).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_failed_batch_leaves_nothing_behind() {
    each_backend(|db| async move {
        let store = db.store;
        store.insert_all(&[oslo()]).await.unwrap();
        let fresh = person(nin(4, 10));
        let duplicate = person(nin(5, 10));
        store
            .insert_all(std::slice::from_ref(&duplicate))
            .await
            .unwrap();
        let err = store
            .insert_all(&[fresh.clone(), duplicate])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Query(_)), "{err}");
        assert_eq!(
            store.person(fresh.nin).await.unwrap(),
            None,
            "the batch must be all or nothing"
        );
        assert_eq!(store.count::<Person>().await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn batches_larger_than_one_statement_are_written_whole() {
    each_backend(|db| async move {
        let store = db.store;
        store.insert_all(&[oslo()]).await.unwrap();
        // 13 columns: 5,000 rows need three statements under the parameter limit.
        let people: Vec<Person> = (1..=28)
            .flat_map(|day| {
                (0..500u16).filter_map(move |i| {
                    Fodselsnummer::new(
                        NaiveDate::from_ymd_opt(1990, 1, day).unwrap(),
                        i,
                        NumberKind::DNummer,
                        true,
                    )
                })
            })
            .take(5_000)
            .map(person)
            .collect();
        assert_eq!(people.len(), 5_000);
        store.insert_all(&people).await.unwrap();
        assert_eq!(store.count::<Person>().await.unwrap(), 5_000);
        assert_eq!(
            store.person(people[4_999].nin).await.unwrap().unwrap(),
            people[4_999]
        );
    })
    .await;
}

#[tokio::test]
async fn every_person_is_read_back_in_number_order() {
    each_backend(|db| async move {
        let store = db.store;
        store.insert_all(&[oslo()]).await.unwrap();
        // More than one chunk of the SQLite read, with and without the optional columns.
        let mut people: Vec<Person> = (1..=28)
            .flat_map(|day| {
                (0..999u16).filter_map(move |i| {
                    Fodselsnummer::new(
                        NaiveDate::from_ymd_opt(1970, 3, day).unwrap(),
                        i,
                        NumberKind::Fodselsnummer,
                        true,
                    )
                })
            })
            .take(23_456)
            .map(person)
            .collect();
        for (i, p) in people.iter_mut().enumerate() {
            if i % 3 == 0 {
                p.mother = Some(nin(1, 1));
                p.deceased = NaiveDate::from_ymd_opt(2020, 1, 1);
                p.status = PersonStatus::Deceased;
                p.protection = AddressProtection::StrictlyConfidential;
                p.last_event = i as i64;
            }
        }
        store.insert_all(&people).await.unwrap();
        assert_eq!(store.person_count().await.unwrap(), people.len());
        let mut read = Vec::new();
        store.for_each_person(|p| read.push(p)).await.unwrap();
        people.sort_by_key(|p| p.nin);
        assert_eq!(read.len(), people.len());
        assert!(read == people, "the read differs from what was written");
    })
    .await;
}

#[tokio::test]
async fn two_nodes_share_one_database() {
    each_backend(|db| async move {
        let other = db.open_another().await;
        db.store.insert_all(&[oslo()]).await.unwrap();
        assert_eq!(other.count::<Municipality>().await.unwrap(), 1);
        let info = CountryInfo {
            size: "small".into(),
            seed: u64::MAX,
            as_of: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            generator_version: "test".into(),
            generated_at: 1,
        };
        other.insert_all(std::slice::from_ref(&info)).await.unwrap();
        assert_eq!(db.store.country_info().await.unwrap(), Some(info));
        assert!(db.store.holds_country_data().await.unwrap());
        other.close().await;
    })
    .await;
}

#[tokio::test]
async fn an_empty_store_is_ready_and_holds_no_country() {
    each_backend(|db| async move {
        db.store.ping().await.unwrap();
        assert_eq!(db.store.country_info().await.unwrap(), None);
        assert!(!db.store.holds_country_data().await.unwrap());
        assert_eq!(
            db.store.backend(),
            if db.data_dir().is_some() {
                Backend::Sqlite
            } else {
                Backend::Postgres
            }
        );
    })
    .await;
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_migrate_twice() {
    each_backend(|db| async move {
        db.store.insert_all(&[oslo()]).await.unwrap();
        let again = db.open_another().await;
        assert_eq!(again.count::<Municipality>().await.unwrap(), 1);
        let applied: i64 = helsenett_store::with_pool!(&again, pool => sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(pool).await.unwrap());
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .count();
        assert_eq!(applied as usize, files, "each migration applied once");
        again.close().await;
    })
    .await;
}

#[tokio::test]
async fn unreachable_postgres_is_named_without_the_password() {
    let target = StoreTarget::Postgres("postgres://helsenett:secret@127.0.0.1:1/helsenett".into());
    let err = Store::open(&target).await.unwrap_err().to_string();
    assert!(
        err.starts_with("cannot open PostgreSQL at 127.0.0.1:1/helsenett: "),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_written_is_named() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let dir = file.path().join("data");
    let err = Store::open(&StoreTarget::DataDir(dir.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("data dir {} is not usable: ", dir.display())),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_database_url_is_a_clear_error() {
    let err = Store::open(&StoreTarget::Postgres("postgres://[::1".into()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("database URL is not valid"), "{err}");
}

#[tokio::test]
async fn a_writer_shows_nothing_until_it_commits_and_nothing_if_dropped() {
    each_backend(|db| async move {
        let store = db.store;
        let (a, b) = (person(nin(6, 10)), person(nin(7, 10)));

        let mut abandoned = store.writer().await.unwrap();
        abandoned.insert_all(&[oslo()]).await.unwrap();
        abandoned
            .insert_all(std::slice::from_ref(&a))
            .await
            .unwrap();
        drop(abandoned);
        assert!(!store.holds_country_data().await.unwrap());

        let mut writer = store.writer().await.unwrap();
        writer.insert_all(&[oslo()]).await.unwrap();
        // Prepared elsewhere, as the synthetic country does on a helper thread.
        let prepared =
            helsenett_store::Prepared::new(store.backend(), &[a.clone(), b.clone()]).unwrap();
        writer.insert_prepared(prepared).await.unwrap();
        writer.commit().await.unwrap();
        assert_eq!(store.person(b.nin).await.unwrap(), Some(b));
        assert_eq!(store.count::<Person>().await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_bulk_load_builds_back_the_indexes_it_dropped_as_migrated() {
    each_backend(|db| async move {
        let store = db.store;
        let indexes = || async {
            let sql = match store.backend() {
                Backend::Sqlite => "SELECT name || ': ' || sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
                Backend::Postgres => "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname",
            };
            helsenett_store::with_pool!(&store, pool => sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap())
        };
        let migrated = indexes().await;
        let mut writer = store.writer().await.unwrap();
        writer.drop_bulk_indexes().await.unwrap();
        writer.build_bulk_indexes().await.unwrap();
        writer.commit().await.unwrap();
        assert_eq!(indexes().await, migrated);
        assert!(migrated.iter().any(|i| i.starts_with("kj_entry_by_nin: ")), "{migrated:?}");
    })
    .await;
}

#[tokio::test]
async fn a_new_sqlite_store_appears_only_when_its_load_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    // What a crashed load leaves behind is replaced, not continued.
    std::fs::write(dir.path().join("helsenett.db.loading"), "torn").unwrap();
    let target = StoreTarget::DataDir(dir.path().to_owned());
    let load = Store::open_for_load(&target).await.unwrap();
    load.store.insert_all(&[oslo()]).await.unwrap();
    assert!(
        !dir.path().join(SQLITE_FILE).exists(),
        "not in place before it is finished"
    );
    load.finish().await.unwrap();
    assert!(!dir.path().join("helsenett.db.loading").exists());

    let store = Store::open(&target).await.unwrap();
    assert!(store.holds_country_data().await.unwrap());
    store.close().await;
    // Loading into a store that exists works in place.
    let load = Store::open_for_load(&target).await.unwrap();
    assert!(load.store.holds_country_data().await.unwrap());
    load.finish().await.unwrap();
}
