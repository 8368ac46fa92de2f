//! Crash safety: a child process ingests continuously and is killed with SIGKILL at random
//! moments; after reopening, every record it had acknowledged is there and the derived state
//! agrees with a recomputation from raw records.
//!
//! The child is this same test binary, re-run with `CHORUS_CRASH_CHILD` set: the test
//! function then plays the child instead of the parent.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_node::workload::{generate, Params};
use chorus_node::{recompute, Ingest, IngestConfig, Outcome, Store};
use chorus_protocol::RecordId;
use rand::{Rng, SeedableRng};

const ROUNDS: usize = 5;
const RECORDS: usize = 40_000;
/// Acknowledgements to wait for in each round before the kill may come (so the rounds store
/// enough in all however slow the machine is), unless the child finishes first.
const MIN_ACKS_PER_ROUND: usize = 300;
/// Longest wait for those acknowledgements.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(120);

/// Child: ingest the workload in random batch sizes, printing each acknowledgement only
/// after the ingest call returned (the batch is flushed to disk by then).
fn child(dir: &str) {
    let store = Store::open(dir).unwrap();
    let (ing, _threads) = Ingest::start(store, IngestConfig::default()).unwrap();
    let recs = generate(99, &Params::realistic(RECORDS));
    let mut rng = rand::rngs::StdRng::seed_from_u64(std::process::id().into());
    let mut out = std::io::stdout().lock();
    writeln!(out, "started").unwrap();
    out.flush().unwrap();
    let mut rest = &recs[..];
    while !rest.is_empty() {
        let k = rng.random_range(1..=rest.len().min(300));
        let outs = ing
            .ingest_blocking(rest[..k].iter().map(|r| r.wire().to_vec()).collect())
            .unwrap();
        for o in outs {
            match o {
                Outcome::Stored(id) => writeln!(out, "stored {id}").unwrap(),
                Outcome::Waiting(id) => writeln!(out, "waiting {id}").unwrap(),
                _ => {}
            }
        }
        out.flush().unwrap();
        rest = &rest[k..];
    }
    writeln!(out, "done").unwrap();
    out.flush().unwrap();
    // Wait to be killed, as a node would run on.
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn acknowledged_records_survive_sigkill() {
    if let Ok(dir) = std::env::var("CHORUS_CRASH_CHILD") {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed: u64 = rand::rng().random();
    eprintln!("kill-timing seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut stored: Vec<RecordId> = Vec::new();
    let mut waiting: Vec<RecordId> = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "acknowledged_records_survive_sigkill",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CHORUS_CRASH_CHILD", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        // Progress of this round, as the child reports it.
        let acks = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let reader = std::thread::spawn({
            let (acks, done) = (acks.clone(), done.clone());
            move || {
                let mut lines = Vec::new();
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.ends_with("started") {
                        let _ = started_tx.send(());
                    } else if line.starts_with("stored ") {
                        acks.fetch_add(1, Ordering::SeqCst);
                    } else if line == "done" {
                        done.store(true, Ordering::SeqCst);
                    }
                    lines.push(line);
                }
                lines
            }
        });
        // Kill at a random moment while it ingests: once it has made enough progress (not
        // after a fixed time, which a loaded machine may spend on very little work).
        let started = started_rx.recv_timeout(Duration::from_secs(300)).is_ok();
        let mut stalled = None;
        if started {
            let deadline = Instant::now() + PROGRESS_DEADLINE;
            while acks.load(Ordering::SeqCst) < MIN_ACKS_PER_ROUND && !done.load(Ordering::SeqCst) {
                if Instant::now() >= deadline {
                    stalled = Some(acks.load(Ordering::SeqCst));
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if stalled.is_none() {
                std::thread::sleep(Duration::from_millis(rng.random_range(0..800)));
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        assert!(
            lines.iter().any(|l| l.ends_with("started")),
            "round {round}: child never started"
        );
        if let Some(n) = stalled {
            panic!(
                "round {round}: the child acknowledged only {n} records (wanted \
                 {MIN_ACKS_PER_ROUND} or \"done\") within {PROGRESS_DEADLINE:?} of starting"
            );
        }
        let before = stored.len();
        for l in &lines {
            if let Some(id) = l.strip_prefix("stored ") {
                stored.push(id.parse().unwrap());
            } else if let Some(id) = l.strip_prefix("waiting ") {
                waiting.push(id.parse().unwrap());
            }
        }
        eprintln!(
            "round {round}: {} new acknowledgements",
            stored.len() - before
        );

        let store = Store::open(dir.path()).unwrap();
        for id in &stored {
            assert!(
                store.contains(id).unwrap(),
                "round {round}: acknowledged {id} lost"
            );
        }
        let held = store.waiting_ids().unwrap();
        for id in &waiting {
            assert!(
                store.contains(id).unwrap() || held.contains(id),
                "round {round}: acknowledged waiting record {id} lost"
            );
        }
        let diffs = recompute(&store).unwrap();
        assert!(
            diffs.is_empty(),
            "round {round}: derived state differs: {:?}",
            &diffs[..diffs.len().min(5)]
        );
    }
    assert!(
        stored.len() > 1000,
        "the child stored too little to prove anything: {}",
        stored.len()
    );
}
