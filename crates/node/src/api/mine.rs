//! `GET /v1/mine`: every record this node's user signed that the node holds, oldest first,
//! each with where it stands now (does the endorsement still count, what is the petition's
//! count, was the review replaced...).
//!
//! A user's records are on the topics they take part in, which their node follows (PROTOCOL
//! §6; the API follows what the user makes): the meta topic, the followed producers' and
//! groups' topics, and the user's own feedback topic. The store keeps no index by author
//! (it would cost a key per record), so [`Mine`] reads those topics once, when first asked
//! (a node that follows everything, its whole store), then adds the user's records as they
//! are stored: asking again costs the user's records, not the topics'.

use axum::extract::State;
use axum::Json;
use chorus_protocol::{Body, SignedRecord};
use serde_json::{json, Value};

use super::error::ApiError;
use super::own::Sources;
use super::state::ApiState;
use super::views::record_json;
use crate::clock::now_ms;
use crate::store::PetitionState;

/// Where one of the user's records stands now, in words.
fn state(s: &ApiState, rec: &SignedRecord) -> Result<String, ApiError> {
    let id = rec.id();
    let me = s.author;
    let slot = |winner: Option<(chorus_protocol::RecordId, bool)>, what: &str| match winner {
        Some((w, true)) if w == id => what.to_string(),
        Some((w, true)) => format!("replaced by {w}"),
        _ => "retracted".to_string(),
    };
    Ok(match &rec.record().body {
        Body::Endorsement(e) => {
            let mut st = slot(s.store.endorsement_of(&e.petition, &me)?, "counts");
            if let Some(t) = s.store.tally(&e.petition)? {
                match t.state(now_ms()) {
                    PetitionState::Open => {}
                    PetitionState::Withdrawn => st.push_str("; the petition was withdrawn"),
                    PetitionState::Closed => st.push_str("; the petition is closed"),
                }
            }
            st
        }
        Body::Review(r) => slot(
            s.store
                .review_of(&r.product.producer, &r.product.code, &me)?,
            "counts",
        ),
        Body::Petition(_) => match s.store.tally(&id)? {
            Some(t) => {
                let st = match t.state(now_ms()) {
                    PetitionState::Open => "open",
                    PetitionState::Withdrawn => "withdrawn",
                    PetitionState::Closed => "closed",
                };
                format!(
                    "{} of {} endorsers, {st}{}",
                    t.endorsers,
                    t.threshold,
                    if t.reached { ", reached" } else { "" }
                )
            }
            None => "no count yet".to_string(),
        },
        Body::Profile(_) => match s.store.profile(&me)? {
            Some(p) if p.id() == id => "current".to_string(),
            Some(_) => "replaced".to_string(),
            None => "retracted".to_string(),
        },
        Body::Join(j) => {
            let approval = s
                .store
                .group(&j.group)?
                .is_some_and(|g| g.admission == "approval");
            let standing = s.store.group_standings(&j.group)?.remove(&me);
            match standing {
                Some(st) if st.join.is_some_and(|(w, _, on)| on && w == id) => {
                    if !approval || st.admitted {
                        "member".to_string()
                    } else {
                        "pending: the founder has not admitted you yet".to_string()
                    }
                }
                Some(st) if st.join.is_some_and(|(w, _, on)| on && w != id) => {
                    "replaced".to_string()
                }
                _ => "retracted".to_string(),
            }
        }
        Body::Response(r) => format!("answered: {}", r.status),
        Body::Retraction(r) => format!("retracts {}", r.target),
        Body::Group(_) => "founded".to_string(),
        Body::Admit(_) | Body::Attestation(_) => "published".to_string(),
    })
}

/// Every record this node's user signed that the node holds, in no particular order: read
/// by id from the list `Mine` keeps, once it has read the store (until then, waits).
pub(crate) async fn my_records(s: &ApiState) -> Result<Vec<SignedRecord>, ApiError> {
    // Read the first time they are asked for: a node whose user never asks (an archive
    // nobody browses) does not read its store for them.
    if s.mine.start() {
        tokio::spawn(s.mine.clone().keep(Sources {
            store: s.store.clone(),
            ingest: s.ingest.clone(),
            following: s.following.clone(),
            author: s.author,
            cancel: s.cancel.clone(),
        }));
    }
    let ids = s.mine.ids().await?;
    let store = s.store.clone();
    let mine = tokio::task::spawn_blocking(move || -> crate::error::Result<Vec<SignedRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // A record gone from the store (an expired one) is no longer the user's.
            out.extend(store.record(&id)?);
        }
        Ok(out)
    })
    .await
    .map_err(|_| crate::error::Error::NodeStopped)??;
    Ok(mine)
}

/// `GET /v1/mine`.
pub(crate) async fn mine(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let me = s.author;
    let mut mine = my_records(&s).await?;
    mine.sort_by_key(|r| (r.record().created_at, r.id()));
    let mut records = Vec::with_capacity(mine.len());
    for rec in &mine {
        let mut v = record_json(&s.store, rec);
        v["state"] = json!(state(&s, rec)?);
        records.push(v);
    }
    Ok(Json(
        json!({ "author": me.to_string(), "records": records }),
    ))
}
