//! The data dir: where a node keeps its config, keys, store and the files its clients read.
//!
//! It holds `config.toml` (documented, every field optional), `author.key` (the Ed25519 seed
//! that signs this user's records, mode 0600), `node.key` (the libp2p identity, mode 0600),
//! `follow.json`, `store/` (sled), and while a node runs `api.json` (where its API listens and
//! which process it is) and `api.token` (the API's bearer token, mode 0600, a fresh one at
//! every start). The config and the keys are created on first run.

use std::io::Write;
use std::path::{Path, PathBuf};

use chorus_client::ApiInfo;
use chorus_protocol::{AuthorKey, SigningKey};
use libp2p::identity::Keypair;

use crate::config::{self, Config};
use crate::error::{Error, Result};

/// The environment variable holding the passphrase of a sealed author key.
pub const PASSPHRASE_ENV: &str = "CHORUS_PASSPHRASE";

/// The fewest characters an `api.token` may have (a new one is 64 hex digits).
pub const MIN_TOKEN: usize = 32;

/// The files of a node.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// What [`DataDir::init`] created.
#[derive(Debug, Clone, Default)]
pub struct Created {
    /// The directory itself.
    pub dir: bool,
    /// `config.toml`.
    pub config: bool,
    /// `author.key`.
    pub author_key: bool,
    /// `node.key`.
    pub node_key: bool,
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    write_whole(path, bytes, 0o600)
}

