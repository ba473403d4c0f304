//! Signing in a person: the authorization endpoint (code flow with PKCE S256 only), pushed
//! authorization requests (RFC 9126), the test identity provider's login, and the codes.

use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use helsenett_core::Fodselsnummer;
use helsenett_store::{Store, StoreError, with_pool};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use crate::{
    HelseId, OAuthError,
    clients::{self, AUTHORIZATION_CODE},
    idp, jose,
    params::Params,
    token::check_scopes,
    tokens::UserClaims,
};

const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// A pending authorization request lives this long (the login included).
const REQUEST_SECONDS: i64 = 600;
/// A pushed request must be used this soon.
const PAR_SECONDS: i64 = 90;
const CODE_SECONDS: i64 = 60;
/// Longest `state`, `nonce` or `dpop_jkt`: they are stored with the request.
const MAX_PARAMETER: usize = 512;

/// A validated authorization request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub dpop_jkt: Option<String>,
}

/// What a code stands for.
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeGrant {
    pub request: AuthRequest,
    pub user: UserClaims,
}

/// Why an authorization request failed: either the client and its redirect URI are known, and
/// the error goes back to it, or they are not, and the user is told (RFC 6749 §4.1.2.1).
enum Refusal {
    Redirect(AuthRequestTarget, OAuthError),
    Page(StatusCode, String),
}

struct AuthRequestTarget {
    redirect_uri: String,
    state: Option<String>,
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        let e = OAuthError::from(e);
        Refusal::Page(e.status, e.description)
    }
}

impl HelseId {
    fn refusal_response(&self, refusal: Refusal) -> Response {
        match refusal {
            Refusal::Page(status, message) => {
                (status, Html(idp::error_page(&message))).into_response()
            }
            Refusal::Redirect(target, error) => self.back_to_client(
                &target.redirect_uri,
                target.state.as_deref(),
                &[
                    ("error", error.code),
                    ("error_description", &error.description),
                ],
            ),
        }
    }

    /// Sends the browser back to the client with `pairs`, `iss` (RFC 9207) and `state`.
    fn back_to_client(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> Response {
        let Ok(mut url) = Url::parse(redirect_uri) else {
            let message = "the client's registered redirect URI is not a URL";
            return (StatusCode::BAD_REQUEST, Html(idp::error_page(message))).into_response();
        };
        url.query_pairs_mut()
            .extend_pairs(pairs)
            .append_pair("iss", self.issuer());
        if let Some(state) = state {
            url.query_pairs_mut().append_pair("state", state);
        }
        Redirect::to(url.as_str()).into_response()
    }

    /// Checks an authorization request's parameters against its client.
    async fn validate_request(&self, params: &Params) -> Result<AuthRequest, Refusal> {
        let page = |m: String| Refusal::Page(StatusCode::BAD_REQUEST, m);
        let client_id = params
            .get("client_id")
            .ok_or_else(|| page("client_id is required".into()))?;
        let client = clients::get(&self.0.store, client_id)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(|| {
                page(format!(
                    "client {client_id:?} is not registered or disabled"
                ))
            })?;
        let redirect_uri = match params.get("redirect_uri") {
            Some(uri) if client.allows_redirect(uri) => uri.to_owned(),
            Some(uri) => {
                return Err(page(format!(
                    "redirect_uri {uri:?} is not registered for client {client_id:?}"
                )));
            }
            None => return Err(page("redirect_uri is required".into())),
        };
        let target = || AuthRequestTarget {
            redirect_uri: redirect_uri.clone(),
            state: params.get("state").map(str::to_owned),
        };
        let refuse = |e: OAuthError| Refusal::Redirect(target(), e);
        if !client.allows_grant(AUTHORIZATION_CODE) {
            return Err(refuse(OAuthError::unauthorized_client(
                "this client may not use the authorization code flow",
            )));
        }
        if params.get("response_type") != Some("code") {
            return Err(refuse(OAuthError {
                code: "unsupported_response_type",
                ..OAuthError::invalid_request("response_type must be code")
            }));
        }
        if params.get("request").is_some() {
            return Err(refuse(OAuthError {
                code: "request_not_supported",
                ..OAuthError::invalid_request("request objects are not supported; use PAR")
            }));
        }
        // The test identity provider keeps no sessions: a sign-in always needs the person.
        if params
            .get("prompt")
            .is_some_and(|p| p.split_whitespace().any(|p| p == "none"))
        {
            return Err(refuse(OAuthError {
                code: "login_required",
                ..OAuthError::invalid_request("prompt=none: no one is signed in")
            }));
        }
        let code_challenge = params.get("code_challenge").ok_or_else(|| {
            refuse(OAuthError::invalid_request(
                "code_challenge is required (PKCE, RFC 7636)",
            ))
        })?;
        if params.get("code_challenge_method") != Some("S256") {
            return Err(refuse(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            )));
        }
        let challenge_ok = code_challenge.len() == 43
            && code_challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !challenge_ok {
            return Err(refuse(OAuthError::invalid_request(
                "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
            )));
        }
        for name in ["state", "nonce", "dpop_jkt"] {
            if params.get(name).is_some_and(|v| v.len() > MAX_PARAMETER) {
                return Err(refuse(OAuthError::invalid_request(format!(
                    "{name} is longer than {MAX_PARAMETER} characters"
                ))));
            }
        }
        let scopes = params.scopes();
        check_scopes(&client, &scopes, true).map_err(refuse)?;
        Ok(AuthRequest {
            client_id: client.client_id,
            redirect_uri,
            scopes,
            state: params.get("state").map(str::to_owned),
            nonce: params.get("nonce").map(str::to_owned),
            code_challenge: code_challenge.to_owned(),
            dpop_jkt: params.get("dpop_jkt").map(str::to_owned),
        })
    }

