//! Peer-to-peer networking: one task owns the libp2p `Swarm` ([`EventLoop`]); the rest of the
//! node talks to it through a cloneable [`Client`] and hears from it through [`Events`].
//!
//! The swarm speaks TCP (noise + yamux) and QUIC, and runs identify, ping, Kademlia
//! (bootstrapped from configured multiaddrs), optional mDNS, connection limits, a block list,
//! gossipsub and one request-response protocol. The network knows nothing of ingest or sync
//! (of a record it reads only the id, from the wire framing, as gossipsub's message id): it
//! reports each gossip message to judge ([`GossipMessage`], answered with
//! [`Client::verdict`]; gossipsub runs in strict mode with explicit validation, so nothing is
//! forwarded before its verdict) and each inbound request ([`InboundRequest`], answered with
//! [`Client::respond`]; admitted per peer before it is read and answered `busy` by the
//! network itself beyond its limits, see [`inbound`]), and sends requests for others
//! ([`Client::request`]). A peer whose
//! messages are judged invalid, or that others report with [`Client::penalise`], is
//! disconnected and refused for a while. The message id is the record id, so duplicates die
//! in the mesh.

pub mod codec;
pub mod counters;
pub mod inbound;
pub mod topics;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_protocol::{cbor, RecordId};
use futures::StreamExt;
use libp2p::allow_block_list::{self, BlockedPeers};
use libp2p::core::transport::MemoryTransport;
use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, TopicHash,
};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    connection_limits, identify, mdns, noise, ping, tcp, yamux, StreamProtocol, Swarm, Transport,
};
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::NetworkConfig;
use crate::error::{Error, Result};
use crate::rate::Buckets;
pub use codec::RequestCodec;
pub use counters::NetCounts;
pub use inbound::{InboundLimits, InboundRequest, Reply};
pub use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId};
pub use topics::shard_of;

/// Protocol string announced by identify. 1.2 added search to the request protocol
/// (PROTOCOL.md §13.5); 1.3 speaks sync 2 (`/chorus/sync/2`: profiles placed by author,
/// §13.2), and only sync 2, which carries searches; gossip is that of 1.1.
pub const PROTOCOL_VERSION: &str = "/chorus/1.3.0";

/// The minor version of a Chorus 1.x identify string (`/chorus/1.2.0` → 2).
fn minor_version(v: &str) -> Option<u32> {
    v.strip_prefix("/chorus/1.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Does a peer that announced `v` answer searches on the sync protocol this node speaks
/// (sync 2, from 1.3)?
fn answers_search(v: &str) -> bool {
    minor_version(v).is_some_and(|m| m >= 3)
}
/// Records published while no peer listened, kept to publish later.
const MAX_UNPUBLISHED: usize = 10_000;
/// Gossip messages waiting for their judge (who takes each at once, and ignores it when too
/// many are being validated); more are ignored here (backpressure).
const GOSSIP_QUEUE: usize = 64;
/// Inbound requests waiting for an answerer; more are answered with the protocol's `busy`.
const REQUEST_QUEUE: usize = 64;
/// How often a node without any peer dials its bootstrap peers again.
const REDIAL_EVERY: Duration = Duration::from_secs(10);
/// Peers remembered by the per-peer rate limit at once.
const MAX_RATED_PEERS: usize = 10_000;

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    blocked: allow_block_list::Behaviour<BlockedPeers>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossipsub: gossipsub::Behaviour,
    /// This node's requests to peers.
    requests: request_response::Behaviour<RequestCodec>,
    /// Peers' requests to this node.
    inbound: inbound::Behaviour,
}

/// The request-response protocol the network carries: its name and limits.
#[derive(Debug, Clone)]
pub struct RequestProtocol {
    /// The protocol id, e.g. `/chorus/sync/1`.
    pub name: &'static str,
    /// Largest request, in bytes.
    pub max_request: usize,
    /// Largest response, in bytes.
    pub max_response: usize,
    /// How long to wait for an answer, and how long a peer's request may take from its
    /// first byte to the end of its answer.
    pub timeout: Duration,
    /// The answer given, unread, to a request that arrives while too many wait for an
    /// answerer or that its peer's limits refuse (the protocol's "busy, retry later").
    pub busy: Vec<u8>,
    /// How much peers may ask of this node at once.
    pub limits: InboundLimits,
}

/// A snapshot of the network state.
#[derive(Debug, Clone, Serialize)]
pub struct NetStatus {
    /// This node's peer id.
    pub peer_id: String,
    /// Full listen addresses, ending in `/p2p/PEERID`.
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub peers: Vec<String>,
    /// Subscribed gossip shards.
    pub shards: Vec<String>,
    /// Gossip records received and rejected as invalid, since start.
    pub rejected: u64,
    /// Peers refused for misbehaving.
    pub banned: Vec<String>,
}

/// Something the network did, for whoever started the node.
#[derive(Debug, Clone)]
pub enum NetEvent {
    /// Listening on this full address.
    Listening(Multiaddr),
    /// A peer connected.
    PeerConnected(PeerId),
    /// A peer was disconnected and refused for sending invalid records.
    PeerBanned(PeerId),
}

/// An error and its sources, joined (libp2p's transport errors print nothing themselves).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The longest `network.forward_jitter` used.
const MAX_JITTER: Duration = crate::config::MAX_FORWARD_JITTER;

/// Where a gossip message came from, to answer with its verdict.
#[derive(Debug)]
pub struct Receipt {
    id: MessageId,
    source: PeerId,
}

/// A gossip message to judge.
#[derive(Debug)]
pub struct GossipMessage {
    /// The peer that sent it to us (not necessarily its author).
    pub source: PeerId,
    /// The payload.
    pub data: Vec<u8>,
    /// Hand back with the verdict.
    pub receipt: Receipt,
}

/// What to do with a gossip message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Invalid, the sender's fault: drop it and count a fault against the sender.
    Reject,
    /// Drop it, but do not blame the sender.
    Ignore,
}