/// Writes a new file whole or not at all: a temporary file beside it (mode `mode`), synced,
/// then linked in place (refused if the file exists meanwhile), the directory synced. A full
/// disk or a crash leaves no half-written file, only perhaps a `.tmp` file the next write
/// replaces.
fn write_whole(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let written = (|| -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    written?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_secret(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let key_err = |reason: String| Error::Key {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| key_err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(key_err(format!(
            "readable by others (mode {:o}); run: chmod 600 {}",
            meta.permissions().mode() & 0o777,
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| key_err(e.to_string()))
}

impl DataDir {
    /// The data dir at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// `$CHORUS_DATA_DIR`, or the platform default.
    pub fn default_location() -> Self {
        Self::new(config::default_data_dir())
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `author.key`.
    pub fn author_key_path(&self) -> PathBuf {
        self.root.join("author.key")
    }
    /// `node.key`.
    pub fn node_key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }
    /// `store/`.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }
    /// `api.token`: the bearer token of the local API.
    pub fn api_token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }
    /// `trust.json`: the watchdogs the user trusted or stopped trusting at run time
    /// (`chorus trust`), applied on top of the config's `[trust]` at every start.
    pub fn trust_path(&self) -> PathBuf {
        self.root.join("trust.json")
    }

    /// `web-sessions.json`: the dashboard's sessions (hashed), kept across restarts.
    pub fn web_sessions_path(&self) -> PathBuf {
        self.root.join("web-sessions.json")
    }

    /// `follow.json`: what the user followed or unfollowed at run time (`chorus follow`),
    /// applied on top of the config's `[follow]` at every start.
    pub fn follow_path(&self) -> PathBuf {
        self.root.join("follow.json")
    }
    /// `api.json`: where the running node's API listens (written on start, removed on stop).
    pub fn api_info_path(&self) -> PathBuf {
        self.root.join("api.json")
    }

    /// Makes a fresh bearer token for the API and writes it to `api.token` (mode 0600), in
    /// place of the last one: a node does this at every start, so a token is good only as
    /// long as the node that made it runs.
    pub fn new_api_token(&self) -> Result<String> {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let next = self.root.join("api.token.new");
        // Left by a start that died between the two steps below.
        match std::fs::remove_file(&next) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        write_secret(&next, token.as_bytes())?;
        std::fs::rename(&next, self.api_token_path())?;
        Ok(token)
    }

    /// The node `api.json` names, checked: its process must be alive and be the very process
    /// that wrote the file (same start time), or the file is stale — left by a node that was
    /// killed — and is removed, so nothing is sent, least of all the token, to whatever
    /// listens on that port now. Where there is no `/proc` the file is taken as it is.
    pub fn running(&self) -> Result<Running> {
        let path = self.api_info_path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Running::None),
            Err(e) => return Err(e.into()),
        };
        let info: ApiInfo = serde_json::from_slice(&text)
            .map_err(|e| Error::Config(format!("{} is corrupt: {e}", path.display())))?;
        if !process::can_check() || process::is_node(info.pid, info.started) {
            return Ok(Running::Node(info));
        }
        // Removed only if it is still the file read: a node starting now writes a new one.
        if std::fs::read(&path).is_ok_and(|now| now == text) {
            std::fs::remove_file(&path)?;
        }
        Ok(Running::Stale { pid: info.pid })
    }

    /// What a starting node writes to `api.json`: its address, pid and start time.
    pub(crate) fn write_api_info(&self, addr: std::net::SocketAddr) -> Result<()> {
        let pid = std::process::id();
        let info = ApiInfo {
            addr: addr.to_string(),
            pid,
            started: process::start_time(pid),
        };
        let json = serde_json::to_vec(&info).map_err(|e| Error::Config(e.to_string()))?;
        std::fs::write(self.api_info_path(), json)?;
        Ok(())
    }

    /// The local API's bearer token; refused if the file is readable by others, or if the
    /// token is shorter than [`MIN_TOKEN`] characters or holds anything but printable ASCII
    /// (a guessable token would open the API to any local process).
    pub fn api_token(&self) -> Result<String> {
        let bytes = read_secret(&self.api_token_path())?;
        let bad = |reason: String| Error::Key {
            path: self.api_token_path().display().to_string(),
            reason,
        };
        let token = String::from_utf8(bytes)
            .map(|s| s.trim().to_string())
            .map_err(|_| bad("not text".into()))?;
        if token.len() < MIN_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(format!(
                "the token must be at least {MIN_TOKEN} printable characters without spaces; \
                 the node writes a new one at every start: restart it"
            )));
        }
        Ok(token)
    }

    /// Creates whatever is missing: the directory (mode 0700), a documented config file and
    /// fresh keys. Existing files are never overwritten. With `CHORUS_PASSPHRASE` set (and
    /// not empty), a new author key file is sealed with it (see [`crate::keyfile`]).
    pub fn init(&self) -> Result<Created> {
        let passphrase = std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty());
        self.init_with(passphrase.as_deref())
    }

    /// [`DataDir::init`], sealing a new author key with `passphrase` if given.
    pub fn init_with(&self, passphrase: Option<&str>) -> Result<Created> {
        self.init_opts(passphrase, false)
    }

    /// Does the data dir hold a store (records of the identity its author key is)?
    pub fn has_store(&self) -> bool {
        std::fs::read_dir(self.store_path()).is_ok_and(|mut d| d.next().is_some())
    }

    /// [`DataDir::init_with`]; `new_identity` allows a new author key beside an existing
    /// store (whose records were signed by the lost key), which is otherwise refused.
    pub fn init_opts(&self, passphrase: Option<&str>, new_identity: bool) -> Result<Created> {
        use std::os::unix::fs::DirBuilderExt;
        let mut created = Created::default();
        if !self.root.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)?;
            created.dir = true;
        }
        if !self.author_key_path().exists() && self.has_store() && !new_identity {
            return Err(Error::Key {
                path: self.author_key_path().display().to_string(),
                reason: format!(
                    "missing, but {} holds this user's store: restore author.key from your \
                     backup; or, to sign as a new author from now on (your old records stay \
                     signed by the lost key), run `chorus init --new-identity`",
                    self.store_path().display()
                ),
            });
        }
        if !self.config_path().exists() {
            write_whole(&self.config_path(), config::TEMPLATE.as_bytes(), 0o644)?;
            created.config = true;
        }
        if !self.author_key_path().exists() {
            let seed: [u8; 32] = rand::random();
            match passphrase {
                None => write_secret(&self.author_key_path(), &seed)?,
                Some(p) => {
                    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
                    let sealed =
                        crate::keyfile::seal(&seed, &public, p).map_err(|e| Error::Key {
                            path: self.author_key_path().display().to_string(),
                            reason: e.to_string(),
                        })?;
                    write_secret(&self.author_key_path(), &sealed)?;
                }
            }
            created.author_key = true;
        }
        if !self.node_key_path().exists() {
            let kp = Keypair::generate_ed25519();
            let bytes = kp
                .to_protobuf_encoding()
                .map_err(|e| Error::Network(format!("encode node key: {e}")))?;
            write_secret(&self.node_key_path(), &bytes)?;
            created.node_key = true;
        }
        Ok(created)
    }

    /// The author's signing key; refused if the file is readable by others. A sealed file
    /// is opened with `CHORUS_PASSPHRASE`.
    pub fn author_key(&self) -> Result<SigningKey> {
        let path = self.author_key_path();
        let bytes = read_secret(&path)?;
        if crate::keyfile::is_sealed(&bytes) {
            let key_err = |reason: String| Error::Key {
                path: path.display().to_string(),
                reason,
            };
            let passphrase = std::env::var(PASSPHRASE_ENV)
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    key_err(format!("sealed with a passphrase: set {PASSPHRASE_ENV}"))
                })?;
            let seed =
                crate::keyfile::open(&bytes, &passphrase).map_err(|e| key_err(e.to_string()))?;
            return Ok(SigningKey::from_bytes(&seed));
        }
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::Key {
            path: path.display().to_string(),
            reason: format!("expected 32 bytes, found {}", bytes.len()),
        })?;
        Ok(SigningKey::from_bytes(&seed))
    }

    /// The author's public key (no passphrase needed, even for a sealed key file).
    pub fn author_public(&self) -> Result<AuthorKey> {
        let path = self.author_key_path();
        let bytes = read_secret(&path)?;
        if crate::keyfile::is_sealed(&bytes) {
            return crate::keyfile::public_of(&bytes)
                .map(AuthorKey)
                .map_err(|e| Error::Key {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
        }
        Ok(AuthorKey(self.author_key()?.verifying_key().to_bytes()))
    }

    /// The node's libp2p identity; refused if the file is readable by others.
    pub fn node_keypair(&self) -> Result<Keypair> {
        let path = self.node_key_path();
        let bytes = read_secret(&path)?;
        Keypair::from_protobuf_encoding(&bytes).map_err(|e| Error::Key {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// The config file, or defaults if there is none.
    pub fn config(&self) -> Result<Config> {
        Config::load(&self.config_path())
    }
}

/// What `api.json` says, once checked ([`DataDir::running`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Running {
    /// No `api.json`: no node runs (or it serves no API).
    None,
    /// The node that wrote `api.json` is running.
    Node(ApiInfo),
    /// `api.json` named a process that is gone (or is another process now); it was removed.
    Stale {
        /// The pid it named.
        pid: u32,
    },
}

/// Which process is which, from `/proc` (Linux).
mod process {
    use std::path::Path;

    /// Whether this system has `/proc` to check processes with.
    pub(super) fn can_check() -> bool {
        Path::new("/proc/self/stat").exists()
    }

    /// The fields of `/proc/PID/stat` after the command name (which may hold spaces and
    /// parentheses, hence the last `)`): state first, start time 20th.
    fn stat(pid: u32) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = text.rsplit_once(')')?;
        Some(rest.split_whitespace().map(str::to_string).collect())
    }

    /// When the process started, in clock ticks since boot: with its pid, names one process
    /// for good, since a pid is reused only by a process started later.
    pub(crate) fn start_time(pid: u32) -> Option<u64> {
        stat(pid)?.get(19)?.parse().ok()
    }

    /// Whether `pid` is a live process and, if `started` is known, the one that started then;
    /// if not (an `api.json` of an older node), whether it runs a `chorus` binary.
    pub(super) fn is_node(pid: u32, started: Option<u64>) -> bool {
        let Some(fields) = stat(pid) else {
            return false;
        };
        // A zombie (killed, not yet reaped by its parent) is not running.
        if matches!(fields.first().map(String::as_str), Some("Z" | "X")) {
            return false;
        }
        match started {
            Some(t) => fields.get(19).and_then(|s| s.parse::<u64>().ok()) == Some(t),
            None => std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
                exe.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("chorus"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_author_key_beside_a_store_is_refused_unless_a_new_identity_is_asked_for() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::new(root.path().join("d"));
        dir.init_with(None).unwrap();
        let first = dir.author_public().unwrap();
        // A store of this identity, then its key is lost.
        drop(crate::Store::open(dir.store_path()).unwrap());
        std::fs::remove_file(dir.author_key_path()).unwrap();
        let err = dir.init_with(None).unwrap_err().to_string();
        assert!(
            err.contains("restore author.key") && err.contains("--new-identity"),
            "{err}"
        );
        assert!(!dir.author_key_path().exists(), "nothing made");
        // Asked for explicitly: a new identity, the store kept.
        let made = dir.init_opts(None, true).unwrap();
        assert!(made.author_key);
        assert_ne!(dir.author_public().unwrap(), first);
        assert!(dir.has_store());
    }

    #[test]
    fn files_are_written_whole_or_not_at_all() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("f");
        write_whole(&path, b"one", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        // Never over an existing file, and no temporary file left either way.
        assert!(write_whole(&path, b"two", 0o600).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"]);
    }

    #[test]
    fn a_fresh_token_at_each_start_and_a_short_or_spaced_one_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::new(root.path().join("d"));
        dir.init_with(None).unwrap();
        assert!(!dir.api_token_path().exists(), "made by a starting node");
        let first = dir.new_api_token().unwrap();
        assert_eq!(dir.api_token().unwrap(), first);
        assert_eq!(first.len(), 64);
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.api_token_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = dir.new_api_token().unwrap();
        assert_ne!(second, first);
        assert_eq!(dir.api_token().unwrap(), second);
        for bad in ["short", "a b c d e f g h i j k l m n o p q r s t", ""] {
            std::fs::remove_file(dir.api_token_path()).unwrap();
            write_secret(&dir.api_token_path(), bad.as_bytes()).unwrap();
            let err = dir.api_token().unwrap_err().to_string();
            assert!(err.contains("at least 32 printable"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn api_json_of_a_live_node_is_kept_and_of_a_dead_or_other_process_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::new(root.path());
        assert_eq!(dir.running().unwrap(), Running::None);
        // This process, as a node would write it.
        dir.write_api_info("127.0.0.1:7471".parse().unwrap())
            .unwrap();
        let Running::Node(info) = dir.running().unwrap() else {
            panic!("this process is alive");
        };
        assert_eq!(info.pid, std::process::id());
        assert!(info.started.is_some());
        // The same pid with another start time: the pid now names another process.
        let write = |info: &ApiInfo| {
            std::fs::write(dir.api_info_path(), serde_json::to_vec(info).unwrap()).unwrap()
        };
        let reused = ApiInfo {
            started: info.started.map(|t| t + 1),
            ..info.clone()
        };
        write(&reused);
        assert_eq!(dir.running().unwrap(), Running::Stale { pid: info.pid });
        assert!(!dir.api_info_path().exists(), "a stale api.json is removed");
        // A process that has exited (and been reaped).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        write(&ApiInfo {
            addr: "127.0.0.1:7471".into(),
            pid: gone,
            started: None,
        });
        assert_eq!(dir.running().unwrap(), Running::Stale { pid: gone });
        assert!(!dir.api_info_path().exists());
    }
}
