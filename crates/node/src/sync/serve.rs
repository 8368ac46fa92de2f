//! How this node answers pulls. The network admits each inbound sync request against its
//! peer's rate, open streams and memory allowance before reading it (`net::inbound`, limits
//! in [`limits`]); here the requests read are answered from the store off the async threads,
//! at most [`MAX_SERVING`] at once, taking turns between peers so that a peer with many
//! requests waiting delays another's by one answer each, not by all of them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chorus_protocol::sync::wire::{Hit, Request, Response, Scope, MAX_HITS, MAX_RESPONSE};
use chorus_protocol::sync::{reconcile, Params, StepError};
use chorus_protocol::RecordId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::counters::Counters;
use crate::net::{Client, InboundLimits, InboundRequest, PeerId};
use crate::store::Store;

/// Answers computed at once. Each holds a decoded request, the records it reads and its
/// encoded answer (about 10 MB for the largest fetch) on a blocking thread; two keep both
/// cores of a small machine busy, and each one more would add its 10 MB to the peak a hostile
/// flood can cause (`benches/sync_hostile.rs`).
pub(crate) const MAX_SERVING: usize = 2;

/// What peers may ask of this node at once, over sync (enforced by the network before a
/// request is read):
/// - 8 open streams per peer (a pull has up to five requests in flight), 256 in all;
/// - 100 requests per second per peer, in bursts of 1,000;
/// - 6.5 MiB of requests and answers in memory per peer (a largest answer, 5 MiB, and a
///   largest request, 1 MiB, with room to spare), 64 MiB in all: room for nine peers at
///   their most, so eight hostile peers cannot crowd out a ninth. What the answers being
///   computed hold comes on top, bounded by [`MAX_SERVING`].
pub(crate) fn limits() -> InboundLimits {
    InboundLimits {
        peer_streams: 8,
        total_streams: 256,
        peer_rate: 100,
        peer_bytes: 6 * 1024 * 1024 + 512 * 1024,
        total_bytes: 64 * 1024 * 1024,
    }
}

/// Answers one sync request (blocking: reads the store); `everything`: this node keeps every
/// topic (for a search's answer). Returns the encoded response and whether the request was
/// malformed (the requester is then penalised).
pub(crate) fn answer(
    store: &Store,
    request: &[u8],
    params: &Params,
    everything: bool,
) -> (Vec<u8>, bool) {
    match Request::decode(request) {
        Err(e) => (Response::error("malformed", e.to_string()).encode(), true),
        Ok(Request::Reconcile(_)) if !store.sync_ready() => (not_ready(), false),
        Ok(Request::Reconcile(parts)) => {
            let view = store.sync_view();
            match reconcile::serve(&view, &parts, params) {
                Ok(out) => (Response::Reconcile(out).encode(), false),
                Err(StepError::Malformed(m)) => {
                    (Response::error("malformed", m.to_string()).encode(), true)
                }
                Err(StepError::Index(e)) => {
                    (Response::error("internal", e.to_string()).encode(), false)
                }
            }
        }
        Ok(Request::Fetch(ids)) => {
            let mut wires = Vec::new();
            let mut size = 0usize;
            for id in ids {
                if let Ok(Some(w)) = store.wire(&RecordId(id)) {
                    size += w.len() + 4;
                    if size > MAX_RESPONSE - 256 * 1024 {
                        break;
                    }
                    wires.push(w);
                }
            }
            (Response::Records(wires).encode(), false)
        }
        Ok(Request::Search {
            query,
            kinds,
            limit,
        }) => match store.search(&query, kinds, usize::from(limit)) {
            Ok(found) => {
                let mut hits = Vec::new();
                let mut size = 0usize;
                // The producers the hits concern, to name them.
                let mut named = Vec::new();
                for f in found {
                    size += f.record.wire().len() + 16;
                    if size > MAX_RESPONSE - 256 * 1024 {
                        break;
                    }
                    if let Some(p) = crate::store::search::concerns(&f.record) {
                        if !named.contains(&p) {
                            named.push(p);
                        }
                    }
                    hits.push(Hit {
                        kind: f.kind,
                        wire: f.record.wire().to_vec(),
                        count: f.count,
                    });
                }
                let scope = if everything {
                    Scope::Everything
                } else {
                    Scope::Followed
                };
                // The profiles of the producers the hits concern, so the asker can name
                // them (it may keep none of them).
                let mut profiles = Vec::new();
                for p in named.iter().take(MAX_HITS) {
                    if let Ok(Some(profile)) = store.profile(p) {
                        size += profile.wire().len() + 8;
                        if size > MAX_RESPONSE - 256 * 1024 {
                            break;
                        }
                        profiles.push(profile.wire().to_vec());
                    }
                }
                (
                    Response::Found {
                        scope,
                        hits,
                        profiles,
                    }
                    .encode(),
                    false,
                )
            }
            Err(e) => (Response::error("internal", e.to_string()).encode(), false),
        },
    }
}