/// What the network reports: one bounded channel per consumer.
pub struct Events {
    /// For whoever started the node: listen addresses, connections, bans.
    pub node: mpsc::Receiver<NetEvent>,
    /// Gossip messages to judge (each answered with [`Client::verdict`]).
    pub gossip: mpsc::Receiver<GossipMessage>,
    /// Inbound requests (each answered with [`Client::respond`]).
    pub requests: mpsc::Receiver<InboundRequest>,
    /// Connected peers that share a gossip shard with this node, once per connection (they
    /// subscribed to one of its shards, or it joined one of theirs).
    pub connected: mpsc::Receiver<PeerId>,
}

/// The senders of [`Events`], kept by the event loop.
struct Sinks {
    node: mpsc::Sender<NetEvent>,
    gossip: mpsc::Sender<GossipMessage>,
    requests: mpsc::Sender<InboundRequest>,
    connected: mpsc::Sender<PeerId>,
}

/// The connected and the refused peers.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// Connected now.
    pub connected: Vec<PeerId>,
    /// Refused for misbehaving.
    pub banned: Vec<PeerId>,
    /// Connected peers that answer searches (they announced protocol 1.3 or later).
    pub searchable: Vec<PeerId>,
}

enum Command {
    Publish {
        shard: String,
        wire: Vec<u8>,
    },
    SetShards {
        shards: Vec<String>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<()>>,
    },
    Status {
        reply: oneshot::Sender<NetStatus>,
    },
    Peers {
        reply: oneshot::Sender<Peers>,
    },
    Verdicts(Vec<(Receipt, Verdict)>),
    Request {
        peer: PeerId,
        request: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>>>,
    },
    Penalise {
        peer: PeerId,
        faults: u32,
    },
}

/// Talks to the network task. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    metrics: Arc<Mutex<Registry>>,
    counters: Arc<counters::Counters>,
}

impl Client {
    async fn send(&self, c: Command) -> Result<()> {
        self.tx.send(c).await.map_err(|_| Error::NodeStopped)
    }

    async fn ask<T>(&self, c: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.send(c(reply)).await?;
        rx.await.map_err(|_| Error::NodeStopped)
    }

    /// Publishes wire bytes on a gossip shard. If no peer listens yet, the record is kept and
    /// published when one subscribes.
    pub async fn publish(&self, shard: String, wire: Vec<u8>) -> Result<()> {
        self.send(Command::Publish { shard, wire }).await
    }

    /// Subscribes to exactly these shards.
    pub async fn set_shards(&self, shards: Vec<String>) -> Result<()> {
        self.send(Command::SetShards { shards }).await
    }

