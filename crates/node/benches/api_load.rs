//! API load benchmark: `cargo bench -p chorus-node --bench api_load`.
//!
//! A real node runs in a child process (this same binary, told so by an environment
//! variable), so the memory measured — `VmRSS` of `/proc/<pid>/status` — is the node's alone,
//! not the attackers'. From this process, on 127.0.0.1, at the node's default `[api]` limits:
//!
//! - 3,000 unauthenticated connections, each sending a 400 KB header slowly (1 KiB every
//!   250 ms); each one the node closes is opened again 5 s later, for the whole run (5 s
//!   keeps the churn under the loopback's ephemeral ports in TIME_WAIT);
//! - 500 authenticated event streams (`GET /v1/events`) that never read a byte;
//! - meanwhile writes (`POST /v1/reviews`) at 20/s and `GET /v1/status` at 5/s, each on a
//!   fresh connection as `chorus review` and `chorus status` make them.
//!
//! It measures the node's RSS before, at its peak during the attack and once every attacker
//! has gone; write and status latencies; and the connections and streams the node held. The
//! attack runs twice, the second time from where the first left the node's memory: what the
//! allocator kept after the first is reused, not added to. The last line holds the figures
//! as key=value pairs (`..2..`: the second round).
//!
//! At the defaults the node admits 64 of the 500 streams (the cap per token). With
//! `API_LOAD_ADMIT_STREAMS=1` it runs with caps that admit all 500 (`max_event_streams` and
//! the cap per token 600, `max_connections` 1,024), to measure what stalled streams
//! themselves cost.

#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_node::config::Config;
use chorus_node::{DataDir, NetEvent, Node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHILD_ENV: &str = "CHORUS_API_LOAD_NODE";
const ADMIT_ENV: &str = "API_LOAD_ADMIT_STREAMS";
const SLOW_CONNECTIONS: usize = 3000;
const STREAMS: usize = 500;
const HEADER_BYTES: usize = 400_000;
const WINDOW: Duration = Duration::from_secs(20);
const WRITES_PER_SEC: u64 = 20;
const STATUS_PER_SEC: u64 = 5;

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return node_process();
    }
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

/// The child: a node on a fresh data dir; prints `ready ADDR TOKEN PID`, answers `load` on
/// stdin with its connection and stream counts, and stops when stdin closes.
fn node_process() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        data.init().unwrap();
        let mut c = Config::default();
        c.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        c.network.mdns = false;
        c.api.listen = "127.0.0.1:0".into();
        if std::env::var_os(ADMIT_ENV).is_some() {
            c.api.max_connections = 1024;
            c.api.max_event_streams = 600;
            c.api.max_event_streams_per_token = 600;
        }
        let (node, mut events) = Node::start(&data, c).await.unwrap();
        loop {
            if let Some(NetEvent::Listening(_)) = events.recv().await {
                break;
            }
        }
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        println!(
            "ready {} {} {}",
            node.api_addr().unwrap(),
            data.api_token().unwrap(),
            std::process::id()
        );
        let node = Arc::new(node);
        let n = node.clone();
        tokio::task::spawn_blocking(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim() == "load" {
                    let l = n.api_load();
                    println!("load {} {}", l.connections, l.event_streams);
                }
            }
        })
        .await
        .unwrap();
        if let Ok(node) = Arc::try_unwrap(node) {
            node.shutdown().await.unwrap();
        }
    });
}

/// 3,000 sockets and more: raise the soft descriptor limit to the hard one.
fn raise_fd_limit() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut l = getrlimit(Resource::Nofile);
        let before = l.current;
        l.current = l.maximum;
        match setrlimit(Resource::Nofile, l) {
            Ok(()) => eprintln!("descriptors: soft limit {before:?} -> {:?}", l.maximum),
            Err(e) => eprintln!("descriptors: cannot raise the soft limit {before:?}: {e}"),
        }
    }
}

/// The node process, killed (by its pid) when dropped.
struct NodeChild {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl NodeChild {
    fn start() -> (NodeChild, SocketAddr, String, u32) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, "1")
            .env("RUST_LOG", "off")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut n = NodeChild {
            child,
            stdin,
            lines,
        };
        let ready = n.line("ready");
        let parts: Vec<&str> = ready.split_whitespace().collect();
        let (addr, token, pid) = (
            parts[1].parse().unwrap(),
            parts[2].to_string(),
            parts[3].parse().unwrap(),
        );
        (n, addr, token, pid)
    }

    fn line(&mut self, prefix: &str) -> String {
        loop {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("the node process did not answer");
            if l.starts_with(prefix) {
                return l;
            }
        }
    }

    /// (connections, event streams) the node holds now.
    fn load(&mut self) -> (u64, u64) {
        writeln!(self.stdin, "load").unwrap();
        let l = self.line("load");
        let p: Vec<u64> = l
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        (p[0], p[1])
    }
}

