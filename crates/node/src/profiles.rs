//! The profiles a node keeps. A node that follows everything keeps every profile; any other
//! node keeps those it uses ([`Following::keeps`]): of the producers it follows (its user's
//! among them), of the authors of the records it stores, and newer versions of those it
//! holds. Finding the others is search's work (`crate::directory`).
//!
//! This module notes the authors of stored records whose profiles the node lacks
//! ([`Following::want_profile`]): as their records are stored, and by a sweep of the
//! followed topics when the node starts or falls behind the ingest's events. Every pull
//! asks for up to `WANTED_PER_PULL` wanted profiles beside the followed topics (one key
//! range per author, PROTOCOL.md §13.2); an author stays wanted until a profile of theirs is
//! held or for `WANTED_FOR`. Soon after new authors are wanted, and then at most every
//! [`BETWEEN`], this module pulls from one connected peer that speaks sync 2, one known to
//! keep everything first.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::directory::Directory;
use crate::follow::Following;
use crate::net::Client;
use crate::store::Store;
use crate::sync::SyncHandle;
use crate::tally::Event;

/// How long after the first newly wanted profile the node pulls: records arrive in bursts,
/// and one pull then asks for the whole burst's authors.
pub const GATHER: Duration = Duration::from_secs(2);
/// The least time between two pulls this module starts (anyone can make new authors
/// appear; the scheduled pulls ask for wanted profiles too).
pub const BETWEEN: Duration = Duration::from_secs(30);
/// Records a sweep reads at most (newest topics' records first do not matter: any author
/// lacking a profile is noted).
pub const SWEEP: usize = 20_000;

/// Notes the authors whose profiles the node lacks and pulls from a connected peer once
/// some are wanted. Runs until `cancel`.
pub(crate) async fn fetch_wanted(
    store: Store,
    mut events: broadcast::Receiver<Event>,
    following: Following,
    sync: SyncHandle,
    client: Client,
    directory: Directory,
    cancel: CancellationToken,
) {
    let mut sweep = true;
    // When the next pull may start, and whether one is due.
    let mut next = tokio::time::Instant::now();
    let mut due = false;
    let mut pulling: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        if sweep {
            sweep = false;
            let (s, f) = (store.clone(), following.clone());
            let noted = tokio::task::spawn_blocking(move || swept(&s, &f))
                .await
                .unwrap_or(0);
            if noted > 0 {
                debug!(noted, "profiles wanted after a sweep");
                due = true;
                next = next.max(tokio::time::Instant::now() + GATHER);
            }
        }
        let wake = if due {
            next
        } else {
            tokio::time::Instant::now() + Duration::from_secs(3600)
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.recv() => match ev {
                Ok(Event::RecordStored { author, kind, .. }) => {
                    if kind != "profile" && note(&store, &following, author) && !due {
                        due = true;
                        next = next.max(tokio::time::Instant::now() + GATHER);
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => sweep = true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(wake) => {
                if pulling.as_ref().is_some_and(|p| !p.is_finished()) {
                    // The last pull still runs: look again in a moment.
                    next = tokio::time::Instant::now() + GATHER;
                    continue;
                }
                due = false;
                next = tokio::time::Instant::now() + BETWEEN;
                if following.wanted_count() > 0 {
                    pulling = start_pull(&client, &directory, &sync).await;
                }
            }
        }
    }
}

/// Starts a pull from one connected peer that speaks sync 2 (an archive first); `None` if
/// there is none (the next pull, when a peer connects, asks for the wanted profiles).
async fn start_pull(
    client: &Client,
    directory: &Directory,
    sync: &SyncHandle,
) -> Option<tokio::task::JoinHandle<()>> {
    let peers = client.peers().await.ok()?;
    let mut candidates: Vec<_> = peers
        .searchable
        .into_iter()
        .filter(|p| !peers.banned.contains(p))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let archives: Vec<_> = candidates
        .iter()
        .copied()
        .filter(|p| directory.is_archive(p))
        .collect();
    if !archives.is_empty() {
        candidates = archives;
    }
    let peer = candidates[rand::random_range(0..candidates.len())];
    let sync = sync.clone();
    Some(tokio::spawn(async move {
        if let Ok(reports) = sync.sync_now(Some(peer)).await {
            for r in reports {
                debug!(peer = %r.peer, stored = r.stored, "pulled, wanted profiles asked for");
            }
        }
    }))
}

/// Wants `author`'s profile if the node keeps only profiles it uses and has none of theirs.
fn note(store: &Store, following: &Following, author: chorus_protocol::AuthorKey) -> bool {
    if following.follows_all() || store.has_profile(&author).unwrap_or(true) {
        return false;
    }
    following.want_profile(author)
}

/// Reads up to [`SWEEP`] records of the followed topics and wants the profiles their
/// authors lack; returns how many it noted.
fn swept(store: &Store, following: &Following) -> usize {
    if following.follows_all() {
        return 0;
    }
    let follow = following.snapshot();
    let mut topics: Vec<chorus_protocol::Topic> = vec![chorus_protocol::Topic::Meta];
    topics.extend(
        follow
            .producers
            .iter()
            .chain(follow.products.iter().map(|(p, _)| p))
            .map(|k| chorus_protocol::Topic::Producer(*k)),
    );
    topics.extend(
        follow
            .groups
            .iter()
            .map(|g| chorus_protocol::Topic::Group(*g)),
    );
    let (mut read, mut noted) = (0, 0);
    for t in topics {
        let mut after = None;
        while read < SWEEP {
            let Ok(page) = store.by_topic(&t, after, 500) else {
                break;
            };
            read += page.records.len();
            for r in &page.records {
                noted += usize::from(note(store, following, r.author()));
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    noted
}
