//! `chorus init`, `chorus id` and `chorus node` as real processes on loopback.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use chorus_e2e::cli::{stderr, stdout};
use chorus_e2e::{chorus, DataDir, NodeProcess};

#[test]
fn init_creates_keys_with_mode_0600_a_config_and_a_stable_identity() {
    let dir = DataDir::new();
    let out = chorus(&dir, &["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let author = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("author ").map(str::to_string))
        .expect("init prints the author key");
    assert_eq!(author.len(), 64);
    assert!(author.parse::<chorus_protocol::AuthorKey>().is_ok());
    for key in ["author.key", "node.key"] {
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let config = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(config.contains("[network]"));
    toml::from_str::<toml::Value>(&config).expect("config is valid TOML");

    let id = chorus(&dir, &["id"]);
    assert_eq!(stdout(&id).trim(), author);
    let again = chorus(&dir, &["init"]);
    assert!(stdout(&again).contains("already initialised"));
    assert_eq!(
        stdout(&chorus(&dir, &["--json", "id"])).trim(),
        format!("{{\"author\":\"{author}\"}}")
    );
}

#[test]
fn id_without_init_says_what_to_do() {
    let dir = DataDir::new();
    let out = chorus(&dir, &["id"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("chorus init"), "{}", stderr(&out));
    assert!(!dir.path().exists(), "nothing written");
}

#[test]
fn a_node_runs_on_defaults_prints_its_addresses_and_stops_cleanly_on_sigterm() {
    let dir = DataDir::new();
    let mut node = NodeProcess::start(
        &dir,
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
        ],
    );
    let peer = node.wait_for("peer id", Duration::from_secs(30));
    let peer_id = peer.split_whitespace().last().unwrap().to_string();
    let listening = node.wait_for("listening /ip4/127.0.0.1/tcp/", Duration::from_secs(30));
    assert!(
        listening.ends_with(&format!("/p2p/{peer_id}")),
        "{listening}"
    );
    assert!(dir.path().join("store").exists());
    assert_eq!(node.terminate(), Some(0));
}

#[test]
fn two_nodes_on_loopback_connect_through_a_bootstrap_address() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let mut a = NodeProcess::start(
        &da,
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
        ],
    );
    let addr = a
        .wait_for("listening /ip4/127.0.0.1/tcp/", Duration::from_secs(30))
        .trim_start_matches("listening ")
        .to_string();
    let mut b = NodeProcess::start(
        &db,
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
            "--bootstrap",
            &addr,
        ],
    );
    b.wait_for("peer connected", Duration::from_secs(30));
    a.wait_for("peer connected", Duration::from_secs(30));
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
}

