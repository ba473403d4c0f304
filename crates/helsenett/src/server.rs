//! The HTTP server: health, metrics, and the cross-cutting layers every API gets (body limit,
//! timeout, tracing, request metrics, problem+json errors), written once here.

use std::{
    future::Future,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{
    Json, Router,
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use helsenett_core::{Problem, config::Config};
use helsenett_exchange::{Exchange, Settings as ExchangeSettings};
use helsenett_grunndata::Grunndata;
use helsenett_helseid::HelseId;
use helsenett_kjernejournal::Kjernejournal;
use helsenett_register::Register;
use helsenett_store::{Store, StoreTarget};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer, trace::TraceLayer};

use crate::telemetry;

/// How often a node reads the register's event feed: changes made through another node are
/// visible here within this.
const REGISTER_FOLLOW: Duration = Duration::from_millis(500);

/// 1 while the store answered its last check (at start and at every `/health`), else 0.
const STORE_READY: &str = "helsenett_store_ready";

#[derive(Clone)]
struct AppState {
    store: Store,
}

/// Opens the store named by `config` and serves until SIGTERM or Ctrl-C. `ready` is told the
/// bound address once the server accepts connections.
pub async fn run(
    config: Config,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let store = Store::open(&StoreTarget::new(
        &config.data_dir,
        config.database_url.as_deref(),
    ))
    .await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let services = Services::start(&store, &config, addr).await?;
    let _follower = services.register.follow(REGISTER_FOLLOW);
    let _watch = services.exchange.watch();
    // Installed before the first request, so that every request is counted.
    telemetry::prometheus();
    metrics::gauge!(STORE_READY).set(1.0);
    tracing::info!(%addr, backend = %store.backend(), issuer = services.helseid.issuer(), "helsenett is serving");
    if let Some(ready) = ready {
        let _ = ready.send(addr);
    }
    serve(
        listener,
        router(store.clone(), &services, &config),
        shutdown_signal(),
        Duration::from_secs(config.shutdown_grace_seconds),
    )
    .await?;
    if let Err(e) = services.grunndata.flush_log().await {
        tracing::error!(error = %e, "the look-up log could not be flushed");
    }
    store.close().await;
    tracing::info!("helsenett stopped");
    Ok(())
}

/// Serves until `stop` resolves, then gives in-flight requests `grace` to finish.
async fn serve(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.await;
        tracing::info!(
            grace_seconds = grace.as_secs(),
            "shutting down: finishing in-flight requests"
        );
        let _ = stopping_tx.send(true);
    });
    let deadline = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("server failed"),
        () = deadline => {
            tracing::warn!("grace period over; dropping the requests still in flight");
            Ok(())
        }
    }
}

/// The services one node runs over its store.
pub struct Services {
    pub helseid: HelseId,
    pub register: Register,
    pub exchange: Exchange,
    pub grunndata: Grunndata,
    pub kjernejournal: Kjernejournal,
}

impl Services {
    /// Starts every service on `store`, for a node reached at `addr` (unless `config` names
    /// its public URL).
    pub async fn start(store: &Store, config: &Config, addr: SocketAddr) -> anyhow::Result<Self> {
        let helseid = HelseId::start(store.clone(), crate::helseid::settings(config, addr)?)
            .await
            .context("cannot start HelseID")?;
        let register = Register::open(store.clone())
            .await
            .context("cannot load the address register")?;
        let exchange = Exchange::start(
            store.clone(),
            register.clone(),
            ExchangeSettings::from(&config.exchange),
        );
        let started = std::time::Instant::now();
        let grunndata = Grunndata::start(store.clone(), helseid.guard())
            .await
            .context("cannot load the population register")?;
        tracing::info!(
            persons = grunndata.population().read(|p| p.len()),
            seconds = started.elapsed().as_secs_f64(),
            "population register loaded"
        );
        let kjernejournal =
            Kjernejournal::start(store.clone(), helseid.guard(), &config.kjernejournal);
        Ok(Services {
            helseid,
            register,
            exchange,
            grunndata,
            kjernejournal,
        })
    }
}

