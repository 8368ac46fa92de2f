//! `GET /v1/events`: the live event stream (server-sent events), with filters and
//! resumption.
//!
//! Records on watched topics get a sequence number in the store's arrival journal (a
//! producer's own feedback topic always is; a watch on another producer, petition or group
//! starts journaling its topic), and so do the milestones of the petitions on those topics:
//! a threshold reached, a campaign first funded, a campaign's end. A client that passes
//! `after=SEQ` (or the `Last-Event-ID` header) first gets every journaled record and
//! milestone after SEQ that matches its filter (a milestone with the petition's current
//! tally), then the current tally of each petition the records touch, then the live events.
//! Record and milestone events carry their sequence number as the SSE `id`, so a client
//! resumes where it stopped and is told of each milestone once.
//!
//! Streams are capped in total and per token (`EventStreams`). A stream holds at most
//! `api.event_queue` events built for its reader; while they are not taken, its task waits,
//! building nothing, and the live events stay in the pipeline's one bounded broadcast buffer
//! (shared by every stream). A reader that falls further behind than that buffer misses
//! events and is told how many with a `lagged` event; one that takes nothing at all is
//! dropped by the server's write timeout. So a slow or stalled reader costs its small queue
//! and no work per event.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::Sse as SseResponse;
use chorus_client::{
    ErrorEvent, Event as ApiEvent, EventsQuery, LaggedEvent, ReadyEvent, RecordEvent,
    ResponseEvent, TallyEvent,
};
use chorus_protocol::{AuthorKey, Body, RecordId, SignedRecord, Topic};
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, Q};
use super::parse::{author_named, record_id, record_named};
use super::state::{ApiState, Authenticated};
use super::views::{record_json, tally, tally_with_trust};
use crate::store::{Journaled, Milestone, PetitionTally};
use crate::tally::Event;
use chorus_protocol::sync::wire::kinds;

/// What the user takes part in (`mine=true`), read from their records when the stream
/// opens.
#[derive(Debug, Clone, Default)]
struct Involved {
    me: Option<AuthorKey>,
    /// Petitions they opened or endorsed.
    petitions: BTreeSet<RecordId>,
    /// Groups they founded or joined.
    groups: BTreeSet<RecordId>,
    /// Products they reviewed.
    products: BTreeSet<(AuthorKey, String)>,
    /// Their own records (answers to them are theirs to see).
    own: BTreeSet<RecordId>,
    /// The topics all this is on.
    topics: BTreeSet<Topic>,
}

impl Involved {
    fn of(me: AuthorKey, records: &[SignedRecord]) -> Self {
        let mut i = Involved {
            me: Some(me),
            ..Involved::default()
        };
        i.topics.insert(Topic::Producer(me));
        for rec in records {
            let r = rec.record();
            i.own.insert(rec.id());
            match &r.body {
                Body::Petition(_) => {
                    i.petitions.insert(rec.id());
                }
                Body::Endorsement(e) => {
                    i.petitions.insert(e.petition);
                }
                Body::Review(rv) => {
                    i.products
                        .insert((rv.product.producer, rv.product.code.clone()));
                }
                Body::Join(j) => {
                    i.groups.insert(j.group);
                    i.topics.insert(Topic::Group(j.group));
                }
                Body::Group(_) => {
                    i.groups.insert(rec.id());
                    i.topics.insert(Topic::Group(rec.id()));
                }
                _ => continue,
            }
            if r.topic != Topic::Meta {
                i.topics.insert(r.topic);
            }
        }
        i
    }

    fn record(&self, rec: &SignedRecord, store: &crate::store::Store) -> bool {
        let r = rec.record();
        let target = r.body.target();
        self.me.is_some_and(|me| r.topic == Topic::Producer(me))
            || self.petitions.contains(&rec.id())
            || target.is_some_and(|t| self.petitions.contains(&t) || self.own.contains(&t))
            || petition_of(rec, store).is_some_and(|p| self.petitions.contains(&p))
            || matches!(r.topic, Topic::Group(g) if self.groups.contains(&g))
            || matches!(&r.body, Body::Review(rv)
                if self.products.contains(&(rv.product.producer, rv.product.code.clone())))
    }
}

/// What a client asked to see.
#[derive(Debug, Clone, Default)]
struct Filter {
    producer: Option<AuthorKey>,
    petition: Option<RecordId>,
    group: Option<RecordId>,
    kind: Option<String>,
    /// `mine=true`: what the user takes part in.
    involved: Option<Involved>,
}

