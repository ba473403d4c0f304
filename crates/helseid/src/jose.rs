//! The JWT plumbing every HelseID check shares: split a compact JWS, read its header (refusing
//! `none`, symmetric algorithms and embedded private keys) and verify its signature with a JWK.
//! Claims are checked by the caller, which knows what each claim must be and can say precisely
//! what is wrong.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey, Header, Validation,
    jwk::{Jwk, ThumbprintHash},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Larger JWTs are refused before any parsing: no legitimate assertion, proof or token is near.
pub const MAX_JWT_BYTES: usize = 16 * 1024;

/// Algorithms accepted from clients (assertions, DPoP proofs): asymmetric only, so that a public
/// key can never be used as an HMAC secret.
pub const CLIENT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];

/// Names of [`CLIENT_ALGORITHMS`], for discovery metadata.
pub fn algorithm_names(algs: &[Algorithm]) -> Vec<String> {
    algs.iter().map(|a| format!("{a:?}")).collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("is not a JWT (three base64url parts separated by dots)")]
    Malformed,
    #[error("is longer than {MAX_JWT_BYTES} bytes")]
    TooLarge,
    #[error("has an unreadable header ({0})")]
    Header(String),
    #[error(
        "uses alg {0:?}; only asymmetric algorithms are accepted (ES256, ES384, PS256, PS384, PS512, RS256, RS384, RS512)"
    )]
    Algorithm(String),
    #[error("carries a private key in its jwk header")]
    PrivateKey,
    #[error("has a key that does not fit its alg ({0})")]
    Key(String),
    #[error("has an invalid signature")]
    Signature,
    #[error("has unreadable claims ({0})")]
    Claims(String),
}

/// A JWT whose header has been read and checked, but whose signature has not been verified.
#[derive(Debug)]
pub struct Unverified<'a> {
    token: &'a str,
    pub header: Header,
    payload: &'a str,
}

/// Reads a compact JWS's header. The signature is checked by [`Unverified::verify`].
pub fn parse(token: &str) -> Result<Unverified<'_>, JwtError> {
    if token.len() > MAX_JWT_BYTES {
        return Err(JwtError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let raw: Map<String, Value> = decode_json(header).map_err(JwtError::Header)?;
    let alg = raw.get("alg").and_then(Value::as_str).unwrap_or("");
    let accepted = CLIENT_ALGORITHMS.iter().any(|a| format!("{a:?}") == alg);
    if !accepted {
        return Err(JwtError::Algorithm(alg.to_owned()));
    }
    if payload.is_empty() || signature.is_empty() {
        return Err(JwtError::Malformed);
    }
    if raw.contains_key("crit") {
        // No extension is understood here, so none may be critical (RFC 7515 §4.1.11).
        return Err(JwtError::Header(
            "crit names extensions this server does not understand".into(),
        ));
    }
    if let Some(jwk) = raw.get("jwk").and_then(Value::as_object)
        && ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|private| jwk.contains_key(*private))
    {
        return Err(JwtError::PrivateKey);
    }
    let header: Header =
        serde_json::from_value(Value::Object(raw)).map_err(|e| JwtError::Header(e.to_string()))?;
    Ok(Unverified {
        token,
        header,
        payload,
    })
}

impl Unverified<'_> {
    /// The claims, before the signature is verified: only to find which key to verify with.
    pub fn claims_unverified<T: DeserializeOwned>(&self) -> Result<T, JwtError> {
        decode_json(self.payload).map_err(JwtError::Claims)
    }

    /// Verifies the signature with `jwk` and returns the claims.
    pub fn verify_jwk<T: DeserializeOwned>(&self, jwk: &Jwk) -> Result<T, JwtError> {
        let key = DecodingKey::from_jwk(jwk).map_err(|e| JwtError::Key(e.to_string()))?;
        self.verify(&key)
    }

    /// Verifies the signature with `key` and returns the claims. Time and audience are the
    /// caller's to check.
    pub fn verify<T: DeserializeOwned>(&self, key: &DecodingKey) -> Result<T, JwtError> {
        let mut validation = Validation::new(self.header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        match jsonwebtoken::decode::<T>(self.token, key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtError::Signature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
                | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => JwtError::Key(e.to_string()),
                jsonwebtoken::errors::ErrorKind::Base64(_) => JwtError::Malformed,
                _ => JwtError::Claims(e.to_string()),
            }),
        }
    }
}

fn decode_json<T: DeserializeOwned>(part: &str) -> Result<T, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "not base64url".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// The public JWK of a signing key, with its thumbprint as `kid` and `use: sig`.
pub fn public_signing_jwk(
    key: &jsonwebtoken::EncodingKey,
    alg: Algorithm,
) -> Result<Jwk, JwtError> {
    let mut public = Jwk::from_encoding_key(key, alg).map_err(|e| JwtError::Key(e.to_string()))?;
    public.common.key_id = Some(thumbprint(&public)?);
    public.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    Ok(public)
}

/// The RFC 7638 SHA-256 thumbprint of a public key, as `cnf.jkt` carries it.
pub fn thumbprint(jwk: &Jwk) -> Result<String, JwtError> {
    jwk.thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| JwtError::Key(e.to_string()))
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256_b64url(data: &[u8]) -> String {
    b64url(&openssl::sha::sha256(data))
}

/// `n` random bytes, base64url: identifiers, codes and nonces nobody can guess.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    openssl::rand::rand_bytes(&mut bytes).expect("the system random generator works");
    b64url(&bytes)
}

/// The `aud` claim: one audience or several.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }

    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 {
            Audience::One(list.remove(0))
        } else {
            Audience::Many(list)
        }
    }

    pub fn as_slice(&self) -> &[String] {
        match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(all) => all,
        }
    }
}

/// An RFC 7519 NumericDate, which may have a fraction: whole seconds, rounded down. Values
/// beyond the range of `i64` are clamped, so that they read as far past or far future.
pub fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let value: Option<serde_json::Number> = serde::Deserialize::deserialize(d)?;
    Ok(value.map(|n| match n.as_i64() {
        Some(i) => i,
        None => n.as_f64().map_or(i64::MAX, |f| f.floor() as i64),
    }))
}
