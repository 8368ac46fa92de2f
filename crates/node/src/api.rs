//! The local JSON API, served on loopback for the CLI, scripts and dashboards.
//!
//! Every call needs `Authorization: Bearer <token>`, the token the node keeps in its data dir
//! (`api.token`, mode 0600); anything else gets 401. Errors are JSON objects with a stable
//! `code` and a human `message`. The address actually bound is written to `api.json` in the
//! data dir so the CLI can find the node. Every endpoint is described in `docs/API.md`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chorus_protocol::AuthorKey;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

mod records;
mod watch;

pub use records::parse_deadline;

use crate::net::Client;
use crate::{Error, Result, Store};

/// What the handlers reach.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) store: Store,
    pub(crate) client: Client,
    pub(crate) author: AuthorKey,
    pub(crate) token: Arc<String>,
    pub(crate) ingest: crate::Ingest,
    pub(crate) publisher: crate::publish::Publisher,
    pub(crate) signer: Arc<chorus_protocol::SigningKey>,
    pub(crate) following: crate::Following,
    pub(crate) sync: crate::SyncHandle,
    /// Fires when the node stops: long-lived answers (event streams) end then.
    pub(crate) cancel: CancellationToken,
    pub(crate) audit: crate::audit::AuditConfig,
    pub(crate) trusted: Arc<Vec<AuthorKey>>,
    /// Creation times of the records made for this node's user.
    pub(crate) clock: Arc<crate::clock::Clock>,
}

/// An API error: an HTTP status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            code: self.code,
            message: &self.message,
        });
        (self.status, body).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match &e {
            Error::NodeStopped => (StatusCode::SERVICE_UNAVAILABLE, "node_stopped"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

/// A JSON body whose rejection (malformed JSON, unknown or missing fields) is an
/// [`ApiError`] like every other error.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "bad_request",
                message: e.body_text(),
            }),
        }
    }
}

/// A query string whose rejection is an [`ApiError`].
pub(crate) struct Q<T>(pub(crate) T);

impl<S, T> axum::extract::FromRequestParts<S> for Q<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(e) => Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "bad_request",
                message: e.body_text(),
            }),
        }
    }
}

/// `GET /v1/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// This node's peer id.
    pub peer_id: String,
    /// Full listen multiaddrs, ending in `/p2p/PEERID`.
    pub listen_addrs: Vec<String>,
    /// Number of connected peers.
    pub peers: usize,
    /// The connected peers.
    pub peer_ids: Vec<String>,
    /// Number of stored records.
    pub records: u64,
    /// Records waiting for the record they point at.
    pub waiting: usize,
    /// Subscribed gossip shards.
    pub shards: Vec<String>,
    /// This user's author key.
    pub author: String,
    /// What the node follows: `{all, producers, groups, products}`.
    pub following: serde_json::Value,
}

async fn status(State(s): State<ApiState>) -> Result<Json<Status>, ApiError> {
    let net = s.client.status().await?;
    Ok(Json(Status {
        peer_id: net.peer_id,
        listen_addrs: net.listen_addrs,
        peers: net.peers.len(),
        peer_ids: net.peers,
        records: s.store.len()?,
        waiting: s.store.waiting(),
        shards: net.shards,
        author: s.author.to_string(),
        following: records::follow_json(&s.following.snapshot()),
    }))
}

/// Body of `POST /v1/sync` (optional).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Pull only from this connected peer; default: every connected peer.
    pub peer: Option<String>,
}

/// `POST /v1/sync`: what each pull did.
#[derive(Debug, Serialize)]
pub struct SyncAnswer {
    /// One report per peer pulled from.
    pub pulls: Vec<crate::SyncReport>,
    /// Records newly stored, over all pulls.
    pub stored: u64,
}

async fn sync(
    State(s): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<SyncAnswer>, ApiError> {
    let req: SyncRequest = if body.is_empty() {
        SyncRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: format!("body: {e}"),
        })?
    };
    let peer = match req.peer {
        None => None,
        Some(p) => Some(p.parse::<crate::net::PeerId>().map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_peer",
            message: format!("{p} is not a peer id: {e}"),
        })?),
    };
    if let Some(p) = peer {
        let net = s.client.status().await?;
        if !net.peers.contains(&p.to_string()) {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                code: "peer_not_connected",
                message: format!("{p} is not connected"),
            });
        }
    }
    let pulls = s.sync.sync_now(peer).await?;
    Ok(Json(SyncAnswer {
        stored: pulls.iter().map(|r| r.stored).sum(),
        pulls,
    }))
}

/// `GET /v1/audit`: the watchdog's audit of this node's store.
async fn audit(State(s): State<ApiState>) -> Result<Json<crate::audit::Report>, ApiError> {
    let store = s.store.clone();
    let cfg = s.audit.clone();
    let report = tokio::task::spawn_blocking(move || {
        crate::audit::audit(&store, &cfg, crate::clock::now_ms())
    })
    .await
    .map_err(|_| Error::NodeStopped)??;
    Ok(Json(report))
}

/// `GET /v1/bundle/{id}`: the petition's verifiable bundle (`application/cbor`).
async fn bundle(
    State(s): State<ApiState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let pid: chorus_protocol::RecordId = id.parse().map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "bad_id",
        message: format!("petition {id:?}: {e}"),
    })?;
    let store = s.store.clone();
    let exported = tokio::task::spawn_blocking(move || crate::bundle::export(&store, &pid))
        .await
        .map_err(|_| Error::NodeStopped)?
        .map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "not_a_petition",
            message: e.to_string(),
        })?;
    match exported {
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("no petition {pid} in this node's store"),
        }),
        Some(b) => Ok(([(header::CONTENT_TYPE, "application/cbor")], b.encode()).into_response()),
    }
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(t) if same(t.as_bytes(), s.token.as_bytes()) => next.run(req).await,
        _ => ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "missing or wrong bearer token (see api.token in the data dir)".into(),
        }
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "no such endpoint".into(),
    }
}

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/sync", post(sync))
        .route("/v1/peers", get(records::peers))
        .route("/v1/follow", get(records::following).post(records::follow))
        .route("/v1/unfollow", post(records::unfollow))
        .route("/v1/profile", post(records::profile))
        .route("/v1/reviews", get(records::reviews).post(records::review))
        .route("/v1/rating", get(records::rating))
        .route("/v1/groups", post(records::group_create))
        .route("/v1/groups/{id}", get(records::group_show))
        .route("/v1/groups/{id}/join", post(records::group_join))
        .route("/v1/groups/{id}/admit", post(records::group_admit))
        .route(
            "/v1/petitions",
            get(records::petitions).post(records::petition_open),
        )
        .route("/v1/tally/{id}", get(records::tally))
        .route("/v1/records/{id}", get(records::show))
        .route("/v1/endorse", post(records::endorse))
        .route("/v1/retract", post(records::retract))
        .route("/v1/respond", post(records::respond))
        .route("/v1/attest", post(records::attest))
        .route("/v1/events", get(watch::events))
        .route("/v1/audit", get(audit))
        .route("/v1/bundle/{id}", get(bundle))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Binds `listen` and serves until `cancel`; returns the bound address.
pub(crate) async fn serve(
    listen: &str,
    state: ApiState,
    cancel: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| Error::Config(format!("api.listen {listen}: {e}")))?;
    if !addr.ip().is_loopback() {
        warn!(%addr, "the API is served beyond loopback; anyone with the token can use it");
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, "api listening");
    let app = router(state);
    let task = tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(error = %e, "api server stopped");
        }
    });
    Ok((bound, task))
}
