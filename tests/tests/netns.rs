//! Nodes on separate hosts: each `chorus` process in a network namespace of its own, with its
//! own address on a bridge, made by `deploy/testnet.sh` for this test and removed after it,
//! even when it fails. Needs root and iproute2 (`.ci/run` installs iproute2); where network
//! namespaces cannot be made, the test says why and does nothing else (the loopback tests
//! cover the same code). Latency and loss need the kernel's `sch_netem` or, failing it,
//! iptables' NFQUEUE and `chorus-netem` (crates/netem); where neither works, the test that
//! needs them says why and does nothing else.
//!
//! Each test has its own net (a prefix and a subnet of its own: `slot`), so they run side
//! by side.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chorus_protocol::{
    AuthorKey, Body, ProductRef, RecordBuilder, Review, SignedRecord, SigningKey,
};
use serde_json::Value;

/// A test net of `deploy/testnet.sh`, taken down when dropped.
struct Testnet {
    script: PathBuf,
    dir: tempfile::TempDir,
    prefix: String,
    subnet: String,
    nodes: usize,
}

impl Testnet {
    /// Whether this machine lets the test make namespaces and bridges; if not, why.
    fn unavailable() -> Option<String> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Some("not root: network namespaces need root".into());
        }
        for tool in ["ip", "tc"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !found {
                return Some(format!("{tool} is missing (apt-get install iproute2)"));
            }
        }
        // The tests of this file ask at once: a name for each asking.
        static ASKED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let asked = ASKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("chorus-probe-{}-{asked}", std::process::id());
        let made = Command::new("ip").args(["netns", "add", &name]).output();
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        match made {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "network namespaces are not allowed here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Some(format!("ip netns: {e}")),
        }
    }

    /// Where latency and loss cannot be made here (neither netem nor NFQUEUE), why.
    fn unshaped(slot: u32) -> Option<String> {
        let (prefix, _) = names(slot);
        let out = Command::new("bash")
            .arg(script())
            .arg("shaper")
            .arg("--netem-bin")
            .arg(netem_bin())
            .env("CHORUS_TESTNET_PREFIX", &prefix)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        eprintln!("netns: latency and loss here: {said}");
        (!out.status.success())
            .then(|| format!("{said}{}", String::from_utf8_lossy(&out.stderr).trim_end()))
    }

    /// `n` nodes, up and serving their API, on the net of `slot`.
    fn up(slot: u32, n: usize, extra: &[&str]) -> Testnet {
        let (prefix, subnet) = names(slot);
        let net = Testnet {
            script: script(),
            dir: tempfile::tempdir().unwrap(),
            prefix,
            subnet,
            nodes: n,
        };
        let bin = chorus_e2e::chorus_bin();
        let mut args = vec!["up".to_string(), n.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--bin".to_string(), bin.display().to_string()]);
        let out = net.script(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "testnet up: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        net
    }

    fn script(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("CHORUS_TESTNET_DIR", self.dir.path())
            .env("CHORUS_TESTNET_PREFIX", &self.prefix)
            .env("CHORUS_TESTNET_SUBNET", &self.subnet)
            .output()
            .unwrap()
    }

    /// `chorus ARGS` against node `i`, inside its namespace.
    fn chorus(&self, i: usize, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &format!("{}-n{i}", self.prefix)])
            .arg(chorus_e2e::chorus_bin())
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("n{i}")))
            .args(args)
            .env_remove("CHORUS_DATA_DIR")
            .output()
            .unwrap()
    }

    /// `chorus ARGS` that must succeed; its trimmed output.
    fn ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.chorus(i, args);
        assert!(
            out.status.success(),
            "node {i}: chorus {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// How the links are shaped (`deploy/testnet.sh` says: none, tc netem or chorus-netem).
    fn links(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("netem"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// How long node `from` takes to open a TCP connection to node `to` (to its API port):
    /// the handshake's round trip, the shortest of `tries`.
    fn connect_rtt(&self, from: usize, to: usize, tries: usize) -> Duration {
        let open = format!(
            "s=$EPOCHREALTIME; exec 3<>/dev/tcp/{}.{to}/7471 || exit 1; e=$EPOCHREALTIME; \
             exec 3>&-; echo \"$s $e\"",
            self.subnet
        );
        (0..tries)
            .filter_map(|_| {
                let out = Command::new("ip")
                    .args(["netns", "exec", &format!("{}-n{from}", self.prefix)])
                    .args(["bash", "-c", &open])
                    .env("LC_ALL", "C")
                    .output()
                    .ok()?;
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                let mut t = text.split_whitespace().map(|v| v.parse::<f64>().ok());
                let (s, e) = (t.next()??, t.next()??);
                Some(Duration::from_secs_f64(e - s))
            })
            .min()
            .unwrap_or_else(|| panic!("node {from} could not connect to node {to}"))
    }

    /// `chorus ARGS --json` on node `i`, if it answers.
    fn json(&self, i: usize, args: &[&str]) -> Option<Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.chorus(i, &all);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }
}

/// `deploy/testnet.sh`.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/testnet.sh")
}

