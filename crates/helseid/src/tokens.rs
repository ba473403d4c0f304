//! What HelseID issues: JWT access tokens (RFC 9068) with HelseID's claims, and ID tokens.

use axum::{
    Json,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use crate::{
    HelseId, OAuthError, catalogue,
    clients::Client,
    jose::{self, Audience},
};

/// Whether a JWT `typ` names an access token (RFC 9068 §4: `at+jwt`, or the full media type).
pub fn is_access_token_type(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == "at+jwt" || t == "application/at+jwt"
    })
}

/// Claims of an access token. The guard reads the same struct.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    #[serde(rename = "helseid://claims/client/claims/orgnr_parent")]
    pub orgnr_parent: String,
    #[serde(
        rename = "helseid://claims/client/claims/orgnr_child",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub orgnr_child: Option<String>,
    #[serde(flatten)]
    pub user: Option<UserClaims>,
}

/// DPoP binding: the thumbprint of the key the token is bound to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    pub jkt: String,
}

/// Claims about the signed-in person, in access tokens, ID tokens and userinfo.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserClaims {
    #[serde(rename = "helseid://claims/identity/pid")]
    pub pid: String,
    #[serde(rename = "helseid://claims/identity/security_level")]
    pub security_level: String,
    #[serde(
        rename = "helseid://claims/hpr/hpr_number",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub hpr_number: Option<String>,
    pub name: String,
    pub auth_time: i64,
}

/// A token endpoint answer.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip)]
    pub dpop_nonce: String,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let nonce = HeaderValue::from_str(&self.dpop_nonce).ok();
        let mut response = Json(self).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(nonce) = nonce {
            headers.insert("dpop-nonce", nonce);
        }
        response
    }
}

/// What a token is issued for.
pub struct Grant<'a> {
    pub client: &'a Client,
    pub scopes: &'a [String],
    pub user: Option<UserClaims>,
    /// The DPoP key's thumbprint, when the token is bound.
    pub jkt: Option<String>,
    /// The `nonce` of an authorization request, echoed in the ID token.
    pub nonce: Option<String>,
    /// The access token's `jti`.
    pub jti: String,
}

impl HelseId {
    /// The stable pseudonym of a person: `sub`, which is not their national identity number.
    fn subject_of(&self, pid: &str) -> String {
        jose::b64url(aws_lc_rs::hmac::sign(&self.0.subject_key, pid.as_bytes()).as_ref())
    }

    pub(crate) async fn issue(&self, grant: Grant<'_>) -> Result<TokenResponse, OAuthError> {
        let now = crate::now();
        let lifetime = self.0.settings.access_token_seconds;
        let issuer = self.issuer().to_owned();
        let mut audiences = catalogue::audiences_of(grant.scopes.iter().map(String::as_str));
        let openid = grant.scopes.iter().any(|s| s == catalogue::OPENID);
        if openid {
            // The token is also for HelseID's own userinfo endpoint.
            audiences.push(issuer.clone());
        }
        let sub = match &grant.user {
            Some(user) => self.subject_of(&user.pid),
            None => grant.client.client_id.clone(),
        };
        let scope = grant.scopes.join(" ");
        let token_type = if grant.jkt.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        let claims = AccessTokenClaims {
            iss: issuer.clone(),
            sub: sub.clone(),
            aud: Audience::from_list(audiences),
            exp: now + lifetime,
            iat: now,
            nbf: now,
            jti: grant.jti.clone(),
            client_id: grant.client.client_id.clone(),
            scope: scope.clone(),
            cnf: grant.jkt.clone().map(|jkt| Confirmation { jkt }),
            orgnr_parent: grant.client.orgnr_parent.to_string(),
            orgnr_child: grant.client.orgnr_child.map(|o| o.to_string()),
            user: grant.user.clone(),
        };
        let access_token = self.0.keys.sign("at+jwt", &claims).await?;
        let id_token = match (&grant.user, openid) {
            (Some(user), true) => Some(
                self.0
                    .keys
                    .sign("JWT", &self.id_token_claims(&grant, user, &sub, now))
                    .await?,
            ),
            _ => None,
        };
        metrics::counter!("helseid_tokens_issued_total", "token_type" => token_type).increment(1);
        Ok(TokenResponse {
            access_token,
            token_type,
            expires_in: lifetime,
            scope,
            id_token,
            dpop_nonce: self.0.nonces.issue(now),
        })
    }

    fn id_token_claims(
        &self,
        grant: &Grant<'_>,
        user: &UserClaims,
        sub: &str,
        now: i64,
    ) -> serde_json::Value {
        let mut claims = serde_json::json!({
            "iss": self.issuer(),
            "sub": sub,
            "aud": grant.client.client_id,
            "exp": now + self.0.settings.access_token_seconds,
            "iat": now,
            "auth_time": user.auth_time,
        });
        let object = claims.as_object_mut().expect("an object");
        if let Some(nonce) = &grant.nonce {
            object.insert("nonce".into(), nonce.clone().into());
        }
        for (name, value) in user_claims(user, grant.scopes) {
            object.insert(name.into(), value);
        }
        claims
    }
}

/// The claims about `user` that `scopes` release, as ID token and userinfo carry them.
pub fn user_claims(user: &UserClaims, scopes: &[String]) -> Vec<(&'static str, serde_json::Value)> {
    let has = |s: &str| scopes.iter().any(|g| g == s);
    let mut out = Vec::new();
    if has("profile") {
        out.push(("name", user.name.clone().into()));
    }
    if has(catalogue::SCOPE_PID) {
        out.push((catalogue::CLAIM_PID, user.pid.clone().into()));
    }
    if has(catalogue::SCOPE_SECURITY_LEVEL) {
        out.push((
            catalogue::CLAIM_SECURITY_LEVEL,
            user.security_level.clone().into(),
        ));
    }
    if has(catalogue::SCOPE_HPR_NUMBER)
        && let Some(hpr) = &user.hpr_number
    {
        out.push((catalogue::CLAIM_HPR_NUMBER, hpr.clone().into()));
    }
    out
}
