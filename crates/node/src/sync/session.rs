//! One pull from one peer: what this node lacks on the topics it follows, reconciled, fetched
//! and ingested.
//!
//! A pull reconciles the followed topics' key ranges with the peer (`chorus_protocol::sync::reconcile`),
//! fetches the records it lacks in batches of `fetch_batch` ids (up to
//! [`FETCH_CONCURRENCY`] fetches in flight, started as soon as a batch of needs is known, so
//! fetching overlaps reconciling), and hands them to the same ingest pipeline as gossip.
//! Everything is bounded: [`MAX_ROUNDS`] round trips, message sizes (see `chorus_protocol::sync::wire`),
//! a timeout per request and per pull. A peer that answers with malformed messages, forged or
//! unrequested records, or records it claimed and cannot deliver is penalised like a peer
//! that gossips invalid records.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use chorus_protocol::sync::wire::{self, Request, Response, MAX_FETCH};
use chorus_protocol::sync::{reconcile, Bound, Id, Params, Scope, StepError};
use chorus_protocol::{AuthorKey, SignedRecord};
use tokio::task::JoinSet;
use tracing::debug;

pub use chorus_client::SyncReport;

use crate::config::SyncConfig;
use crate::error::{Error, Result};
use crate::follow::{Follow, Following};
use crate::ingest::{Ingest, Outcome};
use crate::net::{Client, PeerId};
use crate::store::Store;

/// Most reconciliation round trips in one pull.
pub const MAX_ROUNDS: u32 = 48;
/// Fetch requests in flight at once in one pull.
pub const FETCH_CONCURRENCY: usize = 4;

/// What a pull needs from the node.
#[derive(Clone)]
pub(crate) struct SyncContext {
    pub(crate) store: Store,
    pub(crate) ingest: Ingest,
    pub(crate) following: Following,
    pub(crate) config: SyncConfig,
    pub(crate) params: Params,
}

/// Wanted profiles one pull asks for, at most (a key range each).
pub const WANTED_PER_PULL: usize = 256;

/// The key ranges of what the node keeps: everything, or one per followed topic (`meta`'s
/// groups and attestations among them), the profiles of the followed producers, and those
/// of the `wanted` authors.
pub(crate) fn scope_of(follow: &Follow, wanted: &[AuthorKey]) -> Scope {
    use chorus_protocol::sync::{profiles_range, topic_range};
    if follow.all {
        return vec![(Vec::new(), Bound::End)];
    }
    let producers: Vec<&AuthorKey> = follow
        .producers
        .iter()
        .chain(follow.products.iter().map(|(p, _)| p))
        .collect();
    let mut scope: Scope = vec![topic_range(&chorus_protocol::Topic::Meta)];
    for p in &producers {
        scope.push(topic_range(&chorus_protocol::Topic::Producer(**p)));
        scope.push(profiles_range(p));
    }
    scope.extend(
        follow
            .groups
            .iter()
            .map(|g| topic_range(&chorus_protocol::Topic::Group(*g))),
    );
    scope.extend(wanted.iter().map(profiles_range));
    scope.sort_by(|a, b| a.0.cmp(&b.0));
    scope.dedup();
    scope
}

async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> T + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|_| Error::NodeStopped)
}

/// Sends a request; a `busy` answer is retried a few times, backing off. Returns the raw
/// answer's size and the decoded answer (or the decoding error).
async fn ask(
    client: &Client,
    peer: PeerId,
    request: Vec<u8>,
) -> Result<(usize, std::result::Result<Response, wire::DecodeError>)> {
    let mut wait = std::time::Duration::from_millis(100);
    let mut received = 0;
    for attempt in 0..5 {
        let raw = client.request(peer, request.clone()).await?;
        received += raw.len();
        let answer = Response::decode(&raw);
        match &answer {
            Ok(Response::Error { code, .. }) if code == "busy" && attempt < 4 => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            _ => return Ok((received, answer)),
        }
    }
    Err(Error::Network("peer stayed busy".into()))
}

/// Counts of one fetch.
#[derive(Default)]
struct Fetched {
    bytes_sent: u64,
    bytes_received: u64,
    record_bytes: u64,
    fetched: u64,
    stored: u64,
    duplicates: u64,
    refused: u64,
    invalid: u64,
    missing: u64,
    error: Option<String>,
}