impl Filter {
    /// Does the stream want this record? (`store`: to find what a retraction retracts.)
    fn record(&self, rec: &SignedRecord, store: &crate::store::Store) -> bool {
        let r = rec.record();
        self.involved.as_ref().is_none_or(|i| i.record(rec, store))
            && self.producer.is_none_or(|p| r.topic == Topic::Producer(p))
            && self.petition.is_none_or(|p| {
                rec.id() == p || r.body.target() == Some(p) || petition_of(rec, store) == Some(p)
            })
            && self.group.is_none_or(|g| r.topic == Topic::Group(g))
            && self.kind.as_deref().is_none_or(|k| r.kind().as_str() == k)
    }

    fn petition_tally(&self, petition: &RecordId, t: &PetitionTally) -> bool {
        self.involved
            .as_ref()
            .is_none_or(|i| i.petitions.contains(petition) || i.me == Some(t.producer))
            && self.kind.is_none()
            && self.producer.is_none_or(|p| t.producer == p)
            && self.petition.is_none_or(|p| p == *petition)
            && self.group.is_none_or(|g| t.group == Some(g))
    }
}

/// One SSE event: its name is the payload's `type`, its id a journal sequence number.
fn sse(id: Option<u64>, data: &ApiEvent) -> Sse {
    let kind = match data {
        ApiEvent::Record(_) => "record",
        ApiEvent::Tally(_) => "tally",
        ApiEvent::Threshold(_) => "threshold",
        ApiEvent::Funded(_) => "funded",
        ApiEvent::Ended(_) => "ended",
        ApiEvent::Rating(_) => "rating",
        ApiEvent::Response(_) => "response",
        ApiEvent::Ready(_) => "ready",
        ApiEvent::Lagged(_) => "lagged",
        ApiEvent::Error(_) => "error",
    };
    let json = serde_json::to_string(data).unwrap_or_default();
    let mut e = Sse::default().event(kind).data(json);
    if let Some(id) = id {
        e = e.id(id.to_string());
    }
    e
}

fn record_event(store: &crate::store::Store, seq: Option<u64>, rec: &SignedRecord) -> Sse {
    let data = ApiEvent::Record(RecordEvent {
        seq,
        record: record_json(store, rec),
    });
    sse(seq, &data)
}

/// A petition's tally as an event (with the trusted view when there is one), `wrap`
/// naming it, `seq` its journal place if it is a journaled milestone.
fn tally_event(
    state: &ApiState,
    petition: &RecordId,
    rec: Option<SignedRecord>,
    t: &PetitionTally,
    wrap: fn(TallyEvent) -> ApiEvent,
    seq: Option<u64>,
) -> Sse {
    let view = tally_with_trust(state, petition, rec.as_ref(), t)
        .unwrap_or_else(|_| tally(petition, rec.as_ref(), t));
    sse(seq, &wrap(TallyEvent { tally: view }))
}

/// What a milestone is called on the stream.
fn milestone_wrap(m: Milestone) -> fn(TallyEvent) -> ApiEvent {
    match m {
        Milestone::Threshold => ApiEvent::Threshold,
        Milestone::Funded => ApiEvent::Funded,
        Milestone::Ended => ApiEvent::Ended,
    }
}

