//! Helsepersonellregisteret through its HTTP API, on SQLite and PostgreSQL: a professional by
//! HPR number and by fødselsnummer, where each approval stands today, bad input, and the
//! look-up log.

mod support;

use axum::http::{Method, StatusCode};
use chrono::Days;
use helsenett_helseid::testing::TestClient;
use helsenett_store::{Store, testing::each_backend, with_pool};
use support::{Answer, Node, assert_problem, lookups, node, orgnr, some, today};

const READ: &str = "nhn:hpr/read";

impl Node {
    async fn by_number(&self, token: &str, number: &str) -> Answer {
        self.call(
            Method::GET,
            format!("/hpr/api/v1/personnel/{number}"),
            Some(token),
            &[],
            None,
        )
        .await
    }

    async fn by_nin(&self, token: &str, body: &str) -> Answer {
        self.call(
            Method::POST,
            "/hpr/api/v1/personnel/get-by-nin".into(),
            Some(token),
            &[("nhn-purpose", "administration")],
            Some(("application/json", body.to_owned())),
        )
        .await
    }
}

/// Runs `sql` with `$1` the HPR number and `$2`, if any, a date.
async fn exec(store: &Store, sql: &str, hpr: i64, date: Option<&str>) {
    with_pool!(store, pool => {
        let mut query = sqlx::query(sql).bind(hpr);
        if let Some(date) = date {
            query = query.bind(date);
        }
        query.execute(pool).await.unwrap();
    });
}

