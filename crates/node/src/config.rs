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
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsConfig,
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
    /// A connection with nothing to do (no gossip mesh, no request, no stream open) is
    /// closed after this long. Kademlia's lookups meet many peers; on a large network
    /// keeping each of them connected costs every node CPU and memory for nothing.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
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
            idle_timeout: Duration::from_secs(60),
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

/// The local API, and the limits that keep a hostile local client from exhausting the node
/// (ARCHITECTURE.md, "Limits of the local API").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to serve on; keep it on loopback.
    pub listen: String,
    /// Most connections open at once. At the cap the oldest connection that is not inside a
    /// request (still sending its headers, or idle between requests) is closed to make room;
    /// if every one is inside a request, the new connection is closed at once.
    pub max_connections: u32,
    /// Longest a client may take to send a request's headers, counted from the end of the
    /// previous answer on a kept-alive connection: slow senders and idle connections are
    /// closed then.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body (408 `timeout`).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Longest an answer may wait for the client to take more bytes before the connection is
    /// closed: a stalled event-stream reader is dropped then.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Most bytes of a request's line and headers (431 beyond).
    pub max_header_bytes: usize,
    /// Most bytes of a request's body (413 `too_large` beyond).
    pub max_body_bytes: usize,
    /// Most event streams (`GET /v1/events`) open at once, in total (429 `too_many_streams`
    /// beyond). Less than `max_connections`, so other calls always find a way in.
    pub max_event_streams: u32,
    /// Most event streams open at once with one token.
    pub max_event_streams_per_token: u32,
    /// Events built and held for one stream whose reader is slow. Beyond that its live events
    /// wait in the pipeline's buffer shared by all streams (`ingest`'s 4,096 events); a reader
    /// further behind misses events and is told how many with a `lagged` event.
    pub event_queue: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:7471".into(),
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_header_bytes: 16 << 10,
            max_body_bytes: 2 << 20,
            max_event_streams: 128,
            max_event_streams_per_token: 64,
            event_queue: 16,
        }
    }
}

/// The Prometheus metrics endpoint (`crate::metrics`; deploy/README.md lists every figure).
/// Off unless `listen` is set.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve `GET /metrics` on, as `HOST:PORT` (port 0: any free port); empty: not
    /// served. The endpoint takes no token (it shows counts, never records or keys): keep it
    /// on loopback or a private address.
    pub listen: String,
}

/// Ingest settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Allowed clock skew for records created "in the future".
    #[serde(with = "humantime_serde")]
    pub skew: Duration,
    /// Most records kept waiting for the record they point at, in all.
    pub max_waiting: usize,
    /// ... sent by one peer (records made on this node count as one more source).
    pub max_waiting_per_peer: usize,
    /// ... made by one author.
    pub max_waiting_per_author: usize,
    /// How long a record waits for its target at most.
    #[serde(with = "humantime_serde")]
    pub waiting_ttl: Duration,
}

impl Default for IngestSection {
    fn default() -> Self {
        let w = crate::waiting::Limits::default();
        IngestSection {
            skew: Duration::from_millis(chorus_protocol::DEFAULT_SKEW_MS),
            max_waiting: w.total,
            max_waiting_per_peer: w.per_source,
            max_waiting_per_author: w.per_author,
            waiting_ttl: w.ttl,
        }
    }
}

