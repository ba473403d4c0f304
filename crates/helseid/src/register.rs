//! Dynamic client registration (RFC 7591), for an operator holding the admin token. HelseID's
//! extension fields name the organisation the client acts for.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use helsenett_core::Organisasjonsnummer;
use jsonwebtoken::jwk::JwkSet;
use openssl::memcmp;
use serde::Deserialize;
use serde_json::json;

use crate::{
    HelseId, OAuthError,
    clients::{self, CLIENT_CREDENTIALS, Client, ClientError},
    jose,
};

/// RFC 7591 client metadata; fields HelseID does not use are ignored (§2).
#[derive(Deserialize)]
struct Metadata {
    client_name: Option<String>,
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    scope: Option<String>,
    token_endpoint_auth_method: Option<String>,
    token_endpoint_auth_signing_alg: Option<String>,
    id_token_signed_response_alg: Option<String>,
    dpop_bound_access_tokens: Option<bool>,
    orgnr_parent: String,
    orgnr_child: Option<String>,
}

pub async fn register(State(id): State<HelseId>, headers: HeaderMap, body: Bytes) -> Response {
    match id.register(&headers, &body).await {
        Ok(client) => (
            StatusCode::CREATED,
            [(header::CACHE_CONTROL, "no-store")],
            Json(metadata_of(&client)),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// A client as RFC 7591 metadata.
pub fn metadata_of(client: &Client) -> serde_json::Value {
    json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at,
        "client_name": client.name,
        "jwks": client.jwks,
        "grant_types": client.grant_types,
        "redirect_uris": client.redirect_uris,
        "scope": client.scopes.join(" "),
        "token_endpoint_auth_method": "private_key_jwt",
        "dpop_bound_access_tokens": client.dpop_required,
        "orgnr_parent": client.orgnr_parent.to_string(),
        "orgnr_child": client.orgnr_child.map(|o| o.to_string()),
        "audiences": client.audiences(),
    })
}

impl HelseId {
    async fn register(&self, headers: &HeaderMap, body: &[u8]) -> Result<Client, OAuthError> {
        let Some(admin) = &self.0.settings.admin_token else {
            return Err(OAuthError::access_denied(
                "client registration is off: no HelseID admin token is configured",
            ));
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !(presented.len() == admin.len() && memcmp::eq(presented.as_bytes(), admin.as_bytes())) {
            return Err(OAuthError {
                challenge: Some("Bearer error=\"invalid_token\""),
                ..OAuthError::invalid_token(
                    "client registration needs the admin token (Authorization: Bearer ...)",
                )
            });
        }
        let metadata: Metadata = serde_json::from_slice(body).map_err(|e| {
            OAuthError::invalid_client_metadata(format!(
                "the body is not valid client metadata: {e}"
            ))
        })?;
        let client = client_from(metadata, crate::now())?;
        if !clients::insert(self.store(), std::slice::from_ref(&client)).await? {
            return Err(OAuthError::invalid_client_metadata(
                "a client with this id exists",
            ));
        }
        tracing::info!(client_id = %client.client_id, orgnr = %client.orgnr_parent, "client registered");
        Ok(client)
    }
}

fn client_from(m: Metadata, now: i64) -> Result<Client, OAuthError> {
    let bad = |m: &str| Err(OAuthError::invalid_client_metadata(m.to_owned()));
    if m.jwks_uri.is_some() {
        return bad("jwks_uri is not supported: register the public keys in jwks");
    }
    let Some(jwks) = m.jwks else {
        return bad("jwks is required: HelseID clients authenticate with private_key_jwt");
    };
    let private = jwks["keys"]
        .as_array()
        .is_some_and(|keys| keys.iter().any(|k| k.get("d").is_some()));
    if private {
        return bad("jwks holds a private key: register the public keys only");
    }
    let jwks: JwkSet = serde_json::from_value(jwks)
        .map_err(|e| OAuthError::invalid_client_metadata(format!("jwks is not a JWK set: {e}")))?;
    if m.token_endpoint_auth_method
        .as_deref()
        .is_some_and(|a| a != "private_key_jwt")
    {
        return bad("token_endpoint_auth_method must be private_key_jwt");
    }
    if let Some(alg) = &m.token_endpoint_auth_signing_alg
        && !jose::algorithm_names(jose::CLIENT_ALGORITHMS).contains(alg)
    {
        return bad("token_endpoint_auth_signing_alg must be an asymmetric algorithm");
    }
    if let Some(alg) = &m.id_token_signed_response_alg
        && !["ES256", "PS256"].contains(&alg.as_str())
    {
        return bad("id_token_signed_response_alg must be ES256 or PS256");
    }
    if m.response_types
        .as_ref()
        .is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return bad("response_types may only hold code");
    }
    let orgnr = |field: &str, value: &str| {
        Organisasjonsnummer::parse(value)
            .map_err(|e| OAuthError::invalid_client_metadata(format!("{field}: {e}")))
    };
    let client = Client {
        client_id: jose::random_token(16),
        name: m.client_name.unwrap_or_else(|| "unnamed client".into()),
        jwks,
        grant_types: m
            .grant_types
            .unwrap_or_else(|| vec![CLIENT_CREDENTIALS.to_owned()]),
        scopes: m
            .scope
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        redirect_uris: m.redirect_uris,
        orgnr_parent: orgnr("orgnr_parent", &m.orgnr_parent)?,
        orgnr_child: m
            .orgnr_child
            .as_deref()
            .map(|o| orgnr("orgnr_child", o))
            .transpose()?,
        dpop_required: m.dpop_bound_access_tokens.unwrap_or(true),
        enabled: true,
        created_at: now,
    };
    client.validate().map_err(|e| match e {
        ClientError::Metadata(m) => OAuthError::invalid_client_metadata(m),
        ClientError::RedirectUri(m) => OAuthError::invalid_redirect_uri(m),
    })?;
    Ok(client)
}
