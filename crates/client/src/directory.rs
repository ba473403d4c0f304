//! The address register from a member's side: who a HER-id is, which certificate to seal for or
//! verify with, and what the CPA between two parties agrees.

use anyhow::{Context, Result, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use helsenett_core::HerId;
use helsenett_exchange::apprec::Named;
use openssl::x509::X509;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::{api::Api, helseid::Tokens};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartyInfo {
    pub her_id: String,
    pub name: String,
    pub orgnr: String,
    pub parent_her_id: Option<String>,
    pub parent_name: Option<String>,
    pub addressable: bool,
}

impl PartyInfo {
    /// The party as a MsgHead or AppRec names it: a unit under its institution.
    pub fn named(&self) -> Result<Named> {
        let her_id: HerId = self.her_id.parse()?;
        Ok(match (&self.parent_her_id, &self.parent_name) {
            (Some(parent), Some(parent_name)) => Named {
                institution: (parent.parse()?, parent_name.clone()),
                department: Some((her_id, self.name.clone())),
            },
            _ => Named {
                institution: (her_id, self.name.clone()),
                department: None,
            },
        })
    }
}

pub struct Directory(Api);

/// Which of a party's certificates.
#[derive(Debug, Clone, Copy)]
pub enum Usage {
    Encryption,
    SignatureValidation,
}

impl Directory {
    /// The register's API at `base` (e.g. `http://127.0.0.1:8080/adresseregisteret/v1/`).
    pub fn new(http: reqwest::Client, base: Url, tokens: Tokens) -> Self {
        Directory(Api::new(http, base, tokens, Vec::new()))
    }

    pub async fn party(&self, her_id: HerId) -> Result<PartyInfo> {
        let bytes = self
            .0
            .call(Method::GET, &format!("parties/{her_id}"), None)
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// The certificate `her_id` uses for `usage` now; an error if it cannot be used.
    pub async fn certificate(&self, her_id: HerId, usage: Usage) -> Result<X509> {
        let path = match usage {
            Usage::Encryption => "certificate-for-encryption",
            Usage::SignatureValidation => "certificate-for-signature-validation",
        };
        let bytes = self
            .0
            .call(Method::GET, &format!("parties/{her_id}/{path}"), None)
            .await?;
        let body: Value = serde_json::from_slice(&bytes)?;
        let der = STANDARD.decode(
            body["certificate"]
                .as_str()
                .context("the answer has no certificate")?,
        )?;
        Ok(X509::from_der(&der)?)
    }

    /// The version of `message_type` the CPA from `from` to `to` agrees on.
    pub async fn agreed_version(
        &self,
        from: HerId,
        to: HerId,
        message_type: &str,
    ) -> Result<String> {
        let bytes = self
            .0
            .call(Method::GET, &format!("cpa?from={from}&to={to}"), None)
            .await?;
        let agreement: Value = serde_json::from_slice(&bytes)?;
        for process in agreement["processes"].as_array().into_iter().flatten() {
            if process["messageType"] == message_type {
                return Ok(process["version"].as_str().unwrap_or_default().to_owned());
            }
        }
        bail!("HER-id {from} and HER-id {to} agree on no version of {message_type}")
    }
}
