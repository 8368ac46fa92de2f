//! Endpoints about the node on the network: its status, its peers, and catching up now.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chorus_client::{
    PeerPull, Peers, Status, StorageCondition, StorageState, SyncAnswer, SyncRequest,
};

use super::error::ApiError;
use super::state::ApiState;
use super::views::follow_set;
use crate::net::PeerId;

/// `GET /v1/status`.
pub(crate) async fn status(State(s): State<ApiState>) -> Result<Json<Status>, ApiError> {
    Ok(Json(status_of(&s).await?))
}

/// The node's status (`GET /v1/status`; the dashboard's header).
pub(crate) async fn status_of(s: &ApiState) -> Result<Status, ApiError> {
    let net = s.client.status().await?;
    let storage = storage_state(&s.store);
    Ok(Status {
        peer_id: net.peer_id,
        listen_addrs: net.listen_addrs,
        peers: net.peers.len() as u64,
        peer_ids: net.peers,
        // A store that cannot be read says why in `storage`; the status still answers.
        records: match &storage.state {
            StorageCondition::Ok => s.store.len()?,
            _ => s.store.len().unwrap_or(0),
        },
        waiting: match &storage.state {
            StorageCondition::Ok => s.store.waiting()? as u64,
            _ => s.store.waiting().unwrap_or(0) as u64,
        },
        shards: net.shards,
        author: s.author.to_string(),
        following: follow_set(&s.following.snapshot()),
        sync_ready: s.store.sync_ready(),
        storage,
        last_pull: s.sync.last_pulls().into_iter().next().map(|p| PeerPull {
            at: p.at,
            report: p.report,
        }),
    })
}

/// Whether the store can write, and the room left on its disk.
fn storage_state(store: &crate::store::Store) -> StorageState {
    let (state, message) = match store.storage_fault() {
        None => (StorageCondition::Ok, None),
        Some(f) if f.is_full() => (StorageCondition::Full, Some(f.to_string())),
        Some(f) => (StorageCondition::Failed, Some(f.to_string())),
    };
    StorageState {
        state,
        message,
        free_bytes: store.free_bytes().unwrap_or(0),
        used_bytes: store.size_on_disk().unwrap_or(0),
    }
}

/// `GET /v1/peers`.
pub(crate) async fn peers(State(s): State<ApiState>) -> Result<Json<Peers>, ApiError> {
    let net = s.client.status().await?;
    Ok(Json(Peers {
        peers: net.peers,
        banned: net.banned,
        pulls: s
            .sync
            .last_pulls()
            .into_iter()
            .map(|p| PeerPull {
                at: p.at,
                report: p.report,
            })
            .collect(),
    }))
}

/// `POST /v1/sync`: what each pull did. The body is optional.
pub(crate) async fn sync(
    State(s): State<ApiState>,
    body: Bytes,
) -> Result<Json<SyncAnswer>, ApiError> {
    let req: SyncRequest = if body.is_empty() {
        SyncRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad("bad_request", format!("body: {e}")))?
    };
    let peer = match req.peer {
        None => None,
        Some(p) => Some(
            p.parse::<PeerId>()
                .map_err(|e| ApiError::bad("bad_peer", format!("{p} is not a peer id: {e}")))?,
        ),
    };
    if let Some(p) = peer {
        let net = s.client.status().await?;
        if !net.peers.contains(&p.to_string()) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "peer_not_connected",
                format!("{p} is not connected"),
            ));
        }
    }
    let pulls = s.sync.sync_now(peer).await?;
    Ok(Json(SyncAnswer {
        stored: pulls.iter().map(|r| r.stored).sum(),
        pulls,
    }))
}
