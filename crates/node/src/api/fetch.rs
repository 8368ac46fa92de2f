//! Acting on what the node does not follow: a record named by its whole id that this node
//! lacks (a petition a friend sent, say) is asked of the connected peers with the catch-up
//! protocol's fetch (PROTOCOL.md §13.3), checked and stored by the ingest like any record a
//! peer sends, and its topic followed and caught up on, so the action the user asked for
//! goes on instead of failing.

use chorus_protocol::sync::wire::{Request, Response};
use chorus_protocol::{cbor, RecordId, SignedRecord};

use super::error::ApiError;
use super::follow::follow_what_i_join;
use super::state::ApiState;
use crate::ingest::Outcome;
use crate::waiting::Source;

/// Peers asked for a record this node lacks, at most (one at a time).
const ASK: usize = 3;

/// How long one peer may take to answer.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The record with this id: from the store, or else fetched from the connected peers and
/// stored (its topic then followed); 404 naming `what` if no peer has it either.
pub(crate) async fn stored_or_fetched(
    s: &ApiState,
    what: &str,
    id: &RecordId,
) -> Result<SignedRecord, ApiError> {
    if let Some(rec) = s.store.record(id)? {
        return Ok(rec);
    }
    // A record a search just found comes from the peer that sent it, without a fetch.
    let found = s.directory.recently_found(id);
    let peers = s.client.peers().await?.connected;
    let request = Request::Fetch(vec![*id.as_bytes()]).encode();
    let asked = peers.into_iter().take(ASK).map(|p| (p, None));
    for (peer, wire) in found.map(|(p, w)| (p, Some(w))).into_iter().chain(asked) {
        let wire = match wire {
            Some(w) => w,
            None => match fetch_one(s, peer, &request, id).await {
                Some(w) => w,
                None => continue,
            },
        };
        let outcome = s
            .ingest
            .ingest_from(vec![wire], Source::Peer(peer.to_bytes()))
            .await?
            .pop();
        match outcome {
            Some(Outcome::Stored(_) | Outcome::Duplicate(_)) => {
                if let Some(rec) = s.store.record(id)? {
                    follow_what_i_join(s, &rec.record().topic).await?;
                    return Ok(rec);
                }
            }
            // Kept until what it points at arrives: a peer had it, so say so.
            Some(Outcome::Waiting(_)) => {
                return Err(ApiError::not_found(format!(
                    "{what} {id} was fetched from a peer and waits for the record it points \
                     at; follow that record's producer or group, then try again"
                )))
            }
            _ => {}
        }
    }
    Err(ApiError::not_found(format!(
        "no {what} {id} in this node's store, and no connected peer has it"
    )))
}

/// The record `id` fetched from `peer`, if it sends it within [`WAIT`].
async fn fetch_one(
    s: &ApiState,
    peer: crate::net::PeerId,
    request: &[u8],
    id: &RecordId,
) -> Option<Vec<u8>> {
    let raw = tokio::time::timeout(WAIT, s.client.request(peer, request.to_vec()))
        .await
        .ok()?
        .ok()?;
    let Ok(Response::Records(wires)) = Response::decode(&raw) else {
        return None;
    };
    // Only the record asked for; anything else the peer sent is ignored.
    wires
        .into_iter()
        .find(|w| cbor::split_wire(w).is_ok_and(|(range, _)| RecordId::of(&w[range]) == *id))
}
