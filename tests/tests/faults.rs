//! Faults of the machine under a running node (issue 18): a disk that fills up.
//!
//! The disk is a small tmpfs the test mounts itself (it needs root or CAP_SYS_ADMIN, as the
//! project's CI has) and unmounts when it ends, whatever happens.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chorus_e2e::cli::{stderr, stdout, FLAGS, PRODUCER, START};
use chorus_e2e::{chorus, DataDir, NodeProcess};
use serde_json::Value;

/// A tmpfs of a given size mounted at a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {} (this test needs root or CAP_SYS_ADMIN)",
            at.display()
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` to the last byte with a file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    for size in [1 << 20, 4096, 1] {
        let block = vec![0u8; size];
        while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    }
    let _ = f.sync_all();
    path
}

fn review(dir: &DataDir, code: &str) -> Output {
    chorus(
        dir,
        &[
            "review", PRODUCER, code, "--rating", "4", "--text", "Sturdy", "--json",
        ],
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

fn status(dir: &DataDir) -> Value {
    let out = chorus(dir, &["status", "--json"]);
    assert!(out.status.success(), "status: {}", stderr(&out));
    json(&out)
}

#[test]
fn a_full_disk_refuses_each_write_at_once_and_the_node_writes_again_once_space_is_freed() {
    let dir = DataDir::new();
    let _disk = Tmpfs::mount(&dir.path(), 64 << 20);
    let mut node = NodeProcess::start(&dir, &FLAGS);
    node.wait_for("api      http://127.0.0.1:", START);
    let mut acked = Vec::new();
    for n in 0..5 {
        let out = review(&dir, &format!("before-{n}"));
        assert!(out.status.success(), "{}", stderr(&out));
        acked.push(json(&out)["id"].as_str().unwrap().to_string());
    }
    assert_eq!(status(&dir)["storage"]["state"], "ok");

    let filler = fill(&dir.path());
    // A write that still fits in a page the store already holds may succeed (tmpfs allocates
    // page by page); it is acknowledged and must be kept. Once one fails, every write is
    // answered at once, each one, with what is wrong and what to do; none waits for the next
    // write to come.
    let mut failed = 0;
    for n in 0..200 {
        let began = Instant::now();
        let out = review(&dir, &format!("full-{n}"));
        let took = began.elapsed();
        assert!(took < Duration::from_secs(10), "write {n} took {took:?}");
        if out.status.success() && failed == 0 {
            acked.push(json(&out)["id"].as_str().unwrap().to_string());
            continue;
        }
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "write {n} on a full disk, after {failed} refused: {err}"
        );
        assert!(
            err.contains("full") && err.contains("free some space"),
            "write {n}: {err}"
        );
        failed += 1;
        if failed == 3 {
            break;
        }
    }
    assert_eq!(failed, 3, "writes kept succeeding on a full disk");
    let s = status(&dir);
    assert_eq!(s["storage"]["state"], "full", "{s}");
    assert!(
        s["storage"]["message"].as_str().unwrap().contains("full"),
        "{s}"
    );

    // Space freed: the next write succeeds, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let out = review(&dir, "after");
    assert!(out.status.success(), "after freeing: {}", stderr(&out));
    acked.push(json(&out)["id"].as_str().unwrap().to_string());
    let s = status(&dir);
    assert_eq!(s["storage"]["state"], "ok", "{s}");
    let out = review(&dir, "after-2");
    assert!(out.status.success(), "{}", stderr(&out));
    acked.push(json(&out)["id"].as_str().unwrap().to_string());

    // Nothing acknowledged was lost, across a restart too.
    assert_eq!(node.terminate(), Some(0));
    let mut node = NodeProcess::start(&dir, &FLAGS);
    node.wait_for("api      http://127.0.0.1:", START);
    for id in &acked {
        let out = chorus(&dir, &["show", id, "--json"]);
        assert!(out.status.success(), "show {id}: {}", stderr(&out));
        assert_eq!(json(&out)["id"], id.as_str());
    }
    assert_eq!(node.terminate(), Some(0));
}

#[test]
fn init_on_a_full_disk_fails_and_leaves_nothing_half_written() {
    let dir = DataDir::new();
    let _disk = Tmpfs::mount(&dir.path(), 1 << 20);
    let filler = fill(&dir.path());
    let out = chorus(&dir, &["init"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
    // No empty config.toml, no truncated key, no temporary file: only the filler.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["filler"], "left behind");
    // Room again: init completes, and a second run changes nothing.
    std::fs::remove_file(&filler).unwrap();
    let out = chorus(&dir, &["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(config.contains("[network]"), "{config}");
    assert_eq!(
        std::fs::metadata(dir.path().join("author.key"))
            .unwrap()
            .len(),
        32
    );
}

#[test]
fn a_damaged_store_says_what_to_do_and_reset_store_lets_the_node_catch_up_from_a_peer() {
    // A peer that holds a record.
    let source = DataDir::new();
    let mut a = NodeProcess::start(&source, &FLAGS);
    a.wait_for("api      http://127.0.0.1:", START);
    let addr = a
        .wait_for("listening /ip4/127.0.0.1/tcp/", START)
        .trim_start_matches("listening ")
        .to_string();
    let out = review(&source, "kept-by-a-peer");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = json(&out)["id"].as_str().unwrap().to_string();

    // A node whose store gets damaged while it is stopped.
    let dir = DataDir::new();
    let flags: Vec<&str> = FLAGS
        .iter()
        .copied()
        .chain(["--bootstrap", &addr])
        .collect();
    let mut b = NodeProcess::start(&dir, &flags);
    b.wait_for("api      http://127.0.0.1:", START);
    assert_eq!(b.terminate(), Some(0));
    let db = dir.path().join("store/db");
    let mut bytes = std::fs::read(&db).unwrap();
    let n = bytes.len().min(4096);
    bytes[..n].fill(0xff);
    std::fs::write(&db, bytes).unwrap();
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
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("damaged") && err.contains("backup") && err.contains("chorus reset-store"),
        "{err}"
    );
    // The offline audit says the same, not "audit without --offline".
    let err = stderr(&chorus(&dir, &["audit", "--offline"]));
    assert!(
        err.contains("chorus reset-store") && !err.contains("without --offline"),
        "{err}"
    );

    // Set aside, the node starts empty and catches up from its peer.
    let out = chorus(&dir, &["reset-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("store.set-aside-"),
        "{}",
        stdout(&out)
    );
    let mut b = NodeProcess::start(&dir, &flags);
    b.wait_for("api      http://127.0.0.1:", START);
    let out = chorus(&dir, &["follow", "--producer", PRODUCER]);
    assert!(out.status.success(), "{}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = chorus(&dir, &["sync"]);
        if chorus(&dir, &["show", &id]).status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "the record never came back");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Refused while a node runs.
    let out = chorus(&dir, &["reset-store"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
}
