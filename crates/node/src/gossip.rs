//! Gossip judged: connects what the network receives to the ingest pipeline, and gives the
//! network its verdict on each message.
//!
//! Records of followed topics go through the node's ingest (stored if valid); others through
//! the protocol checks alone (not stored, but valid ones are forwarded). A record invalid by
//! the protocol is the sender's fault (rejected, and the sender penalised); one refused by a
//! kind rule that needs another record is not forwarded but nobody is blamed, since nodes
//! that do not follow its topic cannot check it. Each author may publish `author_rate`
//! records per second (bursts of ten times that); more are ignored.

use std::sync::{Arc, Mutex};

use chorus_protocol::{AuthorKey, SignedRecord};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::clock::now_ms;
use crate::follow::Following;
use crate::ingest::{Ingest, Outcome, Rejection};
use crate::net::{Client, GossipMessage, Verdict};
use crate::rate::Buckets;

/// Gossip records being validated at once; more are ignored (backpressure).
const MAX_VALIDATING: usize = 512;
/// Authors remembered by the per-author rate limit at once.
const MAX_RATED_AUTHORS: usize = 100_000;

/// Judges gossiped records.
#[derive(Clone)]
pub(crate) struct Judge {
    ingest: Ingest,
    following: Following,
    skew_ms: u64,
    authors: Arc<Mutex<Buckets<AuthorKey>>>,
}

impl Judge {
    /// A judge that stores followed records through `ingest`, allows `skew_ms` of clock
    /// skew and `author_rate` records per second per author.
    pub(crate) fn new(
        ingest: Ingest,
        following: Following,
        skew_ms: u64,
        author_rate: u32,
    ) -> Self {
        Judge {
            ingest,
            following,
            skew_ms,
            authors: Arc::new(Mutex::new(Buckets::new(author_rate, MAX_RATED_AUTHORS))),
        }
    }

    /// The verdict on one gossiped payload.
    pub(crate) async fn judge(&self, wire: Vec<u8>) -> Verdict {
        let rec = match SignedRecord::from_bytes(&wire) {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "malformed gossip record");
                return Verdict::Reject;
            }
        };
        let allowed = self.authors.lock().map(|mut b| b.take(rec.author()));
        if !allowed.unwrap_or(true) {
            return Verdict::Ignore;
        }
        if !self.following.follows(&rec.record().topic) {
            return match rec
                .check_time(now_ms(), self.skew_ms)
                .and_then(|_| rec.verify())
            {
                Ok(()) => Verdict::Accept,
                Err(_) => Verdict::Reject,
            };
        }
        match self
            .ingest
            .ingest(vec![wire])
            .await
            .ok()
            .and_then(|mut v| v.pop())
        {
            Some(Outcome::Stored(_) | Outcome::Duplicate(_) | Outcome::Waiting(_)) => {
                Verdict::Accept
            }
            // Invalid by the protocol: every node can tell, so the sender is at fault.
            Some(Outcome::Rejected(Rejection::Invalid(_))) => Verdict::Reject,
            // A kind rule that needs other records (wrong producer, not the founder...):
            // nodes that do not follow the topic cannot check it and rightly forward such
            // records, so do not forward it, but do not punish the relay either.
            Some(Outcome::Rejected(
                Rejection::Rule(_) | Rejection::TooManyWaiting | Rejection::Internal,
            ))
            | None => Verdict::Ignore,
        }
    }

    /// Judges every message the network reports until `cancel` fires or the network stops,
    /// at most [`MAX_VALIDATING`] at once (more are ignored).
    pub(crate) async fn run(
        self,
        mut messages: mpsc::Receiver<GossipMessage>,
        client: Client,
        cancel: CancellationToken,
    ) {
        let validating = Arc::new(Semaphore::new(MAX_VALIDATING));
        loop {
            let msg = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                m = messages.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            let Ok(permit) = validating.clone().try_acquire_owned() else {
                client.verdict(msg.receipt, Verdict::Ignore).await;
                continue;
            };
            let judge = self.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let verdict = judge.judge(msg.data).await;
                drop(permit);
                client.verdict(msg.receipt, verdict).await;
            });
        }
    }
}
