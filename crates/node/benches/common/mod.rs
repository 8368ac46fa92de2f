//! Helpers shared by the benchmarks: where workloads live, their file format, peak RSS and
//! a pipelined ingest loop.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chorus_node::{Ingest, Outcome};

pub fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench-data")
}

pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub fn write_wires(path: &Path, wires: impl Iterator<Item = Vec<u8>>) {
    let mut w = BufWriter::new(File::create(path).expect("create workload file"));
    for wire in wires {
        w.write_all(&(wire.len() as u32).to_le_bytes()).unwrap();
        w.write_all(&wire).unwrap();
    }
    w.flush().unwrap();
}

/// Streams wire records from a workload file.
pub struct Wires(BufReader<File>);

impl Iterator for Wires {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).ok()?;
        let mut wire = vec![0u8; u32::from_le_bytes(len) as usize];
        self.0.read_exact(&mut wire).ok()?;
        Some(wire)
    }
}

pub fn wires(path: &Path) -> Wires {
    Wires(BufReader::with_capacity(
        1 << 20,
        File::open(path).expect("workload file"),
    ))
}

/// Records submitted to the pipeline per call.
pub const JOB: usize = 1024;

/// Ingests a stream of wires in jobs of [`JOB`], six in flight; returns the outcomes'
/// counts (stored, rejected, other), the wire bytes and the seconds taken.
pub fn ingest_stream(
    ing: &Ingest,
    wires: impl Iterator<Item = Vec<u8>>,
) -> ((usize, usize, usize), usize, f64) {
    let (mut stored, mut rejected, mut other) = (0usize, 0usize, 0usize);
    let mut wire_bytes = 0usize;
    let start = Instant::now();
    let mut pending = VecDeque::new();
    let mut tally = |outs: Vec<Outcome>| {
        for o in outs {
            match o {
                Outcome::Stored(_) => stored += 1,
                Outcome::Rejected(_) => rejected += 1,
                _ => other += 1,
            }
        }
    };
    let mut it = wires.peekable();
    while it.peek().is_some() {
        let job: Vec<Vec<u8>> = it.by_ref().take(JOB).collect();
        wire_bytes += job.iter().map(|w| w.len()).sum::<usize>();
        pending.push_back(ing.submit_blocking(job).unwrap());
        if pending.len() >= 6 {
            tally(
                pending
                    .pop_front()
                    .unwrap()
                    .blocking_recv()
                    .unwrap()
                    .unwrap(),
            );
        }
    }
    while let Some(rx) = pending.pop_front() {
        tally(rx.blocking_recv().unwrap().unwrap());
    }
    (
        (stored, rejected, other),
        wire_bytes,
        start.elapsed().as_secs_f64(),
    )
}
