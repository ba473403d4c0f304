//! Persontjenesten end to end through its HTTP API, on SQLite and PostgreSQL: the two bundles
//! and address protection, bulk and id look-ups, search rules, the event feed with synthetic
//! changes, and the look-up log.

mod support;

use axum::http::{Method, StatusCode};
use chrono::{Days, NaiveDate};
use helsenett_core::{Fodselsnummer, NumberKind};
use helsenett_grunndata::Grunndata;
use helsenett_helseid::testing::TestClient;
use helsenett_store::{Store, testing::each_backend, with_pool};
use support::{Answer, Node, assert_problem_as, form, lookups, node, orgnr, protect, some, today};

const PUBLIC: &str = "nhn:persontjenesten/ReadNoLegalBasis";
const LEGAL: &str = "nhn:persontjenesten/ReadWithLegalBasis";

impl Node {
    /// `POST {bundle}/person/get-by-nin` with the usual headers.
    async fn get_by_nin(&self, bundle: &str, token: &str, nin: &str, query: &str) -> Answer {
        self.call(
            Method::POST,
            format!("/persontjenesten/api/{bundle}/person/get-by-nin?{query}"),
            Some(token),
            &[("api-version", "2"), ("nhn-purpose", "treatment")],
            Some(form(&[("nin", nin)])),
        )
        .await
    }
}

/// Persontjenesten's problems are `application/json`, as NHN's contract gives them.
fn assert_problem(a: &Answer, status: StatusCode, needle: &str) {
    assert_problem_as(a, status, needle, "application/json");
}

const ALL_PUBLIC: &str = "informationParts=Name&informationParts=NorwegianIdentificationNumber\
    &informationParts=ResidentialAddress&informationParts=AddressProtection&informationParts=Status\
    &informationParts=Birth&informationParts=Gender&informationParts=Death";

/// Tokens of a public-bundle client and of a legal-basis client.
async fn tokens(n: &Node, store: &Store) -> (String, String) {
    let public = TestClient::register(store, "public", orgnr(900), &[PUBLIC])
        .await
        .token(&n.helseid, PUBLIC)
        .await;
    let legal = TestClient::register(store, "legal", orgnr(910), &[LEGAL])
        .await
        .token(&n.helseid, LEGAL)
        .await;
    (public, legal)
}

