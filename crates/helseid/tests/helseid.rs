//! HelseID end to end through its HTTP routes, on SQLite and PostgreSQL: tokens, DPoP, the guard,
//! the code flow, rotation, registration, and the bad input each must refuse precisely.

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{HeaderMap, Method, Request, StatusCode, Uri, header},
};
use chrono::NaiveDate;
use helsenett_core::{Fodselsnummer, NumberKind, Organisasjonsnummer};
use helsenett_helseid::{
    Actor, HelseId, Settings, SigningAlg,
    clients::{self, AUTHORIZATION_CODE, CLIENT_CREDENTIALS, Client},
    jose, keys,
};
use helsenett_store::{Store, testing::each_backend, with_pool};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet},
};
use openssl::{ec::EcGroup, ec::EcKey, nid::Nid, pkey::PKey};
use serde_json::{Value, json};
use tower::ServiceExt;
use url::Url;

const PUBLIC_URL: &str = "https://helsenett.test";
const ISSUER: &str = "https://helsenett.test/helseid";
const TOKEN_URL: &str = "https://helsenett.test/helseid/connect/token";
const REDIRECT: &str = "http://127.0.0.1:9999/callback";

/// A key pair as a client holds it.
struct Key {
    encoding: EncodingKey,
    public: Jwk,
}

