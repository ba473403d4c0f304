//! The MSH API v2 as NHN publishes it (`msh-api-v2.json`), under `/msh`: the same paths,
//! parameters, headers, bodies and error shape, so an EPJ system's existing client works
//! against this hub by changing its base URL. Tokens are HelseID's, for audience `nhn:msh`.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRef, FromRequestParts, Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use base64::Engine;
use helsenett_core::{HerId, json::from_body};
use helsenett_helseid::{Authorized, Guard, RequiredScope};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::{
    AppRecError, AppRecStatus, DeliveryRow, Exchange, ExchangeError, Stored, Submission, Unread,
    counter::{self, Count, CountQuery},
    error::ErrorMessage,
    samsvar_api,
};

pub const PREFIX: &str = "/msh";
const AUDIENCE: &str = "nhn:msh";
/// The one version of the API this hub speaks.
const API_VERSION: &str = "2";
const DEFAULT_FETCH: u32 = 10;
const MAX_FETCH: u32 = 100;

pub struct MshApi;
impl RequiredScope for MshApi {
    const AUDIENCE: &'static str = AUDIENCE;
    const SCOPE: &'static str = "nhn:msh/api";
}

/// The operators' view of the message counter: every organisation's counts.
pub struct ReadAllCounts;
impl RequiredScope for ReadAllCounts {
    const AUDIENCE: &'static str = "nhn:meldingsteller";
    const SCOPE: &'static str = "nhn:meldingsteller/read";
}

#[derive(Clone)]
struct AppState {
    exchange: Exchange,
    guard: Guard,
    openapi: std::sync::Arc<String>,
}

impl FromRef<AppState> for Guard {
    fn from_ref(state: &AppState) -> Guard {
        state.guard.clone()
    }
}

impl Exchange {
    /// The API, for a node whose HelseID has `issuer`.
    pub fn router(&self, guard: Guard, issuer: &str) -> Router {
        let state = AppState {
            exchange: self.clone(),
            guard,
            openapi: std::sync::Arc::new(openapi(issuer)),
        };
        let api = Router::new()
            .route("/openapi.json", get(openapi_document))
            .route("/Messages", get(get_messages).post(post_message))
            .route("/Messages/{id}", get(get_message))
            .route(
                "/Messages/{id}/business-document",
                get(get_business_document),
            )
            .route("/Messages/{id}/status", get(get_status))
            .route("/Messages/{id}/apprec", get(get_apprec_info))
            .route(
                "/Messages/{id}/apprec/{app_rec_sender_her_id}",
                post(post_apprec),
            )
            .route("/Messages/{id}/read/{her_id}", put(mark_read))
            .route("/meldingsteller", get(meldingsteller))
            .route("/meldingsteller/all", get(meldingsteller_all))
            .fallback(not_found)
            .with_state(state.clone());
        Router::new()
            .nest(PREFIX, api)
            .route("/validate", post(samsvar_api::validate))
            .with_state(state)
    }
}

async fn not_found(uri: axum::http::Uri) -> ExchangeError {
    ExchangeError::NotFound(format!("{} is not served here", uri.path()))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "helsenett Meldingstjener (MSH API v2)",
        description = "NHN's MSH API v2: store-and-forward exchange of MsgHead business documents with AppRec receipts."
    ),
    paths(
        post_message,
        get_messages,
        get_message,
        get_business_document,
        get_status,
        get_apprec_info,
        post_apprec,
        mark_read,
        meldingsteller,
        meldingsteller_all,
        samsvar_api::validate
    ),
    components(schemas(
        PostMessageRequest,
        EbXmlInfo,
        PostAppRecRequest,
        MessageView,
        GetBusinessDocumentResponse,
        StatusInfo,
        ApprecInfo,
        DeliveryState,
        AppRecStatus,
        AppRecError,
        ErrorMessage,
        Count,
        samsvar_api::Validation,
        samsvar_api::ValidationProblem
    )),
    security(("helseid" = []))
)]
struct ApiDoc;

