//! Fastlegeregisteret through its HTTP API, on SQLite and PostgreSQL: a person's GP and GP
//! history, ConfirmGP, a list and its patients paged, a GP's lists, a municipality's lists,
//! changing GP under the list's capacity (also when many change at once), and bad input.

mod support;

use axum::http::{Method, StatusCode};
use helsenett_helseid::testing::TestClient;
use helsenett_store::{Store, testing::each_backend, with_pool};
use serde_json::{Value, json};
use support::{Answer, Node, assert_problem, lookups, node, orgnr};

const READ: &str = "nhn:fastlegeregisteret/read";
const WRITE: &str = "nhn:fastlegeregisteret/write";

impl Node {
    async fn get(&self, token: &str, path: &str) -> Answer {
        let path = format!("/fastlegeregisteret/api/v1{path}");
        self.call(
            Method::GET,
            path,
            Some(token),
            &[("nhn-purpose", "treatment")],
            None,
        )
        .await
    }

    async fn post(&self, token: &str, path: &str, body: &Value) -> Answer {
        let path = format!("/fastlegeregisteret/api/v1{path}");
        let body = Some(("application/json", body.to_string()));
        self.call(
            Method::POST,
            path,
            Some(token),
            &[("nhn-purpose", "treatment")],
            body,
        )
        .await
    }
}

async fn int(store: &Store, sql: &str, id: i64) -> i64 {
    with_pool!(store, pool => sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(pool).await)
        .unwrap()
}

async fn members(store: &Store, list: i64) -> i64 {
    int(
        store,
        "SELECT COUNT(*) FROM gp_list_member WHERE list_id = $1",
        list,
    )
    .await
}

/// Sets a list's capacity to its patients plus `room`.
async fn make_room(store: &Store, list: i64, room: i64) {
    let capacity = members(store, list).await + room;
    with_pool!(store, pool => sqlx::query("UPDATE gp_list SET capacity = $1 WHERE id = $2")
        .bind(capacity).bind(list).execute(pool).await.map(drop))
    .unwrap();
}

/// The first `count` persons on `list`, in number order.
async fn on_list(store: &Store, list: i64, count: i64) -> Vec<String> {
    with_pool!(store, pool => sqlx::query_scalar::<_, String>(
        "SELECT nin FROM gp_list_member WHERE list_id = $1 ORDER BY nin LIMIT $2")
        .bind(list).bind(count).fetch_all(pool).await)
    .unwrap()
}

