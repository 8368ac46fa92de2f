//! Scale benchmark: `cargo bench -p chorus-node --bench scale`.
//!
//! Runs 100, 300 and 1,000 real nodes in this process on libp2p's in-memory transport (noise
//! and yamux over it, as over TCP), each with its own sled store on a memory file system and
//! the node's own gossip, ingest and sync code, all following one producer. Each node
//! bootstraps from three random earlier nodes; Kademlia finds the rest. Once a warm-up record
//! reaches every node, 1,000 reviews are published from random nodes at a steady pace, and
//! for each size the benchmark reports:
//!
//! - delivery: the share of (record, node) pairs stored by the end (30 s after the last
//!   publish at most);
//! - p50 and p99 of the time from publish to a node's store acknowledging the record;
//! - gossip copies received per record per node (duplicates included);
//! - bytes sent per node (every protocol, handshakes included) during the run;
//! - memory per node: the process' resident memory once the nodes run, less that before
//!   they started, divided by the nodes;
//! - CPU: the process' CPU time during the run, per node.
//!
//! Then again in two hostile settings:
//!
//! - 10% of the nodes hostile: half flood forged records (50 a second each), half are black
//!   holes (real libp2p peers that join the gossip mesh and the DHT and forward nothing);
//!   delivery counts honest nodes only;
//! - 20% of the nodes restart during the run (down 2 to 10 s each, at a random moment): they
//!   must catch up by sync what gossip sent while they were down.
//!
//! `SCALE_NODES` (default `100,300,1000`), `SCALE_RECORDS` (default 1,000) and `SCALE_RATE`
//! (records a second, default 10) change the run; `SCALE_CASES` picks among `base`,
//! `hostile` and `churn` (default all three). Each run's figures are also written as CSV to
//! the bench data directory (`scale.csv`). The last line holds the figures of the largest
//! size as key=value pairs.

#![allow(missing_docs)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_node::config::Config;
use chorus_node::net::shard_of;
use chorus_node::tally::Event;
use chorus_node::{DataDir, NetEvent, Node};
use chorus_protocol::{
    AuthorKey, Body, ProductRef, RecordBuilder, RecordId, Review, SignedRecord, SigningKey, Topic,
};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, kad, Multiaddr};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex as AsyncMutex;
use tokio_util::sync::CancellationToken;

/// Where each node's store lives: a memory file system when there is one (a thousand
/// stores flushing to a disk would measure the disk).
fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The process' CPU time (user and system), in seconds.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let hz = 100.0; // USER_HZ, fixed at 100 by the Linux ABI for /proc.
    (ticks(11) + ticks(12)) / hz
}

fn review(seed: u64, producer: AuthorKey) -> SignedRecord {
    let mut key = [9u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    RecordBuilder::new(Body::Review(Review {
        product: ProductRef {
            producer,
            code: format!("gtin-{}", seed % 50),
        },
        rating: (seed % 5) as u8 + 1,
        title: Some("Scale".into()),
        text: "A review of typical length, long enough to look like what people write.".into(),
    }))
    .created_at(chorus_node::clock::now_ms())
    .sign(&SigningKey::from_bytes(&key))
    .unwrap()
}

/// A review whose signature is another key's: what a flooder sends.
fn forged(seed: u64, producer: AuthorKey) -> Vec<u8> {
    let honest = review(seed, producer);
    let other = SigningKey::from_bytes(&[201; 32]);
    let sig = ed25519_dalek::Signer::sign(&other, &chorus_protocol::sign::message(&honest.id()))
        .to_bytes();
    chorus_protocol::cbor::encode_wire(honest.record_bytes(), &sig)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Honest,
    Flooder,
    BlackHole,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    Base,
    Hostile,
    Churn,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Base => "base",
            Case::Hostile => "hostile",
            Case::Churn => "churn",
        }
    }
}

