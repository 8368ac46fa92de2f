//! The ingest pipeline: untrusted wire bytes in, a verdict per record out.
//!
//! Three stages on their own threads, joined by bounded channels, so that verifying, applying
//! and writing different batches overlap:
//!
//! 1. **check** — per record: the id from the wire (BLAKE3 of the record bytes) and a store
//!    lookup drop duplicates before any other work; then decode, the context-free rules and
//!    the clock; then signatures, in batches of [`VERIFY_CHUNK`] spread over all cores by
//!    a low-priority rayon pool (batch verification gives each record its single verdict,
//!    see `chorus_protocol::sign`; the pool runs below the commit thread, the one stage
//!    that cannot be parallelised).
//! 2. **apply** — one thread decides what is written. It takes checked batches in order, in
//!    chunks of at most [`MAX_COMMIT`] records (several small batches share a chunk, a large
//!    one is split), checks the kind rules that need other records, parks records whose
//!    target is missing, and applies the rest and the derived state they change into one
//!    in-memory overlay. It reads through the chunks not yet written, so it can run two
//!    chunks ahead of the disk.
//! 3. **commit** — writes each chunk as **one crash-atomic write set** (its redo intent,
//!    then its keys one by one: `store::intent`), then (group commit) makes
//!    every chunk written so far durable with one flush after [`FLUSH_EVERY`] chunks or as
//!    soon as no further chunk is coming (the applier has nothing more in hand), and only
//!    then answers the callers whose batches are complete and broadcasts the events.
//!
//! So an acknowledged record ([`Outcome::Stored`], or [`Outcome::Waiting`]) is on disk, with
//! its indexes and derived state: a crash after the answer loses nothing, and a crash before
//! it leaves each chunk either whole or absent, never a record without its derived state.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use chorus_protocol::{cbor, verify_batch_cached, KeyCache, RecordId, RuleError, SignedRecord};
use rayon::prelude::*;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, warn};

use crate::clock::now_ms;
use crate::error::{Error, Result, StorageFault};
use crate::store::intent::Writes;
use crate::store::overlay::{Backing, Overlay};
use crate::store::Store;
use crate::tally::apply::apply;
use crate::tally::ctx::Ctx;
use crate::tally::ready::readiness;
use crate::tally::{Event, Readiness};
use crate::waiting::{self, Admit, Limits, Meta, Source, WaitingArea};

/// Records verified together in one batch equation.
pub const VERIFY_CHUNK: usize = 64;
/// Most records in one chunk, written as one write set (keeps its intent, and sled's
/// memory, small).
pub const MAX_COMMIT: usize = 128;

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// It breaks a protocol rule (structure, limits, clock, signature).
    Invalid(chorus_protocol::Error),
    /// It breaks a kind rule that needs another record (wrong producer, not the founder...).
    Rule(RuleError),
    /// It waits for a record not yet seen, and too many records already wait.
    TooManyWaiting,
    /// The pipeline gave no verdict (a fault of the node, not of the record).
    Internal,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Invalid(e) => write!(f, "{e}"),
            Rejection::Rule(r) => write!(f, "{r}"),
            Rejection::TooManyWaiting => f.write_str("too many records wait for their target"),
            Rejection::Internal => f.write_str("internal: no verdict"),
        }
    }
}

/// How far beyond the allowed skew a record may be dated before its sender is blamed for it:
/// a node whose clock runs fast sends records a little ahead of ours, honestly, so those are
/// refused (not stored, not forwarded) without a penalty; a record dated a day ahead is no
/// clock's mistake.
pub const FAR_FUTURE_MS: u64 = 24 * 3600 * 1000;

/// Is the sender at fault for a record the protocol refuses? Yes for every rule but a date
/// in the future by less than [`FAR_FUTURE_MS`] beyond the skew (see there).
pub fn sender_at_fault(e: &chorus_protocol::Error) -> bool {
    match e {
        chorus_protocol::Error::FromTheFuture {
            created_at,
            now,
            skew_ms,
        } => *created_at > now.saturating_add(*skew_ms).saturating_add(FAR_FUTURE_MS),
        _ => true,
    }
}

impl Rejection {
    /// Is whoever sent the record at fault (and to be penalised)?
    pub fn sender_at_fault(&self) -> bool {
        matches!(self, Rejection::Invalid(e) if sender_at_fault(e))
    }
}

/// The verdict on one submitted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New, valid, and durably stored.
    Stored(RecordId),
    /// Already stored (or already waiting).
    Duplicate(RecordId),
    /// Valid, durably kept, and applied once the record it points at arrives.
    Waiting(RecordId),
    /// Refused; nothing was stored.
    Rejected(Rejection),
}

impl Outcome {
    /// Was the record accepted (stored, waiting or already known)?
    pub fn is_accepted(&self) -> bool {
        !matches!(self, Outcome::Rejected(_))
    }
}

/// Settings of the pipeline.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Allowed clock skew for `created_at` in the future (ms).
    pub skew_ms: u64,
    /// The bounds of the waiting area (records whose target has not arrived).
    pub waiting: Limits,
    /// Where to report peers whose waiting records mostly never resolve (peer id bytes,
    /// faults), if anywhere.
    pub penalties: Option<mpsc::Sender<(Vec<u8>, u32)>>,
    /// Where to hand records that waited and are now applied (their wire bytes), to be
    /// gossiped then: while they waited they were not forwarded.
    pub released: Option<mpsc::Sender<Vec<u8>>>,
    /// Capacity of the broadcast channel of events.
    pub event_capacity: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            skew_ms: chorus_protocol::DEFAULT_SKEW_MS,
            waiting: Limits::default(),
            penalties: None,
            released: None,
            event_capacity: 4096,
        }
    }
}

