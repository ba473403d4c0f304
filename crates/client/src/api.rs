//! One HelseID-protected API: each call carries a DPoP-bound token and its proof, and an error
//! answer becomes an error naming what the server said (problem+json or NHN's ErrorMessage).

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::helseid::Tokens;

pub(crate) struct Api {
    http: reqwest::Client,
    /// The API's root, ending in `/`.
    base: Url,
    tokens: Tokens,
    /// Headers every call of this API carries.
    headers: Vec<(&'static str, String)>,
}

impl Api {
    pub(crate) fn new(
        http: reqwest::Client,
        base: Url,
        tokens: Tokens,
        headers: Vec<(&'static str, String)>,
    ) -> Self {
        Api {
            http,
            base,
            tokens,
            headers,
        }
    }

    /// `method path` with an optional JSON body; the answer's body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Vec<u8>> {
        let url = self.base.join(path)?;
        let token = self.tokens.access_token().await?;
        let proof = self.tokens.proof(method.as_str(), &url, &token)?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof);
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
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
            bail!(
                "{method} {url}: HTTP {}: {}",
                status.as_u16(),
                explain(&bytes)
            );
        }
        Ok(bytes)
    }
}

/// The words of an error body: `detail` of a problem, `error` and `validationErrors` of NHN's
/// ErrorMessage, or the body itself.
fn explain(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return String::from_utf8_lossy(body).into_owned();
    };
    let mut text = v["detail"]
        .as_str()
        .or(v["error"].as_str())
        .unwrap_or_default()
        .to_owned();
    for e in v["validationErrors"].as_array().into_iter().flatten() {
        text.push_str("\n  ");
        text.push_str(e.as_str().unwrap_or_default());
    }
    text
}