#[tokio::test]
async fn professionals_by_number_and_by_nin_with_todays_status_and_every_look_up_logged() {
    each_backend(|db| async move {
        let store = &db.store;
        let n = node(store).await;
        let token = TestClient::register(store, "hpr-reader", orgnr(920), &[READ])
            .await
            .token(&n.helseid, READ)
            .await;
        let (hpr, nin): (i64, String) = with_pool!(store, pool => sqlx::query_as(
            "SELECT h.hpr, h.nin FROM health_personnel h JOIN gp_list l ON l.gp_hpr = h.hpr
             WHERE NOT EXISTS (SELECT 1 FROM hpr_suspension s WHERE s.hpr = h.hpr)
               AND NOT EXISTS (SELECT 1 FROM hpr_approval a WHERE a.hpr = h.hpr AND a.valid_to IS NOT NULL)
             ORDER BY h.hpr LIMIT 1",
        ).fetch_one(pool).await).unwrap();
        let number = hpr.to_string();

        let a = n.by_number(&token, &number).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["hprNumber"], hpr);
        assert!(a.body.get("nin").is_none(), "an HPR number does not unlock the person's number");
        assert_eq!(a.body["authorised"], true, "{}", a.text);
        let approval = &a.body["approvals"][0];
        assert_eq!(approval["profession"]["system"], "urn:oid:2.16.578.1.12.4.1.1.9060");
        assert_eq!(approval["profession"]["code"], "LE");
        assert_eq!(approval["profession"]["display"], "Lege");
        assert_eq!(approval["authorisation"]["system"], "urn:oid:2.16.578.1.12.4.1.1.7704");
        assert_eq!(approval["status"], "active");

        // An old licence that ran out, a speciality, and a suspension from yesterday.
        let yesterday = (today() - Days::new(1)).to_string();
        exec(store, "INSERT INTO hpr_approval (hpr, profession, authorisation, valid_from, valid_to)
                     VALUES ($1, 'LE', '4', '2001-01-01', '2002-01-01')", hpr, None).await;
        exec(store, "DELETE FROM hpr_speciality WHERE hpr = $1", hpr, None).await;
        exec(store, "INSERT INTO hpr_speciality (hpr, profession, speciality, valid_from)
                     VALUES ($1, 'LE', '1', '2015-03-01')", hpr, None).await;
        exec(store, "INSERT INTO hpr_suspension (hpr, profession, valid_from) VALUES ($1, 'LE', $2)",
             hpr, Some(&yesterday)).await;
        let a = n.by_nin(&token, &format!("{{\"nin\": \"{nin}\"}}")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["hprNumber"], hpr);
        assert_eq!(a.body["nin"], nin);
        assert_eq!(a.body["authorised"], false, "suspended: {}", a.text);
        let approvals = a.body["approvals"].as_array().unwrap();
        assert_eq!(approvals[0]["authorisation"]["code"], "4");
        assert_eq!(approvals[0]["authorisation"]["display"], "Lisens");
        assert_eq!(approvals[0]["status"], "ended");
        assert!(approvals[1..].iter().all(|a| a["status"] == "suspended"), "{}", a.text);
        assert_eq!(a.body["specialities"][0]["speciality"]["code"], "1");
        assert_eq!(a.body["specialities"][0]["speciality"]["display"], "Allmennmedisin");
        assert_eq!(a.body["suspensions"][0]["validFrom"], yesterday);
        assert_eq!(a.body["suspensions"][0]["inForce"], true);

        // A person who is not health personnel, by number: not found, and still logged.
        let citizen = some(store, "nin NOT IN (SELECT nin FROM health_personnel)").await;
        let a = n.by_nin(&token, &format!("{{\"nin\": \"{citizen}\"}}")).await;
        assert_problem(&a, StatusCode::NOT_FOUND, "no health personnel");
        assert!(!a.text.contains(&citizen));

        let logged = lookups(&n, store, &nin).await;
        let rows: Vec<_> = logged.iter().map(|(op, bundle, basis, purpose, found, client)|
            (op.as_str(), bundle.as_str(), basis.as_str(), purpose.as_str(), *found, client.as_str())).collect();
        assert_eq!(rows, [
            ("hpr-get-by-hpr", "hpr", READ, "not-stated", true, "hpr-reader"),
            ("hpr-get-by-nin", "hpr", READ, "administration", true, "hpr-reader"),
        ]);
        let logged = lookups(&n, store, &citizen).await;
        assert_eq!(logged.len(), 1);
        assert_eq!((logged[0].0.as_str(), logged[0].4), ("hpr-get-by-nin", false));

        // Bad input: the rule, never the value.
        let bad_checksum = format!("{}{}", &nin[..10], (nin.as_bytes()[10] - b'0' + 1) % 10);
        let a = n.by_nin(&token, &format!("{{\"nin\": \"{bad_checksum}\"}}")).await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "nin");
        assert!(!a.text.contains(&bad_checksum));
        for body in ["", "{\"nin\": 12345678901}", "{\"fnr\": \"x\"}", "[1]"] {
            let a = n.by_nin(&token, body).await;
            assert_problem(&a, StatusCode::BAD_REQUEST, "body");
            assert!(!a.text.contains("12345678901"), "{}", a.text);
        }
        for bad in ["12ab", "0", "99999999999"] {
            assert_problem(&n.by_number(&token, bad).await, StatusCode::BAD_REQUEST, "hprNumber");
        }
        assert_problem(&n.by_number(&token, "1").await, StatusCode::NOT_FOUND, "no health personnel");
        let a = n.call(Method::GET, format!("/hpr/api/v1/personnel/{number}"), Some(&token),
                       &[("nhn-purpose", "gossip")], None).await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "nhn-purpose");

        // Scope: no token, or a token for another API.
        let a = n.call(Method::GET, format!("/hpr/api/v1/personnel/{number}"), None, &[], None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        let other = TestClient::register(store, "population-only", orgnr(930), &["nhn:persontjenesten/ReadNoLegalBasis"])
            .await
            .token(&n.helseid, "nhn:persontjenesten/ReadNoLegalBasis")
            .await;
        let a = n.by_number(&other, &number).await;
        assert!(matches!(a.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), "{}", a.text);
        assert!(!a.text.contains(&nin));
    })
    .await;
}
