//! The technician's window onto a running line: edgesortd's local HTTP API
//! and the status page it serves.
//!
//! Every call but the page itself needs `Authorization: Bearer <token>`:
//! the admin token for anything, or the read-only token for reads (`GET`)
//! only. Both are made at a box's first start and kept on its data
//! partition ([`Access::load_or_create`]); there are no default passwords.
//! Test pulses are refused unless `api.allow_test_pulse` allows them.
//!
//! [`serve`] speaks HTTPS with the certificate `[api.tls]` names (see
//! [`edgesort_tls`]), or plain HTTP where the configuration turns TLS off,
//! which it may only on a loopback address.
//!
//! | call | answer |
//! | --- | --- |
//! | `GET /` | the status page (no data without the token) |
//! | `GET /health` | `{"healthy": bool, "state": ...}` |
//! | `GET /status` | the whole [`Status`](edgesort_daemon::Status), and under `api` whether the call came over TLS and the certificate's SHA-256 fingerprint |
//! | `GET /metrics` | Prometheus text |
//! | `GET /events?since=ID&limit=N` | parts after event `ID`, oldest first |
//! | `GET /config`, `PUT /config` | the configuration file; a PUT is validated, saved, audited, and applied live where safe |
//! | `GET /snapshot.jpg` | the newest frame with boxes, track ids and lanes |
//! | `POST /ejectors/{lane}/test[?force=true]` | one pulse by hand |
//! | `POST /ota/packages` | an update package as the body: verified whole, then queued for the installer (202) |
#![deny(missing_docs)]

mod auth_limit;
mod metrics;
mod render;
mod serve;
mod token;
mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use edgesort_daemon::{ConfigRejected, Daemon, EstopResetRefused, PulseRefused, ResetDone};
use edgesort_ota::OtaDir;
use edgesort_types::config::{ApiConfig, OtaConfig};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

use crate::auth_limit::{ClientKey, FailedAuths};
use crate::serve::Served;

pub use metrics::prometheus_text;
pub use render::snapshot_jpeg;
pub use serve::{Limits, serve};
pub use token::{Access, Role, Token, TokenError};

/// The status page: one file, no outside resources.
const STATUS_PAGE: &str = include_str!("../assets/status.html");

/// Events returned per call at most.
const MAX_EVENTS: usize = 1000;

#[derive(Clone)]
struct Api {
    daemon: Arc<Daemon>,
    access: Access,
    updates: Updates,
    /// `api.allow_test_pulse`.
    allow_test_pulse: bool,
    /// Failed authentications per client over the last minute.
    failed_auths: Arc<FailedAuths>,
    /// One permit: the upload in progress holds it.
    uploading: Arc<Semaphore>,
}

/// Where uploaded update packages go and which keys they must be signed
/// with: the `[ota]` of root's system file.
#[derive(Clone)]
pub struct Updates {
    /// The OTA folder.
    pub ota: OtaDir,
    /// The image's trusted keys.
    pub trusted_keys: PathBuf,
    /// Bytes the data partition must keep free after an upload.
    pub reserve_bytes: u64,
}

impl From<&OtaConfig> for Updates {
    fn from(ota: &OtaConfig) -> Updates {
        Updates {
            // The daemon's side: it reads the state and writes incoming/.
            ota: OtaDir::unchecked(&ota.dir),
            trusted_keys: ota.trusted_keys.clone(),
            // Validation refuses a reserve too large to count in bytes; one
            // that skipped it refuses every upload rather than none.
            reserve_bytes: ota.reserve_bytes().unwrap_or(u64::MAX),
        }
    }
}