#[tokio::test]
async fn look_ups_follow_the_bundles_and_address_protection() {
    each_backend(|db| async move {
        let n = node(&db.store).await;
        let (public, legal) = tokens(&n, &db.store).await;

        // An ordinary person: the public bundle sees the address, and the look-up is logged.
        let plain = some(
            &db.store,
            "address_protection = 'Unclassified' AND mother_nin IS NOT NULL",
        )
        .await;
        let a = n
            .get_by_nin("no-legal-basis", &public, &plain, ALL_PUBLIC)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(
            a.body["norwegianIdentificationNumber"][0]["identificationNumber"],
            plain
        );
        assert_eq!(a.body["residentialAddress"][0]["isValid"], true);
        assert!(a.body["residentialAddress"][0]["streetAddress"]["addressName"].is_string());
        assert_eq!(
            a.body["addressProtection"][0]["protectionLevel"],
            "Unclassified"
        );
        assert_eq!(a.body["id"].as_str().unwrap().len(), 32);
        assert!(a.body.get("familyRelation").is_none());
        assert_eq!(
            lookups(&n, &db.store, &plain).await,
            vec![(
                "get-by-nin".into(),
                "no-legal-basis".into(),
                "none (public information)".into(),
                "treatment".into(),
                true,
                "public".into()
            )]
        );

        // Family relations need legal basis; the public bundle is refused, not silently trimmed.
        let family = format!("{ALL_PUBLIC}&informationParts=FamilyRelation");
        let refused = n
            .get_by_nin("no-legal-basis", &public, &plain, &family)
            .await;
        assert_problem(&refused, StatusCode::FORBIDDEN, "FamilyRelation");
        let a = n.get_by_nin("legal-basis", &legal, &plain, &family).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let roles: Vec<&str> = a.body["familyRelation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["relatedPersonsRole"].as_str().unwrap())
            .collect();
        assert!(roles.contains(&"Mother"), "{roles:?}");

        // The legal-basis route needs its own scope and a stated purpose.
        let wrong = n
            .get_by_nin("legal-basis", &public, &plain, ALL_PUBLIC)
            .await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.text);
        let no_purpose = n
            .call(
                Method::POST,
                format!("/persontjenesten/api/legal-basis/person/get-by-nin?{ALL_PUBLIC}"),
                Some(&legal),
                &[("api-version", "2")],
                Some(form(&[("nin", &plain)])),
            )
            .await;
        assert_problem(&no_purpose, StatusCode::BAD_REQUEST, "nhn-purpose");
        let anonymous = n
            .call(
                Method::POST,
                format!("/persontjenesten/api/no-legal-basis/person/get-by-nin?{ALL_PUBLIC}"),
                None,
                &[("api-version", "2")],
                Some(form(&[("nin", &plain)])),
            )
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

        // Confidential: hidden from the public bundle, shown with legal basis. Strictly
        // confidential: hidden from everyone. The protection level itself is shown.
        let confidential = some(
            &db.store,
            &format!("address_protection = 'Unclassified' AND nin > '{plain}'"),
        )
        .await;
        let strict = some(
            &db.store,
            &format!("address_protection = 'Unclassified' AND nin > '{confidential}'"),
        )
        .await;
        protect(&db.store, &confidential, "Confidential").await;
        protect(&db.store, &strict, "StrictlyConfidential").await;
        assert_eq!(n.grunndata.follow().await.unwrap(), 2);
        let a = n
            .get_by_nin("no-legal-basis", &public, &confidential, ALL_PUBLIC)
            .await;
        assert!(a.body.get("residentialAddress").is_none(), "{}", a.text);
        assert_eq!(
            a.body["addressProtection"][0]["protectionLevel"],
            "Confidential"
        );
        let a = n
            .get_by_nin("legal-basis", &legal, &confidential, ALL_PUBLIC)
            .await;
        assert_eq!(
            a.body["residentialAddress"][0]["addressConfidentiality"], "Confidential",
            "{}",
            a.text
        );
        for (bundle, token) in [("no-legal-basis", &public), ("legal-basis", &legal)] {
            let a = n.get_by_nin(bundle, token, &strict, ALL_PUBLIC).await;
            assert_eq!(a.status, StatusCode::OK);
            assert!(
                a.body.get("residentialAddress").is_none(),
                "{bundle}: {}",
                a.text
            );
        }

        // Bad input: specific errors that never repeat the number asked for.
        let mut bad = plain.clone().into_bytes();
        bad[10] = if bad[10] == b'9' { b'0' } else { bad[10] + 1 };
        let bad = String::from_utf8(bad).unwrap();
        let a = n
            .get_by_nin("no-legal-basis", &public, &bad, ALL_PUBLIC)
            .await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "nin");
        assert!(
            !a.text.contains(&bad) && !a.text.contains(&plain[..6]),
            "{}",
            a.text
        );
        // Nobody is born in 2039 yet.
        let unknown = (500..)
            .find_map(|i| {
                Fodselsnummer::new(
                    NaiveDate::from_ymd_opt(2039, 6, 1).unwrap(),
                    i,
                    NumberKind::Fodselsnummer,
                    true,
                )
            })
            .unwrap()
            .to_string();
        let a = n
            .get_by_nin("no-legal-basis", &public, &unknown, ALL_PUBLIC)
            .await;
        assert_problem(&a, StatusCode::NOT_FOUND, "no person");
        assert!(!a.text.contains(&unknown));
        assert!(
            !lookups(&n, &db.store, &unknown).await[0].4,
            "a miss is logged too"
        );
        let a = n.get_by_nin("no-legal-basis", &public, &plain, "").await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "informationParts");
        let a = n
            .get_by_nin(
                "no-legal-basis",
                &public,
                &plain,
                "informationParts=Shoesize",
            )
            .await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "not an information part");
        let a = n
            .call(
                Method::POST,
                format!("/persontjenesten/api/no-legal-basis/person/get-by-nin?{ALL_PUBLIC}"),
                Some(&public),
                &[],
                Some(form(&[("nin", &plain)])),
            )
            .await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "api-version");

        // Bulk and by id: found persons only, each number checked, at most 100.
        let post = |path: &str, pairs: Vec<(&str, String)>| {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let body = form(&pairs);
            n.call(
                Method::POST,
                format!("/persontjenesten/api/no-legal-basis/person/{path}?{ALL_PUBLIC}"),
                Some(&public),
                &[("api-version", "2")],
                Some(body),
            )
        };
        let a = post(
            "bulk-by-nin",
            vec![
                ("nins", plain.clone()),
                ("nins", unknown.clone()),
                ("nins", confidential.clone()),
            ],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body.as_array().unwrap().len(), 2);
        let many: Vec<(&str, String)> = (0..101).map(|_| ("nins", plain.clone())).collect();
        assert_eq!(
            post("bulk-by-nin", many).await.status,
            StatusCode::OK,
            "duplicates count once"
        );
        let a = post(
            "bulk-by-nin",
            vec![("nins", plain.clone()), ("nins", bad.clone())],
        )
        .await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "nins[1]");
        let id = n
            .get_by_nin("no-legal-basis", &public, &plain, ALL_PUBLIC)
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = n
            .call(
                Method::GET,
                format!("/persontjenesten/api/no-legal-basis/person/{id}?{ALL_PUBLIC}"),
                Some(&public),
                &[("api-version", "2")],
                None,
            )
            .await;
        assert_eq!(
            a.body["norwegianIdentificationNumber"][0]["identificationNumber"], plain,
            "{}",
            a.text
        );
        let a = n
            .call(
                Method::GET,
                format!("/persontjenesten/api/no-legal-basis/person/{plain}?{ALL_PUBLIC}"),
                Some(&public),
                &[("api-version", "2")],
                None,
            )
            .await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "not a person id");
        let a = n
            .call(
                Method::GET,
                format!(
                    "/persontjenesten/api/no-legal-basis/person/{}?{ALL_PUBLIC}",
                    "0".repeat(32)
                ),
                Some(&public),
                &[("api-version", "2")],
                None,
            )
            .await;
        assert_problem(&a, StatusCode::NOT_FOUND, "no person");
        let a = post(
            "bulk-by-id",
            vec![("personIds", id.clone()), ("personIds", "f".repeat(32))],
        )
        .await;
        assert_eq!(a.body.as_array().unwrap().len(), 1, "{}", a.text);
    })
    .await;
}

