//! Form parameters (`application/x-www-form-urlencoded`) and client authentication, shared by
//! every endpoint a client posts to.

use std::{collections::HashMap, sync::Arc};

use axum::http::{HeaderMap, header};
use serde::Deserialize;
use url::Url;

use crate::{
    HelseId, OAuthError,
    clients::{self, Client},
    dpop::{CLOCK_SKEW_SECONDS, Proof},
    jose::{self, Audience},
};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A client assertion may expire at most this far ahead (RFC 7523 as HelseID profiles it).
pub const MAX_ASSERTION_SECONDS: i64 = 60;

/// The parameters of a form post. A parameter given twice is an error (RFC 6749 §3.2).
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().unwrap_or("").trim() == "application/x-www-form-urlencoded"
            });
        if !form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        Self::decode(body)
    }

    pub fn from_query(query: Option<&str>) -> Result<Self, OAuthError> {
        Self::decode(query.unwrap_or("").as_bytes())
    }

    fn decode(encoded: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(encoded) {
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {k:?} is given more than once"
                )));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter {name} is required")))
    }

    /// The space-separated `scope` parameter.
    pub fn scopes(&self) -> Vec<String> {
        self.get("scope")
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    #[serde(default, deserialize_with = "jose::numeric_date")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "jose::numeric_date")]
    iat: Option<i64>,
    #[serde(default, deserialize_with = "jose::numeric_date")]
    nbf: Option<i64>,
    jti: Option<String>,
}

impl HelseId {
    /// Authenticates the client of a request by its `private_key_jwt` assertion (RFC 7523),
    /// recording the assertion's jti, and the request's DPoP proof's, so that neither is ever
    /// accepted twice. `endpoint` is the URL the request was sent to, which the assertion's
    /// `aud` may name instead of the issuer.
    pub(crate) async fn authenticate(
        &self,
        params: &Params,
        headers: &HeaderMap,
        endpoint: &Url,
        proof: Option<&Proof>,
    ) -> Result<Arc<Client>, OAuthError> {
        let refuse = |why: String| Err(OAuthError::invalid_client(why));
        if headers.contains_key(header::AUTHORIZATION) || params.get("client_secret").is_some() {
            return refuse(
                "client secrets are not accepted: authenticate with private_key_jwt".into(),
            );
        }
        match params.get("client_assertion_type") {
            Some(JWT_BEARER) => {}
            Some(other) => {
                return refuse(format!(
                    "client_assertion_type {other:?} is not supported; use {JWT_BEARER}"
                ));
            }
            None => {
                return refuse(format!(
                    "client authentication is required: private_key_jwt with client_assertion_type {JWT_BEARER}"
                ));
            }
        }
        let Some(assertion) = params.get("client_assertion") else {
            return refuse("client_assertion is required".into());
        };
        let jwt = jose::parse(assertion)
            .map_err(|e| OAuthError::invalid_client(format!("the client assertion {e}")))?;
        let peek: AssertionClaims = jwt
            .claims_unverified()
            .map_err(|e| OAuthError::invalid_client(format!("the client assertion {e}")))?;
        let Some(client_id) = peek.iss.filter(|i| !i.is_empty()) else {
            return refuse("the client assertion has no iss (the client_id)".into());
        };
        if client_id.len() > clients::MAX_CLIENT_ID {
            return refuse("the client assertion's iss is longer than any client_id".into());
        }
        if let Some(named) = params.get("client_id")
            && named != client_id
        {
            return refuse(format!(
                "client_id {named:?} differs from the client assertion's iss {client_id:?}"
            ));
        }
        let Some(client) = self.0.clients.get(&client_id).await? else {
            return refuse(format!("client {client_id:?} is not registered"));
        };
        if !client.enabled {
            return refuse(format!("client {client_id:?} is disabled"));
        }
        let key = match &jwt.header.kid {
            Some(kid) => client.jwks.find(kid),
            None if client.jwks.keys.len() == 1 => client.jwks.keys.first(),
            None => None,
        };
        let Some(key) = key else {
            return refuse(match &jwt.header.kid {
                Some(kid) => format!("the client's JWK set has no key with kid {kid:?}"),
                None => "the client assertion must name its key (kid)".into(),
            });
        };
        let claims: AssertionClaims = jwt
            .verify_jwk(key)
            .map_err(|e| OAuthError::invalid_client(format!("the client assertion {e}")))?;
        let now = crate::now();
        if claims.sub.as_deref() != Some(client_id.as_str()) {
            return refuse("the client assertion's sub must equal its iss (the client_id)".into());
        }
        let issuer = self.issuer();
        // One audience, and it must be this server: an assertion that also names another server
        // could be replayed there (the audience-injection findings behind RFC 7523bis).
        let ours = [issuer, self.0.endpoints.token.as_str(), endpoint.as_str()];
        let aud_ok = match claims.aud.as_ref().map(Audience::as_slice) {
            Some([aud]) => ours.contains(&aud.as_str()),
            _ => false,
        };
        if !aud_ok {
            return refuse(format!(
                "the client assertion's aud must be one value: the issuer {issuer:?} or the endpoint URL"
            ));
        }
        let Some(exp) = claims.exp else {
            return refuse("the client assertion has no exp".into());
        };
        if exp <= now - CLOCK_SKEW_SECONDS {
            return refuse(format!(
                "the client assertion expired {} s ago",
                now.saturating_sub(exp)
            ));
        }
        if exp > now + MAX_ASSERTION_SECONDS + CLOCK_SKEW_SECONDS {
            return refuse(format!(
                "the client assertion's exp is {} s ahead; at most {MAX_ASSERTION_SECONDS} s is accepted",
                exp - now
            ));
        }
        if let Some(t) = claims
            .nbf
            .into_iter()
            .chain(claims.iat)
            .find(|t| *t > now + CLOCK_SKEW_SECONDS)
        {
            return refuse(format!(
                "the client assertion is not valid yet (iat/nbf {} s in the future)",
                t - now
            ));
        }
        let Some(jti) = claims.jti.filter(|j| !j.is_empty() && j.len() <= 256) else {
            return refuse("the client assertion has no jti".into());
        };
        // Both identifiers in one group commit: a token costs one wait for the replay log.
        let mut keys = vec![(
            format!("assertion:{client_id}:{jti}"),
            exp + CLOCK_SKEW_SECONDS,
        )];
        keys.extend(proof.map(Proof::replay_key));
        let firsts = self.0.jtis.first_use_all(keys).await?;
        if !firsts[0] {
            return refuse("the client assertion's jti has been used before".into());
        }
        if firsts.get(1) == Some(&false) {
            return Err(OAuthError::invalid_dpop_proof(
                "the DPoP proof's jti has been used before",
            ));
        }
        Ok(client)
    }
}
