//! The MSH API v2 from an EPJ system's side: every call with a DPoP-bound HelseID token and
//! the headers NHN's API requires.

use anyhow::{Context, Result};
use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::{api::Api, helseid::Tokens};

/// A message in a mailbox, with its metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub id: String,
    pub receiver_her_id: u32,
    pub sender_her_id: Option<u32>,
    pub business_document_id: Option<String>,
    pub is_app_rec: Option<bool>,
}

pub struct Msh(Api);

impl Msh {
    /// A client of the MSH API at `base` (e.g. `http://127.0.0.1:8080/msh/`), as the system
    /// `source_system` (name and version).
    pub fn new(http: reqwest::Client, base: Url, tokens: Tokens, source_system: &str) -> Self {
        let headers = vec![
            ("api-version", "2".to_owned()),
            ("nhn-source-system", source_system.to_owned()),
        ];
        Msh(Api::new(http, base, tokens, headers))
    }

    /// Submits a business document; the message id.
    pub async fn send(&self, document: &[u8]) -> Result<String> {
        let body = json!({
            "businessDocument": STANDARD.encode(document),
            "contentType": "application/xml",
            "contentTransferEncoding": "base64",
        });
        let bytes = self.0.call(Method::POST, "Messages", Some(body)).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Up to `count` unread messages of `receivers`, oldest first.
    pub async fn unread(&self, receivers: &[u32], count: u32) -> Result<Vec<Listed>> {
        let query = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for receiver in receivers {
                query.append_pair("ReceiverHerIds", &receiver.to_string());
            }
            query.append_pair("IncludeMetadata", "true");
            query.append_pair("MessagesToFetch", &count.to_string());
            query.finish()
        };
        let bytes = self
            .0
            .call(Method::GET, &format!("Messages?{query}"), None)
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// The business document of message `id`.
    pub async fn business_document(&self, id: &str) -> Result<Vec<u8>> {
        let bytes = self
            .0
            .call(
                Method::GET,
                &format!("Messages/{id}/business-document"),
                None,
            )
            .await?;
        let body: Value = serde_json::from_slice(&bytes)?;
        let encoded = body["businessDocument"]
            .as_str()
            .context("the answer has no businessDocument")?;
        Ok(STANDARD.decode(encoded)?)
    }

    pub async fn mark_read(&self, id: &str, her_id: u32) -> Result<()> {
        self.0
            .call(Method::PUT, &format!("Messages/{id}/read/{her_id}"), None)
            .await?;
        Ok(())
    }

    /// Answers message `id` as `her_id` with an AppRec; the AppRec's message id.
    pub async fn apprec(
        &self,
        id: &str,
        her_id: u32,
        status: &str,
        errors: &[Value],
    ) -> Result<String> {
        let body = json!({"appRecStatus": status, "appRecErrorList": errors});
        let bytes = self
            .0
            .call(
                Method::POST,
                &format!("Messages/{id}/apprec/{her_id}"),
                Some(body),
            )
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Per receiver: transport state and AppRec status.
    pub async fn status(&self, id: &str) -> Result<Value> {
        let bytes = self
            .0
            .call(Method::GET, &format!("Messages/{id}/status"), None)
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Per receiver: the AppRec's status and errors.
    pub async fn apprec_info(&self, id: &str) -> Result<Value> {
        let bytes = self
            .0
            .call(Method::GET, &format!("Messages/{id}/apprec"), None)
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}
