//! Faults of the machine under a running node (issue 18): a disk that fills up.
//!
//! The disk is a small tmpfs the test mounts itself (it needs root or CAP_SYS_ADMIN, as the
//! project's CI has) and unmounts when it ends, whatever happens.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chorus_e2e::{chorus, DataDir, NodeProcess};
use serde_json::Value;

const PRODUCER: &str = "abababababababababababababababababababababababababababababababab";
const FLAGS: [&str; 5] = [
    "--listen",
    "/ip4/127.0.0.1/tcp/0",
    "--no-mdns",
    "--api",
    "127.0.0.1:0",
];
const START: Duration = Duration::from_secs(30);

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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
    // Every write is answered at once, each one, with what is wrong and what to do; none
    // waits for the next write to come.
    for n in 0..3 {
        let began = Instant::now();
        let out = review(&dir, &format!("full-{n}"));
        let took = began.elapsed();
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "write {n} on a full disk: {err}"
        );
        assert!(took < Duration::from_secs(10), "write {n} took {took:?}");
        assert!(
            err.contains("full") && err.contains("free some space"),
            "write {n}: {err}"
        );
    }
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
