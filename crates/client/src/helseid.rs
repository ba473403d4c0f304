//! Access tokens from HelseID as an EPJ gets them: client_credentials with a private_key_jwt
//! assertion (RFC 7523), bound to a DPoP key (RFC 9449), retrying once with the server's nonce.

use std::{
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::{
    credentials::SystemClient,
    jose::{self, Es256Key},
};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// A system client's tokens for one scope, renewed as they expire.
pub struct Tokens {
    http: reqwest::Client,
    issuer: String,
    token_endpoint: Url,
    client: SystemClient,
    scope: String,
    dpop: Es256Key,
    current: Mutex<Option<(String, Instant)>>,
}

impl Tokens {
    /// Reads `issuer`'s discovery document.
    pub async fn discover(
        http: reqwest::Client,
        issuer: &str,
        client: SystemClient,
        scope: &str,
    ) -> Result<Self> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Discovery = http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .error_for_status()?
            .json()
            .await
            .with_context(|| format!("{url} is not a discovery document"))?;
        let token_endpoint = Url::parse(&discovery.token_endpoint)
            .with_context(|| format!("{url} names no valid token endpoint"))?;
        Ok(Tokens {
            http,
            issuer: discovery.issuer,
            token_endpoint,
            client,
            scope: scope.to_owned(),
            dpop: Es256Key::generate()?,
            current: Mutex::new(None),
        })
    }

    /// A valid access token, fetching a new one when needed.
    pub async fn access_token(&self) -> Result<String> {
        if let Some((token, until)) = self.current.lock().expect("not poisoned").clone()
            && Instant::now() < until
        {
            return Ok(token);
        }
        let (token, lifetime) = self.fetch().await?;
        let until = Instant::now() + Duration::from_secs(lifetime).saturating_sub(RENEW_BEFORE);
        *self.current.lock().expect("not poisoned") = Some((token.clone(), until));
        Ok(token)
    }

    /// A DPoP proof for `method url` carrying `access_token`'s hash.
    pub fn proof(&self, method: &str, url: &Url, access_token: &str) -> Result<String> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        self.sign_proof(json!({
            "jti": jose::jti(), "htm": method, "htu": htu.as_str(), "iat": now(),
            "ath": jose::b64url(&openssl::sha::sha256(access_token.as_bytes())),
        }))
    }

    fn sign_proof(&self, claims: serde_json::Value) -> Result<String> {
        self.dpop.sign(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.dpop.public_jwk()}),
            &claims,
        )
    }

    async fn fetch(&self) -> Result<(String, u64)> {
        let mut nonce: Option<String> = None;
        for _ in 0..2 {
            let iat = now();
            let assertion = self.client.key.sign(
                &json!({"alg": "ES256", "typ": "JWT", "kid": self.client.kid}),
                &json!({"iss": self.client.id, "sub": self.client.id, "aud": self.issuer,
                        "iat": iat, "exp": iat + 60, "jti": jose::jti()}),
            )?;
            let mut claims = json!({"jti": jose::jti(), "htm": "POST",
                                    "htu": self.token_endpoint.as_str(), "iat": iat});
            if let Some(nonce) = &nonce {
                claims["nonce"] = json!(nonce);
            }
            let response = self
                .http
                .post(self.token_endpoint.clone())
                .header("dpop", self.sign_proof(claims)?)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", self.scope.as_str()),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .with_context(|| format!("POST {}", self.token_endpoint))?;
            let fresh = response
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let status = response.status();
            let body = response.bytes().await?;
            if status.is_success() {
                let token: TokenResponse = serde_json::from_slice(&body)
                    .context("HelseID answered without a token response")?;
                if !token.token_type.eq_ignore_ascii_case("DPoP") {
                    bail!("HelseID issued a {} token, not DPoP", token.token_type);
                }
                return Ok((token.access_token, token.expires_in));
            }
            let error: Option<ErrorResponse> = serde_json::from_slice(&body).ok();
            match (error, fresh) {
                (Some(e), Some(fresh)) if e.error == "use_dpop_nonce" => nonce = Some(fresh),
                (Some(e), _) => bail!(
                    "HelseID refused client {}: {} ({})",
                    self.client.id,
                    e.error,
                    e.error_description
                ),
                (None, _) => bail!(
                    "HelseID answered HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                ),
            }
        }
        bail!("HelseID asked for a new DPoP nonce twice in a row")
    }
}
