//! Gossip benchmark: `cargo bench -p chorus-node --bench gossip`.
//!
//! Starts 20 real nodes in this process on 127.0.0.1 (TCP, no mDNS), all following one
//! producer, each bootstrapped from two earlier nodes. Publishes 1,000 reviews from random
//! nodes at a steady pace and measures, over every (record, follower) pair, the time from
//! publish to the follower's store acknowledging it; the delivery ratio; and the gossip
//! copies each node received per record (gossipsub's own count, duplicates included).
//! The last line holds the figures as key=value pairs.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_node::config::Config;
use chorus_node::tally::Event;
use chorus_node::{DataDir, NetEvent, Node};
use chorus_protocol::{AuthorKey, Body, ProductRef, RecordBuilder, RecordId, Review, SigningKey};
use rand::{Rng, SeedableRng};

const NODES: usize = 20;
const RECORDS: usize = 1000;

type Seen = Arc<Mutex<HashMap<RecordId, Vec<Instant>>>>;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn start(producer: AuthorKey, bootstrap: Vec<String>) -> (Node, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    data.init().unwrap();
    let mut c = Config::default();
    c.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    c.network.bootstrap = bootstrap;
    c.network.mdns = false;
    c.api.listen = String::new();
    c.network.author_rate = 10_000;
    c.follow.producers = vec![producer.to_string()];
    let (node, mut events) = Node::start(&data, c).await.unwrap();
    let addr = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(NetEvent::Listening(a))) => break a.to_string(),
            Ok(Some(_)) => {}
            _ => panic!("node did not listen"),
        }
    };
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    (node, addr, dir)
}

fn review(i: usize, producer: AuthorKey) -> chorus_protocol::SignedRecord {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    RecordBuilder::new(Body::Review(Review {
        product: ProductRef {
            producer,
            code: format!("gtin-{}", i % 50),
        },
        rating: (i % 5) as u8 + 1,
        title: Some("Bench".into()),
        text: "A review of typical length, long enough to look like what people write.".into(),
    }))
    .created_at(chorus_node::clock::now_ms())
    .sign(&SigningKey::from_bytes(&seed))
    .unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let producer = AuthorKey(SigningKey::from_bytes(&[42; 32]).verifying_key().to_bytes());
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut nodes: Vec<(Node, String, tempfile::TempDir)> = Vec::new();
    for i in 0..NODES {
        let mut boot = Vec::new();
        if i > 0 {
            boot.push(nodes[0].1.clone());
            boot.push(nodes[rng.random_range(0..i)].1.clone());
            boot.dedup();
        }
        nodes.push(start(producer, boot).await);
    }
    let seen: Seen = Arc::new(Mutex::new(HashMap::new()));
    for (node, _, _) in &nodes {
        let mut rx = node.ingest().subscribe();
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(Event::RecordStored { id, .. }) => {
                        seen.lock()
                            .unwrap()
                            .entry(id)
                            .or_default()
                            .push(Instant::now());
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        eprintln!("lagged {n}")
                    }
                    Err(_) => break,
                }
            }
        });
    }
    // Warm up until the mesh delivers to every node.
    let mut warm = 0usize;
    loop {
        let r = review(1_000_000 + warm, producer);
        nodes[warm % NODES].0.publish(&r).await.unwrap();
        warm += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = seen.lock().unwrap().get(&r.id()).map_or(0, |v| v.len());
        if n == NODES {
            break;
        }
        assert!(
            warm < 120,
            "mesh never formed: {n}/{NODES} nodes got the warm-up record"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let copies_before: u64 = nodes
        .iter()
        .map(|(n, _, _)| n.client().gossip_copies_received())
        .sum();

    eprintln!("publishing {RECORDS} records from random nodes...");
    let records: Vec<_> = (0..RECORDS).map(|i| review(i, producer)).collect();
    let mut published: HashMap<RecordId, Instant> = HashMap::new();
    let start = Instant::now();
    for (i, r) in records.iter().enumerate() {
        let from = rng.random_range(0..NODES);
        published.insert(r.id(), Instant::now());
        nodes[from].0.publish(r).await.unwrap();
        // A steady 200 records/s.
        let due = start + Duration::from_millis(5 * (i as u64 + 1));
        tokio::time::sleep_until(due.into()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let done = {
            let s = seen.lock().unwrap();
            records
                .iter()
                .all(|r| s.get(&r.id()).is_some_and(|v| v.len() == NODES))
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let copies: u64 = nodes
        .iter()
        .map(|(n, _, _)| n.client().gossip_copies_received())
        .sum::<u64>()
        - copies_before;

    let (mut latencies, delivered) = {
        let s = seen.lock().unwrap();
        let mut latencies = Vec::new();
        let mut delivered = 0usize;
        for r in &records {
            let t0 = published[&r.id()];
            if let Some(v) = s.get(&r.id()) {
                // The publisher's own store acknowledges first; the others are deliveries.
                let mut ts = v.clone();
                ts.sort();
                for t in ts.iter().skip(1) {
                    latencies.push(t.duration_since(t0).as_secs_f64() * 1000.0);
                    delivered += 1;
                }
            }
        }
        (latencies, delivered)
    };
    let expected = RECORDS * (NODES - 1);
    let delivery = delivered as f64 / expected as f64;
    let p50 = percentile(&mut latencies, 0.5);
    let p99 = percentile(&mut latencies, 0.99);
    let copies_per = copies as f64 / (RECORDS * (NODES - 1)) as f64;
    println!("nodes {NODES}, records {RECORDS}, deliveries {delivered}/{expected}");
    println!("publish-to-store latency p50 {p50:.1} ms, p99 {p99:.1} ms");
    println!("gossip copies received per record per node {copies_per:.2}");
    println!("delivery={delivery:.4} p50_ms={p50:.1} p99_ms={p99:.1} copies={copies_per:.2}");
    for (n, _, _) in nodes {
        n.shutdown().await.unwrap();
    }
}
