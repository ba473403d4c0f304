//! What the base registers' API tests share: a node over a small synthetic country, requests
//! and their answers, and the look-up log.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Method, Request, StatusCode, header},
};
use chrono::{NaiveDate, Utc};
use helsenett_core::Organisasjonsnummer;
use helsenett_grunndata::Grunndata;
use helsenett_helseid::{HelseId, Settings};
use helsenett_store::{Store, with_pool};
use helsenett_synth::{Options, Plan};
use indicatif::ProgressBar;
use serde_json::Value;
use tower::ServiceExt;
use url::Url;

pub fn orgnr(seq: u32) -> Organisasjonsnummer {
    (seq..).find_map(Organisasjonsnummer::synthetic).unwrap()
}

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub struct Node {
    pub helseid: HelseId,
    pub grunndata: Grunndata,
    pub app: Router,
}

pub async fn node(store: &Store) -> Node {
    let plan = Plan::custom("test", &["Vadsø", "Bergen"], 600, 2).unwrap();
    let options = Options {
        seed: 5,
        as_of: today(),
        export: None,
    };
    helsenett_synth::generate(store, plan, options, &ProgressBar::hidden())
        .await
        .unwrap();
    let settings = Settings {
        public_url: Url::parse("https://helsenett.test").unwrap(),
        access_token_seconds: 300,
        admin_token: None,
    };
    let helseid = HelseId::start(store.clone(), settings).await.unwrap();
    let grunndata = Grunndata::start(store.clone(), helseid.guard())
        .await
        .unwrap();
    let app = helseid.router().merge(grunndata.router());
    Node {
        helseid,
        grunndata,
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

impl Node {
    pub async fn call(
        &self,
        method: Method,
        path: String,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&'static str, String)>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path.as_str());
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some((content_type, body)) => request
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .unwrap();
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
}

/// A form body.
pub fn form(pairs: &[(&str, &str)]) -> (&'static str, String) {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    ("application/x-www-form-urlencoded", form)
}

pub fn assert_problem(a: &Answer, status: StatusCode, needle: &str) {
    assert_problem_as(a, status, needle, "application/problem+json");
}

/// A problem with the media type a contract gives it (Persontjenesten's: `application/json`).
pub fn assert_problem_as(a: &Answer, status: StatusCode, needle: &str, content_type: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.content_type, content_type, "{}", a.text);
    assert!(a.text.contains(needle), "{needle:?} not in {}", a.text);
}

/// Some person's number with the properties `sql` selects (`SELECT nin FROM person WHERE ...`).
pub async fn some(store: &Store, condition: &str) -> String {
    let sql = format!("SELECT nin FROM person WHERE {condition} ORDER BY nin LIMIT 1");
    with_pool!(store, pool => sqlx::query_scalar::<_, String>(&sql).fetch_one(pool).await).unwrap()
}

pub async fn lookups(
    n: &Node,
    store: &Store,
    nin: &str,
) -> Vec<(String, String, String, String, bool, String)> {
    n.grunndata.flush_log().await.unwrap();
    with_pool!(store, pool => sqlx::query_as::<_, (String, String, String, String, bool, String)>(
        "SELECT operation, bundle, legal_basis, purpose, found, client_id FROM person_lookup \
         WHERE nin = $1 ORDER BY at",
    )
    .bind(nin)
    .fetch_all(pool)
    .await)
    .unwrap()
}

/// Gives a person an address protection through the feed, as the population register would.
pub async fn protect(store: &Store, nin: &str, level: &str) {
    let seq: i64 = with_pool!(store, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM person_event").fetch_one(pool).await)
    .unwrap();
    with_pool!(store, pool => {
        sqlx::query("UPDATE person SET address_protection = $1, last_event = $2 WHERE nin = $3")
            .bind(level).bind(seq).bind(nin).execute(pool).await.unwrap();
        sqlx::query("INSERT INTO person_event (seq, nin, event_type, effective_on, registered_at) \
                     VALUES ($1, $2, 'ChangeInAddressProtection', $3, 0)")
            .bind(seq).bind(nin).bind(today().to_string()).execute(pool).await.unwrap();
    });
}
