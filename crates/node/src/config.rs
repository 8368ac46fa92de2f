//! The node's configuration: `config.toml` in the data dir, every field optional.
//!
//! Defaults suit a consumer's laptop on a LAN. Layering: built-in defaults, then the file,
//! then command-line flags (applied by the CLI).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Everything a node can be told.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Peer-to-peer networking.
    pub network: NetworkConfig,
    /// What the node follows (stores and forwards).
    pub follow: FollowConfig,
    /// The local HTTP API.
    pub api: ApiConfig,
    /// The ingest pipeline.
    pub ingest: IngestSection,
    /// Catch-up sync.
    pub sync: SyncConfig,
    /// Thresholds of the watchdog audit's warnings.
    pub audit: crate::audit::AuditConfig,
    /// The watchdogs this user trusts.
    pub trust: crate::trust::TrustConfig,
    /// The store on disk.
    pub store: StoreConfig,
}

/// The store on disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Rewrite the store compactly while the node runs, whenever it has grown to
    /// `compact_ratio` times the bytes per record its last compaction left (sled's log grows
    /// to about four times what a fresh copy takes; BENCHMARKS.md).
    pub compact: bool,
    /// See `compact`; at least 1.1.
    pub compact_ratio: f64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compact: true,
            compact_ratio: crate::store::compact::Policy::default().ratio,
        }
    }
}

/// Catch-up sync.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Pull from every peer when it connects.
    pub on_connect: bool,
    /// Pull from every connected peer this often (each time jittered by up to ±20%; `0s`
    /// never).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Pull from one connected peer, picked at random, this often (jittered by up to ±20%;
    /// `0s` never): repairs within seconds what gossip lost under load, at the cost of one
    /// round trip of a few dozen bytes when nothing is missing.
    #[serde(with = "humantime_serde")]
    pub repair: Duration,
    /// Longest wait for one answer from a peer.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest time one pull from one peer may take in all.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Records asked for in one fetch request.
    pub fetch_batch: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            on_connect: true,
            interval: Duration::from_secs(300),
            repair: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(600),
            fetch_batch: 512,
        }
    }
}

/// Networking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Multiaddrs to listen on (TCP and QUIC).
    pub listen: Vec<String>,
    /// Bootstrap peers, as multiaddrs ending in `/p2p/PEERID`.
    pub bootstrap: Vec<String>,
    /// Discover peers on the LAN with mDNS.
    pub mdns: bool,
    /// Most established connections in total.
    pub max_connections: u32,
    /// Most established connections to one peer.
    pub max_connections_per_peer: u32,
    /// Most incoming connections still in their handshake (noise, yamux) at once; more are
    /// closed as they arrive. A handshake that takes longer than 10 s is given up, so a
    /// peer that opens connections and says nothing holds a slot for 10 s at most.
    pub max_pending_incoming: u32,
    /// Most connections this node is dialling at once; further dials fail at once.
    pub max_pending_outgoing: u32,
    /// Records a peer may send per second (burst: ten times that); more are ignored.
    pub peer_rate: u32,
    /// Records one author may publish per second through this node (burst: ten times that).
    pub author_rate: u32,
    /// Invalid records from a peer before it is disconnected and refused.
    pub max_invalid: u32,
    /// How long a misbehaving peer is refused.
    #[serde(with = "humantime_serde")]
    pub ban: Duration,
    /// Gossip this node accepts is forwarded after a random pause of up to this long: peers
    /// that got the record at the same moment then do not all forward it at once, and the
    /// IDONTWANT of whoever got it first arrives in time to save a copy (with 15 ms, copies
    /// per record per node fell from about 1.9 to 1.2, p50 rose about 12 ms; BENCHMARKS.md).
    /// `0s`: forward as soon as accepted; at most `1s` is used. What this node publishes is
    /// sent at once.
    #[serde(with = "humantime_serde")]
    pub forward_jitter: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            listen: vec![
                "/ip4/0.0.0.0/tcp/7470".into(),
                "/ip4/0.0.0.0/udp/7470/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            max_connections: 128,
            max_connections_per_peer: 2,
            max_pending_incoming: 128,
            max_pending_outgoing: 64,
            peer_rate: 500,
            author_rate: 20,
            max_invalid: 10,
            ban: Duration::from_secs(600),
            forward_jitter: Duration::from_millis(15),
        }
    }
}

