//! Hostile sync load: `cargo bench -p chorus-node --bench sync_hostile`.
//!
//! A node holding some records runs in a child process (this binary again, with
//! `CHORUS_HOSTILE_NODE` set), so that its memory is its own. Here, in this process:
//! 1. an honest node pulls everything from it once (its caches are warm, as on a node that
//!    has been serving), then the child's resident memory at rest is its idle figure and its
//!    peak is reset (`/proc/PID/clear_refs`);
//! 2. 8 hostile peers (real libp2p swarms over loopback TCP, each with `CHORUS_HOSTILE_AT_ONCE`
//!    requests in flight, 32 by default) send the largest valid requests there are as fast as
//!    they are answered or refused: reconciliation requests of nearly 1 MiB (20,000
//!    fingerprints and every id prefix allowed) and fetches of the 1,024 largest records it
//!    holds (answers of about 4 MiB);
//! 3. after `CHORUS_HOSTILE_WARMUP_S` (5 s) of that, a fresh honest node pulls every record
//!    from it, timed; the flood goes on for `CHORUS_HOSTILE_SECS` (20 s) in all.
//!
//! The child's peak resident memory (VmHWM, and VmRSS sampled every 20 ms) less its idle
//! figure is the result; the goal is under 100 MB. The last line is `key=value` figures.
#![allow(missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_node::config::Config;
use chorus_node::net::PeerId;
use chorus_node::workload::{generate, Params};
use chorus_node::{DataDir, NetEvent, Node};
use chorus_protocol::sync::reconcile::{Bound, Mode, Part};
use chorus_protocol::sync::wire::{Request, Response, MAX_FETCH, MAX_IDS, MAX_PARTS, MAX_REQUEST};
use chorus_protocol::SignedRecord;
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, StreamProtocol};

const SEED: u64 = 18_005;
const RECORDS: usize = 5_000;
const HOSTILE_PEERS: usize = 8;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The records the node holds: larger texts than usual, so that fetches are answered with
/// megabytes.
fn records() -> Vec<SignedRecord> {
    let mut p = Params::realistic(RECORDS);
    // Padding overshoots by up to a word: 1,980 keeps every text within its 2,000 bytes.
    p.text_bytes = 1_980;
    generate(SEED, &p)
}

fn node_config() -> Config {
    let mut config = Config::default();
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.network.mdns = false;
    config.api.listen = String::new();
    config.follow.all = true;
    config.sync.on_connect = false;
    config.sync.repair = Duration::ZERO;
    config.sync.interval = Duration::ZERO;
    config
}

async fn start_node(dir: &std::path::Path, config: Config) -> (Node, Multiaddr) {
    let data = DataDir::new(dir);
    data.init().unwrap();
    let (node, mut events) = Node::start(&data, config).await.unwrap();
    let addr = loop {
        match events.recv().await {
            Some(NetEvent::Listening(a)) => break a,
            Some(_) => {}
            None => panic!("node stopped before listening"),
        }
    };
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    (node, addr)
}

/// The node under test, in the child process: holds the records, prints its address, and
/// serves until its standard input closes.
fn child(dir: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (node, addr) = start_node(std::path::Path::new(dir), node_config()).await;
        let recs = records();
        for chunk in recs.chunks(1_000) {
            let outs = node
                .ingest()
                .ingest(chunk.iter().map(|r| r.wire().to_vec()).collect())
                .await
                .unwrap();
            assert!(outs.iter().all(|o| o.is_accepted()), "{outs:?}");
        }
        drop(recs);
        println!("addr {addr}");
        println!("ready");
        std::io::stdout().flush().unwrap();
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin()
                .read_line(&mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                line.clear();
            }
        })
        .await
        .unwrap();
        node.shutdown().await.unwrap();
    });
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

fn peer_of(addr: &Multiaddr) -> PeerId {
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(p)) => p,
        _ => panic!("no /p2p in {addr}"),
    }
}

