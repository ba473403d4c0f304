//! What Kjernejournal's tests share: a node (HelseID and Kjernejournal) over a small synthetic
//! country, people to act as (a GP with a list, other health personnel, citizens), tokens from
//! HelseID's real flows, requests and their answers.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Method, Request, StatusCode, header},
};
use chrono::Utc;
use helsenett_core::Organisasjonsnummer;
use helsenett_helseid::{HelseId, Settings, testing::TestClient};
use helsenett_kjernejournal::Kjernejournal;
use helsenett_store::{Store, with_pool};
use helsenett_synth::{Options, Plan};
use serde_json::{Value, json};
use tower::ServiceExt;
use url::Url;

pub const SCOPE: &str = "nhn:kjernejournal/api";
pub const INGEST: &str = "nhn:kjernejournal/ingest";
pub const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
pub const ENH: &str = "urn:oid:2.16.578.1.12.4.1.4.101";

pub struct Node {
    pub store: Store,
    pub helseid: HelseId,
    pub kjernejournal: Kjernejournal,
    pub app: Router,
}

/// A node over a country of about `persons` people.
pub async fn node(store: &Store, persons: u32) -> Node {
    let plan = Plan::custom("test", &["Vadsø", "Bergen"], persons, 2).unwrap();
    let options = Options {
        seed: 7,
        as_of: Utc::now().date_naive(),
        export: None,
    };
    helsenett_synth::generate(store, plan, options, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let settings = Settings {
        public_url: Url::parse("https://helsenett.test").unwrap(),
        access_token_seconds: 300,
        admin_token: None,
    };
    let helseid = HelseId::start(store.clone(), settings).await.unwrap();
    let kjernejournal = Kjernejournal::start(
        store.clone(),
        helseid.guard(),
        &helsenett_core::config::KjernejournalConfig::default(),
    );
    let app = helseid.router().merge(kjernejournal.router());
    Node {
        store: store.clone(),
        helseid,
        kjernejournal,
        app,
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// Asserts an OperationOutcome error with `status` whose diagnostics contain `needle`.
    pub fn outcome(&self, status: StatusCode, needle: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type, "application/fhir+json", "{}", self.text);
        assert_eq!(
            self.body["resourceType"], "OperationOutcome",
            "{}",
            self.text
        );
        let diagnostics = self.body["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(
            diagnostics.contains(needle),
            "{needle:?} not in {diagnostics:?}"
        );
    }
}

/// A health professional or citizen signed in through an organisation's client.
pub struct User {
    pub pid: String,
    pub token: String,
}

impl Node {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(format!("/kjernejournal/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = to_bytes(response.into_body(), 1 << 26).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            content_type,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// POST /record.
    pub async fn read(&self, user: &User, patient: &str, emergency: bool) -> Answer {
        let body =
            json!({"patient": patient, "reason": "akutt innleggelse", "emergency": emergency});
        self.call(Method::POST, "/record", &user.token, Some(body))
            .await
    }

    /// A client of `orgnr` with `scopes`.
    pub async fn client(
        &self,
        id: &str,
        orgnr: Organisasjonsnummer,
        scopes: &[&str],
    ) -> TestClient {
        TestClient::register(&self.store, id, orgnr, scopes).await
    }

    /// `pid` signed in through `client`.
    pub async fn sign_in(&self, client: &TestClient, pid: &str) -> User {
        User {
            pid: pid.to_owned(),
            token: client.user_token(&self.helseid, pid, SCOPE).await,
        }
    }

    pub async fn rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        with_pool!(&self.store, pool => sqlx::query_as::<_, T>(sql).fetch_all(pool).await).unwrap()
    }

    /// A GP who is authorised today, their office and a patient on their list.
    pub async fn gp(&self) -> (String, Organisasjonsnummer, String) {
        let rows: Vec<(String, String, String)> = self
            .rows(
                "SELECT hp.nin, l.office_orgnr, m.nin FROM gp_list l
                 JOIN health_personnel hp ON hp.hpr = l.gp_hpr
                 JOIN gp_list_member m ON m.list_id = l.id
                 WHERE NOT EXISTS (SELECT 1 FROM hpr_suspension s WHERE s.hpr = hp.hpr)
                   AND EXISTS (SELECT 1 FROM hpr_approval a WHERE a.hpr = hp.hpr
                               AND a.authorisation = '1' AND a.valid_to IS NULL)
                   AND m.nin <> hp.nin
                 ORDER BY l.id, m.nin LIMIT 1",
            )
            .await;
        let (gp, office, patient) = rows.into_iter().next().expect("a GP with a patient");
        (gp, office.parse().unwrap(), patient)
    }

    /// An authorised professional who is nobody's GP.
    pub async fn professional(&self, not: &str) -> String {
        let rows: Vec<(String,)> = self
            .rows(&format!(
                "SELECT hp.nin FROM health_personnel hp
                 WHERE NOT EXISTS (SELECT 1 FROM hpr_suspension s WHERE s.hpr = hp.hpr)
                   AND EXISTS (SELECT 1 FROM hpr_approval a WHERE a.hpr = hp.hpr
                               AND a.authorisation = '1' AND a.valid_to IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM gp_list l WHERE l.gp_hpr = hp.hpr)
                   AND hp.nin <> '{not}'
                 ORDER BY hp.hpr LIMIT 1"
            ))
            .await;
        rows.into_iter().next().expect("a professional").0
    }

    /// A person who is not health personnel, other than `not`.
    pub async fn citizen(&self, not: &[&str]) -> String {
        let rows: Vec<(String,)> = self
            .rows(
                "SELECT nin FROM person WHERE nin NOT IN (SELECT nin FROM health_personnel)
                 ORDER BY nin LIMIT 20",
            )
            .await;
        rows.into_iter()
            .map(|r| r.0)
            .find(|n| !not.contains(&n.as_str()))
            .expect("a citizen")
    }

    /// An organisation of `kind` (hospital, pharmacy, ...).
    pub async fn organisation(&self, kind: &str) -> Organisasjonsnummer {
        let rows: Vec<(String,)> = self
            .rows(&format!(
                "SELECT orgnr FROM organisation WHERE kind = '{kind}' ORDER BY orgnr LIMIT 1"
            ))
            .await;
        rows[0].0.parse().unwrap()
    }

    /// The audit records about `nin`: (seq, actor, access, outcome).
    pub async fn audit_of(&self, nin: &str) -> Vec<(i64, String, String, String)> {
        self.rows(&format!(
            "SELECT seq, actor, access, outcome FROM kj_audit WHERE nin = '{nin}' ORDER BY seq"
        ))
        .await
    }
}

/// A patient reference by fødselsnummer.
pub fn patient_ref(nin: &str) -> Value {
    json!({"identifier": {"system": FNR, "value": nin}})
}

pub fn org_ref(orgnr: Organisasjonsnummer) -> Value {
    json!({"identifier": {"system": ENH, "value": orgnr.to_string()}})
}
