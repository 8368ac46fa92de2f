//! Endpoints that show and change what the node follows, and the watchdogs it trusts.

use axum::extract::State;
use axum::Json;
use chorus_client::{FollowRequest, FollowSet, TrustRequest, TrustSet};

use super::error::{ApiError, JsonBody};
use super::parse::{author_named, key, record_id};
use super::state::ApiState;
use super::views::follow_set;
use chorus_protocol::Topic;

use crate::follow::{split_product, FollowChange};

/// `GET /v1/follow`.
pub(crate) async fn following(State(s): State<ApiState>) -> Result<Json<FollowSet>, ApiError> {
    Ok(Json(follow_set(&s.following.snapshot())))
}

/// The one change a request names.
async fn change_of(s: &ApiState, r: &FollowRequest) -> Result<FollowChange, ApiError> {
    if r.check().is_err() {
        return Err(ApiError::bad(
            "bad_follow",
            "give exactly one of producer, group, product or all",
        ));
    }
    Ok(if let Some(p) = &r.producer {
        FollowChange::Producer(author_named(s, "producer", p).await?)
    } else if let Some(g) = &r.group {
        FollowChange::Group(record_id(s, "group", g)?)
    } else if let Some(p) = &r.product {
        let (producer, code) = split_product(p).map_err(|e| ApiError::bad("bad_product", e))?;
        let key = match author_named(s, "product", producer).await {
            Err(e) if e.code() == "bad_key" => {
                return Err(ApiError::bad(
                    "bad_product",
                    format!(
                        "product {p:?}: {producer:?} is not a producer's key, a unique start \
                         of one, nor the name of one profile this node or its peers know"
                    ),
                ))
            }
            other => other?,
        };
        FollowChange::Product(key, code.to_string())
    } else {
        FollowChange::All
    })
}

async fn set(s: &ApiState, r: FollowRequest, add: bool) -> Result<Json<FollowSet>, ApiError> {
    let change = change_of(s, &r).await?;
    let now = s.following.change(change, add).await?;
    Ok(Json(follow_set(&now)))
}

/// `POST /v1/follow`.
pub(crate) async fn follow(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<FollowRequest>,
) -> Result<Json<FollowSet>, ApiError> {
    set(&s, r, true).await
}

/// `POST /v1/unfollow`.
pub(crate) async fn unfollow(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<FollowRequest>,
) -> Result<Json<FollowSet>, ApiError> {
    set(&s, r, false).await
}

/// `GET /v1/trust`.
pub(crate) async fn trust(State(s): State<ApiState>) -> Result<Json<TrustSet>, ApiError> {
    Ok(Json(s.trust.set()))
}

/// `POST /v1/trust`.
pub(crate) async fn trust_add(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<TrustRequest>,
) -> Result<Json<TrustSet>, ApiError> {
    let w = key("watchdog", &r.watchdog)?;
    Ok(Json(s.trust.change(w, true)?))
}

/// `POST /v1/untrust`.
pub(crate) async fn trust_remove(
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<TrustRequest>,
) -> Result<Json<TrustSet>, ApiError> {
    let w = key("watchdog", &r.watchdog)?;
    Ok(Json(s.trust.change(w, false)?))
}

/// A user follows every topic they take part in: the producer they review, petition or
/// endorse, the group they create or join. Otherwise their node would never hear the
/// answer to their petition or the members of their group. A newly followed topic is
/// caught up from the connected peers at once, in the background.
pub(crate) async fn follow_what_i_join(s: &ApiState, topic: &Topic) -> Result<(), ApiError> {
    if s.following.follows(topic) {
        return Ok(());
    }
    let change = match topic {
        Topic::Producer(k) => FollowChange::Producer(*k),
        Topic::Group(g) => FollowChange::Group(*g),
        Topic::Meta => return Ok(()),
    };
    s.following.change(change, true).await?;
    let sync = s.sync.clone();
    tokio::spawn(async move {
        let _ = sync.sync_now(None).await;
    });
    Ok(())
}