/// The OpenAPI document, naming `issuer` for tokens.
pub fn openapi(issuer: &str) -> String {
    use utoipa::openapi::security::{OpenIdConnect, SecurityScheme};
    let mut doc = ApiDoc::openapi();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "helseid",
            SecurityScheme::OpenIdConnect(OpenIdConnect::with_description(
                format!("{issuer}/.well-known/openid-configuration"),
                "A HelseID access token for audience nhn:msh (scope nhn:msh/api), sent as DPoP with a proof or as Bearer".to_owned(),
            )),
        );
    doc.servers = Some(vec![utoipa::openapi::Server::new(PREFIX)]);
    // The validator is served at the root, beside the API rather than under it.
    if let Some(validate) = doc.paths.paths.get_mut("/validate") {
        validate.servers = Some(vec![utoipa::openapi::Server::new("/")]);
    }
    doc.to_pretty_json()
        .expect("the OpenAPI document serialises")
}

async fn openapi_document(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_str().to_owned(),
    )
        .into_response()
}

/// The headers every MSH call carries: `api-version` (2) and `nhn-source-system`.
struct Client {
    source_system: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ExchangeError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ExchangeError> {
        client(&parts.headers)
    }
}

fn client(headers: &HeaderMap) -> Result<Client, ExchangeError> {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().map(str::trim).unwrap_or_default())
    };
    match header("api-version") {
        Some(API_VERSION | "2.0") => {}
        Some(other) => {
            return Err(ExchangeError::BadRequest(format!(
                "api-version {:?} is not supported: this server speaks {API_VERSION}",
                other.chars().take(20).collect::<String>()
            )));
        }
        None => {
            return Err(ExchangeError::BadRequest(format!(
                "the api-version header is required ({API_VERSION})"
            )));
        }
    }
    match header("nhn-source-system") {
        Some(system) if !system.is_empty() && system.len() <= 200 => Ok(Client {
            source_system: system.to_owned(),
        }),
        _ => Err(ExchangeError::BadRequest(
            "the nhn-source-system header is required: your system's name and version (at most 200 characters)"
                .into(),
        )),
    }
}

fn message_id(id: &str) -> Result<String, ExchangeError> {
    uuid::Uuid::parse_str(id)
        .map(|id| id.to_string())
        .map_err(|_| {
            ExchangeError::BadRequest(format!(
                "{:?} is not a message id (a GUID)",
                id.chars().take(60).collect::<String>()
            ))
        })
}

fn her_id(field: &str, value: &str) -> Result<HerId, ExchangeError> {
    HerId::parse(value).map_err(|e| ExchangeError::BadRequest(format!("{field}: {e}")))
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ExchangeError> {
    from_body(bytes).map_err(|e| ExchangeError::BadRequest(e.to_string()))
}

/// `201 Created` with the new message's id as a JSON string and its URL in `Location`.
fn created(stored: Stored) -> Response {
    let (Stored::Created(id) | Stored::Duplicate(id)) = stored;
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("{PREFIX}/Messages/{id}"))],
        Json(id),
    )
        .into_response()
}

/// Information to be used for the EBXML generation. The hub does not use ebXML; the fields are
/// accepted as NHN's API defines them and have no effect.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct EbXmlInfo {
    cpa_id: Option<String>,
    conversation_id: Option<String>,
    service: Option<String>,
    service_type: Option<String>,
    action: Option<String>,
    sender_role: Option<String>,
    use_sender_level1_her_id: Option<bool>,
    receiver_role: Option<String>,
    application_name: Option<String>,
    application_version: Option<String>,
    middleware_name: Option<String>,
    middleware_version: Option<String>,
    compress_payload: Option<bool>,
}

/// Business document (payload) and metadata for POST on Messages.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostMessageRequest {
    /// The business document (a MsgHead v1.2 or an AppRec), UTF-8 XML, base64.
    business_document: String,
    #[schema(example = "application/xml")]
    content_type: String,
    #[schema(example = "base64")]
    content_transfer_encoding: String,
    #[serde(default)]
    #[allow(dead_code)]
    eb_xml_overrides: Option<EbXmlInfo>,
    /// Only these receivers of the document are delivered to.
    #[serde(default)]
    receiver_her_ids_subset: Option<Vec<u32>>,
}