#[tokio::test]
async fn gp_look_ups_both_ways_and_changes_under_capacity() {
    each_backend(|db| async move {
        let store = &db.store;
        let n = node(store).await;
        let read = TestClient::register(store, "flr-reader", orgnr(940), &[READ]).await.token(&n.helseid, READ).await;
        let write = TestClient::register(store, "flr-writer", orgnr(950), &[WRITE]).await.token(&n.helseid, WRITE).await;
        // Two lists of one municipality: a person's, and a new one at the same office held by
        // another doctor (a small country has one GP per municipality).
        let (list, municipality, gp): (i64, String, i64) = with_pool!(store, pool => sqlx::query_as(
            "SELECT id, municipality, gp_hpr FROM gp_list ORDER BY id LIMIT 1",
        ).fetch_one(pool).await).unwrap();
        let other = int(store, "SELECT MAX(id) + 1 FROM gp_list WHERE id > $1", 0).await;
        let other_gp = int(store, "SELECT MIN(hpr) FROM health_personnel WHERE profession = 'LE' AND hpr <> $1", gp).await;
        with_pool!(store, pool => sqlx::query(
            "INSERT INTO gp_list (id, gp_hpr, office_orgnr, municipality, capacity)
             SELECT $1, $2, office_orgnr, municipality, 0 FROM gp_list WHERE id = $3",
        ).bind(other).bind(other_gp).bind(list).execute(pool).await.map(drop)).unwrap();
        let nin = on_list(store, list, 1).await.remove(0);

        // Who is this person's GP.
        let a = n.post(&read, "/patient/gp", &json!({"patientNin": nin})).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["patientNin"], nin);
        assert_eq!(a.body["contract"]["id"], list);
        assert_eq!(a.body["contract"]["gpHprNumber"], gp);
        assert_eq!(a.body["validTo"], Value::Null);
        let patients = members(store, list).await;
        assert_eq!(a.body["contract"]["patients"], patients);
        let capacity = a.body["contract"]["maxPatients"].as_i64().unwrap();
        assert_eq!(a.body["contract"]["placesAvailable"], (capacity - patients).max(0));

        // ConfirmGP: this list's GP, not another's, and not before the place began.
        let confirm = |hpr: i64, at: Option<&str>| {
            let mut body = json!({"patientNin": nin, "hprNumber": hpr});
            if let Some(at) = at {
                body["atDate"] = json!(at);
            }
            body
        };
        assert_eq!(n.post(&read, "/patient/confirm-gp", &confirm(gp, None)).await.body["confirmed"], true);
        assert_eq!(n.post(&read, "/patient/confirm-gp", &confirm(other_gp, None)).await.body["confirmed"], false);
        assert_eq!(n.post(&read, "/patient/confirm-gp", &confirm(gp, Some("1990-01-01"))).await.body["confirmed"], false);

        // Which persons are on this GP's list, paged; each one shown is logged.
        let a = n.get(&read, &format!("/contracts/{list}/patients?page=1&pageSize=2")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["total"], patients);
        let shown: Vec<&str> = a.body["results"].as_array().unwrap().iter().map(|p| p["patientNin"].as_str().unwrap()).collect();
        assert_eq!(shown, on_list(store, list, 2).await);
        assert!(a.body["results"][0]["familyName"].is_string());
        let logged = lookups(&n, store, shown[1]).await;
        assert_eq!(logged.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["flr-gp-patient-list"]);
        let last = (patients + 1) / 2;
        let a = n.get(&read, &format!("/contracts/{list}/patients?page={last}&pageSize=2")).await;
        assert_eq!(a.body["results"].as_array().unwrap().len() as i64, patients - 2 * (last - 1));
        let beyond = n.get(&read, &format!("/contracts/{list}/patients?page={}&pageSize=2", last + 1)).await;
        assert_eq!(beyond.body["results"], json!([]));
        for bad in ["pageSize=0", "pageSize=1001", "page=0", "page=x"] {
            let a = n.get(&read, &format!("/contracts/{list}/patients?{bad}")).await;
            assert_problem(&a, StatusCode::BAD_REQUEST, bad.split('=').next().unwrap());
        }
        assert_problem(&n.get(&read, "/contracts/999999999/patients").await, StatusCode::NOT_FOUND, "no GP list");
        assert_problem(&n.get(&read, "/contracts/abc").await, StatusCode::BAD_REQUEST, "id");

        // A GP's lists; a municipality's lists, all and with room.
        let a = n.get(&read, &format!("/gp/{gp}")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert!(a.body["contracts"].as_array().unwrap().iter().any(|c| c["id"] == list));
        let lists = with_pool!(store, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM gp_list WHERE municipality = $1")
            .bind(&municipality).fetch_one(pool).await).unwrap();
        make_room(store, other, 5).await;
        make_room(store, list, 0).await;
        let a = n.get(&read, &format!("/contracts?municipality={municipality}&pageSize=1000")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["total"], lists);
        let roomy = n.get(&read, &format!("/contracts?municipality={municipality}&withRoom=true&pageSize=1000")).await;
        let ids: Vec<i64> = roomy.body["results"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
        assert!(ids.contains(&other) && !ids.contains(&list), "{ids:?}");
        assert!(roomy.body["results"].as_array().unwrap().iter().all(|c| c["placesAvailable"].as_i64().unwrap() > 0));
        assert_problem(&n.get(&read, "/contracts").await, StatusCode::BAD_REQUEST, "municipality");
        assert_problem(&n.get(&read, "/contracts?municipality=9999").await, StatusCode::BAD_REQUEST, "municipality");

        // Changing GP: to the other list, back, and a third time within the year is refused.
        let change = |to: i64| json!({"patientNin": nin, "gpContractId": to});
        let a = n.post(&write, "/patient/change-gp", &change(other)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["contract"]["id"], other);
        assert_problem(&n.post(&write, "/patient/change-gp", &change(other)).await, StatusCode::CONFLICT, "already-on-list");
        make_room(store, list, 1).await;
        assert_eq!(n.post(&write, "/patient/change-gp", &change(list)).await.status, StatusCode::OK);
        make_room(store, other, 1).await;
        assert_problem(&n.post(&write, "/patient/change-gp", &change(other)).await, StatusCode::CONFLICT, "too-many-changes");
        let history = n.post(&read, "/patient/gp-history", &json!({"patientNin": nin})).await;
        let history = history.body.as_array().unwrap().clone();
        assert_eq!(history[0]["contract"]["id"], list);
        assert_eq!(history[0]["validTo"], Value::Null);
        assert_eq!((&history[1]["contract"]["id"], &history[1]["endReason"]), (&json!(other), &json!("changed-gp")));
        assert_eq!(history[1]["validTo"], history[0]["validFrom"]);
        assert_eq!(history[2]["contract"]["id"], list);
        // The read scope cannot write.
        assert_eq!(n.post(&read, "/patient/change-gp", &change(other)).await.status, StatusCode::FORBIDDEN);

        // A full list: refused, and nobody is moved.
        make_room(store, other, 0).await;
        let before = members(store, other).await;
        let mover = on_list(store, list, 2).await.pop().unwrap();
        let a = n.post(&write, "/patient/change-gp", &json!({"patientNin": mover, "gpContractId": other})).await;
        assert_problem(&a, StatusCode::CONFLICT, "list-full");
        assert_eq!(members(store, other).await, before);

        // Eight people at once for three places: exactly three get one.
        make_room(store, other, 3).await;
        let movers = on_list(store, list, 10).await.split_off(2);
        let tries = movers.iter().map(|m| {
            let n = &n;
            let write = &write;
            async move { n.post(write, "/patient/change-gp", &json!({"patientNin": m, "gpContractId": other})).await }
        });
        let answers = futures_util::future::join_all(tries).await;
        let ok = answers.iter().filter(|a| a.status == StatusCode::OK).count();
        let full = answers.iter().filter(|a| a.text.contains("list-full")).count();
        assert_eq!((ok, full), (3, 5), "{:?}", answers.iter().map(|a| &a.text).collect::<Vec<_>>());
        assert_eq!(members(store, other).await, before + 3);

        // Someone on no list (new in the country) gets a place.
        let newcomer = on_list(store, list, 11).await.pop().unwrap();
        with_pool!(store, pool => sqlx::query("DELETE FROM gp_list_member WHERE nin = $1")
            .bind(&newcomer).execute(pool).await.map(drop)).unwrap();
        make_room(store, list, 1).await;
        assert_eq!(n.post(&read, "/patient/gp", &json!({"patientNin": newcomer})).await.status, StatusCode::NOT_FOUND);
        let a = n.post(&write, "/patient/change-gp", &json!({"patientNin": newcomer, "gpContractId": list})).await;
        assert_eq!((a.status, &a.body["contract"]["id"]), (StatusCode::OK, &json!(list)), "{}", a.text);

        // The register is read under a legal basis: the purpose must be stated.
        let body = Some(("application/json", json!({"patientNin": nin}).to_string()));
        let a = n.call(Method::POST, "/fastlegeregisteret/api/v1/patient/gp".into(), Some(&read), &[], body).await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "nhn-purpose");

        // Bad input and unknown persons: the rule, never the number.
        let bad = format!("{}{}", &nin[..10], (nin.as_bytes()[10] - b'0' + 1) % 10);
        let a = n.post(&read, "/patient/gp", &json!({"patientNin": bad})).await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "patientNin");
        assert!(!a.text.contains(&bad));
        assert_problem(&n.post(&read, "/patient/gp", &json!({"nin": nin})).await, StatusCode::BAD_REQUEST, "patientNin");
        assert_problem(&n.post(&write, "/patient/change-gp", &json!({"patientNin": nin, "gpContractId": 424242})).await, StatusCode::NOT_FOUND, "no GP list");
        let dead: String = with_pool!(store, pool => sqlx::query_scalar(
            "SELECT nin FROM person WHERE nin NOT IN (SELECT nin FROM gp_list_member) ORDER BY nin LIMIT 1")
            .fetch_optional(pool).await).unwrap().unwrap_or_else(|| nin.clone());
        if dead != nin {
            assert_eq!(n.post(&read, "/patient/gp", &json!({"patientNin": dead})).await.status, StatusCode::NOT_FOUND);
        }
        let logged = lookups(&n, store, &nin).await;
        assert!(logged.iter().all(|l| l.1 == "fastlegeregisteret"), "{logged:?}");
        assert!(logged.iter().any(|l| l.0 == "flr-change-gp" && l.2 == WRITE && l.3 == "treatment"), "{logged:?}");
        assert!(logged.iter().any(|l| l.0 == "flr-confirm-gp"), "{logged:?}");
    })
    .await;
}
