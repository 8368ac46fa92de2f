//! `GET /v1/events`: the live event stream (server-sent events), with filters and
//! resumption.
//!
//! Records on watched topics get a sequence number in the store's arrival journal (a
//! producer's own feedback topic always is; a watch on another producer, petition or group
//! starts journaling its topic). A client that passes `after=SEQ` (or the `Last-Event-ID`
//! header) first gets every journaled record that arrived after SEQ and matches its filter,
//! with the current tally of each petition they touch, then the live events. Record events
//! carry their sequence number as the SSE `id`, so a client resumes where it stopped.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::Sse as SseResponse;
use chorus_protocol::{AuthorKey, RecordId, SignedRecord, Topic};
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::records::{record_json, tally_json, tally_with_trust};
use super::{ApiError, ApiState, Q};
use crate::Event;

/// Query of `GET /v1/events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    producer: Option<String>,
    petition: Option<String>,
    group: Option<String>,
    kind: Option<String>,
    /// Replay journaled arrivals after this sequence number first.
    after: Option<u64>,
    /// `false`: end the stream after the replay (default `true`: then follow live).
    follow: Option<bool>,
}

/// What a client asked to see.
#[derive(Debug, Clone, Default)]
struct Filter {
    producer: Option<AuthorKey>,
    petition: Option<RecordId>,
    group: Option<RecordId>,
    kind: Option<String>,
}

impl Filter {
    fn record(&self, rec: &SignedRecord) -> bool {
        let r = rec.record();
        self.producer.is_none_or(|p| r.topic == Topic::Producer(p))
            && self
                .petition
                .is_none_or(|p| rec.id() == p || r.body.target() == Some(p))
            && self.group.is_none_or(|g| r.topic == Topic::Group(g))
            && self.kind.as_deref().is_none_or(|k| r.kind().as_str() == k)
    }

    fn petition_tally(&self, petition: &RecordId, t: &crate::PetitionTally) -> bool {
        self.kind.is_none()
            && self.producer.is_none_or(|p| t.producer == p)
            && self.petition.is_none_or(|p| p == *petition)
            && self.group.is_none_or(|g| t.group == Some(g))
    }
}

fn sse(kind: &str, id: Option<u64>, data: &Value) -> Sse {
    let mut e = Sse::default().event(kind).data(data.to_string());
    if let Some(id) = id {
        e = e.id(id.to_string());
    }
    e
}

fn record_event(seq: Option<u64>, rec: &SignedRecord) -> Sse {
    let mut v = json!({ "type": "record", "seq": seq });
    v["record"] = record_json(rec);
    sse("record", seq, &v)
}

/// The petition a record changes the tally of, if any.
fn petition_of(rec: &SignedRecord, store: &crate::Store) -> Option<RecordId> {
    use chorus_protocol::Body;
    match &rec.record().body {
        Body::Petition(_) => Some(rec.id()),
        Body::Endorsement(e) => Some(e.petition),
        Body::Response(r) => Some(r.target),
        Body::Retraction(r) => match store.record(&r.target).ok().flatten()?.record().body {
            Body::Endorsement(ref e) => Some(e.petition),
            Body::Petition(_) => Some(r.target),
            _ => None,
        },
        _ => None,
    }
}

fn live_event(e: &Event, f: &Filter, state: &ApiState, after: u64) -> Option<Sse> {
    let store = &state.store;
    match e {
        Event::RecordStored { id, seq, .. } => {
            if seq.is_some_and(|s| s <= after) {
                return None;
            }
            let rec = store.record(id).ok().flatten()?;
            f.record(&rec).then(|| record_event(*seq, &rec))
        }
        Event::TallyChanged { petition, tally } | Event::ThresholdCrossed { petition, tally } => {
            if !f.petition_tally(petition, tally) {
                return None;
            }
            let rec = store.record(petition).ok().flatten();
            let kind = if matches!(e, Event::ThresholdCrossed { .. }) {
                "threshold"
            } else {
                "tally"
            };
            let mut v = json!({ "type": kind });
            v["tally"] = tally_with_trust(state, petition, rec.as_ref(), tally)
                .unwrap_or_else(|_| tally_json(petition, rec.as_ref(), tally));
            Some(sse(kind, None, &v))
        }
        Event::RatingChanged {
            producer,
            code,
            rating,
        } => {
            let ok = f.kind.is_none()
                && f.petition.is_none()
                && f.group.is_none()
                && f.producer.is_none_or(|p| p == *producer);
            ok.then(|| {
                sse(
                    "rating",
                    None,
                    &json!({
                        "type": "rating", "producer": producer.to_string(), "product": code,
                        "count": rating.count, "mean": rating.mean(), "histogram": rating.histogram,
                    }),
                )
            })
        }
        Event::Responded {
            target,
            response,
            producer,
            status,
        } => {
            let ok = f.kind.is_none()
                && f.group.is_none()
                && f.producer.is_none_or(|p| p == *producer)
                && f.petition.is_none_or(|p| p == *target);
            ok.then(|| {
                sse(
                    "response",
                    None,
                    &json!({
                        "type": "response", "target": target.to_string(),
                        "response": response.to_string(), "producer": producer.to_string(),
                        "status": status,
                    }),
                )
            })
        }
    }
}