fn es256() -> Key {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let der = PKey::from_ec_key(EcKey::generate(&group).unwrap())
        .unwrap()
        .private_key_to_pkcs8()
        .unwrap();
    let encoding = EncodingKey::from_ec_der(&der);
    let mut public = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
    public.common.key_id = Some(jose::thumbprint(&public).unwrap());
    Key { encoding, public }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(key: &Key, typ: &str, with_jwk: bool, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(typ.into());
    if with_jwk {
        header.jwk = Some(key.public.clone());
    } else {
        header.kid = key.public.common.key_id.clone();
    }
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn assertion_claims(client_id: &str) -> Value {
    json!({ "iss": client_id, "sub": client_id, "aud": ISSUER, "iat": now(),
            "exp": now() + 30, "jti": jose::random_token(12) })
}

fn proof_claims(htm: &str, htu: &str, nonce: Option<&str>) -> Value {
    let mut c = json!({ "jti": jose::random_token(12), "htm": htm, "htu": htu, "iat": now() });
    if let Some(n) = nonce {
        c["nonce"] = n.into();
    }
    c
}

fn organisation() -> Organisasjonsnummer {
    Organisasjonsnummer::synthetic(42).unwrap()
}

fn system_client(id: &str, key: &Key) -> Client {
    Client {
        client_id: id.into(),
        name: format!("{id} EPJ"),
        jwks: JwkSet {
            keys: vec![key.public.clone()],
        },
        grant_types: vec![CLIENT_CREDENTIALS.into(), AUTHORIZATION_CODE.into()],
        scopes: [
            "nhn:msh/api",
            "nhn:kjernejournal/api",
            "openid",
            "profile",
            "helseid://scopes/identity/pid",
            "helseid://scopes/identity/security_level",
            "helseid://scopes/hpr/hpr_number",
        ]
        .map(String::from)
        .to_vec(),
        redirect_uris: vec![REDIRECT.into()],
        orgnr_parent: organisation(),
        orgnr_child: None,
        dpop_required: true,
        enabled: true,
        created_at: now(),
    }
}

/// A node of the network under test, with one client and one DPoP key.
struct Net {
    id: HelseId,
    app: Router,
    store: Store,
    client: Key,
    dpop: Key,
}

async fn node(store: Store, lifetime: i64) -> HelseId {
    let settings = Settings {
        public_url: Url::parse(PUBLIC_URL).unwrap(),
        access_token_seconds: lifetime,
        admin_token: Some("admin-secret".into()),
    };
    HelseId::start(store, settings).await.unwrap()
}

async fn net(store: Store) -> Net {
    let client = es256();
    assert!(
        clients::insert(&store, &[system_client("epj", &client)])
            .await
            .unwrap()
    );
    let id = node(store.clone(), 300).await;
    Net {
        app: id.router(),
        id,
        store,
        client,
        dpop: es256(),
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn form(path: &str, pairs: &[(&str, &str)], dpop: Option<&str>) -> Request<Body> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut request =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(p) = dpop {
        request = request.header("dpop", p);
    }
    request.body(Body::from(body)).unwrap()
}

impl Net {
    fn assertion(&self) -> String {
        sign(&self.client, "JWT", false, &assertion_claims("epj"))
    }

    async fn nonce(&self) -> String {
        let a = self
            .token_request(&self.assertion(), "nhn:msh/api", None)
            .await;
        assert_eq!(a.body["error"], "use_dpop_nonce", "{}", a.text);
        a.headers["dpop-nonce"].to_str().unwrap().to_owned()
    }

    async fn token_request(&self, assertion: &str, scope: &str, nonce: Option<&str>) -> Answer {
        let proof = sign(
            &self.dpop,
            "dpop+jwt",
            true,
            &proof_claims("POST", TOKEN_URL, nonce),
        );
        self.token_with(
            &[("client_assertion", assertion), ("scope", scope)],
            Some(&proof),
        )
        .await
    }

    async fn token_with(&self, extra: &[(&str, &str)], proof: Option<&str>) -> Answer {
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
        ];
        pairs.extend_from_slice(extra);
        send(&self.app, form("/helseid/connect/token", &pairs, proof)).await
    }

    async fn token(&self, scope: &str) -> String {
        let nonce = self.nonce().await;
        let a = self
            .token_request(&self.assertion(), scope, Some(&nonce))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["token_type"], "DPoP");
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    /// Headers of an API call with `token` and a fresh proof for `url`.
    fn api_headers(&self, token: &str, method: &str, url: &str) -> HeaderMap {
        let mut claims = proof_claims(method, url, None);
        claims["ath"] = jose::sha256_b64url(token.as_bytes()).into();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("DPoP {token}").parse().unwrap(),
        );
        headers.insert(
            "dpop",
            sign(&self.dpop, "dpop+jwt", true, &claims).parse().unwrap(),
        );
        headers
    }
}

const API_URL: &str = "https://helsenett.test/msh/Messages";

async fn guard_check(
    net: &Net,
    headers: &HeaderMap,
    audience: &str,
    scope: &str,
) -> Result<helsenett_helseid::Principal, helsenett_helseid::Denied> {
    net.id
        .guard()
        .check(
            &Method::GET,
            &Uri::from_static("/msh/Messages"),
            headers,
            audience,
            scope,
        )
        .await
}

#[tokio::test]
async fn discovery_names_the_strict_profile() {
    each_backend(|db| async move {
        let net = net(db.store).await;
        let a = send(
            &net.app,
            Request::get("/helseid/.well-known/openid-configuration")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body["issuer"], ISSUER);
        assert_eq!(a.body["token_endpoint"], TOKEN_URL);
        assert_eq!(
            a.body["token_endpoint_auth_methods_supported"],
            json!(["private_key_jwt"])
        );
        assert_eq!(a.body["code_challenge_methods_supported"], json!(["S256"]));
        assert!(
            a.body["dpop_signing_alg_values_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("ES256"))
        );
        assert!(
            a.body["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("nhn:msh/api"))
        );
        let jwks = send(
            &net.app,
            Request::get("/helseid/jwks").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 1);
        assert!(
            jwks.body["keys"][0].get("d").is_none(),
            "no private part in the JWKS"
        );
    })
    .await;
}

#[tokio::test]
async fn client_credentials_with_dpop_yields_a_bound_token_the_guard_accepts() {
    each_backend(|db| async move {
        let net = net(db.store).await;
        let token = net.token("nhn:msh/api").await;
        let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
            .unwrap()
            .claims;
        assert_eq!(claims["aud"], "nhn:msh");
        assert_eq!(claims["client_id"], "epj");
        assert_eq!(
            claims["helseid://claims/client/claims/orgnr_parent"],
            organisation().to_string()
        );
        assert_eq!(
            claims["cnf"]["jkt"],
            jose::thumbprint(&net.dpop.public).unwrap()
        );
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().typ.as_deref(),
            Some("at+jwt")
        );

        let headers = net.api_headers(&token, "GET", API_URL);
        let principal = guard_check(&net, &headers, "nhn:msh", "nhn:msh/api")
            .await
            .unwrap();
        assert_eq!(principal.actor, Actor::System);
        assert_eq!(principal.organisation, organisation());
        // The same proof again is a replay.
        let replay = guard_check(&net, &headers, "nhn:msh", "nhn:msh/api")
            .await
            .unwrap_err();
        assert_eq!(replay.error, "invalid_dpop_proof");
        assert!(
            replay.description.contains("used before"),
            "{}",
            replay.description
        );
    })
    .await;
}

#[tokio::test]
async fn the_guard_refuses_wrong_audience_scope_scheme_key_and_revoked_tokens() {
    each_backend(|db| async move {
        let net = net(db.store).await;
        let token = net.token("nhn:msh/api").await;
        let denied = |h: HeaderMap, aud: &'static str, scope: &'static str| {
            let net = &net;
            async move { guard_check(net, &h, aud, scope).await.unwrap_err() }
        };
        let e = denied(
            net.api_headers(&token, "GET", API_URL),
            "nhn:kjernejournal",
            "nhn:kjernejournal/api",
        )
        .await;
        assert_eq!(
            (e.status, e.error),
            (StatusCode::UNAUTHORIZED, "invalid_token")
        );
        let e = denied(
            net.api_headers(&token, "GET", API_URL),
            "nhn:msh",
            "nhn:msh/admin",
        )
        .await;
        assert_eq!(
            (e.status, e.error),
            (StatusCode::FORBIDDEN, "insufficient_scope")
        );
        let mut bearer = net.api_headers(&token, "GET", API_URL);
        bearer.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let e = denied(bearer, "nhn:msh", "nhn:msh/api").await;
        assert!(e.description.contains("DPoP-bound"), "{}", e.description);
        let e = denied(
            net.api_headers(&token, "POST", API_URL),
            "nhn:msh",
            "nhn:msh/api",
        )
        .await;
        assert_eq!(e.error, "invalid_dpop_proof");
        let e = denied(
            net.api_headers(&token, "GET", "https://elsewhere.test/msh/Messages"),
            "nhn:msh",
            "nhn:msh/api",
        )
        .await;
        assert!(e.description.contains("htu"), "{}", e.description);
        // A proof for another token (ath), and a proof by another key.
        let other = net.token("nhn:msh/api").await;
        let mut mixed = net.api_headers(&other, "GET", API_URL);
        mixed.insert(
            header::AUTHORIZATION,
            format!("DPoP {token}").parse().unwrap(),
        );
        assert!(
            denied(mixed, "nhn:msh", "nhn:msh/api")
                .await
                .description
                .contains("ath")
        );
        // A token signed by a key HelseID never had.
        let forged_claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
            .unwrap()
            .claims;
        let forged = sign(&es256(), "at+jwt", false, &forged_claims);
        let e = denied(
            net.api_headers(&forged, "GET", API_URL),
            "nhn:msh",
            "nhn:msh/api",
        )
        .await;
        assert!(
            e.description.contains("not signed by a HelseID key"),
            "{}",
            e.description
        );
        // Revoked by its client.
        let a = send(
            &net.app,
            form(
                "/helseid/connect/revocation",
                &[
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &net.assertion()),
                    ("token", &token),
                ],
                None,
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let e = denied(
            net.api_headers(&token, "GET", API_URL),
            "nhn:msh",
            "nhn:msh/api",
        )
        .await;
        assert!(e.description.contains("revoked"), "{}", e.description);
        // No token at all.
        let e = denied(HeaderMap::new(), "nhn:msh", "nhn:msh/api").await;
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn bad_client_assertions_are_invalid_client_and_issue_nothing() {
    each_backend(|db| async move {
        let net = net(db.store).await;
        let nonce = net.nonce().await;
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut c = assertion_claims("epj");
            edit(&mut c);
            sign(&net.client, "JWT", false, &c)
        };
        let hs256 = {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = net.client.public.common.key_id.clone();
            let secret = serde_json::to_vec(&net.client.public).unwrap();
            jsonwebtoken::encode(
                &h,
                &assertion_claims("epj"),
                &EncodingKey::from_secret(&secret),
            )
            .unwrap()
        };
        let none = {
            let header = jose::b64url(br#"{"alg":"none","typ":"JWT"}"#);
            let body = jose::b64url(assertion_claims("epj").to_string().as_bytes());
            format!("{header}.{body}.")
        };
        let cases: Vec<(String, &str)> = vec![
            (none, "alg"),
            (hs256, "HS256"),
            (with(&|c| c["exp"] = (now() - 60).into()), "expired"),
            (with(&|c| c["exp"] = i64::MIN.into()), "expired"),
            (with(&|c| c["exp"] = (now() + 3600).into()), "at most 60 s"),
            (with(&|c| c["aud"] = "https://other.test".into()), "aud"),
            (with(&|c| c["sub"] = "someone-else".into()), "sub"),
            (
                with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
                "jti",
            ),
            (
                with(&|c| {
                    c["iss"] = "nobody".into();
                    c["sub"] = "nobody".into();
                }),
                "not registered",
            ),
            (
                sign(&es256(), "JWT", false, &assertion_claims("epj")),
                "no key with kid",
            ),
            ("not.a.jwt".into(), "unreadable"),
            ("x".repeat(20_000), "longer than"),
        ];
        for (assertion, why) in cases {
            let a = net
                .token_request(&assertion, "nhn:msh/api", Some(&nonce))
                .await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{why}: {}", a.text);
            assert_eq!(a.body["error"], "invalid_client", "{why}");
            assert!(
                a.body["error_description"].as_str().unwrap().contains(why),
                "{why}: {}",
                a.text
            );
            assert!(a.body.get("access_token").is_none());
        }
        // A NumericDate may have a fraction (RFC 7519 §2).
        let fractional = with(&|c| c["exp"] = json!(now() as f64 + 30.5));
        let a = net
            .token_request(&fractional, "nhn:msh/api", Some(&nonce))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        // One assertion, twice.
        let once = net.assertion();
        assert_eq!(
            net.token_request(&once, "nhn:msh/api", Some(&nonce))
                .await
                .status,
            StatusCode::OK
        );
        let again = net.token_request(&once, "nhn:msh/api", Some(&nonce)).await;
        assert!(again.text.contains("used before"), "{}", again.text);
        // Secrets are not a way in.
        let a = net
            .token_with(&[("client_id", "epj"), ("client_secret", "hunter2")], None)
            .await;
        assert_eq!(a.body["error"], "invalid_client");
        // A disabled client gets nothing.
        clients::set_enabled(&net.store, "epj", false)
            .await
            .unwrap();
        // Every node learns it within the client cache's lifetime.
        tokio::time::sleep(clients::CACHE_TTL + std::time::Duration::from_millis(100)).await;
        let a = net
            .token_request(&net.assertion(), "nhn:msh/api", Some(&nonce))
            .await;
        assert!(a.text.contains("disabled"), "{}", a.text);
    })
    .await;
}

#[tokio::test]
async fn bad_dpop_proofs_scopes_and_grants_are_named() {
    each_backend(|db| async move {
        let net = net(db.store).await;
        let nonce = net.nonce().await;
        let token_with_proof = |claims: Value| {
            let net = &net;
            async move {
                let proof = sign(&net.dpop, "dpop+jwt", true, &claims);
                net.token_with(
                    &[
                        ("client_assertion", &net.assertion()),
                        ("scope", "nhn:msh/api"),
                    ],
                    Some(&proof),
                )
                .await
            }
        };
        let n = Some(nonce.as_str());
        let mut future = proof_claims("POST", TOKEN_URL, n);
        future["iat"] = (now() + 600).into();
        let mut old = proof_claims("POST", TOKEN_URL, n);
        old["iat"] = (now() - 600).into();
        let mut oldest = proof_claims("POST", TOKEN_URL, n);
        oldest["iat"] = i64::MIN.into();
        let mut latest = proof_claims("POST", TOKEN_URL, n);
        latest["iat"] = u64::MAX.into();
        for (claims, why) in [
            (oldest, "ago"),
            (latest, "future"),
            (proof_claims("GET", TOKEN_URL, n), "htm"),
            (
                proof_claims("POST", "https://helsenett.test/helseid/connect/other", n),
                "htu",
            ),
            (future, "future"),
            (old, "ago"),
        ] {
            let a = token_with_proof(claims).await;
            assert_eq!(a.body["error"], "invalid_dpop_proof", "{why}: {}", a.text);
            assert!(a.text.contains(why), "{why}: {}", a.text);
        }
        let a = token_with_proof(proof_claims("POST", TOKEN_URL, Some("forged-nonce"))).await;
        assert_eq!(a.body["error"], "use_dpop_nonce");
        // The same proof twice.
        let proof = sign(
            &net.dpop,
            "dpop+jwt",
            true,
            &proof_claims("POST", TOKEN_URL, n),
        );
        let first = net
            .token_with(
                &[
                    ("client_assertion", &net.assertion()),
                    ("scope", "nhn:msh/api"),
                ],
                Some(&proof),
            )
            .await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        let second = net
            .token_with(
                &[
                    ("client_assertion", &net.assertion()),
                    ("scope", "nhn:msh/api"),
                ],
                Some(&proof),
            )
            .await;
        assert!(second.text.contains("used before"), "{}", second.text);
        // A DPoP-required client without a proof.
        let a = net
            .token_with(
                &[
                    ("client_assertion", &net.assertion()),
                    ("scope", "nhn:msh/api"),
                ],
                None,
            )
            .await;
        assert_eq!(a.body["error"], "invalid_dpop_proof", "{}", a.text);
        // A private key in the proof's header.
        let mut leaky = Header::new(Algorithm::ES256);
        leaky.typ = Some("dpop+jwt".into());
        let proof = jsonwebtoken::encode(
            &leaky,
            &proof_claims("POST", TOKEN_URL, n),
            &net.dpop.encoding,
        )
        .unwrap();
        let mut parts: Vec<String> = proof.split('.').map(String::from).collect();
        let mut h: Value = serde_json::from_slice(&base64_decode(&parts[0])).unwrap();
        h["jwk"] = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"});
        parts[0] = jose::b64url(h.to_string().as_bytes());
        let a = net
            .token_with(
                &[
                    ("client_assertion", &net.assertion()),
                    ("scope", "nhn:msh/api"),
                ],
                Some(&parts.join(".")),
            )
            .await;
        assert!(a.text.contains("private key"), "{}", a.text);

        for (scope, why) in [
            ("nhn:nothing/api", "not known"),
            ("nhn:adresseregisteret/admin", "may not request"),
            ("openid", "signed-in person"),
            ("", "scope is required"),
        ] {
            let a = net.token_request(&net.assertion(), scope, n).await;
            assert_eq!(a.body["error"], "invalid_scope", "{scope}: {}", a.text);
            assert!(a.text.contains(why), "{scope}: {}", a.text);
        }
        let a = send(
            &net.app,
            form(
                "/helseid/connect/token",
                &[("grant_type", "password")],
                None,
            ),
        )
        .await;
        assert_eq!(a.body["error"], "unsupported_grant_type");
        let a = send(
            &net.app,
            form(
                "/helseid/connect/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("grant_type", "client_credentials"),
                ],
                None,
            ),
        )
        .await;
        assert!(a.text.contains("more than once"), "{}", a.text);
        let a = send(
            &net.app,
            Request::post("/helseid/connect/token")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
        assert_eq!(a.body["error"], "invalid_request");
    })
    .await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

/// A person in the population register, who is also a doctor with an HPR number.
async fn doctor(store: &Store) -> Fodselsnummer {
    let date = NaiveDate::from_ymd_opt(1980, 5, 17).unwrap();
    let nin = (0..999)
        .find_map(|i| Fodselsnummer::new(date, i, NumberKind::Fodselsnummer, true))
        .unwrap();
    with_pool!(store, pool => sqlx::query(
        "INSERT INTO person (nin, number_kind, given_name, family_name, birth_date, sex, municipality,
             street_address, postal_code, postal_place)
         VALUES ($1, 'F', 'Kari', 'Testlege', '1980-05-17', 'F', '0301', 'Gate 1', '0150', 'Oslo')",
    ).bind(nin.to_string()).execute(pool).await.map(drop)).unwrap();
    with_pool!(store, pool => sqlx::query(
        "INSERT INTO health_personnel (hpr, nin, profession, given_name, family_name)
         VALUES (9123456, $1, 'LE', 'Kari', 'Testlege')",
    ).bind(nin.to_string()).execute(pool).await.map(drop))
    .unwrap();
    with_pool!(store, pool => sqlx::query(
        "INSERT INTO hpr_approval (hpr, profession, authorisation, valid_from) VALUES (9123456, 'LE', '1', '2008-06-20')",
    ).execute(pool).await.map(drop))
    .unwrap();
    nin
}

impl Net {
    /// Signs in `pid` through the login page; returns the redirect's query parameters.
    async fn sign_in(
        &self,
        authorize_query: &str,
        pid: &str,
    ) -> std::collections::HashMap<String, String> {
        let page = send(
            &self.app,
            Request::get(format!("/helseid/connect/authorize?{authorize_query}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let request = page
            .text
            .split("name=\"request\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        assert!(page.text.contains(pid), "the page lists the person");
        let done = send(
            &self.app,
            form(
                "/helseid/connect/login",
                &[("request", &request), ("pid", pid)],
                None,
            ),
        )
        .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
        let location = Url::parse(done.headers[header::LOCATION].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(REDIRECT));
        location.query_pairs().into_owned().collect()
    }

    async fn redeem(&self, code: &str, verifier: &str) -> Answer {
        let nonce = self.nonce().await;
        let proof = sign(
            &self.dpop,
            "dpop+jwt",
            true,
            &proof_claims("POST", TOKEN_URL, Some(&nonce)),
        );
        send(
            &self.app,
            form(
                "/helseid/connect/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", verifier),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &self.assertion()),
                ],
                Some(&proof),
            ),
        )
        .await
    }
}

#[tokio::test]
async fn a_doctor_signs_in_with_code_pkce_and_par() {
    each_backend(|db| async move {
        let net = net(db.store.clone()).await;
        let pid = doctor(&db.store).await.to_string();
        let verifier = jose::random_token(40);
        let challenge = jose::sha256_b64url(verifier.as_bytes());
        let scope = "openid profile helseid://scopes/identity/pid helseid://scopes/hpr/hpr_number nhn:kjernejournal/api";
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("client_id", "epj"), ("redirect_uri", REDIRECT), ("response_type", "code"),
                ("scope", scope), ("state", "s1"), ("nonce", "n1"), ("code_challenge", &challenge),
                ("code_challenge_method", "S256")])
            .finish();
        let back = net.sign_in(&query, &pid).await;
        assert_eq!(back["state"], "s1");
        assert_eq!(back["iss"], ISSUER);
        let wrong = net.redeem(&back["code"], &jose::random_token(40)).await;
        assert_eq!(wrong.body["error"], "invalid_grant", "{}", wrong.text);
        // A code is spent by any attempt: the right verifier now finds it gone.
        let spent = net.redeem(&back["code"], &verifier).await;
        assert_eq!(spent.body["error"], "invalid_grant", "{}", spent.text);

        let back = net.sign_in(&query, &pid).await;
        let a = net.redeem(&back["code"], &verifier).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let id_token: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(a.body["id_token"].as_str().unwrap()).unwrap().claims;
        assert_eq!(id_token["aud"], "epj");
        assert_eq!(id_token["nonce"], "n1");
        assert_eq!(id_token["helseid://claims/identity/pid"], pid);
        assert_eq!(id_token["helseid://claims/hpr/hpr_number"], "9123456");
        assert_ne!(id_token["sub"], pid.as_str(), "sub is a pseudonym, not the number");

        let token = a.body["access_token"].as_str().unwrap();
        // The code a second time: refused, and the token its first use got is revoked.
        let reuse = net.redeem(&back["code"], &verifier).await;
        assert_eq!(reuse.body["error"], "invalid_grant", "{}", reuse.text);
        let headers = net.api_headers(token, "GET", "https://helsenett.test/kjernejournal/x");
        let e = net.id.guard()
            .check(&Method::GET, &Uri::from_static("/kjernejournal/x"), &headers, "nhn:kjernejournal", "nhn:kjernejournal/api")
            .await.unwrap_err();
        assert!(e.description.contains("revoked"), "{}", e.description);
        let back = net.sign_in(&query, &pid).await;
        let a = net.redeem(&back["code"], &verifier).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let id_token: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(a.body["id_token"].as_str().unwrap()).unwrap().claims;
        let token = a.body["access_token"].as_str().unwrap();
        let headers = net.api_headers(token, "GET", "https://helsenett.test/kjernejournal/x");
        let principal = net.id.guard()
            .check(&Method::GET, &Uri::from_static("/kjernejournal/x"), &headers, "nhn:kjernejournal", "nhn:kjernejournal/api")
            .await.unwrap();
        let user = principal.user().expect("a person");
        assert_eq!(user.pid.to_string(), pid);
        assert_eq!(user.hpr_number.map(|h| h.get()), Some(9123456));
        assert_eq!(user.security_level, 4);

        let headers = net.api_headers(token, "GET", "https://helsenett.test/helseid/connect/userinfo");
        let mut request = Request::get("/helseid/connect/userinfo").body(Body::empty()).unwrap();
        *request.headers_mut() = headers;
        let info = send(&net.app, request).await;
        assert_eq!(info.status, StatusCode::OK, "{}", info.text);
        assert_eq!(info.body["sub"], id_token["sub"]);
        assert_eq!(info.body["name"], "Kari Testlege");

        // Suspended by Statens helsetilsyn: still a person who may sign in, but not as
        // health personnel.
        let yesterday = helsenett_core::time::today() - chrono::Days::new(1);
        with_pool!(&db.store, pool => sqlx::query(
            "INSERT INTO hpr_suspension (hpr, profession, valid_from) VALUES (9123456, 'LE', $1)",
        ).bind(yesterday.to_string()).execute(pool).await.map(drop)).unwrap();
        let back = net.sign_in(&query, &pid).await;
        let suspended = net.redeem(&back["code"], &verifier).await;
        assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.text);
        let id_token: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(suspended.body["id_token"].as_str().unwrap()).unwrap().claims;
        assert_eq!(id_token["helseid://claims/identity/pid"], pid);
        assert!(id_token.get("helseid://claims/hpr/hpr_number").is_none(), "{id_token}");

        // Pushed authorization request.
        let pushed = send(&net.app, form("/helseid/connect/par", &[
            ("client_id", "epj"), ("redirect_uri", REDIRECT), ("response_type", "code"), ("scope", "openid"),
            ("code_challenge", &challenge), ("code_challenge_method", "S256"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &net.assertion()),
        ], None)).await;
        assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.text);
        let request_uri = pushed.body["request_uri"].as_str().unwrap();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("client_id", "epj"), ("request_uri", request_uri)]).finish();
        let back = net.sign_in(&query, &pid).await;
        assert_eq!(net.redeem(&back["code"], &verifier).await.status, StatusCode::OK);
        // The pushed request is used up.
        let again = send(&net.app, Request::get(format!("/helseid/connect/authorize?{query}")).body(Body::empty()).unwrap()).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);

        // Without PKCE, or with plain: refused back to the client.
        for method in ["plain", ""] {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("client_id", "epj"), ("redirect_uri", REDIRECT), ("response_type", "code"),
                    ("scope", "openid"), ("state", "s2"), ("code_challenge", &challenge), ("code_challenge_method", method)])
                .finish();
            let a = send(&net.app, Request::get(format!("/helseid/connect/authorize?{query}")).body(Body::empty()).unwrap()).await;
            assert_eq!(a.status, StatusCode::SEE_OTHER);
            let location = a.headers[header::LOCATION].to_str().unwrap();
            assert!(location.contains("error=invalid_request") && location.contains("state=s2"), "{location}");
        }
        // An unregistered redirect URI is never redirected to.
        let a = send(&net.app, Request::get("/helseid/connect/authorize?client_id=epj&redirect_uri=https%3A%2F%2Fevil.test%2F&response_type=code").body(Body::empty()).unwrap()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.text.contains("not registered"));
    })
    .await;
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_they_expire() {
    each_backend(|db| async move {
        let net = net(db.store.clone()).await;
        let old = net.token("nhn:msh/api").await;
        let old_kid = jsonwebtoken::decode_header(&old).unwrap().kid.unwrap();
        let new_kid = keys::rotate(&db.store, SigningAlg::PS256, 0, 300)
            .await
            .unwrap();
        // A second node sees the new key at once: it reads keys it does not know.
        let other = node(db.open_another().await, 300).await;
        let other = Net {
            app: other.router(),
            id: other,
            store: net.store.clone(),
            client: es256(),
            dpop: es256(),
        };
        let other = Net {
            client: net.client,
            dpop: net.dpop,
            ..other
        };
        let fresh = other.token("nhn:msh/api").await;
        let header = jsonwebtoken::decode_header(&fresh).unwrap();
        assert_eq!(
            (header.kid.as_deref(), header.alg),
            (Some(new_kid.as_str()), Algorithm::PS256)
        );
        for token in [&old, &fresh] {
            let headers = other.api_headers(token, "GET", API_URL);
            guard_check(&other, &headers, "nhn:msh", "nhn:msh/api")
                .await
                .unwrap();
        }
        let jwks = send(
            &other.app,
            Request::get("/helseid/jwks").body(Body::empty()).unwrap(),
        )
        .await;
        let kids: Vec<&str> = jwks.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert!(
            kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
            "{kids:?}"
        );
        // With a token lifetime of 0 s, the old key's tokens have all expired: it is retired.
        keys::rotate(&db.store, SigningAlg::ES256, 0, 0)
            .await
            .unwrap();
        let left = keys::list(&db.store, 0).await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].signing);
    })
    .await;
}

