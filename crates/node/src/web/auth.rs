//! Who may use the dashboard: one-time login links, sessions, CSRF tokens, and the Host and
//! Origin checks that keep other sites out.
//!
//! - `chorus open` asks the node (with the API's bearer token) for a login link. The link's
//!   key works once, within [`LINK_LIFE`]; only its hash is kept.
//! - Following it starts a session: a random id in an `HttpOnly`, `SameSite=Strict` cookie,
//!   and a CSRF token that every request that changes anything must carry (a form field or
//!   the `X-CSRF-Token` header). Sessions are kept hashed, at most [`MAX_SESSIONS`] (the
//!   oldest goes), each for [`SESSION_LIFE`], in memory and in `web-sessions.json` in the
//!   data dir (mode 0600), so that a browser stays logged in across a restart of the node.
//! - A request whose `Host` is not this node's own address (its port on a loopback name, or
//!   the address it listens on) is refused, so a DNS-rebinding page cannot reach the node;
//!   a request that changes anything with an `Origin` other than the node's own is refused.
//!
//! Keys, session ids and CSRF tokens never reach a log: the API logs no request line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long a login link works.
pub const LINK_LIFE: Duration = Duration::from_secs(180);
/// Login links not yet used, at most (the oldest goes).
pub const MAX_LINKS: usize = 16;
/// How long a session lasts.
pub const SESSION_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Sessions at most (the oldest goes).
pub const MAX_SESSIONS: usize = 64;
/// The session cookie's name.
pub const COOKIE: &str = "chorus_session";

/// A logged-in browser: its CSRF token and when it logged in (seconds since the epoch).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) csrf: String,
    started: u64,
}

impl Session {
    fn live(&self) -> bool {
        now_s().saturating_sub(self.started) < SESSION_LIFE.as_secs()
    }
}

fn now_s() -> u64 {
    crate::clock::now_ms() / 1000
}

/// The dashboard's logins, and the audits it ran. Shared by the API's handlers.
#[derive(Default)]
pub(crate) struct Web {
    links: Mutex<Vec<(blake3::Hash, Instant)>>,
    /// By the hex of the session id's hash.
    sessions: Mutex<HashMap<String, Session>>,
    addr: OnceLock<SocketAddr>,
    /// Where the sessions are kept across restarts (none: in memory only).
    file: Option<PathBuf>,
    /// The watchdog's audits run from the dashboard, and the last report.
    pub(crate) audits: super::Audits,
    /// The browsing lists, computed in the background.
    pub(crate) lists: super::browse::Lists,
}

/// What a session id is kept as.
pub(crate) fn hashed(id: &str) -> String {
    blake3::hash(id.as_bytes()).to_hex().to_string()
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Compares in time independent of where the strings differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Web {
    /// The user's key file, in the data dir beside the sessions' file (none for a dashboard
    /// kept in memory only).
    pub(crate) fn key_file(&self) -> Option<PathBuf> {
        let dir = self.file.as_ref()?.parent()?;
        Some(crate::DataDir::new(dir).author_key_path())
    }

    /// The logins of a node whose sessions are kept in `file` (read now: the live ones of
    /// the last run go on; an unreadable file is set aside, and its browsers log in again).
    pub(crate) fn with_file(file: PathBuf) -> Web {
        let sessions: HashMap<String, Session> = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let web = Web {
            file: Some(file),
            ..Web::default()
        };
        if let Ok(mut s) = web.sessions.lock() {
            *s = sessions
                .into_iter()
                .filter(|(_, v)| v.live())
                .take(MAX_SESSIONS)
                .collect();
        }
        web
    }

    /// Writes the sessions to the file (atomically, mode 0600); a failure only means
    /// browsers log in again after a restart.
    fn save(&self, sessions: &HashMap<String, Session>) {
        let Some(file) = &self.file else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(sessions) else {
            return;
        };
        let tmp = file.with_extension("json.tmp");
        let written = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new();
            f.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                f.mode(0o600);
            }
            let mut f = f.open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, file)
        })();
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not keep the dashboard's sessions");
        }
    }

    /// The data dir the sessions are kept in (none: in memory only), where the dashboard
    /// keeps its other small files.
    pub(crate) fn dir(&self) -> Option<&std::path::Path> {
        self.file.as_deref().and_then(std::path::Path::parent)
    }

    /// Notes the address the API listens on (for the Host and Origin checks and the links).
    pub(crate) fn set_addr(&self, addr: SocketAddr) {
        let _ = self.addr.set(addr);
    }

    /// The dashboard's address, once the API listens.
    pub(crate) fn base(&self) -> Option<String> {
        self.addr.get().map(|a| format!("http://{a}"))
    }

    /// A new one-time login key.
    pub(crate) fn new_link(&self) -> String {
        let key = random_hex();
        if let Ok(mut links) = self.links.lock() {
            links.retain(|(_, at)| at.elapsed() < LINK_LIFE);
            if links.len() >= MAX_LINKS {
                links.remove(0);
            }
            links.push((blake3::hash(key.as_bytes()), Instant::now()));
        }
        key
    }

    /// Uses a login key: a new session's id and the session, or `None` if the key is
    /// unknown, used or expired.
    pub(crate) fn redeem(&self, key: &str) -> Option<(String, Session)> {
        let h = blake3::hash(key.as_bytes());
        let mut links = self.links.lock().ok()?;
        let at = links
            .iter()
            .position(|(k, made)| *k == h && made.elapsed() < LINK_LIFE)?;
        links.remove(at);
        drop(links);
        let id = random_hex();
        let session = Session {
            csrf: random_hex(),
            started: now_s(),
        };
        let mut sessions = self.sessions.lock().ok()?;
        sessions.retain(|_, s| s.live());
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(hashed(&id), session.clone());
        self.save(&sessions);
        Some((id, session))
    }

    /// The session a cookie's id names, if it is live.
    pub(crate) fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().ok()?;
        sessions.get(&hashed(id)).filter(|s| s.live()).cloned()
    }

    /// Ends a session.
    pub(crate) fn end(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(&hashed(id));
            self.save(&sessions);
        }
    }

    /// Is `host` (a `Host` header) this node's own: the address it listens on, or its port
    /// on a loopback name when it listens on loopback?
    pub(crate) fn host_ok(&self, host: &str) -> bool {
        let Some(addr) = self.addr.get() else {
            return false;
        };
        let host = host.trim().to_ascii_lowercase();
        if host == addr.to_string() {
            return true;
        }
        let port = addr.port();
        addr.ip().is_loopback()
            && [
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]
            .contains(&host)
    }

    /// Is `origin` (an `Origin` header) this node's dashboard?
    pub(crate) fn origin_ok(&self, origin: &str) -> bool {
        origin
            .trim()
            .strip_prefix("http://")
            .is_some_and(|host| self.host_ok(host))
    }
}

