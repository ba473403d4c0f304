//! What HelseID answers about tokens it issued: userinfo (OIDC), introspection (RFC 7662) and
//! revocation (RFC 7009).

use axum::{
    Json,
    body::Bytes,
    extract::{OriginalUri, State},
    http::{HeaderMap, Method, header},
    response::{IntoResponse, Response},
};
use helsenett_store::with_pool;
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
        let revoked = crate::replay::is_revoked(self.store(), &claims.jti).await?;
        Ok((!revoked).then_some(claims))
    }
}

/// POST /connect/introspect. A client learns about its own tokens, and an API's client about
/// tokens for that API; anything else is `{"active": false}`, as an unknown token is.
pub async fn introspect(State(id): State<HelseId>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let params = Params::parse(&headers, &body)?;
        let endpoint = id.0.endpoints.introspection.clone();
        let caller = id.authenticate(&params, &headers, &endpoint).await?;
        let token = params.require("token")?;
        let Some(claims) = id.valid_claims(token).await? else {
            return Ok(json!({ "active": false }));
        };
        let for_caller = claims.client_id == caller.client_id
            || caller
                .audiences()
                .iter()
                .any(|aud| claims.aud.contains(aud));
        if !for_caller {
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

/// POST /connect/revocation. A client revokes its own tokens; the answer is 200 whatever the
/// token was (RFC 7009 §2.2), so that it tells nothing about other clients' tokens.
pub async fn revoke(State(id): State<HelseId>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let params = Params::parse(&headers, &body)?;
        let endpoint = id.0.endpoints.revocation.clone();
        let caller = id.authenticate(&params, &headers, &endpoint).await?;
        let token = params.require("token")?;
        if let Some(claims) = id.valid_claims(token).await?
            && claims.client_id == caller.client_id
        {
            with_pool!(id.store(), pool => sqlx::query(
                "INSERT INTO helseid_revoked (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(&claims.jti)
            .bind(claims.exp)
            .execute(pool)
            .await
            .map(drop))
            .map_err(helsenett_store::StoreError::from)?;
            metrics::counter!("helseid_tokens_revoked_total").increment(1);
        }
        Ok::<_, OAuthError>(())
    }
    .await;
    match answer {
        Ok(()) => ([(header::CACHE_CONTROL, "no-store")], "").into_response(),
        Err(e) => e.into_response(),
    }
}