/// What the pipeline has done since it started, and holds now ([`Ingest::counts`]; the
/// metrics endpoint's figures). Each record is counted once, by its final outcome, when its
/// batch is durable (or could not be written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records stored ([`Outcome::Stored`]).
    pub stored: u64,
    /// Records kept to wait for the record they point at ([`Outcome::Waiting`]).
    pub kept_waiting: u64,
    /// Records already held or already waiting ([`Outcome::Duplicate`]).
    pub duplicates: u64,
    /// Records refused as invalid by the protocol: structure, limits, clock, signature
    /// ([`Rejection::Invalid`]).
    pub invalid: u64,
    /// Records refused by a kind rule that needs another record ([`Rejection::Rule`]).
    pub rule: u64,
    /// Records refused because too many records wait already
    /// ([`Rejection::TooManyWaiting`]).
    pub too_many_waiting: u64,
    /// Records given no verdict, a fault of the node ([`Rejection::Internal`]).
    pub internal: u64,
    /// Records of batches the store could not write (disk full or failed).
    pub unwritten: u64,
    /// Records that waited and were stored once the record they point at arrived.
    pub released: u64,
    /// Records in the waiting area now.
    pub waiting_now: u64,
    /// Batches queued for the check stage now (at most 4; a full queue holds back whoever
    /// submits).
    pub queued_batches: u64,
}

/// The counters behind [`Counts`], shared by the pipeline's threads.
#[derive(Debug, Default)]
struct Counters {
    stored: AtomicU64,
    kept_waiting: AtomicU64,
    duplicates: AtomicU64,
    invalid: AtomicU64,
    rule: AtomicU64,
    too_many_waiting: AtomicU64,
    internal: AtomicU64,
    unwritten: AtomicU64,
    released: AtomicU64,
    waiting_now: AtomicU64,
}

impl Counters {
    /// Counts a durable batch's outcomes (a record without one counts as internal).
    fn outcomes(&self, outcomes: &[Option<Outcome>]) {
        for o in outcomes {
            let c = match o {
                Some(Outcome::Stored(_)) => &self.stored,
                Some(Outcome::Waiting(_)) => &self.kept_waiting,
                Some(Outcome::Duplicate(_)) => &self.duplicates,
                Some(Outcome::Rejected(Rejection::Invalid(_))) => &self.invalid,
                Some(Outcome::Rejected(Rejection::Rule(_))) => &self.rule,
                Some(Outcome::Rejected(Rejection::TooManyWaiting)) => &self.too_many_waiting,
                Some(Outcome::Rejected(Rejection::Internal)) | None => &self.internal,
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Job {
    wires: Vec<Vec<u8>>,
    /// Who sent each record: one source per wire, or one for all.
    sources: Vec<Source>,
    reply: Reply,
    /// Campaigns whose deadline the node's clock saw pass ([`Ingest::campaigns_ended`]).
    ended: Vec<RecordId>,
}

/// A batch's outcomes, or why the store could not write it.
type Answer = std::result::Result<Vec<Outcome>, StorageFault>;

/// Where a batch's outcomes go.
enum Reply {
    /// Once the batch is durable.
    Durable(oneshot::Sender<Answer>),
    /// As soon as every record is decided (before it is written): a verdict to forward a
    /// gossiped record on, which need not wait for this node's disk.
    Decided(oneshot::Sender<Answer>),
}

struct Checked {
    outcomes: Vec<Option<Outcome>>,
    records: Vec<(usize, SignedRecord)>,
    /// One per submitted wire, or one for all.
    sources: Vec<Source>,
    reply: Option<Reply>,
    ended: Vec<RecordId>,
    counters: Arc<Counters>,
}

impl Checked {
    /// Who sent the `i`th submitted record.
    fn source(&self, i: usize) -> &Source {
        static LOCAL: Source = Source::Local;
        self.sources
            .get(i)
            .or_else(|| self.sources.first().filter(|_| self.sources.len() == 1))
            .unwrap_or(&LOCAL)
    }
}

impl Checked {
    /// The outcomes so far, every record without one counted as a fault of the node.
    fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes
            .iter()
            .map(|o| o.clone().unwrap_or(Outcome::Rejected(Rejection::Internal)))
            .collect()
    }

    /// Answers a caller that waits for the decision only.
    fn decided(&mut self) {
        if matches!(self.reply, Some(Reply::Decided(_))) {
            if let Some(Reply::Decided(tx)) = self.reply.take() {
                let _ = tx.send(Ok(self.outcomes()));
            }
        }
    }

    /// Answers a caller that waits for the batch to be durable.
    fn durable(mut self) {
        self.counters.outcomes(&self.outcomes);
        if let Some(Reply::Durable(tx)) = self.reply.take() {
            let _ = tx.send(Ok(self.outcomes()));
        }
    }

    /// Answers a caller still waiting that the store could not write the batch.
    fn failed(mut self, fault: &StorageFault) {
        self.counters
            .unwritten
            .fetch_add(self.outcomes.len() as u64, Ordering::Relaxed);
        match self.reply.take() {
            Some(Reply::Durable(tx)) | Some(Reply::Decided(tx)) => {
                let _ = tx.send(Err(fault.clone()));
            }
            None => {}
        }
    }
}

/// Handle to the pipeline. Cheap to clone; the threads stop when every handle is dropped.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
    events: broadcast::Sender<Event>,
    store: Store,
    counters: Arc<Counters>,
}

/// The pipeline's threads, to join on shutdown.
pub struct IngestThreads {
    check: JoinHandle<()>,
    write: JoinHandle<()>,
}

impl IngestThreads {
    /// Waits for both stages to finish (after every [`Ingest`] handle is dropped).
    pub fn join(self) {
        if self.check.join().is_err() {
            warn!("ingest check stage panicked");
        }
        if self.write.join().is_err() {
            warn!("ingest write stage panicked");
        }
    }
}

impl Ingest {
    /// Starts the pipeline over `store`.
    pub fn start(store: Store, config: IngestConfig) -> Result<(Ingest, IngestThreads)> {
        let (tx, rx) = mpsc::channel::<Job>(4);
        let (ctx_tx, ctx_rx) = mpsc::channel::<Checked>(2);
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let waiting = load_waiting(&store, config.waiting.clone())?;
        let counters = Arc::new(Counters::default());
        counters
            .waiting_now
            .store(waiting.len() as u64, Ordering::Relaxed);
        let check = {
            let store = store.clone();
            let skew = config.skew_ms;
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("ingest-check".into())
                .spawn(move || check_stage(store, skew, rx, ctx_tx, counters))
                .map_err(|_| Error::NodeStopped)?
        };
        let write = {
            let store = store.clone();
            let events = events.clone();
            let outlets = Outlets {
                penalties: config.penalties.clone(),
                released: config.released.clone(),
                limits: config.waiting.clone(),
                counters: counters.clone(),
            };
            std::thread::Builder::new()
                .name("ingest-write".into())
                .spawn(move || write_stage(store, ctx_rx, events, waiting, outlets))
                .map_err(|_| Error::NodeStopped)?
        };
        Ok((
            Ingest {
                tx,
                events,
                store,
                counters,
            },
            IngestThreads { check, write },
        ))
    }

    /// What the pipeline has done since it started, and holds now: a few atomic loads.
    pub fn counts(&self) -> Counts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            stored: get(&c.stored),
            kept_waiting: get(&c.kept_waiting),
            duplicates: get(&c.duplicates),
            invalid: get(&c.invalid),
            rule: get(&c.rule),
            too_many_waiting: get(&c.too_many_waiting),
            internal: get(&c.internal),
            unwritten: get(&c.unwritten),
            released: get(&c.released),
            waiting_now: get(&c.waiting_now),
            queued_batches: (self.tx.max_capacity() - self.tx.capacity()) as u64,
        }
    }

