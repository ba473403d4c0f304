//! DPoP (RFC 9449): proof verification, shared by the token endpoint and every resource server,
//! and the server nonces that bound how long a proof can be used.
//!
//! Nonces are stateless: an HMAC of the time window under a secret kept in the database, so any
//! node accepts a nonce any other node issued, without a write per nonce.

use aws_lc_rs::hmac;
use jsonwebtoken::jwk::Jwk;
use openssl::memcmp;
use serde::Deserialize;
use url::Url;

use crate::jose::{self, JwtError};

/// A nonce stays valid for the window it was issued in and the next one.
pub const NONCE_WINDOW_SECONDS: i64 = 120;
/// A proof may be this old (its `iat`) ...
pub const MAX_PROOF_AGE_SECONDS: i64 = 120;
/// ... or this far in the future, for clocks that run ahead.
pub const CLOCK_SKEW_SECONDS: i64 = 10;

pub struct Nonces {
    key: hmac::Key,
}

impl Nonces {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn mac(&self, window: i64) -> [u8; 16] {
        let tag = hmac::sign(&self.key, &window.to_be_bytes());
        let mut mac = [0u8; 16];
        mac.copy_from_slice(&tag.as_ref()[..16]);
        mac
    }

    /// The nonce to hand out at `now`.
    pub fn issue(&self, now: i64) -> String {
        let window = now.div_euclid(NONCE_WINDOW_SECONDS);
        let mut raw = window.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.mac(window));
        jose::b64url(&raw)
    }

    /// Whether `nonce` was issued by this network in the current or the previous window.
    pub fn is_valid(&self, nonce: &str, now: i64) -> bool {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Ok(bytes) = <[u8; 24]>::try_from(raw.as_slice()) else {
            return false;
        };
        let window = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let current = now.div_euclid(NONCE_WINDOW_SECONDS);
        (window == current || window == current - 1) && memcmp::eq(&bytes[8..], &self.mac(window))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("the DPoP proof {0}")]
    Jwt(#[from] JwtError),
    #[error("the DPoP proof must have typ \"dpop+jwt\"")]
    Type,
    #[error("the DPoP proof must carry its public key in the jwk header")]
    NoKey,
    #[error("the DPoP proof lacks the {0} claim")]
    Missing(&'static str),
    #[error("the DPoP proof's htm is {found:?}, but the request's method is {expected}")]
    Method { found: String, expected: String },
    #[error("the DPoP proof's htu is {found:?}, but the request was sent to {expected}")]
    Url { found: String, expected: String },
    #[error("the DPoP proof was made {0} s ago; at most {MAX_PROOF_AGE_SECONDS} s is accepted")]
    TooOld(i64),
    #[error("the DPoP proof's iat is {0} s in the future")]
    Future(i64),
    #[error("the DPoP proof's ath does not match the access token")]
    AccessTokenHash,
    /// No nonce, a stale one, or not ours: the client retries with the nonce it is given.
    #[error("the DPoP proof must carry the server's current nonce")]
    NonceRequired,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    #[serde(default, deserialize_with = "jose::numeric_date")]
    iat: Option<i64>,
    nonce: Option<String>,
    ath: Option<String>,
}

/// What a proof must match.
pub struct Expected<'a> {
    pub method: &'a str,
    /// The request's URL as the client addressed it, without query and fragment.
    pub url: &'a Url,
    /// At a resource server: the access token the proof must name in `ath`.
    pub access_token: Option<&'a str>,
    /// At the token endpoint: the nonces a proof must carry one of.
    pub nonces: Option<&'a Nonces>,
    pub now: i64,
}

/// A verified proof.
#[derive(Debug)]
pub struct Proof {
    /// Thumbprint of the proof's key: what a token is bound to.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

impl Proof {
    /// The replay-log key of this proof, and how long to keep it.
    pub fn replay_key(&self) -> (String, i64) {
        (
            format!("dpop:{}:{}", self.jkt, self.jti),
            self.iat + MAX_PROOF_AGE_SECONDS + CLOCK_SKEW_SECONDS,
        )
    }
}

/// Verifies `proof` against `expected`. Replay is the caller's to check, with [`Proof::replay_key`].
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
    let jwt = jose::parse(proof)?;
    if jwt.header.typ.as_deref() != Some("dpop+jwt") {
        return Err(ProofError::Type);
    }
    let jwk: &Jwk = jwt.header.jwk.as_ref().ok_or(ProofError::NoKey)?;
    let claims: ProofClaims = jwt.verify_jwk(jwk)?;
    let jti = claims.jti.filter(|j| !j.is_empty() && j.len() <= 256);
    let jti = jti.ok_or(ProofError::Missing("jti"))?;
    let htm = claims.htm.ok_or(ProofError::Missing("htm"))?;
    if htm != expected.method {
        return Err(ProofError::Method {
            found: htm,
            expected: expected.method.to_owned(),
        });
    }
    let htu = claims.htu.ok_or(ProofError::Missing("htu"))?;
    if !same_resource(&htu, expected.url) {
        return Err(ProofError::Url {
            found: htu,
            expected: expected.url.to_string(),
        });
    }
    let iat = claims.iat.ok_or(ProofError::Missing("iat"))?;
    // Saturating: an iat of i64::MIN must read as "too old", not wrap to "just made".
    let age = expected.now.saturating_sub(iat);
    if age < -CLOCK_SKEW_SECONDS {
        return Err(ProofError::Future(-age));
    }
    if age > MAX_PROOF_AGE_SECONDS {
        return Err(ProofError::TooOld(age));
    }
    if let Some(token) = expected.access_token {
        let ath = claims.ath.ok_or(ProofError::Missing("ath"))?;
        if !memcmp_str(&ath, &jose::sha256_b64url(token.as_bytes())) {
            return Err(ProofError::AccessTokenHash);
        }
    }
    if let Some(nonces) = expected.nonces {
        match claims.nonce {
            None => return Err(ProofError::NonceRequired),
            // Stale or not ours: either way the client retries with a fresh one.
            Some(n) if !nonces.is_valid(&n, expected.now) => {
                return Err(ProofError::NonceRequired);
            }
            Some(_) => {}
        }
    }
    Ok(Proof {
        jkt: jose::thumbprint(jwk)?,
        jti,
        iat,
    })
}

fn memcmp_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// RFC 9449 §4.3: htu matches the request URI without query and fragment; scheme and host
/// compare case-insensitively (the URL parser lowercases them), default ports are implied.
fn same_resource(htu: &str, url: &Url) -> bool {
    let Ok(mut htu) = Url::parse(htu) else {
        return false;
    };
    htu.set_query(None);
    htu.set_fragment(None);
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    htu == url
}