/// The prefix and subnet of the net of `slot` (one per test): short (interface names are
/// at most 15 bytes), this run's own, and each test's own.
fn names(slot: u32) -> (String, String) {
    let pid = std::process::id();
    (
        format!("c{}{slot}", pid % 100_000),
        format!("10.{}.{}", 100 + pid % 100, ((pid / 100) % 80) * 3 + slot),
    )
}

/// The `chorus-netem` binary of this build, brought up to date once (as
/// [`chorus_e2e::chorus_bin`] does for `chorus`).
fn netem_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let chorus = chorus_e2e::chorus_bin();
            let dir = chorus.parent().unwrap();
            let mut build = chorus_e2e::cargo();
            build.args([
                "build",
                "--quiet",
                "-p",
                "chorus-netem",
                "--bin",
                "chorus-netem",
            ]);
            if dir.ends_with("release") {
                build.arg("--release");
            }
            assert!(
                build.status().unwrap().success(),
                "cannot build chorus-netem"
            );
            dir.join("chorus-netem")
        })
        .clone()
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let out = self.script(&["down"]);
        if !out.status.success() {
            eprintln!(
                "testnet down: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// Waits until `check` holds, or fails saying `what`.
fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    start.elapsed()
}

#[test]
fn a_partition_of_five_nodes_heals_to_the_same_records_and_counts() {
    if let Some(why) = Testnet::unavailable() {
        eprintln!("netns: not run: {why}");
        return;
    }
    let net = Testnet::up(0, 5, &[]);
    let n = net.nodes;
    // Node 1 is the archive; node 2's user is the producer; every other node follows it.
    net.ok(2, &["profile", "--name", "Atelier", "--role", "producer"]);
    let producer = net.ok(2, &["id"]);
    for i in 3..=n {
        net.ok(i, &["follow", "--producer", &producer]);
    }
    until("every node connected", Duration::from_secs(30), || {
        (1..=n).all(|i| {
            net.json(i, &["status"])
                .is_some_and(|s| s["peers"].as_u64().unwrap_or(0) >= 1)
        })
    });
    let petition = net.ok(
        3,
        &[
            "petition",
            "open",
            "--producer",
            &producer,
            "--title",
            "Spare parts",
            "--text",
            "Sell them",
            "--threshold",
            "10",
        ],
    );
    until(
        "the petition on every node",
        Duration::from_secs(30),
        || (1..=n).all(|i| net.json(i, &["tally", &petition]).is_some()),
    );

    // Split 2 + 3: nodes 1 and 2 on one side, 3, 4 and 5 on the other. Both sides write.
    let cut = net.script(&["cut", "1", "2"]);
    assert!(cut.status.success());
    for i in 1..=n {
        net.ok(i, &["endorse", &petition]);
        net.ok(
            i,
            &[
                "review",
                &producer,
                &format!("part-{i}"),
                "--rating",
                "4",
                "--text",
                "Works",
            ],
        );
    }
    // While cut, a side does not see the other's endorsements.
    std::thread::sleep(Duration::from_secs(3));
    let side = net.json(3, &["tally", &petition]).unwrap();
    assert!(
        side["endorsers"].as_u64().unwrap() <= 3,
        "the partition leaked: {side}"
    );

    // Heal: every node has every endorsement and the same records within 30 s.
    assert!(net.script(&["heal"]).status.success());
    let took = until(
        "the same counts everywhere",
        Duration::from_secs(30),
        || {
            (1..=n).all(|i| {
                net.json(i, &["tally", &petition])
                    .is_some_and(|t| t["endorsers"] == n as u64)
            }) && {
                // The followers of the producer hold the same records (the archive holds more:
                // everything, its own profile among them).
                let counts: Vec<u64> = (3..=n)
                    .filter_map(|i| net.json(i, &["status"]))
                    .map(|s| s["records"].as_u64().unwrap_or(0))
                    .collect();
                counts.len() == n - 2 && counts.windows(2).all(|w| w[0] == w[1])
            }
        },
    );
    eprintln!("healed: same counts everywhere {took:?} after the heal");
    for i in 1..=n {
        for code in 1..=n {
            let rating = net.json(i, &["rating", &producer, &format!("part-{code}")]);
            assert!(
                rating.is_some_and(|r| r["count"] == 1),
                "node {i} lacks the review of part-{code}"
            );
        }
    }
}

#[test]
fn with_150_ms_latency_and_5_percent_loss_on_every_link_every_record_reaches_every_follower() {
    if let Some(why) = Testnet::unavailable() {
        eprintln!("netns: not run: {why}");
        return;
    }
    if let Some(why) = Testnet::unshaped(1) {
        eprintln!("netns: not run: latency and loss cannot be made here: {why}");
        return;
    }
    let start = Instant::now();
    let netem = netem_bin().display().to_string();
    let shape = ["--latency", "150", "--loss", "5", "--netem-bin", &netem];
    let net = Testnet::up(1, 5, &shape);
    let n = net.nodes;
    eprintln!("links: {}", net.links());
    // Every packet between two nodes waits 150 ms, so a handshake (a SYN one way, a SYN-ACK
    // the other) takes 300 ms: the delay is really there.
    let rtt = net.connect_rtt(2, 1, 5);
    eprintln!("a TCP handshake from node 2 to node 1: {rtt:?}");
    assert!(rtt >= Duration::from_millis(290), "no latency: {rtt:?}");

    // Node 1 is the archive; node 2's user is the producer; every other node follows it.
    net.ok(2, &["profile", "--name", "Atelier", "--role", "producer"]);
    let producer = net.ok(2, &["id"]);
    for i in 3..=n {
        net.ok(i, &["follow", "--producer", &producer]);
    }
    until("every node connected", Duration::from_secs(30), || {
        (1..=n).all(|i| {
            net.json(i, &["status"])
                .is_some_and(|s| s["peers"].as_u64().unwrap_or(0) >= 1)
        })
    });
    // Several nodes write: a petition, an endorsement from every node, two reviews from
    // every node.
    let petition = net.ok(
        3,
        &[
            "petition",
            "open",
            "--producer",
            &producer,
            "--title",
            "Spare parts",
            "--text",
            "Sell them",
            "--threshold",
            "10",
        ],
    );
    until(
        "the petition on every node",
        Duration::from_secs(30),
        || (1..=n).all(|i| net.json(i, &["tally", &petition]).is_some()),
    );
    let written = Instant::now();
    for i in 1..=n {
        net.ok(i, &["endorse", &petition]);
        for k in 1..=2 {
            net.ok(
                i,
                &[
                    "review",
                    &producer,
                    &format!("part-{i}-{k}"),
                    "--rating",
                    "4",
                    "--text",
                    "Works",
                ],
            );
        }
    }
    let took = until(
        "every record on every node",
        Duration::from_secs(60),
        || {
            (1..=n).all(|i| {
                net.json(i, &["tally", &petition])
                    .is_some_and(|t| t["endorsers"] == n as u64)
            }) && (1..=n).all(|i| {
                (1..=n).all(|w| {
                    (1..=2).all(|k| {
                        net.json(i, &["rating", &producer, &format!("part-{w}-{k}")])
                            .is_some_and(|r| r["count"] == 1)
                    })
                })
            })
        },
    );
    eprintln!(
        "every record on every node {took:?} after the last was written ({:?} after the first)",
        written.elapsed()
    );
    // The followers of the producer hold the same records (the archive holds them too, and
    // the producer's node its own).
    // (Counted a moment later: a record seen by its tally may still be in its node's last
    // batch when the status is read, under 5% loss and a busy machine.)
    let counts = || -> Vec<u64> {
        (3..=n)
            .map(|i| {
                net.json(i, &["status"]).unwrap()["records"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    until(
        "the followers hold as many records",
        Duration::from_secs(20),
        || counts().windows(2).all(|w| w[0] == w[1]),
    );
    // The delay held to the end.
    let rtt = net.connect_rtt(5, 3, 5);
    assert!(rtt >= Duration::from_millis(290), "no latency: {rtt:?}");
    eprintln!("latency and loss test: {:?} in all", start.elapsed());
}

/// A review of `producer`'s product `code` by `author`, its text `text_bytes` long.
fn review(author: u8, producer: &AuthorKey, code: &str, text_bytes: usize) -> SignedRecord {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    RecordBuilder::new(Body::Review(Review {
        product: ProductRef {
            producer: *producer,
            code: code.into(),
        },
        rating: 1 + author % 5,
        title: None,
        text: format!("{code} ").repeat(text_bytes / (code.len() + 1) + 1)[..text_bytes].into(),
    }))
    .created_at(now - 60_000)
    .sign(&SigningKey::from_bytes(&[author; 32]))
    .unwrap()
}

/// The pulls node `i` made that ended at or after `since` (ms since the epoch), by peer and
/// end, as `chorus peers` lists the last pull from each peer.
fn pulls_since(net: &Testnet, i: usize, since: u64, into: &mut HashMap<(String, u64), Value>) {
    if let Some(p) = net.json(i, &["peers"]) {
        for pull in p["pulls"].as_array().into_iter().flatten() {
            let at = pull["at"].as_u64().unwrap_or(0);
            if at >= since {
                let peer = pull["peer"].as_str().unwrap_or_default().to_string();
                into.insert((peer, at), pull.clone());
            }
        }
    }
}

fn sum(pulls: &HashMap<(String, u64), Value>, field: &str) -> u64 {
    pulls.values().map(|p| p[field].as_u64().unwrap_or(0)).sum()
}

#[test]
fn a_node_cut_off_for_the_whole_run_catches_up_on_heal_with_a_pull_that_costs_the_difference() {
    if let Some(why) = Testnet::unavailable() {
        eprintln!("netns: not run: {why}");
        return;
    }
    let start = Instant::now();
    let net = Testnet::up(2, 4, &[]);
    let n = net.nodes;
    // Node 1 is the archive; 2, 3 and 4 follow one producer, whom no node speaks for: every
    // record is signed here, in the test, and imported.
    let producer = AuthorKey(
        SigningKey::from_bytes(&[200; 32])
            .verifying_key()
            .to_bytes(),
    );
    let producer_hex = producer.to_string();
    for i in 2..=n {
        net.ok(i, &["follow", "--producer", &producer_hex]);
    }
    until("every node connected", Duration::from_secs(30), || {
        (1..=n).all(|i| {
            net.json(i, &["status"])
                .is_some_and(|s| s["peers"].as_u64().unwrap_or(0) >= 1)
        })
    });

    // The base every node holds: 2,000 reviews of 400 bytes by 10 authors.
    let base: Vec<SignedRecord> = (1..=10u8)
        .flat_map(|a| (0..200).map(move |k| (a, k)))
        .map(|(a, k)| review(a, &producer, &format!("base-{a}-{k}"), 400))
        .collect();
    let base_bytes: usize = base.iter().map(|r| r.wire().len()).sum();
    let file = net.dir.path().join("base.cbor");
    std::fs::write(
        &file,
        base.iter()
            .flat_map(|r| r.wire().to_vec())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    for i in 1..=n {
        net.ok(i, &["import", file.to_str().unwrap()]);
    }
    let records = |i: usize| {
        net.json(i, &["status"])
            .map(|s| s["records"].as_u64().unwrap_or(0))
    };
    until("the base on every node", Duration::from_secs(30), || {
        (1..=n).all(|i| records(i) == Some(base.len() as u64))
    });

    // Node 4 is cut off, its connections across the cut ended as a long partition ends
    // them: nothing sent meanwhile can reach it later by gossip.
    let cut = net.script(&["cut", "--reset", "4"]);
    assert!(
        cut.status.success(),
        "{}",
        String::from_utf8_lossy(&cut.stderr)
    );
    until("node 4 alone", Duration::from_secs(10), || {
        net.json(4, &["status"]).is_some_and(|s| s["peers"] == 0)
    });
    // The others write a few dozen records: 10 each on nodes 1, 2 and 3, by other authors.
    let diff: Vec<Vec<SignedRecord>> = (1..=3u8)
        .map(|w| {
            (0..10)
                .map(|k| review(20 + w, &producer, &format!("new-{w}-{k}"), 400))
                .collect()
        })
        .collect();
    let diff_len = diff.iter().map(Vec::len).sum::<usize>() as u64;
    let diff_bytes: usize = diff.iter().flatten().map(|r| r.wire().len()).sum();
    for (w, batch) in diff.iter().enumerate() {
        let file = net.dir.path().join(format!("new-{w}.cbor"));
        std::fs::write(
            &file,
            batch
                .iter()
                .flat_map(|r| r.wire().to_vec())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        net.ok(w + 1, &["import", file.to_str().unwrap()]);
    }
    let all = base.len() as u64 + diff_len;
    until(
        "the others share what they wrote",
        Duration::from_secs(30),
        || (1..=3).all(|i| records(i) == Some(all)),
    );
    // Long enough for gossip's own repair (IHAVE of the last few seconds' messages) to have
    // forgotten them.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        records(4),
        Some(base.len() as u64),
        "node 4 was not cut off"
    );

    // Heal. Node 4 reconnects (at the next Kademlia round of a node: within a minute) and
    // pulls what it lacks.
    let heal_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(net.script(&["heal"]).status.success());
    let mut pulls = HashMap::new();
    let took = until("node 4 caught up by pulls", Duration::from_secs(80), || {
        pulls_since(&net, 4, heal_ms, &mut pulls);
        sum(&pulls, "stored") >= diff_len && records(4) == Some(all)
    });
    // One more look: pulls that ended since.
    std::thread::sleep(Duration::from_millis(500));
    pulls_since(&net, 4, heal_ms, &mut pulls);
    eprintln!("node 4 caught up {took:?} after the heal; its pulls since:");
    for ((peer, at), p) in &pulls {
        eprintln!(
            "  {peer} at {at}: rounds {} fetches {} sent {} B received {} B (records {} B), \
             needed {} fetched {} stored {} duplicates {}, {} ms, error {}",
            p["rounds"],
            p["fetches"],
            p["bytes_sent"],
            p["bytes_received"],
            p["record_bytes"],
            p["needed"],
            p["fetched"],
            p["stored"],
            p["duplicates"],
            p["millis"],
            p["error"]
        );
    }
    eprintln!(
        "base {} records, {base_bytes} B; difference {diff_len} records, {diff_bytes} B",
        base.len()
    );

    // Its store holds exactly the union, as the others' do.
    assert_eq!(records(4), Some(all));
    assert_eq!(records(3), Some(all));
    for w in 1..=3 {
        for k in 0..10 {
            let r = net.json(4, &["rating", &producer_hex, &format!("new-{w}-{k}")]);
            assert!(
                r.is_some_and(|r| r["count"] == 1),
                "node 4 lacks new-{w}-{k}"
            );
        }
    }
    // Every missed record came by pull, none by gossip.
    assert_eq!(sum(&pulls, "stored"), diff_len, "{pulls:?}");
    // The cost follows the difference, not the base: each pull received at most the
    // difference once over (a record asked of two peers at once comes from both) and a
    // little reconciliation, and all of them together far less than the base.
    let received = sum(&pulls, "bytes_received");
    let fetched = sum(&pulls, "fetched");
    let peers = pulls.len() as u64;
    for p in pulls.values() {
        let got = p["bytes_received"].as_u64().unwrap();
        assert!(
            got <= 2 * diff_bytes as u64 + 16 * 1024,
            "a pull received {got} B for a difference of {diff_bytes} B: {p}"
        );
        // What the reconciliation found missing was the difference, at most.
        assert!(p["needed"].as_u64().unwrap() <= diff_len, "{p}");
        assert!(p["fetched"].as_u64().unwrap() <= diff_len, "{p}");
    }
    assert!(fetched <= peers * diff_len, "{fetched} records fetched");
    assert!(
        received * 10 <= base_bytes as u64,
        "{received} B received in all, against a base of {base_bytes} B"
    );
    eprintln!(
        "catch-up: {peers} pulls, {fetched} records and {received} B received in all, for a \
         difference of {diff_len} records ({diff_bytes} B) over a base of {} ({base_bytes} B); \
         {:?} in all",
        base.len(),
        start.elapsed()
    );
}
