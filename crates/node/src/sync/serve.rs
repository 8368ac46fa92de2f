//! How this node answers pulls: each inbound sync request is checked against the asker's
//! rate and the answers running at once (over either: a `busy` answer, which the asker
//! retries), then answered from the store off the async threads.

use std::sync::Arc;

use chorus_protocol::sync::wire::{Request, Response, MAX_RESPONSE};
use chorus_protocol::sync::{reconcile, Params, StepError};
use chorus_protocol::RecordId;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::net::{Client, InboundRequest, PeerId};
use crate::rate::Buckets;
use crate::store::Store;

/// Pulls answered at once; more get a `busy` answer.
const MAX_SERVING: usize = 8;
/// Sync requests one peer may make per second (bursts of ten times that); more get `busy`.
const SYNC_REQUEST_RATE: u32 = 100;
/// Peers remembered by the rate limit at once.
const MAX_RATED_PEERS: usize = 10_000;

/// Answers one sync request (blocking: reads the store). Returns the encoded response and
/// whether the request was malformed (the requester is then penalised).
pub(crate) fn answer(store: &Store, request: &[u8], params: &Params) -> (Vec<u8>, bool) {
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

/// Answers every inbound sync request until `cancel` fires or the network stops.
pub(crate) async fn run(
    mut requests: mpsc::Receiver<InboundRequest>,
    store: Store,
    params: Params,
    client: Client,
    cancel: CancellationToken,
) {
    let serving = Arc::new(Semaphore::new(MAX_SERVING));
    let mut rates: Buckets<PeerId> = Buckets::new(SYNC_REQUEST_RATE, MAX_RATED_PEERS);
    loop {
        let req = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            r = requests.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let allowed = rates.take(req.peer);
        let permit = serving.clone().try_acquire_owned();
        let (true, Ok(permit)) = (allowed, permit) else {
            client.respond(req.reply, busy()).await;
            continue;
        };
        let store = store.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let InboundRequest {
                peer,
                request,
                reply,
            } = req;
            let answered =
                tokio::task::spawn_blocking(move || answer(&store, &request, &params)).await;
            drop(permit);
            let (response, malformed) =
                answered.unwrap_or_else(|_| (Response::error("internal", "").encode(), false));
            client.respond(reply, response).await;
            if malformed {
                client.penalise(peer, 1).await;
            }
        });
    }
}