/// What to follow. Records of followed topics are stored; others are only checked and
/// forwarded on the shards the node is subscribed to.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FollowConfig {
    /// Follow everything (archive and watchdog nodes).
    pub all: bool,
    /// Producer keys (hex) whose feedback to follow.
    pub producers: Vec<String>,
    /// Group ids (hex) whose membership to follow.
    pub groups: Vec<String>,
    /// Products to follow, as `PRODUCERKEY/CODE`; stores the producer's feedback topic.
    pub products: Vec<String>,
}

/// The local API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to serve on; keep it on loopback.
    pub listen: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:7471".into(),
        }
    }
}

/// Ingest settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Allowed clock skew for records created "in the future".
    #[serde(with = "humantime_serde")]
    pub skew: Duration,
    /// Most records kept waiting for the record they point at.
    pub max_waiting: usize,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            skew: Duration::from_millis(chorus_protocol::DEFAULT_SKEW_MS),
            max_waiting: 100_000,
        }
    }
}

/// The documented config file written on first run: every field commented out at its
/// default, so the file explains itself and changes nothing until edited.
pub const TEMPLATE: &str = r#"# Chorus node configuration. Every field is optional; the values shown are the defaults.
# Command-line flags override this file.

[network]
# Multiaddrs to listen on (TCP with noise + yamux, and QUIC).
# listen = ["/ip4/0.0.0.0/tcp/7470", "/ip4/0.0.0.0/udp/7470/quic-v1"]
# Bootstrap peers: multiaddrs ending in /p2p/PEERID.
# bootstrap = []
# Find peers on the local network with mDNS.
# mdns = true
# max_connections = 128
# max_connections_per_peer = 2
# Connections still in their handshake at once (incoming: more are closed on arrival;
# outgoing: more dials fail). A handshake is given up after 10 s.
# max_pending_incoming = 128
# max_pending_outgoing = 64
# Records per second a peer may send us, and one author may publish (bursts of 10x).
# peer_rate = 500
# author_rate = 20
# Invalid records a peer may send before it is disconnected and refused for `ban`.
# max_invalid = 10
# ban = "10m"
# Forward accepted gossip after a random pause of up to this (fewer duplicate copies).
# forward_jitter = "15ms"

[follow]
# Follow everything (archive / watchdog nodes).
# all = false
# Producer keys (64 hex digits) whose feedback this node stores.
# producers = []
# Group ids whose membership records this node stores.
# groups = []
# Products, as "PRODUCERKEY/CODE" (stores that producer's feedback topic, where they travel).
# products = []

[api]
# The local JSON API (bearer token in the data dir). Keep it on loopback.
# listen = "127.0.0.1:7471"

[ingest]
# How far in the future a record's created_at may be.
# skew = "10m"
# Records kept waiting for a record they point at.
# max_waiting = 100000

[sync]
# Catch-up sync: pull what this node lacks on the topics it follows from each peer.
# Pull from a peer when it connects.
# on_connect = true
# Pull from every connected peer this often (jittered by up to 20%; "0s": never).
# interval = "5m"
# Pull from one random peer this often, to repair what gossip lost ("0s": never).
# repair = "20s"
# Longest wait for one answer, and for one whole pull from one peer.
# request_timeout = "30s"
# session_timeout = "10m"
# Records asked for in one fetch request (at most 1024).
# fetch_batch = 512

[audit]
# Warnings of `chorus audit` (suspicions, not errors): at least `burst_keys` keys that do
# nothing but endorse, first seen within `burst_window` of each other, on one petition; or
# at least `idle_keys` endorse-only keys on one petition; creation times further ahead than
# `future_skew`.
# burst_window = "10m"
# burst_keys = 25
# idle_keys = 50
# future_skew = "10m"

[store]
# Rewrite the store compactly while the node runs once it takes `compact_ratio` times the
# bytes per record its last compaction left (the copy is made beside it, then swapped in).
# compact = true
# compact_ratio = 2.0

[trust]
# Watchdog author keys you trust: tallies then also show the count without the keys they
# flagged as one actor, and which of them vouched for the current count.
# watchdogs = []
"#;

