//! Raw per-core limits of the record format: sign, verify alone and in batches, decode and
//! validate, and the BLAKE3 id. Run: `cargo bench -p chorus-protocol --bench protocol`.
//! Criterion prints `thrpt` in records/s (elements/s) on one core.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use chorus_protocol::{
    verify_batch, AuthorKey, Body, Endorsement, RecordBuilder, RecordId, SignedRecord, SigningKey,
    Topic,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

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

criterion_group!(benches, bench);
criterion_main!(benches);