/// The `not_ready` answer to a reconciliation while the sync index is rebuilt after a start
/// without its snapshot: the asker tries another peer or later, unpenalised. (Fetches are
/// answered meanwhile: they read the records themselves.)
pub(crate) fn not_ready() -> Vec<u8> {
    Response::error(
        "not_ready",
        "rebuilding the sync index after a restart; retry later",
    )
    .encode()
}

/// The `busy` answer: the asker retries later, unpenalised.
pub(crate) fn busy() -> Vec<u8> {
    Response::error("busy", "too many pulls; retry later").encode()
}

/// Requests waiting for an answerer, taken in turns: the next from each peer in order.
#[derive(Default)]
struct Turns {
    waiting: HashMap<PeerId, VecDeque<InboundRequest>>,
    order: VecDeque<PeerId>,
}

impl Turns {
    fn push(&mut self, r: InboundRequest) {
        let queue = self.waiting.entry(r.peer).or_default();
        if queue.is_empty() {
            self.order.push_back(r.peer);
        }
        queue.push_back(r);
    }

    fn pop(&mut self) -> Option<InboundRequest> {
        let peer = self.order.pop_front()?;
        let queue = self.waiting.get_mut(&peer)?;
        let r = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(&peer);
        } else {
            self.order.push_back(peer);
        }
        r
    }
}

async fn answer_one(
    req: InboundRequest,
    store: Store,
    params: Params,
    client: Client,
    everything: bool,
    counters: Arc<Counters>,
) {
    let InboundRequest {
        peer,
        request,
        reply,
    } = req;
    let answered =
        tokio::task::spawn_blocking(move || answer(&store, &request, &params, everything)).await;
    let (response, malformed) =
        answered.unwrap_or_else(|_| (Response::error("internal", "").encode(), false));
    client.respond(reply, response).await;
    counters.served();
    if malformed {
        client.penalise(peer, 1).await;
    }
}

/// Answers every inbound sync request until `cancel` fires or the network stops;
/// `everything` says whether this node keeps every topic now (a search's answer says so);
/// each answer is counted in `counters`.
pub(crate) async fn run(
    mut requests: mpsc::Receiver<InboundRequest>,
    store: Store,
    params: Params,
    client: Client,
    everything: impl Fn() -> bool + Send,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    // Bounded by what the network admits: open streams per peer and in all.
    let mut turns = Turns::default();
    let mut serving: JoinSet<()> = JoinSet::new();
    loop {
        while serving.len() < MAX_SERVING {
            let Some(req) = turns.pop() else {
                break;
            };
            // The asker gave up waiting (timeout, reset, gone): nobody would read it.
            if req.reply.is_closed() {
                continue;
            }
            let everything = everything();
            serving.spawn(answer_one(
                req,
                store.clone(),
                params,
                client.clone(),
                everything,
                counters.clone(),
            ));
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            Some(done) = serving.join_next(), if !serving.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        warn!(error = %e, "answering a sync request panicked");
                    }
                }
            }
            r = requests.recv() => match r {
                Some(r) => turns.push(r),
                None => return,
            },
        }
    }
}
