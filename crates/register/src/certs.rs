//! Certificates a member uploads: parsed, checked against the configured trust anchors, and
//! refused with the reason when they are not fit for the use they are uploaded for.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use helsenett_core::Organisasjonsnummer;
use helsenett_store::records::CertificateUsage;
use openssl::{
    error::ErrorStack,
    stack::Stack,
    x509::{X509, X509NameRef, X509StoreContext, store::X509StoreBuilder},
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::model::StoredCertificate;

/// NHN's minimum for enterprise certificates.
pub const MIN_RSA_BITS: u32 = 2048;
/// serialNumber and organizationIdentifier: where an enterprise certificate names its
/// organisasjonsnummer (the latter as `NTRNO-<orgnr>`, SEID 2.0).
const OID_SERIAL_NUMBER: &str = "2.5.4.5";
const OID_ORGANIZATION_IDENTIFIER: &str = "2.5.4.97";

/// Why a certificate was refused, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

fn reject(reason: impl Into<String>) -> Rejected {
    Rejected(reason.into())
}

/// The CAs whose certificates the register accepts.
pub struct TrustAnchors {
    store: openssl::x509::store::X509Store,
    pub count: usize,
}

impl TrustAnchors {
    pub fn from_pems<'a>(pems: impl IntoIterator<Item = &'a str>) -> Result<Self, ErrorStack> {
        let mut builder = X509StoreBuilder::new()?;
        let mut count = 0;
        for pem in pems {
            for cert in X509::stack_from_pem(pem.as_bytes())? {
                builder.add_cert(cert)?;
                count += 1;
            }
        }
        Ok(Self {
            store: builder.build(),
            count,
        })
    }

    /// The anchors as OpenSSL verifies against them (a signature on a sealed payload, say).
    pub fn x509_store(&self) -> &openssl::x509::store::X509StoreRef {
        &self.store
    }

    pub fn into_x509_store(self) -> openssl::x509::store::X509Store {
        self.store
    }
}

/// Checks `certificate` (PEM, or DER in base64) for `usage` by a party of `owner`: it must be
/// RSA of at least 2048 bits, valid now, carry the key usage the use needs, name `owner` in its
/// subject, and chain to a trust anchor through `chain` (PEM intermediates).
pub fn check(
    certificate: &str,
    chain: &[String],
    usage: CertificateUsage,
    owner: Organisasjonsnummer,
    anchors: &TrustAnchors,
    now: DateTime<Utc>,
) -> Result<StoredCertificate, Rejected> {
    let cert = parse(certificate)?;
    let der = cert
        .to_der()
        .map_err(|_| reject("the certificate cannot be re-encoded as DER"))?;
    let (_, parsed) = X509Certificate::from_der(&der)
        .map_err(|e| reject(format!("the certificate is not valid X.509: {e}")))?;

    let key = cert
        .public_key()
        .map_err(|_| reject("the certificate's public key cannot be read"))?;
    let rsa = key
        .rsa()
        .map_err(|_| reject("the certificate's key must be RSA"))?;
    let bits = rsa.n().num_bits();
    if bits < MIN_RSA_BITS as i32 {
        return Err(reject(format!(
            "the certificate's RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
        )));
    }

    let validity = parsed.validity();
    let not_before = instant(validity.not_before.timestamp())?;
    let not_after = instant(validity.not_after.timestamp())?;
    if now < not_before {
        return Err(reject(format!(
            "the certificate is not valid before {}",
            not_before.to_rfc3339()
        )));
    }
    if now >= not_after {
        return Err(reject(format!(
            "the certificate expired at {}",
            not_after.to_rfc3339()
        )));
    }

    check_key_usage(&parsed, usage)?;

    match subject_orgnr(&parsed) {
        Some(orgnr) if orgnr == owner.to_string() => {}
        Some(orgnr) => {
            return Err(reject(format!(
                "the certificate is issued to organisasjonsnummer {orgnr}, not to the party's {owner}"
            )));
        }
        None => {
            return Err(reject(
                "the certificate's subject names no organisasjonsnummer (serialNumber or organizationIdentifier)",
            ));
        }
    }

    verify_chain(&cert, chain, anchors)?;

    Ok(StoredCertificate {
        usage,
        fingerprint: fingerprint(&der),
        serial: parsed.raw_serial_as_string().replace(':', ""),
        issuer: one_line(cert.issuer_name()),
        subject: one_line(cert.subject_name()),
        not_before,
        not_after,
        added_at: now,
        revoked_at: None,
        der,
    })
}

