//! The address register end to end through its HTTP API, on SQLite and PostgreSQL: look-ups,
//! CPAs, writes by members and administrators, certificate checks, and the event feed across
//! nodes and restarts.

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Method, Request, StatusCode, header},
};
use chrono::{Months, NaiveDate, Utc};
use helsenett_core::{HerId, Organisasjonsnummer};
use helsenett_helseid::{HelseId, Settings, testing::TestClient};
use helsenett_register::{Register, export, model::Party, storage};
use helsenett_store::{Store, records::PartyKind, testing::each_backend};
use helsenett_synth::{
    Options, Plan,
    pki::{KeyPurpose, Subject, TestCa, seeded_rsa},
};
use indicatif::ProgressBar;
use openssl::x509::X509;
use serde_json::{Value, json};
use tower::ServiceExt;
use url::Url;

const SEED: u64 = 11;
const READ: &str = "nhn:adresseregisteret/read";
const WRITE: &str = "nhn:adresseregisteret/write";
const ADMIN: &str = "nhn:adresseregisteret/admin";

/// A synthetic organisasjonsnummer at or after `seq` (not every sequence number has a check digit).
fn orgnr(seq: u32) -> Organisasjonsnummer {
    (seq..).find_map(Organisasjonsnummer::synthetic).unwrap()
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

async fn country(store: &Store) {
    let plan = Plan::custom("test", &["Vadsø", "Bergen"], 400, 2).unwrap();
    let options = Options {
        seed: SEED,
        as_of: today(),
        export: None,
    };
    helsenett_synth::generate(store, plan, options, &ProgressBar::hidden())
        .await
        .unwrap();
}

/// One node: HelseID and the register on a store holding a small country.
struct Node {
    helseid: HelseId,
    register: Register,
    app: Router,
}

async fn node(store: Store) -> Node {
    let settings = Settings {
        public_url: Url::parse("https://helsenett.test").unwrap(),
        access_token_seconds: 300,
        admin_token: None,
    };
    let helseid = HelseId::start(store.clone(), settings).await.unwrap();
    let register = Register::open(store).await.unwrap();
    let app = helseid
        .router()
        .merge(register.router(helseid.guard(), helseid.issuer()));
    Node {
        helseid,
        register,
        app,
    }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
    text: String,
}

impl Node {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(b) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
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

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }
}

fn api(path: &str) -> String {
    format!("/adresseregisteret/v1{path}")
}

/// The first party of `kind` whose organisation is of `business_type`.
fn find(register: &Register, kind: PartyKind, business_type: &str) -> Party {
    let snapshot = register.snapshot();
    snapshot
        .parties()
        .find(|p| {
            p.kind == kind
                && snapshot
                    .parties()
                    .find(|o| o.orgnr == p.orgnr && o.kind == PartyKind::Organisation)
                    .and_then(|o| o.organisation.as_ref())
                    .is_some_and(|o| o.business_type.as_str() == business_type)
        })
        .map(|p| (**p).clone())
        .unwrap_or_else(|| panic!("no {kind:?} at a {business_type}"))
}

fn assert_problem(a: &Answer, status: StatusCode, needle: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.content_type, "application/problem+json", "{}", a.text);
    assert!(
        a.body["detail"].as_str().unwrap_or("").contains(needle) || a.text.contains(needle),
        "{needle:?} not in {}",
        a.text
    );
}