    /// Dials a multiaddr.
    pub async fn dial(&self, addr: Multiaddr) -> Result<()> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// The current network state.
    pub async fn status(&self) -> Result<NetStatus> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// The connected and the refused peers.
    pub async fn peers(&self) -> Result<Peers> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// The verdict on a gossip message: forward it, drop it, or drop it and blame its sender.
    pub async fn verdict(&self, receipt: Receipt, verdict: Verdict) {
        self.verdicts(vec![(receipt, verdict)]).await;
    }

    /// Reports the verdicts on several gossip messages at once (one command to the swarm).
    pub async fn verdicts(&self, verdicts: Vec<(Receipt, Verdict)>) {
        let _ = self.send(Command::Verdicts(verdicts)).await;
    }

    /// Sends a request to a peer and waits for its answer (bounded by the protocol's
    /// timeout).
    pub async fn request(&self, peer: PeerId, request: Vec<u8>) -> Result<Vec<u8>> {
        self.ask(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Answers an inbound request. The answer counts against the asker's memory allowance
    /// until it has been written; one that does not fit is replaced by the protocol's `busy`.
    pub async fn respond(&self, reply: Reply, response: Vec<u8>) {
        reply.send(response);
    }

    /// Counts faults against a peer (invalid records, broken protocol); enough of them get
    /// it disconnected and refused.
    pub async fn penalise(&self, peer: PeerId, faults: u32) {
        let _ = self.send(Command::Penalise { peer, faults }).await;
    }

    /// Peers now, and what the network counted since start: a few atomic loads, without
    /// asking the event loop.
    pub fn counts(&self) -> NetCounts {
        self.counters.counts()
    }

    /// Appends gossipsub's own metrics (peers per topic, messages and bytes sent and
    /// received, duplicates, scores...) to `out` in the OpenMetrics text format, without the
    /// final `# EOF`, for the metrics endpoint.
    pub fn encode_gossip_metrics(&self, out: &mut String) -> std::fmt::Result {
        let reg = self
            .metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        prometheus_client::encoding::text::encode_registry(out, &reg)
    }

    /// Gossip messages received, counting every copy (duplicates included): what the mesh
    /// costs, from gossipsub's own counters.
    pub fn gossip_copies_received(&self) -> u64 {
        self.metric_sum(
            "chorus_gossipsub_topic_msg_recv_counts_unfiltered_total{",
            "",
        )
    }

    /// Bytes this node has sent to peers over every connection since it started (all
    /// protocols: gossip, sync, identify, Kademlia, ping, and the handshakes).
    pub fn bytes_sent(&self) -> u64 {
        self.metric_sum(
            "chorus_libp2p_bandwidth_bytes_total{",
            "direction=\"Outbound\"",
        )
    }

    /// The metrics of the network in Prometheus' text format.
    pub fn encode_metrics(&self) -> String {
        let mut text = String::new();
        if let Ok(reg) = self.metrics.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut text, &reg);
        }
        text
    }

