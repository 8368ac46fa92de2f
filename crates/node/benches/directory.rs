//! What finding things costs (issue 20): a consumer node's disk and memory in a network of
//! 100,000 producers and 1,000,000 petitions, and a search's latency and bytes.
//!
//! An archive node holds 100,000 producers' profiles, 10,000 groups and 1,000,000
//! petitions (titles of 3–6 words from a 5,000-word vocabulary, aimed at random producers).
//!
//! 1. **Search.** A consumer node that follows nothing joins it on loopback and pulls what it
//!    keeps (meta's groups and attestations; profiles only of what it uses, so none), then
//!    runs 200 searches (one word, two words, a producer's name, an id prefix): latency from
//!    the call to the merged, verified answer, and bytes sent and received.
//! 2. **Consumer.** That node's store is measured on disk as pulled and after a compaction
//!    (what a node's own online compaction reaches); then a node is started on it in a child
//!    process, connected to the archive, which looks up 50 producers by name on the network,
//!    and reports its resident memory.
//!
//! The archive's store is built once and kept in `target/bench-data/directory-*` (about
//! four minutes on 2 cores, 5.4 GB at a million petitions: remove it when done); `CHORUS_BENCH_PETITIONS` and `CHORUS_BENCH_PRODUCERS` scale
//! the network down. The last line holds the figures as key=value pairs.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chorus_node::config::Config;
use chorus_node::{DataDir, Ingest, IngestConfig, NetEvent, Node, Store};
use chorus_protocol::sync::wire::kinds;
use chorus_protocol::{
    Admission, AuthorKey, Body, Group, Petition, PetitionVariant, Profile, RecordBuilder, Role,
    SignedRecord, SigningKey,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "do", "fa", "gu", "ha", "je", "ko", "li",
    "mo", "nu", "pa", "ri", "se", "ta", "ve", "wo",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A pseudo-word of 2–4 syllables, the same for the same number.
fn word(n: u64) -> String {
    let mut rng = StdRng::seed_from_u64(n);
    (0..rng.random_range(2..=4))
        .map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())])
        .collect()
}

fn key(kind: u8, i: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[0] = kind;
    seed[1..9].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(blake3::hash(&seed).as_bytes())
}

fn sign(k: &SigningKey, at: u64, body: Body) -> Vec<u8> {
    RecordBuilder::new(body)
        .created_at(at)
        .sign(k)
        .expect("valid record")
        .wire()
        .to_vec()
}

/// Producer `i`'s name: two pseudo-words; one in a hundred is a "Café".
fn producer_name(i: u64) -> String {
    let mut name = format!("{} {}", capital(&word(i * 2)), capital(&word(i * 2 + 1)));
    if i.is_multiple_of(100) {
        name = format!("Café {name}");
    }
    name
}

