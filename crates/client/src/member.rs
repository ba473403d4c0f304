//! A member organisation's system on the network: it seals what it sends for each receiver's
//! current encryption certificate and signs it with its own key, and opens what it receives,
//! checking the signature against the sender's certificate in the address register.

use anyhow::{Context, Result, bail};
use chrono::Utc;
use helsenett_core::HerId;
use helsenett_exchange::{
    cms,
    envelope::{Envelope, Outgoing},
    synthetic::Credentials,
    xml,
};
use openssl::x509::store::X509Store;

use crate::{
    directory::{Directory, Usage},
    msh::{Listed, Msh},
};

pub struct Member {
    pub msh: Msh,
    pub directory: Directory,
    /// The member's own signing and decryption keys.
    pub keys: Credentials,
    /// The CAs a sender's certificate must chain to.
    pub trust: X509Store,
}

/// A message as sent: the exchange's id and the document's own MsgId.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    pub msg_id: String,
    pub version: String,
}

/// A message as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub listed: Listed,
    /// The opened payload of a MsgHead, or the AppRec document itself.
    pub content: Vec<u8>,
}

impl Member {
    /// Seals `payload` for `receivers` and sends it from `sender` as `message_type`, at the
    /// version the CPA with the first receiver agrees.
    pub async fn send(
        &self,
        sender: HerId,
        receivers: &[HerId],
        message_type: &str,
        payload: &[u8],
    ) -> Result<Sent> {
        let Some(first) = receivers.first() else {
            bail!("a message needs a receiver");
        };
        let version = self
            .directory
            .agreed_version(sender, *first, message_type)
            .await?;
        let mut certificates = Vec::with_capacity(receivers.len());
        let mut named = Vec::with_capacity(receivers.len());
        for receiver in receivers {
            certificates.push(
                self.directory
                    .certificate(*receiver, Usage::Encryption)
                    .await?,
            );
            named.push(self.directory.party(*receiver).await?.named()?);
        }
        let sealed = cms::seal(
            payload,
            (&self.keys.signing.certificate, &self.keys.signing.key),
            &certificates,
        )?;
        let msg_id = uuid::Uuid::new_v4().to_string();
        let document = Outgoing {
            message_type,
            version: version.parse().map_err(anyhow::Error::msg)?,
            msg_id: &msg_id,
            gen_date: Utc::now(),
            sender: &self.directory.party(sender).await?.named()?,
            receiver: &named[0],
            copies: &named[1..],
            sealed: &sealed,
        }
        .to_xml();
        let id = self.msh.send(document.as_bytes()).await?;
        Ok(Sent {
            id,
            msg_id,
            version,
        })
    }

    /// Up to `count` unread messages of `receiver`, opened and verified. They stay unread until
    /// [`Msh::mark_read`].
    pub async fn receive(&self, receiver: HerId, count: u32) -> Result<Vec<Received>> {
        let mut received = Vec::new();
        for listed in self.msh.unread(&[receiver.get()], count).await? {
            let document = self.msh.business_document(&listed.id).await?;
            let content = if listed.is_app_rec == Some(true) {
                document
            } else {
                self.open(&listed, &document)
                    .await
                    .with_context(|| format!("message {}", listed.id))?
            };
            received.push(Received { listed, content });
        }
        Ok(received)
    }

    async fn open(&self, listed: &Listed, document: &[u8]) -> Result<Vec<u8>> {
        let root = xml::parse(document)?;
        let envelope = Envelope::read(&root).map_err(|faults| {
            anyhow::anyhow!(
                "the envelope is not valid: {}",
                faults
                    .first()
                    .map(|f| f.message.as_str())
                    .unwrap_or_default()
            )
        })?;
        let sealed = envelope
            .sealed
            .first()
            .context("the message has no sealed payload")?;
        let sender = HerId::new(listed.sender_her_id.context("no sender HER-id")?)?;
        let sender_certificate = self
            .directory
            .certificate(sender, Usage::SignatureValidation)
            .await?;
        Ok(cms::open(
            sealed,
            (&self.keys.encryption.certificate, &self.keys.encryption.key),
            &sender_certificate,
            &self.trust,
        )?)
    }
}