/// The API's routes over `daemon`, guarded by `access`'s tokens, within `config`'s
/// request deadlines and failed-authentication limit. [`serve`] applies
/// its connection limits.
pub fn router(daemon: Arc<Daemon>, access: Access, updates: Updates, config: &ApiConfig) -> Router {
    let api = Api {
        daemon,
        access,
        updates,
        allow_test_pulse: config.allow_test_pulse,
        failed_auths: Arc::new(FailedAuths::new(config.auth_failures_per_minute)),
        uploading: Arc::new(Semaphore::new(1)),
    };
    let deadline = |seconds| {
        TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(seconds))
    };
    let calls = Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/events", get(events))
        .route("/config", get(get_config).put(put_config))
        .route("/snapshot.jpg", get(snapshot))
        .route("/ejectors/{lane}/test", post(test_pulse))
        .route("/estop/reset", post(reset_estop))
        .layer(deadline(config.request_timeout_s));
    let uploads = Router::new()
        .route(
            "/ota/packages",
            post(upload::upload_package).layer(DefaultBodyLimit::disable()),
        )
        .layer(deadline(config.upload_timeout_s));
    let guarded = calls
        .merge(uploads)
        .route_layer(middleware::from_fn_with_state(api.clone(), require_token));
    Router::new()
        .route("/", get(|| async { Html(STATUS_PAGE) }))
        .layer(deadline(config.request_timeout_s))
        .merge(guarded)
        .with_state(api)
}

/// Lets a call with a token through: the admin token to anything, the
/// read-only token to reads (`GET`, `HEAD`) only, 403 otherwise. A client whose failures used up
/// `api.auth_failures_per_minute` gets 429 whatever it offers, until its
/// oldest failure is a minute old.
async fn require_token(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let client = ClientKey::from(peer.ip());
    if let Some(wait) = api.failed_auths.locked_out(client, Instant::now()) {
        let seconds = wait.as_secs().max(1);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds.to_string())],
            axum::Json(json!({
                "error": format!("too many calls with a missing or wrong API token from {}; try again in {seconds} s", peer.ip())
            })),
        )
            .into_response();
    }
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match offered.and_then(|offered| api.access.role(offered.trim())) {
        Some(Role::Admin) => next.run(request).await,
        Some(Role::Read) if request.method() == Method::GET || request.method() == Method::HEAD => {
            next.run(request).await
        }
        Some(Role::Read) => error_response(
            StatusCode::FORBIDDEN,
            &format!(
                "the read-only token may only read; {} {} needs the admin token (api.token_file)",
                request.method(),
                request.uri().path()
            ),
        ),
        None => {
            api.failed_auths.record(client, Instant::now());
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({"error": "missing or wrong API token"})),
            )
                .into_response()
        }
    }
}

/// Runs a call that blocks (SQLite, JPEG encoding, waiting for a pulse)
/// off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()))
}

pub(crate) fn error_response(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(json!({ "error": message }))).into_response()
}

async fn health(State(api): State<Api>) -> Response {
    let status = api.daemon.status();
    let code = if status.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(json!({"healthy": status.healthy, "state": status.state})),
    )
        .into_response()
}

/// The daemon's status, and how this connection is served: whether over
/// TLS, and the SHA-256 fingerprint of the certificate, which clients pin.
async fn status(State(api): State<Api>, served: Option<Extension<Served>>) -> Response {
    let mut status = match serde_json::to_value(api.daemon.status()) {
        Ok(status) => status,
        Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let fingerprint = served.and_then(|Extension(Served(fingerprint))| fingerprint);
    status["api"] = json!({
        "tls": fingerprint.is_some(),
        "certificate_sha256": fingerprint.map(|fingerprint| fingerprint.to_string()),
    });
    axum::Json(status).into_response()
}

async fn metrics(State(api): State<Api>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus_text(&api.daemon.status()),
    )
        .into_response()
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    since: i64,
    limit: Option<usize>,
}