    /// The store this pipeline writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Events of every batch, after it is durable.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Queues a batch from synchronous code (blocks while the pipeline is full) and returns
    /// where its outcomes will arrive, in submission order.
    pub fn submit_blocking(&self, wires: Vec<Vec<u8>>) -> Result<oneshot::Receiver<Answer>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .blocking_send(Job {
                wires,
                sources: vec![Source::Local],
                reply: Reply::Durable(reply),
                ended: Vec::new(),
            })
            .map_err(|_| Error::NodeStopped)?;
        Ok(rx)
    }

    /// Ingests a batch from synchronous code and waits for its outcomes.
    pub fn ingest_blocking(&self, wires: Vec<Vec<u8>>) -> Result<Vec<Outcome>> {
        answered(self.submit_blocking(wires)?.blocking_recv())
    }

    /// Ingests a batch and waits for its outcomes, once it is durable.
    pub async fn ingest(&self, wires: Vec<Vec<u8>>) -> Result<Vec<Outcome>> {
        self.ingest_from(wires, Source::Local).await
    }

    /// [`Ingest::ingest`] of records `source` sent (a peer's are counted against its share
    /// of the waiting area).
    pub async fn ingest_from(&self, wires: Vec<Vec<u8>>, source: Source) -> Result<Vec<Outcome>> {
        let (reply, rx) = oneshot::channel();
        self.send(wires, vec![source], Reply::Durable(reply))
            .await?;
        answered(rx.await)
    }

    /// Drops the waiting records that have waited too long (what each batch also does);
    /// a node calls it now and then, so they go even when nothing arrives.
    pub async fn tick(&self) -> Result<()> {
        self.ingest(Vec::new()).await.map(|_| ())
    }

    /// Ingests a batch and returns as soon as each record is decided: checked, and applied
    /// (or parked, or refused) in memory, before it is written. [`Outcome::Stored`] then
    /// means "valid, and being stored": what a node needs to forward a gossiped record, so
    /// that each hop of the gossip costs a check, not a disk sync. The store keeps its
    /// guarantee (a chunk is durable whole or not at all); only this answer comes earlier.
    /// `sources` name who sent each record (one per record, or one for all).
    pub async fn decide(&self, wires: Vec<Vec<u8>>, sources: Vec<Source>) -> Result<Vec<Outcome>> {
        let (reply, rx) = oneshot::channel();
        self.send(wires, sources, Reply::Decided(reply)).await?;
        answered(rx.await)
    }

    async fn send(&self, wires: Vec<Vec<u8>>, sources: Vec<Source>, reply: Reply) -> Result<()> {
        self.tx
            .send(Job {
                wires,
                sources,
                reply,
                ended: Vec::new(),
            })
            .await
            .map_err(|_| Error::NodeStopped)
    }

    /// Notes that these campaigns' deadlines have passed: each that this node has not
    /// noted before gets its durable mark, its journal entry if its topic is watched, and
    /// an [`Event::CampaignEnded`] once durable. Written by the pipeline like a batch of
    /// records, so journal entries stay in the order of their sequence numbers.
    pub(crate) async fn campaigns_ended(&self, campaigns: Vec<RecordId>) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                wires: Vec::new(),
                sources: Vec::new(),
                reply: Reply::Durable(reply),
                ended: campaigns,
            })
            .await
            .map_err(|_| Error::NodeStopped)?;
        answered(rx.await).map(|_| ())
    }
}

/// A caller's answer: the outcomes, the storage fault, or (no answer) the node stopped.
fn answered(
    answer: std::result::Result<Answer, oneshot::error::RecvError>,
) -> Result<Vec<Outcome>> {
    answer
        .map_err(|_| Error::NodeStopped)?
        .map_err(Error::Unwritable)
}

thread_local! {
    static KEYS: std::cell::RefCell<KeyCache> = std::cell::RefCell::new(KeyCache::new());
}

fn check_stage(
    store: Store,
    skew_ms: u64,
    mut rx: mpsc::Receiver<Job>,
    tx: mpsc::Sender<Checked>,
    counters: Arc<Counters>,
) {
    while let Some(job) = rx.blocking_recv() {
        let checked = check(&store, skew_ms, job, &counters);
        if tx.blocking_send(checked).is_err() {
            break;
        }
    }
}