#[utoipa::path(
    post, path = "/Messages", tag = "Messages",
    request_body = PostMessageRequest,
    params(("api-version" = String, Header, example = "2"), ("nhn-source-system" = String, Header)),
    responses(
        (status = 201, description = "Created: the message id; Location names the message", body = String),
        (status = 400, description = "The request or document was refused (AppRec code first)", body = ErrorMessage),
        (status = 403, description = "Not authorised for the sender HER-id", body = ErrorMessage),
    )
)]
async fn post_message(
    State(state): State<AppState>,
    auth: Authorized<MshApi>,
    client: Client,
    bytes: Bytes,
) -> Result<Response, ExchangeError> {
    let request: PostMessageRequest = body(&bytes)?;
    if !request
        .content_transfer_encoding
        .eq_ignore_ascii_case("base64")
    {
        return Err(ExchangeError::BadRequest(format!(
            "contentTransferEncoding {:?} is not supported: the business document is base64",
            request.content_transfer_encoding
        )));
    }
    let document = base64::engine::general_purpose::STANDARD
        .decode(request.business_document.trim())
        .map_err(|e| ExchangeError::BadRequest(format!("businessDocument is not base64: {e}")))?;
    let subset = request
        .receiver_her_ids_subset
        .map(|ids| {
            ids.into_iter()
                .map(|id| her_id("receiverHerIdsSubset", &id.to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let stored = state
        .exchange
        .submit(
            &auth.0,
            &Submission {
                document: &document,
                content_type: &request.content_type,
                receivers_subset: subset.as_deref(),
                source_system: &client.source_system,
            },
        )
        .await?;
    Ok(created(stored))
}

/// A message as the API shows it. Without metadata, only `id` and `receiverHerId`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    #[schema(format = "uuid")]
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    receiver_her_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_her_id: Option<u32>,
    /// MsgId of the business document.
    #[serde(skip_serializing_if = "Option::is_none")]
    business_document_id: Option<String>,
    /// GenDate of the business document, as it was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    business_document_gen_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_app_rec: Option<bool>,
}

impl MessageView {
    fn of(message: &crate::MessageRow, receiver: HerId, metadata: bool) -> Self {
        MessageView {
            id: message.id.clone(),
            content_type: metadata.then(|| message.content_type.clone()),
            receiver_her_id: receiver.get(),
            sender_her_id: metadata.then(|| message.sender.get()),
            business_document_id: metadata.then(|| message.document_id.clone()),
            business_document_gen_date: metadata.then(|| message.gen_date.clone()),
            is_app_rec: metadata.then_some(message.is_apprec),
        }
    }
}

/// The parameters of GET /Messages, read as ASP.NET binds them (names in any case,
/// `ReceiverHerIds` repeated).
fn unread_query(raw: Option<&str>) -> Result<(Vec<HerId>, UnreadOptions), ExchangeError> {
    let mut receivers = Vec::new();
    let mut options = UnreadOptions::default();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let bad = |what: &str| {
            ExchangeError::BadRequest(format!(
                "{key}: {:?} is not {what}",
                value.chars().take(40).collect::<String>()
            ))
        };
        match key.to_ascii_lowercase().as_str() {
            "receiverherids" => {
                for part in value.split(',').filter(|p| !p.trim().is_empty()) {
                    let id = her_id("ReceiverHerIds", part.trim())?;
                    if !receivers.contains(&id) {
                        receivers.push(id);
                    }
                }
            }
            "senderherid" => options.sender = Some(her_id("SenderHerId", &value)?),
            "businessdocumentid" => {
                if value.len() > 100 {
                    return Err(bad("a MsgId of at most 100 characters"));
                }
                options.document_id = Some(value.into_owned());
            }
            "includemetadata" => {
                options.metadata = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("true or false")),
                }
            }
            "messagestofetch" => {
                options.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_FETCH).contains(n))
                    .ok_or_else(|| bad("a number from 1 to 100"))?;
            }
            "orderby" => {
                options.descending = match value.as_ref() {
                    "Ascending" | "1" => false,
                    "Descending" | "2" => true,
                    _ => return Err(bad("Ascending or Descending")),
                }
            }
            _ => {
                return Err(ExchangeError::BadRequest(format!(
                    "{} is not a parameter of GET /Messages (ReceiverHerIds, SenderHerId, \
                     BusinessDocumentId, IncludeMetadata, MessagesToFetch, OrderBy)",
                    key.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    if receivers.is_empty() {
        return Err(ExchangeError::BadRequest(
            "ReceiverHerIds is required: the HER-ids whose messages to fetch".into(),
        ));
    }
    Ok((receivers, options))
}

struct UnreadOptions {
    sender: Option<HerId>,
    document_id: Option<String>,
    metadata: bool,
    limit: u32,
    descending: bool,
}

impl Default for UnreadOptions {
    fn default() -> Self {
        UnreadOptions {
            sender: None,
            document_id: None,
            metadata: false,
            limit: DEFAULT_FETCH,
            descending: false,
        }
    }
}

#[utoipa::path(
    get, path = "/Messages", tag = "Messages",
    params(
        ("ReceiverHerIds" = Vec<u32>, Query, description = "HER-ids whose unread messages to fetch"),
        ("SenderHerId" = Option<u32>, Query),
        ("BusinessDocumentId" = Option<String>, Query),
        ("IncludeMetadata" = Option<bool>, Query),
        ("MessagesToFetch" = Option<u32>, Query, minimum = 1, maximum = 100),
        ("OrderBy" = Option<String>, Query, description = "Ascending (default) or Descending, by GenDate"),
        ("api-version" = String, Header, example = "2"), ("nhn-source-system" = String, Header),
    ),
    responses(
        (status = 200, description = "Unread messages, oldest first", body = Vec<MessageView>),
        (status = 400, body = ErrorMessage),
        (status = 403, description = "Not authorised for a HER-id", body = ErrorMessage),
    )
)]
async fn get_messages(
    State(state): State<AppState>,
    auth: Authorized<MshApi>,
    _: Client,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<MessageView>>, ExchangeError> {
    let (receivers, options) = unread_query(raw.as_deref())?;
    let entries = state
        .exchange
        .unread(
            &auth.0,
            &Unread {
                receivers: &receivers,
                sender: options.sender,
                document_id: options.document_id.as_deref(),
                limit: options.limit,
                descending: options.descending,
            },
        )
        .await?;
    Ok(Json(
        entries
            .iter()
            .map(|e| MessageView::of(&e.message, e.receiver, options.metadata))
            .collect(),
    ))
}

#[utoipa::path(
    get, path = "/Messages/{id}", tag = "Messages",
    params(("id" = String, Path, format = "uuid"), ("api-version" = String, Header), ("nhn-source-system" = String, Header)),
    responses(
        (status = 200, body = MessageView),
        (status = 400, body = ErrorMessage), (status = 403, body = ErrorMessage), (status = 404, body = ErrorMessage),
    )
)]
async fn get_message(
    State(state): State<AppState>,
    auth: Authorized<MshApi>,
    _: Client,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, ExchangeError> {
    let visible = state.exchange.message(&auth.0, &message_id(&id)?).await?;
    // Shown for the caller's own receiver, or for its sender, the first.
    Ok(Json(MessageView::of(
        &visible.accepted.message,
        visible.receivers[0],
        true,
    )))
}

/// Business document (payload) and metadata.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetBusinessDocumentResponse {
    business_document: String,
    content_type: String,
    content_transfer_encoding: String,
}

#[utoipa::path(
    get, path = "/Messages/{id}/business-document", tag = "Messages",
    params(("id" = String, Path, format = "uuid"), ("api-version" = String, Header), ("nhn-source-system" = String, Header)),
    responses(
        (status = 200, body = GetBusinessDocumentResponse),
        (status = 400, body = ErrorMessage), (status = 403, body = ErrorMessage), (status = 404, body = ErrorMessage),
    )
)]
async fn get_business_document(
    State(state): State<AppState>,
    auth: Authorized<MshApi>,
    _: Client,
    Path(id): Path<String>,
) -> Result<Json<GetBusinessDocumentResponse>, ExchangeError> {
    let visible = state.exchange.message(&auth.0, &message_id(&id)?).await?;
    let accepted = &visible.accepted;
    Ok(Json(GetBusinessDocumentResponse {
        business_document: base64::engine::general_purpose::STANDARD.encode(&accepted.document),
        content_type: accepted.message.content_type.clone(),
        content_transfer_encoding: "base64".to_owned(),
    }))
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum DeliveryState {
    Unconfirmed,
    Acknowledged,
    Rejected,
}

impl DeliveryState {
    fn of(stored: &str) -> Self {
        match stored {
            "Acknowledged" => DeliveryState::Acknowledged,
            "Rejected" => DeliveryState::Rejected,
            _ => DeliveryState::Unconfirmed,
        }
    }
}

/// Status information about the message exchange, per receiver.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusInfo {
    receiver_her_id: u32,
    transport_delivery_state: DeliveryState,
    app_rec_status: Option<AppRecStatus>,
}

