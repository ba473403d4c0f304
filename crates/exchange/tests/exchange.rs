//! The message exchange end to end through NHN's MSH API v2, on SQLite and PostgreSQL: a sealed
//! referral from one synthetic party to another, fetched, opened, read and answered; every
//! refusal with its AppRec code; and the delivery watch's re-deliveries and non-delivery notice.

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Method, Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{NaiveDate, Utc};
use helsenett_core::HerId;
use helsenett_exchange::{
    Exchange, Settings, cms,
    envelope::{Envelope, Outgoing},
    named,
    synthetic::{Credentials, DIALOG, dialogue_pairs},
    xml,
};
use helsenett_helseid::{HelseId, testing::TestClient};
use helsenett_register::{Register, model::Version};
use helsenett_store::{Store, testing::each_backend};
use helsenett_synth::{Options, Plan};
use indicatif::ProgressBar;
use serde_json::{Value, json};
use tower::ServiceExt;
use url::Url;

const SCOPE: &str = "nhn:msh/api";

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

async fn country(store: &Store) {
    let plan = Plan::custom("test", &["Vadsø", "Bergen"], 400, 2).unwrap();
    let options = Options {
        seed: 5,
        as_of: today(),
        export: None,
    };
    helsenett_synth::generate(store, plan, options, &ProgressBar::hidden())
        .await
        .unwrap();
}

struct Node {
    helseid: HelseId,
    register: Register,
    exchange: Exchange,
    app: Router,
}

/// Deadlines of zero: every delivery is due at once, so a test drives the watch by hand.
const IMMEDIATE: Settings = Settings {
    redelivery_ms: 0,
    redelivery_attempts: 2,
    apprec_deadline_ms: 0,
    watch_every: std::time::Duration::from_secs(3600),
};

