//! The profiles a node keeps. A node that follows everything keeps every profile; any other
//! node keeps those it uses ([`Following::keeps`]): of the producers it follows (its user's
//! among them), of the authors of the records it stores, and newer versions of those it
//! holds. Finding the others is search's work (`crate::directory`).
//!
//! This module notes the authors of stored records whose profiles the node lacks
//! ([`Following::want_profile`]) and, soon after, pulls from one connected peer: every pull
//! asks for up to `WANTED_PER_PULL` wanted profiles beside the followed topics (one key
//! range per author, PROTOCOL.md §13.2), and an author stays wanted until a profile of
//! theirs is held or `WANTED_ATTEMPTS` pulls found none.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::follow::Following;
use crate::net::Client;
use crate::store::Store;
use crate::sync::SyncHandle;
use crate::tally::Event;

/// How long after the first newly wanted profile the node pulls: records arrive in bursts,
/// and one pull then asks for the whole burst's authors.
pub const GATHER: Duration = Duration::from_secs(2);

/// Notes the authors whose profiles the node lacks as their records are stored, and pulls
/// from a connected peer once some are wanted. Runs until `cancel`.
pub(crate) async fn fetch_wanted(
    store: Store,
    mut events: broadcast::Receiver<Event>,
    following: Following,
    sync: SyncHandle,
    client: Client,
    cancel: CancellationToken,
) {
    loop {
        let noted = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.recv() => match ev {
                Ok(Event::RecordStored { author, kind, .. }) => {
                    kind != "profile" && note(&store, &following, author)
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => false,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if !noted {
            continue;
        }
        // Gather the burst, then ask one peer; more wanted later starts another round.
        let until = tokio::time::Instant::now() + GATHER;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(until) => break,
                ev = events.recv() => match ev {
                    Ok(Event::RecordStored { author, kind, .. }) if kind != "profile" => {
                        note(&store, &following, author);
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
        let Ok(peers) = client.peers().await else {
            continue;
        };
        let idle: Vec<_> = peers
            .connected
            .into_iter()
            .filter(|p| !peers.banned.contains(p))
            .collect();
        if idle.is_empty() {
            // The next pull, when a peer connects, asks for them.
            continue;
        }
        let peer = idle[rand::random_range(0..idle.len())];
        match sync.sync_now(Some(peer)).await {
            Ok(reports) => {
                for r in reports {
                    debug!(peer = %r.peer, stored = r.stored, "pulled wanted profiles");
                }
            }
            Err(_) => return,
        }
    }
}

/// Wants `author`'s profile if the node keeps only profiles it uses and has none of theirs.
fn note(store: &Store, following: &Following, author: chorus_protocol::AuthorKey) -> bool {
    if following.follows_all() || store.has_profile(&author).unwrap_or(true) {
        return false;
    }
    following.want_profile(author)
}