    /// The sum of the samples of a metric whose line starts with `prefix` and contains
    /// `label`.
    fn metric_sum(&self, prefix: &str, label: &str) -> u64 {
        self.encode_metrics()
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

/// Gossipsub peer scoring: a peer loses score for every invalid record it delivers (P4:
/// -10 x count^2), so two invalid records put it under the gossip threshold (-10), three
/// under publish (-50), and three more graylist it (-80), at which point gossipsub drops its
/// messages and the housekeeping tick bans it (as our own invalid-record counter does at
/// `max_invalid`). Penalties that would hurt honest peers in a quiet network or on one host
/// (too few mesh deliveries, many peers on one IP, as in loopback tests and LANs behind one
/// NAT) are off.
fn score_params() -> gossipsub::PeerScoreParams {
    let mut p = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..gossipsub::PeerScoreParams::default()
    };
    for shard in topics::all_shards() {
        let t = gossipsub::TopicScoreParams {
            topic_weight: 1.0,
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            invalid_message_deliveries_weight: -10.0,
            invalid_message_deliveries_decay: 0.5,
            ..gossipsub::TopicScoreParams::default()
        };
        p.topics.insert(IdentTopic::new(shard).hash(), t);
    }
    p
}

/// The gossipsub message id: the record id (BLAKE3 of the record bytes), or BLAKE3 of the
/// whole payload when it is not a wire record at all.
fn message_id(m: &gossipsub::Message) -> MessageId {
    let id = match cbor::split_wire(&m.data) {
        Ok((range, _)) => RecordId::of(m.data.get(range).unwrap_or(&m.data)),
        Err(_) => RecordId::of(&m.data),
    };
    MessageId::from(id.as_bytes().to_vec())
}

/// Owns the swarm. Run it with [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    sinks: Sinks,
    config: NetworkConfig,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    shards: HashSet<String>,
    unpublished: VecDeque<(String, Vec<u8>)>,
    peers: Buckets<PeerId>,
    invalid: HashMap<PeerId, u32>,
    banned: HashMap<PeerId, Instant>,
    rejected: u64,
    /// The protocol version each connected peer announced (identify).
    versions: HashMap<PeerId, String>,
    /// Connected peers known to share a gossip shard with this node (reported to sync).
    sharing: HashSet<PeerId>,
    /// When the bootstrap peers were last dialled again for want of any peer.
    last_redial: Option<Instant>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>>>>,
    /// The protocol's answer when nobody can answer now.
    busy: Vec<u8>,
    /// Accepted gossip held back a random moment (`forward_jitter`) before gossipsub
    /// forwards it.
    delayed: futures::stream::FuturesUnordered<
        std::pin::Pin<Box<dyn std::future::Future<Output = Receipt> + Send>>,
    >,
    /// Peers and refusals, for [`Client::counts`].
    counters: Arc<counters::Counters>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Does this node run on libp2p's in-process memory transport (every listen address is
/// `/memory/N`) instead of TCP and QUIC? Simulations of many nodes in one process do.
fn in_memory(listen: &[String]) -> bool {
    !listen.is_empty() && listen.iter().all(|l| l.starts_with("/memory/"))
}

/// What the behaviour is made of, whatever the transport under it.
struct Parts {
    mdns: bool,
    gossip: gossipsub::Config,
    limits: connection_limits::ConnectionLimits,
    codec: RequestCodec,
    protocol: StreamProtocol,
    request_config: request_response::Config,
    inbound: inbound::Behaviour,
}

impl Parts {
    fn build(
        self,
        key: &Keypair,
        registry: &mut Registry,
    ) -> std::result::Result<Behaviour, BoxError> {
        let peer_id = key.public().to_peer_id();
        let mdns = if self.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };
        let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, self.gossip)?
            .with_metrics(
                registry.sub_registry_with_prefix("chorus_gossipsub"),
                gossipsub::MetricsConfig::default(),
            );
        gossipsub.with_peer_score(score_params(), gossipsub::PeerScoreThresholds::default())?;
        let mut kad = kad::Behaviour::new(peer_id, MemoryStore::new(peer_id));
        kad.set_mode(Some(kad::Mode::Server));
        Ok(Behaviour {
            limits: connection_limits::Behaviour::new(self.limits),
            blocked: allow_block_list::Behaviour::default(),
            identify: identify::Behaviour::new(identify::Config::new(
                PROTOCOL_VERSION.into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new()),
            kad,
            mdns: Toggle::from(mdns),
            gossipsub,
            requests: request_response::Behaviour::with_codec(
                self.codec,
                [(self.protocol, ProtocolSupport::Outbound)],
                self.request_config,
            ),
            inbound: self.inbound,
        })
    }
}

