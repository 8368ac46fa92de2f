//! Gossip judged: connects what the network receives to the ingest pipeline, and gives the
//! network its verdict on each message.
//!
//! Records of followed topics go through the node's ingest (stored if valid); others through
//! the protocol checks alone (not stored, but valid ones are forwarded). A record invalid by
//! the protocol is the sender's fault (rejected, and the sender penalised); one refused by a
//! kind rule that needs another record is not forwarded but nobody is blamed, since nodes
//! that do not follow its topic cannot check it. Each author may publish `author_rate`
//! records per second (bursts of ten times that); more are ignored. Only the records found
//! valid (and new, where they are stored) count toward their author's rate: a forgery
//! claiming an honest author costs that author nothing, so forgers cannot have an author's
//! own records ignored, and they are blamed for every forgery they send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chorus_protocol::{AuthorKey, SignedRecord};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::clock::now_ms;
use crate::follow::Following;
use crate::ingest::{sender_at_fault, Ingest, Outcome, Rejection};
use crate::net::{Client, GossipMessage, Verdict};
use crate::rate::Buckets;
use crate::waiting::Source;

/// Gossip records being validated at once; more are ignored (backpressure).
const MAX_VALIDATING: usize = 512;
/// Gossip messages judged together, at most (those already waiting when one arrives).
const MAX_BATCH: usize = 256;
/// Authors remembered by the per-author rate limit at once.
const MAX_RATED_AUTHORS: usize = 100_000;

/// The verdicts a judge has given since start, by verdict (the metrics endpoint's).
#[derive(Debug, Default)]
pub(crate) struct Verdicts {
    /// Forwarded: valid.
    pub(crate) accepted: AtomicU64,
    /// Dropped and their sender blamed: invalid.
    pub(crate) rejected: AtomicU64,
    /// Dropped, nobody blamed: over an author's rate, waiting for their target, refused by
    /// a kind rule, dated a little ahead, or too many being judged.
    pub(crate) ignored: AtomicU64,
}

impl Verdicts {
    fn count(&self, verdicts: &[Verdict]) {
        for v in verdicts {
            let c = match v {
                Verdict::Accept => &self.accepted,
                Verdict::Reject => &self.rejected,
                Verdict::Ignore => &self.ignored,
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What [`Judge::pre_judge`] decided.
enum Judged {
    /// The verdict, without the store.
    Now(Verdict),
    /// To be ingested; charged to this author if it is stored.
    Ingest(AuthorKey),
}

/// Judges gossiped records.
#[derive(Clone)]
pub(crate) struct Judge {
    ingest: Ingest,
    following: Following,
    skew_ms: u64,
    authors: Arc<Mutex<Buckets<AuthorKey>>>,
    verdicts: Arc<Verdicts>,
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
            verdicts: Arc::default(),
        }
    }

    /// The verdicts given so far, counted as they are given.
    pub(crate) fn verdicts(&self) -> Arc<Verdicts> {
        self.verdicts.clone()
    }

    /// The verdicts on a batch of gossiped payloads, in order: those that the protocol
    /// alone decides (malformed, over the author's rate, topics not followed) at once, the
    /// rest through one submission to the ingest, answered as soon as each record is decided
    /// (before it is on disk: the next hop need not wait for this node's disk).
    pub(crate) async fn judge_all(&self, messages: Vec<(Vec<u8>, Source)>) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Ignore; messages.len()];
        let mut ingest = Vec::new();
        let mut sources = Vec::new();
        let mut slots = Vec::new();
        for (i, (wire, source)) in messages.into_iter().enumerate() {
            match self.pre_judge(&wire) {
                Judged::Now(v) => verdicts[i] = v,
                Judged::Ingest(author) => {
                    slots.push((i, author));
                    ingest.push(wire);
                    sources.push(source);
                }
            }
        }
        if ingest.is_empty() {
            return verdicts;
        }
        let outcomes = self
            .ingest
            .decide(ingest, sources)
            .await
            .unwrap_or_default();
        for ((slot, author), outcome) in slots.into_iter().zip(outcomes) {
            if counts_toward_rate(&outcome) {
                self.spend(author);
            }
            verdicts[slot] = verdict_of(&outcome);
        }
        verdicts
    }

