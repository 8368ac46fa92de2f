//! Peer-to-peer networking: one task owns the libp2p `Swarm`; the rest of the node talks to it
//! through a cloneable [`Client`].
//!
//! The swarm speaks TCP (noise + yamux) and QUIC, and runs identify, ping, Kademlia
//! (bootstrapped from configured multiaddrs), optional mDNS, connection limits, a block list
//! and gossipsub. Gossipsub runs in strict mode with explicit validation: every received
//! record is checked (and, for followed topics, ingested) before the verdict is reported, so
//! invalid records are never forwarded. A peer that sends too many invalid records is
//! disconnected and refused for a while. The message id is the record id, so duplicates die
//! in the mesh.

pub mod topics;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chorus_protocol::{cbor, AuthorKey, RecordId, SignedRecord};
use futures::StreamExt;
use libp2p::allow_block_list::{self, BlockedPeers};
use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, TopicHash,
};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{connection_limits, identify, mdns, noise, ping, tcp, yamux, StreamProtocol, Swarm};
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::now_ms;
use crate::config::NetworkConfig;
use crate::ingest::{Ingest, Outcome, Rejection};
use crate::sync::session::{self, SyncContext, SyncReport};
use crate::{Error, Result};
use chorus_protocol::sync::wire::{MAX_REQUEST, MAX_RESPONSE};
pub use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId};
pub use topics::{shard_of, Follow};

/// Protocol string announced by identify.
pub const PROTOCOL_VERSION: &str = "/chorus/1.0.0";
/// Records published while no peer listened, kept to publish later.
const MAX_UNPUBLISHED: usize = 10_000;
/// Gossip records being validated at once; more are ignored (backpressure).
const MAX_VALIDATING: usize = 512;

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    blocked: allow_block_list::Behaviour<BlockedPeers>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
}

/// Frames of the sync protocol: one message per stream, read to its end, size-limited.
/// The messages themselves are decoded by [`crate::sync::wire`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncCodec;

async fn read_limited<T>(io: &mut T, max: usize) -> std::io::Result<Vec<u8>>
where
    T: futures::AsyncRead + Unpin + Send,
{
    use futures::AsyncReadExt;
    let mut buf = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "sync message over its size limit",
        ));
    }
    Ok(buf)
}

async fn write_all<T>(io: &mut T, bytes: Vec<u8>) -> std::io::Result<()>
where
    T: futures::AsyncWrite + Unpin + Send,
{
    use futures::AsyncWriteExt;
    io.write_all(&bytes).await?;
    io.close().await
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        read_limited(io, MAX_REQUEST).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        read_limited(io, MAX_RESPONSE).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        write_all(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        write_all(io, res).await
    }
}

/// Pulls answered at once; more get a `busy` answer.
const MAX_SERVING: usize = 8;
/// Sync requests one peer may make per second (bursts of ten times that); more get `busy`.
const SYNC_REQUEST_RATE: u32 = 100;

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
    Verdict {
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    SyncRequest {
        peer: PeerId,
        request: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>>>,
    },
    SyncRespond {
        channel: ResponseChannel<Vec<u8>>,
        response: Vec<u8>,
    },
    Penalise {
        peer: PeerId,
        faults: u32,
    },
    SyncNow {
        peer: Option<PeerId>,
        reply: oneshot::Sender<Vec<SyncReport>>,
    },
    SyncDone {
        peer: PeerId,
        report: Box<SyncReport>,
    },
}

/// Talks to the network task. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    metrics: Arc<Mutex<Registry>>,
}

impl Client {
    async fn send(&self, c: Command) -> Result<()> {
        self.tx.send(c).await.map_err(|_| Error::NodeStopped)
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
        let (reply, rx) = oneshot::channel();
        self.send(Command::Dial { addr, reply }).await?;
        rx.await.map_err(|_| Error::NodeStopped)?
    }