#[test]
fn bad_flags_fail_with_one_clear_line_and_write_nothing() {
    for (args, needle) in [
        (
            vec!["node", "--bootstrap", "/ip4/127.0.0.1/tcp/1"],
            "must end in /p2p/PEERID",
        ),
        (
            vec!["node", "--bootstrap", "not-an-address"],
            "not a multiaddr",
        ),
        (vec!["node", "--listen", "tcp:7470"], "not a multiaddr"),
        (vec!["node", "--api", "localhost"], "HOST:PORT"),
    ] {
        let dir = DataDir::new();
        let out = chorus(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(!dir.path().exists(), "{args:?} wrote the data dir");
    }
}

#[test]
fn a_node_refuses_a_key_file_others_can_read() {
    let dir = DataDir::new();
    assert!(chorus(&dir, &["init"]).status.success());
    let key = dir.path().join("author.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = chorus(
        &dir,
        &[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("readable by others"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_reports_the_running_node_through_the_api() {
    let dir = DataDir::new();
    let none = chorus(&dir, &["status"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        stderr(&none).contains("no node is running"),
        "{}",
        stderr(&none)
    );

    let mut node = NodeProcess::start(
        &dir,
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
        ],
    );
    node.wait_for("api      http://127.0.0.1:", Duration::from_secs(30));
    node.wait_for("listening /ip4/127.0.0.1/tcp/", Duration::from_secs(30));
    let token_mode = std::fs::metadata(dir.path().join("api.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(token_mode & 0o777, 0o600);

    let out = chorus(&dir, &["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let peer_id = s["peer_id"].as_str().unwrap();
    let addrs = s["listen_addrs"].as_array().unwrap();
    assert!(!addrs.is_empty());
    for a in addrs {
        assert!(
            a.as_str().unwrap().ends_with(&format!("/p2p/{peer_id}")),
            "{a}"
        );
    }
    assert_eq!(s["peers"].as_u64(), Some(0));
    assert_eq!(s["records"].as_u64(), Some(0));
    assert!(s["shards"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "chorus/v1/meta"));
    let human = chorus(&dir, &["--json", "status"]);
    assert_eq!(
        stdout(&human),
        stdout(&out),
        "--json before or after the subcommand"
    );

    // A wrong token is refused.
    let token = dir.path().join("api.token");
    std::fs::write(&token, "0".repeat(64)).unwrap();
    let denied = chorus(&dir, &["status"]);
    assert_eq!(denied.status.code(), Some(2));
    assert!(
        stderr(&denied).contains("unauthorized"),
        "{}",
        stderr(&denied)
    );
    assert_eq!(node.terminate(), Some(0));
    assert!(
        !dir.path().join("api.json").exists(),
        "api.json removed on stop"
    );
}

#[test]
fn sync_pulls_from_the_connected_peers_on_demand() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let flags = [
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--api",
        "127.0.0.1:0",
    ];
    let mut a = NodeProcess::start(&da, &flags);
    let addr = a
        .wait_for("listening /ip4/127.0.0.1/tcp/", Duration::from_secs(30))
        .trim_start_matches("listening ")
        .to_string();
    let mut b_flags = flags.to_vec();
    b_flags.extend(["--bootstrap", addr.as_str()]);
    let mut b = NodeProcess::start(&db, &b_flags);
    b.wait_for("api      http://127.0.0.1:", Duration::from_secs(30));
    b.wait_for("peer connected", Duration::from_secs(30));
    let a_peer = addr.rsplit('/').next().unwrap().to_string();

    let out = chorus(&db, &["sync", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let pulls = v["pulls"].as_array().unwrap();
    assert_eq!(pulls.len(), 1, "{v}");
    assert_eq!(pulls[0]["peer"], a_peer.as_str());
    assert!(pulls[0]["error"].is_null(), "{v}");
    assert!(pulls[0]["rounds"].as_u64().unwrap() >= 1);
    assert_eq!(v["stored"], 0);

    let human = chorus(&db, &["sync", "--peer", &a_peer]);
    assert!(human.status.success(), "{}", stderr(&human));
    assert!(stdout(&human).contains(&a_peer), "{}", stdout(&human));

    let bad = chorus(&db, &["sync", "--peer", "not-a-peer"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(stderr(&bad).lines().count(), 1, "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--peer"));

    let stranger = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
    let absent = chorus(&db, &["sync", "--peer", stranger]);
    assert_eq!(absent.status.code(), Some(2));
    assert!(
        stderr(&absent).contains("not connected"),
        "{}",
        stderr(&absent)
    );

    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
    let none = chorus(&db, &["sync"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("no node is running"));
}

#[test]
fn a_passphrase_seals_the_author_key_and_the_node_needs_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DataDir::new();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        std::process::Command::new(chorus_e2e::chorus_bin())
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("CHORUS_PASSPHRASE")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let init = run(
        &["init", "--passphrase", "--json"],
        &[("CHORUS_PASSPHRASE", "s3cret words")],
    );
    assert!(init.status.success(), "{}", stderr(&init));
    let author: serde_json::Value = serde_json::from_str(stdout(&init).trim()).unwrap();
    let key_file = dir.path().join("author.key");
    let bytes = std::fs::read(&key_file).unwrap();
    assert!(bytes.starts_with(b"CHORUSK1"), "sealed");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The public key needs no passphrase.
    let id = run(&["id"], &[]);
    assert_eq!(stdout(&id).trim(), author["author"].as_str().unwrap());
    // A node does.
    let flags = [
        "node",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--api",
        "127.0.0.1:0",
    ];
    let none = run(&flags, &[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        stderr(&none).contains("CHORUS_PASSPHRASE"),
        "{}",
        stderr(&none)
    );
    let wrong = run(&flags, &[("CHORUS_PASSPHRASE", "guess")]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        stderr(&wrong).contains("wrong passphrase"),
        "{}",
        stderr(&wrong)
    );
    let mut node = NodeProcess::spawn_env(&dir, &flags, &[("CHORUS_PASSPHRASE", "s3cret words")]);
    node.wait_for("listening /ip4/127.0.0.1/tcp/", Duration::from_secs(30));
    let logs = node.wait_for("api      http://127.0.0.1:", Duration::from_secs(30));
    assert!(!logs.contains("s3cret"));
    assert_eq!(node.terminate(), Some(0));
    // The secret never shows in what the node printed.
    assert!(!stdout(&run(&["status"], &[])).contains("s3cret"));
}

#[test]
fn a_node_that_cannot_listen_says_why_and_leaves_no_api_json() {
    let dir = DataDir::new();
    // A port already taken on loopback.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let mut node = NodeProcess::start(
        &dir,
        &["--listen", &listen, "--no-mdns", "--api", "127.0.0.1:0"],
    );
    let line = node.wait_for("cannot start the node", Duration::from_secs(30));
    assert!(line.contains(&listen), "names the address: {line}");
    assert!(line.to_lowercase().contains("in use"), "says why: {line}");
    assert_eq!(node.wait_exit(Duration::from_secs(30)), Some(2));
    assert!(
        !dir.path().join("api.json").exists(),
        "no api.json pointing at a node that is not running"
    );
    drop(taken);
}

/// Serves as "whatever listens on the port now": records every byte sent to it until a
/// connection says `DONE`.
fn impostor(listener: std::net::TcpListener) -> std::thread::JoinHandle<Vec<String>> {
    use std::io::Read;
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Up to the end of the request's headers (or the peer's close).
            while !got.windows(4).any(|w| w == b"\r\n\r\n") && !got.starts_with(b"DONE") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            if got.starts_with(b"DONE") {
                break;
            }
            seen.push(String::from_utf8_lossy(&got).into_owned());
        }
        seen
    })
}

fn stop_impostor(port: u16, listener: std::thread::JoinHandle<Vec<String>>) -> Vec<String> {
    use std::io::Write;
    let mut done = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    done.write_all(b"DONE").unwrap();
    listener.join().unwrap()
}

#[test]
fn status_never_sends_the_token_to_a_process_that_took_a_killed_nodes_port() {
    let dir = DataDir::new();
    let mut node = NodeProcess::start(
        &dir,
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
        ],
    );
    let api = node.wait_for("api      http://127.0.0.1:", Duration::from_secs(30));
    let port: u16 = api.rsplit(':').next().unwrap().trim().parse().unwrap();
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("api.json")).unwrap()).unwrap();
    let pid = node.pid();
    assert_eq!(info["pid"], pid);
    let token = std::fs::read_to_string(dir.path().join("api.token")).unwrap();
    assert!(chorus(&dir, &["status"]).status.success());

    // Killed: no clean stop, so api.json stays, naming a dead process, and another process
    // takes the port.
    node.kill();
    assert!(dir.path().join("api.json").exists());
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let seen = impostor(listener);
    let out = chorus(&dir, &["status"]);
    let requests = stop_impostor(port, seen);
    for r in &requests {
        assert!(
            !r.contains(token.trim()),
            "the token was sent to another process: {r}"
        );
        assert!(
            !r.to_ascii_lowercase().contains("authorization"),
            "credentials were sent to another process: {r}"
        );
    }
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("no node is running")
            && err.contains(&format!("stale api.json from pid {pid} removed")),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        !dir.path().join("api.json").exists(),
        "the stale api.json is removed"
    );
    let again = chorus(&dir, &["status"]);
    assert!(
        stderr(&again).contains("no node is running"),
        "{}",
        stderr(&again)
    );

    // An api.json naming a live process that is not the node (this test, listening on the
    // port it names) is refused the same way: the pid is alive, the process is not the one
    // that started at the recorded time.
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = impostor(listener);
    let me = std::process::id();
    let mut fake = info.clone();
    fake["addr"] = format!("127.0.0.1:{port}").into();
    fake["pid"] = me.into();
    std::fs::write(dir.path().join("api.json"), fake.to_string()).unwrap();
    let out = chorus(&dir, &["status"]);
    let requests = stop_impostor(port, seen);
    assert!(requests.is_empty(), "{requests:?}");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("stale api.json from pid {me} removed")),
        "{}",
        stderr(&out)
    );

    // A new start makes a new token; the old one is refused by the new node.
    let mut node = NodeProcess::start(
        &dir,
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
        ],
    );
    node.wait_for("api      http://127.0.0.1:", Duration::from_secs(30));
    let fresh = std::fs::read_to_string(dir.path().join("api.token")).unwrap();
    assert_ne!(fresh.trim(), token.trim(), "a fresh token at each start");
    assert!(chorus(&dir, &["status"]).status.success());
    std::fs::write(dir.path().join("api.token"), &token).unwrap();
    let old = chorus(&dir, &["status"]);
    assert!(stderr(&old).contains("unauthorized"), "{}", stderr(&old));
    assert_eq!(node.terminate(), Some(0));
}