    /// The verdict on a payload that needs no store, or its author if it is to be ingested.
    /// An author over its rate is ignored before its signature is checked; the records found
    /// valid are charged to it ([`Judge::spend`]), forgeries in its name are not.
    fn pre_judge(&self, wire: &[u8]) -> Judged {
        let rec = match SignedRecord::from_bytes(wire) {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "malformed gossip record");
                return Judged::Now(Verdict::Reject);
            }
        };
        let allowed = self.authors.lock().map(|mut b| b.has_token(rec.author()));
        if !allowed.unwrap_or(true) {
            return Judged::Now(Verdict::Ignore);
        }
        if !self.following.keeps(rec.record(), self.ingest.store()) {
            return Judged::Now(
                match rec
                    .check_time(now_ms(), self.skew_ms)
                    .and_then(|_| rec.verify())
                {
                    Ok(()) => {
                        self.spend(rec.author());
                        Verdict::Accept
                    }
                    Err(e) if sender_at_fault(&e) => Verdict::Reject,
                    // Dated a little ahead of our clock: refused, nobody blamed.
                    Err(_) => Verdict::Ignore,
                },
            );
        }
        Judged::Ingest(rec.author())
    }

    /// Charges a valid record to its author's rate.
    fn spend(&self, author: AuthorKey) {
        if let Ok(mut b) = self.authors.lock() {
            b.spend(author);
        }
    }

    /// Judges every message the network reports until `cancel` fires or the network stops.
    /// Messages that arrived together are judged together (one ingest submission, one
    /// report to the network); at most [`MAX_VALIDATING`] messages are being judged at
    /// once, and more are ignored (backpressure).
    pub(crate) async fn run(
        self,
        mut messages: mpsc::Receiver<GossipMessage>,
        client: Client,
        cancel: CancellationToken,
    ) {
        let validating = Arc::new(Semaphore::new(MAX_VALIDATING));
        loop {
            let first = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                m = messages.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match messages.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            let Ok(permit) = validating.clone().try_acquire_many_owned(n) else {
                self.verdicts
                    .ignored
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let ignored = batch
                    .into_iter()
                    .map(|m| (m.receipt, Verdict::Ignore))
                    .collect();
                client.verdicts(ignored).await;
                continue;
            };
            let judge = self.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let (receipts, messages): (Vec<_>, Vec<_>) = batch
                    .into_iter()
                    .map(|m| (m.receipt, (m.data, Source::Peer(m.source.to_bytes()))))
                    .unzip();
                let verdicts = judge.judge_all(messages).await;
                drop(permit);
                judge.verdicts.count(&verdicts);
                client
                    .verdicts(receipts.into_iter().zip(verdicts).collect())
                    .await;
            });
        }
    }
}

/// Does a record with this ingest outcome count toward its author's rate? Only new valid
/// ones: not a forgery made in the author's name, nor the replay of one it already holds.
fn counts_toward_rate(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Stored(_) | Outcome::Waiting(_))
}