    /// The pushed request named by `request_uri`, used up (RFC 9126 §4: one-time use).
    async fn pushed_request(
        &self,
        request_uri: &str,
        client_id: Option<&str>,
    ) -> Result<AuthRequest, Refusal> {
        let pushed = match request_uri.strip_prefix(REQUEST_URI_PREFIX) {
            Some(key) => self.load_request(key, true).await?,
            None => None,
        };
        pushed
            .filter(|request| Some(request.client_id.as_str()) == client_id)
            .ok_or_else(|| {
                Refusal::Page(
                    StatusCode::BAD_REQUEST,
                    "request_uri is unknown, expired, used, or belongs to another client_id".into(),
                )
            })
    }

    async fn save_request(
        &self,
        request: &AuthRequest,
        lifetime: i64,
    ) -> Result<String, StoreError> {
        let id = jose::random_token(24);
        with_pool!(&self.0.store, pool => sqlx::query(
            "INSERT INTO helseid_auth_request (id, request, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(&id)
        .bind(serde_json::to_string(request).expect("a request serialises"))
        .bind(crate::now() + lifetime)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(id)
    }

    /// The request with `id`, if it exists and has not expired; `take` removes it.
    async fn load_request(&self, id: &str, take: bool) -> Result<Option<AuthRequest>, StoreError> {
        let sql = if take {
            "DELETE FROM helseid_auth_request WHERE id = $1 RETURNING request, expires_at"
        } else {
            "SELECT request, expires_at FROM helseid_auth_request WHERE id = $1"
        };
        let row = with_pool!(&self.0.store, pool => sqlx::query_as::<_, (String, i64)>(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        Ok(row
            .filter(|(_, expires_at)| *expires_at >= crate::now())
            .and_then(|(json, _)| serde_json::from_str(&json).ok()))
    }

    /// Spends a code for the token `jti`. A code used before gets `None`, and the token its
    /// first use got is revoked: someone else has the code.
    pub(crate) async fn take_code(
        &self,
        code: &str,
        jti: &str,
    ) -> Result<Option<CodeGrant>, StoreError> {
        let hash = jose::sha256_b64url(code.as_bytes());
        let row = with_pool!(&self.0.store, pool => sqlx::query_as::<_, (String, i64)>(
            "UPDATE helseid_code SET used = TRUE, token_jti = $2 WHERE code_hash = $1 AND NOT used
             RETURNING grant_json, valid_until",
        )
        .bind(&hash)
        .bind(jti)
        .fetch_optional(pool)
        .await)?;
        if let Some((json, valid_until)) = row {
            if valid_until < crate::now() {
                return Ok(None);
            }
            return serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("an authorization code's grant: {e}")));
        }
        let issued = with_pool!(&self.0.store, pool => sqlx::query_as::<_, (String, i64)>(
            "SELECT token_jti, expires_at FROM helseid_code WHERE code_hash = $1 AND token_jti IS NOT NULL",
        )
        .bind(&hash)
        .fetch_optional(pool)
        .await)?;
        if let Some((jti, expires_at)) = issued {
            tracing::warn!("an authorization code was used twice; its token is revoked");
            self.0.revocations.revoke(&jti, expires_at).await?;
        }
        Ok(None)
    }

    async fn save_code(&self, grant: &CodeGrant) -> Result<String, StoreError> {
        let code = jose::random_token(32);
        let now = crate::now();
        with_pool!(&self.0.store, pool => sqlx::query(
            "INSERT INTO helseid_code (code_hash, grant_json, valid_until, used, expires_at)
             VALUES ($1, $2, $3, FALSE, $4)",
        )
        .bind(jose::sha256_b64url(code.as_bytes()))
        .bind(serde_json::to_string(grant).expect("a grant serialises"))
        .bind(now + CODE_SECONDS)
        .bind(now + CODE_SECONDS + self.0.settings.access_token_seconds)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(code)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.0.store
    }
}

/// GET /connect/authorize: validates the request (or loads a pushed one) and shows the test
/// identity provider's login page.
pub async fn authorize(State(id): State<HelseId>, RawQuery(query): RawQuery) -> Response {
    match Params::from_query(query.as_deref()) {
        Ok(params) => id.authorization_request(params).await,
        Err(e) => (e.status, Html(idp::error_page(&e.description))).into_response(),
    }
}

/// POST /connect/authorize: the same request as a form (OpenID Connect Core §3.1.2.1).
pub async fn authorize_form(
    State(id): State<HelseId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match Params::parse(&headers, &body) {
        Ok(params) => id.authorization_request(params).await,
        Err(e) => (e.status, Html(idp::error_page(&e.description))).into_response(),
    }
}

impl HelseId {
    /// Validates (or loads the pushed) request and shows the test identity provider's page.
    async fn authorization_request(&self, params: Params) -> Response {
        let request = match params.get("request_uri") {
            Some(uri) => self.pushed_request(uri, params.get("client_id")).await,
            None => self.validate_request(&params).await,
        };
        // The login continues under a pending request of its own, with the whole login's lifetime.
        let pending = match request {
            Ok(request) => self
                .save_request(&request, REQUEST_SECONDS)
                .await
                .map(|key| (key, request))
                .map_err(Refusal::from),
            Err(refusal) => Err(refusal),
        };
        match pending {
            Ok((key, request)) => match idp::login_page(self.store(), &key, &request).await {
                Ok(page) => Html(page).into_response(),
                Err(e) => self.refusal_response(e.into()),
            },
            Err(refusal) => self.refusal_response(refusal),
        }
    }
}

/// POST /connect/par (RFC 9126): an authenticated client pushes its request and gets a
/// `request_uri` to send the browser with.
pub async fn par(State(id): State<HelseId>, headers: HeaderMap, body: Bytes) -> Response {
    let pushed = async {
        let params = Params::parse(&headers, &body)?;
        if params.get("request_uri").is_some() {
            return Err(OAuthError::invalid_request("request_uri is not allowed in a pushed request"));
        }
        let endpoint = id.0.endpoints.par.clone();
        let proof = id.dpop_proof(&headers, &endpoint)?;
        let client = id.authenticate(&params, &headers, &endpoint, proof.as_ref()).await?;
        let mut request = match id.validate_request(&params).await {
            Ok(r) if r.client_id == client.client_id => r,
            Ok(_) => return Err(OAuthError::invalid_request("client_id differs from the authenticated client")),
            Err(Refusal::Page(status, m)) if status.is_server_error() => {
                return Err(OAuthError::temporarily_unavailable(m));
            }
            Err(Refusal::Page(_, m)) => return Err(OAuthError::invalid_request(m)),
            Err(Refusal::Redirect(_, e)) => return Err(e),
        };
        // A DPoP proof at PAR binds the code to its key, as dpop_jkt would (RFC 9449 §10).
        if let Some(proof) = proof {
            if request.dpop_jkt.as_ref().is_some_and(|j| *j != proof.jkt) {
                return Err(OAuthError::invalid_dpop_proof("dpop_jkt differs from the DPoP proof's key"));
            }
            request.dpop_jkt = Some(proof.jkt);
        }
        let key = id.save_request(&request, PAR_SECONDS).await?;
        Ok(json!({ "request_uri": format!("{REQUEST_URI_PREFIX}{key}"), "expires_in": PAR_SECONDS }))
    }
    .await;
    match pushed {
        Ok(body) => (
            StatusCode::CREATED,
            [(header::CACHE_CONTROL, "no-store")],
            Json(body),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// POST /connect/login: the person chosen on the login page signs in; the browser goes back to
/// the client with a code.
pub async fn login(State(id): State<HelseId>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match Params::parse(&headers, &body) {
        Ok(p) => p,
        Err(e) => return (e.status, Html(idp::error_page(&e.description))).into_response(),
    };
    let (Some(key), Some(pid)) = (params.get("request"), params.get("pid")) else {
        return (
            StatusCode::BAD_REQUEST,
            Html(idp::error_page("choose a person to sign in as")),
        )
            .into_response();
    };
    let pid = match Fodselsnummer::parse(pid) {
        Ok(pid) => pid,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(idp::error_page(&format!("pid: {e}"))),
            )
                .into_response();
        }
    };
    let result = async {
        let Some(user) = idp::find(id.store(), &pid).await? else {
            return Ok(Err("no person with that fødselsnummer in this network's population register"));
        };
        let Some(request) = id.load_request(key, true).await? else {
            return Ok(Err("the sign-in has expired or was completed already; start again from the application"));
        };
        let grant = CodeGrant { request, user };
        let code = id.save_code(&grant).await?;
        Ok::<_, StoreError>(Ok((grant.request, code)))
    }
    .await;
    match result {
        Ok(Ok((request, code))) => id.back_to_client(
            &request.redirect_uri,
            request.state.as_deref(),
            &[("code", &code)],
        ),
        Ok(Err(message)) => {
            (StatusCode::BAD_REQUEST, Html(idp::error_page(message))).into_response()
        }
        Err(e) => id.refusal_response(e.into()),
    }
}
