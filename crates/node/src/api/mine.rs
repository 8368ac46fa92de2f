//! `GET /v1/mine`: every record this node's user signed that the node holds, oldest first,
//! each with where it stands now (does the endorsement still count, what is the petition's
//! count, was the review replaced...).
//!
//! A user's records are on the topics they take part in, which their node follows (PROTOCOL
//! §6; the API follows what the user makes): the meta topic, the followed producers' and
//! groups' topics, and the user's own feedback topic. Those topics are read in full and the
//! user's records kept: the cost is the records of the topics followed (a node that follows
//! everything reads its whole store).

use std::collections::BTreeSet;

use axum::extract::State;
use axum::Json;
use chorus_protocol::{Body, SignedRecord, Topic};
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::ApiState;
use super::views::record_json;
use crate::clock::now_ms;
use crate::store::PetitionState;

/// Records read per page of a topic.
const PAGE: usize = 1024;

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

/// Every record this node's user signed that the node holds, in no particular order.
pub(crate) async fn my_records(s: &ApiState) -> Result<Vec<SignedRecord>, ApiError> {
    let follow = s.following.snapshot();
    let mut topics: BTreeSet<String> = BTreeSet::new();
    let mut scan: Vec<Topic> = Vec::new();
    let mut add = |t: Topic| {
        if topics.insert(t.to_string()) {
            scan.push(t);
        }
    };
    add(Topic::Meta);
    add(Topic::Producer(s.author));
    for p in &follow.producers {
        add(Topic::Producer(*p));
    }
    for (p, _) in &follow.products {
        add(Topic::Producer(*p));
    }
    for g in &follow.groups {
        add(Topic::Group(*g));
    }
    let me = s.author;
    let all = follow.all;
    let store = s.store.clone();
    // Read off the async threads: a followed topic may hold many records.
    let mine = tokio::task::spawn_blocking(move || -> crate::error::Result<Vec<SignedRecord>> {
        let mut out = Vec::new();
        if all {
            // A node that follows everything reads its whole store.
            for entry in store.all_entries() {
                let (_, wire) = entry?;
                let rec = SignedRecord::from_vec(wire)?;
                if rec.author() == me {
                    out.push(rec);
                }
            }
            return Ok(out);
        }
        // Profiles lie apart from `meta` (PROTOCOL.md §13.2), each author's together.
        out.extend(store.profiles_by(&me)?);
        for topic in scan {
            let mut after = None;
            loop {
                let page = store.by_topic(&topic, after, PAGE)?;
                out.extend(page.records.into_iter().filter(|r| r.author() == me));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
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