fn check(store: &Store, skew_ms: u64, job: Job, counters: &Arc<Counters>) -> Checked {
    let now = now_ms();
    let n = job.wires.len();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut decoded: Vec<(usize, SignedRecord)> = Vec::with_capacity(n);
    let mut seen = HashSet::with_capacity(n);
    for (i, wire) in job.wires.into_iter().enumerate() {
        // The id needs only the wire framing: duplicates cost one hash and one lookup.
        if let Ok((range, _)) = cbor::split_wire(&wire) {
            let id = RecordId::of(&wire[range]);
            let dup = !seen.insert(id) || store.contains(&id).unwrap_or(false);
            if dup {
                outcomes[i] = Some(Outcome::Duplicate(id));
                continue;
            }
        }
        match SignedRecord::from_vec(wire).and_then(|r| r.check_time(now, skew_ms).map(|_| r)) {
            Ok(r) => decoded.push((i, r)),
            Err(e) => outcomes[i] = Some(Outcome::Rejected(Rejection::Invalid(e))),
        }
    }
    let verify = || -> Vec<Result<(), chorus_protocol::Error>> {
        decoded
            .par_chunks(VERIFY_CHUNK)
            .flat_map_iter(|chunk| {
                let refs: Vec<&SignedRecord> = chunk.iter().map(|(_, r)| r).collect();
                KEYS.with(|k| verify_batch_cached(&refs, &mut k.borrow_mut()))
            })
            .collect()
    };
    // A small batch (a gossiped record, one made through the API) is verified here, at
    // normal priority, at once: handing it to the low-priority pool made it wait behind every
    // busy thread of the machine. Only batches worth spreading over the cores go there.
    let verdicts = if decoded.len() <= VERIFY_CHUNK {
        let refs: Vec<&SignedRecord> = decoded.iter().map(|(_, r)| r).collect();
        KEYS.with(|k| verify_batch_cached(&refs, &mut k.borrow_mut()))
    } else {
        crate::background::install(verify)
    };
    let mut records = Vec::with_capacity(decoded.len());
    for ((i, rec), verdict) in decoded.into_iter().zip(verdicts) {
        match verdict {
            Ok(()) => records.push((i, rec)),
            Err(e) => outcomes[i] = Some(Outcome::Rejected(Rejection::Invalid(e))),
        }
    }
    let mut checked = Checked {
        outcomes,
        records,
        sources: job.sources,
        reply: Some(job.reply),
        ended: job.ended,
        counters: counters.clone(),
    };
    if checked.records.is_empty() {
        // Nothing left to apply: decided already.
        checked.decided();
    }
    checked
}

/// A batch applied in memory, on its way to disk.
struct Applied {
    writes: Arc<Writes>,
    group: Vec<Checked>,
    events: Vec<Event>,
    /// Records of the chunk that waited and are now applied, to gossip once durable.
    released: Vec<Vec<u8>>,
    /// The store's era when the chunk was applied ([`Store::era`]): a chunk applied before a
    /// storage failure (or a recovery) may rest on writes the failure lost, so it is not
    /// written in a later era.
    era: u64,
}

/// Chunks applied but not yet written, at most: the committer always finds the next chunk
/// ready. (Measured when the store still wrote sled batches, whose lock made the applier's
/// reads wait for each batch: with one chunk ahead the committer then waited for the rest of
/// the applier's work after each batch.)
const AHEAD: usize = 2;

/// The fault to answer with when the store reports none (it recovered meanwhile).
fn fault_or_retry(store: &Store) -> StorageFault {
    store.storage_fault().unwrap_or_else(|| {
        StorageFault::Failed(
            "the store recovered from a failure while this was decided; send it again".into(),
        )
    })
}

/// Where the applier reports beyond its callers, and the waiting area's bounds.
struct Outlets {
    penalties: Option<mpsc::Sender<(Vec<u8>, u32)>>,
    released: Option<mpsc::Sender<Vec<u8>>>,
    limits: Limits,
    counters: Arc<Counters>,
}

fn write_stage(
    store: Store,
    mut rx: mpsc::Receiver<Checked>,
    events: broadcast::Sender<Event>,
    mut waiting: WaitingArea,
    outlets: Outlets,
) {
    let released = outlets.released.clone();
    let counters = outlets.counters.clone();
    // The committer owns the disk writes; the applier runs at most AHEAD chunks ahead of it.
    let (commit_tx, commit_rx) = std::sync::mpsc::sync_channel::<Applied>(AHEAD);
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(AHEAD);
    // Set while the applier has work in hand, so the committer waits for the next chunk
    // (and flushes it with this one) instead of flushing early.
    let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let committer = {
        let store = store.clone();
        let busy = busy.clone();
        std::thread::Builder::new()
            .name("ingest-commit".into())
            .spawn(move || {
                commit_stage(store, commit_rx, done_tx, events, busy, released, counters)
            })
    };
    let Ok(committer) = committer else {
        warn!("cannot start the commit thread");
        return;
    };
    let journal = store.journal();
    let fresh = Ctx::default;
    let mut ctx = fresh();
    let mut in_flight: VecDeque<Arc<Writes>> = VecDeque::new();
    let mut era = store.era();
    // Checked batches not yet fully applied; a large one is applied and committed in
    // chunks of at most MAX_COMMIT records (sled's memory grows with batch size) and
    // answered once its last chunk is on disk.
    let mut queue: VecDeque<Checked> = VecDeque::new();
    loop {
        if queue.is_empty() {
            busy.store(false, std::sync::atomic::Ordering::Release);
            // Idle: settle the chunks in flight first, so that nothing is read later through
            // a write set older than the tree.
            for _ in in_flight.drain(..) {
                let _ = done_rx.recv();
            }
            let next = rx.blocking_recv();
            busy.store(true, std::sync::atomic::Ordering::Release);
            match next {
                Some(c) => queue.push_back(c),
                None => break,
            }
        }
        while queue.len() < 64 {
            match rx.try_recv() {
                Ok(c) => queue.push_back(c),
                Err(_) => break,
            }
        }
        if store.storage_fault().is_some() {
            // A write failed: once the chunks in flight are settled, the store reopens if the
            // disk has room again; if not, what waits is answered at once, not held.
            for _ in in_flight.drain(..) {
                let _ = done_rx.recv();
            }
            if let Err(e) = store.recover() {
                let fault =
                    StorageFault::of(&e).unwrap_or_else(|| StorageFault::Failed(e.to_string()));
                debug!(error = %e, "the store cannot write yet");
                for c in queue.drain(..) {
                    c.failed(&fault);
                }
                continue;
            }
        }
        if store.era() != era {
            // What was decided before the failure (or the recovery) may rest on lost writes:
            // decide afresh from the store as it is now.
            for _ in in_flight.drain(..) {
                let _ = done_rx.recv();
            }
            era = store.era();
            reload_waiting(&mut waiting, &store, &outlets.limits);
            ctx = fresh();
        }
        let base = store.layered(&in_flight);
        let ov = Overlay::with_journal(&base, &journal);
        let applied = apply_chunk(ov, &mut ctx, &mut queue, &mut waiting);
        outlets
            .counters
            .waiting_now
            .store(waiting.len() as u64, Ordering::Relaxed);
        if let Some(tx) = &outlets.penalties {
            for p in waiting.penalties() {
                let _ = tx.try_send(p);
            }
        }
        // At most AHEAD chunks unwritten: wait until the oldest is written.
        if in_flight.len() >= AHEAD {
            in_flight.pop_front();
            let _ = done_rx.recv();
        }
        match applied {
            Ok((writes, evs, group, released)) => {
                // Before the next chunk is applied, so its lookups find these keys.
                store.announce(&writes);
                let writes = Arc::new(writes);
                in_flight.push_back(writes.clone());
                let job = Applied {
                    writes,
                    group,
                    events: evs,
                    released,
                    era,
                };
                // More to apply after this chunk? Then the committer may wait for it.
                busy.store(!queue.is_empty(), std::sync::atomic::Ordering::Release);
                if commit_tx.send(job).is_err() {
                    break;
                }
            }
            Err(e) => {
                // Nothing of the chunk was written; its callers learn why.
                warn!(error = %e, "ingest batch failed");
                let fault =
                    StorageFault::of(&e).unwrap_or_else(|| StorageFault::Failed(e.to_string()));
                if let Some(c) = queue.pop_front() {
                    c.failed(&fault);
                }
                reload_waiting(&mut waiting, &store, &outlets.limits);
                ctx = fresh();
            }
        }
    }
    for _ in in_flight.drain(..) {
        let _ = done_rx.recv();
    }
    drop(commit_tx);
    if committer.join().is_err() {
        warn!("ingest commit stage panicked");
    }
}

