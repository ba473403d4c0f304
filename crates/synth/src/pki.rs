//! The synthetic country's test certificate authority and its parties' RSA keys.
//!
//! Everything here is deterministic in the seed: the same seed gives the same keys and the same
//! certificates byte for byte, so a vendor's test lab can regenerate exactly the country its
//! fixtures were made from. Keys come from a seeded prime search, not from the system RNG, which
//! is why they are for synthetic parties only.

use chrono::{Days, Months, NaiveDate};
use openssl::{
    asn1::{Asn1Integer, Asn1Time},
    bn::{BigNum, BigNumContext},
    error::ErrorStack,
    hash::MessageDigest,
    pkey::{PKey, Private},
    rsa::Rsa,
    x509::{
        X509, X509Builder, X509Name, X509NameBuilder,
        extension::{AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier},
    },
};
use rand::RngCore;
use rand_chacha::ChaCha20Rng;

use crate::seeded_rng;

const PUBLIC_EXPONENT: u32 = 65_537;
/// NHN's minimum for enterprise certificates.
pub const PARTY_KEY_BITS: u32 = 2048;
pub const CA_NAME: &str = "helsenett Synthetic Test CA";
/// Enterprise certificates are issued for three years, as NHN's CAs do.
const VALIDITY_YEARS: u32 = 3;
/// Certificates start before the country's date so that they are valid on it.
const BACKDATE_DAYS: u64 = 30;

/// A 2048-bit RSA key drawn from `stream` of `seed`.
pub fn seeded_rsa(seed: u64, stream: &str) -> Result<PKey<Private>, ErrorStack> {
    seeded_rsa_bits(seed, stream, PARTY_KEY_BITS)
}

fn seeded_rsa_bits(seed: u64, stream: &str, bits: u32) -> Result<PKey<Private>, ErrorStack> {
    let mut rng = seeded_rng(seed, stream);
    let mut ctx = BigNumContext::new()?;
    let e = BigNum::from_u32(PUBLIC_EXPONENT)?;
    let (p, q) = loop {
        let p = seeded_prime(&mut rng, bits / 2, &mut ctx)?;
        let q = seeded_prime(&mut rng, bits / 2, &mut ctx)?;
        if p != q {
            break (p, q);
        }
    };
    let one = BigNum::from_u32(1)?;
    let (mut p1, mut q1) = (BigNum::new()?, BigNum::new()?);
    p1.checked_sub(&p, &one)?;
    q1.checked_sub(&q, &one)?;
    let mut n = BigNum::new()?;
    n.checked_mul(&p, &q, &mut ctx)?;
    let mut phi = BigNum::new()?;
    phi.checked_mul(&p1, &q1, &mut ctx)?;
    let mut d = BigNum::new()?;
    d.mod_inverse(&e, &phi, &mut ctx)?;
    let (mut dmp1, mut dmq1, mut iqmp) = (BigNum::new()?, BigNum::new()?, BigNum::new()?);
    dmp1.checked_rem(&d, &p1, &mut ctx)?;
    dmq1.checked_rem(&d, &q1, &mut ctx)?;
    iqmp.mod_inverse(&q, &p, &mut ctx)?;
    PKey::from_rsa(Rsa::from_private_components(
        n, e, d, p, q, dmp1, dmq1, iqmp,
    )?)
}

/// A prime of exactly `bits` bits with `p - 1` coprime to the public exponent.
fn seeded_prime(
    rng: &mut ChaCha20Rng,
    bits: u32,
    ctx: &mut BigNumContext,
) -> Result<BigNum, ErrorStack> {
    let mut bytes = vec![0u8; (bits / 8) as usize];
    loop {
        rng.fill_bytes(&mut bytes);
        // Top two bits set so that the product has the full key size; odd.
        bytes[0] |= 0xC0;
        *bytes.last_mut().expect("non-empty") |= 1;
        let mut candidate = BigNum::from_slice(&bytes)?;
        for _ in 0..bits {
            if candidate.num_bits() as u32 != bits {
                break;
            }
            if candidate.mod_word(PUBLIC_EXPONENT)? != 1
                && candidate.is_prime_fasttest(0, ctx, true)?
            {
                return Ok(candidate);
            }
            candidate.add_word(2)?;
        }
    }
}