/// The verdict on a gossiped record from its ingest outcome.
fn verdict_of(outcome: &Outcome) -> Verdict {
    match outcome {
        Outcome::Stored(_) | Outcome::Duplicate(_) => Verdict::Accept,
        // It points at a record this node has not seen: not forwarded while it only waits
        // (anyone can make records that point at nothing); gossiped once its target arrives
        // and it is applied (`crate::waiting`).
        Outcome::Waiting(_) => Verdict::Ignore,
        // Invalid by the protocol: every node can tell, so the sender is at fault; but a
        // record dated a little ahead of this node's clock may be a fast clock's, not a
        // forger's: refused, not forwarded, nobody blamed.
        Outcome::Rejected(r @ Rejection::Invalid(_)) if r.sender_at_fault() => Verdict::Reject,
        Outcome::Rejected(Rejection::Invalid(_)) => Verdict::Ignore,
        // A kind rule that needs other records (wrong producer, not the founder...): nodes
        // that do not follow the topic cannot check it and rightly forward such records, so
        // do not forward it, but do not punish the relay either.
        Outcome::Rejected(Rejection::Rule(_) | Rejection::TooManyWaiting | Rejection::Internal) => {
            Verdict::Ignore
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::{Body, ProductRef, RecordBuilder, RecordId, Review, SigningKey};

    fn review(author: &SigningKey, producer: AuthorKey, n: usize) -> SignedRecord {
        RecordBuilder::new(Body::Review(Review {
            product: ProductRef {
                producer,
                code: format!("p-{n}"),
            },
            rating: 4,
            title: None,
            text: "Good".into(),
        }))
        .created_at(now_ms())
        .sign(author)
        .unwrap()
    }

    /// A review that claims `victim` as its author, signed by someone else.
    fn forged(victim: &SigningKey, forger: &SigningKey, producer: AuthorKey, n: usize) -> Vec<u8> {
        let real = review(victim, producer, n);
        let other = review(forger, producer, n);
        chorus_protocol::cbor::encode_wire(real.record_bytes(), other.signature())
    }

    /// A judge for a node whose user is `me`, allowing each author 1 record a second
    /// (bursts of 10).
    fn judge(me: AuthorKey) -> (Judge, crate::ingest::IngestThreads) {
        let store = crate::store::Store::temporary().unwrap();
        let (ingest, threads) =
            Ingest::start(store, crate::ingest::IngestConfig::default()).unwrap();
        let protocol = crate::sync::request_protocol(&crate::config::SyncConfig::default());
        let (client, _events, _loop) = crate::net::new(
            libp2p::identity::Keypair::generate_ed25519(),
            crate::config::NetworkConfig::default(),
            protocol,
        )
        .unwrap();
        let config = crate::config::Config::default();
        let following = Following::start(&config, None, me, client).unwrap();
        (Judge::new(ingest, following, 600_000, 1), threads)
    }

    #[tokio::test]
    async fn forgeries_in_an_authors_name_do_not_use_up_its_rate() {
        let me = SigningKey::from_bytes(&[1; 32]);
        let victim = SigningKey::from_bytes(&[2; 32]);
        let forger = SigningKey::from_bytes(&[3; 32]);
        let mine = AuthorKey(me.verifying_key().to_bytes());
        let elsewhere = AuthorKey([9; 32]);
        let (judge, _threads) = judge(mine);
        let peer = || Source::Peer(vec![7]);
        // Three bursts' worth of forgeries in the victim's name, on a topic this node
        // stores and on one it only checks and forwards: every one is blamed.
        for producer in [mine, elsewhere] {
            let batch = (0..30)
                .map(|n| (forged(&victim, &forger, producer, n), peer()))
                .collect();
            let verdicts = judge.judge_all(batch).await;
            assert!(
                verdicts.iter().all(|v| *v == Verdict::Reject),
                "{verdicts:?}"
            );
            // The victim's own records still get through.
            let own = vec![(review(&victim, producer, 100).into_wire(), peer())];
            assert_eq!(judge.judge_all(own).await, vec![Verdict::Accept]);
        }
        // The rate still holds for valid records: a batch let through on one token is
        // charged in full, and the author waits until the debt is paid.
        let batch = (0..15)
            .map(|n| (review(&victim, mine, 200 + n).into_wire(), peer()))
            .collect();
        assert!(judge
            .judge_all(batch)
            .await
            .iter()
            .all(|v| *v == Verdict::Accept));
        let more = vec![(review(&victim, mine, 300).into_wire(), peer())];
        assert_eq!(judge.judge_all(more).await, vec![Verdict::Ignore]);
    }

    #[test]
    fn a_record_that_only_waits_is_not_forwarded_and_its_sender_not_blamed() {
        let id = RecordId([1; 32]);
        assert_eq!(verdict_of(&Outcome::Waiting(id)), Verdict::Ignore);
        assert_eq!(verdict_of(&Outcome::Stored(id)), Verdict::Accept);
        assert_eq!(
            verdict_of(&Outcome::Rejected(Rejection::TooManyWaiting)),
            Verdict::Ignore
        );
    }

    #[test]
    fn only_new_valid_records_count_toward_their_authors_rate() {
        let id = RecordId([1; 32]);
        assert!(counts_toward_rate(&Outcome::Stored(id)));
        assert!(counts_toward_rate(&Outcome::Waiting(id)));
        assert!(!counts_toward_rate(&Outcome::Duplicate(id)));
        let forged =
            Outcome::Rejected(Rejection::Invalid(chorus_protocol::Error::InvalidSignature));
        assert!(!counts_toward_rate(&forged));
    }

    #[test]
    fn a_record_from_a_fast_clock_is_refused_unblamed_one_from_far_ahead_blamed() {
        let future = |ahead: u64| {
            Outcome::Rejected(Rejection::Invalid(chorus_protocol::Error::FromTheFuture {
                created_at: 1_000_000 + 600_000 + ahead,
                now: 1_000_000,
                skew_ms: 600_000,
            }))
        };
        assert_eq!(verdict_of(&future(1)), Verdict::Ignore);
        assert_eq!(verdict_of(&future(3_600_000)), Verdict::Ignore);
        assert_eq!(
            verdict_of(&future(crate::ingest::FAR_FUTURE_MS + 1)),
            Verdict::Reject
        );
        let forged =
            Outcome::Rejected(Rejection::Invalid(chorus_protocol::Error::InvalidSignature));
        assert_eq!(verdict_of(&forged), Verdict::Reject);
    }
}