async fn node(store: Store) -> Node {
    let settings = helsenett_helseid::Settings {
        public_url: Url::parse("https://helsenett.test").unwrap(),
        access_token_seconds: 300,
        admin_token: None,
    };
    let helseid = HelseId::start(store.clone(), settings).await.unwrap();
    let register = Register::open(store.clone()).await.unwrap();
    let exchange = Exchange::start(store, register.clone(), IMMEDIATE);
    let app = helseid
        .router()
        .merge(exchange.router(helseid.guard(), helseid.issuer()));
    Node {
        helseid,
        register,
        exchange,
        app,
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Value,
    text: String,
}

impl Node {
    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(format!("/msh{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("api-version", "2")
            .header("nhn-source-system", "exchange-test 1.0");
        let request = match body {
            Some(b) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 26).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}

struct Parties {
    sender: HerId,
    receiver: HerId,
    sender_token: String,
    receiver_token: String,
    sender_keys: Credentials,
    receiver_keys: Credentials,
    version: Version,
}

async fn parties(n: &Node, store: &Store) -> Parties {
    let snapshot = n.register.snapshot();
    let (sender, receiver) = dialogue_pairs(store, &snapshot, 1).await.unwrap()[0];
    let org = |h| snapshot.party(h).unwrap().orgnr;
    let a = TestClient::register(store, "sender-epj", org(sender), &[SCOPE]).await;
    let b = TestClient::register(store, "receiver-epj", org(receiver), &[SCOPE]).await;
    let version = snapshot
        .agreement(sender, receiver)
        .unwrap()
        .version_of(DIALOG)
        .unwrap();
    Parties {
        sender,
        receiver,
        sender_token: a.token(&n.helseid, SCOPE).await,
        receiver_token: b.token(&n.helseid, SCOPE).await,
        sender_keys: Credentials::of(store, &snapshot, sender).await.unwrap(),
        receiver_keys: Credentials::of(store, &snapshot, receiver).await.unwrap(),
        version,
    }
}

const PAYLOAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Dialogmelding xmlns="http://www.kith.no/xmlstds/dialog/2013-01-23"><Notat><TemaKodet V="8" DN="Forespørsel"/><TekstNotatInnhold>SYNTETISK: Pasienten ønsker time.</TekstNotatInnhold></Notat></Dialogmelding>"#;

/// A MsgHead from `p.sender` to `receiver` with `PAYLOAD` sealed for `sealed_for`.
fn document(n: &Node, p: &Parties, msg_id: &str, receiver: HerId, version: Version) -> String {
    let sealed = cms::seal(
        PAYLOAD.as_bytes(),
        (
            &p.sender_keys.signing.certificate,
            &p.sender_keys.signing.key,
        ),
        std::slice::from_ref(&p.receiver_keys.encryption.certificate),
    )
    .unwrap();
    Outgoing {
        message_type: DIALOG,
        version,
        msg_id,
        gen_date: Utc::now(),
        sender: &named(&n.register.snapshot(), p.sender).unwrap(),
        receiver: &named(&n.register.snapshot(), receiver).unwrap(),
        copies: &[],
        sealed: &sealed,
    }
    .to_xml()
}

fn post(document: &str) -> Value {
    json!({
        "businessDocument": STANDARD.encode(document),
        "contentType": "application/xml",
        "contentTransferEncoding": "base64",
    })
}

fn assert_refused(a: &Answer, status: StatusCode, needle: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert!(a.text.contains(needle), "{needle:?} not in {}", a.text);
    assert!(a.body["requestId"].is_string(), "{}", a.text);
}

#[tokio::test]
async fn a_sealed_message_is_delivered_read_and_answered() {
    each_backend(|db| async move {
        country(&db.store).await;
        let n = node(db.store.clone()).await;
        let p = parties(&n, &db.store).await;
        let msg_id = uuid::Uuid::new_v4().to_string();
        let doc = document(&n, &p, &msg_id, p.receiver, p.version);

        let a = n.call(Method::POST, "/Messages", &p.sender_token, Some(post(&doc))).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let id = a.body.as_str().unwrap().to_owned();
        // The same document again is the same message, not a second one.
        let again = n.call(Method::POST, "/Messages", &p.sender_token, Some(post(&doc))).await;
        assert_eq!((again.status, again.body.as_str()), (StatusCode::CREATED, Some(id.as_str())));
        // Sent again many times at once (one commit batch): still that one message.
        let twin = document(&n, &p, &uuid::Uuid::new_v4().to_string(), p.receiver, p.version);
        let answers = futures_join(
            (0..12).map(|_| n.call(Method::POST, "/Messages", &p.sender_token, Some(post(&twin)))),
        )
        .await;
        let ids: std::collections::HashSet<_> = answers
            .iter()
            .map(|a| {
                assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
                a.body.as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1, "concurrent duplicates got different ids: {ids:?}");
        let twin_id = ids.into_iter().next().unwrap();
        let a = n.call(Method::PUT, &format!("/Messages/{twin_id}/read/{}", p.receiver), &p.receiver_token, None).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT);

        // The receiver finds it in its mailbox, once.
        let inbox = format!("/Messages?ReceiverHerIds={}&IncludeMetadata=true", p.receiver);
        let a = n.call(Method::GET, &inbox, &p.receiver_token, None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let list = a.body.as_array().unwrap();
        assert_eq!(list.len(), 1, "{}", a.text);
        assert_eq!(list[0]["id"], id.as_str());
        assert_eq!(list[0]["senderHerId"], p.sender.get());
        assert_eq!(list[0]["businessDocumentId"], msg_id.as_str());
        assert_eq!(list[0]["isAppRec"], false);
        let a = n
            .call(Method::GET, &format!("/Messages?ReceiverHerIds={}", p.receiver), &p.receiver_token, None)
            .await;
        assert_eq!(a.body[0].as_object().unwrap().len(), 2, "without metadata: id and receiverHerId");

        // It opens with the receiver's key and verifies as the sender's.
        let a = n
            .call(Method::GET, &format!("/Messages/{id}/business-document"), &p.receiver_token, None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["contentTransferEncoding"], "base64");
        let bytes = STANDARD.decode(a.body["businessDocument"].as_str().unwrap()).unwrap();
        assert_eq!(bytes, doc.as_bytes());
        let envelope = Envelope::read(&xml::parse(&bytes).unwrap()).unwrap();
        let anchors = n.register.trust_anchors().await.unwrap();
        let opened = cms::open(
            &envelope.sealed[0],
            (&p.receiver_keys.encryption.certificate, &p.receiver_keys.encryption.key),
            &p.sender_keys.signing.certificate,
            anchors.x509_store(),
        )
        .unwrap();
        assert_eq!(opened, PAYLOAD.as_bytes());
        // Someone else's signing certificate does not verify it.
        assert!(
            cms::open(
                &envelope.sealed[0],
                (&p.receiver_keys.encryption.certificate, &p.receiver_keys.encryption.key),
                &p.receiver_keys.signing.certificate,
                anchors.x509_store(),
            )
            .is_err()
        );

        let status = format!("/Messages/{id}/status");
        let a = n.call(Method::GET, &status, &p.sender_token, None).await;
        assert_eq!(
            a.body,
            json!([{"receiverHerId": p.receiver.get(), "transportDeliveryState": "Unconfirmed", "appRecStatus": null}])
        );

        let read = format!("/Messages/{id}/read/{}", p.receiver);
        let a = n.call(Method::PUT, &read, &p.receiver_token, None).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
        let a = n.call(Method::PUT, &read, &p.receiver_token, None).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "marking read twice is harmless");
        let a = n.call(Method::GET, &inbox, &p.receiver_token, None).await;
        assert_eq!(a.body, json!([]), "read messages leave the mailbox");

        let a = n
            .call(
                Method::POST,
                &format!("/Messages/{id}/apprec/{}", p.receiver),
                &p.receiver_token,
                Some(json!({"appRecStatus": "OkErrorInMessagePart", "appRecErrorList": [{"errorCode": "E35", "details": "Ukjent pasient"}]})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let apprec_id = a.body.as_str().unwrap().to_owned();
        let a = n.call(Method::GET, &status, &p.sender_token, None).await;
        assert_eq!(a.body[0]["transportDeliveryState"], "Acknowledged");
        assert_eq!(a.body[0]["appRecStatus"], "OkErrorInMessagePart");
        let a = n.call(Method::GET, &format!("/Messages/{id}/apprec"), &p.sender_token, None).await;
        assert_eq!(a.body[0]["appRecErrorList"][0]["errorCode"], "E35");
        assert_eq!(a.body[0]["appRecErrorList"][0]["description"], "Pasienten finnes ikke i mottakersystemet");

        // The AppRec waits in the sender's mailbox, linked to the original.
        let a = n
            .call(Method::GET, &format!("/Messages?ReceiverHerIds={}&IncludeMetadata=true", p.sender), &p.sender_token, None)
            .await;
        assert_eq!(a.body[0]["id"], apprec_id.as_str(), "{}", a.text);
        assert_eq!(a.body[0]["isAppRec"], true);
        let a = n
            .call(Method::GET, &format!("/Messages/{apprec_id}/business-document"), &p.sender_token, None)
            .await;
        let apprec = String::from_utf8(STANDARD.decode(a.body["businessDocument"].as_str().unwrap()).unwrap()).unwrap();
        assert!(apprec.contains(&format!("<Id>{msg_id}</Id>")), "{apprec}");
        assert!(apprec.contains(r#"<Status V="3""#), "{apprec}");
        // A second answer to the same message is refused.
        let a = n
            .call(Method::POST, &format!("/Messages/{id}/apprec/{}", p.receiver), &p.receiver_token, Some(json!({"appRecStatus": "Ok"})))
            .await;
        assert_refused(&a, StatusCode::CONFLICT, "already answered");

        // The counter saw two dialogue messages and one AppRec.
        let a = n.call(Method::GET, "/meldingsteller", &p.sender_token, None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let mut types: Vec<(&str, i64)> = a.body.as_array().unwrap().iter()
            .map(|c| (c["messageType"].as_str().unwrap(), c["messages"].as_i64().unwrap()))
            .collect();
        types.sort();
        assert_eq!(types, [("APPREC", 1), (DIALOG, 2)], "{}", a.text);
    })
    .await;
}

#[tokio::test]
async fn refusals_carry_their_apprec_codes() {
    each_backend(|db| async move {
        country(&db.store).await;
        let n = node(db.store.clone()).await;
        let p = parties(&n, &db.store).await;
        let send = |body: Value| n.call(Method::POST, "/Messages", &p.sender_token, Some(body));
        let good = document(&n, &p, "refusal-1", p.receiver, p.version);

        let a = send(json!({"businessDocument": "not base64!", "contentType": "application/xml", "contentTransferEncoding": "base64"})).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "businessDocument is not base64");
        let a = send(json!({"businessDocument": STANDARD.encode("x"), "contentType": "application/xml"})).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "contentTransferEncoding");
        let a = send(post("not xml at all")).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "T01");
        let a = send(post(&good.replace("msghead/2006-05-24", "msghead/1999-01-01"))).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "T10");
        let a = send(post(&good.replace("<MsgId>refusal-1</MsgId>", "<MsgId></MsgId>"))).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "E10");
        let unknown = good.replace(
            &format!("<Id>{}</Id>", p.receiver),
            "<Id>999999</Id>",
        );
        let a = send(post(&unknown)).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "E21");
        let wrong_version = document(&n, &p, "refusal-2", p.receiver, Version { major: 9, minor: 9 });
        let a = send(post(&wrong_version)).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "T10");
        assert!(a.text.contains("does not send") || a.text.contains("does not receive"), "{}", a.text);

        // Sealed for the wrong certificate: the receiver could not open it.
        let mut wrong = parties_swap(&p);
        std::mem::swap(&mut wrong.receiver_keys, &mut wrong.sender_keys);
        let sealed_wrong = document(&n, &wrong, "refusal-3", p.receiver, p.version);
        let a = send(post(&sealed_wrong)).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "S02");

        // A clear payload is refused: the hub must not be able to read it.
        let clear = good.replace(
            &good[good.find("<Content>").unwrap()..good.find("</Content>").unwrap() + 10],
            &format!("<Content>{}</Content>", &PAYLOAD[38..]),
        );
        let a = send(post(&clear)).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "S99");

        // Sending as someone else, or reading their mailbox, is forbidden.
        let a = n.call(Method::POST, "/Messages", &p.receiver_token, Some(post(&good))).await;
        assert_refused(&a, StatusCode::FORBIDDEN, &format!("Not authorized for HerId(s): {}", p.sender));
        let a = n
            .call(Method::GET, &format!("/Messages?ReceiverHerIds={}", p.receiver), &p.sender_token, None)
            .await;
        assert_refused(&a, StatusCode::FORBIDDEN, "Not authorized");

        // The same MsgId for another document is refused; the first stays.
        let a = send(post(&good)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let id = a.body.as_str().unwrap().to_owned();
        let other = document(&n, &p, "refusal-1", p.receiver, p.version);
        let a = send(post(&other)).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "E10");

        // Receipts: for a message that does not exist, or by someone who did not receive it.
        let a = n
            .call(Method::POST, &format!("/Messages/{}/apprec/{}", uuid::Uuid::new_v4(), p.receiver), &p.receiver_token, Some(json!({"appRecStatus": "Ok"})))
            .await;
        assert_refused(&a, StatusCode::NOT_FOUND, "no message");
        let a = n
            .call(Method::POST, &format!("/Messages/{id}/apprec/{}", p.sender), &p.sender_token, Some(json!({"appRecStatus": "Ok"})))
            .await;
        assert_refused(&a, StatusCode::FORBIDDEN, "not a receiver");
        let a = n
            .call(Method::POST, &format!("/Messages/{id}/apprec/{}", p.receiver), &p.receiver_token, Some(json!({"appRecStatus": "Rejected"})))
            .await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "appRecErrorList");
        let a = n
            .call(Method::POST, &format!("/Messages/{id}/apprec/{}", p.receiver), &p.receiver_token, Some(json!({"appRecStatus": "Rejected", "appRecErrorList": [{"errorCode": "Q42"}]})))
            .await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "kodeverk 8221");
        let a = n.call(Method::GET, "/Messages/not-a-guid/status", &p.sender_token, None).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "GUID");
        let a = n.call(Method::GET, &format!("/Messages/{id}/status"), &p.receiver_token, None).await;
        assert_eq!(a.status, StatusCode::OK, "a receiver sees its own delivery");

        // Headers NHN's API requires.
        let request = Request::get(format!("/msh/Messages/{id}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", p.sender_token))
            .header("nhn-source-system", "x")
            .body(Body::empty())
            .unwrap();
        let response = n.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);

        // Nothing refused was stored: one message in all.
        let count: i64 = helsenett_store::with_pool!(&db.store, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM message").fetch_one(pool).await.unwrap()
        });
        assert_eq!(count, 1);
    })
    .await;
}

