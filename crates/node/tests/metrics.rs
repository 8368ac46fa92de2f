//! The Prometheus metrics endpoint over real HTTP against a running node (in process, on
//! 127.0.0.1): the exposition parses line by line, the ingest and store figures move by
//! exactly what was ingested, only `GET /metrics` is answered, and hostile clients are
//! bounded.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use chorus_node::config::Config;
use chorus_node::{DataDir, NetEvent, Node, Outcome};
use chorus_protocol::{
    AuthorKey, Body, ProductRef, RecordBuilder, Retraction, Review, SignedRecord, SigningKey,
};
use tempfile::TempDir;

struct Running {
    node: Node,
    metrics: SocketAddr,
    _dir: TempDir,
}

/// A node on 127.0.0.1 with its metrics on a free port, no API, no mDNS.
async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    data.init().unwrap();
    let mut config = Config::default();
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.network.mdns = false;
    config.api.listen = String::new();
    config.metrics.listen = "127.0.0.1:0".into();
    let (node, mut events) = Node::start(&data, config).await.unwrap();
    loop {
        if let Some(NetEvent::Listening(_)) = events.recv().await {
            break;
        }
    }
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let metrics = node.metrics_addr().expect("metrics are served");
    assert_ne!(metrics.port(), 0, "the bound port, not the one asked for");
    Running {
        node,
        metrics,
        _dir: dir,
    }
}

/// An HTTP request by hand: the status code, the headers (lowercased names) and the body.
async fn http(addr: SocketAddr, request: String) -> (u16, Vec<(String, String)>, String) {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, body.to_string())
    })
    .await
    .unwrap()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
}

/// Scrapes `/metrics` (no token) and parses it: every sample by its series (`name{labels}`).
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, headers, body) = http(addr, get("/metrics")).await;
    assert_eq!(status, 200, "{body}");
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        content_type,
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    parse(&body)
}

/// The exposition format, checked line by line: comments are `# HELP`, `# TYPE`, `# UNIT`
/// and the final `# EOF`; every other line is `name{labels} value` or `name value`, with a
/// `chorus_` name, a number, and no series twice.
fn parse(text: &str) -> HashMap<String, f64> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    let mut out = HashMap::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                ["HELP ", "TYPE ", "UNIT "]
                    .iter()
                    .any(|k| comment.starts_with(k)),
                "an unknown comment: {line}"
            );
            assert!(comment[5..].starts_with("chorus_"), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(name.starts_with("chorus_"), "{line}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "a metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "labels in braces: {line}");
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("a number in {line}: {e}"));
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "a series twice: {line}"
        );
    }
    out
}

