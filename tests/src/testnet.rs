//! A test net of `deploy/testnet.sh` for a test: nodes in network namespaces of their own,
//! on a bridge, taken down when the guard is dropped (even when the test fails), and a
//! small HTTP client for their APIs (reachable from the test's namespace through the
//! bridge). Needs root and iproute2; [`Testnet::unavailable`] says why not, so a test can
//! say so and do nothing else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A test net, taken down when dropped.
pub struct Testnet {
    script: PathBuf,
    dir: tempfile::TempDir,
    /// Prefix of its namespaces, links and bridges (`PREFIX-n1`, ...).
    pub prefix: String,
    /// Its /24, as its first three numbers (`10.201.7`).
    pub subnet: String,
    /// How many nodes.
    pub nodes: usize,
}

/// An answer of a node's API.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body, as JSON (`Null` if it is not JSON).
    pub json: Value,
    /// How long the request took, from connecting to the last byte.
    pub took: Duration,
}

impl Testnet {
    /// Whether this machine lets the test make namespaces and bridges; if not, why.
    pub fn unavailable() -> Option<String> {
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

    /// `n` nodes, up and serving their API, with `extra` options to `testnet.sh up`.
    /// `tag` (one lowercase letter) and this process's id name the net's prefix and pick
    /// its subnet in 10.200.0.0 to 10.249.255.0, so that other test files' nets (whose
    /// prefixes start with another letter, and whose subnets lie elsewhere) and other runs
    /// can be up at the same time.
    pub fn up(tag: char, n: usize, extra: &[&str]) -> Testnet {
        let pid = std::process::id();
        let net = Testnet {
            script: Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/testnet.sh"),
            dir: tempfile::tempdir().expect("temp dir"),
            // Short: interface names are at most 15 bytes.
            prefix: format!("{tag}{}", pid % 100_000),
            subnet: format!("10.{}.{}", 200 + pid % 50, (pid / 50) % 250),
            nodes: n,
        };
        let bin = crate::chorus_bin();
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

    /// Runs `testnet.sh ARGS` on this net.
    pub fn script(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("CHORUS_TESTNET_DIR", self.dir.path())
            .env("CHORUS_TESTNET_PREFIX", &self.prefix)
            .env("CHORUS_TESTNET_SUBNET", &self.subnet)
            .output()
            .expect("run testnet.sh")
    }

    /// One more namespace on the network (`testnet.sh attach NAME`): its name and address.
    pub fn attach(&self, name: &str) -> (String, String) {
        let out = self.script(&["attach", name]);
        assert!(
            out.status.success(),
            "testnet attach: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        let ns = words.next().expect("namespace").to_string();
        let addr = words.next().expect("address").to_string();
        (ns, addr)
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("{}.{i}", self.subnet)
    }

    /// Node `i`'s data dir.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}"))
    }

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{i}.log"))).unwrap_or_default()
    }

    /// `chorus ARGS` against node `i`, inside its namespace.
    pub fn chorus(&self, i: usize, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(i)])
            .arg(crate::chorus_bin())
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args(args)
            .env_remove("CHORUS_DATA_DIR")
            .output()
            .expect("run chorus")
    }

    /// A request to node `i`'s API (from this namespace, through the bridge), with its
    /// bearer token; `None` if it does not answer within `timeout`.
    pub fn api(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Option<Answer> {
        let token = std::fs::read_to_string(self.data_dir(i).join("api.token")).ok()?;
        let host = format!("{}:7471", self.addr(i));
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            token.trim(),
            body.len()
        );
        let start = Instant::now();
        let addr = host.parse().ok()?;
        let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.set_write_timeout(Some(timeout)).ok()?;
        s.write_all(request.as_bytes()).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let took = start.elapsed();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut content = raw[split + 4..].to_vec();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            content = dechunk(&content);
        }
        Some(Answer {
            status,
            json: serde_json::from_slice(&content).unwrap_or(Value::Null),
            took,
        })
    }

    /// `GET PATH` on node `i` that must answer 200; its JSON.
    pub fn get(&self, i: usize, path: &str) -> Value {
        let a = self
            .api(i, "GET", path, None, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("node {i}: GET {path}: no answer"));
        assert_eq!(a.status, 200, "node {i}: GET {path}: {}", a.json);
        a.json
    }

    /// `POST PATH BODY` on node `i` that must answer 2xx; its JSON.
    pub fn post(&self, i: usize, path: &str, body: Value) -> Value {
        let a = self
            .api(i, "POST", path, Some(&body), Duration::from_secs(10))
            .unwrap_or_else(|| panic!("node {i}: POST {path}: no answer"));
        assert!(
            (200..300).contains(&a.status),
            "node {i}: POST {path} {body}: {} {}",
            a.status,
            a.json
        );
        a.json
    }
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the nodes warned of, to see why (their logs go with the temporary dir).
            for i in 1..=self.nodes {
                let log = self.log(i);
                let warned: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .collect();
                let from = warned.len().saturating_sub(40);
                eprintln!("node {i} warned:\n{}", warned[from..].join("\n"));
            }
        }
        let out = self.script(&["down"]);
        if !out.status.success() {
            eprintln!(
                "testnet down: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// Waits until `check` holds, or fails saying `what`; how long it took.
pub fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    start.elapsed()
}