#[tokio::test]
async fn search_needs_enough_criteria_and_never_reveals_a_protected_address() {
    each_backend(|db| async move {
        let n = node(&db.store).await;
        let (public, legal) = tokens(&n, &db.store).await;
        let search = |bundle: &'static str, pairs: &[(&str, &str)]| {
            let token = if bundle == "legal-basis" { &legal } else { &public };
            n.call(Method::POST, format!("/persontjenesten/api/{bundle}/search/person?informationParts=Name&informationParts=NorwegianIdentificationNumber"),
                Some(token), &[("api-version", "2"), ("nhn-purpose", "administration")], Some(form(pairs)))
        };
        let nin = some(&db.store, "address_protection = 'Unclassified'").await;
        let (family, birth, street, municipality) = with_pool!(&db.store, pool => sqlx::query_as::<_, (String, String, String, String)>(
            "SELECT family_name, birth_date, street_address, municipality FROM person WHERE nin = $1")
            .bind(&nin).fetch_one(pool).await).unwrap();
        let street_name = street.rsplit_once(' ').unwrap().0.to_owned();
        let found = |a: &Answer| -> Vec<String> {
            a.body["results"].as_array().unwrap_or(&vec![]).iter()
                .map(|p| p["norwegianIdentificationNumber"][0]["identificationNumber"].as_str().unwrap().to_owned()).collect()
        };
        let a = search("no-legal-basis", &[("FamilyName", &family), ("BirthDate", &birth)]).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert!(found(&a).contains(&nin));
        let a = search("no-legal-basis", &[("FamilyName", &family.to_uppercase()), ("StreetAddress", &street_name), ("MunicipalityNumber", &municipality)]).await;
        assert!(found(&a).contains(&nin), "{}", a.text);

        // Too little to go on: refused, naming the rule.
        assert_problem(&search("no-legal-basis", &[("FamilyName", &family)]).await, StatusCode::BAD_REQUEST, "birth date");
        assert_problem(&search("no-legal-basis", &[("FamilyName", "Li"), ("BirthDate", &birth)]).await, StatusCode::BAD_REQUEST, "three letters");
        assert_problem(&search("no-legal-basis", &[("BirthDate", &birth)]).await, StatusCode::BAD_REQUEST, "name is required");
        assert_problem(&search("no-legal-basis", &[("FamilyName", "Hansen1"), ("BirthDate", &birth)]).await, StatusCode::BAD_REQUEST, "FamilyName");
        assert_problem(&search("no-legal-basis", &[("FamilyName", &family), ("BirthDate", "17. mai")]).await, StatusCode::BAD_REQUEST, "BirthDate");
        // A common name over a whole municipality is capped at a page.
        let a = search("no-legal-basis", &[("FamilyName", &family), ("MunicipalityNumber", &municipality)]).await;
        assert!(found(&a).len() <= 100);

        // Once the address is confidential, the public bundle cannot find the person by it
        // (that would reveal where they live), but still by name and birth date.
        protect(&db.store, &nin, "Confidential").await;
        n.grunndata.follow().await.unwrap();
        let by_address = [("FamilyName", family.as_str()), ("StreetAddress", street_name.as_str()), ("MunicipalityNumber", municipality.as_str())];
        assert!(!found(&search("no-legal-basis", &by_address).await).contains(&nin));
        assert!(found(&search("legal-basis", &by_address).await).contains(&nin));
        assert!(found(&search("no-legal-basis", &[("FamilyName", &family), ("BirthDate", &birth)]).await).contains(&nin));
        let logged = lookups(&n, &db.store, &nin).await;
        assert!(logged.iter().all(|l| l.0 == "search" && l.3 == "administration"), "{logged:?}");
    })
    .await;
}