fn commit_stage(
    store: Store,
    rx: std::sync::mpsc::Receiver<Applied>,
    done: std::sync::mpsc::SyncSender<()>,
    events: broadcast::Sender<Event>,
    busy: Arc<std::sync::atomic::AtomicBool>,
    released: Option<mpsc::Sender<Vec<u8>>>,
    counters: Arc<Counters>,
) {
    let out = Out {
        events: &events,
        released: released.as_ref(),
        counters: &counters,
    };
    // Group commit: each chunk's write set is written at once and the applier goes on;
    // one flush then makes every chunk written so far durable, and only then are their
    // callers answered. A flush is due after FLUSH_EVERY chunks, or when no further chunk
    // is coming: the applier is idle, or its chunk is not ready within GROUP_WAIT. So a
    // lone record is flushed at once and a stream pays one disk sync per group.
    let mut pending: Vec<Durable> = Vec::new();
    let mut next = rx.recv().ok();
    while let Some(job) = next.take() {
        // A chunk decided in another era may rest on writes a failure lost; a failed write
        // is answered at once, with what was written before it (whose flush now fails too,
        // or makes it durable).
        let written = if job.era != store.era() {
            Err(fault_or_retry(&store))
        } else {
            store.write(&job.writes).map_err(|e| {
                warn!(error = %e, "ingest commit failed");
                StorageFault::of(&e).unwrap_or_else(|| StorageFault::Failed(e.to_string()))
            })
        };
        match written {
            Ok(()) => pending.push(Durable {
                group: job.group,
                events: job.events,
                released: job.released,
                era: job.era,
            }),
            Err(fault) => {
                for c in job.group {
                    c.failed(&fault);
                }
                flush_and_answer(&store, &mut pending, &out);
            }
        }
        if done.send(()).is_err() {
            break;
        }
        if pending.len() < FLUSH_EVERY {
            next = if busy.load(std::sync::atomic::Ordering::Acquire) {
                rx.recv_timeout(GROUP_WAIT).ok()
            } else {
                rx.try_recv().ok()
            };
        }
        if next.is_none() {
            flush_and_answer(&store, &mut pending, &out);
            next = rx.recv().ok();
        }
    }
    flush_and_answer(&store, &mut pending, &out);
}

/// Where a durable chunk's news goes: events to subscribers, released records to gossip.
struct Out<'a> {
    events: &'a broadcast::Sender<Event>,
    released: Option<&'a mpsc::Sender<Vec<u8>>>,
    counters: &'a Counters,
}

/// Chunks written between two flushes, at most.
pub const FLUSH_EVERY: usize = 8;

/// How long the committer waits for the applier's next chunk before it flushes anyway.
const GROUP_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// A chunk in the tree, waiting for the flush that makes it durable.
struct Durable {
    group: Vec<Checked>,
    events: Vec<Event>,
    released: Vec<Vec<u8>>,
    /// The store's era when it was written.
    era: u64,
}

fn flush_and_answer(store: &Store, pending: &mut Vec<Durable>, out: &Out<'_>) {
    if pending.is_empty() {
        return;
    }
    let flushed = store.flush();
    // Written in an earlier era: a recovery may have reopened the store since, dropping
    // writes no flush had made durable.
    let era = store.era();
    if flushed.is_err() || pending.iter().any(|d| d.era != era) {
        if let Err(e) = &flushed {
            warn!(error = %e, "ingest flush failed");
        }
        let fault = fault_or_retry(store);
        for job in pending.drain(..) {
            for c in job.group {
                c.failed(&fault);
            }
        }
        return;
    }
    for job in pending.drain(..) {
        // Durable: hand what it released to gossip (so that a caller who hears back can
        // count on it being on its way), answer the callers, then tell subscribers.
        out.counters
            .released
            .fetch_add(job.released.len() as u64, Ordering::Relaxed);
        if let Some(tx) = out.released {
            // A full queue drops it: catch-up sync carries it to whoever still lacks it.
            for wire in job.released {
                let _ = tx.try_send(wire);
            }
        }
        for checked in job.group {
            checked.durable();
        }
        for e in job.events {
            // No subscriber is fine.
            let _ = out.events.send(e);
        }
    }
}

/// Stores a record that is ready, and applies what it changes in derived state.
fn store_ready<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    rec: &SignedRecord,
) -> Result<()> {
    let seq = ov.put_record(rec);
    ctx.events.push(Event::stored(rec, seq));
    apply(ov, ctx, rec)
}