async fn fetch(
    ctx: SyncContext,
    client: Client,
    peer: PeerId,
    ids: Vec<Id>,
    wanted_profiles: Arc<[AuthorKey]>,
) -> Fetched {
    let mut f = Fetched::default();
    let req = Request::Fetch(ids.clone()).encode();
    f.bytes_sent = req.len() as u64;
    let answer = match ask(&client, peer, req).await {
        Ok((size, answer)) => {
            f.bytes_received = size as u64;
            answer
        }
        Err(e) => {
            f.error = Some(e.to_string());
            return f;
        }
    };
    let wires = match answer {
        Ok(Response::Records(w)) => w,
        Ok(Response::Error { code, message }) => {
            f.error = Some(format!("peer refused a fetch: {code}: {message}"));
            return f;
        }
        Ok(_) | Err(_) => {
            f.invalid += 1;
            f.error = Some("malformed fetch answer".into());
            return f;
        }
    };
    let mut wanted: HashSet<Id> = ids.into_iter().collect();
    let mut good = Vec::with_capacity(wires.len());
    for w in wires {
        f.fetched += 1;
        f.record_bytes += w.len() as u64;
        let Ok(rec) = SignedRecord::from_bytes(&w) else {
            f.invalid += 1;
            continue;
        };
        // Only what was asked for, once, and what this node keeps.
        if !wanted.remove(rec.id().as_bytes()) {
            f.invalid += 1;
            continue;
        }
        if !ctx.following.keeps(rec.record(), &ctx.store) {
            // A profile this pull asked for may stop being wanted while the fetch runs
            // (another pull found none): not the peer's fault. Anything else is.
            if rec.record().kind() == chorus_protocol::Kind::Profile
                && wanted_profiles.contains(&rec.author())
            {
                f.refused += 1;
            } else {
                f.invalid += 1;
            }
            continue;
        }
        good.push(w);
    }
    f.missing = wanted.len() as u64;
    if good.is_empty() {
        return f;
    }
    let source = crate::waiting::Source::Peer(peer.to_bytes());
    match ctx.ingest.ingest_from(good, source).await {
        Ok(outcomes) => {
            for o in outcomes {
                match o {
                    Outcome::Stored(_) | Outcome::Waiting(_) => f.stored += 1,
                    Outcome::Duplicate(_) => f.duplicates += 1,
                    Outcome::Rejected(r) if r.sender_at_fault() => f.invalid += 1,
                    Outcome::Rejected(_) => f.refused += 1,
                }
            }
        }
        Err(e) => f.error = Some(e.to_string()),
    }
    f
}

fn add(report: &mut SyncReport, f: Fetched) {
    report.fetches += 1;
    report.bytes_sent += f.bytes_sent;
    report.bytes_received += f.bytes_received;
    report.record_bytes += f.record_bytes;
    report.fetched += f.fetched;
    report.stored += f.stored;
    report.duplicates += f.duplicates;
    report.refused += f.refused;
    report.invalid += f.invalid;
    report.missing += f.missing;
    if report.error.is_none() {
        report.error = f.error;
    }
}

/// Pulls from `peer` what this node lacks on the topics it follows.
pub(crate) async fn pull(ctx: SyncContext, client: Client, peer: PeerId) -> SyncReport {
    let start = Instant::now();
    let mut report = SyncReport {
        peer: peer.to_string(),
        ..SyncReport::default()
    };
    let mut fetches: JoinSet<Fetched> = JoinSet::new();
    let limit = ctx.config.session_timeout;
    let wanted: Arc<[AuthorKey]> = ctx.following.wanted(WANTED_PER_PULL).into();
    let outcome = tokio::time::timeout(
        limit,
        reconcile_with(&ctx, &client, peer, &wanted, &mut report, &mut fetches),
    )
    .await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.error = Some(e.to_string()),
        Err(_) => report.error = Some(format!("pull took longer than {limit:?}")),
    }
    // Fetches already started finish (each bounded by the request timeout).
    while let Some(done) = fetches.join_next().await {
        if let Ok(f) = done {
            add(&mut report, f);
        }
    }
    report.millis = start.elapsed().as_millis() as u64;
    if report.error.is_none() {
        ctx.following.asked_for(&wanted, &ctx.store);
    }
    let faults = report.invalid + u64::from(report.missing > 0);
    if faults > 0 {
        client
            .penalise(peer, faults.min(u64::from(u32::MAX)) as u32)
            .await;
    }
    debug!(?report, "pull finished");
    report
}