/// Replays the journal after `after`; returns the last sequence number sent.
async fn replay(
    s: &ApiState,
    f: &Filter,
    mut after: u64,
    tx: &mpsc::Sender<Sse>,
) -> Result<u64, crate::Error> {
    let mut touched = BTreeSet::new();
    loop {
        let store = s.store.clone();
        let from = after;
        let batch = tokio::task::spawn_blocking(move || store.journal_after(from, 1024))
            .await
            .map_err(|_| crate::Error::NodeStopped)??;
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        for (seq, id) in batch {
            let Some(rec) = s.store.record(&id)? else {
                continue;
            };
            if !f.record(&rec) {
                continue;
            }
            if let Some(p) = petition_of(&rec, &s.store) {
                touched.insert(p);
            }
            if tx.send(record_event(Some(seq), &rec)).await.is_err() {
                return Ok(last);
            }
        }
        after = last;
    }
    // Where the counts stand now, for every petition the replay touched.
    for p in touched {
        if let Some(t) = s.store.tally(&p)? {
            if f.petition_tally(&p, &t) {
                let rec = s.store.record(&p)?;
                let mut v = json!({ "type": "tally" });
                v["tally"] = tally_with_trust(s, &p, rec.as_ref(), &t)
                    .unwrap_or_else(|_| tally_json(&p, rec.as_ref(), &t));
                if tx.send(sse("tally", None, &v)).await.is_err() {
                    break;
                }
            }
        }
    }
    Ok(after)
}

pub(crate) async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Q(q): Q<EventsQuery>,
) -> Result<SseResponse<impl Stream<Item = Result<Sse, Infallible>>>, ApiError> {
    let bad = |code: &'static str, m: String| ApiError {
        status: axum::http::StatusCode::BAD_REQUEST,
        code,
        message: m,
    };
    let mut f = Filter {
        kind: q.kind.clone(),
        ..Filter::default()
    };
    if let Some(p) = &q.producer {
        f.producer = Some(
            p.parse()
                .map_err(|e| bad("bad_key", format!("producer {p:?}: {e}")))?,
        );
    }
    if let Some(p) = &q.petition {
        f.petition = Some(
            p.parse()
                .map_err(|e| bad("bad_id", format!("petition {p:?}: {e}")))?,
        );
    }
    if let Some(g) = &q.group {
        f.group = Some(
            g.parse()
                .map_err(|e| bad("bad_id", format!("group {g:?}: {e}")))?,
        );
    }
    if let Some(k) = &q.kind {
        k.parse::<chorus_protocol::Kind>()
            .map_err(|e| bad("bad_kind", format!("kind {k:?}: {e}")))?;
    }
    // Journal what this watch is about from now on, so the next watch can resume.
    if let Some(p) = f.producer {
        s.store.watch_topic(&Topic::Producer(p))?;
    }
    if let Some(g) = f.group {
        s.store.watch_topic(&Topic::Group(g))?;
    }
    if let Some(p) = f.petition {
        if let Some(rec) = s.store.record(&p)? {
            s.store.watch_topic(&rec.record().topic)?;
        }
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or(q.after);
    let follow = q.follow.unwrap_or(true);
    // Subscribe before replaying, so nothing falls between the two.
    let mut live = s.ingest.subscribe();
    let (tx, mut rx) = mpsc::channel::<Sse>(256);
    let state = s.clone();
    tokio::spawn(async move {
        let mut last = state.store.journal_last();
        if let Some(after) = resume {
            match replay(&state, &f, after, &tx).await {
                Ok(l) => last = l.max(after),
                Err(e) => {
                    let _ = tx
                        .send(sse(
                            "error",
                            None,
                            &json!({ "type": "error", "message": e.to_string() }),
                        ))
                        .await;
                    return;
                }
            }
        }
        // Tell the client where the replay ended, so it can keep its cursor.
        let ready = json!({ "type": "ready", "seq": last });
        if tx.send(sse("ready", Some(last), &ready)).await.is_err() || !follow {
            return;
        }
        loop {
            let next = tokio::select! {
                _ = state.cancel.cancelled() => return,
                e = live.recv() => e,
            };
            match next {
                Ok(e) => {
                    if let Some(ev) = live_event(&e, &f, &state, last) {
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let m = json!({ "type": "lagged", "missed": n });
                    if tx.send(sse("lagged", None, &m)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)));
    Ok(SseResponse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