#[tokio::test]
async fn nodes_share_nonces_and_replay_log() {
    each_backend(|db| async move {
        let a = net(db.store.clone()).await;
        let b = node(db.open_another().await, 300).await;
        let nonce = a.nonce().await;
        let assertion = a.assertion();
        let proof = sign(
            &a.dpop,
            "dpop+jwt",
            true,
            &proof_claims("POST", TOKEN_URL, Some(&nonce)),
        );
        let pairs = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
            ("scope", "nhn:msh/api"),
        ];
        let at_b = send(
            &b.router(),
            form("/helseid/connect/token", &pairs, Some(&proof)),
        )
        .await;
        assert_eq!(
            at_b.status,
            StatusCode::OK,
            "a nonce from node A works at node B: {}",
            at_b.text
        );
        let proof = sign(
            &a.dpop,
            "dpop+jwt",
            true,
            &proof_claims("POST", TOKEN_URL, Some(&nonce)),
        );
        let at_a = send(&a.app, form("/helseid/connect/token", &pairs, Some(&proof))).await;
        assert!(
            at_a.text.contains("used before"),
            "an assertion spent at B is refused at A: {}",
            at_a.text
        );
        // A token revoked at B is refused by A's guard within a second.
        let token = a.token("nhn:msh/api").await;
        let headers = a.api_headers(&token, "GET", API_URL);
        guard_check(&a, &headers, "nhn:msh", "nhn:msh/api")
            .await
            .unwrap();
        let revoked = send(
            &b.router(),
            form(
                "/helseid/connect/revocation",
                &[
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a.assertion()),
                    ("token", &token),
                ],
                None,
            ),
        )
        .await;
        assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let headers = a.api_headers(&token, "GET", API_URL);
        let e = guard_check(&a, &headers, "nhn:msh", "nhn:msh/api")
            .await
            .unwrap_err();
        assert!(e.description.contains("revoked"), "{}", e.description);
    })
    .await;
}