/// A sample's value; a series not shown counts as 0.
fn at(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

fn ingested(outcome: &str) -> String {
    format!("chorus_ingest_records_total{{outcome=\"{outcome}\"}}")
}

fn key_of(k: &SigningKey) -> AuthorKey {
    AuthorKey(k.verifying_key().to_bytes())
}

fn sign(author: &SigningKey, body: Body) -> SignedRecord {
    RecordBuilder::new(body)
        .created_at(chorus_node::clock::now_ms())
        .sign(author)
        .unwrap()
}

fn review(author: &SigningKey, producer: AuthorKey, text: &str) -> SignedRecord {
    sign(
        author,
        Body::Review(Review {
            product: ProductRef {
                producer,
                code: "gtin-42".into(),
            },
            rating: 4,
            title: None,
            text: text.into(),
        }),
    )
}

fn retraction(author: &SigningKey, target: &SignedRecord) -> SignedRecord {
    chorus_protocol::testing::about(
        target,
        author,
        chorus_node::clock::now_ms(),
        Body::Retraction(Retraction {
            target: target.id(),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_store_figures_move_by_exactly_what_was_ingested() {
    let n = start().await;
    let producer = key_of(&SigningKey::from_bytes(&[1; 32]));
    let (alice, bob) = (
        SigningKey::from_bytes(&[2; 32]),
        SigningKey::from_bytes(&[3; 32]),
    );
    let r: Vec<SignedRecord> = (0..4)
        .map(|i| review(&SigningKey::from_bytes(&[10 + i; 32]), producer, "fine"))
        .collect();
    // Alice's review, not yet here, and her retraction of it, which must wait for it.
    let target = review(&alice, producer, "to be retracted");
    let waits = retraction(&alice, &target);
    let mut forged = r[3].wire().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;

    let before = scrape(n.metrics).await;
    assert_eq!(at(&before, "chorus_store_records"), 0.0);
    assert_eq!(at(&before, "chorus_peers_connected"), 0.0);
    assert_eq!(at(&before, "chorus_store_writable"), 1.0);
    assert!(at(&before, "chorus_store_disk_bytes") > 0.0);
    assert_eq!(
        at(
            &before,
            &format!(
                "chorus_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    // Every outcome is shown from the start, at 0.
    for o in [
        "stored",
        "waiting",
        "duplicate",
        "invalid",
        "rule",
        "too_many_waiting",
        "internal",
        "unwritten",
    ] {
        assert_eq!(before.get(&ingested(o)), Some(&0.0), "{o}");
    }

    // Three new reviews, a forged one, and a retraction whose target is missing.
    let outcomes = n
        .node
        .ingest()
        .ingest(vec![
            r[0].wire().to_vec(),
            r[1].wire().to_vec(),
            r[2].wire().to_vec(),
            forged,
            waits.wire().to_vec(),
        ])
        .await
        .unwrap();
    assert!(matches!(outcomes[3], Outcome::Rejected(_)), "{outcomes:?}");
    assert_eq!(outcomes[4], Outcome::Waiting(waits.id()));
    let mid = scrape(n.metrics).await;
    let moved = |m: &HashMap<String, f64>, series: &str| at(m, series) - at(&before, series);
    assert_eq!(moved(&mid, &ingested("stored")), 3.0);
    assert_eq!(moved(&mid, &ingested("invalid")), 1.0);
    assert_eq!(moved(&mid, &ingested("waiting")), 1.0);
    assert_eq!(at(&mid, "chorus_ingest_waiting_records"), 1.0);
    assert_eq!(moved(&mid, "chorus_store_records"), 3.0);

    // A duplicate, the missing target (which releases the retraction), and Bob's retraction
    // of a review that is not his (a kind rule).
    let outcomes = n
        .node
        .ingest()
        .ingest(vec![
            r[0].wire().to_vec(),
            target.wire().to_vec(),
            retraction(&bob, &r[1]).wire().to_vec(),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes[0], Outcome::Duplicate(r[0].id()));
    assert_eq!(outcomes[1], Outcome::Stored(target.id()));
    assert!(matches!(outcomes[2], Outcome::Rejected(_)), "{outcomes:?}");
    // And one made here, published as the API would.
    assert_eq!(
        n.node.publish(&r[3]).await.unwrap(),
        Outcome::Stored(r[3].id())
    );

    let after = scrape(n.metrics).await;
    let moved = |series: &str| at(&after, series) - at(&before, series);
    assert_eq!(moved(&ingested("stored")), 5.0);
    assert_eq!(moved(&ingested("duplicate")), 1.0);
    assert_eq!(moved(&ingested("invalid")), 1.0);
    assert_eq!(moved(&ingested("waiting")), 1.0);
    assert_eq!(moved(&ingested("rule")), 1.0);
    assert_eq!(moved(&ingested("too_many_waiting")), 0.0);
    assert_eq!(moved(&ingested("internal")), 0.0);
    assert_eq!(moved(&ingested("unwritten")), 0.0);
    assert_eq!(moved("chorus_ingest_released_records_total"), 1.0);
    assert_eq!(at(&after, "chorus_ingest_waiting_records"), 0.0);
    // r0..r3, the target and the released retraction.
    assert_eq!(moved("chorus_store_records"), 6.0);
    assert_eq!(
        at(&after, "chorus_store_records"),
        n.node.store().len().unwrap() as f64
    );
    // No peer: nothing gossiped in or pulled.
    assert_eq!(
        at(&after, "chorus_gossip_messages_total{verdict=\"accept\"}"),
        0.0
    );
    assert_eq!(at(&after, "chorus_sync_pulls_total{result=\"ok\"}"), 0.0);
    n.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_of_metrics_is_answered_and_hostile_clients_are_bounded() {
    let n = start().await;
    let addr = n.metrics;

    let (status, _, body) = http(addr, get("/")).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = http(addr, get("/v1/status")).await;
    assert_eq!(status, 404);
    let (status, _, _) = http(addr, get("/metrics/x")).await;
    assert_eq!(status, 404);
    for method in ["POST", "PUT", "DELETE"] {
        let (status, headers, _) = http(
            addr,
            format!(
                "{method} /metrics HTTP/1.1\r\nHost: m\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
            ),
        )
        .await;
        assert_eq!(status, 405, "{method}");
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "allow" && v.contains("GET")),
            "{headers:?}"
        );
    }
    // A POST that declares a huge body is answered without it being read.
    let (status, _, _) = http(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: m\r\nContent-Length: 10000000000\r\n\r\n".into(),
    )
    .await;
    assert_eq!(status, 405);
    // Headers beyond 8 KiB: 431.
    let (status, _, _) = http(
        addr,
        format!(
            "GET /metrics HTTP/1.1\r\nHost: m\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(16 * 1024)
        ),
    )
    .await;
    assert_eq!(status, 431);

    // A flood of idle connections: past the cap the oldest are closed, and a scrape still
    // gets in at once.
    let cap = chorus_node::metrics::MAX_CONNECTIONS as usize;
    let idle: Vec<TcpStream> = (0..cap + 8)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let m = scrape(addr).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(m.contains_key("chorus_store_records"));
    let closed = tokio::task::spawn_blocking(move || {
        idle.into_iter()
            .filter(|s| {
                let mut s = s;
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                matches!(s.read(&mut [0u8; 1]), Ok(0))
            })
            .count()
    })
    .await
    .unwrap();
    assert!(
        closed > 8,
        "{closed} of {} idle connections closed to make room",
        cap + 8
    );
    n.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    data.init().unwrap();
    let mut config = Config::default();
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.network.mdns = false;
    config.api.listen = String::new();
    let (node, _events) = Node::start(&data, config).await.unwrap();
    assert_eq!(node.metrics_addr(), None);
    node.shutdown().await.unwrap();
}
