//! The guard every API uses: it verifies a request's access token and DPoP proof against the
//! network's keys (held in memory; no call to HelseID), checks audience and scope, refuses
//! revoked tokens and replayed proofs, and yields a typed [`Principal`].

use std::{
    collections::HashMap,
    marker::PhantomData,
    sync::{Arc, RwLock},
};

use axum::{
    extract::{FromRef, FromRequestParts, OriginalUri},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header, request::Parts},
    response::{IntoResponse, Response},
};
use helsenett_core::{Fodselsnummer, HprNummer, Organisasjonsnummer, Problem};
use url::Url;

use crate::{
    OAuthError,
    dpop::{self, Expected},
    jose,
    keys::KeyRing,
    replay::{JtiLog, Revocations},
    tokens::AccessTokenClaims,
};

/// The problem slug of a request without credentials; its challenge carries no error code.
const NO_CREDENTIALS: &str = "missing_token";

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub client_id: String,
    /// The legal entity the client acts for, and the unit within it.
    pub organisation: Organisasjonsnummer,
    pub child_organisation: Option<Organisasjonsnummer>,
    pub actor: Actor,
    pub scopes: Vec<String>,
    /// The token's `jti`: what an audit record names.
    pub token_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A system acting for its organisation (client_credentials).
    System,
    /// A signed-in person.
    Person(User),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub pid: Fodselsnummer,
    pub name: String,
    /// Present when the person is authorised health personnel.
    pub hpr_number: Option<HprNummer>,
    pub security_level: u8,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn user(&self) -> Option<&User> {
        match &self.actor {
            Actor::Person(user) => Some(user),
            Actor::System => None,
        }
    }
}

/// A refused request: 401 with `WWW-Authenticate` (RFC 6750 §3, RFC 9449 §7.1) or 403, and a
/// problem+json body saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl Denied {
    fn token(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_token",
            description: description.into(),
        }
    }

    fn proof(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_dpop_proof",
            description: description.into(),
        }
    }
}

impl From<crate::Failure> for Denied {
    fn from(e: crate::Failure) -> Self {
        let e = OAuthError::from(e);
        Self {
            status: e.status,
            error: e.code,
            description: e.description,
        }
    }
}

