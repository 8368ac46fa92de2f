//! Ingest benchmark: `cargo bench -p chorus-node --bench ingest`.
//!
//! In one run, on this machine:
//! - (a)  the raw batch signature-verification rate on all cores,
//! - (a') the raw sled write rate of the same wire bytes inserted by id alone into a fresh
//!   tree, batched and flushed as the ingest pipeline does under load; measured just
//!   before and just after (b), and the mean of the two used (the machine's load drifts),
//! - (b)  ingest of N mixed records (default 1,000,000) into a fresh store,
//! - (c)  the same ingest with 1% of the records forged (signed by another key: valid form,
//!   so only the signature equation catches them, which defeats batch verification),
//! - (d)  the honest ingest into a store that compacts itself as a running node does,
//!
//! then the ratios, peak RSS, disk bytes per record (after ingest, after a reopen, after an
//! online compaction) and tally/rating query latencies.
//! Each phase runs in a child process of its own (this binary, re-executed) so that its peak
//! RSS is its own. The workload is generated once into `target/bench-data/` and reused.
//! `CHORUS_BENCH_RECORDS=200000` runs a smaller size.
#![allow(missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chorus_node::workload::{generate, Params};
use chorus_node::{Ingest, IngestConfig, Store};
use chorus_protocol::{
    verify_batch_cached, AuthorKey, Body, KeyCache, RecordId, SignedRecord, SigningKey,
};
use rayon::prelude::*;
use serde_json::{json, Value};

const SEED: u64 = 20261125;
use common::{data_dir, peak_rss_mb, wires, write_wires};

