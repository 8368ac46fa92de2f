//! Catch-up sync benchmark: `cargo bench -p chorus-node --bench sync`.
//!
//! In one run, on this machine, with real nodes talking over loopback TCP:
//! - two stores of N records (default 1,000,000) that differ by 1,000 (500 unique on each
//!   side) pull from each other: round trips, bytes exchanged beyond the missing records
//!   themselves (both directions), time until both hold the same set;
//! - the same two stores, now identical, pull again: round trips and bytes;
//! - the start of a node over the store after a clean stop (its indexes from the snapshot
//!   the stop left) and an open without it (as after a crash), which serves at once and
//!   rebuilds the indexes in the background;
//! - the local ingest rate of 200,000 records into a fresh store, then a fresh node pulling
//!   those 200,000 records from that store's node: the pull rate as a ratio of the local one.
//!
//! The base store (N - 1,000 records) is built once into `target/bench-data/` and copied for
//! each side. `CHORUS_BENCH_RECORDS=200000` runs a smaller size.
#![allow(missing_docs)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chorus_node::config::Config;
use chorus_node::net::PeerId;
use chorus_node::workload::{generate, Params};
use chorus_node::{DataDir, Ingest, IngestConfig, NetEvent, Node, Outcome, Store, SyncReport};
use chorus_protocol::sync::reconcile::{Bound, RangeIndex};
use chorus_protocol::{Body, RecordId, SignedRecord};
use common::{data_dir, ingest_stream, wires, write_wires};

const SEED: u64 = 20261125;
const DIFF: usize = 1_000;
const PULL: usize = 200_000;