/// What a certificate's key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Signing messages: digitalSignature and nonRepudiation.
    Signing,
    /// Receiving encrypted messages: keyEncipherment and dataEncipherment.
    Encryption,
}

/// The organisation an enterprise certificate is issued to.
pub struct Subject<'a> {
    pub name: &'a str,
    pub orgnr: &'a str,
}

pub struct TestCa {
    certificate: X509,
    key: PKey<Private>,
}

impl TestCa {
    /// The CA of the country with `seed`, valid for ten years from before `as_of`.
    pub fn new(seed: u64, as_of: NaiveDate) -> Result<Self, ErrorStack> {
        let key = seeded_rsa_bits(seed, "ca", 3072)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("C", "NO")?;
        name.append_entry_by_text("O", "helsenett synthetic country (NOT FOR PRODUCTION)")?;
        name.append_entry_by_text("CN", CA_NAME)?;
        let name = name.build();
        let mut builder = X509Builder::new()?;
        builder.set_version(2)?;
        let serial = serial_number(1)?;
        builder.set_serial_number(&serial)?;
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(&name)?;
        builder.set_pubkey(&key)?;
        let (not_before, not_after) = validity(as_of, 10)?;
        builder.set_not_before(&not_before)?;
        builder.set_not_after(&not_after)?;
        builder.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
        builder.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
        builder.append_extension(ski)?;
        builder.sign(&key, MessageDigest::sha256())?;
        Ok(Self {
            certificate: builder.build(),
            key,
        })
    }

    pub fn certificate(&self) -> &X509 {
        &self.certificate
    }

    pub fn private_key(&self) -> &PKey<Private> {
        &self.key
    }

    /// An enterprise certificate for `subject`'s `key`, as NHN's members hold: the subject names
    /// the organisation by its organisasjonsnummer (SEID 2.0 `organizationIdentifier`).
    pub fn issue(
        &self,
        subject: &Subject<'_>,
        purpose: KeyPurpose,
        key: &PKey<Private>,
        serial: u64,
        as_of: NaiveDate,
    ) -> Result<X509, ErrorStack> {
        let mut builder = X509Builder::new()?;
        builder.set_version(2)?;
        let serial = serial_number(serial)?;
        builder.set_serial_number(&serial)?;
        let name = enterprise_name(subject)?;
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(self.certificate.subject_name())?;
        builder.set_pubkey(key)?;
        let (not_before, not_after) = validity(as_of, VALIDITY_YEARS)?;
        builder.set_not_before(&not_before)?;
        builder.set_not_after(&not_after)?;
        builder.append_extension(BasicConstraints::new().critical().build()?)?;
        let usage = match purpose {
            KeyPurpose::Signing => KeyUsage::new()
                .critical()
                .digital_signature()
                .non_repudiation()
                .build()?,
            KeyPurpose::Encryption => KeyUsage::new()
                .critical()
                .key_encipherment()
                .data_encipherment()
                .build()?,
        };
        builder.append_extension(usage)?;
        let context = builder.x509v3_context(Some(&self.certificate), None);
        let ski = SubjectKeyIdentifier::new().build(&context)?;
        let aki = AuthorityKeyIdentifier::new().keyid(true).build(&context)?;
        builder.append_extension(ski)?;
        builder.append_extension(aki)?;
        builder.sign(&self.key, MessageDigest::sha256())?;
        Ok(builder.build())
    }
}

fn serial_number(n: u64) -> Result<Asn1Integer, ErrorStack> {
    let bn = BigNum::from_dec_str(&n.to_string())?;
    Asn1Integer::from_bn(&bn)
}

fn enterprise_name(subject: &Subject<'_>) -> Result<X509Name, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("C", "NO")?;
    name.append_entry_by_text("O", subject.name)?;
    name.append_entry_by_text(
        "organizationIdentifier",
        &format!("NTRNO-{}", subject.orgnr),
    )?;
    name.append_entry_by_text("serialNumber", subject.orgnr)?;
    name.append_entry_by_text("CN", subject.name)?;
    Ok(name.build())
}

