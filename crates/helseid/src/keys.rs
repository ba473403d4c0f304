//! HelseID's signing keys. They live in the database so that every node signs with the same key
//! and publishes the same JWKS; each node keeps them in memory and re-reads them every
//! [`REFRESH`], or at once (at most once a second) when it meets a key id it does not know.
//!
//! Rotation (`helsenett helseid rotate-keys`) adds a key that starts signing at a set time; the
//! key it replaces stays in the JWKS until every token it signed has expired, then is deleted.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PSS_SHA256, RsaKeyPair},
};
use helsenett_store::{Store, with_pool};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header,
    jwk::{Jwk, JwkSet, PublicKeyUse},
};
use openssl::{
    ec::{EcGroup, EcKey},
    nid::Nid,
    pkey::PKey,
    rsa::Rsa,
};
use serde::Serialize;

use crate::{error::Failure, jose};

/// How often a node re-reads the keys without being asked to.
pub const REFRESH: Duration = Duration::from_secs(30);
const FORCED_REFRESH_SPACING: Duration = Duration::from_secs(1);

/// The algorithms HelseID signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    ES256,
    PS256,
}

impl SigningAlg {
    pub fn algorithm(self) -> Algorithm {
        match self {
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::PS256 => Algorithm::PS256,
        }
    }
}

impl std::str::FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ES256" => Ok(Self::ES256),
            "PS256" => Ok(Self::PS256),
            _ => Err(format!("{s:?} is not a signing algorithm (ES256 or PS256)")),
        }
    }
}

struct SigningKey {
    kid: String,
    alg: Algorithm,
    signer: Signer,
    decoding: DecodingKey,
    public: Jwk,
    active_from: i64,
}

/// One consistent view of the keys.
struct KeySet {
    /// Published keys, oldest first.
    keys: Vec<SigningKey>,
    jwks: Arc<serde_json::Value>,
    read_at: Instant,
}

/// A key as the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub active_from: i64,
    pub signing: bool,
}

/// The keys of this node, shared by the authorization server and every guard.
pub struct KeyRing {
    store: Store,
    token_lifetime: i64,
    set: RwLock<Arc<KeySet>>,
    reloading: tokio::sync::Mutex<()>,
    last_forced: Mutex<Option<Instant>>,
}

