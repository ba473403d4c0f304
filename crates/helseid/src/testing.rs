//! For other crates' tests: a registered client that gets real access tokens from a HelseID
//! node, as an EPJ would: for its organisation (client_credentials with private_key_jwt), and for
//! a person who signs in at the test identity provider (authorization code with PKCE).

use axum::{
    body::{Body, to_bytes},
    http::{Request, header},
};
use helsenett_core::Organisasjonsnummer;
use helsenett_store::Store;
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet},
};
use openssl::{
    ec::{EcGroup, EcKey},
    nid::Nid,
    pkey::PKey,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{
    HelseId,
    clients::{self, AUTHORIZATION_CODE, CLIENT_CREDENTIALS, Client},
    jose,
};

/// Where the test client's sign-ins return.
const REDIRECT: &str = "http://127.0.0.1/callback";

/// A client that takes bearer tokens (no DPoP), for the organisation it is registered for.
pub struct TestClient {
    pub client_id: String,
    pub organisation: Organisasjonsnummer,
    key: EncodingKey,
    kid: String,
}

impl TestClient {
    /// Registers a client of `organisation` allowed `scopes`.
    pub async fn register(
        store: &Store,
        client_id: &str,
        organisation: Organisasjonsnummer,
        scopes: &[&str],
    ) -> Self {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        let der = PKey::from_ec_key(EcKey::generate(&group).expect("a key"))
            .and_then(|k| k.private_key_to_pkcs8())
            .expect("PKCS#8");
        let key = EncodingKey::from_ec_der(&der);
        let mut public = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("a JWK");
        let kid = jose::thumbprint(&public).expect("a thumbprint");
        public.common.key_id = Some(kid.clone());
        let client = Client {
            client_id: client_id.into(),
            name: format!("{client_id} (test)"),
            jwks: JwkSet { keys: vec![public] },
            grant_types: vec![CLIENT_CREDENTIALS.into(), AUTHORIZATION_CODE.into()],
            // openid: a person may sign in through it.
            scopes: scopes
                .iter()
                .chain(&[crate::catalogue::OPENID])
                .map(|s| (*s).to_owned())
                .collect(),
            redirect_uris: vec![REDIRECT.into()],
            orgnr_parent: organisation,
            orgnr_child: None,
            dpop_required: false,
            enabled: true,
            created_at: crate::now(),
        };
        clients::insert(store, &[client])
            .await
            .expect("the client is stored");
        Self {
            client_id: client_id.into(),
            organisation,
            key,
            kid,
        }
    }

    /// A fresh access token for `scope` from `helseid`'s token endpoint.
    pub async fn token(&self, helseid: &HelseId, scope: &str) -> String {
        self.redeem(
            helseid,
            &[("grant_type", CLIENT_CREDENTIALS), ("scope", scope)],
        )
        .await
    }

    /// An access token for `scope` for the person `pid`, who signs in at the test identity
    /// provider (authorization code with PKCE, as an EPJ's user would).
    pub async fn user_token(&self, helseid: &HelseId, pid: &str, scope: &str) -> String {
        let verifier = jose::random_token(40);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", self.client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", &format!("openid {scope}")),
                ("code_challenge", &jose::sha256_b64url(verifier.as_bytes())),
                ("code_challenge_method", "S256"),
            ])
            .finish();
        let request = Request::get(format!("/helseid/connect/authorize?{query}"))
            .body(Body::empty())
            .expect("a request");
        let page = text(helseid.router().oneshot(request).await.expect("a page")).await;
        let key = page
            .split("name=\"request\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no sign-in form: {page}"))
            .to_owned();
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("request", key.as_str()), ("pid", pid)])
            .finish();
        let request = Request::post("/helseid/connect/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("a request");
        let response = helseid.router().oneshot(request).await.expect("an answer");
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no redirect after sign-in as {pid}"));
        let code = url::Url::parse(&location)
            .expect("a URL")
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code: {location}"));
        self.redeem(
            helseid,
            &[
                ("grant_type", AUTHORIZATION_CODE),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ],
        )
        .await
    }

    /// Posts `pairs` with a fresh client assertion to the token endpoint.
    async fn redeem(&self, helseid: &HelseId, pairs: &[(&str, &str)]) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".into());
        header.kid = Some(self.kid.clone());
        let now = crate::now();
        let claims = json!({ "iss": self.client_id, "sub": self.client_id, "aud": helseid.issuer(),
                             "iat": now, "exp": now + 30, "jti": jose::random_token(12) });
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key).expect("signed");
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().copied())
            .extend_pairs([
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
            ])
            .finish();
        let request = Request::post("/helseid/connect/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("a request");
        let response = helseid.router().oneshot(request).await.expect("an answer");
        let body: Value = serde_json::from_str(&text(response).await).expect("JSON");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {pairs:?}: {body}"))
            .to_owned()
    }
}

async fn text(response: axum::response::Response) -> String {
    let body = to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    String::from_utf8(body.to_vec()).expect("UTF-8")
}
