//! Raw per-core limits of the record format: sign, verify alone and in batches, decode and
//! validate, and the BLAKE3 id. Run: `cargo bench -p chorus-protocol --bench protocol`.
//! Criterion prints `thrpt` in records/s (elements/s) on one core; the last line holds the
//! figures (operations per second on one core, from criterion's mean) as key=value pairs.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use chorus_protocol::{
    verify_batch, AuthorKey, Body, Endorsement, RecordBuilder, RecordId, SignedRecord, SigningKey,
    Topic,
};
use criterion::{BatchSize, Criterion, Throughput};

/// A typical endorsement (the most common record) by key `i`.
fn endorsement(i: u32) -> (SigningKey, RecordBuilder) {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = 7;
    let key = SigningKey::from_bytes(&seed);
    let producer = AuthorKey([9; 32]);
    let b = RecordBuilder::new(Body::Endorsement(Endorsement {
        petition: RecordId::of(b"petition"),
        comment: Some("Count me in, this matters to our household.".into()),
        pledge: None,
    }))
    .topic(Topic::Producer(producer))
    .created_at(1_767_225_600_000 + u64::from(i));
    (key, b)
}

fn records(n: u32) -> Vec<SignedRecord> {
    (0..n)
        .map(|i| {
            let (k, b) = endorsement(i);
            b.sign(&k).expect("valid record")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let recs = records(1024);
    let mut g = c.benchmark_group("protocol");
    g.throughput(Throughput::Elements(1));

    let (key, builder) = endorsement(1);
    g.bench_function("sign (encode + id + sign)", |b| {
        b.iter_batched(
            || builder.clone(),
            |bl| bl.sign(&key),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verify single", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % recs.len();
            recs[i].verify()
        })
    });
    g.bench_function("decode + validate", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % recs.len();
            SignedRecord::from_bytes(recs[i].wire())
        })
    });
    g.bench_function("blake3 id", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % recs.len();
            RecordId::of(recs[i].record_bytes())
        })
    });
    for n in [64usize, 1024] {
        let refs: Vec<&SignedRecord> = recs.iter().take(n).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("verify batch {n}"), |b| {
            b.iter(|| verify_batch(&refs))
        });
    }
    g.finish();
}

/// Where criterion keeps its results (its mean estimates are read back from there).
fn output_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion")
}

/// Operations per second on one core: criterion's mean time of `name` (ns per iteration),
/// times `per_iter` operations.
fn per_s(name: &str, per_iter: f64) -> f64 {
    let path = output_dir()
        .join("protocol")
        .join(name)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("criterion's estimates {}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("criterion's JSON");
    let ns = v["mean"]["point_estimate"]
        .as_f64()
        .expect("a mean estimate");
    per_iter * 1e9 / ns
}

fn main() {
    let mut c = Criterion::default()
        .output_directory(&output_dir())
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
    println!(
        "sign_per_s={:.0} verify_per_s={:.0} decode_per_s={:.0} id_per_s={:.0} verify_batch64_per_s={:.0} verify_batch1024_per_s={:.0}",
        per_s("sign (encode + id + sign)", 1.0),
        per_s("verify single", 1.0),
        per_s("decode + validate", 1.0),
        per_s("blake3 id", 1.0),
        per_s("verify batch 64", 64.0),
        per_s("verify batch 1024", 1024.0),
    );
}