pub fn router(store: Store, services: &Services, config: &Config) -> Router {
    let Services {
        helseid,
        register,
        exchange,
        grunndata,
        kjernejournal,
    } = services;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(AppState { store })
        .merge(helseid.router())
        .merge(register.router(helseid.guard(), helseid.issuer()))
        .merge(exchange.router(helseid.guard(), helseid.issuer()))
        .merge(grunndata.router())
        .merge(kjernejournal.router())
        .fallback(not_found)
        // Innermost first: limits answer bare status codes, which the problem layer dresses,
        // and the metrics layer sees the final status.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.request_timeout_seconds),
        ))
        .layer(RequestBodyLimitLayer::new(config.max_request_bytes))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http())
}

/// Liveness (the process answers) and readiness (the store answers), with the loaded country.
async fn health(State(state): State<AppState>) -> Response {
    let store = state.store.ping().await;
    let ready = store.is_ok();
    metrics::gauge!(STORE_READY).set(if ready { 1.0 } else { 0.0 });
    let country = match ready {
        true => state.store.country_info().await.ok().flatten(),
        false => None,
    };
    if let Err(e) = &store {
        tracing::warn!(error = %e, "store is not ready");
    }
    let body = json!({
        "status": if ready { "ok" } else { "unavailable" },
        "live": true,
        "store": { "backend": state.store.backend().to_string(), "ready": ready },
        "country": country,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics() -> Response {
    let text = telemetry::prometheus().render();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    Problem::into_response(
        Problem::new(404, "not-found", "No such resource")
            .with_detail(format!("{} is not served here", request.uri().path())),
    )
}

/// Layers below the handlers (body limit, timeout) answer with bare status codes; this gives
/// them the same problem+json body as every other error. An error that already has a body of
/// its own kind (problem+json, HelseID's OAuth JSON, a FHIR OperationOutcome) is left alone.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let typed = response.headers().contains_key(header::CONTENT_TYPE) && !is_plain_text(&response);
    if typed || response.status().is_success() {
        return response;
    }
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Problem::into_response(Problem::new(
            413,
            "request-too-large",
            "Request body too large",
        )),
        StatusCode::REQUEST_TIMEOUT => Problem::into_response(Problem::new(
            408,
            "request-timeout",
            "Request took too long",
        )),
        StatusCode::METHOD_NOT_ALLOWED => Problem::into_response(Problem::new(
            405,
            "method-not-allowed",
            "Method not allowed for this resource",
        )),
        // An extractor's own rejection (a path that is not UTF-8, say) is plain text; its
        // words become the detail.
        status if status.is_client_error() && is_plain_text(&response) => {
            let bytes = axum::body::to_bytes(response.into_body(), 4_096)
                .await
                .unwrap_or_default();
            Problem::new(status.as_u16(), "bad-request", "Request refused")
                .with_detail(String::from_utf8_lossy(&bytes).into_owned())
                .into_response()
        }
        _ => response,
    }
}

fn is_plain_text(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"))
}

/// Counts requests and their latency by route template (never by raw path, which would make a
/// series per identifier).
async fn record_metrics(request: Request<Body>, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("helsenett_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("helsenett_http_request_duration_seconds", "method" => method, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

/// Resolves on SIGTERM (how orchestrators stop a node) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn an_extractor_rejection_becomes_a_problem() {
        let app = Router::new()
            .route(
                "/x/{p}",
                get(|axum::extract::Path(p): axum::extract::Path<String>| async move { p }),
            )
            .layer(middleware::from_fn(problem_for_bare_errors));
        let request = Request::get("/x/%FF").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            Problem::CONTENT_TYPE
        );
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(response.into_body(), 1 << 16).await.unwrap())
                .unwrap();
        assert!(body["detail"].as_str().unwrap().contains("UTF-8"), "{body}");
    }

    #[tokio::test]
    async fn health_is_unavailable_while_the_store_does_not_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let config = Config::default();
        let services = Services::start(&store, &config, config.listen)
            .await
            .unwrap();
        let app = router(store.clone(), &services, &config);
        let health = || Request::get("/health").body(Body::empty()).unwrap();

        let response = app.clone().oneshot(health()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        store.close().await;
        let response = app.oneshot(health()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(response.into_body(), 1 << 16).await.unwrap())
                .unwrap();
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["live"], true);
        assert_eq!(body["store"]["ready"], false);
    }
}
