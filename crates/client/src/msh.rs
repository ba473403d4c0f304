//! The MSH API v2 from an EPJ system's side: every call with a DPoP-bound HelseID token and
//! the headers NHN's API requires.

use anyhow::{Context, Result, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::helseid::Tokens;

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

pub struct Msh {
    http: reqwest::Client,
    /// The API's root, ending in `/msh/`.
    base: Url,
    tokens: Tokens,
    source_system: String,
}

impl Msh {
    /// A client of the MSH API at `base` (e.g. `http://127.0.0.1:8080/msh/`).
    pub fn new(http: reqwest::Client, base: Url, tokens: Tokens, source_system: &str) -> Self {
        Msh {
            http,
            base,
            tokens,
            source_system: source_system.to_owned(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let url = self.base.join(path)?;
        let token = self.tokens.access_token().await?;
        let proof = self.tokens.proof(method.as_str(), &url, &token)?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .header("api-version", "2")
            .header("nhn-source-system", &self.source_system);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let bytes = response.bytes().await?.to_vec();
        if !status.is_success() {
            let detail = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .map(|v| {
                    let mut text = v["error"]
                        .as_str()
                        .or(v["detail"].as_str())
                        .unwrap_or("")
                        .to_owned();
                    if let Some(list) = v["validationErrors"].as_array() {
                        for e in list {
                            text.push_str("\n  ");
                            text.push_str(e.as_str().unwrap_or_default());
                        }
                    }
                    text
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{method} {url}: HTTP {}: {detail}", status.as_u16());
        }
        Ok((status, bytes))
    }

    /// Submits a business document; the message id.
    pub async fn send(&self, document: &[u8]) -> Result<String> {
        let body = json!({
            "businessDocument": STANDARD.encode(document),
            "contentType": "application/xml",
            "contentTransferEncoding": "base64",
        });
        let (_, bytes) = self.call(Method::POST, "Messages", Some(body)).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Up to `count` unread messages of `receivers`, oldest first.
    pub async fn unread(&self, receivers: &[u32], count: u32) -> Result<Vec<Listed>> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for receiver in receivers {
            query.append_pair("ReceiverHerIds", &receiver.to_string());
        }
        query.append_pair("IncludeMetadata", "true");
        query.append_pair("MessagesToFetch", &count.to_string());
        let (_, bytes) = self
            .call(Method::GET, &format!("Messages?{}", query.finish()), None)
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// The business document of message `id`.
    pub async fn business_document(&self, id: &str) -> Result<Vec<u8>> {
        let (_, bytes) = self
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
        self.call(Method::PUT, &format!("Messages/{id}/read/{her_id}"), None)
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
        let (_, bytes) = self
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
        let (_, bytes) = self
            .call(Method::GET, &format!("Messages/{id}/status"), None)
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Per receiver: the AppRec's status and errors.
    pub async fn apprec_info(&self, id: &str) -> Result<Value> {
        let (_, bytes) = self
            .call(Method::GET, &format!("Messages/{id}/apprec"), None)
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}