#[utoipa::path(
    get, path = "/Messages/{id}/status", tag = "Messages",
    params(("id" = String, Path, format = "uuid"), ("api-version" = String, Header), ("nhn-source-system" = String, Header)),
    responses(
        (status = 200, body = Vec<StatusInfo>),
        (status = 400, body = ErrorMessage), (status = 403, body = ErrorMessage), (status = 404, body = ErrorMessage),
    )
)]
async fn get_status(
    State(state): State<AppState>,
    auth: Authorized<MshApi>,
    _: Client,
    Path(id): Path<String>,
) -> Result<Json<Vec<StatusInfo>>, ExchangeError> {
    per_receiver(&state, &auth, &id).await
}

/// The AppRec each receiver answered with, if any.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprecInfo {
    receiver_her_id: u32,
    app_rec_status: Option<AppRecStatus>,
    app_rec_error_list: Option<Vec<AppRecError>>,
}

#[utoipa::path(
    get, path = "/Messages/{id}/apprec", tag = "Messages",
    params(("id" = String, Path, format = "uuid"), ("api-version" = String, Header), ("nhn-source-system" = String, Header)),
    responses(
        (status = 200, body = Vec<ApprecInfo>),
        (status = 400, body = ErrorMessage), (status = 403, body = ErrorMessage), (status = 404, body = ErrorMessage),
    )
)]
async fn get_apprec_info(
    State(state): State<AppState>,
    auth: Authorized<MshApi>,
    _: Client,
    Path(id): Path<String>,
) -> Result<Json<Vec<ApprecInfo>>, ExchangeError> {
    per_receiver(&state, &auth, &id).await
}

