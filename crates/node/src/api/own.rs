//! The ids of the records this node's user signed ([`Mine`]): read once from the store,
//! then kept up to date from the ingest's events (`GET /v1/mine` and the dashboard's home
//! page read them).

use std::collections::BTreeSet;

use chorus_protocol::{AuthorKey, SignedRecord, Topic};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use crate::follow::Following;
use crate::ingest::Ingest;
use crate::store::Store;

/// What [`Mine`] reads: the store, the ingest's events, what the node follows.
#[derive(Clone)]
pub(crate) struct Sources {
    pub(crate) store: Store,
    pub(crate) ingest: Ingest,
    pub(crate) following: Following,
    pub(crate) author: AuthorKey,
    pub(crate) cancel: CancellationToken,
}

/// Records read per page of a topic.
const PAGE: usize = 1024;

/// The ids of the records this node's user signed, kept up to date from the ingest's
/// events after one read of the topics that can hold them ([`scan`]): the dashboard's home
/// page and `GET /v1/mine` then cost the user's records, not the store's (an archive holds
/// millions). Kept in memory only: a user's records are few, and the read is redone at
/// each start.
pub(crate) struct Mine {
    ids: std::sync::Mutex<Option<BTreeSet<chorus_protocol::RecordId>>>,
    ready: tokio::sync::Notify,
    /// [`Mine::keep`] runs.
    started: std::sync::atomic::AtomicBool,
}

impl Mine {
    /// An empty list, not read yet: `my_records` starts [`Mine::keep`] when first asked.
    pub(crate) fn new() -> Mine {
        Mine {
            ids: std::sync::Mutex::new(None),
            ready: tokio::sync::Notify::new(),
            started: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the caller is the first to ask (and must start [`Mine::keep`]).
    pub(crate) fn start(&self) -> bool {
        !self.started.swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// The ids, once read (waiting for the first read, at most a minute).
    pub(crate) async fn ids(&self) -> Result<Vec<chorus_protocol::RecordId>, ApiError> {
        let wait = async {
            loop {
                // Registered before looking, so a read that ends in between still wakes us.
                let notified = self.ready.notified();
                if let Some(ids) = self.ids.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    return ids.iter().copied().collect::<Vec<_>>();
                }
                notified.await;
            }
        };
        // A request does not wait for ever on a read that cannot end.
        tokio::time::timeout(FIRST_READ_WAIT, wait)
            .await
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the node is still reading which records are yours; try again in a moment",
                )
            })
    }

    fn set(&self, ids: BTreeSet<chorus_protocol::RecordId>) {
        *self.ids.lock().unwrap_or_else(|e| e.into_inner()) = Some(ids);
        self.ready.notify_waiters();
    }

    /// Adds one of the user's records.
    pub(crate) fn add(&self, id: chorus_protocol::RecordId) {
        if let Some(ids) = self.ids.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            ids.insert(id);
        }
    }

    /// Reads the store once, then adds the user's records as they are stored, until the
    /// node stops. Events are listened to before the read, so none is missed; if the
    /// listener falls behind, the store is read again.
    pub(crate) async fn keep(self: std::sync::Arc<Self>, s: Sources) {
        let mut last_read: Option<tokio::time::Instant> = None;
        loop {
            // A node that keeps falling behind (a long catch-up) reads at most once a
            // minute.
            if let Some(at) = last_read {
                tokio::select! {
                    _ = s.cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(at + REREAD_EVERY) => {}
                }
            }
            last_read = Some(tokio::time::Instant::now());
            let mut events = s.ingest.subscribe();
            let mut pending = Vec::new();
            let mut lagged = false;
            let read = tokio::spawn(scan(s.clone()));
            tokio::pin!(read);
            let ids = loop {
                tokio::select! {
                    biased;
                    _ = s.cancel.cancelled() => return,
                    done = &mut read => break done,
                    e = events.recv() => match e {
                        Ok(crate::tally::Event::RecordStored { id, author, .. }) if author == s.author => {
                            pending.push(id)
                        }
                        Ok(_) => {}
                        // A record of the user's may have been stored behind the read: read
                        // again once this one is in.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => lagged = true,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            };
            let Ok(Ok(mut ids)) = ids else {
                tracing::warn!("reading the user's records failed; trying again");
                continue;
            };
            ids.extend(pending);
            self.set(ids);
            if lagged {
                continue;
            }
            loop {
                tokio::select! {
                    biased;
                    _ = s.cancel.cancelled() => return,
                    e = events.recv() => match e {
                        Ok(crate::tally::Event::RecordStored { id, author, .. }) if author == s.author => {
                            self.add(id)
                        }
                        Ok(_) => {}
                        // Some events were missed: read the store again.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        }
    }
}

/// The longest a request waits for the first read of the user's records.
const FIRST_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// The least time between two reads of the user's records (after a failure or a lag).
const REREAD_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The ids of the user's records in the store: the topics they can be on (PROTOCOL §6: the
/// meta topic, the followed producers' and groups' topics, the user's own feedback topic,
/// the user's profiles), or the whole store on a node that follows everything.
async fn scan(s: Sources) -> Result<BTreeSet<chorus_protocol::RecordId>, ApiError> {
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
    let mine = tokio::task::spawn_blocking(
        move || -> crate::error::Result<BTreeSet<chorus_protocol::RecordId>> {
            let mut out = BTreeSet::new();
            if all {
                // A node that follows everything reads its whole store.
                for entry in store.all_entries() {
                    let (_, wire) = entry?;
                    // A record that does not decode is the audit's business, not this list's.
                    let Ok(rec) = SignedRecord::from_vec(wire) else {
                        continue;
                    };
                    if rec.author() == me {
                        out.insert(rec.id());
                    }
                }
                return Ok(out);
            }
            // Profiles lie apart from `meta` (PROTOCOL.md §13.2), each author's together.
            out.extend(store.profiles_by(&me)?.iter().map(SignedRecord::id));
            for topic in scan {
                let mut after = None;
                loop {
                    let page = store.by_topic(&topic, after, PAGE)?;
                    out.extend(
                        page.records
                            .iter()
                            .filter(|r| r.author() == me)
                            .map(SignedRecord::id),
                    );
                    match page.next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
            }
            Ok(out)
        },
    )
    .await
    .map_err(|_| crate::error::Error::NodeStopped)??;
    Ok(mine)
}