impl Drop for NodeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// One call on a fresh connection (`Connection: close`); its status code, or 0 if it failed.
async fn http(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> u16 {
    let call = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.ok()?;
        let text = String::from_utf8_lossy(&got);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// One attacker: opens a connection, sends a huge header slowly until the node closes it,
/// waits 5 s, and again, until `stop`.
async fn slowloris(addr: SocketAddr, stop: Arc<AtomicBool>, opened: Arc<AtomicU64>) {
    let chunk = vec![b'a'; 1024];
    while !stop.load(Ordering::Relaxed) {
        let Ok(s) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let (mut rd, mut wr) = s.into_split();
        let send = async {
            wr.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: ")
                .await
                .ok()?;
            let mut sent = 0;
            while sent < HEADER_BYTES && !stop.load(Ordering::Relaxed) {
                wr.write_all(&chunk).await.ok()?;
                sent += chunk.len();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Some(())
        };
        let mut buf = [0u8; 512];
        tokio::select! {
            _ = send => {}
            // The node closed it (or answered 431/408 and closed).
            _ = rd.read(&mut buf) => {}
        }
        drop((rd, wr));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn review(i: u64) -> String {
    format!(
        r#"{{"producer":"{}","product":"gtin-{}","rating":{},"text":"A review of typical length, long enough to look like what people write."}}"#,
        "ab".repeat(32),
        i % 50,
        i % 5 + 1
    )
}

/// What one round of the attack did.
struct Round {
    rss_peak: f64,
    rss_after: f64,
    closed_after: f64,
    writes: Vec<f64>,
    write_errors: u64,
    statuses: Vec<f64>,
    status_errors: u64,
    connections_held: u64,
    streams_held: u64,
    opened: u64,
}

/// The streams, the slow senders, writes and status calls for [`WINDOW`]; then everyone
/// leaves and the node is asked until it holds nothing.
async fn attack(
    node: &mut NodeChild,
    addr: SocketAddr,
    token: &str,
    pid: u32,
    rss_from: f64,
) -> Round {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new(rss_from));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = rss_mb(pid);
                {
                    let mut p = peak.lock().unwrap();
                    *p = p.max(r);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // 500 event streams that never read.
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let req = format!(
                "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
            );
            let _ = s.write_all(req.as_bytes()).await;
            streams.push(s);
        }
    }
    // 3,000 slow connections, started over about 3 s.
    let opened = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    for i in 0..SLOW_CONNECTIONS {
        attackers.push(tokio::spawn(slowloris(addr, stop.clone(), opened.clone())));
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Writes and status calls meanwhile.
    let started = Instant::now();
    let (tw, ts) = (token.to_string(), token.to_string());
    let writer = tokio::spawn(async move {
        let mut lat = Vec::new();
        let mut errors = 0u64;
        let mut i = rand_start();
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / WRITES_PER_SEC));
        while started.elapsed() < WINDOW {
            tick.tick().await;
            i += 1;
            let t = Instant::now();
            let code = http(addr, "POST", "/v1/reviews", &tw, &review(i)).await;
            if code == 200 {
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            } else {
                errors += 1;
            }
        }
        (lat, errors)
    });
    let status_task = tokio::spawn(async move {
        let mut lat = Vec::new();
        let mut errors = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / STATUS_PER_SEC));
        while started.elapsed() < WINDOW {
            tick.tick().await;
            let t = Instant::now();
            let code = http(addr, "GET", "/v1/status", &ts, "").await;
            if code == 200 {
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            } else {
                errors += 1;
            }
        }
        (lat, errors)
    });
    let (writes, write_errors) = writer.await.unwrap();
    let (statuses, status_errors) = status_task.await.unwrap();
    let (connections_held, streams_held) = node.load();
    let rss_peak = *peak.lock().unwrap();
    // Everyone leaves.
    stop.store(true, Ordering::Relaxed);
    drop(streams);
    for a in attackers {
        a.abort();
        let _ = a.await;
    }
    let _ = sampler.await;
    let gone = Instant::now();
    loop {
        let (c, s) = node.load();
        if (c, s) == (0, 0) || gone.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed_after = gone.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    Round {
        rss_peak,
        rss_after: rss_mb(pid),
        closed_after,
        writes,
        write_errors,
        statuses,
        status_errors,
        connections_held,
        streams_held,
        opened: opened.load(Ordering::Relaxed),
    }
}

/// Review numbers not used by an earlier round (each write must be a new record).
fn rand_start() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1000);
    NEXT.fetch_add(1_000_000, Ordering::Relaxed)
}

