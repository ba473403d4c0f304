//! For other crates' tests: a registered system client that gets real access tokens from a
//! HelseID node's token endpoint (client_credentials with private_key_jwt), as an EPJ would.

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
    clients::{self, CLIENT_CREDENTIALS, Client},
    jose,
};

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
            grant_types: vec![CLIENT_CREDENTIALS.into()],
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            redirect_uris: vec![],
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
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".into());
        header.kid = Some(self.kid.clone());
        let now = crate::now();
        let claims = json!({ "iss": self.client_id, "sub": self.client_id, "aud": helseid.issuer(),
                             "iat": now, "exp": now + 30, "jti": jose::random_token(12) });
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key).expect("signed");
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", CLIENT_CREDENTIALS),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
                ("scope", scope),
            ])
            .finish();
        let request = Request::post("/helseid/connect/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("a request");
        let response = helseid.router().oneshot(request).await.expect("an answer");
        let body = to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("a body");
        let body: Value = serde_json::from_slice(&body).expect("JSON");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {scope}: {body}"))
            .to_owned()
    }
}