/// Which node stored which record, and when: `at[record * nodes + node]`.
struct Seen {
    nodes: usize,
    index: HashMap<RecordId, usize>,
    at: Mutex<Vec<Option<Instant>>>,
    /// Warm-up records: how many nodes stored each.
    warm: Mutex<HashMap<RecordId, usize>>,
}

impl Seen {
    fn stored(&self, node: usize, id: RecordId) {
        let now = Instant::now();
        match self.index.get(&id) {
            Some(&r) => {
                let mut at = self.at.lock().unwrap();
                let slot = &mut at[r * self.nodes + node];
                if slot.is_none() {
                    *slot = Some(now);
                }
            }
            None => *self.warm.lock().unwrap().entry(id).or_default() += 1,
        }
    }
}

/// A node's slot: the node while it runs (taken out while it restarts).
struct Slot {
    role: Role,
    node: AsyncMutex<Option<Node>>,
    dir: tempfile::TempDir,
    config: Config,
    addr: String,
}

fn config(port: u64, bootstrap: Vec<String>, producer: AuthorKey) -> Config {
    let mut c = Config::default();
    c.network.listen = vec![format!("/memory/{port}")];
    c.network.bootstrap = bootstrap;
    c.network.mdns = false;
    c.api.listen = String::new();
    c.network.author_rate = 10_000;
    c.network.idle_timeout = Duration::from_secs(env_or("SCALE_IDLE_S", 15));
    c.follow.producers = vec![producer.to_string()];
    c
}

/// Starts a node and follows its store's acknowledgements into `seen`.
async fn start_node(
    dir: &DataDir,
    config: Config,
    index: usize,
    seen: &Arc<Seen>,
) -> (Node, String) {
    let (node, mut events) = Node::start(dir, config).await.unwrap();
    let addr = loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
            Ok(Some(NetEvent::Listening(a))) => break a.to_string(),
            Ok(Some(_)) => {}
            _ => panic!("node {index} did not listen"),
        }
    };
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let mut rx = node.ingest().subscribe();
    let seen = seen.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(Event::RecordStored { id, .. }) => seen.stored(index, id),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("node {index}: {n} events lagged")
                }
                Err(_) => break,
            }
        }
    });
    (node, addr)
}

/// A black hole: a libp2p peer that speaks identify and Kademlia like a node, subscribes to
/// the shard, joins meshes, and never validates (so never forwards) anything.
#[derive(NetworkBehaviour)]
struct HoleBehaviour {
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    gossipsub: gossipsub::Behaviour,
}

async fn black_hole(
    port: u64,
    bootstrap: Vec<String>,
    shard: String,
    cancel: CancellationToken,
) -> String {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let gossip = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m| gossipsub::MessageId::from(RecordId::of(&m.data).as_bytes().to_vec()))
        .max_transmit_size(64 * 1024)
        .build()
        .unwrap();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            use libp2p::Transport;
            libp2p::core::transport::MemoryTransport::default()
                .upgrade(libp2p::core::upgrade::Version::V1)
                .authenticate(libp2p::noise::Config::new(key).unwrap())
                .multiplex(libp2p::yamux::Config::default())
        })
        .unwrap()
        .with_behaviour(|key| {
            let mut kad = kad::Behaviour::new(peer, kad::store::MemoryStore::new(peer));
            kad.set_mode(Some(kad::Mode::Server));
            HoleBehaviour {
                identify: identify::Behaviour::new(identify::Config::new(
                    chorus_node::net::PROTOCOL_VERSION.into(),
                    key.public(),
                )),
                kad,
                gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip)
                    .unwrap(),
            }
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let listen: Multiaddr = format!("/memory/{port}").parse().unwrap();
    swarm.listen_on(listen.clone()).unwrap();
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(shard))
        .unwrap();
    for b in bootstrap {
        let addr: Multiaddr = b.parse().unwrap();
        if let Some(libp2p::multiaddr::Protocol::P2p(p)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&p, addr.clone());
        }
        let _ = swarm.dial(addr);
    }
    let _ = swarm.behaviour_mut().kad.bootstrap();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                ev = swarm.select_next_some() => {
                    if let libp2p::swarm::SwarmEvent::Behaviour(HoleBehaviourEvent::Identify(
                        identify::Event::Received { peer_id, info, .. },
                    )) = ev
                    {
                        for a in info.listen_addrs {
                            swarm.behaviour_mut().kad.add_address(&peer_id, a);
                        }
                    }
                }
            }
        }
    });
    format!("{listen}/p2p/{peer}")
}