/// Entries of the waiting area dropped for age in one chunk, at most (the rest go with the
/// next chunks).
const EXPIRE_PER_CHUNK: usize = 1_024;

/// What [`apply_chunk`] gives: the writes, the events, the batches now fully applied, and the
/// records released from the waiting area (wire bytes).
type ChunkApplied = (Writes, Vec<Event>, Vec<Checked>, Vec<Vec<u8>>);

/// Applies up to [`MAX_COMMIT`] records from the front of the queue into one overlay, after
/// dropping waiting records that have waited too long.
fn apply_chunk<B: Backing>(
    mut ov: Overlay<'_, B>,
    ctx: &mut Ctx,
    queue: &mut VecDeque<Checked>,
    waiting: &mut WaitingArea,
) -> Result<ChunkApplied> {
    let now = now_ms();
    ctx.now = now;
    for (target, id) in waiting.expire(now, EXPIRE_PER_CHUNK) {
        ov.remove_waiting(&target, &id);
    }
    let mut budget = MAX_COMMIT;
    let mut done = Vec::new();
    let mut released = Vec::new();
    let mut ended = Vec::new();
    while let Some(checked) = queue.front_mut() {
        ended.append(&mut checked.ended);
        let n = checked.records.len().min(budget);
        let records: Vec<(usize, SignedRecord)> = checked.records.drain(..n).collect();
        for (i, rec) in records {
            let id = rec.id();
            if ov.has_record(&id)? {
                checked.outcomes[i] = Some(Outcome::Duplicate(id));
                continue;
            }
            let outcome = match readiness(&ov, ctx, &rec)? {
                Readiness::Ready => {
                    store_ready(&mut ov, ctx, &rec)?;
                    release_waiting(&mut ov, ctx, id, waiting, &mut released)?;
                    Outcome::Stored(id)
                }
                Readiness::Wait(target) => {
                    let source = checked.source(i).clone();
                    let meta = WaitingArea::meta(&rec, target, &source, now);
                    if ov.is_waiting(&target, &id)? {
                        // Kept already: it still only waits.
                        Outcome::Waiting(id)
                    } else {
                        match waiting.admit(&meta) {
                            Admit::No => Outcome::Rejected(Rejection::TooManyWaiting),
                            Admit::Yes(evict) => {
                                for (t, e) in &evict {
                                    ov.remove_waiting(t, e);
                                }
                                waiting.evicted(&evict);
                                ov.put_waiting(
                                    &target,
                                    &id,
                                    waiting::encode(now, &source, rec.wire()),
                                );
                                waiting.insert(id, meta);
                                Outcome::Waiting(id)
                            }
                        }
                    }
                }
                Readiness::Reject(why) => Outcome::Rejected(Rejection::Rule(why)),
            };
            checked.outcomes[i] = Some(outcome);
        }
        budget -= n;
        if checked.records.is_empty() {
            if let Some(mut c) = queue.pop_front() {
                c.decided();
                done.push(c);
            }
        }
        if budget == 0 {
            break;
        }
    }
    ctx.flush(&mut ov);
    let mut events = ctx.finish_events(&ov)?;
    // A threshold reached or a campaign funded is journaled with the record that did it.
    for e in &mut events {
        if let Some((m, petition, seq)) = e.milestone() {
            *seq = ov.journal_milestone(m, &petition)?;
        }
    }
    for campaign in ended {
        if let Some(e) = note_end(&mut ov, &campaign, now)? {
            events.push(e);
        }
    }
    Ok((ov.into_writes()?, events, done, released))
}

/// Notes a campaign's end (once per node: `None` if noted before), and tells of it.
fn note_end<B: Backing>(
    ov: &mut Overlay<'_, B>,
    campaign: &RecordId,
    now: u64,
) -> Result<Option<Event>> {
    if ov.ended_noted(campaign)? {
        return Ok(None);
    }
    let Some(t) = ov.petition_tally(campaign)? else {
        return Ok(None);
    };
    let seq = ov.mark_ended(campaign, now)?;
    Ok(Some(Event::CampaignEnded {
        petition: *campaign,
        outcome: t.outcome(now).unwrap_or("failed").to_string(),
        tally: Box::new(t),
        seq,
    }))
}

/// The waiting area as the store holds it.
fn load_waiting(store: &Store, limits: Limits) -> Result<WaitingArea> {
    let now = now_ms();
    let mut area = WaitingArea::new(limits);
    for entry in store.waiting_entries()? {
        let (target, id, value) = entry?;
        let (arrival, source, wire) = waiting::decode(&value, now)?;
        match SignedRecord::from_bytes(wire) {
            Ok(rec) => area.insert(
                id,
                Meta {
                    target,
                    arrival,
                    source,
                    author: rec.author(),
                },
            ),
            // It is dropped (as undecodable) when its target arrives.
            Err(e) => warn!(error = %e, record = %id, "an undecodable waiting record"),
        }
    }
    Ok(area)
}

/// After a failed chunk: the waiting area as the store holds it now.
fn reload_waiting(waiting: &mut WaitingArea, store: &Store, limits: &Limits) {
    match load_waiting(store, limits.clone()) {
        Ok(w) => *waiting = w,
        Err(e) => warn!(error = %e, "cannot read the waiting records"),
    }
}

