//! The metrics endpoint of real `chorus node` processes (issue 22): two nodes on loopback,
//! each scraped over HTTP, show their connection, their pulls from each other and a record
//! gossiped from one to the other.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chorus_e2e::cli::{eventually, fails, json_of, ok, FLAGS, START, TRAVEL};
use chorus_e2e::{DataDir, NodeProcess};

/// Starts a node with [`FLAGS`] and `--metrics 127.0.0.1:0` (bootstrapping from `bootstrap`
/// if given); returns it, its listen address and its metrics' `HOST:PORT`, as it prints them.
fn start(dir: &DataDir, bootstrap: Option<&str>) -> (NodeProcess, String, String) {
    let mut args = FLAGS.to_vec();
    args.extend(["--metrics", "127.0.0.1:0"]);
    if let Some(b) = bootstrap {
        args.extend(["--bootstrap", b]);
    }
    let mut node = NodeProcess::start(dir, &args);
    node.wait_for("api      http://127.0.0.1:", START);
    let metrics = node
        .wait_for("metrics  http://127.0.0.1:", START)
        .trim_start_matches("metrics  http://")
        .trim_end_matches("/metrics")
        .to_string();
    let addr = node
        .wait_for("listening /ip4/127.0.0.1/tcp/", START)
        .trim_start_matches("listening ")
        .to_string();
    (node, addr, metrics)
}

/// `GET path` over plain HTTP; the status code and the body.
fn get(hostport: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(hostport).expect("connect to the metrics");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("an answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

/// Scrapes `/metrics`: every sample by its series (`name{labels}`), each line checked.
fn scrape(hostport: &str) -> HashMap<String, f64> {
    let (status, body) = get(hostport, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "ends with # EOF");
    let mut out = HashMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("name{labels} value");
        assert!(series.starts_with("chorus_"), "{line}");
        let v: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        out.insert(series.to_string(), v);
    }
    out
}

fn at(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// The sum of a family's samples whose series starts with `prefix` (`name{`), and whose
/// labels contain `label` if given.
fn sum(m: &HashMap<String, f64>, prefix: &str, label: Option<&str>) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix) && label.is_none_or(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn two_nodes_show_their_connection_their_pulls_and_a_gossiped_record() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr, ma) = start(&da, None);
    let (b, _, mb) = start(&db, Some(&addr));
    let kb = ok(&db, &["id"]);

    // Connected, both ways, and each has pulled from the other on connect.
    for (name, m) in [("A", &ma), ("B", &mb)] {
        eventually(&format!("{name} shows one peer and a pull"), TRAVEL, || {
            let s = scrape(m);
            (at(&s, "chorus_peers_connected") == 1.0
                && at(&s, "chorus_sync_pulls_total{result=\"ok\"}") >= 1.0
                && at(&s, "chorus_sync_requests_served_total") >= 1.0)
                .then_some(())
        });
    }
    let before = scrape(&mb);
    assert_eq!(at(&before, "chorus_peers_banned"), 0.0);
    assert_eq!(at(&before, "chorus_peer_faults_total"), 0.0);
    assert_eq!(at(&before, "chorus_store_records"), 0.0);

    // A reviews B's product: B follows its own key, so the review travels to it, on the
    // one producer shard B is subscribed to (gossipsub's metrics label it `hash="..."`).
    let status = json_of(&db, &["status"]);
    let shards: Vec<&str> = status["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .filter_map(|s| s.as_str())
        .filter(|s| s.starts_with("chorus/v1/p/"))
        .collect();
    assert_eq!(shards.len(), 1, "{status}");
    let shard = format!("hash=\"{}\"", shards[0]);
    ok(
        &da,
        &[
            "review", &kb, "soap-1", "--rating", "5", "--text", "Lasts", "--json",
        ],
    );
    let on_a = scrape(&ma);
    assert_eq!(at(&on_a, "chorus_store_records"), 1.0);
    assert_eq!(
        at(&on_a, "chorus_ingest_records_total{outcome=\"stored\"}"),
        1.0
    );
    // (Ingest counts a record once its batch is durable, a moment after the store holds it.)
    let after = eventually("B stores the review and shows it gossiped", TRAVEL, || {
        let s = scrape(&mb);
        (at(&s, "chorus_store_records") == 1.0
            && at(&s, "chorus_ingest_records_total{outcome=\"stored\"}") == 1.0
            && at(&s, "chorus_gossip_messages_total{verdict=\"accept\"}") >= 1.0
            && sum(
                &s,
                "chorus_gossipsub_topic_msg_recv_counts_total{",
                Some(&shard),
            ) >= 1.0)
            .then_some(s)
    });
    assert_eq!(at(&after, "chorus_ingest_waiting_records"), 0.0);
    assert_eq!(at(&after, "chorus_peers_connected"), 1.0);
    assert_eq!(
        at(&after, "chorus_gossip_messages_total{verdict=\"reject\"}"),
        0.0
    );
    // A published it on that shard and counted a peer subscribed to it.
    let on_a = scrape(&ma);
    assert!(
        sum(
            &on_a,
            "chorus_gossipsub_topic_msg_published_total{",
            Some(&shard)
        ) >= 1.0,
        "{on_a:?}"
    );
    assert!(sum(&on_a, "chorus_gossipsub_topic_peers_counts{", Some(&shard)) >= 1.0);
    assert_eq!(get(&ma, "/").0, 404);

    drop((a, b));
}

#[test]
fn a_bad_metrics_address_fails_with_one_clear_line() {
    let dir = DataDir::new();
    let err = fails(&dir, &["node", "--metrics", "localhost"]);
    assert!(
        err.contains("--metrics localhost: expected HOST:PORT"),
        "{err}"
    );
    assert!(!dir.path().exists(), "nothing written");
}