impl KeyRing {
    /// Loads the keys, making the first one if the network has none.
    pub async fn open(store: Store, token_lifetime: i64) -> Result<Self, Failure> {
        if published(&store, token_lifetime).await?.is_empty() {
            rotate(&store, SigningAlg::ES256, 0, token_lifetime).await?;
        }
        let set = read(&store, token_lifetime).await?;
        Ok(Self {
            store,
            token_lifetime,
            set: RwLock::new(Arc::new(set)),
            reloading: tokio::sync::Mutex::new(()),
            last_forced: Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn reload(&self) -> Result<Arc<KeySet>, Failure> {
        let set = Arc::new(read(&self.store, self.token_lifetime).await?);
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = set.clone();
        Ok(set)
    }

    /// The keys, re-read if they are older than [`REFRESH`]. One request re-reads them; the
    /// others meanwhile use the keys they have.
    async fn fresh(&self) -> Result<Arc<KeySet>, Failure> {
        let set = self.current();
        if set.read_at.elapsed() < REFRESH {
            return Ok(set);
        }
        match self.reloading.try_lock() {
            Ok(_reloading) => self.reload().await,
            Err(_) => Ok(set),
        }
    }

    /// Signs `claims` as a JWT of type `typ` with the key that signs now.
    pub async fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, Failure> {
        let set = self.fresh().await?;
        let now = crate::now();
        let key = signing_index(set.keys.iter().map(|k| k.active_from), now)
            .map(|i| &set.keys[i])
            .ok_or_else(|| Failure::Crypto("HelseID has no signing key".into()))?;
        let mut header = Header::new(key.alg);
        header.typ = Some(typ.to_owned());
        header.kid = Some(key.kid.clone());
        let json = |v: serde_json::Result<Vec<u8>>| v.expect("header and claims serialise");
        let mut jwt = jose::b64url(&json(serde_json::to_vec(&header)));
        jwt.push('.');
        jwt.push_str(&jose::b64url(&json(serde_json::to_vec(claims))));
        let signature = key
            .signer
            .sign(jwt.as_bytes())
            .map_err(|e| Failure::Crypto(format!("HelseID signing key {}: {e}", key.kid)))?;
        jwt.push('.');
        jwt.push_str(&jose::b64url(&signature));
        Ok(jwt)
    }

    /// The verification key for `kid`, re-reading the keys once if it is unknown (a key made by
    /// another node, or just activated).
    pub async fn verification_key(
        &self,
        kid: &str,
    ) -> Result<Option<(Algorithm, DecodingKey)>, Failure> {
        let find = |set: &KeySet| {
            set.keys
                .iter()
                .find(|k| k.kid == kid)
                .map(|k| (k.alg, k.decoding.clone()))
        };
        let set = self.fresh().await?;
        if let Some(found) = find(&set) {
            return Ok(Some(found));
        }
        {
            let mut last = self.last_forced.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < FORCED_REFRESH_SPACING) {
                return Ok(None);
            }
            *last = Some(Instant::now());
        }
        Ok(find(&*self.reload().await?))
    }

    /// The public JWK set.
    pub async fn jwks(&self) -> Result<Arc<serde_json::Value>, Failure> {
        Ok(self.fresh().await?.jwks.clone())
    }

    /// Algorithms of the published keys, for discovery.
    pub async fn algorithms(&self) -> Result<Vec<String>, Failure> {
        let set = self.fresh().await?;
        let mut algs: Vec<String> = set.keys.iter().map(|k| format!("{:?}", k.alg)).collect();
        algs.sort();
        algs.dedup();
        Ok(algs)
    }
}

/// Adds a new signing key that starts signing `activate_in` seconds from now, and deletes keys
/// whose tokens have all expired. Returns the new key id.
pub async fn rotate(
    store: &Store,
    alg: SigningAlg,
    activate_in: i64,
    token_lifetime: i64,
) -> Result<String, Failure> {
    let (der, encoding) = generate(alg)?;
    let public = jose::public_signing_jwk(&encoding, alg.algorithm())
        .map_err(|e| Failure::Crypto(format!("public JWK of a new key: {e}")))?;
    let kid = public.common.key_id.clone().unwrap_or_default();
    let now = crate::now();
    let public_json = serde_json::to_string(&public).expect("a JWK serialises");
    with_pool!(store, pool => sqlx::query(
        "INSERT INTO helseid_signing_key (kid, alg, private_der, public_jwk, created_at_ms, active_from)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&kid)
    .bind(format!("{:?}", alg.algorithm()))
    .bind(&der)
    .bind(&public_json)
    .bind(helsenett_core::time::now_millis())
    .bind(now + activate_in.max(0))
    .execute(pool)
    .await
    .map(drop))?;
    let keep: Vec<String> = published(store, token_lifetime)
        .await?
        .into_iter()
        .map(|k| k.kid)
        .collect();
    for row in rows(store).await? {
        if !keep.contains(&row.kid) {
            with_pool!(store, pool => sqlx::query("DELETE FROM helseid_signing_key WHERE kid = $1")
                .bind(&row.kid)
                .execute(pool)
                .await
                .map(drop))?;
        }
    }
    Ok(kid)
}

/// The published keys as the operator sees them, oldest first.
pub async fn list(store: &Store, token_lifetime: i64) -> Result<Vec<KeyInfo>, Failure> {
    let keys = published(store, token_lifetime).await?;
    let now = crate::now();
    let signing =
        signing_index(keys.iter().map(|k| k.active_from), now).map(|i| keys[i].kid.clone());
    Ok(keys
        .into_iter()
        .map(|k| KeyInfo {
            signing: Some(&k.kid) == signing.as_ref(),
            kid: k.kid,
            alg: k.alg,
            active_from: k.active_from,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct Row {
    kid: String,
    alg: String,
    private_der: Vec<u8>,
    active_from: i64,
}

async fn rows(store: &Store) -> Result<Vec<Row>, Failure> {
    Ok(with_pool!(store, pool => sqlx::query_as::<_, Row>(
        "SELECT kid, alg, private_der, active_from FROM helseid_signing_key
         ORDER BY active_from, created_at_ms, kid",
    )
    .fetch_all(pool)
    .await)?)
}

/// Which of keys ordered oldest first (by `active_from`) signs at `now`: the newest active one,
/// or the oldest while none is active yet.
fn signing_index<I>(mut active_from: I, now: i64) -> Option<usize>
where
    I: DoubleEndedIterator<Item = i64> + ExactSizeIterator,
{
    let any = active_from.len() > 0;
    active_from
        .rposition(|from| from <= now)
        .or(any.then_some(0))
}

/// Keys that may still have valid tokens or sign now or later: every key whose successor took
/// over less than a token lifetime ago, the key that signs now, and keys not yet active.
async fn published(store: &Store, token_lifetime: i64) -> Result<Vec<Row>, Failure> {
    let all = rows(store).await?;
    let now = crate::now();
    let successors: Vec<Option<i64>> = (0..all.len())
        .map(|i| all.get(i + 1).map(|next| next.active_from))
        .collect();
    Ok(all
        .into_iter()
        .zip(successors)
        .filter(|(_, next)| next.is_none_or(|from| from + token_lifetime > now))
        .map(|(row, _)| row)
        .collect())
}

async fn read(store: &Store, token_lifetime: i64) -> Result<KeySet, Failure> {
    let mut keys = Vec::new();
    for row in published(store, token_lifetime).await? {
        let alg: SigningAlg = row.alg.parse().map_err(Failure::Crypto)?;
        let corrupt =
            |e: jsonwebtoken::errors::Error| Failure::Crypto(format!("key {}: {e}", row.kid));
        let encoding = match alg {
            SigningAlg::ES256 => EncodingKey::from_ec_der(&row.private_der),
            SigningAlg::PS256 => EncodingKey::from_rsa_der(&row.private_der),
        };
        let mut public = Jwk::from_encoding_key(&encoding, alg.algorithm()).map_err(corrupt)?;
        public.common.key_id = Some(row.kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        keys.push(SigningKey {
            decoding: DecodingKey::from_jwk(&public).map_err(corrupt)?,
            signer: Signer::new(alg, &row.private_der)
                .map_err(|e| Failure::Crypto(format!("key {}: {e}", row.kid)))?,
            kid: row.kid,
            alg: alg.algorithm(),
            public,
            active_from: row.active_from,
        });
    }
    let jwks = JwkSet {
        keys: keys.iter().map(|k| k.public.clone()).collect(),
    };
    Ok(KeySet {
        jwks: Arc::new(serde_json::to_value(jwks).expect("a JWK set serialises")),
        keys,
        read_at: Instant::now(),
    })
}

/// A new private key: PKCS#8 for EC, PKCS#1 for RSA, the forms the signer reads.
fn generate(alg: SigningAlg) -> Result<(Vec<u8>, EncodingKey), Failure> {
    let fail = |e: openssl::error::ErrorStack| Failure::Crypto(format!("key generation: {e}"));
    Ok(match alg {
        SigningAlg::ES256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(fail)?;
            let key = PKey::from_ec_key(EcKey::generate(&group).map_err(fail)?).map_err(fail)?;
            let der = key.private_key_to_pkcs8().map_err(fail)?;
            let encoding = EncodingKey::from_ec_der(&der);
            (der, encoding)
        }
        SigningAlg::PS256 => {
            let der = Rsa::generate(3072)
                .and_then(|k| k.private_key_to_der())
                .map_err(fail)?;
            let encoding = EncodingKey::from_rsa_der(&der);
            (der, encoding)
        }
    })
}

/// A private key parsed once, so that signing a token costs one signature and nothing more.
enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl Signer {
    fn new(alg: SigningAlg, der: &[u8]) -> Result<Self, String> {
        match alg {
            SigningAlg::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map(Signer::Ec)
                .map_err(|e| e.to_string()),
            SigningAlg::PS256 => RsaKeyPair::from_der(der)
                .map(Signer::Rsa)
                .map_err(|e| e.to_string()),
        }
    }

    /// The JWS signature of `message`: r || s for ES256 (RFC 7518 §3.4), RSASSA-PSS for PS256.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        match self {
            Signer::Ec(key) => key
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| e.to_string()),
            Signer::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PSS_SHA256, &rng, message, &mut signature)
                    .map_err(|e| e.to_string())?;
                Ok(signature)
            }
        }
    }
}