impl From<DeliveryRow> for StatusInfo {
    fn from(d: DeliveryRow) -> Self {
        StatusInfo {
            receiver_her_id: d.receiver.get(),
            transport_delivery_state: DeliveryState::of(&d.transport_state),
            app_rec_status: d.apprec_status.and_then(AppRecStatus::from_code),
        }
    }
}

impl From<DeliveryRow> for ApprecInfo {
    fn from(d: DeliveryRow) -> Self {
        let status = d.apprec_status.and_then(AppRecStatus::from_code);
        ApprecInfo {
            receiver_her_id: d.receiver.get(),
            app_rec_status: status,
            app_rec_error_list: status.map(|_| d.apprec_errors),
        }
    }
}

/// Each delivery of message `id` the caller may see, as `T`.
async fn per_receiver<T: From<DeliveryRow>>(
    state: &AppState,
    auth: &Authorized<MshApi>,
    id: &str,
) -> Result<Json<Vec<T>>, ExchangeError> {
    let deliveries = state.exchange.deliveries(&auth.0, &message_id(id)?).await?;
    Ok(Json(deliveries.into_iter().map(T::from).collect()))
}

/// Information about the application receipt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostAppRecRequest {
    app_rec_status: AppRecStatus,
    #[serde(default)]
    app_rec_error_list: Option<Vec<AppRecError>>,
    #[serde(default)]
    #[allow(dead_code)]
    eb_xml_overrides: Option<EbXmlInfo>,
}