    /// Gossip messages received, counting every copy (duplicates included): what the mesh
    /// costs, from gossipsub's own counters.
    pub fn gossip_copies_received(&self) -> u64 {
        let mut text = String::new();
        let Ok(reg) = self.metrics.lock() else {
            return 0;
        };
        if prometheus_client::encoding::text::encode(&mut text, &reg).is_err() {
            return 0;
        }
        text.lines()
            .filter(|l| l.starts_with("topic_msg_recv_counts_unfiltered_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Sends one sync request to a peer and waits for its answer (bounded by the request
    /// timeout).
    pub(crate) async fn sync_request(&self, peer: PeerId, request: Vec<u8>) -> Result<Vec<u8>> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SyncRequest {
            peer,
            request,
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::NodeStopped)?
    }

    /// Counts faults against a peer (invalid records, broken protocol); enough of them get
    /// it disconnected and refused.
    pub(crate) async fn penalise(&self, peer: PeerId, faults: u32) {
        let _ = self.send(Command::Penalise { peer, faults }).await;
    }

    /// Pulls now from every connected peer (or just `peer`), and reports each pull. For a
    /// peer already being pulled from, that pull's report.
    pub async fn sync_now(&self, peer: Option<PeerId>) -> Result<Vec<SyncReport>> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SyncNow { peer, reply }).await?;
        rx.await.map_err(|_| Error::NodeStopped)
    }

    /// The current network state.
    pub async fn status(&self) -> Result<NetStatus> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Status { reply }).await?;
        rx.await.map_err(|_| Error::NodeStopped)
    }
}

/// A token bucket: `rate` per second, bursts of `10 * rate`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, rate: u32) -> bool {
        let now = Instant::now();
        let cap = f64::from(rate) * 10.0;
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * f64::from(rate)).min(cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
    fn full(rate: u32) -> Self {
        Bucket {
            tokens: f64::from(rate) * 10.0,
            at: Instant::now(),
        }
    }
}

/// Checks gossiped records: followed topics go through the store's ingest, others through
/// the protocol checks alone (not stored, but valid ones are forwarded).
#[derive(Clone)]
pub(crate) struct Validator {
    pub(crate) ingest: Ingest,
    pub(crate) follow: Arc<RwLock<Follow>>,
    pub(crate) skew_ms: u64,
    pub(crate) author_rate: u32,
    authors: Arc<Mutex<HashMap<AuthorKey, Bucket>>>,
}

impl Validator {
    pub(crate) fn new(
        ingest: Ingest,
        follow: Arc<RwLock<Follow>>,
        skew_ms: u64,
        author_rate: u32,
    ) -> Self {
        Validator {
            ingest,
            follow,
            skew_ms,
            author_rate,
            authors: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    async fn check(&self, wire: Vec<u8>) -> MessageAcceptance {
        let rec = match SignedRecord::from_bytes(&wire) {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "malformed gossip record");
                return MessageAcceptance::Reject;
            }
        };
        let allowed = self.authors.lock().map(|mut m| {
            if m.len() > 100_000 {
                m.clear();
            }
            m.entry(rec.author())
                .or_insert_with(|| Bucket::full(self.author_rate))
                .take(self.author_rate)
        });
        if !allowed.unwrap_or(true) {
            return MessageAcceptance::Ignore;
        }
        let followed = self
            .follow
            .read()
            .map(|f| f.follows(&rec.record().topic))
            .unwrap_or(false);
        if !followed {
            let now = now_ms();
            return match rec.check_time(now, self.skew_ms).and_then(|_| rec.verify()) {
                Ok(()) => MessageAcceptance::Accept,
                Err(_) => MessageAcceptance::Reject,
            };
        }
        match self
            .ingest
            .ingest(vec![wire])
            .await
            .ok()
            .and_then(|mut v| v.pop())
        {
            Some(Outcome::Stored(_) | Outcome::Duplicate(_) | Outcome::Waiting(_)) => {
                MessageAcceptance::Accept
            }
            // Invalid by the protocol: every node can tell, so the sender is at fault.
            Some(Outcome::Rejected(Rejection::Invalid(_))) => MessageAcceptance::Reject,
            // A kind rule that needs other records (wrong producer, not the founder...):
            // nodes that do not follow the topic cannot check it and rightly forward such
            // records, so do not forward it, but do not punish the relay either.
            Some(Outcome::Rejected(
                Rejection::Rule(_) | Rejection::TooManyWaiting | Rejection::Internal,
            ))
            | None => MessageAcceptance::Ignore,
        }
    }
}