/// A fresh honest node pulls everything from `target`: milliseconds, records it then holds.
async fn honest_pull(target: &Multiaddr) -> (u128, usize, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = start_node(dir.path(), node_config()).await;
    node.client().dial(target.clone()).await.unwrap();
    let peer = peer_of(target);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node
        .status()
        .await
        .unwrap()
        .peers
        .contains(&peer.to_string())
    {
        assert!(Instant::now() < deadline, "honest node cannot connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let reports = node.sync_now(Some(peer)).await.unwrap();
    let ms = started.elapsed().as_millis();
    let held = node.store().ids().unwrap().len();
    let error = reports.first().and_then(|r| r.error.clone());
    node.shutdown().await.unwrap();
    (ms, held, error)
}

/// The largest valid reconciliation request: fingerprints of ranges in order, each bound
/// four bytes, and every id prefix a message may list, as close to 1 MiB as the limits let.
fn heavy_reconcile() -> Vec<u8> {
    let n = MAX_PARTS as u32;
    let step = u32::MAX / n;
    // Longer bounds (up to a full key) to fill the request up to its size limit.
    let mut parts: Vec<Part> = (1..n)
        .map(|i| {
            let mut b = (i * step).to_be_bytes().to_vec();
            b.extend_from_slice(&[0xa5; 12]);
            Part {
                upper: Bound::Below(b),
                mode: Mode::Fingerprint([(i % 251) as u8; 16]),
            }
        })
        .collect();
    parts.push(Part {
        upper: Bound::End,
        mode: Mode::Have((0..MAX_IDS as u64).map(|i| i.to_be_bytes()).collect()),
    });
    let req = Request::Reconcile(parts).encode();
    assert!(req.len() <= MAX_REQUEST, "{} bytes", req.len());
    req
}

#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    busy: AtomicU64,
    failed: AtomicU64,
    bytes_in: AtomicU64,
}

/// One hostile peer: `at_once` requests in flight, each answer or refusal followed at once
/// by the next, until `stop`.
async fn hostile(
    target: Multiaddr,
    requests: Arc<Vec<Vec<u8>>>,
    at_once: usize,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                chorus_node::sync::codec(),
                [(
                    StreamProtocol::new(chorus_node::sync::PROTOCOL),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_max_concurrent_streams(at_once * 2),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let peer = peer_of(&target);
    swarm.dial(target).unwrap();
    let mut next = 0usize;
    let mut send = |swarm: &mut libp2p::Swarm<request_response::Behaviour<_>>| {
        let r = requests[next % requests.len()].clone();
        next += 1;
        swarm.behaviour_mut().send_request(&peer, r);
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => ev,
            _ = tick.tick() => {
                if stop.load(Relaxed) {
                    return;
                }
                continue;
            }
        };
        match ev {
            SwarmEvent::ConnectionEstablished { .. } => {
                for _ in 0..at_once {
                    send(&mut swarm);
                }
            }
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            }) => {
                counts.bytes_in.fetch_add(response.len() as u64, Relaxed);
                match Response::decode(&response) {
                    Ok(Response::Error { code, .. }) if code == "busy" => {
                        counts.busy.fetch_add(1, Relaxed)
                    }
                    _ => counts.answered.fetch_add(1, Relaxed),
                };
                if !stop.load(Relaxed) {
                    send(&mut swarm);
                }
            }
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                counts.failed.fetch_add(1, Relaxed);
                if !stop.load(Relaxed) {
                    send(&mut swarm);
                }
            }
            _ => {}
        }
    }
}

struct NodeProcess {
    child: Child,
    addr: Multiaddr,
}

fn spawn_node(dir: &std::path::Path) -> NodeProcess {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("CHORUS_HOSTILE_NODE", dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut addr = None;
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("addr ") {
            addr = Some(a.parse().unwrap());
        } else if line == "ready" {
            break;
        }
    }
    NodeProcess {
        child,
        addr: addr.expect("the node printed its address"),
    }
}