async fn run() {
    let (mut node, addr, token, pid) = NodeChild::start();
    // Warm up, then the baseline.
    for i in 0..50 {
        assert_eq!(
            http(addr, "POST", "/v1/reviews", &token, &review(i)).await,
            200
        );
    }
    for _ in 0..20 {
        assert_eq!(http(addr, "GET", "/v1/status", &token, "").await, 200);
    }
    let mut base = Vec::new();
    for _ in 0..5 {
        base.push(rss_mb(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_base = base.iter().cloned().fold(0.0, f64::max);
    println!("baseline: node RSS {rss_base:.1} MB");
    println!(
        "attack: {STREAMS} silent event streams, {SLOW_CONNECTIONS} slow header senders; \
         measuring for {WINDOW:?}, twice"
    );
    let mut r = attack(&mut node, addr, &token, pid, rss_base).await;
    println!(
        "round 1: node held {} connections and {} event streams; {} slow connections opened; \
         RSS peak {:.1} MB, {:.1} MB after all closed ({:.1} s to close)",
        r.connections_held, r.streams_held, r.opened, r.rss_peak, r.rss_after, r.closed_after
    );
    // Again: memory the first round left with the allocator is reused, not added to.
    let again = attack(&mut node, addr, &token, pid, r.rss_after).await;
    println!(
        "round 2: node held {} connections and {} event streams; RSS peak {:.1} MB, {:.1} MB \
         after all closed",
        again.connections_held, again.streams_held, again.rss_peak, again.rss_after
    );
    let growth = r.rss_peak - rss_base;
    let w50 = percentile(&mut r.writes, 0.5);
    let w99 = percentile(&mut r.writes, 0.99);
    let s50 = percentile(&mut r.statuses, 0.5);
    let s99 = percentile(&mut r.statuses, 0.99);
    let smax = r.statuses.iter().cloned().fold(0.0, f64::max);
    let mut writes2 = again.writes.clone();
    let w99_2 = percentile(&mut writes2, 0.99);
    let smax2 = again.statuses.iter().cloned().fold(0.0, f64::max);
    println!(
        "node RSS: base {rss_base:.1} MB, peak {:.1} MB (+{growth:.1}, goal < 50), after all \
         closed {:.1} MB; round 2 peak {:.1} MB, after {:.1} MB",
        r.rss_peak, r.rss_after, again.rss_peak, again.rss_after
    );
    println!(
        "writes: {} ok, {} failed, p50 {w50:.1} ms, p99 {w99:.1} ms (goal < 50); round 2 p99 \
         {w99_2:.1} ms",
        r.writes.len(),
        r.write_errors
    );
    println!(
        "status: {} ok, {} failed, p50 {s50:.1} ms, p99 {s99:.1} ms, max {smax:.1} ms (goal < \
         100); round 2 max {smax2:.1} ms",
        r.statuses.len(),
        r.status_errors
    );
    let errors = r.write_errors + r.status_errors + again.write_errors + again.status_errors;
    let growth2 = again.rss_peak - rss_base;
    println!(
        "rss_base_mb={rss_base:.1} rss_peak_mb={:.1} rss_growth_mb={growth:.1} \
         rss_after_mb={:.1} rss_growth2_mb={growth2:.1} rss_after2_mb={:.1} \
         write_p50_ms={w50:.1} write_p99_ms={w99:.1} write2_p99_ms={w99_2:.1} writes={} \
         status_p50_ms={s50:.1} status_p99_ms={s99:.1} status_max_ms={smax:.1} \
         status2_max_ms={smax2:.1} errors={errors} connections_held={} streams_held={} \
         slow_opened={} goals_met={}",
        r.rss_peak,
        r.rss_after,
        again.rss_after,
        r.writes.len(),
        r.connections_held,
        r.streams_held,
        r.opened,
        growth.max(growth2) < 50.0
            && w99.max(w99_2) < 50.0
            && smax.max(smax2) < 100.0
            && errors == 0
    );
    drop(node);
}