/// The petition a record changes the tally of, if any.
fn petition_of(rec: &SignedRecord, store: &crate::store::Store) -> Option<RecordId> {
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
            f.record(&rec, store)
                .then(|| record_event(store, *seq, &rec))
        }
        Event::TallyChanged { petition, tally } => {
            if !f.petition_tally(petition, tally) {
                return None;
            }
            let rec = store.record(petition).ok().flatten();
            Some(tally_event(
                state,
                petition,
                rec,
                tally,
                ApiEvent::Tally,
                None,
            ))
        }
        Event::ThresholdCrossed {
            petition,
            tally,
            seq,
        }
        | Event::CampaignFunded {
            petition,
            tally,
            seq,
        }
        | Event::CampaignEnded {
            petition,
            tally,
            seq,
            ..
        } => {
            // Sent by the replay already.
            if seq.is_some_and(|s| s <= after) || !f.petition_tally(petition, tally) {
                return None;
            }
            let wrap = match e {
                Event::ThresholdCrossed { .. } => ApiEvent::Threshold,
                Event::CampaignFunded { .. } => ApiEvent::Funded,
                _ => ApiEvent::Ended,
            };
            let rec = store.record(petition).ok().flatten();
            Some(tally_event(state, petition, rec, tally, wrap, *seq))
        }
        Event::RatingChanged {
            producer,
            code,
            rating,
        } => {
            let ok = f.kind.is_none()
                && f.petition.is_none()
                && f.group.is_none()
                && f.producer.is_none_or(|p| p == *producer)
                && f.involved.as_ref().is_none_or(|i| {
                    i.me == Some(*producer) || i.products.contains(&(*producer, code.clone()))
                });
            ok.then(|| {
                sse(
                    None,
                    &ApiEvent::Rating(chorus_client::Rating {
                        producer: producer.to_string(),
                        product: code.clone(),
                        count: rating.count,
                        mean: rating.mean(),
                        histogram: rating.histogram,
                        // A review this node stored and counted travelled on the
                        // producer's topic; whether it follows that topic is the read's
                        // business (`GET /v1/rating`).
                        partial: false,
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
                && f.petition.is_none_or(|p| p == *target)
                && f.involved.as_ref().is_none_or(|i| {
                    i.me == Some(*producer)
                        || i.own.contains(target)
                        || i.petitions.contains(target)
                });
            ok.then(|| {
                sse(
                    None,
                    &ApiEvent::Response(ResponseEvent {
                        target: target.to_string(),
                        response: response.to_string(),
                        producer: producer.to_string(),
                        producer_name: store.name_of(producer).ok().flatten(),
                        status: status.clone(),
                    }),
                )
            })
        }
    }
}

/// Most records of a topic's history a first replay sends (the newest are kept).
const HISTORY_MAX: usize = 10_000;

/// Records of a topic read per step of a history replay.
const HISTORY_PAGE: usize = 512;

/// A watcher's first replay (`after=0&history=true`) of a stream about one topic: every
/// record stored on the topic that matches the filter (the newest [`HISTORY_MAX`]), oldest
/// first, without a sequence number; returns the petitions they touch. It takes the place
/// of the journal replay: the caller then continues after `last`, the journal's end read
/// before the topic, so a record is either in the history or arrives live after it. One
/// page at a time, and it stops when the reader is gone.
async fn history(
    s: &ApiState,
    f: &Filter,
    topic: Topic,
    tx: &mpsc::Sender<Sse>,
) -> Result<BTreeSet<RecordId>, crate::error::Error> {
    let page = |from: Option<(u64, RecordId)>| {
        let store = s.store.clone();
        async move {
            tokio::task::spawn_blocking(move || store.by_topic(&topic, from, HISTORY_PAGE))
                .await
                .map_err(|_| crate::error::Error::NodeStopped)?
        }
    };
    // First count what matches, to skip to the newest HISTORY_MAX.
    let mut matching = 0usize;
    let mut from = None;
    loop {
        let p = page(from).await?;
        matching += p.records.iter().filter(|r| f.record(r, &s.store)).count();
        match p.next {
            Some(n) if !tx.is_closed() => from = Some(n),
            _ => break,
        }
    }
    let mut skip = matching.saturating_sub(HISTORY_MAX);
    let mut touched = BTreeSet::new();
    let mut from = None;
    loop {
        let p = page(from).await?;
        for rec in p.records.iter().filter(|r| f.record(r, &s.store)) {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if let Some(pet) = petition_of(rec, &s.store) {
                touched.insert(pet);
            }
            if tx.send(record_event(&s.store, None, rec)).await.is_err() {
                return Ok(touched);
            }
        }
        match p.next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    Ok(touched)
}

/// Replays the journal after `after` (or, on a first replay with `history`, the topic's
/// history instead: [`history`]); returns the last sequence number sent.
async fn replay(
    s: &ApiState,
    f: &Filter,
    mut after: u64,
    topics: &[Topic],
    with_history: bool,
    tx: &mpsc::Sender<Sse>,
) -> Result<u64, crate::error::Error> {
    let mut touched = BTreeSet::new();
    if after == 0 && with_history && !topics.is_empty() {
        // Everything journaled so far is stored, so the history holds it.
        after = s.store.journal_last();
        for topic in topics {
            touched.extend(history(s, f, *topic, tx).await?);
            if tx.is_closed() {
                break;
            }
        }
    }
    loop {
        let store = s.store.clone();
        let from = after;
        let batch = tokio::task::spawn_blocking(move || store.journal_after(from, 1024))
            .await
            .map_err(|_| crate::error::Error::NodeStopped)??;
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        for (seq, entry) in batch {
            let id = match entry {
                Journaled::Record(id) => id,
                Journaled::Milestone(m, p) => {
                    let Some(t) = s.store.tally(&p)? else {
                        continue;
                    };
                    if !f.petition_tally(&p, &t) {
                        continue;
                    }
                    let rec = s.store.record(&p)?;
                    let event = tally_event(s, &p, rec, &t, milestone_wrap(m), Some(seq));
                    if tx.send(event).await.is_err() {
                        return Ok(last);
                    }
                    continue;
                }
            };
            let Some(rec) = s.store.record(&id)? else {
                continue;
            };
            if !f.record(&rec, &s.store) {
                continue;
            }
            if let Some(p) = petition_of(&rec, &s.store) {
                touched.insert(p);
            }
            if tx
                .send(record_event(&s.store, Some(seq), &rec))
                .await
                .is_err()
            {
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
                if tx
                    .send(tally_event(s, &p, rec, &t, ApiEvent::Tally, None))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    Ok(after)
}

/// Queues an event for the reader, waiting while its queue is full; false once the reader
/// is gone or the node stops.
async fn send(tx: &mpsc::Sender<Sse>, cancel: &CancellationToken, event: Sse) -> bool {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => false,
        sent = tx.send(event) => sent.is_ok(),
    }
}

pub(crate) async fn events(
    State(s): State<ApiState>,
    Extension(Authenticated(token)): Extension<Authenticated>,
    headers: HeaderMap,
    Q(q): Q<EventsQuery>,
) -> Result<SseResponse<impl Stream<Item = Result<Sse, Infallible>>>, ApiError> {
    if let Some(k) = &q.kind {
        k.parse::<chorus_protocol::Kind>()
            .map_err(|e| ApiError::bad("bad_kind", format!("kind {k:?}: {e}")))?;
    }
    // Held by the stream's task: the place is free again when the stream ends (taken before
    // anything costly is read for it).
    let permit = s.streams.open_one(&token)?;
    if q.mine && (q.producer.is_some() || q.petition.is_some() || q.group.is_some()) {
        return Err(ApiError::bad(
            "bad_request",
            "mine=true watches what you take part in: give no producer, petition or group with it",
        ));
    }
    let involved = if q.mine {
        let mine = super::mine::my_records(&s).await?;
        Some(Involved::of(s.author, &mine))
    } else {
        None
    };
    let f = Filter {
        involved,
        kind: q.kind.clone(),
        producer: match q.producer.as_deref() {
            Some(p) => Some(author_named(&s, "producer", p).await?),
            None => None,
        },
        petition: match q.petition.as_deref() {
            Some(p) => Some(record_named(&s, "petition", p, kinds::PETITION).await?),
            None => None,
        },
        group: q
            .group
            .as_deref()
            .map(|g| record_id(&s, "group", g))
            .transpose()?,
    };
    // Journal what this watch is about from now on, so the next watch can resume.
    let mut topic = None;
    if let Some(p) = f.producer {
        topic = Some(Topic::Producer(p));
    }
    if let Some(g) = f.group {
        topic = Some(Topic::Group(g));
    }
    if let Some(p) = f.petition {
        let rec = super::fetch::stored_or_fetched(&s, "petition", &p).await?;
        topic = Some(rec.record().topic);
    }
    let mut watched = Vec::new();
    let involved_topics = f.involved.iter().flat_map(|i| i.topics.iter().copied());
    for t in [
        f.producer.map(Topic::Producer),
        f.group.map(Topic::Group),
        topic.filter(|_| f.petition.is_some()),
    ]
    .into_iter()
    .flatten()
    .chain(involved_topics)
    {
        s.store.watch_topic(&t)?;
        watched.push(t);
    }
    // The topics named (one, or those the user takes part in): their history is replayed
    // to a first watcher.
    let topics = if f.involved.is_some() || watched.len() == 1 {
        watched
    } else {
        Vec::new()
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or(q.after);
    let follow = q.follow.unwrap_or(true);
    let history = q.history.unwrap_or(false);
    // Subscribe before replaying, so nothing falls between the two.
    let mut live = s.ingest.subscribe();
    let (tx, mut rx) = mpsc::channel::<Sse>(s.streams.queue);
    let state = s.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let mut last = state.store.journal_last();
        if let Some(after) = resume {
            match replay(&state, &f, after, &topics, history, &tx).await {
                Ok(l) => last = l.max(after),
                Err(e) => {
                    let error = ApiEvent::Error(ErrorEvent {
                        message: e.to_string(),
                    });
                    let _ = tx.send(sse(None, &error)).await;
                    return;
                }
            }
        }
        // Tell the client where the replay ended, so it can keep its cursor.
        let ready = ApiEvent::Ready(ReadyEvent { seq: last });
        if tx.send(sse(Some(last), &ready)).await.is_err() || !follow {
            return;
        }
        loop {
            let next = tokio::select! {
                biased;
                _ = state.cancel.cancelled() => return,
                // The reader is gone: give back the place and the subscription now.
                _ = tx.closed() => return,
                e = live.recv() => e,
            };
            let event = match next {
                Ok(e) => match live_event(&e, &f, &state, last) {
                    Some(event) => event,
                    None => continue,
                },
                // The reader (or this task) fell behind the pipeline's buffer.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    sse(None, &ApiEvent::Lagged(LaggedEvent { missed: n }))
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if !send(&tx, &state.cancel, event).await {
                return;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)));
    Ok(SseResponse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