fn records() -> usize {
    std::env::var("CHORUS_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

/// Child: generates the workload files (honest, 1% forged) and the query targets.
fn phase_gen(n: usize, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let recs = generate(SEED, &Params::realistic(n));
    let forger = SigningKey::from_bytes(&[0xee; 32]);
    let mut petitions = Vec::new();
    let mut products = Vec::new();
    for r in &recs {
        match &r.record().body {
            Body::Petition(_) => petitions.push(r.id().to_string()),
            Body::Review(rv) => {
                products.push((rv.product.producer.to_string(), rv.product.code.clone()))
            }
            _ => {}
        }
    }
    products.sort();
    products.dedup();
    write_wires(
        &dir.join("honest.bin"),
        recs.iter().map(|r| r.wire().to_vec()),
    );
    let mut forged = 0usize;
    write_wires(
        &dir.join("forged.bin"),
        recs.iter().enumerate().map(|(i, r)| {
            // Every 100th record, spread evenly: a signature by another key.
            if i % 100 == 37 {
                forged += 1;
                use chorus_protocol::sign::message;
                use ed25519_dalek::Signer;
                let sig = forger.sign(&message(&r.id())).to_bytes();
                chorus_protocol::cbor::encode_wire(r.record_bytes(), &sig)
            } else {
                r.wire().to_vec()
            }
        }),
    );
    let meta =
        json!({ "records": n, "forged": forged, "petitions": petitions, "products": products });
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
}

/// Child (a): batch verification on all cores, over the first 200,000 records.
fn phase_verify(dir: &Path) -> Value {
    let recs: Vec<SignedRecord> = wires(&dir.join("honest.bin"))
        .take(200_000)
        .map(|w| SignedRecord::from_vec(w).unwrap())
        .collect();
    let start = Instant::now();
    let ok: usize = recs
        .par_chunks(64)
        .map_init(KeyCache::new, |cache, chunk| {
            let refs: Vec<&SignedRecord> = chunk.iter().collect();
            verify_batch_cached(&refs, cache)
                .iter()
                .filter(|v| v.is_ok())
                .count()
        })
        .sum();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(ok, recs.len());
    json!({ "verify_per_s": recs.len() as f64 / secs, "cores": rayon::current_num_threads() })
}

/// Child (a'): the same wire bytes inserted by id alone, written and flushed as the store
/// writes under load: groups of `MAX_COMMIT` keys inserted one by one in key order, one
/// flush per `FLUSH_EVERY` groups. (A `sled::Batch` per group measured the same rate.)
fn phase_engine(dir: &Path, store_dir: &Path) -> Value {
    let db = sled::Config::new()
        .path(store_dir)
        .cache_capacity(chorus_node::store::CACHE_BYTES)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
        .open()
        .unwrap();
    let tree = db.open_tree("raw").unwrap();
    let mut n = 0usize;
    let start = Instant::now();
    let mut it = wires(&dir.join("honest.bin")).peekable();
    let mut unflushed = 0;
    while it.peek().is_some() {
        let mut group = std::collections::BTreeMap::new();
        for w in it.by_ref().take(chorus_node::ingest::MAX_COMMIT) {
            let (range, _) = chorus_protocol::cbor::split_wire(&w).unwrap();
            group.insert(RecordId::of(&w[range]), w);
            n += 1;
        }
        for (id, w) in group {
            tree.insert(id.as_bytes(), w).unwrap();
        }
        unflushed += 1;
        if unflushed == chorus_node::ingest::FLUSH_EVERY || it.peek().is_none() {
            db.flush().unwrap();
            unflushed = 0;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    json!({ "engine_per_s": n as f64 / secs, "peak_rss_mb": peak_rss_mb() })
}

fn percentile(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

/// The index snapshot a clean close leaves in the store's directory, if any.
fn snapshot_bytes(store_dir: &Path) -> u64 {
    std::fs::metadata(store_dir.join(chorus_node::store::SNAPSHOT_FILE)).map_or(0, |m| m.len())
}

/// Child (b) or (c): ingest a workload file into a fresh store, then query it.
fn phase_ingest(dir: &Path, file: &str, store_dir: &Path, meta: &Value) -> Value {
    let store = Store::open(store_dir).unwrap();
    let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
    let ((stored, rejected, other), wire_bytes, secs) =
        common::ingest_stream(&ing, wires(&dir.join(file)));
    let n = stored + rejected + other;
    let rss = peak_rss_mb();
    drop(ing);
    threads.join();

    // Query latencies at this size.
    let petitions: Vec<RecordId> = meta["petitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().parse().unwrap())
        .collect();
    let products: Vec<(AuthorKey, String)> = meta["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v[0].as_str().unwrap().parse().unwrap(),
                v[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut tally_t = Vec::with_capacity(10_000);
    let mut rating_t = Vec::with_capacity(10_000);
    for i in 0..10_000usize {
        let p = &petitions[(i * 7919) % petitions.len()];
        let t = Instant::now();
        let got = store.tally(p).unwrap();
        tally_t.push(t.elapsed());
        assert!(got.is_some() || file != "honest.bin");
        let (producer, code) = &products[(i * 104_729) % products.len()];
        let t = Instant::now();
        let r = store.rating(producer, code).unwrap();
        rating_t.push(t.elapsed());
        assert!(r.count > 0 || file != "honest.bin");
    }
    store.flush().unwrap();
    let disk = store.size_on_disk().unwrap();
    // Settled: closed and opened again (sled rewrites what it recovers; the snapshot of the
    // indexes is counted).
    store.close().unwrap();
    drop(store);
    let reopened = Store::open(store_dir).unwrap();
    let settled = reopened.size_on_disk().unwrap() + snapshot_bytes(store_dir);
    // Compacted while open (what a node does by itself once its store has grown to twice
    // its compacted size), in the honest run only.
    let (compacted, compact_s) = if file == "honest.bin" {
        let t = Instant::now();
        let c = reopened
            .compact_online(&std::sync::atomic::AtomicBool::new(false))
            .unwrap()
            .unwrap();
        (c.after, t.elapsed().as_secs_f64())
    } else {
        (0, 0.0)
    };
    reopened.close().unwrap();
    drop(reopened);
    let t = Instant::now();
    let again = Store::open(store_dir).unwrap();
    let open_after_compact_ms = t.elapsed().as_secs_f64() * 1e3;
    again.close().unwrap();
    drop(again);
    json!({
        "open_after_compact_ms": open_after_compact_ms,
        "disk_compacted_per_record": compacted as f64 / stored.max(1) as f64,
        "compact_s": compact_s,
        "per_s": n as f64 / secs,
        "stored": stored,
        "rejected": rejected,
        "other": other,
        "peak_rss_mb": rss,
        "disk_per_record": disk as f64 / stored.max(1) as f64,
        "disk_reopened_per_record": settled as f64 / stored.max(1) as f64,
        "wire_per_record": wire_bytes as f64 / n.max(1) as f64,
        "tally_p50_us": percentile(tally_t.clone(), 0.5),
        "tally_p99_us": percentile(tally_t, 0.99),
        "rating_p50_us": percentile(rating_t.clone(), 0.5),
        "rating_p99_us": percentile(rating_t, 0.99),
    })
}

/// Child (d): the honest ingest into a fresh store that compacts itself as a node's does
/// (the node's policy, looking every 10 s rather than every minute: the worst case).
fn phase_compacting(dir: &Path, store_dir: &Path) -> Value {
    let policy = chorus_node::store::compact::Policy {
        every: Duration::from_secs(10),
        ..Default::default()
    };
    let store = Store::open(store_dir)
        .unwrap()
        .with_compaction(policy)
        .unwrap();
    let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
    let ((stored, rejected, other), _, secs) =
        common::ingest_stream(&ing, wires(&dir.join("honest.bin")));
    let n = stored + rejected + other;
    let rss = peak_rss_mb();
    drop(ing);
    threads.join();
    store.flush().unwrap();
    let disk = store.size_on_disk().unwrap();
    store.close().unwrap();
    let generation = std::fs::read_to_string(store_dir.join("GENERATION"))
        .ok()
        .and_then(|t| {
            t.trim_start_matches('g')
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    json!({
        "per_s": n as f64 / secs,
        "peak_rss_mb": rss,
        "compactions": generation,
        "disk_per_record": disk as f64 / stored.max(1) as f64,
    })
}

fn child(phase: &str) -> Value {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .env("CHORUS_BENCH_PHASE", phase)
        .output()
        .expect("run bench phase");
    assert!(
        out.status.success(),
        "phase {phase} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("phase output");
    serde_json::from_str(line).unwrap()
}

fn main() {
    let n = records();
    let dir = data_dir().join(format!("ingest-{n}-{SEED}"));
    if let Ok(phase) = std::env::var("CHORUS_BENCH_PHASE") {
        let meta = || -> Value {
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap()
        };
        let store_dir =
            std::env::temp_dir().join(format!("chorus-bench-{}-{phase}", std::process::id()));
        let v = match phase.as_str() {
            "gen" => {
                phase_gen(n, &dir);
                json!({})
            }
            "verify" => phase_verify(&dir),
            "engine" => phase_engine(&dir, &store_dir),
            "ingest" => phase_ingest(&dir, "honest.bin", &store_dir, &meta()),
            "forged" => phase_ingest(&dir, "forged.bin", &store_dir, &meta()),
            "compacting" => phase_compacting(&dir, &store_dir),
            other => panic!("unknown phase {other}"),
        };
        let _ = std::fs::remove_dir_all(&store_dir);
        println!("{v}");
        return;
    }
    if !dir.join("meta.json").exists() {
        eprintln!("generating {n} records into {} (once)...", dir.display());
        child("gen");
    }
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    eprintln!("(a)  batch verification on all cores...");
    let a = child("verify");
    // (a') is measured just before and just after (b), and their mean taken: the shared
    // machine's load drifts, and (a') takes a quarter of the time (b) does, so a single
    // measurement of it is far noisier than (b) and would swing the ratio on its own.
    eprintln!("(a') raw sled inserts by id...");
    let e1 = child("engine");
    eprintln!("(b)  ingest of {n} mixed records...");
    let b = child("ingest");
    eprintln!("(a') raw sled inserts by id, again...");
    let e2 = child("engine");
    eprintln!("(c)  ingest with 1% forged...");
    let c = child("forged");
    eprintln!("(d)  ingest into a store that compacts itself...");
    let d = child("compacting");

    let verify = a["verify_per_s"].as_f64().unwrap();
    let (engine1, engine2) = (
        e1["engine_per_s"].as_f64().unwrap(),
        e2["engine_per_s"].as_f64().unwrap(),
    );
    let engine = (engine1 + engine2) / 2.0;
    let ingest = b["per_s"].as_f64().unwrap();
    let forged = c["per_s"].as_f64().unwrap();
    assert_eq!(
        b["rejected"].as_u64(),
        Some(0),
        "honest workload fully accepted: {b}"
    );
    assert_eq!(
        c["rejected"].as_u64(),
        meta["forged"].as_u64(),
        "each forged record rejected: {c}"
    );
    // Honest records of the forged run are all kept: stored, or waiting when what they
    // point at was one of the forged records.
    assert_eq!(
        c["stored"].as_u64().unwrap()
            + c["rejected"].as_u64().unwrap()
            + c["other"].as_u64().unwrap(),
        b["stored"].as_u64().unwrap(),
        "every record of the forged run has a verdict"
    );
    let peak = b["peak_rss_mb"]
        .as_f64()
        .unwrap()
        .max(c["peak_rss_mb"].as_f64().unwrap());
    println!("records                      {n}");
    println!(
        "(a)  batch verify, {} cores   {verify:>10.0} records/s",
        a["cores"]
    );
    println!("(a') sled insert by id        {engine:>10.0} records/s (mean of {engine1:.0} before and {engine2:.0} after (b))");
    println!("(b)  ingest                   {ingest:>10.0} records/s");
    println!("(c)  ingest, 1% forged        {forged:>10.0} records/s ({} forged rejected, {} waiting for a forged target)", c["rejected"], c["other"]);
    println!(
        "(b)/(a)  {:.3}   (b)/(a') {:.3}   (c)/(b) {:.3}",
        ingest / verify,
        ingest / engine,
        forged / ingest
    );
    println!(
        "peak RSS {peak:.0} MB; disk {:.0} B/record after ingest, {:.0} after a reopen, {:.0} after the online compaction ({:.1} s); wire {:.0} B/record",
        b["disk_per_record"].as_f64().unwrap(),
        b["disk_reopened_per_record"].as_f64().unwrap(),
        b["disk_compacted_per_record"].as_f64().unwrap(),
        b["compact_s"].as_f64().unwrap(),
        b["wire_per_record"].as_f64().unwrap()
    );
    let compacting = d["per_s"].as_f64().unwrap();
    println!(
        "(d)  ingest, compacting        {compacting:>10.0} records/s ({} compactions, {:.0} B/record on disk at the end, peak RSS {:.0} MB); (d)/(b) {:.3}",
        d["compactions"],
        d["disk_per_record"].as_f64().unwrap(),
        d["peak_rss_mb"].as_f64().unwrap(),
        compacting / ingest
    );
    println!(
        "tally p50/p99 {:.1}/{:.1} µs; rating p50/p99 {:.1}/{:.1} µs",
        b["tally_p50_us"].as_f64().unwrap(),
        b["tally_p99_us"].as_f64().unwrap(),
        b["rating_p50_us"].as_f64().unwrap(),
        b["rating_p99_us"].as_f64().unwrap()
    );
    println!(
        "verify_ratio={:.3} engine_ratio={:.3} forged_ratio={:.3} records_per_s={:.0} verify_per_s={:.0} engine_per_s={:.0} peak_rss_mb={:.0} disk_per_record={:.0} disk_reopened_per_record={:.0} disk_compacted_per_record={:.0} compact_s={:.1} open_after_compact_ms={:.0} wire_per_record={:.0} tally_p99_us={:.1} rating_p99_us={:.1} compacting_ratio={:.3} compacting_disk_per_record={:.0} compacting_rss_mb={:.0}",
        ingest / verify,
        ingest / engine,
        forged / ingest,
        ingest,
        verify,
        engine,
        peak,
        b["disk_per_record"].as_f64().unwrap(),
        b["disk_reopened_per_record"].as_f64().unwrap(),
        b["disk_compacted_per_record"].as_f64().unwrap(),
        b["compact_s"].as_f64().unwrap(),
        b["open_after_compact_ms"].as_f64().unwrap(),
        b["wire_per_record"].as_f64().unwrap(),
        b["tally_p99_us"].as_f64().unwrap(),
        b["rating_p99_us"].as_f64().unwrap().max(0.0),
        compacting / ingest,
        d["disk_per_record"].as_f64().unwrap(),
        d["peak_rss_mb"].as_f64().unwrap(),
    );
}
