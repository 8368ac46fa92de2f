//! Nodes on separate hosts: each `chorus` process in a network namespace of its own, with its
//! own address on a bridge, made by `deploy/testnet.sh` for this test and removed after it,
//! even when it fails. Needs root and iproute2 (`.ci/run` installs iproute2); where network
//! namespaces cannot be made, the test says why and does nothing else (the loopback tests
//! cover the same code).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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
        let name = format!("chorus-probe-{}", std::process::id());
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

    /// `n` nodes, up and serving their API.
    fn up(n: usize, extra: &[&str]) -> Testnet {
        let pid = std::process::id();
        let net = Testnet {
            script: Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/testnet.sh"),
            dir: tempfile::tempdir().unwrap(),
            // Short (interface names are at most 15 bytes) and this run's own.
            prefix: format!("c{}", pid % 100_000),
            subnet: format!("10.{}.{}", 100 + pid % 100, (pid / 100) % 250),
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
    let net = Testnet::up(5, &[]);
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