#[tokio::test]
async fn look_ups_searches_and_agreements() {
    each_backend(|db| async move {
        country(&db.store).await;
        let n = node(db.store.clone()).await;
        let reader = TestClient::register(&db.store, "reader", orgnr(900), &[READ]).await;
        let token = reader.token(&n.helseid, READ).await;

        // Search by name, type and municipality, with paging.
        let a = n
            .get(&api("/parties?name=LEGEVAKT&type=Service"), &token)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(
            a.body["totalResults"], 2,
            "one Legevakt per municipality: {}",
            a.text
        );
        let a = n
            .get(&api("/parties?municipality=5607&pageSize=3&page=2"), &token)
            .await;
        assert_eq!(a.body["parties"].as_array().unwrap().len(), 3);
        assert!(a.body["totalResults"].as_u64().unwrap() > 6);
        let a = n
            .get(
                &api("/parties?messageType=HENVISNING&type=Department"),
                &token,
            )
            .await;
        assert!(
            a.body["totalResults"].as_u64().unwrap() > 0,
            "hospital departments receive referrals"
        );

        // Details: a GP (a person) inherits the office's certificates, valid now.
        let gp = find(&n.register, PartyKind::Person, "gp_office");
        let a = n
            .get(&api(&format!("/parties/{}", gp.her_id)), &token)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["hprNumber"], gp.hpr_number.unwrap().to_string());
        assert_eq!(
            a.body["addressable"], true,
            "a GP is active and valid today"
        );
        assert_eq!(a.body["encryptionCertificate"]["inherited"], true);
        assert_eq!(a.body["encryptionCertificate"]["status"], "valid");
        assert_eq!(a.body["parentHerId"], gp.parent_her_id.unwrap().to_string());
        let a = n
            .get(
                &api(&format!(
                    "/parties/{}/certificate-for-encryption",
                    gp.her_id
                )),
                &token,
            )
            .await;
        let der = base64_decode(a.body["certificate"].as_str().unwrap());
        let cert = X509::from_der(&der).unwrap();
        assert!(
            String::from_utf8(cert.to_text().unwrap())
                .unwrap()
                .contains("Key Encipherment")
        );
        let a = n
            .get(
                &api(&format!(
                    "/parties/{}/certificate-for-signature-validation",
                    gp.her_id
                )),
                &token,
            )
            .await;
        assert_eq!(a.body["usage"], "signing", "{}", a.text);

        // The CPA from the GP to a hospital department: referrals at a version both support.
        let department = find(&n.register, PartyKind::Department, "hospital");
        let a = n
            .get(
                &api(&format!("/cpa?from={}&to={}", gp.her_id, department.her_id)),
                &token,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let agreed: Vec<&str> = a.body["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["messageType"].as_str().unwrap())
            .collect();
        assert!(agreed.contains(&"HENVISNING"), "{}", a.text);
        let library = n
            .register
            .snapshot()
            .agreement(gp.her_id, department.her_id)
            .unwrap();
        assert_eq!(
            serde_json::to_value(&library).unwrap(),
            a.body,
            "the library and the API agree"
        );

        // Bad input: named, specific, problem+json.
        assert_problem(
            &n.get(&api("/parties/999999999"), &token).await,
            StatusCode::NOT_FOUND,
            "HER-id 999999999",
        );
        assert_problem(
            &n.get(&api("/parties/12x"), &token).await,
            StatusCode::BAD_REQUEST,
            "herId",
        );
        assert_problem(
            &n.get(&api("/parties?orgnr=123456789"), &token).await,
            StatusCode::BAD_REQUEST,
            "orgnr",
        );
        assert_problem(
            &n.get(&api("/parties?herid=1"), &token).await,
            StatusCode::BAD_REQUEST,
            "herid",
        );
        assert_problem(
            &n.get(&api("/parties?pageSize=100000"), &token).await,
            StatusCode::BAD_REQUEST,
            "pageSize",
        );
        assert_problem(
            &n.get(&api("/cpa?from=1"), &token).await,
            StatusCode::BAD_REQUEST,
            "to",
        );
        assert_problem(
            &n.get(
                &api(&format!("/cpa?from={}&to=999999998", gp.her_id)),
                &token,
            )
            .await,
            StatusCode::NOT_FOUND,
            "999999998",
        );
        assert_problem(
            &n.get(&api("/events?afterEventId=-1"), &token).await,
            StatusCode::BAD_REQUEST,
            "afterEventId",
        );
        let a = n.call(Method::GET, &api("/parties/1"), None, None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        let writer_only =
            TestClient::register(&db.store, "writer-only", orgnr(901), &[WRITE]).await;
        let wrong_scope = writer_only.token(&n.helseid, WRITE).await;
        assert_eq!(
            n.get(&api("/parties/1"), &wrong_scope).await.status,
            StatusCode::FORBIDDEN
        );

        // The OpenAPI document is served without a token.
        let a = n.call(Method::GET, &api("/openapi.json"), None, None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body["paths"]["/cpa"]["get"].is_object(), "{}", a.text);
    })
    .await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// A member's own organisation party, and a client of that organisation.
async fn member(
    store: &Store,
    register: &Register,
    business_type: &str,
    id: &str,
) -> (Party, TestClient) {
    let own = find(register, PartyKind::Organisation, business_type);
    let client = TestClient::register(store, id, own.orgnr, &[READ, WRITE]).await;
    (own, client)
}

#[tokio::test]
async fn members_change_only_their_own_entries() {
    each_backend(|db| async move {
        country(&db.store).await;
        let n = node(db.store.clone()).await;
        let (own, client) = member(&db.store, &n.register, "gp_office", "gp-epj").await;
        let token = client.token(&n.helseid, &format!("{READ} {WRITE}")).await;

        // A new service under the member's own organisation.
        let a = n.call(Method::POST, &api("/parties"), Some(&token), Some(json!({
            "kind": "Service", "parentHerId": own.her_id.to_string(), "name": "  Reiseklinikk  "
        }))).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        assert_eq!(a.body["name"], "Reiseklinikk");
        assert_eq!(a.body["orgnr"], own.orgnr.to_string());
        assert_eq!(a.body["encryptionCertificate"]["heldBy"], own.her_id.to_string());
        let service: HerId = a.body["herId"].as_str().unwrap().parse().unwrap();

        // Its CPP, then an update; versions come back sorted.
        let a = n.call(Method::PUT, &api(&format!("/parties/{service}/cpp")), Some(&token), Some(json!({
            "processes": [{"messageType": "DIALOG_HELSEFAGLIG", "role": "receiver", "versions": ["1.1", "1.0"], "receipts": ["1.0"]}]
        }))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["cpp"][0]["versions"], json!(["1.0", "1.1"]));
        let a = n.call(Method::PATCH, &api(&format!("/parties/{service}")), Some(&token), Some(json!({"active": false, "validTo": "2031-01-01"}))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["active"], false);
        assert_eq!(a.body["addressable"], false, "an inactive party takes no messages");

        // Another organisation's party: 403, and nothing changes.
        let other = find(&n.register, PartyKind::Organisation, "pharmacy");
        let before = n.register.snapshot().event_id;
        let a = n.call(Method::PATCH, &api(&format!("/parties/{}", other.her_id)), Some(&token), Some(json!({"name": "Kapret"}))).await;
        assert_problem(&a, StatusCode::FORBIDDEN, &other.orgnr.to_string());
        let a = n.call(Method::POST, &api("/parties"), Some(&token), Some(json!({
            "kind": "Service", "parentHerId": other.her_id.to_string(), "name": "Snik"
        }))).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        let a = n.call(Method::PUT, &api(&format!("/parties/{}/cpp", other.her_id)), Some(&token), Some(json!({"processes": []}))).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        n.register.refresh().await.unwrap();
        assert_eq!(n.register.snapshot().event_id, before);
        assert_eq!(**n.register.snapshot().party(other.her_id).unwrap(), other);
        assert_eq!(storage::events_after(&db.store, before, 10).await.unwrap().len(), 0);

        // Bad documents are refused with the field named.
        for (body, field) in [
            (json!({"kind": "Person", "parentHerId": own.her_id.to_string(), "name": "Lege"}), "hprNumber"),
            (json!({"kind": "Service", "parentHerId": own.her_id.to_string(), "name": ""}), "name"),
            (json!({"kind": "Service", "parentHerId": own.her_id.to_string(), "name": "x", "municipality": "12"}), "municipality"),
            (json!({"kind": "Service", "parentHerId": "0", "name": "x"}), "HER-id"),
            (json!({"kind": "Service", "parentHerId": own.her_id.to_string(), "name": "x", "colour": "red"}), "colour"),
            (json!({"kind": "Service", "parentHerId": "12ab", "name": "x"}), "parentHerId: invalid HER-id"),
            (json!({"kind": "Service", "parentHerId": own.her_id.to_string(), "name": "x", "validFrom": "2024-13-01"}), "validFrom"),
            (json!({"kind": "Organization", "parentHerId": own.her_id.to_string(), "name": "x"}), "kind"),
        ] {
            let a = n.call(Method::POST, &api("/parties"), Some(&token), Some(body)).await;
            assert_problem(&a, StatusCode::BAD_REQUEST, field);
        }
        let a = n.call(Method::PUT, &api(&format!("/parties/{service}/cpp")), Some(&token), Some(json!({
            "processes": [{"messageType": "dialog", "role": "receiver", "versions": ["1.0"]}]
        }))).await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "cpp[0].messageType");
        let a = n.call(Method::PUT, &api(&format!("/parties/{service}/cpp")), Some(&token), Some(json!({
            "processes": [{"messageType": "PLO", "role": "receiver", "versions": ["1.x"]}]
        }))).await;
        assert_problem(&a, StatusCode::BAD_REQUEST, "1.x");

        // Only an administrator creates organisations.
        let new_orgnr = orgnr(77_777);
        let new_org = json!({
            "orgnr": new_orgnr.to_string(), "name": "Nye Helse AS", "businessType": "specialist_practice",
            "municipality": "0301", "addresses": [{"type": "RES", "street": "Storgata 1", "postalCode": "0155", "postalPlace": "OSLO"}]
        });
        let a = n.call(Method::POST, &api("/organisations"), Some(&token), Some(new_org.clone())).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        let admin = TestClient::register(&db.store, "nhn-admin", orgnr(1), &[READ, WRITE, ADMIN]).await;
        let admin_token = admin.token(&n.helseid, &format!("{WRITE} {ADMIN}")).await;
        let a = n.call(Method::POST, &api("/organisations"), Some(&admin_token), Some(new_org.clone())).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        assert_eq!(a.body["organisation"]["addresses"][0]["type"], "RES");
        assert_eq!(a.body["coverage"], json!(["0301"]));
        let a = n.call(Method::POST, &api("/organisations"), Some(&admin_token), Some(new_org)).await;
        assert_problem(&a, StatusCode::CONFLICT, &new_orgnr.to_string());
        // The administrator may change any entry.
        let a = n.call(Method::PATCH, &api(&format!("/parties/{}", other.her_id)), Some(&admin_token), Some(json!({"validTo": null}))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_tables_match(&db.store, &n.register).await;
    })
    .await;
}

/// A certificate from `ca` for `orgnr`, PEM.
fn issue(
    ca: &TestCa,
    orgnr: Organisasjonsnummer,
    purpose: KeyPurpose,
    as_of: NaiveDate,
    serial: u64,
) -> String {
    let orgnr = orgnr.to_string();
    let key = seeded_rsa(SEED, &format!("upload-{serial}")).unwrap();
    let subject = Subject {
        name: "Opplastet",
        orgnr: &orgnr,
    };
    String::from_utf8(
        ca.issue(&subject, purpose, &key, serial, as_of)
            .unwrap()
            .to_pem()
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn certificates_are_checked_kept_and_revoked() {
    each_backend(|db| async move {
        country(&db.store).await;
        let n = node(db.store.clone()).await;
        let (own, client) = member(&db.store, &n.register, "nursing_home", "sykehjem-epj").await;
        let token = client.token(&n.helseid, &format!("{READ} {WRITE}")).await;
        // The country's CA, made again from its seed and date: the register's trust anchor.
        let ca = TestCa::new(SEED, today()).unwrap();
        let upload =
            |certificate: String, usage: &str| json!({"usage": usage, "certificate": certificate});
        let path = api(&format!("/parties/{}/certificates", own.her_id));
        let post = |body: Value| n.call(Method::POST, &path, Some(&token), Some(body));

        let before = n
            .register
            .snapshot()
            .party(own.her_id)
            .unwrap()
            .certificates
            .clone();
        let old_encryption = before
            .iter()
            .find(|c| c.usage.as_str() == "encryption")
            .unwrap()
            .fingerprint
            .clone();
        let fresh = issue(&ca, own.orgnr, KeyPurpose::Encryption, today(), 90_001);
        let a = post(upload(fresh.clone(), "encryption")).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let new_fingerprint = a.body["encryptionCertificate"]["fingerprint"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(
            new_fingerprint, old_encryption,
            "the new certificate is the one in use"
        );
        assert_eq!(
            a.body["certificates"].as_array().unwrap().len(),
            before.len() + 1,
            "the old one is kept"
        );
        assert_problem(
            &post(upload(fresh, "encryption")).await,
            StatusCode::CONFLICT,
            "already registered",
        );

        // Refused, each with its reason.
        let signing = issue(&ca, own.orgnr, KeyPurpose::Signing, today(), 90_002);
        assert_problem(
            &post(upload(signing.clone(), "encryption")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "keyEncipherment",
        );
        let encryption = issue(&ca, own.orgnr, KeyPurpose::Encryption, today(), 90_003);
        assert_problem(
            &post(upload(encryption, "signature")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "nonRepudiation",
        );
        let stranger = TestCa::new(SEED + 1, today()).unwrap();
        let foreign = issue(&stranger, own.orgnr, KeyPurpose::Signing, today(), 90_004);
        assert_problem(
            &post(upload(foreign, "signature")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "does not chain",
        );
        let long_ago = today() - Months::new(48);
        let expired = issue(
            &TestCa::new(SEED, long_ago).unwrap(),
            own.orgnr,
            KeyPurpose::Signing,
            long_ago,
            90_005,
        );
        assert_problem(
            &post(upload(expired, "signature")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "expired",
        );
        let elsewhere = issue(&ca, orgnr(55_555), KeyPurpose::Signing, today(), 90_006);
        assert_problem(
            &post(upload(elsewhere, "signature")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not to the party's",
        );
        assert_problem(
            &post(upload("not a certificate".into(), "signature")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "neither PEM nor base64",
        );
        assert_problem(
            &post(upload(signing.clone(), "authentication")).await,
            StatusCode::BAD_REQUEST,
            "usage",
        );
        // Another member cannot add to this party.
        let (_, intruder) = member(&db.store, &n.register, "pharmacy", "apotek-epj").await;
        let intruder_token = intruder.token(&n.helseid, &format!("{READ} {WRITE}")).await;
        let a = n
            .call(
                Method::POST,
                &path,
                Some(&intruder_token),
                Some(upload(signing.clone(), "signature")),
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        // DER in base64 is accepted as well as PEM.
        let der = X509::from_pem(signing.as_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        use base64::Engine;
        let a = post(upload(
            base64::engine::general_purpose::STANDARD.encode(der),
            "signature",
        ))
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);

        // Revoking the new encryption certificate puts the old one back in use; history keeps both.
        let a = n
            .call(
                Method::POST,
                &api(&format!(
                    "/parties/{}/certificates/{new_fingerprint}/revocation",
                    own.her_id
                )),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(
            a.body["encryptionCertificate"]["fingerprint"],
            old_encryption
        );
        let revoked = a.body["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["fingerprint"] == new_fingerprint.as_str())
            .unwrap();
        assert_eq!(revoked["status"], "revoked");
        let a = n
            .call(
                Method::POST,
                &api(&format!(
                    "/parties/{}/certificates/{new_fingerprint}/revocation",
                    own.her_id
                )),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
        let history = n
            .get(
                &api(&format!("/parties/{}/certificates", own.her_id)),
                &token,
            )
            .await;
        assert_eq!(history.body.as_array().unwrap().len(), before.len() + 2);
    })
    .await;
}

/// The register as its tables hold it and as the feed built it must be the same, party by party.
async fn assert_tables_match(store: &Store, register: &Register) {
    register.refresh().await.unwrap();
    let from_tables = storage::load(store).await.unwrap();
    let from_feed = register.snapshot();
    assert_eq!(from_tables.event_id, from_feed.event_id);
    assert_eq!(from_tables.len(), from_feed.len());
    for p in from_feed.parties() {
        assert_eq!(
            from_tables.party(p.her_id).map(|p| &**p),
            Some(&**p),
            "HER-id {}",
            p.her_id
        );
    }
}

#[tokio::test]
async fn every_change_is_in_the_feed_once_in_order_across_nodes_and_restarts() {
    each_backend(|db| async move {
        country(&db.store).await;
        let a = node(db.store.clone()).await;
        let b = node(db.open_another().await).await;
        let (own, client) = member(&db.store, &a.register, "municipality", "kommune-epj").await;
        let token_a = client.token(&a.helseid, &format!("{READ} {WRITE}")).await;
        let token_b = client.token(&b.helseid, &format!("{READ} {WRITE}")).await;

        // Writers on both nodes at once, and a mirror following the feed while they write.
        const WRITES: usize = 24;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mirror = {
            let store = db.open_another().await;
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut seen, mut after) = (Vec::new(), 0);
                loop {
                    let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                    let events = storage::events_after(&store, after, 7).await.unwrap();
                    let caught_up = events.len() < 7;
                    for e in events {
                        assert_eq!(e.id, after + 1, "no gap, no reordering");
                        after = e.id;
                        seen.push(e.id);
                    }
                    // Once the writers are done, read on until the feed has no more.
                    if done && caught_up {
                        return seen;
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut tasks = Vec::new();
        for i in 0..WRITES {
            let (n, token) = if i % 2 == 0 { (&a, token_a.clone()) } else { (&b, token_b.clone()) };
            let app = n.app.clone();
            let body = json!({"kind": "Service", "parentHerId": own.her_id.to_string(), "name": format!("Tjeneste {i}")});
            tasks.push(tokio::spawn(async move {
                let request = Request::post(api("/parties"))
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap();
                app.oneshot(request).await.unwrap().status()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::CREATED);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = mirror.await.unwrap();
        assert_eq!(seen, (1..=WRITES as i64).collect::<Vec<_>>(), "every change exactly once, in order");
        let events = storage::events_after(&db.store, 0, 1_000).await.unwrap();
        let mut her_ids: Vec<i64> = events.iter().map(|e| e.her_id).collect();
        her_ids.sort();
        her_ids.dedup();
        assert_eq!(her_ids.len(), WRITES, "each new party got its own HER-id");

        // Both nodes converge, and the tables say what the feed says.
        assert_tables_match(&db.store, &a.register).await;
        b.register.refresh().await.unwrap();
        assert_eq!(a.register.snapshot().event_id, b.register.snapshot().event_id);
        // A restarted node starts where the feed is.
        let restarted = Register::open(db.open_another().await).await.unwrap();
        assert_eq!(restarted.snapshot().event_id, WRITES as i64);
        assert_eq!(restarted.snapshot().len(), a.register.snapshot().len());
    })
    .await;
}

#[tokio::test]
async fn an_export_imports_into_an_empty_register_and_mirrors_follow() {
    each_backend(|db| async move {
        country(&db.store).await;
        let n = node(db.store.clone()).await;
        let reader = TestClient::register(&db.store, "mirror", orgnr(902), &[READ]).await;
        let token = reader.token(&n.helseid, READ).await;
        let a = n.get(&api("/export"), &token).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.content_type, export::CONTENT_TYPE);
        let mut parties = Vec::new();
        let header = export::read(a.text.as_bytes(), |p| {
            parties.push(p);
            Ok(())
        })
        .unwrap();
        assert_eq!(header.as_of_event_id, 0);
        assert_eq!(parties.len(), n.register.snapshot().len());

        // Into an empty store of the other backend's kind: every party arrives through the feed.
        let empty = tempfile::tempdir().unwrap();
        let target = Store::open_sqlite(empty.path()).await.unwrap();
        let mirror = Register::open(target.clone()).await.unwrap();
        let changes = mirror
            .change("test:import", |base| {
                let known =
                    |h: HerId| parties.iter().any(|p| p.her_id == h) || base.party(h).is_some();
                Ok(parties
                    .iter()
                    .cloned()
                    .filter_map(|p| helsenett_register::changes::import(base, p, &known).unwrap())
                    .collect())
            })
            .await
            .unwrap();
        assert_eq!(changes.len(), parties.len());
        assert_eq!(
            storage::events_after(&target, 0, 100_000)
                .await
                .unwrap()
                .len(),
            parties.len()
        );
        assert_tables_match(&target, &mirror).await;
        for p in &parties {
            assert_eq!(mirror.snapshot().party(p.her_id).map(|m| &**m), Some(p));
        }

        // An import may not erase certificate history, nor hand a certificate to another party.
        let mut dropped = parties
            .iter()
            .find(|p| !p.certificates.is_empty())
            .unwrap()
            .clone();
        dropped.certificates.pop();
        let known = |_: HerId| true;
        let err =
            helsenett_register::changes::import(&mirror.snapshot(), dropped, &known).unwrap_err();
        assert!(err.to_string().contains("history is kept"), "{err}");
        let holder = parties.iter().find(|p| !p.certificates.is_empty()).unwrap();
        let mut thief = parties
            .iter()
            .find(|p| p.orgnr != holder.orgnr && p.kind == PartyKind::Service)
            .unwrap()
            .clone();
        thief.certificates.push(holder.certificates[0].clone());
        let err =
            helsenett_register::changes::import(&mirror.snapshot(), thief, &known).unwrap_err();
        assert!(err.to_string().contains("belongs to HER-id"), "{err}");

        // A truncated export is refused whole.
        let truncated: String = a.text.lines().take(3).map(|l| format!("{l}\n")).collect();
        let err = export::read(truncated.as_bytes(), |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    })
    .await;
}
