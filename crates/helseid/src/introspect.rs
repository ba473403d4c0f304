//! What HelseID answers about tokens it issued: userinfo (OIDC), introspection (RFC 7662) and
//! revocation (RFC 7009).

use axum::{
    Json,
    body::Bytes,
    extract::{OriginalUri, State},
    http::{HeaderMap, Method, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::{
    HelseId, OAuthError, catalogue, jose,
    params::Params,
    tokens::{AccessTokenClaims, user_claims},
};

/// GET or POST /connect/userinfo with an access token that has the `openid` scope.
pub async fn userinfo(
    State(id): State<HelseId>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let claims = match id
        .guard()
        .verify(&method, &uri, &headers, id.issuer())
        .await
    {
        Ok(c) => c,
        Err(denied) => return denied.into_response(),
    };
    let scopes: Vec<String> = claims.scope.split_whitespace().map(str::to_owned).collect();
    let Some(user) = claims
        .user
        .as_ref()
        .filter(|_| scopes.iter().any(|s| s == catalogue::OPENID))
    else {
        return crate::Denied {
            status: axum::http::StatusCode::FORBIDDEN,
            error: "insufficient_scope",
            description: "userinfo needs a token for a signed-in person with scope openid".into(),
        }
        .into_response();
    };
    let mut body = json!({ "sub": claims.sub });
    for (name, value) in user_claims(user, &scopes) {
        body[name] = value;
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

impl HelseId {
    /// The claims of `token` if HelseID issued it and it is still valid (not expired, not revoked).
    async fn valid_claims(&self, token: &str) -> Result<Option<AccessTokenClaims>, OAuthError> {
        let Ok(jwt) = jose::parse(token) else {
            return Ok(None);
        };
        if !crate::tokens::is_access_token_type(jwt.header.typ.as_deref()) {
            return Ok(None);
        }
        let Some(kid) = jwt.header.kid.as_deref() else {
            return Ok(None);
        };
        let Some((alg, key)) = self.0.keys.verification_key(kid).await? else {
            return Ok(None);
        };
        if alg != jwt.header.alg {
            return Ok(None);
        }
        let Ok(claims) = jwt.verify::<AccessTokenClaims>(&key) else {
            return Ok(None);
        };
        if claims.iss != self.issuer() || claims.exp <= crate::now() {
            return Ok(None);
        }
        let revoked = self.0.revocations.is_revoked(&claims.jti).await?;
        Ok((!revoked).then_some(claims))
    }
}

/// POST /connect/introspect. A client learns about its own tokens only; anything else is
/// `{"active": false}`, as an unknown token is. The network's APIs verify tokens in-process
/// with the guard and never need to ask; letting any client with an API's scope read any token
/// for that API would show one organisation the people in another's tokens.
pub async fn introspect(State(id): State<HelseId>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let params = Params::parse(&headers, &body)?;
        let endpoint = id.0.endpoints.introspection.clone();
        let caller = id.authenticate(&params, &headers, &endpoint, None).await?;
        let token = params.require("token")?;
        let Some(claims) = id.valid_claims(token).await? else {
            return Ok(json!({ "active": false }));
        };
        if claims.client_id != caller.client_id {
            return Ok(json!({ "active": false }));
        }
        let mut body = serde_json::to_value(&claims).expect("claims serialise");
        body["active"] = Value::Bool(true);
        body["token_type"] = if claims.cnf.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
        .into();
        Ok::<_, OAuthError>(body)
    }
    .await;
    match answer {
        Ok(body) => ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// POST /connect/revocation. A client revokes its own tokens: 200 for those and for tokens that
/// are invalid already (RFC 7009 §2.2); another client's valid token is refused (§2.1).
pub async fn revoke(State(id): State<HelseId>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let params = Params::parse(&headers, &body)?;
        let endpoint = id.0.endpoints.revocation.clone();
        let caller = id.authenticate(&params, &headers, &endpoint, None).await?;
        let token = params.require("token")?;
        if let Some(claims) = id.valid_claims(token).await? {
            if claims.client_id != caller.client_id {
                return Err(OAuthError::unauthorized_client(
                    "the token was issued to another client",
                ));
            }
            id.0.revocations.revoke(&claims.jti, claims.exp).await?;
        }
        Ok::<_, OAuthError>(())
    }
    .await;
    match answer {
        Ok(()) => ([(header::CACHE_CONTROL, "no-store")], "").into_response(),
        Err(e) => e.into_response(),
    }
}