fn main() {
    if let Ok(dir) = std::env::var("CHORUS_HOSTILE_NODE") {
        child(&dir);
        return;
    }
    let at_once: usize = env_or("CHORUS_HOSTILE_AT_ONCE", 32);
    let warmup = Duration::from_secs(env_or("CHORUS_HOSTILE_WARMUP_S", 5));
    let flood_for = Duration::from_secs(env_or("CHORUS_HOSTILE_SECS", 20));

    let dir = tempfile::tempdir().unwrap();
    eprintln!("starting the node ({RECORDS} records)...");
    let mut node = spawn_node(dir.path());
    let pid = node.child.id();
    let recs = records();
    let mut by_size: Vec<&SignedRecord> = recs.iter().collect();
    by_size.sort_by_key(|r| std::cmp::Reverse(r.wire().len()));
    let largest: Vec<[u8; 32]> = by_size[..MAX_FETCH]
        .iter()
        .map(|r| *r.id().as_bytes())
        .collect();
    let fetch_bytes: usize = by_size[..MAX_FETCH].iter().map(|r| r.wire().len()).sum();
    let requests = Arc::new(vec![heavy_reconcile(), Request::Fetch(largest).encode()]);
    println!(
        "hostile requests: reconcile {} bytes, fetch {} bytes (answer ~{:.1} MiB)",
        requests[0].len(),
        requests[1].len(),
        fetch_bytes as f64 / 1048576.0
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (warm_ms, warm_held, warm_error) = rt.block_on(honest_pull(&node.addr));
    assert_eq!(warm_error, None);
    assert_eq!(warm_held, RECORDS, "the warm-up pull got everything");
    std::thread::sleep(Duration::from_secs(2));
    let idle_kb = status_kb(pid, "VmRSS:");
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    println!(
        "idle: {:.1} MB resident after a warm-up pull of {RECORDS} records in {warm_ms} ms (peak reset: {reset})",
        idle_kb as f64 / 1024.0
    );

    // Sample the child's resident memory all along.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampled_max = Arc::new(AtomicU64::new(idle_kb));
    let sampler = {
        let sampling = sampling.clone();
        let max = sampled_max.clone();
        std::thread::spawn(move || {
            while sampling.load(Relaxed) {
                max.fetch_max(status_kb(pid, "VmRSS:"), Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<Counts>> = (0..HOSTILE_PEERS)
        .map(|_| Arc::new(Counts::default()))
        .collect();
    let started = Instant::now();
    let (honest_ms, honest_held, honest_error) = rt.block_on(async {
        let hostiles: Vec<_> = counts
            .iter()
            .map(|c| {
                tokio::spawn(hostile(
                    node.addr.clone(),
                    requests.clone(),
                    at_once,
                    c.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(warmup).await;
        let honest = honest_pull(&node.addr).await;
        let left = flood_for.saturating_sub(started.elapsed());
        tokio::time::sleep(left).await;
        stop.store(true, Relaxed);
        for h in hostiles {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
        honest
    });
    let flooded = started.elapsed();
    sampling.store(false, Relaxed);
    sampler.join().unwrap();
    let hwm_kb = status_kb(pid, "VmHWM:");
    let end_kb = status_kb(pid, "VmRSS:");
    let peak_kb = if reset {
        hwm_kb.max(sampled_max.load(Relaxed))
    } else {
        sampled_max.load(Relaxed)
    };
    drop(node.child.stdin.take());
    let _ = node.child.wait();

    let sum =
        |f: fn(&Counts) -> &AtomicU64| -> u64 { counts.iter().map(|c| f(c).load(Relaxed)).sum() };
    let answered = sum(|c| &c.answered);
    let busy = sum(|c| &c.busy);
    let failed = sum(|c| &c.failed);
    let mib_in = sum(|c| &c.bytes_in) as f64 / 1048576.0;
    let peak_above = peak_kb.saturating_sub(idle_kb) as f64 / 1024.0;
    println!(
        "{HOSTILE_PEERS} hostile peers x {at_once} requests in flight for {:.1} s: {answered} answered ({mib_in:.0} MiB), {busy} busy, {failed} failed",
        flooded.as_secs_f64()
    );
    println!(
        "honest pull during the flood: {honest_held}/{RECORDS} records in {honest_ms} ms, error {honest_error:?}"
    );
    println!(
        "node memory: idle {:.1} MB, peak {:.1} MB (VmHWM {:.1}, sampled {:.1}), at the end {:.1} MB",
        idle_kb as f64 / 1024.0,
        peak_kb as f64 / 1024.0,
        hwm_kb as f64 / 1024.0,
        sampled_max.load(Relaxed) as f64 / 1024.0,
        end_kb as f64 / 1024.0
    );
    let complete = honest_error.is_none() && honest_held == RECORDS;
    println!(
        "peak_rss_above_idle_mb={peak_above:.1} honest_sync_ms={honest_ms} honest_complete={complete} idle_rss_mb={:.1} hostile_answered={answered} hostile_busy={busy} hostile_failed={failed}",
        idle_kb as f64 / 1024.0
    );
}
