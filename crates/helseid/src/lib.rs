//! HelseID: the network's OAuth 2.0 / OpenID Connect authorization server, and the [`Guard`]
//! every other API uses to check a request's token and DPoP proof.
//!
//! Strict by default: clients authenticate only with `private_key_jwt` (RFC 7523), tokens are
//! JWT access tokens (RFC 9068) bound to a DPoP key (RFC 9449) with server nonces, and
//! authorization codes need PKCE with S256.
//!
//! **Architecture Invariant:** a node keeps nothing another node needs. Keys, clients, replayed
//! identifiers, pending logins, codes and revocations are in the database; the nonce and
//! subject secrets too. Any number of nodes share one PostgreSQL database.

pub mod catalogue;
pub mod clients;
mod discovery;
pub mod dpop;
mod error;
mod guard;
mod idp;
mod introspect;
pub mod jose;
pub mod keys;
mod login;
mod params;
mod register;
mod replay;
pub mod synthetic;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
mod tokens;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use helsenett_store::{Store, with_pool};
use url::Url;

pub use dpop::Nonces;
pub use error::{Failure, OAuthError};
pub use guard::{Actor, Authorized, Denied, Guard, Principal, RequiredScope, User};
pub use keys::{KeyInfo, KeyRing, SigningAlg};
pub use tokens::AccessTokenClaims;

/// No form or registration HelseID reads comes near this; larger bodies get 413.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where HelseID lives under a node's public URL.
pub const PATH: &str = "/helseid";

/// How a node's HelseID is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The node's public URL (no path); the issuer is `{public_url}/helseid`.
    pub public_url: Url,
    pub access_token_seconds: i64,
    pub admin_token: Option<String>,
}

/// The URLs HelseID answers at.
#[derive(Debug)]
pub struct Endpoints {
    pub issuer: String,
    pub token: Url,
    pub authorize: Url,
    pub par: Url,
    pub userinfo: Url,
    pub introspection: Url,
    pub revocation: Url,
    pub registration: Url,
    pub jwks: Url,
}

impl Endpoints {
    fn new(public_url: &Url) -> Self {
        let issuer = format!("{}{PATH}", public_url.as_str().trim_end_matches('/'));
        let at = |path: &str| Url::parse(&format!("{issuer}{path}")).expect("a valid URL");
        Self {
            token: at("/connect/token"),
            authorize: at("/connect/authorize"),
            par: at("/connect/par"),
            userinfo: at("/connect/userinfo"),
            introspection: at("/connect/introspect"),
            revocation: at("/connect/revocation"),
            registration: at("/connect/register"),
            jwks: at("/jwks"),
            issuer,
        }
    }
}

/// A node's HelseID. Cheap to clone.
#[derive(Clone)]
pub struct HelseId(Arc<Inner>);

struct Inner {
    store: Store,
    settings: Settings,
    endpoints: Endpoints,
    keys: Arc<KeyRing>,
    jtis: replay::JtiLog,
    revocations: Arc<replay::Revocations>,
    clients: clients::ClientCache,
    nonces: Arc<Nonces>,
    /// Key of the subject pseudonyms: `sub` for a person is stable but is not their number.
    subject_key: aws_lc_rs::hmac::Key,
}

impl HelseId {
    /// Loads keys and secrets from the store (making them on a network's first start).
    pub async fn start(store: Store, settings: Settings) -> Result<Self, Failure> {
        let keys = KeyRing::open(store.clone(), settings.access_token_seconds).await?;
        let nonces = Nonces::new(&secret(&store, "dpop-nonce").await?);
        let subject_key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &secret(&store, "subject").await?,
        );
        Ok(Self(Arc::new(Inner {
            endpoints: Endpoints::new(&settings.public_url),
            jtis: replay::JtiLog::start(store.clone()),
            revocations: Arc::new(replay::Revocations::new(store.clone())),
            clients: clients::ClientCache::new(store.clone()),
            keys: Arc::new(keys),
            nonces: Arc::new(nonces),
            subject_key,
            store,
            settings,
        })))
    }

    pub fn issuer(&self) -> &str {
        &self.0.endpoints.issuer
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.0.endpoints
    }

    /// The guard for this node's APIs: same keys, same replay log.
    pub fn guard(&self) -> Guard {
        Guard::new(
            self.0.keys.clone(),
            self.0.jtis.clone(),
            self.0.revocations.clone(),
            self.0.endpoints.issuer.clone(),
            self.0.settings.public_url.clone(),
        )
    }

    /// HelseID's routes, under [`PATH`].
    pub fn router(&self) -> Router {
        let routes = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(discovery::configuration),
            )
            .route("/jwks", get(discovery::jwks))
            .route("/connect/token", post(token::token))
            .route(
                "/connect/authorize",
                get(login::authorize).post(login::authorize_form),
            )
            .route("/connect/login", post(login::login))
            .route("/connect/par", post(login::par))
            .route(
                "/connect/userinfo",
                get(introspect::userinfo).post(introspect::userinfo),
            )
            .route("/connect/introspect", post(introspect::introspect))
            .route("/connect/revocation", post(introspect::revoke))
            .route("/connect/register", post(register::register))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.clone());
        Router::new().nest(PATH, routes)
    }
}

/// Seconds since the Unix epoch: the unit of every JWT time claim.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A 32-byte server secret, made by whichever node asks first.
async fn secret(store: &Store, name: &str) -> Result<Vec<u8>, Failure> {
    let mut fresh = [0u8; 32];
    openssl::rand::rand_bytes(&mut fresh).map_err(|e| Failure::Crypto(e.to_string()))?;
    with_pool!(store, pool => sqlx::query(
        "INSERT INTO helseid_secret (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(fresh.as_slice())
    .execute(pool)
    .await
    .map(drop))?;
    Ok(with_pool!(store, pool => sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT value FROM helseid_secret WHERE name = $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await)?)
}