/// Gossipsub peer scoring: a peer loses score for every invalid record it delivers (P4:
/// -10 x count^2), so two invalid records put it under the gossip threshold (-10), three
/// under publish (-50), and three more graylist it (-80), at which point gossipsub drops its
/// messages and the housekeeping tick bans it (as our own invalid-record counter does at
/// `max_invalid`). Penalties that would hurt
/// honest peers in a quiet network or on one host (too few mesh deliveries, many peers on one
/// IP, as in loopback tests and LANs behind one NAT) are off.
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
    client: Client,
    validator: Validator,
    events: mpsc::Sender<NetEvent>,
    config: NetworkConfig,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    shards: HashSet<String>,
    unpublished: VecDeque<(String, Vec<u8>)>,
    peers: HashMap<PeerId, Bucket>,
    invalid: HashMap<PeerId, u32>,
    banned: HashMap<PeerId, Instant>,
    rejected: u64,
    validating: Arc<Semaphore>,
    sync: SyncContext,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>>>>,
    /// Pulls running, with whoever waits for each one's report.
    pulling: HashMap<PeerId, Vec<oneshot::Sender<SyncReport>>>,
    serving: Arc<Semaphore>,
    sync_buckets: HashMap<PeerId, Bucket>,
}

/// Builds the swarm and its task. `events` receives [`NetEvent`]s (bounded; dropped when
/// full).
pub(crate) fn new(
    keypair: Keypair,
    config: NetworkConfig,
    validator: Validator,
    sync: SyncContext,
    events: mpsc::Sender<NetEvent>,
) -> Result<(Client, EventLoop)> {
    let sync_config = request_response::Config::default()
        .with_request_timeout(sync.config.request_timeout)
        .with_max_concurrent_streams(64);
    let net_err = |e: String| Error::Network(e);
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(64 * 1024)
        .heartbeat_interval(Duration::from_millis(700))
        // A smaller mesh than the default (6, 5..12) and IDONTWANT for records (a few hundred
        // bytes, under the default 1 KiB threshold) keep copies per record low (about 1.2 measured) while
        // every record still reaches every follower (BENCHMARKS.md).
        .mesh_n(5)
        .mesh_n_low(4)
        .mesh_n_high(8)
        .idontwant_message_size_threshold(128)
        .idontwant_on_publish(true)
        .build()
        .map_err(|e| net_err(format!("gossipsub config: {e}")))?;
    let mdns_on = config.mdns;
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_established_per_peer(Some(config.max_connections_per_peer));
    let mut registry = Registry::default();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| net_err(format!("tcp: {e}")))?
        .with_quic()
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)
                    .map_err(|e| std::io::Error::other(e.to_string()))?
                    .with_metrics(&mut registry, gossipsub::MetricsConfig::default());
            let mut gossipsub = gossipsub;
            gossipsub
                .with_peer_score(score_params(), gossipsub::PeerScoreThresholds::default())
                .map_err(std::io::Error::other)?;
            let mut kad = kad::Behaviour::new(peer_id, MemoryStore::new(peer_id));
            kad.set_mode(Some(kad::Mode::Server));
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                blocked: allow_block_list::Behaviour::default(),
                identify: identify::Behaviour::new(identify::Config::new(
                    PROTOCOL_VERSION.into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new()),
                kad,
                mdns: Toggle::from(mdns),
                gossipsub,
                sync: request_response::Behaviour::with_codec(
                    SyncCodec,
                    [(
                        StreamProtocol::new(crate::sync::PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    sync_config,
                ),
            })
        })
        .map_err(|e| net_err(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let (tx, rx) = mpsc::channel(1024);
    let client = Client {
        tx,
        metrics: Arc::new(Mutex::new(registry)),
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
    Ok((
        client.clone(),
        EventLoop {
            swarm,
            rx,
            client,
            validator,
            events,
            config,
            bootstrap,
            shards: HashSet::new(),
            unpublished: VecDeque::new(),
            peers: HashMap::new(),
            invalid: HashMap::new(),
            banned: HashMap::new(),
            rejected: 0,
            validating: Arc::new(Semaphore::new(MAX_VALIDATING)),
            sync,
            pending: HashMap::new(),
            pulling: HashMap::new(),
            serving: Arc::new(Semaphore::new(MAX_SERVING)),
            sync_buckets: HashMap::new(),
        },
    ))
}

impl EventLoop {
    /// Listens, dials the bootstrap peers and runs until `cancel` fires or every
    /// [`Client`] is dropped.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<()> {
        for l in self.config.listen.clone() {
            let addr: Multiaddr = l
                .parse()
                .map_err(|e| Error::Config(format!("listen {l}: {e}")))?;
            self.swarm
                .listen_on(addr)
                .map_err(|e| Error::Network(format!("listen on {l}: {e}")))?;
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
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut kad_tick = tokio::time::interval(Duration::from_secs(60));
        let jittered = |d: Duration| d.mul_f64(rand::random_range(0.8..1.2));
        let mut next_sync = tokio::time::Instant::now() + jittered(self.sync.config.interval);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                ev = self.swarm.select_next_some() => self.handle_event(ev),
                cmd = self.rx.recv() => match cmd {
                    Some(c) => self.handle_command(c),
                    None => break,
                },
                _ = tick.tick() => self.housekeeping(),
                _ = tokio::time::sleep_until(next_sync) => {
                    next_sync = tokio::time::Instant::now() + jittered(self.sync.config.interval);
                    let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for p in peers {
                        self.start_pull(p, None);
                    }
                }
                _ = kad_tick.tick() => {
                    if !self.bootstrap.is_empty() {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
            }
        }
        info!("network stopped");
        Ok(())
    }

    fn emit(&self, e: NetEvent) {
        let _ = self.events.try_send(e);
    }

    fn handle_command(&mut self, c: Command) {
        match c {
            Command::Publish { shard, wire } => self.publish(shard, wire),
            Command::SetShards { shards } => {
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
            }
            Command::Dial { addr, reply } => {
                let r = self
                    .swarm
                    .dial(addr)
                    .map_err(|e| Error::Network(e.to_string()));
                let _ = reply.send(r);
            }
            Command::Status { reply } => {
                let me = *self.swarm.local_peer_id();
                let _ = reply.send(NetStatus {
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
                    shards: {
                        let mut s: Vec<String> = self.shards.iter().cloned().collect();
                        s.sort();
                        s
                    },
                    rejected: self.rejected,
                    banned: self.banned.keys().map(|p| p.to_string()).collect(),
                });
            }
            Command::Verdict {
                id,
                source,
                acceptance,
            } => {
                if matches!(acceptance, MessageAcceptance::Reject) {
                    self.penalise(source, 1);
                }
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Command::SyncRequest {
                peer,
                request,
                reply,
            } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.pending.insert(id, reply);
            }
            Command::SyncRespond { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
            }
            Command::Penalise { peer, faults } => self.penalise(peer, faults),
            Command::SyncNow { peer, reply } => {
                let peers: Vec<PeerId> = match peer {
                    Some(p) => vec![p],
                    None => self.swarm.connected_peers().copied().collect(),
                };
                let mut waits = Vec::new();
                for p in peers {
                    let (tx, rx) = oneshot::channel();
                    self.start_pull(p, Some(tx));
                    waits.push(rx);
                }
                tokio::spawn(async move {
                    let mut reports = Vec::new();
                    for w in waits {
                        if let Ok(r) = w.await {
                            reports.push(r);
                        }
                    }
                    let _ = reply.send(reports);
                });
            }
            Command::SyncDone { peer, report } => {
                for w in self.pulling.remove(&peer).unwrap_or_default() {
                    let _ = w.send((*report).clone());
                }
            }
        }
    }

    /// Counts faults against a peer; at `max_invalid` it is banned.
    fn penalise(&mut self, peer: PeerId, faults: u32) {
        self.rejected += u64::from(faults);
        let n = self.invalid.entry(peer).or_insert(0);
        *n = n.saturating_add(faults);
        if *n >= self.config.max_invalid {
            self.ban(peer);
        }
    }

    /// Starts a pull from `peer`, unless one is running; either way its report goes to
    /// `reply` when it ends.
    fn start_pull(&mut self, peer: PeerId, reply: Option<oneshot::Sender<SyncReport>>) {
        if self.banned.contains_key(&peer) {
            if let Some(r) = reply {
                let _ = r.send(SyncReport {
                    peer: peer.to_string(),
                    error: Some("the peer is banned".into()),
                    ..SyncReport::default()
                });
            }
            return;
        }
        if let Some(waiters) = self.pulling.get_mut(&peer) {
            waiters.extend(reply);
            return;
        }
        self.pulling.insert(peer, reply.into_iter().collect());
        let ctx = self.sync.clone();
        let client = self.client.clone();
        tokio::spawn(async move {
            let report = session::pull(ctx, client.clone(), peer).await;
            if let Some(e) = &report.error {
                debug!(%peer, error = %e, "pull stopped early");
            } else if report.stored > 0 {
                info!(%peer, stored = report.stored, rounds = report.rounds, "caught up");
            }
            let _ = client
                .send(Command::SyncDone {
                    peer,
                    report: Box::new(report),
                })
                .await;
        });
    }

    fn handle_sync(&mut self, e: request_response::Event<Vec<u8>, Vec<u8>>) {
        match e {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let allowed = self
                    .sync_buckets
                    .entry(peer)
                    .or_insert_with(|| Bucket::full(SYNC_REQUEST_RATE))
                    .take(SYNC_REQUEST_RATE);
                let permit = self.serving.clone().try_acquire_owned();
                let (true, Ok(permit)) = (allowed, permit) else {
                    let busy = chorus_protocol::sync::wire::Response::error(
                        "busy",
                        "too many pulls; retry later",
                    );
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, busy.encode());
                    return;
                };
                let store = self.sync.store.clone();
                let params = self.sync.params;
                let client = self.client.clone();
                tokio::spawn(async move {
                    let answered = tokio::task::spawn_blocking(move || {
                        session::answer(&store, &request, &params)
                    })
                    .await;
                    drop(permit);
                    let (response, malformed) = answered.unwrap_or_else(|_| {
                        (
                            chorus_protocol::sync::wire::Response::error("internal", "").encode(),
                            false,
                        )
                    });
                    let _ = client
                        .send(Command::SyncRespond { channel, response })
                        .await;
                    if malformed {
                        client.penalise(peer, 1).await;
                    }
                });
            }
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
                    let _ = tx.send(Err(Error::Network(format!("sync request: {error}"))));
                }
            }
            other => debug!(event = ?other, "sync event"),
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
        if !self.unpublished.is_empty() {
            self.retry_unpublished(None);
        }
        if self.peers.len() > 10_000 {
            self.peers.clear();
        }
        if self.sync_buckets.len() > 10_000 {
            self.sync_buckets.clear();
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
                self.emit(NetEvent::PeerConnected(peer_id));
                if num_established.get() == 1 && self.sync.config.on_connect {
                    self.start_pull(peer_id, None);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.handle_sync(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.handle_gossip(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocol_version == PROTOCOL_VERSION {
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
                let rate = self.config.peer_rate;
                let ok = self
                    .peers
                    .entry(propagation_source)
                    .or_insert_with(|| Bucket::full(rate))
                    .take(rate);
                let permit = self.validating.clone().try_acquire_owned();
                let (true, Ok(permit)) = (ok, permit) else {
                    // Over the peer's rate, or too much in flight: neither forward nor punish.
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                    return;
                };
                let validator = self.validator.clone();
                let client = self.client.clone();
                tokio::spawn(async move {
                    let acceptance = validator.check(message.data).await;
                    drop(permit);
                    let _ = client
                        .send(Command::Verdict {
                            id: message_id,
                            source: propagation_source,
                            acceptance,
                        })
                        .await;
                });
            }
            gossipsub::Event::Subscribed { topic, .. } => {
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
    use super::*;

    #[test]
    fn buckets_allow_bursts_then_the_rate() {
        let mut b = Bucket::full(2);
        let burst = (0..100).filter(|_| b.take(2)).count();
        assert_eq!(burst, 20, "burst of ten times the rate");
        assert!(!b.take(2));
        b.at -= Duration::from_secs(1);
        assert!(b.take(2) && b.take(2));
        assert!(!b.take(2));
    }

    #[test]
    fn score_parameters_are_valid() {
        let p = score_params();
        assert!(p.validate().is_ok());
        assert_eq!(p.topics.len(), topics::all_shards().len());
    }
}
