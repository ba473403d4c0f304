//! The synthetic country's HelseID clients: one system client per organisation, with an ES256
//! key derived from the country's seed, so that a test lab can act as any member at once.

use std::{io::Write, path::Path};

use helsenett_core::Organisasjonsnummer;
use helsenett_store::{Store, with_pool};
use jsonwebtoken::{
    Algorithm, EncodingKey,
    jwk::{Jwk, JwkSet},
};
use openssl::{
    bn::{BigNum, BigNumContext},
    ec::{EcGroup, EcKey, EcPoint},
    nid::Nid,
    pkey::PKey,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::json;

use crate::{
    Failure, catalogue,
    clients::{self, CLIENT_CREDENTIALS, Client},
    jose,
};

/// The file in the data dir that holds the synthetic clients' private keys.
pub const CLIENTS_FILE: &str = "helseid-clients.jsonl";

/// Registers a client for every organisation in the store and writes their private keys, one
/// JSON object per line, to `out`. Returns how many clients were registered.
pub async fn register_member_clients(
    store: &Store,
    seed: u64,
    out: &Path,
) -> Result<usize, Failure> {
    let organisations = with_pool!(store, pool => sqlx::query_as::<_, (String, String)>(
        "SELECT orgnr, name FROM organisation ORDER BY orgnr",
    )
    .fetch_all(pool)
    .await)?;
    let scopes: Vec<String> = catalogue::member_scopes().map(str::to_owned).collect();
    // A stream of its own, so that adding clients never changes the rest of the country.
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x4865_6c73_6549_4400);
    let now = crate::now();
    let mut registered = Vec::with_capacity(organisations.len());
    let mut lines = String::new();
    for (orgnr, name) in organisations {
        let orgnr = Organisasjonsnummer::parse(&orgnr)
            .map_err(|e| Failure::Synthetic(format!("organisation {orgnr}: {e}")))?;
        let (private, public) = derive_key(&mut rng)?;
        let client_id = format!("synthetic-{orgnr}");
        lines.push_str(
            &json!({
                "client_id": client_id,
                "name": name,
                "orgnr_parent": orgnr.to_string(),
                "scope": scopes.join(" "),
                "private_jwk": private,
            })
            .to_string(),
        );
        lines.push('\n');
        registered.push(Client {
            client_id,
            name,
            jwks: JwkSet { keys: vec![public] },
            grant_types: vec![CLIENT_CREDENTIALS.to_owned()],
            scopes: scopes.clone(),
            redirect_uris: Vec::new(),
            orgnr_parent: orgnr,
            orgnr_child: None,
            dpop_required: true,
            enabled: true,
            created_at: now,
        });
    }
    if !clients::insert(store, &registered).await? {
        return Err(Failure::Synthetic(
            "the synthetic clients are registered already".into(),
        ));
    }
    write_private(out, lines.as_bytes())
        .map_err(|e| Failure::Synthetic(format!("cannot write {}: {e}", out.display())))?;
    Ok(registered.len())
}

/// An ES256 key from `rng`: the private JWK (with `d`) and the public one.
fn derive_key(rng: &mut ChaCha20Rng) -> Result<(serde_json::Value, Jwk), Failure> {
    let fail =
        |e: openssl::error::ErrorStack| Failure::Crypto(format!("synthetic client key: {e}"));
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(fail)?;
    let mut ctx = BigNumContext::new().map_err(fail)?;
    let mut order = BigNum::new().map_err(fail)?;
    group.order(&mut order, &mut ctx).map_err(fail)?;
    let scalar = loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let candidate = BigNum::from_slice(&bytes).map_err(fail)?;
        if candidate.num_bits() > 0 && candidate < order {
            break candidate;
        }
    };
    let mut point = EcPoint::new(&group).map_err(fail)?;
    point
        .mul_generator2(&group, &scalar, &mut ctx)
        .map_err(fail)?;
    let key = EcKey::from_private_components(&group, &scalar, &point).map_err(fail)?;
    let pkcs8 = PKey::from_ec_key(key)
        .and_then(|k| k.private_key_to_pkcs8())
        .map_err(fail)?;
    let public = jose::public_signing_jwk(&EncodingKey::from_ec_der(&pkcs8), Algorithm::ES256)
        .map_err(|e| Failure::Crypto(e.to_string()))?;
    let mut private = serde_json::to_value(&public).expect("a JWK serialises");
    private["d"] = jose::b64url(&scalar.to_vec_padded(32).map_err(fail)?).into();
    Ok((private, public))
}

/// Writes a file only its owner can read: it holds private keys.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // An existing file keeps its mode on open; it is about to hold private keys.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}