#[utoipa::path(
    post, path = "/Messages/{id}/apprec/{appRecSenderHerId}", tag = "Messages",
    request_body = PostAppRecRequest,
    params(
        ("id" = String, Path, format = "uuid"),
        ("appRecSenderHerId" = u32, Path, description = "The receiver answering"),
        ("api-version" = String, Header), ("nhn-source-system" = String, Header),
    ),
    responses(
        (status = 201, description = "Created: the AppRec's message id", body = String),
        (status = 400, body = ErrorMessage), (status = 403, body = ErrorMessage), (status = 404, body = ErrorMessage),
    )
)]
async fn post_apprec(
    State(state): State<AppState>,
    auth: Authorized<MshApi>,
    client: Client,
    Path((id, sender)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, ExchangeError> {
    let id = message_id(&id)?;
    let sender = her_id("appRecSenderHerId", &sender)?;
    let request: PostAppRecRequest = body(&bytes)?;
    let stored = state
        .exchange
        .answer(
            &auth.0,
            &id,
            sender,
            request.app_rec_status,
            request.app_rec_error_list.unwrap_or_default(),
            &client.source_system,
        )
        .await?;
    Ok(created(stored))
}

#[utoipa::path(
    put, path = "/Messages/{id}/read/{herId}", tag = "Messages",
    params(
        ("id" = String, Path, format = "uuid"), ("herId" = u32, Path),
        ("api-version" = String, Header), ("nhn-source-system" = String, Header),
    ),
    responses(
        (status = 204, description = "Marked as read"),
        (status = 400, body = ErrorMessage), (status = 403, body = ErrorMessage), (status = 404, body = ErrorMessage),
    )
)]
async fn mark_read(
    State(state): State<AppState>,
    auth: Authorized<MshApi>,
    _: Client,
    Path((id, receiver)): Path<(String, String)>,
) -> Result<StatusCode, ExchangeError> {
    let id = message_id(&id)?;
    let receiver = her_id("herId", &receiver)?;
    state.exchange.mark_read(&auth.0, &id, receiver).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The counter's filters; unknown parameters are refused.
fn count_query(raw: Option<&str>) -> Result<CountQuery, ExchangeError> {
    let object: serde_json::Map<String, serde_json::Value> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ExchangeError::BadRequest(format!("query: {e}")))
}

#[utoipa::path(
    get, path = "/meldingsteller", tag = "Meldingsteller",
    params(CountQuery),
    responses(
        (status = 200, description = "Messages per day, sender and receiver organisation and type, where the caller's organisation is sender or receiver", body = Vec<Count>),
        (status = 400, body = ErrorMessage),
    )
)]
async fn meldingsteller(
    State(state): State<AppState>,
    auth: Authorized<MshApi>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Count>>, ExchangeError> {
    let query = count_query(raw.as_deref())?;
    let org = auth.0.organisation.to_string();
    Ok(Json(
        counter::counts(state.exchange.store(), &query, Some(&org)).await?,
    ))
}

#[utoipa::path(
    get, path = "/meldingsteller/all", tag = "Meldingsteller",
    params(CountQuery),
    responses(
        (status = 200, description = "Every organisation's counts (scope nhn:meldingsteller/read)", body = Vec<Count>),
        (status = 400, body = ErrorMessage),
    )
)]
async fn meldingsteller_all(
    State(state): State<AppState>,
    _: Authorized<ReadAllCounts>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Count>>, ExchangeError> {
    let query = count_query(raw.as_deref())?;
    Ok(Json(
        counter::counts(state.exchange.store(), &query, None).await?,
    ))
}
