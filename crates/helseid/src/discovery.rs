//! Discovery (OpenID Connect Discovery 1.0, RFC 8414 fields) and the JWKS.

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{HelseId, OAuthError, catalogue, jose};

pub async fn configuration(State(id): State<HelseId>) -> Response {
    let algs = match id.0.keys.algorithms().await {
        Ok(algs) => algs,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    let e = id.endpoints();
    let client_algs = jose::algorithm_names(jose::CLIENT_ALGORITHMS);
    let mut body = json!({
        "issuer": e.issuer,
        "authorization_endpoint": e.authorize.as_str(),
        "token_endpoint": e.token.as_str(),
        "pushed_authorization_request_endpoint": e.par.as_str(),
        "userinfo_endpoint": e.userinfo.as_str(),
        "introspection_endpoint": e.introspection.as_str(),
        "revocation_endpoint": e.revocation.as_str(),
        "jwks_uri": e.jwks.as_str(),
        "scopes_supported": catalogue::all_scopes(),
        "claims_supported": catalogue::CLAIMS,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["client_credentials", "authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": client_algs,
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": client_algs,
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
        "revocation_endpoint_auth_signing_alg_values_supported": client_algs,
        "dpop_signing_alg_values_supported": client_algs,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "require_pushed_authorization_requests": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "acr_values_supported": [],
        "ui_locales_supported": ["en", "nb"],
    });
    if id.0.settings.admin_token.is_some() {
        body["registration_endpoint"] = e.registration.as_str().into();
    }
    ([(header::CACHE_CONTROL, "public, max-age=60")], Json(body)).into_response()
}

pub async fn jwks(State(id): State<HelseId>) -> Response {
    match id.0.keys.jwks().await {
        Ok(jwks) => (
            [
                (header::CONTENT_TYPE, "application/jwk-set+json"),
                (header::CACHE_CONTROL, "public, max-age=60"),
            ],
            serde_json::to_string(&*jwks).expect("a JWK set serialises"),
        )
            .into_response(),
        Err(e) => OAuthError::from(e).into_response(),
    }
}