fn parse(text: &str) -> Result<X509, Rejected> {
    let text = text.trim();
    if text.is_empty() {
        return Err(reject("no certificate was given"));
    }
    if text.starts_with("-----BEGIN") {
        let mut certs = X509::stack_from_pem(text.as_bytes())
            .map_err(|_| reject("the certificate is not a readable PEM certificate"))?;
        return match certs.len() {
            1 => Ok(certs.remove(0)),
            0 => Err(reject("the PEM holds no certificate")),
            n => Err(reject(format!(
                "the PEM holds {n} certificates; upload the party's own and give intermediates in chain"
            ))),
        };
    }
    let compact: String = text.split_whitespace().collect();
    let der = STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| reject("the certificate is neither PEM nor base64 DER"))?;
    X509::from_der(&der).map_err(|_| reject("the certificate is not DER-encoded X.509"))
}

fn check_key_usage(cert: &X509Certificate<'_>, usage: CertificateUsage) -> Result<(), Rejected> {
    let key_usage = cert
        .key_usage()
        .map_err(|e| reject(format!("the key usage extension is malformed: {e}")))?
        .ok_or_else(|| reject("the certificate has no key usage extension"))?
        .value;
    let fit = match usage {
        CertificateUsage::Signing => key_usage.digital_signature() || key_usage.non_repudiation(),
        CertificateUsage::Encryption => key_usage.key_encipherment(),
    };
    if fit {
        return Ok(());
    }
    Err(reject(match usage {
        CertificateUsage::Signing => format!(
            "a signing certificate needs key usage digitalSignature or nonRepudiation; this one has {key_usage}"
        ),
        CertificateUsage::Encryption => format!(
            "an encryption certificate needs key usage keyEncipherment; this one has {key_usage}"
        ),
    }))
}

/// The organisasjonsnummer in the subject's serialNumber, or in its organizationIdentifier.
fn subject_orgnr(cert: &X509Certificate<'_>) -> Option<String> {
    let attributes = || cert.subject().iter_attributes();
    let by_oid = |oid: &str| {
        attributes()
            .find(|a| a.attr_type().to_id_string() == oid)
            .and_then(|a| a.as_str().ok())
    };
    if let Some(serial) = by_oid(OID_SERIAL_NUMBER) {
        return Some(serial.to_owned());
    }
    by_oid(OID_ORGANIZATION_IDENTIFIER)
        .and_then(|id| id.strip_prefix("NTRNO-"))
        .map(str::to_owned)
}

fn verify_chain(cert: &X509, chain: &[String], anchors: &TrustAnchors) -> Result<(), Rejected> {
    let mut intermediates = Stack::new().map_err(|_| reject("cannot build the chain"))?;
    for pem in chain {
        for c in X509::stack_from_pem(pem.as_bytes())
            .map_err(|_| reject("an intermediate in chain is not a readable PEM certificate"))?
        {
            intermediates
                .push(c)
                .map_err(|_| reject("cannot build the chain"))?;
        }
    }
    let mut context = X509StoreContext::new().map_err(|_| reject("cannot build the chain"))?;
    let outcome = context
        .init(&anchors.store, cert, &intermediates, |c| {
            Ok(match c.verify_cert()? {
                true => None,
                false => Some(c.error().error_string().to_owned()),
            })
        })
        .map_err(|_| reject("the chain could not be verified"))?;
    match outcome {
        None => Ok(()),
        Some(reason) => Err(reject(format!(
            "the certificate does not chain to a trusted CA: {reason}"
        ))),
    }
}

fn instant(seconds: i64) -> Result<DateTime<Utc>, Rejected> {
    DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| reject("the certificate's validity is out of range"))
}

/// SHA-256 of a certificate's DER, lower-case hex: how the register names a certificate.
pub fn fingerprint(der: &[u8]) -> String {
    use std::fmt::Write;
    openssl::sha::sha256(der)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// `C=NO, O=..., CN=...` in the name's own order.
pub fn one_line(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
