//! Running the `chorus` CLI against real nodes: the helpers every end-to-end test file shares.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{chorus, DataDir, NodeProcess};

/// A producer key nobody runs a node for (any 32 bytes in hex).
pub const PRODUCER: &str = "abababababababababababababababababababababababababababababababab";
/// Every node of these tests: loopback only, no LAN discovery, API on a free port.
pub const FLAGS: [&str; 5] = [
    "--listen",
    "/ip4/127.0.0.1/tcp/0",
    "--no-mdns",
    "--api",
    "127.0.0.1:0",
];
/// How long a node may take to start.
pub const START: Duration = Duration::from_secs(30);
/// How long a record may take to travel between two nodes on loopback.
pub const TRAVEL: Duration = Duration::from_secs(30);

/// A process's standard output, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A process's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Starts a node with [`FLAGS`] (bootstrapping from `bootstrap` if given) and waits until
/// its API answers and it listens; returns it with its listen address (`.../p2p/PEERID`).
pub fn start(dir: &DataDir, bootstrap: Option<&str>) -> (NodeProcess, String) {
    let mut args = FLAGS.to_vec();
    if let Some(b) = bootstrap {
        args.extend(["--bootstrap", b]);
    }
    let mut node = NodeProcess::start(dir, &args);
    node.wait_for("api      http://127.0.0.1:", START);
    let addr = node
        .wait_for("listening /ip4/127.0.0.1/tcp/", START)
        .trim_start_matches("listening ")
        .to_string();
    (node, addr)
}

/// Runs a command that must succeed; returns its trimmed stdout.
pub fn ok(dir: &DataDir, args: &[&str]) -> String {
    let out = chorus(dir, args);
    assert!(
        out.status.success(),
        "chorus {args:?} failed ({:?}): {}",
        out.status.code(),
        stderr(&out)
    );
    stdout(&out).trim().to_string()
}

/// Runs a command with `--json` (after the subcommand) that must succeed and print one JSON
/// line; returns its answer.
pub fn json_of(dir: &DataDir, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = ok(dir, &all);
    assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("chorus {args:?}: {e}: {text}"))
}

/// Runs a command that must fail with exit code 2, nothing on stdout and exactly one line on
/// stderr starting with `chorus:`; returns that line.
pub fn fails(dir: &DataDir, args: &[&str]) -> String {
    let out = chorus(dir, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "chorus {args:?}: {err}");
    assert_eq!(stdout(&out), "", "chorus {args:?} printed on stdout");
    assert_eq!(err.lines().count(), 1, "chorus {args:?}: one line: {err}");
    assert!(err.starts_with("chorus: "), "chorus {args:?}: {err}");
    err.trim().to_string()
}

/// Calls `f` every 200 ms until it returns something; fails the test after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Now, in ms since the Unix epoch (records' time unit).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Opens a plain petition aimed at `producer` on `dir`, with this title and threshold;
/// returns its id.
pub fn open_petition(dir: &DataDir, producer: &str, title: &str, threshold: u32) -> String {
    let threshold = threshold.to_string();
    ok(
        dir,
        &[
            "petition",
            "open",
            "--producer",
            producer,
            "--title",
            title,
            "--text",
            "Please",
            "--threshold",
            &threshold,
        ],
    )
}

/// Opens a campaign aimed at [`PRODUCER`] on `dir` (threshold 1) with this goal (`30EUR`)
/// and deadline (ms); returns its id.
pub fn campaign(dir: &DataDir, goal: &str, deadline: Option<u64>) -> String {
    let deadline = deadline.map(|d| d.to_string());
    let mut args = vec![
        "petition",
        "open",
        "--producer",
        PRODUCER,
        "--title",
        "Fund the mould",
        "--text",
        "All or nothing",
        "--threshold",
        "1",
        "--campaign",
        "--goal",
        goal,
    ];
    if let Some(d) = &deadline {
        args.extend(["--deadline", d.as_str()]);
    }
    ok(dir, &args)
}
