//! Helpers for the end-to-end tests: a temporary data dir and real `chorus` processes that
//! are stopped, by their own pid, when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod cli;
pub mod testnet;

/// The `chorus` binary of this build (`target/<profile>/chorus`), brought up to date once per
/// test process (a no-op when `cargo test --workspace` has just built it).
pub fn chorus_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_chorus).clone()
}

fn build_chorus() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/chorus
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("chorus");
    let mut build = cargo();
    build.args(["build", "--quiet", "-p", "chorus-cli", "--bin", "chorus"]);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cannot build the chorus binary");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

/// `cargo`, to build from inside a test: without the variables cargo gives a test process
/// about its own package (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`...), which a build
/// started from the command line does not have. Some build scripts (ring's) ask to be run
/// again when those change, so a build with them would rebuild ring and everything above
/// it (libp2p, the node: minutes) after every `cargo test`, and the next `cargo test` would
/// rebuild them back.
pub fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let of_the_package = name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&name.as_ref());
        if of_the_package {
            cargo.env_remove(name.as_ref());
        }
    }
    cargo
}

/// A temporary data dir for one node.
pub struct DataDir(tempfile::TempDir);

impl DataDir {
    /// A fresh, empty directory (the node creates its files on first run).
    pub fn new() -> Self {
        DataDir(tempfile::tempdir().expect("temp dir"))
    }
    /// Its path (not yet created inside: `path()/node`).
    pub fn path(&self) -> PathBuf {
        self.0.path().join("node")
    }
}

impl Default for DataDir {
    fn default() -> Self {
        Self::new()
    }
}

/// `chorus --data-dir DIR args...`, run to completion.
pub fn chorus(dir: &DataDir, args: &[&str]) -> Output {
    Command::new(chorus_bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .env_remove("CHORUS_DATA_DIR")
        .output()
        .expect("run chorus")
}

/// A running `chorus node`, with its output lines collected.
pub struct NodeProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl NodeProcess {
    /// Starts `chorus --data-dir DIR node ARGS` with logs at info on stderr.
    pub fn start(dir: &DataDir, args: &[&str]) -> Self {
        let mut all = vec!["node"];
        all.extend_from_slice(args);
        Self::spawn(dir, &all)
    }

    /// Starts any long-running `chorus --data-dir DIR ARGS` (`watch`, say), output collected.
    pub fn spawn(dir: &DataDir, args: &[&str]) -> Self {
        Self::spawn_env(dir, args, &[])
    }

    /// [`NodeProcess::spawn`] with extra environment variables.
    pub fn spawn_env(dir: &DataDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(chorus_bin())
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .env("CHORUS_LOG", "info,libp2p=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chorus node");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        NodeProcess {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for an output line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?} within {timeout:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to exit by itself; its exit code (`None` if killed by a
    /// signal). Panics after `timeout` (the process is then killed on drop).
    pub fn wait_exit(mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("process {} did not exit within {timeout:?}", self.pid());
    }

    /// Kills the process with SIGKILL (no clean stop: it leaves its `api.json` behind) and
    /// reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {} did not stop on SIGTERM", self.pid());
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // Stopped by its own pid, whatever happened in the test.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