/// Builds the swarm and its task, carrying one request-response `protocol`. Returns the
/// client, the channels the network reports on (bounded: a full one drops what does not
/// fit, see each) and the loop to run.
pub fn new(
    keypair: Keypair,
    config: NetworkConfig,
    protocol: RequestProtocol,
) -> Result<(Client, Events, EventLoop)> {
    // Outbound only (peers' requests go to `inbound`): a pull has at most five requests in
    // flight to a peer.
    let request_config = request_response::Config::default()
        .with_request_timeout(protocol.timeout)
        .with_max_concurrent_streams(16);
    let net_err = |e: String| Error::Network(e);
    let gossip_config = gossipsub::ConfigBuilder::default()
        // Messages carry no gossipsub author, sequence number or signature: the record is
        // signed by its own author and its id is the message id, so a peer signature per
        // message (an ed25519 sign per publish and a verify per copy received, a fifth of
        // the network threads' time in the gossip benchmark) bought nothing. The peer that
        // delivers a message is still known (noise) and is who gets penalised.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(64 * 1024)
        .heartbeat_interval(Duration::from_millis(700))
        // A small mesh (3, 2..5; default 6, 5..12), publishing to the mesh only (no flood
        // publish) and IDONTWANT for records (a few hundred bytes, under the default 1 KiB
        // threshold) keep copies per record low; the gossip to 6 or more peers outside the mesh at
        // every heartbeat and catch-up sync cover what a thin mesh misses (BENCHMARKS.md,
        // issue 17: with these settings p50 fell about fivefold and p99 about twentyfold).
        .mesh_n(3)
        .mesh_n_low(2)
        .mesh_n_high(5)
        .mesh_outbound_min(1)
        .flood_publish(false)
        .idontwant_message_size_threshold(128)
        .idontwant_on_publish(true)
        .build()
        .map_err(|e| net_err(format!("gossipsub config: {e}")))?;
    let mdns_on = config.mdns;
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_established_per_peer(Some(config.max_connections_per_peer))
        .with_max_pending_incoming(Some(config.max_pending_incoming))
        .with_max_pending_outgoing(Some(config.max_pending_outgoing));
    // Gossipsub's metrics are named `chorus_gossipsub_...` on the metrics endpoint.
    let mut registry = Registry::default();
    let codec = RequestCodec::new(protocol.max_request, protocol.max_response);
    let busy = protocol.busy.clone();
    let inbound = inbound::Behaviour::new(
        StreamProtocol::new(protocol.name),
        protocol.max_request,
        protocol.timeout,
        protocol.limits,
        protocol.busy.clone(),
    );
    let parts = Parts {
        mdns: mdns_on,
        gossip: gossip_config,
        limits,
        codec,
        protocol: StreamProtocol::new(protocol.name),
        request_config,
        inbound,
    };
    let idle_timeout = config.idle_timeout;
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(idle_timeout);
    // Bytes in and out per transport, for the metrics and the scale benchmark.
    let swarm = if in_memory(&config.listen) {
        libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|key| -> std::result::Result<_, BoxError> {
                Ok(MemoryTransport::default()
                    .upgrade(libp2p::core::upgrade::Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()))
            })
            .map_err(|e| net_err(format!("memory transport: {e}")))?
            .with_bandwidth_metrics(registry.sub_registry_with_prefix("chorus"))
            .with_behaviour(|key| parts.build(key, &mut registry))
            .map_err(|e| net_err(format!("behaviour: {e}")))?
            .with_swarm_config(idle)
            .build()
    } else {
        libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| net_err(format!("tcp: {e}")))?
            .with_quic()
            .with_bandwidth_metrics(registry.sub_registry_with_prefix("chorus"))
            .with_behaviour(|key| parts.build(key, &mut registry))
            .map_err(|e| net_err(format!("behaviour: {e}")))?
            .with_swarm_config(idle)
            .build()
    };
    let (tx, rx) = mpsc::channel(1024);
    let counters = Arc::new(counters::Counters {
        requests_refused: swarm.behaviour().inbound.refused(),
        ..Default::default()
    });
    let client = Client {
        tx,
        metrics: Arc::new(Mutex::new(registry)),
        counters: counters.clone(),
    };
    let mut bootstrap = Vec::new();
    for b in &config.bootstrap {
        let addr: Multiaddr = b
            .parse()
            .map_err(|e| Error::Config(format!("bootstrap {b}: {e}")))?;
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(Error::Config(format!(
                "bootstrap {b}: must end in /p2p/PEERID"
            )));
        };
        bootstrap.push((peer, addr));
    }
    let (node_tx, node_rx) = mpsc::channel(256);
    let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_QUEUE);
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE);
    let (connected_tx, connected_rx) = mpsc::channel(256);
    let events = Events {
        node: node_rx,
        gossip: gossip_rx,
        requests: requests_rx,
        connected: connected_rx,
    };
    let peer_rate = config.peer_rate;
    Ok((
        client,
        events,
        EventLoop {
            swarm,
            rx,
            sinks: Sinks {
                node: node_tx,
                gossip: gossip_tx,
                requests: requests_tx,
                connected: connected_tx,
            },
            config,
            bootstrap,
            shards: HashSet::new(),
            unpublished: VecDeque::new(),
            peers: Buckets::new(peer_rate, MAX_RATED_PEERS),
            invalid: HashMap::new(),
            banned: HashMap::new(),
            rejected: 0,
            versions: HashMap::new(),
            sharing: HashSet::new(),
            last_redial: None,
            pending: HashMap::new(),
            busy,
            delayed: futures::stream::FuturesUnordered::new(),
            counters,
        },
    ))
}