#[tokio::test]
async fn the_feed_carries_synthetic_changes_that_every_node_applies() {
    each_backend(|db| async move {
        let n = node(&db.store).await;
        let client = TestClient::register(&db.store, "public", orgnr(900), &[PUBLIC, LEGAL]).await;
        let token = client.token(&n.helseid, &format!("{PUBLIC} {LEGAL}")).await;
        let feed = |query: String| {
            n.call(Method::GET, format!("/persontjenesten/api/no-legal-basis/event{query}"), Some(&token), &[("api-version", "2")], None)
        };
        assert_problem(&feed("/latest".into()).await, StatusCode::NOT_FOUND, "no events");

        let changes = helsenett_synth::events(&db.store, 120, |_| {}).await.unwrap();
        assert_eq!(changes.days, 120);
        assert_eq!(changes.first_day, Some(today() + Days::new(1)));
        assert!(changes.moves > 0 && changes.births > 0 && changes.deaths > 0, "{changes:?}");
        let total = i64::from(changes.events());
        // The dead and the emigrated left their GP's list into their GP history; newborns
        // were listed from birth.
        let store = &db.store;
        let count = |sql: &'static str| async move {
            with_pool!(store, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await).unwrap()
        };
        assert_eq!(count("SELECT COUNT(*) FROM person p WHERE p.status IN ('Deceased', 'Emigrated') AND (
            EXISTS (SELECT 1 FROM gp_list_member m WHERE m.nin = p.nin) OR NOT EXISTS (
            SELECT 1 FROM gp_list_history h WHERE h.nin = p.nin AND h.valid_to = p.deceased_date AND h.end_reason = 'deceased')
            AND NOT EXISTS (SELECT 1 FROM gp_list_history h WHERE h.nin = p.nin AND h.end_reason = 'emigrated'))").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM gp_list_history WHERE end_reason = 'deceased'").await, i64::from(changes.deaths));
        assert_eq!(count("SELECT COUNT(*) FROM gp_list_member m JOIN person p ON p.nin = m.nin
            WHERE m.since <> p.birth_date AND p.nin IN (
            SELECT nin FROM person_event WHERE event_type = 'PersonIsCreated')").await, 0);

        let latest = feed("/latest".into()).await;
        assert_eq!(latest.body["sequenceNumber"], total.to_string(), "{}", latest.text);
        let all = feed("?sequenceNumber=1".into()).await;
        let events = all.body["results"].as_array().unwrap();
        assert_eq!(events.len() as i64, total.min(1000));
        let seqs: Vec<i64> = events.iter().map(|e| e["sequenceNumber"].as_str().unwrap().parse().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1) && seqs[0] == 1);
        let moves = feed("?sequenceNumber=1&eventTypes=ChangeInResidentialAddress&eventTypes=PersonIsCreated".into()).await;
        assert!(moves.body["results"].as_array().unwrap().iter().all(|e| {
            matches!(e["eventType"].as_str(), Some("ChangeInResidentialAddress" | "PersonIsCreated"))
        }));
        for bad in ["0", "abc", "01", "-1", "1.5", "99999999999999999999"] {
            assert_problem(&feed(format!("?sequenceNumber={bad}")).await, StatusCode::BAD_REQUEST, "sequenceNumber");
        }
        assert_problem(&feed("?eventTypes=PersonIsBored".into()).await, StatusCode::BAD_REQUEST, "not an event type");

        // A node applies the feed: a mover's new address, with the old one as history.
        assert_eq!(n.grunndata.follow().await.unwrap() as i64, total);
        let mover = with_pool!(&db.store, pool => sqlx::query_as::<_, (String, String)>(
            "SELECT e.nin, p.street_address FROM person_event e JOIN person p ON p.nin = e.nin \
             WHERE e.event_type = 'ChangeInResidentialAddress' AND p.address_protection = 'Unclassified' \
             AND p.status = 'Resident' ORDER BY e.seq DESC LIMIT 1").fetch_one(pool).await).unwrap();
        let a = n.get_by_nin("no-legal-basis", &token, &mover.0, "informationParts=ResidentialAddress&includeHistory=true").await;
        let addresses = a.body["residentialAddress"].as_array().unwrap();
        assert!(addresses.len() >= 2, "{}", a.text);
        assert_eq!(addresses[0]["isValid"], true);
        assert!(mover.1.starts_with(addresses[0]["streetAddress"]["addressName"].as_str().unwrap()));
        assert_eq!(addresses[1]["isValid"], false);
        // A newborn is in the register with its mother, and on a GP's list.
        let baby = with_pool!(&db.store, pool => sqlx::query_scalar::<_, String>(
            "SELECT nin FROM person_event WHERE event_type = 'PersonIsCreated' LIMIT 1").fetch_one(pool).await).unwrap();
        let a = n.get_by_nin("legal-basis", &token, &baby, "informationParts=FamilyRelation&informationParts=Birth").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert!(a.body["familyRelation"].as_array().unwrap().iter().any(|r| r["relatedPersonsRole"] == "Mother"));
        let listed: i64 = with_pool!(&db.store, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM gp_list_member WHERE nin = $1").bind(&baby).fetch_one(pool).await).unwrap();
        assert_eq!(listed, 1);

        // A second run continues the feed where the first ended; a fresh node loads it all.
        let more = helsenett_synth::events(&db.store, 10, |_| {}).await.unwrap();
        assert_eq!(more.first_day, Some(today() + Days::new(121)));
        let fresh = Grunndata::start(db.store.clone(), n.helseid.guard()).await.unwrap();
        let (a, b) = (
            n.grunndata.population().read(|p| p.len()) + more.births as usize,
            fresh.population().read(|p| p.len()),
        );
        assert_eq!(a, b);
        assert_eq!(fresh.population().read(|p| p.seq()), total + i64::from(more.events()));
    })
    .await;
}