#[tokio::test]
async fn registration_needs_the_admin_token_and_valid_metadata() {
    each_backend(|db| async move {
        let net = net(db.store.clone()).await;
        let key = es256();
        let metadata = json!({
            "client_name": "Sykehus EPJ",
            "jwks": { "keys": [key.public] },
            "grant_types": ["client_credentials"],
            "scope": "nhn:msh/api",
            "token_endpoint_auth_method": "private_key_jwt",
            "orgnr_parent": organisation().to_string(),
        });
        let register = |token: &str, body: &Value| {
            Request::post("/helseid/connect/register")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        let a = send(&net.app, register("wrong", &metadata)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        let a = send(&net.app, register("admin-secret", &metadata)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let client_id = a.body["client_id"].as_str().unwrap();
        assert_eq!(a.body["dpop_bound_access_tokens"], true);
        assert!(clients::get(&db.store, client_id).await.unwrap().is_some());

        let mut bad = metadata.clone();
        bad["orgnr_parent"] = "123456789".into();
        let a = send(&net.app, register("admin-secret", &bad)).await;
        assert_eq!(a.body["error"], "invalid_client_metadata");
        assert!(a.text.contains("orgnr_parent"), "{}", a.text);
        let mut private = metadata.clone();
        private["jwks"]["keys"][0]["d"] = "AAAA".into();
        let a = send(&net.app, register("admin-secret", &private)).await;
        assert!(a.text.contains("private key"), "{}", a.text);
        let mut insecure = metadata.clone();
        insecure["grant_types"] = json!(["authorization_code"]);
        insecure["redirect_uris"] = json!(["http://example.test/cb"]);
        let a = send(&net.app, register("admin-secret", &insecure)).await;
        assert_eq!(a.body["error"], "invalid_redirect_uri", "{}", a.text);
        let mut secret = metadata.clone();
        secret["token_endpoint_auth_method"] = "client_secret_basic".into();
        let a = send(&net.app, register("admin-secret", &secret)).await;
        assert!(a.text.contains("private_key_jwt"), "{}", a.text);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_assertion_sent_many_times_at_once_gets_one_token() {
    each_backend(|db| async move {
        let net = net(db.store).await;
        let nonce = net.nonce().await;
        let assertion = net.assertion();
        let attempts = (0..32).map(|_| {
            let proof = sign(
                &net.dpop,
                "dpop+jwt",
                true,
                &proof_claims("POST", TOKEN_URL, Some(&nonce)),
            );
            let request = form(
                "/helseid/connect/token",
                &[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                    ("scope", "nhn:msh/api"),
                ],
                Some(&proof),
            );
            let app = net.app.clone();
            tokio::spawn(async move { send(&app, request).await })
        });
        let mut issued = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            let a = attempt.await.unwrap();
            match a.status {
                StatusCode::OK => issued += 1,
                _ => assert!(a.text.contains("used before"), "{}", a.text),
            }
        }
        assert_eq!(issued, 1);
    })
    .await;
}

#[tokio::test]
async fn a_client_sees_and_revokes_only_its_own_tokens() {
    each_backend(|db| async move {
        let net = net(db.store.clone()).await;
        let token = net.token("nhn:msh/api").await;
        let other_key = es256();
        let mut other = system_client("other", &other_key);
        other.orgnr_parent = Organisasjonsnummer::synthetic(43).unwrap();
        assert!(clients::insert(&db.store, &[other]).await.unwrap());
        let call = |path: &'static str, key: &'static str| {
            let net = &net;
            let other_key = &other_key;
            let token = token.clone();
            async move {
                let (client, key) = if key == "own" {
                    ("epj", &net.client)
                } else {
                    ("other", other_key)
                };
                let assertion = sign(key, "JWT", false, &assertion_claims(client));
                send(
                    &net.app,
                    form(
                        path,
                        &[
                            (
                                "client_assertion_type",
                                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                            ),
                            ("client_assertion", &assertion),
                            ("token", &token),
                        ],
                        None,
                    ),
                )
                .await
            }
        };
        let a = call("/helseid/connect/introspect", "other").await;
        assert_eq!(
            a.body,
            json!({ "active": false }),
            "another organisation learns nothing"
        );
        let a = call("/helseid/connect/revocation", "other").await;
        assert_eq!(a.body["error"], "unauthorized_client", "{}", a.text);
        let a = call("/helseid/connect/introspect", "own").await;
        assert_eq!(a.body["active"], true, "{}", a.text);
        assert_eq!(a.body["token_type"], "DPoP");
        assert_eq!(
            call("/helseid/connect/revocation", "own").await.status,
            StatusCode::OK
        );
        let a = call("/helseid/connect/introspect", "own").await;
        assert_eq!(a.body, json!({ "active": false }));
        // Revoking a token that is no longer valid is fine (RFC 7009 §2.2).
        assert_eq!(
            call("/helseid/connect/revocation", "own").await.status,
            StatusCode::OK
        );
    })
    .await;
}

#[tokio::test]
async fn review_findings_stay_fixed() {
    each_backend(|db| async move {
        let net = net(db.store.clone()).await;
        let nonce = net.nonce().await;
        // An assertion for two audiences, an unknown critical extension, an iss nobody has.
        let mut two = assertion_claims("epj");
        two["aud"] = json!([ISSUER, "https://other-as.test"]);
        let mut crit = Header::new(Algorithm::ES256);
        crit.kid = net.client.public.common.key_id.clone();
        crit.crit = Some(vec!["urn:example:must-understand".into()]);
        let long = "x".repeat(5000);
        for (assertion, why) in [
            (sign(&net.client, "JWT", false, &two), "one value"),
            (
                jsonwebtoken::encode(&crit, &assertion_claims("epj"), &net.client.encoding)
                    .unwrap(),
                "crit",
            ),
            (
                sign(&net.client, "JWT", false, &assertion_claims(&long)),
                "longer than any client_id",
            ),
        ] {
            let a = net
                .token_request(&assertion, "nhn:msh/api", Some(&nonce))
                .await;
            assert_eq!(a.body["error"], "invalid_client", "{why}: {}", a.text);
            assert!(a.text.contains(why), "{why}: {}", a.text);
        }
        // A redirect URI with a space in it is two words, not one URI.
        let mut spaced = system_client("spaced", &es256());
        spaced.redirect_uris = vec!["https://client.test/cb y".into()];
        assert!(spaced.validate().is_err());
        // A loopback redirect URI matches on any port (RFC 8252 §7.3); other hosts do not.
        let client = clients::get(&db.store, "epj").await.unwrap().unwrap();
        assert!(client.allows_redirect("http://127.0.0.1:51234/callback"));
        assert!(!client.allows_redirect("http://127.0.0.1:51234/other"));
        assert!(!client.allows_redirect("http://evil.test:9999/callback"));
        // An oversized state is refused back to the client, not stored.
        let challenge = jose::sha256_b64url(b"verifier-verifier-verifier-verifier-verifier");
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", "epj"),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "openid"),
                ("state", &"s".repeat(600)),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .finish();
        let a = send(
            &net.app,
            Request::get(format!("/helseid/connect/authorize?{query}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        assert!(
            a.headers[header::LOCATION]
                .to_str()
                .unwrap()
                .contains("error=invalid_request")
        );
        // The same request as a form post is a login page (OIDC Core §3.1.2.1); prompt=none
        // has no session to use.
        let fields = [
            ("client_id", "epj"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s3"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let a = send(&net.app, form("/helseid/connect/authorize", &fields, None)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert!(a.text.contains("name=\"request\""));
        let mut silent = fields.to_vec();
        silent.push(("prompt", "none"));
        let a = send(&net.app, form("/helseid/connect/authorize", &silent, None)).await;
        let location = a.headers[header::LOCATION].to_str().unwrap();
        assert!(
            location.contains("error=login_required") && location.contains("state=s3"),
            "{location}"
        );
        // A path that looks like another host is not resolved into one.
        let token = net.token("nhn:msh/api").await;
        let headers = net.api_headers(&token, "GET", "https://evil.test/msh/Messages");
        let e = net
            .id
            .guard()
            .check(
                &Method::GET,
                &Uri::from_static("//evil.test/msh/Messages"),
                &headers,
                "nhn:msh",
                "nhn:msh/api",
            )
            .await
            .unwrap_err();
        assert!(e.description.contains("htu"), "{}", e.description);
        // No credentials: a challenge without an error code (RFC 6750 §3.1).
        let response = axum::response::IntoResponse::into_response(
            guard_check(&net, &HeaderMap::new(), "nhn:msh", "nhn:msh/api")
                .await
                .unwrap_err(),
        );
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("DPoP algs=") && !challenge.contains("error="),
            "{challenge}"
        );
    })
    .await;
}