impl From<helsenett_store::StoreError> for Denied {
    fn from(e: helsenett_store::StoreError) -> Self {
        crate::Failure::from(e).into()
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        metrics::counter!("helseid_guard_denied_total", "error" => self.error).increment(1);
        let problem = Problem::new(self.status.as_u16(), self.error, "Access denied")
            .with_detail(self.description.clone());
        let mut response = problem.into_response();
        if self.status == StatusCode::UNAUTHORIZED || self.status == StatusCode::FORBIDDEN {
            let algs = jose::algorithm_names(jose::CLIENT_ALGORITHMS).join(" ");
            // A request without credentials gets no error code (RFC 6750 §3.1).
            let challenge = if self.error == NO_CREDENTIALS {
                format!("DPoP algs=\"{algs}\"")
            } else {
                format!(
                    "DPoP error=\"{}\", error_description=\"{}\", algs=\"{algs}\"",
                    self.error,
                    self.description.replace(['"', '\\'], "'")
                )
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

/// Access tokens whose signature has been checked, by SHA-256 of the token. A token's signature
/// is checked once per node rather than on every request: it is the larger part of a request's
/// CPU time, and a client sends the same token for its whole lifetime. Everything that can change
/// (expiry, revocation, the DPoP proof, audience and scope) is still checked on every request.
#[derive(Default)]
struct Verified(RwLock<HashMap<[u8; 32], Arc<AccessTokenClaims>>>);

/// Tokens remembered at most; past it the cache starts over (tokens live minutes).
const MAX_VERIFIED: usize = 20_000;

impl Verified {
    fn key(token: &str) -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
    }

    fn get(&self, token: &str) -> Option<Arc<AccessTokenClaims>> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.get(&Self::key(token)).cloned()
    }

    fn insert(&self, token: &str, claims: Arc<AccessTokenClaims>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_VERIFIED {
            map.clear();
        }
        map.insert(Self::key(token), claims);
    }
}

/// Checks tokens for this node's APIs. Cheap to clone.
#[derive(Clone)]
pub struct Guard(Arc<Inner>);

struct Inner {
    keys: Arc<KeyRing>,
    verified: Verified,
    jtis: JtiLog,
    revocations: Arc<Revocations>,
    issuer: String,
    public_url: Url,
}

impl Guard {
    pub(crate) fn new(
        keys: Arc<KeyRing>,
        jtis: JtiLog,
        revocations: Arc<Revocations>,
        issuer: String,
        public_url: Url,
    ) -> Self {
        Self(Arc::new(Inner {
            keys,
            verified: Verified::default(),
            jtis,
            revocations,
            issuer,
            public_url,
        }))
    }

    /// Verifies the request's token for `audience` and `scope`.
    pub async fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        audience: &str,
        scope: &str,
    ) -> Result<Principal, Denied> {
        let claims = self.verify(method, uri, headers, audience).await?;
        let scopes: Vec<String> = claims.scope.split_whitespace().map(str::to_owned).collect();
        if !scopes.iter().any(|s| s == scope) {
            return Err(Denied {
                status: StatusCode::FORBIDDEN,
                error: "insufficient_scope",
                description: format!("this API needs scope {scope}"),
            });
        }
        principal(&claims, scopes)
    }

    /// Verifies token, binding and proof; returns the token's claims.
    pub(crate) async fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        audience: &str,
    ) -> Result<Arc<AccessTokenClaims>, Denied> {
        let (scheme, token) = authorization(headers)?;
        let claims = match self.0.verified.get(token) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verify_signature(token).await?);
                self.0.verified.insert(token, claims.clone());
                claims
            }
        };
        let now = crate::now();
        if claims.iss != self.0.issuer {
            return Err(Denied::token("the access token is from another issuer"));
        }
        if claims.exp <= now {
            return Err(Denied::token("the access token has expired"));
        }
        if claims.nbf > now + dpop::CLOCK_SKEW_SECONDS {
            return Err(Denied::token("the access token is not valid yet"));
        }
        if !claims.aud.contains(audience) {
            return Err(Denied::token(format!(
                "the access token is not for this API (aud must include {audience})"
            )));
        }
        match (&claims.cnf, scheme) {
            (Some(cnf), Scheme::Dpop) => {
                self.check_proof(method, uri, headers, token, &cnf.jkt)
                    .await?
            }
            (Some(_), Scheme::Bearer) => {
                return Err(Denied::token(
                    "the access token is DPoP-bound: send it with the DPoP scheme and a proof",
                ));
            }
            (None, Scheme::Dpop) => {
                return Err(Denied::token(
                    "the access token is not DPoP-bound: use the Bearer scheme",
                ));
            }
            (None, Scheme::Bearer) => {}
        }
        if self.0.revocations.is_revoked(&claims.jti).await? {
            return Err(Denied::token("the access token has been revoked"));
        }
        Ok(claims)
    }

    /// Parses `token` and checks its signature against HelseID's keys.
    async fn verify_signature(&self, token: &str) -> Result<AccessTokenClaims, Denied> {
        let jwt = jose::parse(token).map_err(|e| Denied::token(format!("the access token {e}")))?;
        if !crate::tokens::is_access_token_type(jwt.header.typ.as_deref()) {
            return Err(Denied::token("the access token must have typ at+jwt"));
        }
        let kid = jwt.header.kid.as_deref().unwrap_or("");
        let Some((alg, key)) = self.0.keys.verification_key(kid).await? else {
            return Err(Denied::token(
                "the access token is not signed by a HelseID key",
            ));
        };
        if alg != jwt.header.alg {
            return Err(Denied::token(
                "the access token's alg does not match its key",
            ));
        }
        jwt.verify(&key)
            .map_err(|e| Denied::token(format!("the access token {e}")))
    }

    async fn check_proof(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        token: &str,
        jkt: &str,
    ) -> Result<(), Denied> {
        let mut values = headers.get_all("dpop").iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Denied::proof(
                "send exactly one DPoP proof with a DPoP-bound token",
            ));
        };
        let proof = value
            .to_str()
            .map_err(|_| Denied::proof("the DPoP header is not ASCII"))?;
        // The path as received, not resolved against the base: `//host/x` or `/a/../x` must not
        // turn into another URL than the one the request was sent to.
        let mut url = self.0.public_url.clone();
        url.set_path(uri.path());
        let expected = Expected {
            method: method.as_str(),
            url: &url,
            access_token: Some(token),
            nonces: None,
            now: crate::now(),
        };
        let proof = dpop::verify(proof, &expected).map_err(|e| Denied::proof(e.to_string()))?;
        if proof.jkt != jkt {
            return Err(Denied::proof(
                "the DPoP proof is signed by another key than the token is bound to",
            ));
        }
        let (key, expires_at) = proof.replay_key();
        if !self.0.jtis.first_use(key, expires_at).await? {
            return Err(Denied::proof("the DPoP proof's jti has been used before"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Scheme {
    Bearer,
    Dpop,
}

fn authorization(headers: &HeaderMap) -> Result<(Scheme, &str), Denied> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Denied {
            status: StatusCode::UNAUTHORIZED,
            error: NO_CREDENTIALS,
            description: "an access token from HelseID is required (Authorization: DPoP ...)"
                .into(),
        });
    };
    let value = value
        .to_str()
        .map_err(|_| Denied::token("the Authorization header is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "dpop" => Scheme::Dpop,
        "bearer" => Scheme::Bearer,
        _ => {
            return Err(Denied::token(
                "the Authorization scheme must be DPoP (or Bearer)",
            ));
        }
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(Denied::token("the Authorization header has no token"));
    }
    Ok((scheme, token))
}

fn principal(claims: &AccessTokenClaims, scopes: Vec<String>) -> Result<Principal, Denied> {
    let bad = |what: &str| Denied::token(format!("the access token's {what} is not valid"));
    let organisation =
        Organisasjonsnummer::parse(&claims.orgnr_parent).map_err(|_| bad("orgnr_parent"))?;
    let child_organisation = claims
        .orgnr_child
        .as_deref()
        .map(Organisasjonsnummer::parse)
        .transpose()
        .map_err(|_| bad("orgnr_child"))?;
    let actor = match &claims.user {
        None => Actor::System,
        Some(user) => Actor::Person(User {
            pid: Fodselsnummer::parse(&user.pid).map_err(|_| bad("pid"))?,
            hpr_number: user
                .hpr_number
                .as_deref()
                .map(HprNummer::parse)
                .transpose()
                .map_err(|_| bad("hpr_number"))?,
            security_level: user
                .security_level
                .parse()
                .map_err(|_| bad("security_level"))?,
            name: user.name.clone(),
        }),
    };
    Ok(Principal {
        client_id: claims.client_id.clone(),
        organisation,
        child_organisation,
        actor,
        scopes,
        token_id: claims.jti.clone(),
    })
}

/// A scope an API requires, as a type: `Authorized<ReadRegister>` in a handler's arguments.
pub trait RequiredScope {
    const AUDIENCE: &'static str;
    const SCOPE: &'static str;
}

/// Extracts the [`Principal`] of a request that carries a valid token with `S`'s scope.
pub struct Authorized<S>(pub Principal, PhantomData<S>);

impl<S, St> FromRequestParts<St> for Authorized<S>
where
    S: RequiredScope,
    Guard: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Denied> {
        let guard = Guard::from_ref(state);
        // A nested router sees its path with the prefix removed; the proof names the whole URL.
        let uri = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(original)) => original.clone(),
            None => parts.uri.clone(),
        };
        let principal = guard
            .check(&parts.method, &uri, &parts.headers, S::AUDIENCE, S::SCOPE)
            .await?;
        Ok(Authorized(principal, PhantomData))
    }
}