fn records() -> usize {
    std::env::var("CHORUS_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

/// The workload file: the ingest benchmark's, if it was generated, else our own.
fn workload(n: usize) -> PathBuf {
    let shared = data_dir().join(format!("ingest-{n}-{SEED}/honest.bin"));
    if shared.exists() {
        return shared;
    }
    let own = data_dir().join(format!("sync-{n}-{SEED}.bin"));
    if !own.exists() {
        eprintln!("generating {n} records...");
        std::fs::create_dir_all(data_dir()).unwrap();
        let recs = generate(SEED, &Params::realistic(n));
        write_wires(&own, recs.iter().map(|r| r.wire().to_vec()));
    }
    own
}

fn ingest_into(store_dir: &Path, wires: impl Iterator<Item = Vec<u8>>) -> (usize, f64) {
    let store = Store::open(store_dir).unwrap();
    let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
    let ((stored, _, other), _, secs) = ingest_stream(&ing, wires);
    drop(ing);
    threads.join();
    store.close().unwrap();
    (stored + other, secs)
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success(), "cp -a {} {}", from.display(), to.display());
}

struct Running {
    node: Node,
    addr: String,
}

async fn start(dir: &DataDir) -> Running {
    let mut config = Config::default();
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.network.mdns = false;
    config.api.listen = String::new();
    config.follow.all = true;
    config.sync.on_connect = false;
    config.sync.repair = Duration::ZERO;
    config.sync.session_timeout = Duration::from_secs(3600);
    let (node, mut events) = Node::start(dir, config).await.unwrap();
    let addr = loop {
        if let Some(NetEvent::Listening(a)) = events.recv().await {
            break a.to_string();
        }
    };
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    Running { node, addr }
}

fn peer_of(addr: &str) -> PeerId {
    match addr
        .parse::<chorus_node::net::Multiaddr>()
        .unwrap()
        .iter()
        .last()
    {
        Some(chorus_node::net::Protocol::P2p(p)) => p,
        _ => panic!("no peer id in {addr}"),
    }
}

async fn connect(a: &Running, b: &Running) {
    a.node.client().dial(b.addr.parse().unwrap()).await.unwrap();
    let want = peer_of(&b.addr).to_string();
    while !a.node.status().await.unwrap().peers.contains(&want) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pull(from: &Running, to: &Running) -> SyncReport {
    let mut r = to.node.sync_now(Some(peer_of(&from.addr))).await.unwrap();
    let r = r.pop().unwrap();
    assert_eq!(r.error, None, "{r:?}");
    r
}

fn whole(node: &Node) -> (u64, [u8; 16]) {
    let view = node.store().sync_view();
    let acc = view.accumulate(&[], &Bound::End).unwrap();
    (acc.count(), acc.fingerprint())
}

/// Round trips of a pull: reconciliation rounds, plus one for the fetches that follow the
/// last round (earlier fetches overlap reconciliation).
fn round_trips(r: &SyncReport) -> u32 {
    r.rounds + u32::from(r.fetches > 0)
}

fn main() {
    let n = records();
    assert!(n > DIFF + PULL, "at least {} records", DIFF + PULL + 1);
    let file = workload(n);
    let work = data_dir().join(format!("sync-run-{n}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    // Local ingest rate of PULL records, into the store the fresh node will pull from.
    eprintln!("local ingest of {PULL} records...");
    let source = DataDir::new(work.join("source"));
    source.init().unwrap();
    let (held, secs) = ingest_into(&source.store_path(), wires(&file).take(PULL));
    let local_per_s = held as f64 / secs;

    // The records unique to each side: reviews and endorsements from the last few thousand
    // (every petition stays in the base, so none of them waits for a target), alternately
    // for a and b. The base is every other record.
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    for w in wires(&file).skip(n.saturating_sub(8 * DIFF)) {
        let r = SignedRecord::from_vec(w).unwrap();
        if only_a.len() + only_b.len() == DIFF {
            break;
        }
        if matches!(r.record().body, Body::Review(_) | Body::Endorsement(_)) {
            if only_a.len() <= only_b.len() {
                only_a.push(r);
            } else {
                only_b.push(r);
            }
        }
    }
    assert_eq!(only_a.len() + only_b.len(), DIFF);
    let chosen: HashSet<RecordId> = only_a.iter().chain(&only_b).map(|r| r.id()).collect();
    let only_a: Vec<Vec<u8>> = only_a.iter().map(|r| r.wire().to_vec()).collect();
    let only_b: Vec<Vec<u8>> = only_b.iter().map(|r| r.wire().to_vec()).collect();

    // The base store, built once.
    let base = data_dir().join(format!("sync-base-{n}-{SEED}"));
    if !base.join("complete").exists() {
        eprintln!("building the base store of {} records (once)...", n - DIFF);
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let rest = wires(&file).filter(|w| {
            let (range, _) = chorus_protocol::cbor::split_wire(w).unwrap();
            !chosen.contains(&RecordId::of(&w[range]))
        });
        ingest_into(&base.join("store"), rest);
        std::fs::write(base.join("complete"), b"").unwrap();
    }
    // An open that must rebuild the in-memory indexes (as after a crash): the base store
    // without its snapshot. Closed, it leaves the snapshot the copies start from.
    let base_store = base.join("store");
    let _ = std::fs::remove_file(base_store.join(chorus_node::store::SNAPSHOT_FILE));
    // The store opens at once and rebuilds them in the background (answering sync
    // `not_ready` meanwhile): `crash_open_ms` until it serves, `rebuild_ms` until the
    // rebuild is done.
    let t = Instant::now();
    let s = Store::open(&base_store).unwrap();
    let crash_open_ms = t.elapsed().as_millis();
    assert!(!s.indexes_restored());
    s.wait_indexes();
    let rebuild_ms = t.elapsed().as_millis();
    assert!(s.indexes_ready());
    s.close().unwrap();
    drop(s);
    eprintln!(
        "copying the base store; {} + {} unique records",
        only_a.len(),
        only_b.len()
    );
    let dir_a = DataDir::new(work.join("a"));
    let dir_b = DataDir::new(work.join("b"));
    for d in [&dir_a, &dir_b] {
        d.init().unwrap();
        copy_dir(&base.join("store"), &d.store_path());
    }
    // The copies are gigabytes of dirty pages: written back now, so that the start timed
    // below is the node's, not the kernel's writeback competing with it.
    let synced = Command::new("sync").status().unwrap();
    assert!(synced.success(), "sync");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fresh_dir = DataDir::new(work.join("fresh"));
    rt.block_on(async move {
        let opened = Instant::now();
        let a = start(&dir_a).await;
        let b = start(&dir_b).await;
        let open_ms = opened.elapsed().as_millis() / 2;
        for r in [&a, &b] {
            assert!(r.node.ingest().store().indexes_restored(), "started from the snapshot");
        }
        for (node, unique) in [(&a, &only_a), (&b, &only_b)] {
            let outs = node.node.ingest().ingest(unique.clone()).await.unwrap();
            let stored = outs.iter().filter(|o| matches!(o, Outcome::Stored(_))).count();
            assert_eq!(stored, unique.len(), "every unique record is stored");
        }
        assert_ne!(whole(&a.node), whole(&b.node));
        connect(&a, &b).await;

        eprintln!("two stores of {n} records, {DIFF} differences: pulling both ways...");
        let t = Instant::now();
        let (ra, rb) = tokio::join!(pull(&b, &a), pull(&a, &b));
        let converge_ms = t.elapsed().as_millis();
        assert_eq!(whole(&a.node), whole(&b.node), "converged");
        assert_eq!(whole(&a.node).0 as usize, n - DIFF + only_a.len() + only_b.len());
        let trips = round_trips(&ra).max(round_trips(&rb));
        let overhead = ra.overhead_bytes() + rb.overhead_bytes();
        eprintln!("  a pulled: {ra:?}\n  b pulled: {rb:?}");

        eprintln!("the same stores, now identical: pulling again...");
        let same = pull(&b, &a).await;
        let same_bytes = same.bytes_sent + same.bytes_received;
        a.node.shutdown().await.unwrap();
        b.node.shutdown().await.unwrap();

        eprintln!("a fresh node pulls {PULL} records over loopback...");
        let src = start(&source).await;
        fresh_dir.init().unwrap();
        let fresh = start(&fresh_dir).await;
        connect(&fresh, &src).await;
        let t = Instant::now();
        let r = pull(&src, &fresh).await;
        let pull_secs = t.elapsed().as_secs_f64();
        assert_eq!(whole(&fresh.node), whole(&src.node), "the pull is complete");
        let pull_per_s = r.stored as f64 / pull_secs;
        eprintln!("  {r:?}");
        src.node.shutdown().await.unwrap();
        fresh.node.shutdown().await.unwrap();

        println!(
            "node start at {n} records (store open, listening, answering sync): {open_ms} ms after a clean stop; after a crash, the store opens in {crash_open_ms} ms and rebuilds its indexes in the background in {rebuild_ms} ms"
        );
        println!(
            "{n} vs {n} records, {DIFF} differences: {trips} round trips, {:.1} KiB overhead, converged in {converge_ms} ms",
            overhead as f64 / 1024.0
        );
        println!(
            "identical stores: {} round trip(s), {same_bytes} bytes",
            round_trips(&same)
        );
        println!(
            "local ingest {local_per_s:.0} records/s; pull over loopback {pull_per_s:.0} records/s; ratio {:.3}",
            pull_per_s / local_per_s
        );
        println!(
            "round_trips={trips} overhead_kib={:.1} converge_ms={converge_ms} identical_round_trips={} identical_bytes={same_bytes} pull_ratio={:.3} pull_per_s={pull_per_s:.0} local_ingest_per_s={local_per_s:.0} open_ms={open_ms} crash_open_ms={crash_open_ms} rebuild_ms={rebuild_ms}",
            overhead as f64 / 1024.0,
            round_trips(&same),
            pull_per_s / local_per_s
        );
    });
    let _ = std::fs::remove_dir_all(&work);
}
