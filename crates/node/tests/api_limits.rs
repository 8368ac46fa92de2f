//! The local API's limits against hostile local clients (issue 18), over real sockets on
//! 127.0.0.1 against a node in this process: slow headers and bodies, the connection cap,
//! bodies over the limit, event-stream caps, and slow or stalled event-stream readers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chorus_node::config::{ApiConfig, Config};
use chorus_node::{DataDir, NetEvent, Node};
use chorus_protocol::{AuthorKey, Body, ProductRef, RecordBuilder, Review, SigningKey};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Running {
    node: Node,
    addr: SocketAddr,
    token: String,
    _dir: TempDir,
}

async fn start(api: impl FnOnce(&mut ApiConfig)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    data.init().unwrap();
    let mut config = Config::default();
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.network.mdns = false;
    config.api.listen = "127.0.0.1:0".into();
    api(&mut config.api);
    let (node, mut events) = Node::start(&data, config).await.unwrap();
    loop {
        if let Some(NetEvent::Listening(_)) = events.recv().await {
            break;
        }
    }
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    Running {
        addr: node.api_addr().unwrap(),
        token: data.api_token().unwrap(),
        node,
        _dir: dir,
    }
}

/// A call on a fresh connection, as `chorus` makes one: status and JSON body.
async fn call(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let url = format!("http://{addr}{path}");
    let auth = format!("Bearer {token}");
    let method = method.to_string();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let resp = if method == "GET" {
            agent.get(&url).header("Authorization", &auth).call()
        } else {
            agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(&body.unwrap_or_default()[..])
        };
        let mut resp = resp.unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp
            .body_mut()
            .with_config()
            .limit(10 << 20)
            .read_json()
            .unwrap_or(Value::Null);
        (status, v)
    })
    .await
    .unwrap()
}

async fn status(r: &Running) -> u16 {
    call(r.addr, &r.token, "GET", "/v1/status", None).await.0
}

/// Reads until the peer closes (or resets) the connection; what it sent. Panics after
/// `within`.
async fn until_closed(s: &mut TcpStream, within: Duration, what: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all)
        .await
        .unwrap_or_else(|_| panic!("{what}: still open after {within:?}"));
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads until `needle` has arrived; everything read.
async fn until_seen(s: &mut TcpStream, needle: &str, within: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(&got).contains(needle) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.contains(needle),
        "no {needle:?} within {within:?}: {text}"
    );
    text
}