async fn reconcile_with(
    ctx: &SyncContext,
    client: &Client,
    peer: PeerId,
    wanted: &Arc<[AuthorKey]>,
    report: &mut SyncReport,
    fetches: &mut JoinSet<Fetched>,
) -> Result<()> {
    if !ctx.store.sync_ready() {
        // Fingerprints of a half-built index would make the peer send what is already here.
        return Err(Error::Network(
            "this node is still rebuilding its sync index; it pulls again at the next repair or scheduled pull after that".into(),
        ));
    }
    let scope = scope_of(&ctx.following.snapshot(), wanted);
    let mut msg = blocking(&ctx.store, move |s| reconcile::open(&s.sync_view(), &scope)).await??;
    let batch = ctx.config.fetch_batch.clamp(1, MAX_FETCH);
    let mut asked: HashSet<Id> = HashSet::new();
    let mut need: Vec<Id> = Vec::new();
    while !msg.is_empty() {
        report.rounds += 1;
        if report.rounds > MAX_ROUNDS {
            return Err(Error::Network(format!(
                "no agreement after {MAX_ROUNDS} round trips"
            )));
        }
        let req = Request::Reconcile(msg).encode();
        report.bytes_sent += req.len() as u64;
        let (size, answer) = ask(client, peer, req).await?;
        report.bytes_received += size as u64;
        let parts = match answer {
            Ok(Response::Reconcile(p)) => p,
            Ok(Response::Error { code, .. }) if code == "not_ready" => {
                return Err(Error::Network(
                    "the peer is still rebuilding its sync index (not_ready); not penalised".into(),
                ))
            }
            Ok(Response::Error { code, message }) => {
                return Err(Error::Network(format!("peer refused: {code}: {message}")))
            }
            Ok(Response::Records(_) | Response::Found { .. }) | Err(_) => {
                report.invalid += 1;
                return Err(Error::Network("malformed reconcile answer".into()));
            }
        };
        if parts.is_empty() {
            break;
        }
        let params = ctx.params;
        let step = blocking(&ctx.store, move |s| {
            let mut found = Vec::new();
            reconcile::pull(&s.sync_view(), &parts, &params, &mut found).map(|next| (next, found))
        })
        .await?;
        let (next, found) = match step {
            Ok(x) => x,
            Err(StepError::Malformed(m)) => {
                report.invalid += 1;
                return Err(Error::Network(format!("peer broke the protocol: {m}")));
            }
            Err(StepError::Index(e)) => return Err(e),
        };
        for id in found {
            if asked.insert(id) {
                report.needed += 1;
                need.push(id);
            }
        }
        while need.len() >= batch {
            let ids: Vec<Id> = need.drain(..batch).collect();
            start_fetch(ctx, client, peer, ids, wanted, report, fetches).await;
        }
        msg = next;
    }
    while !need.is_empty() {
        let n = need.len().min(batch);
        let ids: Vec<Id> = need.drain(..n).collect();
        start_fetch(ctx, client, peer, ids, wanted, report, fetches).await;
    }
    Ok(())
}

async fn start_fetch(
    ctx: &SyncContext,
    client: &Client,
    peer: PeerId,
    ids: Vec<Id>,
    wanted: &Arc<[AuthorKey]>,
    report: &mut SyncReport,
    fetches: &mut JoinSet<Fetched>,
) {
    while fetches.len() >= FETCH_CONCURRENCY {
        if let Some(Ok(f)) = fetches.join_next().await {
            add(report, f);
        }
    }
    fetches.spawn(fetch(
        ctx.clone(),
        client.clone(),
        peer,
        ids,
        wanted.clone(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::sync::{profiles_range, topic_range};

    #[test]
    fn scopes_cover_exactly_the_followed_topics() {
        let k = AuthorKey([7; 32]);
        let f = Follow {
            producers: HashSet::from([k]),
            ..Follow::default()
        };
        let s = scope_of(&f, &[]);
        assert_eq!(
            s,
            [
                topic_range(&chorus_protocol::Topic::Meta),
                topic_range(&chorus_protocol::Topic::Producer(k)),
                profiles_range(&k)
            ],
            "meta's groups and attestations, the producer's topic and its profiles"
        );
        let wanted = AuthorKey([9; 32]);
        let w = scope_of(&f, &[wanted]);
        assert_eq!(w.len(), 4);
        assert_eq!(w[3], profiles_range(&wanted));
        let t = chorus_protocol::sync::topic_bytes(&chorus_protocol::Topic::Producer(k));
        let (lo, hi) = &s[1];
        assert_eq!(lo.as_slice(), t.as_slice());
        let mut inside = t.to_vec();
        inside.extend_from_slice(&[0xff; 40]);
        assert!(hi.includes(&inside));
        let other = chorus_protocol::sync::topic_bytes(&chorus_protocol::Topic::Producer(
            AuthorKey([8; 32]),
        ));
        assert!(!hi.includes(&other));
        assert_eq!(
            scope_of(
                &Follow {
                    all: true,
                    ..Follow::default()
                },
                &[wanted]
            ),
            vec![(Vec::new(), Bound::End)]
        );
    }
}