/// Mean connected peers of the nodes running now (black holes aside).
async fn peers_per_node(slots: &[Arc<Slot>]) -> f64 {
    let (mut nodes, mut peers) = (0usize, 0usize);
    for s in slots {
        if let Some(node) = s.node.lock().await.as_ref() {
            nodes += 1;
            peers += node.client().peers().await.map_or(0, |p| p.connected.len());
        }
    }
    peers as f64 / nodes.max(1) as f64
}

#[derive(Debug, Clone)]
struct Figures {
    nodes: usize,
    case: Case,
    delivery: f64,
    p50_ms: f64,
    p99_ms: f64,
    copies: f64,
    kb_sent_per_node: f64,
    mem_per_node_mb: f64,
    cpu_s_per_node: f64,
    run_s: f64,
}

async fn run_case(n: usize, records: usize, rate: f64, case: Case, seed: u64) -> Figures {
    let producer = AuthorKey(SigningKey::from_bytes(&[42; 32]).verifying_key().to_bytes());
    let shard = shard_of(&Topic::Producer(producer));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Hostile roles among nodes 3.. (the first stay honest so the net has seeds).
    let mut roles = vec![Role::Honest; n];
    if case == Case::Hostile {
        let mut pool: Vec<usize> = (3..n).collect();
        pool.shuffle(&mut rng);
        let hostile = n / 10;
        for (k, &i) in pool.iter().take(hostile).enumerate() {
            roles[i] = if k % 2 == 0 {
                Role::Flooder
            } else {
                Role::BlackHole
            };
        }
    }
    let published_records: Vec<SignedRecord> = (0..records)
        .map(|i| review(seed * 1_000_000 + i as u64, producer))
        .collect();
    let seen = Arc::new(Seen {
        nodes: n,
        index: published_records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id(), i))
            .collect(),
        at: Mutex::new(vec![None; records * n]),
        warm: Mutex::new(HashMap::new()),
    });
    let cancel = CancellationToken::new();
    let rss_before = rss_mb();
    let base_port = 1u64;
    let t_start = Instant::now();
    let mut slots: Vec<Arc<Slot>> = Vec::with_capacity(n);
    for i in 0..n {
        let mut boot: Vec<String> = Vec::new();
        for _ in 0..3.min(i) {
            boot.push(slots[rng.random_range(0..i)].addr.clone());
        }
        boot.sort();
        boot.dedup();
        // Nodes join a few at a time, as on a real network (all at once, every Kademlia
        // bootstrap would run in the same second).
        tokio::time::sleep(Duration::from_millis(env_or("SCALE_JOIN_MS", 50))).await;
        let port = base_port + i as u64;
        let dir = scratch();
        let c = config(port, boot.clone(), producer);
        let (node, addr) = if roles[i] == Role::BlackHole {
            (
                None,
                black_hole(port, boot, shard.clone(), cancel.clone()).await,
            )
        } else {
            let data = DataDir::new(dir.path());
            data.init().unwrap();
            let (node, addr) = start_node(&data, c.clone(), i, &seen).await;
            (Some(node), addr)
        };
        slots.push(Arc::new(Slot {
            role: roles[i],
            node: AsyncMutex::new(node),
            dir,
            config: c,
            addr,
        }));
        if (i + 1) % 100 == 0 {
            eprintln!(
                "  {} nodes started ({:.0} s), {:.1} connected peers per node",
                i + 1,
                t_start.elapsed().as_secs_f64(),
                peers_per_node(&slots).await
            );
        }
    }
    let honest: Vec<usize> = (0..n).filter(|&i| roles[i] == Role::Honest).collect();

    // Warm up: a record a second from a random honest node until one reaches every honest
    // node (gossip meshes formed).
    let warm_deadline = Instant::now() + Duration::from_secs(180);
    let mut w = 0u64;
    loop {
        let r = review(u64::MAX / 2 + seed * 1000 + w, producer);
        let from = honest[rng.random_range(0..honest.len())];
        if let Some(node) = slots[from].node.lock().await.as_ref() {
            node.publish(&r).await.unwrap();
        }
        w += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let got = seen.warm.lock().unwrap().get(&r.id()).copied().unwrap_or(0);
        // Flooders are real nodes and store too.
        let want = (0..n).filter(|&i| roles[i] != Role::BlackHole).count();
        if got >= want {
            break;
        }
        if Instant::now() > warm_deadline {
            eprintln!("  warm-up: the last record reached {got}/{want} nodes; going on");
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_nodes = rss_mb();
    let peers_after_warm_up = peers_per_node(&slots).await;
    eprintln!(
        "  {n} nodes up and meshed in {:.0} s ({} warm-up records); RSS {:.0} MB; \
         {peers_after_warm_up:.1} connected peers per node",
        t_start.elapsed().as_secs_f64(),
        w,
        rss_nodes
    );

    let sum_over = |f: fn(&Node) -> u64| {
        let slots = slots.clone();
        async move {
            let mut total = 0u64;
            for s in &slots {
                if let Some(node) = s.node.lock().await.as_ref() {
                    total += f(node);
                }
            }
            total
        }
    };
    let copies_before = sum_over(|n| n.client().gossip_copies_received()).await;
    let sent_before = sum_over(|n| n.client().bytes_sent()).await;
    let cpu_before = cpu_s();

    // Hostile: flooders send forged records throughout the run.
    if case == Case::Hostile {
        for (i, s) in slots.iter().enumerate() {
            if s.role != Role::Flooder {
                continue;
            }
            let s = s.clone();
            let shard = shard.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let mut k = 0u64;
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                while !cancel.is_cancelled() {
                    tick.tick().await;
                    let bytes = forged(7_000_000_000 + i as u64 * 100_000 + k, producer);
                    k += 1;
                    if let Some(node) = s.node.lock().await.as_ref() {
                        let _ = node.publish_unchecked(shard.clone(), bytes).await;
                    }
                }
            });
        }
    }
    let run_for = Duration::from_secs_f64(records as f64 / rate);
    // Churn: a fifth of the honest nodes (not the first three) restart once, at a random
    // moment of the run, down for 2 to 10 s.
    let mut restarts = Vec::new();
    if case == Case::Churn {
        let mut pool: Vec<usize> = honest.iter().copied().filter(|&i| i >= 3).collect();
        pool.shuffle(&mut rng);
        for &i in pool.iter().take(n / 5) {
            let at = run_for.mul_f64(rng.random_range(0.0..0.8));
            let down = Duration::from_millis(rng.random_range(2_000..10_000));
            let s = slots[i].clone();
            let seen = seen.clone();
            restarts.push(tokio::spawn(async move {
                tokio::time::sleep(at).await;
                let node = s.node.lock().await.take();
                if let Some(node) = node {
                    node.shutdown().await.unwrap();
                }
                tokio::time::sleep(down).await;
                let data = DataDir::new(s.dir.path());
                let (node, _) = start_node(&data, s.config.clone(), i, &seen).await;
                *s.node.lock().await = Some(node);
            }));
        }
    }

    eprintln!(
        "  publishing {records} records at {rate}/s ({})",
        case.name()
    );
    let mut published: Vec<(usize, Instant)> = Vec::with_capacity(records);
    let start = Instant::now();
    for (k, r) in published_records.iter().enumerate() {
        // From a random honest node that is up.
        let (from, t0) = loop {
            let from = honest[rng.random_range(0..honest.len())];
            let guard = slots[from].node.lock().await;
            if let Some(node) = guard.as_ref() {
                let t0 = Instant::now();
                node.publish(r).await.unwrap();
                break (from, t0);
            }
        };
        published.push((from, t0));
        let due = start + Duration::from_secs_f64((k + 1) as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
    }
    for r in restarts {
        r.await.unwrap();
    }
    // Wait for full delivery to the honest nodes, 30 s at most after the last publish.
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = |seen: &Seen| {
        let at = seen.at.lock().unwrap();
        let mut d = 0usize;
        for (r, &(from, _)) in published.iter().enumerate() {
            for &i in &honest {
                if i != from && at[r * n + i].is_some() {
                    d += 1;
                }
            }
        }
        d
    };
    let expected = records * (honest.len() - 1);
    while Instant::now() < deadline && delivered(&seen) < expected {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let run_s = start.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu_before;
    let copies = sum_over(|n| n.client().gossip_copies_received()).await - copies_before;
    let sent = sum_over(|n| n.client().bytes_sent())
        .await
        .saturating_sub(sent_before);
    let d = delivered(&seen);
    let mut latencies = Vec::with_capacity(d);
    {
        let at = seen.at.lock().unwrap();
        for (r, &(from, t0)) in published.iter().enumerate() {
            for &i in &honest {
                if i == from {
                    continue;
                }
                if let Some(t) = at[r * n + i] {
                    latencies.push(t.saturating_duration_since(t0).as_secs_f64() * 1000.0);
                }
            }
        }
    }
    let receivers = (0..n).filter(|&i| roles[i] != Role::BlackHole).count();
    let f = Figures {
        nodes: n,
        case,
        delivery: d as f64 / expected as f64,
        p50_ms: percentile(&mut latencies, 0.5),
        p99_ms: percentile(&mut latencies, 0.99),
        copies: copies as f64 / (records * (receivers - 1)) as f64,
        kb_sent_per_node: sent as f64 / 1024.0 / receivers as f64,
        mem_per_node_mb: (rss_nodes - rss_before) / n as f64,
        cpu_s_per_node: cpu / n as f64,
        run_s,
    };
    eprintln!(
        "  {n} nodes, {}: delivery {}/{expected} ({:.4}), p50 {:.0} ms, p99 {:.0} ms, copies {:.2}, \
         sent {:.0} KB/node, memory {:.2} MB/node, CPU {:.3} s/node over {:.0} s",
        case.name(),
        d,
        f.delivery,
        f.p50_ms,
        f.p99_ms,
        f.copies,
        f.kb_sent_per_node,
        f.mem_per_node_mb,
        f.cpu_s_per_node,
        f.run_s
    );
    cancel.cancel();
    for s in &slots {
        if let Some(node) = s.node.lock().await.take() {
            let _ = node.shutdown().await;
        }
    }
    drop(slots);
    f
}

impl Figures {
    const CSV_HEADER: &'static str =
        "nodes,case,delivery,p50_ms,p99_ms,copies,kb_sent_per_node,mem_per_node_mb,cpu_s_per_node,run_s";

    fn csv(&self) -> String {
        format!(
            "{},{},{:.4},{:.1},{:.1},{:.3},{:.1},{:.3},{:.3},{:.1}",
            self.nodes,
            self.case.name(),
            self.delivery,
            self.p50_ms,
            self.p99_ms,
            self.copies,
            self.kb_sent_per_node,
            self.mem_per_node_mb,
            self.cpu_s_per_node,
            self.run_s
        )
    }

    fn from_csv(line: &str) -> Option<Figures> {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        Some(Figures {
            nodes: f.first()?.parse().ok()?,
            case: Case::parse(f.get(1)?)?,
            delivery: num(2)?,
            p50_ms: num(3)?,
            p99_ms: num(4)?,
            copies: num(5)?,
            kb_sent_per_node: num(6)?,
            mem_per_node_mb: num(7)?,
            cpu_s_per_node: num(8)?,
            run_s: num(9)?,
        })
    }
}

impl Case {
    fn parse(s: &str) -> Option<Case> {
        match s.trim() {
            "base" => Some(Case::Base),
            "hostile" => Some(Case::Hostile),
            "churn" => Some(Case::Churn),
            _ => None,
        }
    }
}

/// Marks the line a child process reports its figures on.
const FIGURES: &str = "scale-figures: ";

fn main() {
    // One case per process (`SCALE_ONE=nodes,case,seed`), so that each starts from a fresh
    // heap: memory per node is what that run's nodes take, not what an earlier run left.
    if let Ok(one) = std::env::var("SCALE_ONE") {
        let parts: Vec<&str> = one.split(',').collect();
        let n: usize = parts[0].parse().unwrap();
        let case = Case::parse(parts[1]).unwrap();
        let seed: u64 = parts[2].parse().unwrap();
        let records: usize = env_or("SCALE_RECORDS", 1000);
        let rate: f64 = env_or("SCALE_RATE", 10.0);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let f = rt.block_on(run_case(n, records, rate, case, seed));
        println!("{FIGURES}{}", f.csv());
        // The nodes' threads are not waited for.
        std::process::exit(0);
    }
    run();
}

fn run() {
    let sizes: Vec<usize> = std::env::var("SCALE_NODES")
        .unwrap_or_else(|_| "100,300,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cases: Vec<Case> = std::env::var("SCALE_CASES")
        .unwrap_or_else(|_| "base,hostile,churn".into())
        .split(',')
        .filter_map(Case::parse)
        .collect();
    let exe = std::env::current_exe().unwrap();
    let mut all: Vec<Figures> = Vec::new();
    for &n in &sizes {
        for (k, &case) in cases.iter().enumerate() {
            eprintln!("== {n} nodes, {}", case.name());
            let out = std::process::Command::new(&exe)
                .env("SCALE_ONE", format!("{n},{},{}", case.name(), n * 10 + k))
                .stderr(std::process::Stdio::inherit())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            match text
                .lines()
                .find_map(|l| l.strip_prefix(FIGURES))
                .and_then(Figures::from_csv)
            {
                Some(f) => all.push(f),
                None => panic!("the {n}-node {} run failed: {}", case.name(), out.status),
            }
        }
    }
    let mut csv = format!("{}\n", Figures::CSV_HEADER);
    println!(
        "nodes case     delivery  p50_ms  p99_ms  copies  kb_sent/node  mem_mb/node  cpu_s/node"
    );
    for f in &all {
        csv.push_str(&f.csv());
        csv.push('\n');
        println!(
            "{:>5} {:<8} {:>8.4} {:>7.1} {:>7.1} {:>7.2} {:>13.1} {:>12.2} {:>11.3}",
            f.nodes,
            f.case.name(),
            f.delivery,
            f.p50_ms,
            f.p99_ms,
            f.copies,
            f.kb_sent_per_node,
            f.mem_per_node_mb,
            f.cpu_s_per_node
        );
    }
    let dir = common::data_dir();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("scale.csv"), csv);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let pick = |case: Case| all.iter().find(|f| f.nodes == largest && f.case == case);
    let nan = f64::NAN;
    let base = pick(Case::Base);
    println!(
        "nodes={largest} delivery={:.4} p50_ms={:.1} p99_ms={:.1} copies={:.2} mem_per_node_mb={:.2} \
         hostile_delivery={:.4} churn_delivery={:.4} kb_sent_per_node={:.1} cpu_s_per_node={:.3}",
        base.map_or(nan, |f| f.delivery),
        base.map_or(nan, |f| f.p50_ms),
        base.map_or(nan, |f| f.p99_ms),
        base.map_or(nan, |f| f.copies),
        base.map_or(nan, |f| f.mem_per_node_mb),
        pick(Case::Hostile).map_or(nan, |f| f.delivery),
        pick(Case::Churn).map_or(nan, |f| f.delivery),
        base.map_or(nan, |f| f.kb_sent_per_node),
        base.map_or(nan, |f| f.cpu_s_per_node),
    );
}