impl EventLoop {
    /// Listens, dials the bootstrap peers and runs until `cancel` fires or every
    /// [`Client`] is dropped.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<()> {
        let mut listeners = Vec::new();
        for l in self.config.listen.clone() {
            let addr: Multiaddr = l
                .parse()
                .map_err(|e| Error::Config(format!("listen {l}: {e}")))?;
            listeners.push(
                self.swarm
                    .listen_on(addr)
                    .map_err(|e| Error::Network(format!("listen on {l}: {}", error_chain(&e))))?,
            );
        }
        for (peer, addr) in self.bootstrap.clone() {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
            if let Err(e) = self.swarm.dial(addr.clone()) {
                warn!(%addr, error = %e, "cannot dial bootstrap peer");
            }
        }
        self.last_redial = Some(Instant::now());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                ev = self.swarm.select_next_some() => self.handle_event(ev),
                cmd = self.rx.recv() => match cmd {
                    Some(c) => self.handle_command(c),
                    None => break,
                },
                Some(r) = futures::StreamExt::next(&mut self.delayed), if !self.delayed.is_empty() => {
                    self.report(r, Verdict::Accept)
                }
                _ = tick.tick() => self.housekeeping(),
            }
        }
        // Closed explicitly: the memory transport frees a port only so, not when dropped.
        for id in listeners {
            self.swarm.remove_listener(id);
        }
        info!("network stopped");
        Ok(())
    }

    fn emit(&self, e: NetEvent) {
        let _ = self.sinks.node.try_send(e);
    }

    fn handle_command(&mut self, c: Command) {
        match c {
            Command::Publish { shard, wire } => self.publish(shard, wire),
            Command::SetShards { shards } => self.set_shards(shards),
            Command::Dial { addr, reply } => {
                let r = self
                    .swarm
                    .dial(addr)
                    .map_err(|e| Error::Network(e.to_string()));
                let _ = reply.send(r);
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Peers { reply } => {
                let _ = reply.send(Peers {
                    connected: self.swarm.connected_peers().copied().collect(),
                    banned: self.banned.keys().copied().collect(),
                    searchable: self
                        .swarm
                        .connected_peers()
                        .filter(|p| self.versions.get(p).is_some_and(|v| answers_search(v)))
                        .copied()
                        .collect(),
                });
            }
            Command::Verdicts(verdicts) => {
                for (receipt, verdict) in verdicts {
                    // At most a second: gossipsub keeps a message awaiting its verdict only
                    // for a few heartbeats.
                    let jitter = self.config.forward_jitter.min(MAX_JITTER).as_micros() as u64;
                    if jitter > 0 && matches!(verdict, Verdict::Accept) {
                        // Bounded like the messages awaiting a verdict: each is one of them.
                        let d = Duration::from_micros(rand::random::<u64>() % jitter);
                        self.delayed.push(Box::pin(async move {
                            tokio::time::sleep(d).await;
                            receipt
                        }));
                    } else {
                        self.report(receipt, verdict);
                    }
                }
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .requests
                    .send_request(&peer, request);
                self.pending.insert(id, reply);
            }
            Command::Penalise { peer, faults } => self.penalise(peer, faults),
        }
    }

    /// A connected peer subscribed to one of this node's shards: reported once per
    /// connection (to pull from it). A peer that shares no shard holds none of the topics
    /// this node keeps (whoever stores a topic subscribes to its shard), so the many peers
    /// met only through Kademlia are not pulled from.
    fn sharing_peer(&mut self, peer: PeerId) {
        if self.sharing.insert(peer) {
            let _ = self.sinks.connected.try_send(peer);
        }
    }

    fn set_shards(&mut self, shards: Vec<String>) {
        let want: HashSet<String> = shards.into_iter().collect();
        for s in self.shards.difference(&want) {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .unsubscribe(&IdentTopic::new(s.clone()));
        }
        for s in want.difference(&self.shards) {
            if let Err(e) = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&IdentTopic::new(s.clone()))
            {
                warn!(shard = %s, error = ?e, "cannot subscribe");
            }
        }
        self.shards = want;
        // Peers already subscribed to a shard this node just joined now share it.
        let sharing: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.iter().any(|t| self.shards.contains(t.as_str())))
            .map(|(p, _)| *p)
            .collect();
        for p in sharing {
            self.sharing_peer(p);
        }
    }

    fn status(&self) -> NetStatus {
        let me = *self.swarm.local_peer_id();
        let mut shards: Vec<String> = self.shards.iter().cloned().collect();
        shards.sort();
        NetStatus {
            peer_id: me.to_string(),
            listen_addrs: self
                .swarm
                .listeners()
                .map(|a| a.clone().with(Protocol::P2p(me)).to_string())
                .collect(),
            peers: self
                .swarm
                .connected_peers()
                .map(|p| p.to_string())
                .collect(),
            shards,
            rejected: self.rejected,
            banned: self.banned.keys().map(|p| p.to_string()).collect(),
        }
    }

    /// Tells gossipsub what to do with a message; an invalid one counts against its sender.
    fn report(&mut self, receipt: Receipt, verdict: Verdict) {
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Reject => {
                self.penalise(receipt.source, 1);
                MessageAcceptance::Reject
            }
            Verdict::Ignore => MessageAcceptance::Ignore,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&receipt.id, &receipt.source, acceptance);
    }

    /// Counts faults against a peer; at `max_invalid` it is banned.
    fn penalise(&mut self, peer: PeerId, faults: u32) {
        self.rejected += u64::from(faults);
        self.counters
            .faults
            .fetch_add(u64::from(faults), std::sync::atomic::Ordering::Relaxed);
        let n = self.invalid.entry(peer).or_insert(0);
        *n = n.saturating_add(faults);
        if *n >= self.config.max_invalid {
            self.ban(peer);
        }
    }

    /// A peer's request, admitted and read: to whoever answers, or `busy` when too many
    /// wait for them.
    fn handle_inbound(&mut self, request: InboundRequest) {
        match self.sinks.requests.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(r)) => {
                debug!(peer = %r.peer, "inbound request: too many waiting, answered busy");
                counters::bump(&self.counters.requests_refused);
                r.reply.send(self.busy.clone());
            }
            // Nobody answers any more (the node stops): the asker sees the stream end.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Answers to this node's requests.
    fn handle_requests(&mut self, e: request_response::Event<Vec<u8>, Vec<u8>>) {
        match e {
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tx) = self.pending.remove(&request_id) {
                    let _ = tx.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(tx) = self.pending.remove(&request_id) {
                    let _ = tx.send(Err(Error::Network(format!("request: {error}"))));
                }
            }
            other => debug!(event = ?other, "request-response event"),
        }
    }

    fn ban(&mut self, peer: PeerId) {
        if self
            .banned
            .insert(peer, Instant::now() + self.config.ban)
            .is_none()
        {
            warn!(%peer, "peer sent invalid records: disconnected and refused");
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            counters::set(&self.counters.banned, self.banned.len());
            self.emit(NetEvent::PeerBanned(peer));
        }
    }

    fn publish(&mut self, shard: String, wire: Vec<u8>) {
        let topic = IdentTopic::new(shard.clone());
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, wire.clone())
        {
            Ok(_) => {}
            Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => {
                // Nobody to send it to yet: keep it, publish when a peer subscribes.
                debug!(error = %e, %shard, "publish deferred");
                if self.unpublished.len() >= MAX_UNPUBLISHED {
                    self.unpublished.pop_front();
                }
                self.unpublished.push_back((shard, wire));
            }
        }
    }

    fn retry_unpublished(&mut self, shard: Option<&TopicHash>) {
        let pending: Vec<(String, Vec<u8>)> = self.unpublished.drain(..).collect();
        for (s, w) in pending {
            if shard.is_none_or(|h| IdentTopic::new(s.clone()).hash() == *h) {
                self.publish(s, w);
            } else {
                self.unpublished.push_back((s, w));
            }
        }
    }

    fn housekeeping(&mut self) {
        // Peers whose gossip score fell to the graylist are cut off like any other offender:
        // gossipsub ignores them already, so our own counter would never reach its limit.
        let graylist = gossipsub::PeerScoreThresholds::default().graylist_threshold;
        let low: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .copied()
            .filter(|p| {
                self.swarm
                    .behaviour()
                    .gossipsub
                    .peer_score(p)
                    .is_some_and(|s| s <= graylist)
            })
            .collect();
        for p in low {
            self.ban(p);
        }
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            self.banned.remove(&p);
            self.invalid.remove(&p);
            self.swarm.behaviour_mut().blocked.unblock_peer(p);
        }
        counters::set(&self.counters.banned, self.banned.len());
        if !self.unpublished.is_empty() {
            self.retry_unpublished(None);
        }
        self.redial_bootstrap(now);
    }

    /// A node that has lost every peer dials its bootstrap peers again, every
    /// [`REDIAL_EVERY`] while alone (Kademlia's own bootstrap waits minutes).
    fn redial_bootstrap(&mut self, now: Instant) {
        if self.bootstrap.is_empty() || self.swarm.connected_peers().next().is_some() {
            return;
        }
        if self
            .last_redial
            .is_some_and(|t| now.duration_since(t) < REDIAL_EVERY)
        {
            return;
        }
        self.last_redial = Some(now);
        for (peer, addr) in self.bootstrap.clone() {
            if self.banned.contains_key(&peer) {
                continue;
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, error = %e, "cannot redial bootstrap peer");
            }
        }
    }

    fn handle_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(*self.swarm.local_peer_id()));
                info!(addr = %full, "listening");
                self.emit(NetEvent::Listening(full));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                counters::set(&self.counters.peers, self.swarm.connected_peers().count());
                self.emit(NetEvent::PeerConnected(peer_id));
                let _ = num_established;
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.versions.remove(&peer_id);
                self.sharing.remove(&peer_id);
                counters::set(&self.counters.peers, self.swarm.connected_peers().count());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Requests(e)) => self.handle_requests(e),
            SwarmEvent::Behaviour(BehaviourEvent::Inbound(r)) => self.handle_inbound(r),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.handle_gossip(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if minor_version(&info.protocol_version).is_some() {
                    if self.versions.len() < MAX_RATED_PEERS || self.versions.contains_key(&peer_id)
                    {
                        self.versions.insert(peer_id, info.protocol_version.clone());
                    }
                    for a in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, a);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) && !self.banned.contains_key(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            other => debug!(event = ?other, "swarm event"),
        }
    }

    fn handle_gossip(&mut self, e: gossipsub::Event) {
        match e {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let receipt = Receipt {
                    id: message_id,
                    source: propagation_source,
                };
                if !self.peers.take(propagation_source) {
                    // Over the peer's rate: neither forward nor punish.
                    counters::bump(&self.counters.gossip_over_rate);
                    self.report(receipt, Verdict::Ignore);
                    return;
                }
                let msg = GossipMessage {
                    source: propagation_source,
                    data: message.data,
                    receipt,
                };
                if let Err(e) = self.sinks.gossip.try_send(msg) {
                    // Too much waiting for a verdict (backpressure), or nobody judges.
                    counters::bump(&self.counters.gossip_queue_full);
                    let msg = match e {
                        mpsc::error::TrySendError::Full(m)
                        | mpsc::error::TrySendError::Closed(m) => m,
                    };
                    self.report(msg.receipt, Verdict::Ignore);
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                if self.shards.contains(topic.as_str()) {
                    self.sharing_peer(peer_id);
                }
                if !self.unpublished.is_empty() {
                    self.retry_unpublished(Some(&topic));
                }
            }
            other => debug!(event = ?other, "gossipsub event"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_read_from_identify_strings() {
        use super::{answers_search, minor_version, PROTOCOL_VERSION};
        assert_eq!(minor_version("/chorus/1.2.0"), Some(2));
        assert_eq!(minor_version("/chorus/1.1.0"), Some(1));
        assert_eq!(minor_version("/ipfs/0.1.0"), None);
        assert!(answers_search(PROTOCOL_VERSION));
        assert!(answers_search("/chorus/1.10.3"));
        assert!(!answers_search("/chorus/1.1.0"));
        assert!(
            !answers_search("/chorus/1.2.0"),
            "sync 1: another key layout"
        );
        assert!(!answers_search("/chorus/2.0.0"));
    }

    use super::*;

    #[test]
    fn score_parameters_are_valid() {
        let p = score_params();
        assert!(p.validate().is_ok());
        assert_eq!(p.topics.len(), topics::all_shards().len());
    }
}