/// Polls until `done` holds (a state change of the node, not a fixed wait).
async fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_headers_slowly_is_disconnected_at_the_header_timeout() {
    let r = start(|a| a.header_timeout = Duration::from_secs(1)).await;
    let s = TcpStream::connect(r.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let started = Instant::now();
    // A header line every 100 ms, never the blank line that ends them (a slowloris).
    let drip = tokio::spawn(async move {
        wr.write_all(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .ok();
        for i in 0..300 {
            let line = format!("X-Slow-{i}: {}\r\n", "a".repeat(64));
            if wr.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), rd.read_to_end(&mut got)).await;
    let waited = started.elapsed();
    drip.abort();
    assert!(closed.is_ok(), "a slow header kept its connection for 15 s");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );
    assert!(
        !String::from_utf8_lossy(&got).contains(" 200 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // An idle kept-alive connection goes the same way.
    let mut idle = TcpStream::connect(r.addr).await.unwrap();
    let req = format!(
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        r.token
    );
    idle.write_all(req.as_bytes()).await.unwrap();
    let answer = until_closed(&mut idle, Duration::from_secs(8), "an idle connection").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(status(&r).await, 200);
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_the_oldest_idle_connections_close_and_a_prompt_client_is_served() {
    let r = start(|a| {
        a.max_connections = 8;
        a.max_event_streams = 2;
        a.max_event_streams_per_token = 2;
        a.header_timeout = Duration::from_secs(120);
    })
    .await;
    // 20 connections that start a request and never finish its headers.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(r.addr).await.unwrap();
        s.write_all(b"GET /v1/status HTTP/1.1\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // The 12 oldest are closed at once, long before the header timeout.
    let started = Instant::now();
    for (i, s) in slow[..12].iter_mut().enumerate() {
        let got = until_closed(s, Duration::from_secs(10), &format!("slow connection {i}")).await;
        assert!(got.is_empty(), "{got}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // The 8 newest are still open.
    for s in &slow[12..] {
        let mut b = [0u8; 1];
        match s.try_read(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("a connection under the cap ended: {other:?}"),
        }
    }
    assert_eq!(r.node.api_load().connections, 8);
    // A client that sends its request at once is served: the oldest idle connection makes room.
    for _ in 0..3 {
        assert_eq!(status(&r).await, 200);
    }
    assert!(r.node.api_load().connections <= 8);
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_a_full_house_refuses_new_connections() {
    let r = start(|a| {
        a.max_connections = 4;
        a.max_event_streams = 1;
        a.max_event_streams_per_token = 1;
        a.header_timeout = Duration::from_secs(120);
        a.body_timeout = Duration::from_secs(3);
    })
    .await;
    // Four calls whose bodies never come: every connection is inside a request. The node
    // asks for each body (100 Continue) once the call is let in and its body awaited.
    let head = format!(
        "POST /v1/reviews HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
        r.token
    );
    let mut stuck = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(r.addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        until_seen(&mut s, "100 Continue", Duration::from_secs(5)).await;
        s.write_all(b"{").await.unwrap();
        stuck.push(s);
    }
    let took = Instant::now();
    // Every connection is inside a request: a new one is closed at once, unanswered.
    let mut fifth = TcpStream::connect(r.addr).await.unwrap();
    let req = format!(
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        r.token
    );
    let _ = fifth.write_all(req.as_bytes()).await;
    let got = until_closed(&mut fifth, Duration::from_secs(2), "a fifth connection").await;
    assert!(got.is_empty(), "{got}");
    // At the body timeout each stuck call gets a JSON 408 and its connection is closed...
    for s in &mut stuck {
        let got = until_closed(s, Duration::from_secs(10), "a stuck body").await;
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(got.contains(r#""code":"timeout""#), "{got}");
    }
    assert!(
        took.elapsed() >= Duration::from_secs(2),
        "{:?}",
        took.elapsed()
    );
    // ...which makes room again.
    assert_eq!(status(&r).await, 200);
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_a_json_413_on_every_endpoint() {
    let r = start(|_| {}).await;
    // A body a little over the limit is read to its end and answered 413, on every endpoint
    // that takes one (it was text/plain on /v1/sync, 400 on the JSON endpoints).
    let huge = serde_json::to_vec(&json!({ "peer": "a".repeat(3 << 20) })).unwrap();
    for path in ["/v1/sync", "/v1/reviews", "/v1/follow", "/v1/attest"] {
        for _ in 0..3 {
            let (s, v) = call(r.addr, &r.token, "POST", path, Some(huge.clone())).await;
            assert_eq!(
                (s, v["code"].as_str()),
                (413, Some("too_large")),
                "{path}: {v}"
            );
            assert!(
                v["message"]
                    .as_str()
                    .unwrap()
                    .contains("api.max_body_bytes"),
                "{v}"
            );
        }
    }
    // One declared far over the limit is answered before any of it is read.
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let req = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        r.token,
        100 << 20
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let got = until_closed(&mut s, Duration::from_secs(5), "a declared 100 MiB body").await;
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert!(got.contains("application/json"), "{got}");
    assert!(got.contains(r#""code":"too_large""#), "{got}");
    // Without the token, the body is not read at all: 401 at once, though none of the
    // declared body was sent.
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let req = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        huge.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let got = until_seen(&mut s, "unauthorized", Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
    // Bodies within the limit work as before.
    let (s, v) = call(r.addr, &r.token, "POST", "/v1/sync", Some(b"{}".to_vec())).await;
    assert_eq!(s, 200, "{v}");
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_per_token_and_a_closed_one_frees_its_place() {
    let r = start(|a| {
        a.max_event_streams = 4;
        a.max_event_streams_per_token = 2;
    })
    .await;
    let open = |r: &Running| {
        let (addr, token) = (r.addr, r.token.clone());
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let req = format!(
                "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.unwrap();
            s
        }
    };
    let mut a = open(&r).await;
    until_seen(&mut a, "event: ready", Duration::from_secs(10)).await;
    let mut b = open(&r).await;
    until_seen(&mut b, "event: ready", Duration::from_secs(10)).await;
    assert_eq!(r.node.api_load().event_streams, 2);
    let (s, v) = call(r.addr, &r.token, "GET", "/v1/events", None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (429, Some("too_many_streams")),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("api.max_event_streams_per_token"),
        "{v}"
    );
    // A reader that goes away gives its place back.
    drop(a);
    eventually(
        "the closed stream's place freed",
        Duration::from_secs(10),
        || r.node.api_load().event_streams == 1,
    )
    .await;
    let mut c = open(&r).await;
    until_seen(&mut c, "event: ready", Duration::from_secs(10)).await;
    drop((b, c));
    r.node.shutdown().await.unwrap();
}

/// `n` reviews by distinct authors of one producer's product.
fn reviews(n: usize, from: usize) -> Vec<Vec<u8>> {
    let producer = AuthorKey(SigningKey::from_bytes(&[42; 32]).verifying_key().to_bytes());
    (from..from + n)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            RecordBuilder::new(Body::Review(Review {
                product: ProductRef {
                    producer,
                    code: format!("gtin-{}", i % 50),
                },
                rating: (i % 5) as u8 + 1,
                title: Some("Limits".into()),
                // Long: each event is about 2.5 KB, so the socket buffers hold few of them.
                text: "A review long enough to look like what people write. ".repeat(36),
            }))
            .created_at(chorus_node::clock::now_ms())
            .sign(&SigningKey::from_bytes(&seed))
            .unwrap()
            .wire()
            .to_vec()
        })
        .collect()
}

/// An event stream read by a client whose socket takes almost nothing: it says `ready`, and
/// then the test stops reading.
async fn stalled_stream(r: &Running) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(r.addr).await.unwrap();
    let req = format!(
        "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        r.token
    );
    s.write_all(req.as_bytes()).await.unwrap();
    until_seen(&mut s, "event: ready", Duration::from_secs(10)).await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_event_stream_reader_is_dropped_while_writes_complete() {
    let r = start(|a| {
        a.write_timeout = Duration::from_secs(2);
        a.event_queue = 4;
    })
    .await;
    let mut stalled = stalled_stream(&r).await;
    assert_eq!(r.node.api_load().event_streams, 1);
    // Far more events than the socket buffers hold, while the reader reads nothing.
    let outcomes = r.node.ingest().ingest(reviews(5000, 0)).await.unwrap();
    assert!(outcomes.iter().all(|o| o.is_accepted()));
    // A write through the API meanwhile is answered as usual.
    let started = Instant::now();
    let review = json!({"producer": AuthorKey([9; 32]).to_string(), "product": "p", "rating": 4, "text": "fine"});
    let (s, v) = call(
        r.addr,
        &r.token,
        "POST",
        "/v1/reviews",
        Some(serde_json::to_vec(&review).unwrap()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Its writes made no progress for api.write_timeout: the node dropped the stream and its
    // connection, and the stream's place is free again.
    eventually(
        "the stalled stream dropped",
        Duration::from_secs(20),
        || r.node.api_load().event_streams == 0,
    )
    .await;
    eventually(
        "the stalled connection closed",
        Duration::from_secs(10),
        || r.node.api_load().connections == 0,
    )
    .await;
    // What the client can still read ends: the node closed the connection.
    until_closed(&mut stalled, Duration::from_secs(10), "the stalled stream").await;
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_event_stream_reader_skips_events_and_is_told_with_lagged() {
    let r = start(|a| {
        a.write_timeout = Duration::from_secs(120);
        a.event_queue = 4;
    })
    .await;
    let mut slow = stalled_stream(&r).await;
    // More events than the socket buffers, the stream's queue and the node's event buffer
    // (4,096) hold together.
    let outcomes = r.node.ingest().ingest(reviews(8000, 0)).await.unwrap();
    assert!(outcomes.iter().all(|o| o.is_accepted()));
    // The reader catches up with what was queued for it; the next event after that comes
    // with `lagged` before it, counting what it missed.
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(String::new());
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 16];
        let mut text = String::new();
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
            if text.contains(r#""type":"lagged""#) {
                let _ = seen_tx.send(text);
                // Keep the connection open, reading, until the test ends.
                text = String::new();
            }
        }
    });
    // One more record at a time until it brings the news (the reader is still catching up
    // while the queue is full).
    let mut all = String::new();
    for i in 0..100 {
        let outcomes = r
            .node
            .ingest()
            .ingest(reviews(1, 10_000 + i))
            .await
            .unwrap();
        assert!(outcomes[0].is_accepted());
        if let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_millis(300), seen_rx.changed()).await
        {
            all = seen_rx.borrow().clone();
            break;
        }
    }
    let at = all.find(r#""type":"lagged""#).expect("no lagged event");
    let missed: u64 = all[at..]
        .split(r#""missed":"#)
        .nth(1)
        .and_then(|m| m.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|m| m.parse().ok())
        .expect("lagged says how many were missed");
    // 8,000 records and their rating changes: those beyond the buffers were not kept for it.
    // (How many depends on how much the kernel's socket buffers took while the reader slept,
    // which varies with the machine's load: only that some were dropped is certain.)
    let records = all.matches(r#""type":"record""#).count();
    eprintln!("slow reader: {records} record events read, then lagged, missed {missed}");
    assert!(missed > 0, "missed {missed}");
    assert!(
        records < 8000,
        "{records} record events were kept for a stalled reader"
    );
    assert_eq!(
        r.node.api_load().event_streams,
        1,
        "a slow reader is not dropped"
    );
    reader.abort();
    r.node.shutdown().await.unwrap();
}
