//! The token endpoint: `client_credentials` for systems, `authorization_code` (with PKCE) for
//! people, both with `private_key_jwt` and DPoP.

use axum::{
    body::Bytes,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use url::Url;

use crate::{
    HelseId, OAuthError, catalogue,
    clients::{CLIENT_CREDENTIALS, Client, GRANT_TYPES},
    dpop::{self, Expected, Proof, ProofError},
    jose,
    login::CodeGrant,
    params::Params,
    tokens::Grant,
};

pub async fn token(State(id): State<HelseId>, headers: HeaderMap, body: Bytes) -> Response {
    match id.token(&headers, &body).await {
        Ok(response) => response.into_response(),
        Err(e) => e.into_response(),
    }
}

impl HelseId {
    async fn token(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<crate::tokens::TokenResponse, OAuthError> {
        let params = Params::parse(headers, body)?;
        let grant_type = params.require("grant_type")?;
        if !GRANT_TYPES.contains(&grant_type) {
            return Err(OAuthError::unsupported_grant_type(format!(
                "grant_type {grant_type:?} is not supported (client_credentials, authorization_code)"
            )));
        }
        let endpoint = self.0.endpoints.token.clone();
        // The proof (and its nonce) is checked before the client assertion is spent, so that a
        // client told to use a nonce can retry with the very same assertion.
        let proof = self.dpop_proof(headers, &endpoint)?;
        let client = self
            .authenticate(&params, headers, &endpoint, proof.as_ref())
            .await?;
        if !client.allows_grant(grant_type) {
            return Err(OAuthError::unauthorized_client(format!(
                "client {:?} may not use grant_type {grant_type}",
                client.client_id
            )));
        }
        let jkt = bind(&client, proof)?;
        if grant_type == CLIENT_CREDENTIALS {
            let scopes = params.scopes();
            check_scopes(&client, &scopes, false)?;
            return self
                .issue(Grant {
                    client: &client,
                    scopes: &scopes,
                    user: None,
                    jkt,
                    nonce: None,
                    jti: jose::random_token(16),
                })
                .await;
        }
        // The token's id is fixed before the code is spent, and stored with it in the same
        // statement, so that a second use always finds the token to revoke.
        let jti = jose::random_token(16);
        let grant = self
            .redeem_code(&params, &client, jkt.as_deref(), &jti)
            .await?;
        self.issue(Grant {
            client: &client,
            scopes: &grant.request.scopes,
            user: Some(grant.user),
            jkt,
            nonce: grant.request.nonce,
            jti,
        })
        .await
    }

    /// Verifies the DPoP proof of a POST to one of HelseID's endpoints, if it has one, without
    /// recording it. The proof must carry a current nonce.
    pub(crate) fn dpop_proof(
        &self,
        headers: &HeaderMap,
        url: &Url,
    ) -> Result<Option<Proof>, OAuthError> {
        let mut values = headers.get_all("dpop").iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(OAuthError::invalid_dpop_proof(
                "only one DPoP header is allowed",
            ));
        }
        let now = crate::now();
        let proof = value
            .to_str()
            .map_err(|_| OAuthError::invalid_dpop_proof("the DPoP header is not ASCII"))?;
        let expected = Expected {
            method: "POST",
            url,
            access_token: None,
            nonces: Some(&self.0.nonces),
            now,
        };
        match dpop::verify(proof, &expected) {
            Ok(proof) => Ok(Some(proof)),
            Err(ProofError::NonceRequired) => {
                Err(OAuthError::use_dpop_nonce(self.0.nonces.issue(now)))
            }
            Err(e) => Err(OAuthError::invalid_dpop_proof(e.to_string())),
        }
    }

    async fn redeem_code(
        &self,
        params: &Params,
        client: &Client,
        jkt: Option<&str>,
        jti: &str,
    ) -> Result<CodeGrant, OAuthError> {
        let code = params.require("code")?;
        let redirect_uri = params.require("redirect_uri")?;
        let verifier = params.require("code_verifier")?;
        let valid_verifier = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !valid_verifier {
            return Err(OAuthError::invalid_request(
                "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636)",
            ));
        }
        let grant = self
            .take_code(code, jti)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("the code is unknown, used or expired"))?;
        if grant.request.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
        }
        if grant.request.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        if jose::sha256_b64url(verifier.as_bytes()) != grant.request.code_challenge {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge (PKCE S256)",
            ));
        }
        if let Some(bound) = &grant.request.dpop_jkt
            && Some(bound.as_str()) != jkt
        {
            return Err(OAuthError::invalid_dpop_proof(
                "the DPoP key differs from the dpop_jkt of the authorization request",
            ));
        }
        Ok(grant)
    }
}

/// The key a token is bound to (the proof's, recorded by [`HelseId::authenticate`]); refuses a
/// client that must use DPoP but sent no proof.
fn bind(client: &Client, proof: Option<Proof>) -> Result<Option<String>, OAuthError> {
    match proof {
        Some(proof) => Ok(Some(proof.jkt)),
        None if client.dpop_required => Err(OAuthError::invalid_dpop_proof(format!(
            "client {:?} must send a DPoP proof (RFC 9449) with this request",
            client.client_id
        ))),
        None => Ok(None),
    }
}

/// Every requested scope must be allowed to the client; identity scopes only with a person.
pub(crate) fn check_scopes(
    client: &Client,
    scopes: &[String],
    with_person: bool,
) -> Result<(), OAuthError> {
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope("scope is required"));
    }
    for scope in scopes {
        if !catalogue::is_known(scope) {
            return Err(OAuthError::invalid_scope(format!(
                "scope {scope:?} is not known to HelseID"
            )));
        }
        if catalogue::is_identity_scope(scope) && !with_person {
            return Err(OAuthError::invalid_scope(format!(
                "scope {scope:?} is about a signed-in person; client_credentials has none"
            )));
        }
        if !client.allows_scope(scope) {
            return Err(OAuthError::invalid_scope(format!(
                "client {:?} may not request scope {scope:?}",
                client.client_id
            )));
        }
    }
    Ok(())
}
