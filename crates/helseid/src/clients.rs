//! The client registry: who may ask HelseID for tokens, with which keys, for which scopes, and
//! for which organisation.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use helsenett_core::Organisasjonsnummer;
use helsenett_store::{Store, StoreError, Value, with_pool};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::catalogue;

pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// The longest client_id; longer claimed ids are refused before any look-up.
pub const MAX_CLIENT_ID: usize = 200;
pub const AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_TYPES: &[&str] = &[CLIENT_CREDENTIALS, AUTHORIZATION_CODE];

/// A registered client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// Public keys the client signs its assertions with.
    pub jwks: JwkSet,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    /// The legal entity the client acts for, and the unit within it.
    pub orgnr_parent: Organisasjonsnummer,
    pub orgnr_child: Option<Organisasjonsnummer>,
    /// Tokens are bound to a DPoP key and refused as bearer tokens (the default).
    pub dpop_required: bool,
    pub enabled: bool,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error("{0}")]
    Metadata(String),
    #[error("{0}")]
    RedirectUri(String),
}

impl Client {
    /// Checks everything a client must be before it is stored.
    pub fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: String| Err(ClientError::Metadata(m));
        if self.client_id.is_empty()
            || self.client_id.len() > MAX_CLIENT_ID
            || !self.client_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return bad(format!(
                "client_id must be 1 to {MAX_CLIENT_ID} visible ASCII characters"
            ));
        }
        let words = self
            .grant_types
            .iter()
            .chain(&self.scopes)
            .chain(&self.redirect_uris);
        if let Some(w) = words
            .clone()
            .find(|w| w.is_empty() || w.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return bad(format!(
                "{w:?}: grant types, scopes and redirect URIs are single words"
            ));
        }
        if self.name.trim().is_empty() {
            return bad("client_name is required".into());
        }
        if self.jwks.keys.is_empty() {
            return bad("jwks must hold at least one public key".into());
        }
        for key in &self.jwks.keys {
            if !matches!(
                key.algorithm,
                AlgorithmParameters::EllipticCurve(_) | AlgorithmParameters::RSA(_)
            ) {
                return bad("jwks may hold only EC and RSA public keys".into());
            }
            if let Err(e) = jsonwebtoken::DecodingKey::from_jwk(key) {
                return bad(format!("a key in jwks is not usable: {e}"));
            }
        }
        if self.grant_types.is_empty() {
            return bad("grant_types must name at least one grant type".into());
        }
        if let Some(g) = self
            .grant_types
            .iter()
            .find(|g| !GRANT_TYPES.contains(&g.as_str()))
        {
            return bad(format!(
                "grant type {g:?} is not supported (client_credentials, authorization_code)"
            ));
        }
        if let Some(s) = self.scopes.iter().find(|s| !catalogue::is_known(s)) {
            return bad(format!("scope {s:?} is not known to HelseID"));
        }
        let interactive = self.grant_types.iter().any(|g| g == AUTHORIZATION_CODE);
        if interactive && self.redirect_uris.is_empty() {
            return Err(ClientError::RedirectUri(
                "authorization_code needs at least one redirect URI".into(),
            ));
        }
        self.redirect_uris
            .iter()
            .try_for_each(|u| check_redirect_uri(u))
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    /// Whether `uri` is one of the client's redirect URIs: exactly, except that the port of a
    /// loopback IP address may be any (RFC 8252 §7.3: native apps pick a free port).
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|registered| {
            registered == uri
                || (|| {
                    let (mut a, mut b) = (Url::parse(registered).ok()?, Url::parse(uri).ok()?);
                    let loopback = matches!(a.host_str(), Some("127.0.0.1" | "[::1]"));
                    (loopback && a.scheme() == "http").then_some(())?;
                    a.set_port(None).ok()?;
                    b.set_port(None).ok()?;
                    Some(a == b)
                })()
                .unwrap_or(false)
        })
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The APIs this client may get tokens for.
    pub fn audiences(&self) -> Vec<String> {
        catalogue::audiences_of(self.scopes.iter().map(String::as_str))
    }
}

/// Redirect URIs are compared exactly; they must be HTTPS, or HTTP on the loopback (native apps,
/// RFC 8252), and carry no fragment.
fn check_redirect_uri(uri: &str) -> Result<(), ClientError> {
    let bad = |why: &str| {
        Err(ClientError::RedirectUri(format!(
            "redirect URI {uri:?} {why}"
        )))
    };
    let Ok(url) = Url::parse(uri) else {
        return bad("is not an absolute URL");
    };
    if url.fragment().is_some() {
        return bad("must not have a fragment");
    }
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => bad("must use https (or http on the loopback interface)"),
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    client_id: String,
    name: String,
    jwks: String,
    grant_types: String,
    scopes: String,
    redirect_uris: String,
    orgnr_parent: String,
    orgnr_child: Option<String>,
    dpop_required: bool,
    enabled: bool,
    created_at: i64,
}