/// The session id in a `Cookie` header, if any.
pub(crate) fn cookie_session(cookie: &str) -> Option<&str> {
    cookie.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE).then_some(v.trim())
    })
}

/// The `Set-Cookie` value that starts a session.
pub(crate) fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_LIFE.as_secs()
    )
}

/// The `Set-Cookie` value that ends one.
pub(crate) fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(addr: &str) -> Web {
        let w = Web::default();
        w.set_addr(addr.parse().unwrap());
        w
    }

    #[test]
    fn a_login_key_works_once() {
        let w = web("127.0.0.1:7000");
        let key = w.new_link();
        let (id, s) = w.redeem(&key).unwrap();
        assert!(w.redeem(&key).is_none(), "used");
        assert!(w.redeem("0".repeat(64).as_str()).is_none());
        assert_eq!(w.session(&id).unwrap().csrf, s.csrf);
        w.end(&id);
        assert!(w.session(&id).is_none());
    }

    #[test]
    fn sessions_outlive_a_restart_and_not_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web-sessions.json");
        let w = Web::with_file(file.clone());
        let (id, s) = w.redeem(&w.new_link()).unwrap();
        let (gone, _) = w.redeem(&w.new_link()).unwrap();
        w.end(&gone);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&id), "only hashes are kept");
        let again = Web::with_file(file.clone());
        assert_eq!(again.session(&id).unwrap().csrf, s.csrf);
        assert!(again.session(&gone).is_none());
        std::fs::write(&file, b"not json").unwrap();
        assert!(Web::with_file(file).session(&id).is_none());
    }

    #[test]
    fn only_this_nodes_host_and_origin_pass() {
        let w = web("127.0.0.1:7000");
        for ok in [
            "127.0.0.1:7000",
            "localhost:7000",
            "LOCALHOST:7000",
            "[::1]:7000",
        ] {
            assert!(w.host_ok(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7000",
            "127.0.0.1:7001",
            "localhost",
            "",
        ] {
            assert!(!w.host_ok(bad), "{bad}");
        }
        assert!(w.origin_ok("http://localhost:7000"));
        assert!(!w.origin_ok("https://localhost:7000"));
        assert!(!w.origin_ok("http://evil.example"));
        assert!(!w.origin_ok("null"));
        let public = web("192.168.1.5:7000");
        assert!(public.host_ok("192.168.1.5:7000"));
        assert!(
            !public.host_ok("localhost:7000"),
            "not listening on loopback"
        );
        assert!(
            !Web::default().host_ok("127.0.0.1:7000"),
            "before it listens"
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(cookie_session("a=1; chorus_session=abc; b=2"), Some("abc"));
        assert_eq!(cookie_session("chorus_sessionx=abc"), None);
        assert!(set_cookie("abc").contains("HttpOnly; SameSite=Strict"));
    }
}