fn capital(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The meta topic of the network: every producer's profile, and the groups.
fn meta_records(producers: usize, groups: usize, at: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(producers + groups);
    let mut threads = Vec::new();
    let chunk = producers.div_ceil(2).max(1);
    for part in 0..2u64 {
        threads.push(std::thread::spawn(move || {
            let from = part * chunk as u64;
            let to = ((part + 1) * chunk as u64).min(producers as u64);
            (from..to)
                .map(|i| {
                    sign(
                        &key(1, i),
                        at,
                        Body::Profile(Profile {
                            name: producer_name(i),
                            role: Role::Producer,
                            about: Some("We make things".into()),
                        }),
                    )
                })
                .collect::<Vec<_>>()
        }));
    }
    for t in threads {
        out.extend(t.join().expect("signing thread"));
    }
    for g in 0..groups as u64 {
        out.push(sign(
            &key(2, g),
            at,
            Body::Group(Group {
                name: format!("{} {} group", capital(&word(1_000_000 + g)), word(g)),
                charter: None,
                admission: Admission::Open,
            }),
        ));
    }
    out
}

/// Petition `i`: 3–6 words of a 5,000-word vocabulary, aimed at a random producer.
fn petition(i: u64, producers: usize, at: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(i ^ 0x5eed);
    let title: Vec<String> = (0..rng.random_range(3..=6))
        .map(|_| word(10_000_000 + rng.random_range(0..5_000u64)))
        .collect();
    let producer = AuthorKey(
        key(1, rng.random_range(0..producers as u64))
            .verifying_key()
            .to_bytes(),
    );
    sign(
        &key(3, i % 50_000),
        at + i,
        Body::Petition(Petition {
            producer,
            product: None,
            group: None,
            title: title.join(" "),
            text: "Please".into(),
            threshold: 100,
            deadline: None,
            variant: PetitionVariant::Demand,
        }),
    )
}

/// Signs `n` petitions on two threads and ingests them as they come.
fn ingest_petitions(ing: &Ingest, n: usize, producers: usize, at: u64) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(16);
    let mut workers = Vec::new();
    for part in 0..2u64 {
        let tx = tx.clone();
        workers.push(std::thread::spawn(move || {
            let mut i = part;
            while i < n as u64 {
                let mut batch = Vec::with_capacity(common::JOB);
                while batch.len() < common::JOB && i < n as u64 {
                    batch.push(petition(i, producers, at));
                    i += 2;
                }
                if tx.send(batch).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let started = Instant::now();
    let mut done = 0usize;
    let (stored, _, _) = common::ingest_stream(
        ing,
        rx.into_iter().flatten().inspect(|_| {
            done += 1;
            if done.is_multiple_of(100_000) {
                eprintln!(
                    "  {done} petitions stored ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }),
    )
    .0;
    for w in workers {
        w.join().expect("signing thread");
    }
    assert_eq!(stored, n, "every petition stored");
}

fn ingest_all(store: &Store, wires: Vec<Vec<u8>>) {
    let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).expect("ingest");
    let ((stored, rejected, _), _, _) = common::ingest_stream(&ing, wires.into_iter());
    assert_eq!(rejected, 0);
    assert!(stored > 0);
    drop(ing);
    threads.join();
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let m = e.metadata().expect("metadata");
        total += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}

fn config() -> Config {
    let mut c = Config::default();
    c.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    c.network.mdns = false;
    c.api.listen = String::new();
    c.sync.on_connect = false;
    c.sync.repair = Duration::ZERO;
    c
}

async fn start(dir: &Path, tune: impl FnOnce(&mut Config)) -> (Node, String) {
    let data = DataDir::new(dir);
    let mut c = config();
    tune(&mut c);
    let (node, mut events) = Node::start(&data, c).await.expect("node start");
    let addr = loop {
        match events.recv().await {
            Some(NetEvent::Listening(a)) => break a.to_string(),
            Some(_) => {}
            None => panic!("node stopped"),
        }
    };
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    (node, addr)
}

fn vm(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn wait_searchable(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while node
        .client()
        .peers()
        .await
        .expect("peers")
        .searchable
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the archive never answered identify"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The child: a consumer node on `dir`, connected to the archive at `archive`; 50 searches
/// of producers' names (each found on the archive), then its memory.
fn consumer_child(dir: &Path, archive: &str, producers: usize) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (node, _) = start(dir, |c| c.network.bootstrap = vec![archive.to_string()]).await;
        wait_searchable(&node).await;
        let mut rng = StdRng::seed_from_u64(7);
        let started = Instant::now();
        for _ in 0..50 {
            let i = rng.random_range(0..producers as u64);
            let name = producer_name(i);
            let s = node
                .directory()
                .search(&name, kinds::PROFILE, 20, true)
                .await
                .expect("search");
            let want = AuthorKey(key(1, i).verifying_key().to_bytes());
            assert!(
                s.hits.iter().any(|h| h.record.author() == want),
                "{name}: {s:?}"
            );
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0 / 50.0;
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "CHILD rss_mb={:.1} hwm_mb={:.1} name_search_ms={ms:.2}",
            vm("VmRSS:"),
            vm("VmHWM:")
        );
        node.shutdown().await.expect("shutdown");
    });
}

/// A data dir for a node, with its store at `store`'s content (copied).
fn data_dir_at(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    DataDir::new(&d).init().expect("init");
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let producers = env_usize("CHORUS_BENCH_PRODUCERS", 100_000);
    let petitions = env_usize("CHORUS_BENCH_PETITIONS", 1_000_000);
    let groups = producers / 10;
    if let (Ok(dir), Ok(archive)) = (
        std::env::var("CHORUS_DIRECTORY_CHILD"),
        std::env::var("CHORUS_DIRECTORY_ARCHIVE"),
    ) {
        consumer_child(Path::new(&dir), &archive, producers);
        return;
    }
    let root = common::data_dir();
    std::fs::create_dir_all(&root).expect("bench data dir");
    let at = chorus_node::clock::now_ms() - 86_400_000;

    // 1. The archive: meta and the petitions, built once and kept.
    let archive_src = root.join(format!("directory-archive-{producers}-{petitions}"));
    let built = archive_src.join("BUILT");
    if !built.exists() {
        let _ = std::fs::remove_dir_all(&archive_src);
        let started = Instant::now();
        eprintln!("building the archive store ({petitions} petitions), once");
        let store = Store::open(&archive_src).expect("store");
        ingest_all(&store, meta_records(producers, groups, at));
        let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).expect("ingest");
        ingest_petitions(&ing, petitions, producers, at);
        drop(ing);
        threads.join();
        store.close().expect("close");
        std::fs::write(&built, b"").expect("marker");
        eprintln!("  built in {:.0} s", started.elapsed().as_secs_f64());
    }
    let archive = data_dir_at(&root, "directory-archive-node");
    let archive_store = DataDir::new(&archive).store_path();
    let _ = std::fs::remove_dir_all(&archive_store);
    copy_dir(&archive_src, &archive_store);
    let _ = std::fs::remove_file(archive_store.join("BUILT"));
    let consumer = data_dir_at(&root, "directory-consumer");
    let consumer_store = DataDir::new(&consumer).store_path();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (a, addr) = rt.block_on(start(&archive, |c| c.follow.all = true));
    // 2. A consumer's node that follows nothing joins: it pulls what it keeps (meta's
    //    groups; no profile, no petition), then searches.
    let (pulled, pull_ms, p50, p99, bytes, found_ratio, unanswered) = rt.block_on(async {
        let (c, _) = start(&consumer, |c| c.network.bootstrap = vec![addr.clone()]).await;
        wait_searchable(&c).await;
        let started = Instant::now();
        let reports = c.sync_now(None).await.expect("pull");
        let pull_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert!(reports.iter().all(|r| r.error.is_none()), "{reports:?}");
        let pulled: u64 = reports.iter().map(|r| r.stored).sum();
        let mut rng = StdRng::seed_from_u64(11);
        let mut times = Vec::new();
        let mut bytes = 0u64;
        let mut found = 0usize;
        let mut unanswered = 0usize;
        let n = 200;
        for q in 0..n {
            let query = match q % 4 {
                0 => word(10_000_000 + rng.random_range(0..5_000u64)),
                1 => format!(
                    "{} {}",
                    word(10_000_000 + rng.random_range(0..5_000u64)),
                    word(10_000_000 + rng.random_range(0..5_000u64))
                ),
                2 => producer_name(rng.random_range(0..producers as u64)),
                _ => {
                    let i = rng.random_range(0..petitions as u64);
                    let rec = SignedRecord::from_vec(petition(i, producers, at)).expect("record");
                    rec.id().to_string()[..10].to_string()
                }
            };
            let started = Instant::now();
            let s = c
                .directory()
                .search(&query, kinds::ALL, 20, true)
                .await
                .expect("search");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            bytes += s.bytes;
            if !s.hits.is_empty() {
                found += 1;
            }
            if s.answered == 0 {
                unanswered += 1;
                eprintln!("  no answer in time for {query:?}");
            }
        }
        times.sort_by(f64::total_cmp);
        c.shutdown().await.expect("shutdown");
        (
            pulled,
            pull_ms,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            bytes / n as u64,
            found as f64 / n as f64,
            unanswered,
        )
    });
    println!(
        "search: {petitions} petitions on the archive, 200 searches from a node that follows \
         nothing: p50 {p50:.1} ms, p99 {p99:.1} ms, {bytes} bytes each on average, \
         {:.0}% found something, {unanswered} not answered within the 1.5 s a peer is given",
        found_ratio * 100.0
    );

    // 3. The consumer's store on disk, as pulled and compacted; then its node's memory,
    //    started on it in a child process that searches the archive by producers' names.
    let synced = dir_size(&consumer_store);
    chorus_node::store::compact::compact(&consumer_store, |_| {}).expect("compact");
    let compacted = dir_size(&consumer_store);
    let child = Command::new(std::env::current_exe().expect("exe"))
        .env("CHORUS_DIRECTORY_CHILD", &consumer)
        .env("CHORUS_DIRECTORY_ARCHIVE", &addr)
        .env("CHORUS_BENCH_PRODUCERS", producers.to_string())
        .output()
        .expect("child");
    let out = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    rt.block_on(a.shutdown()).expect("shutdown");
    let line = out
        .lines()
        .find(|l| l.starts_with("CHILD"))
        .expect("child line");
    let field = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (rss, hwm, name_ms) = (field("rss_mb"), field("hwm_mb"), field("name_search_ms"));
    let mb = |b: u64| b as f64 / 1_048_576.0;
    println!(
        "consumer: joined a network of {producers} producers, {groups} groups and {petitions} \
         petitions following nothing: pulled {pulled} records in {pull_ms:.0} ms; store {:.1} MB \
         as pulled, {:.1} MB compacted; node RSS {rss:.1} MB (peak {hwm:.1}) after 50 searches \
         of producers' names on the network ({name_ms:.1} ms each)",
        mb(synced),
        mb(compacted)
    );
    // The working copies go; the archive built once stays (about 5.4 GB at 1M petitions).
    for d in [&consumer, &archive] {
        let _ = std::fs::remove_dir_all(d);
    }
    println!(
        "producers={producers} petitions={petitions} consumer_disk_mb={:.1} \
         consumer_disk_compacted_mb={:.1} consumer_rss_mb={rss:.1} search_p50_ms={p50:.1} \
         search_p99_ms={p99:.1} search_bytes={bytes} unanswered={unanswered}",
        mb(synced),
        mb(compacted)
    );
}