impl Row {
    fn into_client(self) -> Result<Client, StoreError> {
        let corrupt = |what: &str, e: String| {
            StoreError::Corrupt(format!("client {}: {what}: {e}", self.client_id))
        };
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect();
        Ok(Client {
            jwks: serde_json::from_str(&self.jwks).map_err(|e| corrupt("jwks", e.to_string()))?,
            grant_types: words(&self.grant_types),
            scopes: words(&self.scopes),
            redirect_uris: words(&self.redirect_uris),
            orgnr_parent: Organisasjonsnummer::parse(&self.orgnr_parent)
                .map_err(|e| corrupt("orgnr_parent", e.to_string()))?,
            orgnr_child: self
                .orgnr_child
                .as_deref()
                .map(Organisasjonsnummer::parse)
                .transpose()
                .map_err(|e| corrupt("orgnr_child", e.to_string()))?,
            dpop_required: self.dpop_required,
            enabled: self.enabled,
            created_at: self.created_at,
            name: self.name,
            client_id: self.client_id,
        })
    }
}

const SELECT: &str =
    "SELECT client_id, name, jwks, grant_types, scopes, redirect_uris, orgnr_parent,
    orgnr_child, dpop_required, enabled, created_at FROM helseid_client";

/// A client as a row of `helseid_client`.
struct Record<'a> {
    client: &'a Client,
    jwks: String,
}

impl helsenett_store::Record for Record<'_> {
    const TABLE: &'static str = "helseid_client";
    const COLUMNS: &'static [&'static str] = &[
        "client_id",
        "name",
        "jwks",
        "grant_types",
        "scopes",
        "redirect_uris",
        "orgnr_parent",
        "orgnr_child",
        "dpop_required",
        "enabled",
        "created_at",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        let c = self.client;
        push(Value::Text(&c.client_id));
        push(Value::Text(&c.name));
        push(Value::Text(&self.jwks));
        push(Value::Owned(c.grant_types.join(" ")));
        push(Value::Owned(c.scopes.join(" ")));
        push(Value::Owned(c.redirect_uris.join(" ")));
        push(Value::Owned(c.orgnr_parent.to_string()));
        push(Value::OptOwned(c.orgnr_child.map(|o| o.to_string())));
        push(Value::Bool(c.dpop_required));
        push(Value::Bool(c.enabled));
        push(Value::Int(c.created_at));
    }
}

/// Stores new clients, all or none; false (and nothing stored) if a client id is taken.
pub async fn insert(store: &Store, clients: &[Client]) -> Result<bool, StoreError> {
    let records: Vec<Record<'_>> = clients
        .iter()
        .map(|client| Record {
            client,
            jwks: serde_json::to_string(&client.jwks).expect("a JWK set serialises"),
        })
        .collect();
    match store.insert_all(&records).await {
        Ok(()) => Ok(true),
        Err(e) if e.is_conflict() => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn get(store: &Store, client_id: &str) -> Result<Option<Client>, StoreError> {
    let sql = format!("{SELECT} WHERE client_id = $1");
    let row = with_pool!(store, pool => sqlx::query_as::<_, Row>(&sql)
        .bind(client_id)
        .fetch_optional(pool)
        .await)?;
    row.map(Row::into_client).transpose()
}

pub async fn list(store: &Store) -> Result<Vec<Client>, StoreError> {
    let sql = format!("{SELECT} ORDER BY client_id");
    let rows = with_pool!(store, pool => sqlx::query_as::<_, Row>(&sql).fetch_all(pool).await)?;
    rows.into_iter().map(Row::into_client).collect()
}

/// Enables or disables a client; false if there is no such client.
pub async fn set_enabled(
    store: &Store,
    client_id: &str,
    enabled: bool,
) -> Result<bool, StoreError> {
    let changed = with_pool!(store, pool => sqlx::query(
        "UPDATE helseid_client SET enabled = $1 WHERE client_id = $2",
    )
    .bind(enabled)
    .bind(client_id)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(changed == 1)
}

/// How long a node trusts what it read about a client: disabling a client takes effect on every
/// node within this time. Only clients that exist are kept, so unknown ids cannot fill memory.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// Entries a node keeps before it starts over (more than a country's clients).
const CACHE_CAPACITY: usize = 100_000;

/// Clients as the token endpoint reads them: from memory when read in the last [`CACHE_TTL`],
/// so that a burst of token requests does not read the same row thousands of times a second.
pub struct ClientCache {
    store: Store,
    entries: RwLock<HashMap<String, Cached>>,
}

/// When a client was read, and the client.
type Cached = (Instant, Arc<Client>);

impl ClientCache {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub async fn get(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some((read_at, client)) = entries.get(client_id)
                && read_at.elapsed() < CACHE_TTL
            {
                return Ok(Some(client.clone()));
            }
        }
        let Some(client) = get(&self.store, client_id).await?.map(Arc::new) else {
            return Ok(None);
        };
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_CAPACITY {
            entries.retain(|_, (read_at, _)| read_at.elapsed() < CACHE_TTL);
        }
        entries.insert(client_id.to_owned(), (Instant::now(), client.clone()));
        Ok(Some(client))
    }
}