async fn events(State(api): State<Api>, Query(query): Query<EventsQuery>) -> Response {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_EVENTS);
    let daemon = api.daemon.clone();
    let read =
        blocking(move || daemon.with_store(|store| store.events_since(query.since, limit))).await;
    match read {
        Ok(Ok(events)) => {
            let next = events.last().map_or(query.since, |event| event.id);
            axum::Json(json!({ "events": events, "next": next })).into_response()
        }
        Ok(Err(error)) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        Err(response) => response,
    }
}

async fn get_config(State(api): State<Api>) -> Response {
    match api.daemon.config_text() {
        Ok((text, pending)) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/toml"),
            );
            if let Ok(value) = HeaderValue::from_str(&pending.join(",")) {
                headers.insert("x-edgesort-pending-restart", value);
            }
            (headers, text).into_response()
        }
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

async fn put_config(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "the configuration is not UTF-8 text",
        );
    };
    let daemon = api.daemon.clone();
    let actor = format!("api {peer}");
    match blocking(move || daemon.put_config(&text, &actor)).await {
        Ok(Ok(applied)) => axum::Json(applied).into_response(),
        Ok(Err(ConfigRejected::Invalid(error))) => {
            error_response(StatusCode::BAD_REQUEST, &error_chain(&error))
        }
        Ok(Err(error @ ConfigRejected::NotEditable { .. })) => {
            error_response(StatusCode::FORBIDDEN, &error.to_string())
        }
        Ok(Err(error)) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        Err(response) => response,
    }
}

/// An error and its causes on one line: the field, then what the parser said.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

async fn snapshot(State(api): State<Api>) -> Response {
    let Some(snapshot) = api.daemon.snapshot() else {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, "no frame processed yet");
    };
    let sequence = snapshot.frame.sequence;
    match blocking(move || snapshot_jpeg(&snapshot)).await {
        Ok(Ok(jpeg)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (
                    header::HeaderName::from_static("x-frame-sequence"),
                    HeaderValue::from(sequence),
                ),
            ],
            jpeg,
        )
            .into_response(),
        Ok(Err(error)) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct PulseQuery {
    #[serde(default)]
    force: bool,
}

async fn test_pulse(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(lane): Path<String>,
    Query(query): Query<PulseQuery>,
) -> Response {
    if !api.allow_test_pulse {
        return error_response(
            StatusCode::FORBIDDEN,
            "test pulses over the API are off on this box: a pulse from the network moves machinery nobody at the line asked to move; set api.allow_test_pulse = true to allow them",
        );
    }
    let daemon = api.daemon.clone();
    let actor = format!("api {peer}");
    let lane_name = lane.clone();
    match blocking(move || daemon.test_pulse(&lane_name, query.force, &actor)).await {
        Ok(Ok(outcome)) => axum::Json(json!({"lane": lane, "outcome": outcome})).into_response(),
        Ok(Err(refused @ PulseRefused::NoSuchLane { .. })) => {
            error_response(StatusCode::NOT_FOUND, &refused.to_string())
        }
        Ok(Err(refused)) => error_response(StatusCode::CONFLICT, &refused.to_string()),
        Err(response) => response,
    }
}

/// Resets the e-stop latch. A call from the box itself (loopback, as
/// `edgesort estop reset` makes it) is allowed; one from another machine
/// only where the box's configuration allows remote resets. Every attempt
/// is audited.
async fn reset_estop(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let daemon = api.daemon.clone();
    let remote = !peer.ip().is_loopback();
    let actor = format!("api {peer}");
    match blocking(move || daemon.reset_estop(&actor, remote)).await {
        Ok(Ok(done)) => {
            let result = match done {
                ResetDone::Rearmed => "rearmed",
                ResetDone::WasClear => "was_clear",
            };
            axum::Json(json!({ "result": result })).into_response()
        }
        Ok(Err(refused @ EstopResetRefused::RemoteResetOff)) => {
            error_response(StatusCode::FORBIDDEN, &refused.to_string())
        }
        Ok(Err(refused)) => error_response(StatusCode::CONFLICT, &refused.to_string()),
        Err(response) => response,
    }
}