#[tokio::test]
async fn no_data_is_returned_while_the_look_up_log_cannot_be_written() {
    each_backend(|db| async move {
        let n = node(&db.store).await;
        let public = TestClient::register(&db.store, "public", orgnr(900), &[PUBLIC])
            .await
            .token(&n.helseid, PUBLIC)
            .await;
        let nin = some(&db.store, "address_protection = 'Unclassified'").await;
        let rename = |from: &'static str, to: &'static str| {
            let store = db.store.clone();
            async move {
                let sql = format!("ALTER TABLE {from} RENAME TO {to}");
                with_pool!(&store, pool => sqlx::query(&sql).execute(pool).await.map(|_| ()))
                    .unwrap();
            }
        };
        rename("person_lookup", "person_lookup_away").await;
        // The first look-up is queued and answered; once its write has failed, look-ups are
        // refused rather than answered unlogged.
        let first = n
            .get_by_nin("no-legal-basis", &public, &nin, ALL_PUBLIC)
            .await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        let mut refused = None;
        for _ in 0..100 {
            let a = n
                .get_by_nin("no-legal-basis", &public, &nin, ALL_PUBLIC)
                .await;
            if a.status != StatusCode::OK {
                refused = Some(a);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let refused = refused.expect("look-ups were answered while the log failed");
        assert_problem(
            &refused,
            StatusCode::SERVICE_UNAVAILABLE,
            "no data is returned",
        );
        assert!(!refused.text.contains(&nin));
        // Once the table is back, the queued rows are written (none dropped) and look-ups
        // are answered again.
        rename("person_lookup_away", "person_lookup").await;
        n.grunndata.flush_log().await.unwrap();
        let logged = lookups(&n, &db.store, &nin).await;
        assert!(
            !logged.is_empty(),
            "the look-up answered before the failure was lost"
        );
        let again = n
            .get_by_nin("no-legal-basis", &public, &nin, ALL_PUBLIC)
            .await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        assert_eq!(lookups(&n, &db.store, &nin).await.len(), logged.len() + 1);
    })
    .await;
}
