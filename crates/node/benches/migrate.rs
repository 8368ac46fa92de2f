//! Migration benchmark: `cargo bench -p chorus-node --bench migrate`.
//!
//! Ingests N mixed records (default 1,000,000; `CHORUS_BENCH_RECORDS` to change) into a
//! fresh store, closes it, marks it as written by the previous format version (2), and
//! times the open that rebuilds its derived state under this version's rules, in a child
//! process of its own so that its peak RSS is the migration's. Then checks that the
//! rebuilt state agrees with a recomputation, and times a second open. The last line is
//! `key=value` figures.
#![allow(missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use chorus_node::workload::{generate, Params};
use chorus_node::{recompute, Ingest, IngestConfig, Store};
use common::{data_dir, ingest_stream, peak_rss_mb};

const SEED: u64 = 20261207;

fn records() -> usize {
    std::env::var("CHORUS_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

/// Child: opens the store (the migration runs in `Store::open`) and reports.
fn phase_open(dir: &Path) {
    let start = Instant::now();
    let store = Store::open(dir).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let n = store.len().unwrap();
    println!(
        "records={n} migrate_s={secs:.2} migrate_peak_rss_mb={:.0}",
        peak_rss_mb()
    );
    let check = Instant::now();
    let diffs = recompute(&store).unwrap();
    assert!(
        diffs.is_empty(),
        "{} differences after the migration",
        diffs.len()
    );
    eprintln!("recompute agrees ({:.1} s)", check.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--phase-open") {
        phase_open(Path::new(&args[i + 1]));
        return;
    }
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let n = records();
    let dir = data_dir().join(format!("migrate-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    {
        let store = Store::open(&dir).unwrap();
        let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
        let wires = generate(SEED, &Params::realistic(n))
            .into_iter()
            .map(|r| r.wire().to_vec());
        let ((stored, _, _), _, secs) = ingest_stream(&ing, wires);
        eprintln!("ingested {stored} records in {secs:.1} s");
        drop(ing);
        threads.join();
        store.set_format_version(2).unwrap();
    }
    // Opened once more without the marker change would not migrate: check it does now.
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--phase-open", dir.to_str().unwrap()])
        .output()
        .unwrap();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    let migrated = String::from_utf8_lossy(&out.stdout).trim().to_string();
    println!("migration of a store of {n} records: {migrated}");
    let again = Instant::now();
    let store = Store::open(&dir).unwrap();
    let reopen = again.elapsed().as_secs_f64();
    println!("a second open (nothing to migrate): {reopen:.2} s");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    // The last line: the figures.
    println!("{migrated} reopen_s={reopen:.2}");
}