impl Config {
    /// Reads `path`; a missing file gives the defaults. Values that would stop the node
    /// from working ([`Config::check`]) are errors naming the field.
    pub fn load(path: &Path) -> Result<Config> {
        let config: Config = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(Error::Io(e)),
        };
        config
            .check()
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    /// Refuses values that parse but leave the node unable to work: no connections at all,
    /// a rate of nothing, a ban at the first fault, pulls that time out at once, fetches of
    /// no records. (`0s` for `sync.interval` and `sync.repair` is allowed: it turns them off.)
    pub fn check(&self) -> std::result::Result<(), String> {
        let n = &self.network;
        let s = &self.sync;
        let positive = [
            ("network.max_connections", u64::from(n.max_connections)),
            (
                "network.max_connections_per_peer",
                u64::from(n.max_connections_per_peer),
            ),
            (
                "network.max_pending_incoming",
                u64::from(n.max_pending_incoming),
            ),
            (
                "network.max_pending_outgoing",
                u64::from(n.max_pending_outgoing),
            ),
            ("network.peer_rate", u64::from(n.peer_rate)),
            ("network.author_rate", u64::from(n.author_rate)),
            ("network.max_invalid", u64::from(n.max_invalid)),
            ("sync.fetch_batch", s.fetch_batch as u64),
            ("sync.request_timeout", s.request_timeout.as_millis() as u64),
            ("sync.session_timeout", s.session_timeout.as_millis() as u64),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(format!("{field} must be more than 0"));
            }
        }
        let ratio = self.store.compact_ratio;
        if !(1.1..=1000.0).contains(&ratio) {
            return Err(format!(
                "store.compact_ratio must be between 1.1 and 1000 (it is {ratio})"
            ));
        }
        Ok(())
    }
}

/// The data dir: `$CHORUS_DATA_DIR`, else the platform's data dir plus `chorus`
/// (`~/.local/share/chorus` on Linux), else `./.chorus`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CHORUS_DATA_DIR") {
        return PathBuf::from(d);
    }
    dirs::data_dir()
        .map(|d| d.join("chorus"))
        .unwrap_or_else(|| PathBuf::from(".chorus"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_to_the_defaults() {
        let c: Config = toml::from_str(TEMPLATE).unwrap();
        assert_eq!(c, Config::default());
        // The values the template shows (commented out) are the defaults too.
        let shown: String = TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(kv)
                    if kv.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
                {
                    kv
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c: Config = toml::from_str(&shown).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn partial_files_keep_other_defaults_and_typos_are_errors() {
        let c: Config = toml::from_str("[network]\nmdns = false\nban = \"1h\"\n").unwrap();
        assert!(!c.network.mdns);
        assert_eq!(c.network.ban, Duration::from_secs(3600));
        assert_eq!(c.api, ApiConfig::default());
        assert!(toml::from_str::<Config>("[network]\nmdsn = false\n").is_err());
    }

    #[test]
    fn values_that_stop_the_node_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        for (section, field, zero) in [
            ("network", "max_connections", "0"),
            ("network", "max_connections_per_peer", "0"),
            ("network", "max_pending_incoming", "0"),
            ("network", "max_pending_outgoing", "0"),
            ("network", "peer_rate", "0"),
            ("network", "author_rate", "0"),
            ("network", "max_invalid", "0"),
            ("sync", "fetch_batch", "0"),
            ("sync", "request_timeout", "\"0s\""),
            ("sync", "session_timeout", "\"0s\""),
        ] {
            std::fs::write(&path, format!("[{section}]\n{field} = {zero}\n")).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{section}.{field} must be more than 0")),
                "{section}.{field}: {err}"
            );
        }
        std::fs::write(&path, "[store]\ncompact_ratio = 1.0\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("store.compact_ratio must be between"), "{err}");
        // Off switches stay allowed; a missing file is the defaults.
        std::fs::write(&path, "[sync]\ninterval = \"0s\"\nrepair = \"0s\"\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().sync.interval, Duration::ZERO);
        assert_eq!(
            Config::load(&dir.path().join("none.toml")).unwrap(),
            Config::default()
        );
    }
}