/// The same parties with keys that belong to someone else.
fn parties_swap(p: &Parties) -> Parties {
    Parties {
        sender: p.sender,
        receiver: p.receiver,
        sender_token: p.sender_token.clone(),
        receiver_token: p.receiver_token.clone(),
        sender_keys: clone_keys(&p.sender_keys),
        receiver_keys: clone_keys(&p.receiver_keys),
        version: p.version,
    }
}

fn clone_keys(c: &Credentials) -> Credentials {
    let pair =
        |k: &helsenett_exchange::synthetic::KeyPair| helsenett_exchange::synthetic::KeyPair {
            certificate: k.certificate.clone(),
            key: k.key.clone(),
        };
    Credentials {
        signing: pair(&c.signing),
        encryption: pair(&c.encryption),
    }
}

#[tokio::test]
async fn unread_messages_are_redelivered_then_reported_to_the_sender() {
    each_backend(|db| async move {
        country(&db.store).await;
        let n = node(db.store.clone()).await;
        let p = parties(&n, &db.store).await;
        let doc = document(&n, &p, "never-read", p.receiver, p.version);
        let a = n
            .call(Method::POST, "/Messages", &p.sender_token, Some(post(&doc)))
            .await;
        let id = a.body.as_str().unwrap().to_owned();
        let read_but_silent = document(&n, &p, "read-not-answered", p.receiver, p.version);
        let a = n
            .call(
                Method::POST,
                "/Messages",
                &p.sender_token,
                Some(post(&read_but_silent)),
            )
            .await;
        let silent = a.body.as_str().unwrap().to_owned();
        let a = n
            .call(
                Method::PUT,
                &format!("/Messages/{silent}/read/{}", p.receiver),
                &p.receiver_token,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT);

        // Two re-deliveries, then the notice; the read one gets its notice at once.
        let first = n.exchange.watch_once().await.unwrap();
        assert_eq!((first.redelivered, first.notices), (1, 1));
        let second = n.exchange.watch_once().await.unwrap();
        assert_eq!((second.redelivered, second.notices), (1, 0));
        let third = n.exchange.watch_once().await.unwrap();
        assert_eq!((third.redelivered, third.notices), (0, 1));
        let fourth = n.exchange.watch_once().await.unwrap();
        assert_eq!(
            (fourth.redelivered, fourth.notices),
            (0, 0),
            "settled deliveries are not watched"
        );

        let a = n
            .call(
                Method::GET,
                &format!("/Messages/{id}/status"),
                &p.sender_token,
                None,
            )
            .await;
        assert_eq!(
            a.body[0]["transportDeliveryState"], "Rejected",
            "{}",
            a.text
        );
        let a = n
            .call(
                Method::GET,
                &format!("/Messages/{silent}/status"),
                &p.sender_token,
                None,
            )
            .await;
        assert_eq!(
            a.body[0]["transportDeliveryState"], "Acknowledged",
            "{}",
            a.text
        );
        assert_eq!(a.body[0]["appRecStatus"], Value::Null);

        // Both notices are AppRecs in the sender's mailbox, naming the original MsgIds.
        let a = n
            .call(
                Method::GET,
                &format!("/Messages?ReceiverHerIds={}&IncludeMetadata=true", p.sender),
                &p.sender_token,
                None,
            )
            .await;
        let notices = a.body.as_array().unwrap();
        assert_eq!(notices.len(), 2, "{}", a.text);
        let mut texts = Vec::new();
        for notice in notices {
            assert_eq!(notice["isAppRec"], true);
            let a = n
                .call(
                    Method::GET,
                    &format!(
                        "/Messages/{}/business-document",
                        notice["id"].as_str().unwrap()
                    ),
                    &p.sender_token,
                    None,
                )
                .await;
            texts.push(
                String::from_utf8(
                    STANDARD
                        .decode(a.body["businessDocument"].as_str().unwrap())
                        .unwrap(),
                )
                .unwrap(),
            );
        }
        let all = texts.join("\n");
        assert!(
            all.contains("<Id>never-read</Id>") && all.contains("Ikke levert"),
            "{all}"
        );
        assert!(
            all.contains("<Id>read-not-answered</Id>") && all.contains("Ikke besvart"),
            "{all}"
        );
        assert!(all.contains(r#"<Error V="X99""#), "{all}");
    })
    .await;
}

#[tokio::test]
async fn the_validator_reports_every_problem_with_its_path() {
    each_backend(|db| async move {
        country(&db.store).await;
        let n = node(db.store.clone()).await;
        let p = parties(&n, &db.store).await;
        let validate = |body: &str| {
            let request = Request::post("/validate")
                .header(header::AUTHORIZATION, format!("Bearer {}", p.sender_token))
                .header(header::CONTENT_TYPE, "application/xml")
                .body(Body::from(body.to_owned()))
                .unwrap();
            let app = n.app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
                (status, serde_json::from_slice::<Value>(&bytes).unwrap())
            }
        };
        let good = document(&n, &p, "validate-1", p.receiver, p.version);
        let (status, report) = validate(&good).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["valid"], true, "{report}");
        assert_eq!(report["standard"], "MsgHead v1.2");

        // Two faults: a wrong MIGversion and an unknown element; both are reported.
        let bad = good
            .replace("v1.2 2006-05-24", "v1.1 2005-11-22")
            .replace("<MsgId>", "<Unknown/><MsgId>");
        let (status, report) = validate(&bad).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["valid"], false);
        let paths: Vec<&str> = report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&"/MsgHead/MsgInfo/MIGversion"), "{report}");
        assert!(paths.iter().any(|p| p.contains("Unknown")), "{report}");

        let (status, report) = validate("<not xml").await;
        assert_eq!(
            (status, &report["valid"]),
            (StatusCode::OK, &Value::Bool(false))
        );
        assert_eq!(report["problems"][0]["path"], "/");
    })
    .await;
}

/// Runs the futures concurrently on this task and returns their outputs in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *output = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
