//! ES256 JWS as a client needs it: client assertions (RFC 7523) and DPoP proofs (RFC 9449).

use anyhow::{Context, Result, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openssl::{
    bn::{BigNum, BigNumContext},
    ec::{EcGroup, EcKey},
    ecdsa::EcdsaSig,
    nid::Nid,
    pkey::Private,
    sha::sha256,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Length of a P-256 coordinate, scalar and signature half.
const P256_BYTES: i32 = 32;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh random JWT ID.
pub fn jti() -> String {
    b64url(&rand::random::<[u8; 16]>())
}

/// A private EC JWK as the clients file carries it.
#[derive(Debug, Deserialize)]
pub struct PrivateJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
    pub d: String,
    pub kid: Option<String>,
}

/// A P-256 private key and its public JWK.
pub struct Es256Key {
    key: EcKey<Private>,
    public_jwk: Value,
}

fn group() -> Result<EcGroup> {
    Ok(EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?)
}

fn coordinate(name: &str, b64: &str) -> Result<BigNum> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .with_context(|| format!("the JWK's {name} is not base64url"))?;
    if bytes.len() != P256_BYTES as usize {
        bail!("the JWK's {name} has {} bytes, not 32", bytes.len());
    }
    Ok(BigNum::from_slice(&bytes)?)
}

impl Es256Key {
    /// A new random key (a DPoP key).
    pub fn generate() -> Result<Self> {
        let group = group()?;
        Self::from_key(EcKey::generate(&group)?)
    }

    /// The key of a private JWK (kty EC, crv P-256).
    pub fn from_jwk(jwk: &PrivateJwk) -> Result<Self> {
        if jwk.kty != "EC" || jwk.crv != "P-256" {
            bail!(
                "the JWK is kty {:?} crv {:?}; ES256 needs EC P-256",
                jwk.kty,
                jwk.crv
            );
        }
        let group = group()?;
        let (x, y, d) = (
            coordinate("x", &jwk.x)?,
            coordinate("y", &jwk.y)?,
            coordinate("d", &jwk.d)?,
        );
        let public = EcKey::from_public_key_affine_coordinates(&group, &x, &y)
            .context("the JWK's x and y are not a point on P-256")?;
        let key = EcKey::from_private_components(&group, &d, public.public_key())?;
        key.check_key()
            .context("the JWK's d does not belong to its x and y")?;
        Self::from_key(key)
    }

    fn from_key(key: EcKey<Private>) -> Result<Self> {
        let group: EcGroup = group()?;
        let mut ctx = BigNumContext::new()?;
        let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
        key.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)?;
        let public_jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(&x.to_vec_padded(P256_BYTES)?),
            "y": b64url(&y.to_vec_padded(P256_BYTES)?),
        });
        Ok(Self { key, public_jwk })
    }

    /// The public key as a JWK: kty, crv, x and y only.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// A compact JWS (ES256) of `claims` under `header`.
    pub fn sign(&self, header: &impl Serialize, claims: &impl Serialize) -> Result<String> {
        let mut jws = b64url(&serde_json::to_vec(header)?);
        jws.push('.');
        jws.push_str(&b64url(&serde_json::to_vec(claims)?));
        let signature = EcdsaSig::sign(&sha256(jws.as_bytes()), &self.key)?;
        let mut raw = signature.r().to_vec_padded(P256_BYTES)?;
        raw.extend_from_slice(&signature.s().to_vec_padded(P256_BYTES)?);
        jws.push('.');
        jws.push_str(&b64url(&raw));
        Ok(jws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::{bn::BigNum, ecdsa::EcdsaSig};

    fn verify(jws: &str, jwk: &Value) -> bool {
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert_eq!(sig.len(), 64);
        let sig = EcdsaSig::from_private_components(
            BigNum::from_slice(&sig[..32]).unwrap(),
            BigNum::from_slice(&sig[32..]).unwrap(),
        )
        .unwrap();
        let (group, x, y) = (
            group().unwrap(),
            coordinate("x", jwk["x"].as_str().unwrap()).unwrap(),
            coordinate("y", jwk["y"].as_str().unwrap()).unwrap(),
        );
        let key = EcKey::from_public_key_affine_coordinates(&group, &x, &y).unwrap();
        sig.verify(&sha256(input.as_bytes()), &key).unwrap()
    }

    #[test]
    fn signatures_verify_under_the_public_jwk() {
        let key = Es256Key::generate().unwrap();
        let jws = key
            .sign(&json!({"alg": "ES256"}), &json!({"jti": jti()}))
            .unwrap();
        assert!(verify(&jws, key.public_jwk()));
        let tampered = jws.replacen('.', ".e30", 1);
        assert!(!verify(&tampered, key.public_jwk()));
    }

    #[test]
    fn a_private_jwk_round_trips() {
        let key = Es256Key::generate().unwrap();
        let d = b64url(&key.key.private_key().to_vec_padded(32).unwrap());
        let jwk = PrivateJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: key.public_jwk()["x"].as_str().unwrap().into(),
            y: key.public_jwk()["y"].as_str().unwrap().into(),
            d,
            kid: None,
        };
        let again = Es256Key::from_jwk(&jwk).unwrap();
        assert_eq!(again.public_jwk(), key.public_jwk());
        let wrong = PrivateJwk {
            d: b64url(&[7; 32]),
            ..jwk
        };
        assert!(Es256Key::from_jwk(&wrong).is_err());
    }
}