impl IngestSection {
    /// The waiting area's bounds.
    pub fn waiting(&self) -> crate::waiting::Limits {
        crate::waiting::Limits {
            total: self.max_waiting,
            per_source: self.max_waiting_per_peer,
            per_author: self.max_waiting_per_author,
            ttl: self.waiting_ttl,
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
# Forward accepted gossip after a random pause of up to this (fewer duplicate copies; at most 1s).
# forward_jitter = "15ms"
# Close a connection that has had nothing to do for this long.
# idle_timeout = "60s"

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
# Most connections open at once; at the cap the oldest one not inside a request is closed.
# max_connections = 256
# Longest a client may take to send its headers (and how long an idle connection stays),
# its body, and to take more of an answer (a stalled event-stream reader is dropped then).
# header_timeout = "10s"
# body_timeout = "30s"
# write_timeout = "30s"
# Largest request line and headers (431 beyond), and body (413 beyond), in bytes.
# max_header_bytes = 16384
# max_body_bytes = 2097152
# Most event streams open at once, in all and with one token (429 beyond).
# max_event_streams = 128
# max_event_streams_per_token = 64
# Events built and held for a slow stream reader (beyond them it waits in a buffer shared by
# all streams; a reader further behind gets `lagged`).
# event_queue = 16

[metrics]
# Serve Prometheus metrics (counts of gossip, sync, ingest and the store; no records, no keys)
# at http://LISTEN/metrics, e.g. "127.0.0.1:9470". No token: keep it on loopback or a private
# address. Empty: off.
# listen = ""

[ingest]
# How far in the future a record's created_at may be (at most 24h).
# skew = "10m"
# Records kept waiting for a record they point at (not forwarded while they wait): in all,
# per peer that sent them, per author, and for how long at most.
# max_waiting = 100000
# max_waiting_per_peer = 10000
# max_waiting_per_author = 1000
# waiting_ttl = "1h"

[sync]
# Catch-up sync: pull what this node lacks on the topics it follows from each peer.
# Pull from a peer when it connects.
# on_connect = true
# Pull from every connected peer this often (jittered by up to 20%; at least "1s"; "0s": never).
# interval = "5m"
# Pull from one random peer this often, to repair what gossip lost (at least "1s"; "0s": never).
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
# Watchdog author keys you trust: tallies then also show the count in which the keys they
# judged one actor count once, and which of them vouched for the current count. The initial
# set: `chorus trust add|remove` changes it at run time (kept in trust.json, which wins).
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
    /// no records, an API with no room or limits beyond what a process can hold, periodic
    /// pulls more often than once a second, a metrics address that is none or the API's. (`0s` for `sync.interval` and `sync.repair` is
    /// allowed: it turns them off.)
    pub fn check(&self) -> std::result::Result<(), String> {
        let n = &self.network;
        let s = &self.sync;
        let a = &self.api;
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
            ("ingest.max_waiting", self.ingest.max_waiting as u64),
            (
                "ingest.max_waiting_per_peer",
                self.ingest.max_waiting_per_peer as u64,
            ),
            (
                "ingest.max_waiting_per_author",
                self.ingest.max_waiting_per_author as u64,
            ),
            (
                "ingest.waiting_ttl",
                self.ingest.waiting_ttl.as_millis() as u64,
            ),
            ("sync.request_timeout", s.request_timeout.as_millis() as u64),
            ("sync.session_timeout", s.session_timeout.as_millis() as u64),
            ("api.max_connections", u64::from(a.max_connections)),
            ("api.header_timeout", a.header_timeout.as_millis() as u64),
            ("api.body_timeout", a.body_timeout.as_millis() as u64),
            ("api.write_timeout", a.write_timeout.as_millis() as u64),
            ("api.max_header_bytes", a.max_header_bytes as u64),
            ("api.max_body_bytes", a.max_body_bytes as u64),
            ("api.max_event_streams", u64::from(a.max_event_streams)),
            (
                "api.max_event_streams_per_token",
                u64::from(a.max_event_streams_per_token),
            ),
            ("api.event_queue", a.event_queue as u64),
            ("network.ban", n.ban.as_millis() as u64),
            (
                "audit.burst_window",
                self.audit.burst_window.as_millis() as u64,
            ),
            ("audit.burst_keys", self.audit.burst_keys as u64),
            ("audit.idle_keys", self.audit.idle_keys as u64),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(format!("{field} must be more than 0"));
            }
        }
        // Beyond these a limit no longer limits: more descriptors than a process gets, an
        // hour to send a header, a header or body larger than any request of the API.
        let hour = Duration::from_secs(3600).as_millis() as u64;
        let at_most = [
            ("api.max_connections", u64::from(a.max_connections), 65_536),
            (
                "network.max_connections",
                u64::from(n.max_connections),
                65_536,
            ),
            (
                "network.max_pending_incoming",
                u64::from(n.max_pending_incoming),
                65_536,
            ),
            (
                "network.max_pending_outgoing",
                u64::from(n.max_pending_outgoing),
                65_536,
            ),
            // A waiting record is kept on disk and counted in memory: ten million is
            // gigabytes of records that may never be needed.
            (
                "ingest.max_waiting",
                self.ingest.max_waiting as u64,
                10_000_000,
            ),
            (
                "api.header_timeout",
                a.header_timeout.as_millis() as u64,
                hour,
            ),
            ("api.body_timeout", a.body_timeout.as_millis() as u64, hour),
            (
                "api.write_timeout",
                a.write_timeout.as_millis() as u64,
                hour,
            ),
            ("api.max_header_bytes", a.max_header_bytes as u64, 1 << 20),
            ("api.max_body_bytes", a.max_body_bytes as u64, 64 << 20),
            ("api.event_queue", a.event_queue as u64, 65_536),
            // What one fetch request may ask for (PROTOCOL.md §13.3).
            ("sync.fetch_batch", s.fetch_batch as u64, 1_024),
            (
                "network.forward_jitter",
                n.forward_jitter.as_millis() as u64,
                MAX_FORWARD_JITTER.as_millis() as u64,
            ),
            // Beyond a day ahead a record is blamed on its sender (ingest::FAR_FUTURE_MS).
            (
                "ingest.skew",
                self.ingest.skew.as_millis() as u64,
                crate::ingest::FAR_FUTURE_MS,
            ),
        ];
        for (field, value, max) in at_most {
            if value > max {
                return Err(format!("{field} must be at most {max}"));
            }
        }
        // Pulls more often than once a second would keep every peer busy answering.
        for (field, every) in [("sync.interval", s.interval), ("sync.repair", s.repair)] {
            if !every.is_zero() && every < Duration::from_secs(1) {
                return Err(format!(
                    "{field} must be at least 1s (or \"0s\": never), not {}",
                    humantime::format_duration(every)
                ));
            }
        }
        for (field, share) in [
            (
                "ingest.max_waiting_per_peer",
                self.ingest.max_waiting_per_peer,
            ),
            (
                "ingest.max_waiting_per_author",
                self.ingest.max_waiting_per_author,
            ),
        ] {
            if share > self.ingest.max_waiting {
                return Err(format!(
                    "{field} must be at most ingest.max_waiting ({})",
                    self.ingest.max_waiting
                ));
            }
        }
        if a.max_header_bytes < 1024 {
            return Err("api.max_header_bytes must be at least 1024".into());
        }
        if a.max_event_streams >= a.max_connections {
            return Err(format!(
                "api.max_event_streams must be less than api.max_connections ({}), so other \
                 calls always find a way in",
                a.max_connections
            ));
        }
        if a.max_event_streams_per_token > a.max_event_streams {
            return Err(format!(
                "api.max_event_streams_per_token must be at most api.max_event_streams ({})",
                a.max_event_streams
            ));
        }
        let m = &self.metrics.listen;
        if !m.is_empty() {
            let addr: std::net::SocketAddr = m.parse().map_err(|e| {
                format!("metrics.listen {m}: {e} (expected HOST:PORT, e.g. 127.0.0.1:9470)")
            })?;
            if addr.port() != 0 && a.listen.parse::<std::net::SocketAddr>().ok() == Some(addr) {
                return Err(format!(
                    "metrics.listen {m}: the API's address; give the metrics another port"
                ));
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

/// The longest `network.forward_jitter` allowed: gossipsub keeps a message awaiting its
/// verdict only a few heartbeats.
pub const MAX_FORWARD_JITTER: Duration = Duration::from_secs(1);

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
            ("api", "max_connections", "0"),
            ("api", "header_timeout", "\"0s\""),
            ("api", "body_timeout", "\"0s\""),
            ("api", "write_timeout", "\"0s\""),
            ("api", "max_header_bytes", "0"),
            ("api", "max_body_bytes", "0"),
            ("api", "max_event_streams", "0"),
            ("api", "max_event_streams_per_token", "0"),
            ("api", "event_queue", "0"),
            ("network", "ban", "\"0s\""),
            ("audit", "burst_window", "\"0s\""),
            ("audit", "burst_keys", "0"),
            ("audit", "idle_keys", "0"),
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
        // Absurd API limits are refused too, naming the field.
        for (text, needle) in [
            (
                "max_connections = 1000000",
                "api.max_connections must be at most 65536",
            ),
            (
                "header_timeout = \"2h\"",
                "api.header_timeout must be at most",
            ),
            (
                "max_body_bytes = 1000000000",
                "api.max_body_bytes must be at most",
            ),
            (
                "max_connections = 256\n[sync]\nfetch_batch = 5000",
                "sync.fetch_batch must be at most 1024",
            ),
            (
                "max_connections = 256\n[network]\nforward_jitter = \"5s\"",
                "network.forward_jitter must be at most 1000",
            ),
            (
                "max_connections = 256\n[ingest]\nskew = \"3d\"",
                "ingest.skew must be at most",
            ),
            (
                "max_header_bytes = 100",
                "api.max_header_bytes must be at least 1024",
            ),
            (
                "max_connections = 10\nmax_event_streams = 10",
                "api.max_event_streams must be less than api.max_connections",
            ),
            (
                "max_event_streams = 8\nmax_event_streams_per_token = 9",
                "api.max_event_streams_per_token must be at most api.max_event_streams",
            ),
        ] {
            std::fs::write(&path, format!("[api]\n{text}\n")).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        for (section, text, needle) in [
            (
                "network",
                "max_connections = 1000000",
                "network.max_connections must be at most 65536",
            ),
            (
                "ingest",
                "max_waiting = 100\nmax_waiting_per_peer = 101",
                "ingest.max_waiting_per_peer must be at most ingest.max_waiting (100)",
            ),
            (
                "ingest",
                "max_waiting = 100000000",
                "ingest.max_waiting must be at most 10000000",
            ),
        ] {
            std::fs::write(&path, format!("[{section}]\n{text}\n")).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        for (text, needle) in [
            ("interval = \"10ms\"", "sync.interval must be at least 1s"),
            ("repair = \"500ms\"", "sync.repair must be at least 1s"),
        ] {
            std::fs::write(&path, format!("[sync]\n{text}\n")).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        for (text, needle) in [
            (
                "[metrics]\nlisten = \"localhost\"\n",
                "metrics.listen localhost: invalid socket address syntax",
            ),
            (
                "[api]\nlisten = \"127.0.0.1:7471\"\n[metrics]\nlisten = \"127.0.0.1:7471\"\n",
                "metrics.listen 127.0.0.1:7471: the API's address",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        std::fs::write(&path, "[metrics]\nlisten = \"127.0.0.1:0\"\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().metrics.listen, "127.0.0.1:0");
        assert_eq!(Config::default().metrics.listen, "", "off by default");
        // Off switches stay allowed; a missing file is the defaults.
        std::fs::write(&path, "[sync]\ninterval = \"0s\"\nrepair = \"0s\"\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().sync.interval, Duration::ZERO);
        assert_eq!(
            Config::load(&dir.path().join("none.toml")).unwrap(),
            Config::default()
        );
    }
}
