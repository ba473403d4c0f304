//! Sealed payloads: CMS (RFC 5652) SignedData by the sender's signing certificate, inside
//! EnvelopedData for each receiver's encryption certificate with AES-256-CBC. Senders seal and
//! receivers open with OpenSSL; the hub only reads who a seal is for (the recipients' issuer and
//! serial) and with which cipher, from the DER, and never holds a key that opens it.

use openssl::{
    cms::{CMSOptions, CmsContentInfo},
    pkey::{PKey, Private},
    stack::Stack,
    symm::Cipher,
    x509::{X509, store::X509StoreRef},
};

/// id-envelopedData (RFC 5652 §6).
const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// id-aes256-CBC (NIST).
const AES_256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

/// Who may open a seal, as its recipient infos name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The DER of the certificate issuer's Name.
    pub issuer: Vec<u8>,
    /// The serial number's content octets, as DER writes them.
    pub serial: Vec<u8>,
}

/// Signs `payload` with `signer` (its certificate included) and encrypts it for `recipients`.
pub fn seal(
    payload: &[u8],
    signer: (&X509, &PKey<Private>),
    recipients: &[X509],
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let signed = CmsContentInfo::sign(
        Some(signer.0),
        Some(signer.1),
        None,
        Some(payload),
        CMSOptions::BINARY,
    )?
    .to_der()?;
    let mut stack = Stack::new()?;
    for cert in recipients {
        stack.push(cert.clone())?;
    }
    CmsContentInfo::encrypt(&stack, &signed, Cipher::aes_256_cbc(), CMSOptions::BINARY)?.to_der()
}

/// Why a seal would not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the payload cannot be decrypted with this key: {0}")]
    Decrypt(openssl::error::ErrorStack),
    #[error("the signature does not verify against the sender's certificate: {0}")]
    Signature(openssl::error::ErrorStack),
}

/// Decrypts a seal with `me` and verifies its signature by `sender` (chained to `trust`); the
/// payload.
pub fn open(
    sealed: &[u8],
    me: (&X509, &PKey<Private>),
    sender: &X509,
    trust: &X509StoreRef,
) -> Result<Vec<u8>, OpenError> {
    let enveloped = CmsContentInfo::from_der(sealed).map_err(OpenError::Decrypt)?;
    let signed = enveloped.decrypt(me.1, me.0).map_err(OpenError::Decrypt)?;
    let mut signed = CmsContentInfo::from_der(&signed).map_err(OpenError::Signature)?;
    let mut certs = Stack::new().map_err(OpenError::Signature)?;
    certs.push(sender.clone()).map_err(OpenError::Signature)?;
    let mut payload = Vec::new();
    // NOINTERN: only the sender's certificate from the register counts, not one the seal carries.
    signed
        .verify(
            Some(&certs),
            Some(trust),
            None,
            Some(&mut payload),
            CMSOptions::NOINTERN | CMSOptions::BINARY,
        )
        .map_err(OpenError::Signature)?;
    Ok(payload)
}

/// The recipients of an EnvelopedData seal encrypted with AES-256-CBC, read from its DER.
pub fn recipients(der: &[u8]) -> Result<Vec<Recipient>, String> {
    let mut content_info = Der::new(der).sequence()?;
    if content_info.next(OID)? != ENVELOPED_DATA {
        return Err("it is not CMS EnvelopedData".into());
    }
    let mut enveloped = Der::new(content_info.next(CONTEXT_0)?).sequence()?;
    enveloped.next(INTEGER)?;
    if enveloped.peek() == Some(CONTEXT_0) {
        enveloped.next(CONTEXT_0)?;
    }
    let mut infos = Der::new(enveloped.next(SET)?);
    let mut found = Vec::new();
    while !infos.is_empty() {
        let tag = infos.peek();
        let info = infos.next(tag.unwrap_or(SEQUENCE))?;
        if tag != Some(SEQUENCE) {
            // Key agreement or other kinds: not what RSA certificates give.
            continue;
        }
        let mut info = Der::new(info);
        info.next(INTEGER)?;
        if info.peek() == Some(SEQUENCE) {
            let mut rid = Der::new(info.next(SEQUENCE)?);
            let issuer = rid.whole(SEQUENCE)?;
            let serial = rid.next(INTEGER)?;
            found.push(Recipient {
                issuer: issuer.to_vec(),
                serial: serial.to_vec(),
            });
        }
    }
    let mut encrypted_content = Der::new(enveloped.next(SEQUENCE)?);
    encrypted_content.next(OID)?;
    let mut algorithm = Der::new(encrypted_content.next(SEQUENCE)?);
    if algorithm.next(OID)? != AES_256_CBC {
        return Err("its content is not encrypted with AES-256-CBC".into());
    }
    Ok(found)
}

/// Whether `cert` is one of `recipients`.
pub fn addressed_to(recipients: &[Recipient], cert: &X509) -> bool {
    let Ok(issuer) = cert.issuer_name().to_der() else {
        return false;
    };
    let Ok(serial) = cert.serial_number().to_bn().map(|bn| bn.to_vec()) else {
        return false;
    };
    recipients
        .iter()
        .any(|r| r.issuer == issuer && strip_sign(&r.serial) == strip_sign(&serial))
}

/// A serial number's magnitude: DER's sign octet and any leading zeros removed (zero is empty,
/// as OpenSSL's big numbers write it).
fn strip_sign(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros..]
}

const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// `[0]`, constructed: EnvelopedData in ContentInfo, and originatorInfo.
const CONTEXT_0: u8 = 0xa0;

/// A cursor over DER elements: just enough to walk EnvelopedData.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Der(bytes)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The header length and content length of the next element.
    fn header(&self) -> Result<(usize, usize), String> {
        let truncated = || "the DER is truncated".to_owned();
        let first = *self.0.get(1).ok_or_else(truncated)?;
        if first < 0x80 {
            return Ok((2, usize::from(first)));
        }
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 {
            return Err("a DER length is indefinite or too long".into());
        }
        let bytes = self.0.get(2..2 + octets).ok_or_else(truncated)?;
        let length = bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        Ok((2 + octets, length))
    }

    /// The next element's content, which must have `tag`.
    fn next(&mut self, tag: u8) -> Result<&'a [u8], String> {
        let (content, _) = self.take(tag)?;
        Ok(content)
    }

    /// The next element whole (header included), which must have `tag`.
    fn whole(&mut self, tag: u8) -> Result<&'a [u8], String> {
        let (_, whole) = self.take(tag)?;
        Ok(whole)
    }

    fn take(&mut self, tag: u8) -> Result<(&'a [u8], &'a [u8]), String> {
        match self.peek() {
            Some(t) if t == tag => {}
            Some(t) => return Err(format!("expected DER tag {tag:#04x}, found {t:#04x}")),
            None => return Err("the DER ends early".into()),
        }
        let (header, length) = self.header()?;
        let end = header
            .checked_add(length)
            .filter(|end| *end <= self.0.len())
            .ok_or_else(|| "the DER is truncated".to_owned())?;
        let whole = &self.0[..end];
        self.0 = &self.0[end..];
        Ok((&whole[header..], whole))
    }

    /// This element as a SEQUENCE's contents.
    fn sequence(mut self) -> Result<Der<'a>, String> {
        Ok(Der(self.next(SEQUENCE)?))
    }
}