/// Validity starting `BACKDATE_DAYS` before `as_of` (at midnight UTC) and lasting `years`.
fn validity(as_of: NaiveDate, years: u32) -> Result<(Asn1Time, Asn1Time), ErrorStack> {
    let start = as_of - Days::new(BACKDATE_DAYS);
    let end = start + Months::new(12 * years);
    let unix = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp()
    };
    Ok((
        Asn1Time::from_unix(unix(start))?,
        Asn1Time::from_unix(unix(end))?,
    ))
}

/// Seconds since the epoch of an `Asn1Time`, for storage.
pub fn unix_seconds(time: &openssl::asn1::Asn1TimeRef) -> Result<i64, ErrorStack> {
    let epoch = Asn1Time::from_unix(0)?;
    let diff = epoch.diff(time)?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::{
        nid::Nid,
        stack::Stack,
        x509::{X509StoreContext, store::X509StoreBuilder},
    };

    fn as_of() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    #[test]
    fn seeded_keys_are_valid_and_reproducible() {
        let a = seeded_rsa(7, "party-key-0").unwrap();
        let b = seeded_rsa(7, "party-key-0").unwrap();
        let c = seeded_rsa(7, "party-key-1").unwrap();
        let rsa = a.rsa().unwrap();
        assert!(rsa.check_key().unwrap());
        assert_eq!(rsa.n().num_bits(), 2048);
        assert_eq!(
            a.private_key_to_pkcs8().unwrap(),
            b.private_key_to_pkcs8().unwrap()
        );
        assert_ne!(
            a.public_key_to_der().unwrap(),
            c.public_key_to_der().unwrap()
        );
    }

    #[test]
    fn issued_certificates_chain_to_the_ca_with_the_right_usage() {
        let ca = TestCa::new(1, as_of()).unwrap();
        let key = seeded_rsa(1, "party-key-0").unwrap();
        let subject = Subject {
            name: "Syntetisk legekontor",
            orgnr: "300000008",
        };
        let cert = ca
            .issue(&subject, KeyPurpose::Encryption, &key, 2, as_of())
            .unwrap();

        let mut trust = X509StoreBuilder::new().unwrap();
        trust.add_cert(ca.certificate().clone()).unwrap();
        let trust = trust.build();
        let mut context = X509StoreContext::new().unwrap();
        let chain = Stack::new().unwrap();
        assert!(
            context
                .init(&trust, &cert, &chain, |c| c.verify_cert())
                .unwrap()
        );

        let orgnr = cert
            .subject_name()
            .entries_by_nid(Nid::SERIALNUMBER)
            .next()
            .unwrap()
            .data()
            .to_string()
            .unwrap();
        assert_eq!(orgnr, "300000008");
        let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
        assert!(
            text.contains("Key Encipherment, Data Encipherment"),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        let signing = ca
            .issue(&subject, KeyPurpose::Signing, &key, 3, as_of())
            .unwrap();
        let text = String::from_utf8(signing.to_text().unwrap()).unwrap();
        assert!(
            text.contains("Digital Signature, Non Repudiation"),
            "{text}"
        );

        // Valid on the country's date, issued by the CA.
        let now = Asn1Time::from_unix(as_of().and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp())
            .unwrap();
        assert!(cert.not_before() < now && now < cert.not_after());
        assert_eq!(
            unix_seconds(cert.not_before()).unwrap(),
            (as_of() - Days::new(30))
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp()
        );
    }

    #[test]
    fn the_same_seed_issues_the_same_bytes() {
        let subject = Subject {
            name: "Apotek",
            orgnr: "300000016",
        };
        let der = || {
            let ca = TestCa::new(9, as_of()).unwrap();
            let key = seeded_rsa(9, "k").unwrap();
            ca.issue(&subject, KeyPurpose::Signing, &key, 5, as_of())
                .unwrap()
                .to_der()
                .unwrap()
        };
        assert_eq!(der(), der());
    }
}