/// Applies the records that waited for `arrived` (and, in turn, those that waited for them);
/// their wire bytes go to `released`.
fn release_waiting<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    arrived: RecordId,
    waiting: &mut WaitingArea,
    released: &mut Vec<Vec<u8>>,
) -> Result<()> {
    let mut work = vec![arrived];
    while let Some(target) = work.pop() {
        if !waiting.has_target(&target) {
            continue;
        }
        waiting.resolved(&target);
        for value in ov.take_waiting(&target)? {
            let rec = match waiting::decode(&value, 0)
                .and_then(|(_, _, wire)| Ok(SignedRecord::from_bytes(wire)?))
            {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "dropping undecodable waiting record");
                    continue;
                }
            };
            if ov.has_record(&rec.id())? {
                continue;
            }
            match readiness(ov, ctx, &rec)? {
                Readiness::Ready => {
                    store_ready(ov, ctx, &rec)?;
                    released.push(rec.wire().to_vec());
                    work.push(rec.id());
                }
                other => debug!(record = %rec.id(), verdict = ?other, "waiting record refused"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::codec::{self, Stored};
    use crate::store::keys;
    use crate::store::{PetitionTally, Slot};
    use std::collections::BTreeMap;

    /// Every slot and petition tally value, by key.
    fn slots_and_tallies(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
        [keys::SLOT, keys::PETITION_TALLY]
            .into_iter()
            .flat_map(|p| store.tree().scan_prefix([p]))
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (k.to_vec(), v.to_vec())
            })
            .collect()
    }

    /// Ingests `n` records of workload `seed` into `store` through the pipeline (each
    /// acknowledged, so flushed) and stops it.
    pub(crate) fn ingest_workload(store: &Store, seed: u64, n: usize) {
        let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
        let recs = crate::workload::generate(seed, &crate::workload::Params::realistic(n));
        ing.ingest_blocking(recs.iter().map(|r| r.wire().to_vec()).collect())
            .unwrap();
        drop(ing);
        threads.join();
    }

    // The store's redo intents and its one-off migration, seen through whole ingests.

    #[test]
    fn decide_answers_each_record_as_ingest_would_and_the_records_are_then_stored() {
        let store = Store::temporary().unwrap();
        let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
        let recs = crate::workload::generate(5, &crate::workload::Params::realistic(300));
        let mut wires: Vec<Vec<u8>> = recs.iter().map(|r| r.wire().to_vec()).collect();
        // A duplicate within the batch, and a record not in it with a forged signature
        // (a forged copy of a record in the batch would share its id: a duplicate).
        let mut forged = wires.pop().unwrap();
        wires.push(wires[0].clone());
        let n = forged.len();
        forged[n - 1] ^= 1;
        wires.push(forged);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let decided = rt
            .block_on(ing.decide(wires.clone(), vec![Source::Local]))
            .unwrap();
        assert_eq!(decided.len(), wires.len());
        assert!(matches!(decided[wires.len() - 2], Outcome::Duplicate(_)));
        assert!(matches!(
            decided[wires.len() - 1],
            Outcome::Rejected(Rejection::Invalid(_))
        ));
        // The same records again, answered once durable: every one already known, or
        // refused as before; and every record decided as stored is in the store.
        let again = ing.ingest_blocking(wires).unwrap();
        for (d, a) in decided.iter().zip(&again) {
            match d {
                Outcome::Stored(id) | Outcome::Waiting(id) => {
                    assert_eq!(a, &Outcome::Duplicate(*id))
                }
                other => assert_eq!(a.is_accepted(), other.is_accepted()),
            }
        }
        let stored = decided
            .iter()
            .filter(|o| matches!(o, Outcome::Stored(_)))
            .count();
        assert!(stored > 250, "{stored} stored");
        assert_eq!(store.len().unwrap() as usize, stored);
        drop(ing);
        threads.join();
    }

    #[test]
    fn intents_are_retired_by_the_flush_that_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        ingest_workload(&store, 4, 1_000);
        // Acknowledged means flushed, and a flush retires what it covers.
        assert_eq!(store.pending_intents(), 0);
        // A write not yet flushed keeps its intent until the next flush.
        let mut w = BTreeMap::new();
        w.insert(b"ztest".to_vec(), Some(b"value".to_vec()));
        store.write(&w).unwrap();
        assert!(store.pending_intents() > 0);
        store.close().unwrap();
        assert_eq!(store.pending_intents(), 0);
        let n = store.len().unwrap();
        assert!(n > 900, "{n} records stored");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.pending_intents(), 0);
        assert_eq!(store.len().unwrap(), n);
    }

    #[test]
    fn a_store_of_the_previous_format_has_its_derived_state_rebuilt_once_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (tallies, derived) = {
            let store = Store::open(dir.path()).unwrap();
            ingest_workload(&store, 4, 3_000);
            let tallies = store.petitions().unwrap();
            let derived = store.derived_snapshot().unwrap();
            // What the previous version left: no petition histories, tallies computed
            // under its rules (here: every first reach moved), and format 2.
            let mut old = BTreeMap::new();
            for k in store.tree().scan_prefix([keys::HISTORY]).keys() {
                old.insert(k.unwrap().to_vec(), None);
            }
            for (id, mut t) in store.petitions().unwrap() {
                t.first_reached_at = t.first_reached_at.map(|at| at + 1);
                old.insert(
                    keys::key(keys::PETITION_TALLY, &[id.as_bytes()]),
                    Some(t.encode()),
                );
            }
            old.insert(keys::FORMAT.to_vec(), Some(vec![2]));
            store.write(&old).unwrap();
            store.flush().unwrap();
            assert!(!crate::tally::recompute(&store).unwrap().is_empty());
            (tallies, derived)
        };
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.petitions().unwrap(), tallies);
        assert_eq!(store.derived_snapshot().unwrap(), derived);
        assert!(crate::tally::recompute(&store).unwrap().is_empty());
        assert_eq!(
            store.tree().get(keys::FORMAT).unwrap().unwrap().to_vec(),
            vec![keys::FORMAT_VERSION]
        );
        drop(store);
        // Once: a second open rebuilds nothing (a planted value stays).
        let again = Store::open(dir.path()).unwrap();
        let (id, mut t) = again.petitions().unwrap().remove(0);
        t.endorsers += 1;
        again.plant_tally(&id, &t).unwrap();
        drop(again);
        let third = Store::open(dir.path()).unwrap();
        assert_eq!(third.tally(&id).unwrap(), Some(t));
    }

    /// An older node stored a pledge in dollars to a euro campaign, and the retraction of
    /// it: this version refuses the pledge, and a node that never stored it keeps the
    /// retraction waiting. The migration removes both, so the backer's euro pledge counts
    /// as it does on such a node, and the store agrees with a recomputation.
    #[test]
    fn a_migration_removes_what_this_version_refuses_and_what_points_at_it() {
        use chorus_protocol::{
            AuthorKey, Body, Petition, PetitionVariant, RecordBuilder, Retraction,
        };
        let dir = tempfile::tempdir().unwrap();
        let key = |i: u8| chorus_protocol::SigningKey::from_bytes(&[i; 32]);
        let t0 = crate::clock::now_ms() - 60_000;
        let p = RecordBuilder::new(Body::Petition(Petition {
            producer: AuthorKey([3; 32]),
            product: None,
            group: None,
            title: "Tooling".into(),
            text: "Fund the mould".into(),
            threshold: 1,
            deadline: None,
            variant: PetitionVariant::Campaign {
                goal: "30EUR".parse().unwrap(),
            },
        }))
        .created_at(t0)
        .sign(&key(1))
        .unwrap();
        let about = |at: u64, body: Body| {
            RecordBuilder::new(body)
                .created_at(at)
                .topic(p.record().topic)
                .sign(&key(2))
                .unwrap()
        };
        let pledge =
            |at: u64, amount: &str| chorus_protocol::testing::pledge(&p, &key(2), at, Some(amount));
        let euros = pledge(t0 + 1_000, "40EUR");
        let dollars = pledge(t0 + 2_000, "10USD");
        let retraction = about(
            t0 + 3_000,
            Body::Retraction(Retraction {
                target: dollars.id(),
            }),
        );
        {
            let store = Store::open(dir.path()).unwrap();
            let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
            ing.ingest_blocking(vec![p.wire().to_vec(), euros.wire().to_vec()])
                .unwrap();
            drop(ing);
            threads.join();
            // What the older node stored besides, and its format.
            let tree = store.tree();
            let mut ov = crate::store::overlay::Overlay::new(&tree);
            ov.put_record(&dollars);
            ov.put_record(&retraction);
            let mut old = ov.into_writes().unwrap();
            old.insert(keys::FORMAT.to_vec(), Some(vec![2]));
            store.write(&old).unwrap();
            store.flush().unwrap();
            assert_eq!(store.len().unwrap(), 4);
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.contains(&dollars.id()).unwrap());
        assert!(!store.contains(&retraction.id()).unwrap());
        assert_eq!(store.len().unwrap(), 2);
        let t = store.tally(&p.id()).unwrap().unwrap();
        assert_eq!((t.endorsers, t.pledged_total()), (1, Some(4_000)), "{t:?}");
        assert!(t.funded);
        assert!(crate::tally::recompute(&store).unwrap().is_empty());
    }

    #[test]
    fn a_store_written_with_cbor_values_is_migrated_once_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let tallies = {
            let store = Store::open(dir.path()).unwrap();
            ingest_workload(&store, 3, 2_000);
            // What an older node wrote: the same values as CBOR maps, and no format marker.
            let mut old = BTreeMap::new();
            for (k, v) in slots_and_tallies(&store) {
                let cbor = if k[0] == keys::SLOT {
                    codec::cbor_encode(&Slot::decode(&v).unwrap())
                } else {
                    codec::cbor_encode(&PetitionTally::decode(&v).unwrap())
                };
                old.insert(k, Some(cbor));
            }
            assert!(old.len() > 1_000);
            old.insert(keys::FORMAT.to_vec(), None);
            store.write(&old).unwrap();
            store.flush().unwrap();
            assert!(!crate::tally::recompute(&store).unwrap().is_empty());
            store.petitions().unwrap()
        };
        let store = Store::open(dir.path()).unwrap();
        let values = slots_and_tallies(&store);
        assert!(values.values().all(|v| v[0] == codec::COMPACT));
        assert_eq!(store.petitions().unwrap(), tallies);
        assert!(crate::tally::recompute(&store).unwrap().is_empty());
        assert!(store.tree().contains_key(keys::FORMAT).unwrap());
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(slots_and_tallies(&again), values);
    }

    #[test]
    fn milestones_are_journaled_after_their_records_and_a_campaigns_end_is_noted_once() {
        use crate::store::{Journaled, Milestone};
        use chorus_protocol::testing::{author, key, pledge};
        use chorus_protocol::{Body, Petition, PetitionVariant, RecordBuilder};
        let store = Store::temporary().unwrap();
        let now = now_ms();
        let campaign = RecordBuilder::new(Body::Petition(Petition {
            producer: author(9),
            product: None,
            group: None,
            title: "Fund the mould".into(),
            text: "All or nothing".into(),
            threshold: 1,
            deadline: Some(now - 1_000),
            variant: PetitionVariant::Campaign {
                goal: "30EUR".parse().unwrap(),
            },
        }))
        .created_at(now - 5_000)
        .sign(&key(1))
        .unwrap();
        let funding = pledge(&campaign, &key(2), now - 4_000, Some("30EUR"));
        let id = campaign.id();
        store.watch_topic(&campaign.record().topic).unwrap();
        let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
        let mut events = ing.subscribe();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let wires = vec![campaign.wire().to_vec(), funding.wire().to_vec()];
            assert!(ing
                .ingest(wires)
                .await
                .unwrap()
                .iter()
                .all(|o| o.is_accepted()));
            ing.campaigns_ended(vec![id]).await.unwrap();
            // Noted already: nothing more.
            ing.campaigns_ended(vec![id]).await.unwrap();
            // Every event of the jobs above is sent before this one is answered.
            ing.tick().await.unwrap();
        });
        let mut told = Vec::new();
        while let Ok(e) = events.try_recv() {
            match e {
                Event::ThresholdCrossed { seq, .. } => told.push(("threshold", seq)),
                Event::CampaignFunded { seq, .. } => told.push(("funded", seq)),
                Event::CampaignEnded { seq, outcome, .. } => {
                    assert_eq!(outcome, "funded");
                    told.push(("ended", seq));
                }
                _ => {}
            }
        }
        assert_eq!(
            told,
            vec![
                ("threshold", Some(3)),
                ("funded", Some(4)),
                ("ended", Some(5))
            ]
        );
        assert_eq!(
            store.journal_after(0, 100).unwrap(),
            vec![
                (1, Journaled::Record(id)),
                (2, Journaled::Record(funding.id())),
                (3, Journaled::Milestone(Milestone::Threshold, id)),
                (4, Journaled::Milestone(Milestone::Funded, id)),
                (5, Journaled::Milestone(Milestone::Ended, id)),
            ]
        );
        assert!(store.ended_noted(&id).unwrap());
        drop(ing);
        threads.join();
    }
}
