//! `chorus-rogue`: a hostile peer for the test network (a test tool, not part of Chorus).
//!
//! It is a real libp2p peer speaking Chorus's protocols as PROTOCOL.md §12–13 define them:
//! TCP with noise and yamux, identify announcing `/chorus/1.3.0`, gossipsub with anonymous
//! messages on the shards of §12.1, and the sync request protocol `/chorus/sync/2`. It dials
//! the nodes it is given and attacks them, one fresh peer identity per attack (a ban of one
//! does not stop the next), all attacks at once:
//!
//! - `forged`: well-formed records that are not what they claim: a wrong signature, a valid
//!   signature by another key than the claimed author, a record carrying another record's
//!   signature (id mismatch);
//! - `malformed`: garbage bytes, truncated and trailing-byte wire forms, a non-shortest
//!   head, and signed records that break a rule: rating 9, a control character, version 2,
//!   a topic other than their kind's, created three days ahead, created an hour ahead
//!   (refused, not blamed), and a producer's response by someone else (a kind rule);
//! - `oversized`: records over the protocol's 4096-byte limit;
//! - `huge`: messages over gossipsub's transmit limit (64 KiB) and over 1 MiB;
//! - `replay`: genuine records captured from gossip, published again many times (and served
//!   to the nodes' pulls): each must be stored once and counted once; this identity does
//!   nothing wrong otherwise and stays connected;
//! - `flood`: thousands of forged records a second, each costing a signature check, from
//!   up to `--sybils` identities, each starting as soon as the one before is cut off (in
//!   `--lanes` such sequences at once);
//! - `impersonate`: the same, claiming the honest authors given with `--victim` (their
//!   records must still get through);
//! - `sync-flood`: a burst of sync requests at once, then as many as are answered for the
//!   flood's duration, then oversized (over 1 MiB) and malformed requests;
//! - `sync-oversized`: only sync requests over 1 MiB, for the flood's duration;
//! - `sync-serve`: answers the nodes' pulls with forged records.
//!
//! It prints one JSON summary on stdout: per identity, what it sent (counts, the ids of the
//! well-formed rogue records), each node's answers, when each node disconnected it, and
//! whether redials were refused (a refused redial: the connection fails or is closed within
//! a second). Times are milliseconds since the rogue started.
//!
//! ```text
//! chorus-rogue --target /ip4/10.0.0.1/tcp/7470/p2p/12D3... [--target ...]
//!     --producer KEY [--petition ID] [--victim KEY ...] [--attacks a,b,...]
//!     [--flood-secs 5] [--rate 2000] [--sybils 3] [--lanes 1] [--replay-times 50]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_protocol::sync::reconcile::{Bound, Mode, Part};
use chorus_protocol::sync::wire::{Request, Response};
use chorus_protocol::{
    cbor, sign, AuthorKey, Body, Endorsement, ProductRef, Record, RecordId, Response as Answer,
    ResponseStatus, Review, SigningKey, Topic,
};
use ed25519_dalek::Signer;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use serde_json::{json, Value};

/// What Chorus nodes announce (PROTOCOL.md §12).
const IDENTIFY: &str = "/chorus/1.3.0";
/// The sync protocol (§13.1).
const SYNC: &str = "/chorus/sync/2";
/// The meta shard (§12.1).
const META: &str = "chorus/v1/meta";
/// Largest sync answer read (§13.1).
const MAX_RESPONSE: usize = 5 * 1024 * 1024;

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chorus-rogue: {e}\n{}", USAGE);
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let summary = rt.block_on(run(Arc::new(args)));
    println!("{summary}");
}

const USAGE: &str = "usage: chorus-rogue --target MULTIADDR [--target ...] --producer KEY \
[--petition ID] [--victim KEY ...] [--attacks forged,malformed,oversized,huge,replay,flood,\
impersonate,sync-flood,sync-oversized,sync-serve] [--flood-secs S] [--rate N] [--sybils N] [--lanes N] \
[--replay-times N]";

/// Every attack, in the order they are reported.
const ATTACKS: [&str; 10] = [
    "forged",
    "malformed",
    "oversized",
    "huge",
    "replay",
    "flood",
    "impersonate",
    "sync-flood",
    "sync-oversized",
    "sync-serve",
];

struct Args {
    targets: Vec<Multiaddr>,
    attacks: Vec<String>,
    producer: AuthorKey,
    petition: Option<RecordId>,
    victims: Vec<AuthorKey>,
    flood_secs: f64,
    rate: u32,
    sybils: usize,
    lanes: usize,
    replay_times: u32,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut a = Args {
            targets: Vec::new(),
            attacks: ATTACKS.iter().map(|s| s.to_string()).collect(),
            producer: AuthorKey([0; 32]),
            petition: None,
            victims: Vec::new(),
            flood_secs: 5.0,
            rate: 2000,
            sybils: 3,
            lanes: 1,
            replay_times: 50,
        };
        let mut producer = false;
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}");
            match flag.as_str() {
                "--target" => {
                    let addr: Multiaddr = value()?.parse().map_err(|e| bad(&e))?;
                    if peer_of(&addr).is_none() {
                        return Err(format!("{addr}: must end in /p2p/PEERID"));
                    }
                    a.targets.push(addr);
                }
                "--attacks" => {
                    a.attacks = value()?.split(',').map(str::to_string).collect();
                    if let Some(x) = a.attacks.iter().find(|x| !ATTACKS.contains(&x.as_str())) {
                        return Err(format!("unknown attack {x}"));
                    }
                }
                "--producer" => {
                    a.producer = value()?.parse().map_err(|e| bad(&e))?;
                    producer = true;
                }
                "--petition" => a.petition = Some(value()?.parse().map_err(|e| bad(&e))?),
                "--victim" => a.victims.push(value()?.parse().map_err(|e| bad(&e))?),
                "--flood-secs" => a.flood_secs = value()?.parse().map_err(|e| bad(&e))?,
                "--rate" => a.rate = value()?.parse().map_err(|e| bad(&e))?,
                "--sybils" => a.sybils = value()?.parse().map_err(|e| bad(&e))?,
                "--lanes" => a.lanes = value()?.parse().map_err(|e| bad(&e))?,
                "--replay-times" => a.replay_times = value()?.parse().map_err(|e| bad(&e))?,
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if a.targets.is_empty() || !producer {
            return Err("--target and --producer are required".into());
        }
        if a.victims.is_empty() {
            a.victims.push(a.producer);
        }
        a.lanes = a.lanes.max(1);
        a.sybils = a.sybils.max(a.lanes);
        Ok(a)
    }
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Records, genuine and not.

/// Deterministic-looking but fresh bytes: BLAKE3's output stream from a counter and the
/// process's start.
fn noise_bytes(n: usize) -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = blake3::Hasher::new();
    h.update(&c.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&now_ms().to_le_bytes());
    let mut out = vec![0u8; n];
    h.finalize_xof().fill(&mut out);
    out
}

fn fresh_key() -> SigningKey {
    let seed: [u8; 32] = noise_bytes(32).try_into().expect("32 bytes");
    SigningKey::from_bytes(&seed)
}

fn key_of(k: &SigningKey) -> AuthorKey {
    AuthorKey(k.verifying_key().to_bytes())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The gossipsub shard a record topic travels on (PROTOCOL.md §12.1).
fn shard_of(topic: &Topic) -> String {
    let bucket = |b: &[u8; 32], n: u16| {
        let h = blake3::hash(b);
        u16::from_le_bytes([h.as_bytes()[0], h.as_bytes()[1]]) % n
    };
    match topic {
        Topic::Meta => META.to_string(),
        Topic::Producer(k) => format!("chorus/v1/p/{:02}", bucket(k.as_bytes(), 32)),
        Topic::Group(g) => format!("chorus/v1/g/{:02}", bucket(g.as_bytes(), 8)),
    }
}

fn all_shards() -> Vec<String> {
    let mut s: Vec<String> = (0..32).map(|i| format!("chorus/v1/p/{i:02}")).collect();
    s.extend((0..8).map(|i| format!("chorus/v1/g/{i:02}")));
    s.push(META.into());
    s
}

/// A review record (unchecked: any field may break the rules).
fn review(author: AuthorKey, producer: AuthorKey, rating: u8, text: String, at: u64) -> Record {
    Record {
        v: 1,
        author,
        created_at: at,
        topic: Topic::Producer(producer),
        body: Body::Review(Review {
            product: ProductRef {
                producer,
                code: "rogue-1".into(),
            },
            rating,
            title: None,
            text,
        }),
    }
}

/// The wire form of `record` signed by `key` (whoever the record claims as author), and its
/// id.
fn signed(record: &Record, key: &SigningKey) -> (Vec<u8>, RecordId) {
    let bytes = cbor::encode_record(record);
    let id = RecordId::of(&bytes);
    let sig = key.sign(&sign::message(&id)).to_bytes();
    (cbor::encode_wire(&bytes, &sig), id)
}

/// One rogue message: what it is, its bytes, the shard it goes to, and its record id when
/// it has one (its record bytes decode).
struct Forged {
    what: &'static str,
    wire: Vec<u8>,
    shard: String,
    id: Option<RecordId>,
}

fn forged(what: &'static str, wire: Vec<u8>, topic: &Topic, id: Option<RecordId>) -> Forged {
    Forged {
        what,
        wire,
        shard: shard_of(topic),
        id,
    }
}

/// Records that are not what they claim.
fn forged_set(c: &Ctx, k: &SigningKey) -> Vec<Forged> {
    let me = key_of(k);
    let p = c.args.producer;
    let topic = Topic::Producer(p);
    let now = now_ms();
    let mut out = Vec::new();
    for (n, victim) in c.args.victims.iter().take(4).enumerate() {
        let (mut w, id) = signed(&review(me, p, 5, format!("Wrong signature {n}"), now), k);
        let n = w.len();
        // A byte of S's low half: S stays canonical, the equation fails.
        w[n - 24] ^= 0x01;
        out.push(forged("wrong-signature", w, &topic, Some(id)));
        let rec = review(*victim, p, 1, "Signed by another key".into(), now);
        let (w, id) = signed(&rec, k);
        out.push(forged("wrong-author", w, &topic, Some(id)));
        let (a, _) = signed(&review(me, p, 2, format!("First {n}"), now), k);
        let b = cbor::encode_record(&review(me, p, 2, format!("Second {n}"), now));
        let sig: [u8; 64] = a[a.len() - 64..].try_into().expect("64 bytes");
        out.push(forged(
            "id-mismatch",
            cbor::encode_wire(&b, &sig),
            &topic,
            Some(RecordId::of(&b)),
        ));
        if let Some(petition) = c.args.petition {
            let rec = Record {
                v: 1,
                author: *victim,
                created_at: now,
                topic,
                body: Body::Endorsement(Endorsement {
                    petition,
                    comment: None,
                    pledge: None,
                }),
            };
            let (w, id) = signed(&rec, k);
            out.push(forged("forged-endorsement", w, &topic, Some(id)));
        }
    }
    out
}

/// Bytes that are not a valid record at all, and signed records that break a rule.
fn malformed_set(c: &Ctx, k: &SigningKey) -> Vec<Forged> {
    let me = key_of(k);
    let p = c.args.producer;
    let topic = Topic::Producer(p);
    let now = now_ms();
    let mut out = Vec::new();
    for n in [1, 40, 300, 2000] {
        out.push(forged("garbage", noise_bytes(n), &topic, None));
    }
    let (good, id) = signed(&review(me, p, 4, "Fine".into(), now), k);
    out.push(forged(
        "truncated",
        good[..good.len() / 2].to_vec(),
        &topic,
        None,
    ));
    out.push(forged(
        "truncated-signature",
        good[..good.len() - 10].to_vec(),
        &topic,
        None,
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    out.push(forged("trailing-bytes", trailing, &topic, None));
    // The record's head written with four length bytes where fewer do.
    if let Ok((range, sig)) = cbor::split_wire(&good) {
        let rec = &good[range];
        let mut long_head = vec![0x82, 0x5a];
        long_head.extend_from_slice(&(rec.len() as u32).to_be_bytes());
        long_head.extend_from_slice(rec);
        long_head.extend_from_slice(&[0x58, 0x40]);
        long_head.extend_from_slice(&sig);
        out.push(forged("non-shortest-head", long_head, &topic, Some(id)));
    }
    let signed_bad = |what, rec: Record| {
        let (w, id) = signed(&rec, k);
        forged(what, w, &rec.topic, Some(id))
    };
    out.push(signed_bad("rating-9", review(me, p, 9, "Nine".into(), now)));
    out.push(signed_bad(
        "control-character",
        review(me, p, 3, "Bell\u{7}".into(), now),
    ));
    let mut v2 = review(me, p, 3, "Version two".into(), now);
    v2.v = 2;
    out.push(signed_bad("version-2", v2));
    out.push(signed_bad(
        "far-future",
        review(me, p, 3, "Three days ahead".into(), now + 3 * 86_400_000),
    ));
    out.push(signed_bad(
        "near-future",
        review(me, p, 3, "An hour ahead".into(), now + 3_600_000),
    ));
    if let Some(petition) = c.args.petition {
        let answer = |topic| Record {
            v: 1,
            author: me,
            created_at: now,
            topic,
            body: Body::Response(Answer {
                target: petition,
                status: ResponseStatus::Accepted,
                text: "Accepted, says someone else".into(),
                root: None,
            }),
        };
        // On its author's topic it is well-formed; the node that holds the petition
        // refuses it (only the targeted producer answers).
        out.push(signed_bad(
            "response-by-another",
            answer(Topic::Producer(me)),
        ));
        // On the producer's topic it breaks the topic rule.
        out.push(signed_bad("response-topic-mismatch", answer(topic)));
    }
    out
}

fn oversized_set(c: &Ctx, k: &SigningKey) -> Vec<Forged> {
    let me = key_of(k);
    let p = c.args.producer;
    let topic = Topic::Producer(p);
    let rec = review(me, p, 5, "x".repeat(5000), now_ms());
    let (w, id) = signed(&rec, k);
    vec![
        forged("over-4096", w, &topic, Some(id)),
        forged("over-4096-garbage", noise_bytes(10_000), &topic, None),
    ]
}

fn huge_set(c: &Ctx, k: &SigningKey) -> Vec<Forged> {
    let me = key_of(k);
    let p = c.args.producer;
    let topic = Topic::Producer(p);
    let rec = review(me, p, 5, "y".repeat(70_000), now_ms());
    let (w, id) = signed(&rec, k);
    vec![
        forged("over-64KiB", w, &topic, Some(id)),
        forged("over-1MiB", noise_bytes(1_100_000), &topic, None),
    ]
}

/// Makes flood messages: distinct records (so no cache drops them) whose signature is a
/// real one of another record, so every one costs the receiver a full signature check.
struct Flood {
    key: SigningKey,
    authors: Vec<AuthorKey>,
    sig: [u8; 64],
    producer: AuthorKey,
    n: u64,
    shard: String,
}

impl Flood {
    fn new(c: &Ctx, authors: Vec<AuthorKey>) -> Flood {
        let key = fresh_key();
        let p = c.args.producer;
        let (w, _) = signed(&review(key_of(&key), p, 3, "seed".into(), now_ms()), &key);
        Flood {
            sig: w[w.len() - 64..].try_into().expect("64 bytes"),
            authors,
            key,
            producer: p,
            n: 0,
            shard: shard_of(&Topic::Producer(p)),
        }
    }

    fn next(&mut self) -> Vec<u8> {
        self.n += 1;
        let author = if self.authors.is_empty() {
            key_of(&self.key)
        } else {
            self.authors[self.n as usize % self.authors.len()]
        };
        let rec = review(
            author,
            self.producer,
            4,
            format!("flood {}", self.n),
            now_ms(),
        );
        cbor::encode_wire(&cbor::encode_record(&rec), &self.sig)
    }
}

// ---------------------------------------------------------------------------------------
// The peer.

/// Raw frames of the sync protocol: one request and one answer per stream, the request
/// written as given (oversized ones too).
#[derive(Clone, Default)]
struct Raw;

impl request_response::Codec for Raw {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(MAX_RESPONSE as u64).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn read_response<T>(&mut self, p: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_request(p, io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_request(p, io, res).await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<Raw>,
}

/// What the rogue shares between its identities.
struct Ctx {
    args: Arc<Args>,
    start: Instant,
    /// Genuine records seen on gossip, by id, for the replay.
    captured: Mutex<BTreeMap<RecordId, Vec<u8>>>,
}

impl Ctx {
    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// One node as one identity saw it.
#[derive(Default)]
struct Target {
    connected_ms: Option<u64>,
    disconnected_ms: Option<u64>,
    cause: Option<String>,
    connected: bool,
    subscribed: bool,
    redials: u32,
    redials_refused: u32,
    redials_accepted: u32,
    pulls: u64,
}

/// How this identity answers the nodes' pulls.
enum Serve {
    /// `busy` (never a fault).
    Busy,
    /// These records: ids offered to any reconciliation, wires to any fetch.
    Records(HashMap<RecordId, Vec<u8>>),
}

struct Peer {
    ctx: Arc<Ctx>,
    attack: String,
    swarm: Swarm<Behaviour>,
    targets: HashMap<PeerId, Target>,
    serve: Serve,
    gossip: u64,
    gossip_bytes: u64,
    publish_errors: BTreeMap<String, u64>,
    requests: u64,
    answers: BTreeMap<String, u64>,
    first_sent_ms: Option<u64>,
    records: Vec<Value>,
    /// Redials waiting for their verdict: target, and when its connection was made.
    redial_open: HashMap<PeerId, Instant>,
}

impl Peer {
    fn new(ctx: Arc<Ctx>, attack: &str) -> Peer {
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            // Received messages are never validated, so never forwarded: the rogue only
            // captures them.
            .validate_messages()
            // A fresh id per message: the rogue's own duplicate cache must not stop a
            // replay (the nodes compute the record id themselves).
            .message_id_fn(|_| gossipsub::MessageId::from(noise_bytes(16)))
            .max_transmit_size(2 * 1024 * 1024)
            .flood_publish(true)
            // No IHAVE gossip: its ids (fresh ones, above) would name no message the nodes
            // know, and unkept promises cost a peer its score.
            .gossip_lazy(0)
            .gossip_factor(0.0)
            .history_gossip(0)
            .connection_handler_queue_len(20_000)
            .build()
            .expect("gossipsub config");
        let swarm =
            libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
                .with_tokio()
                .with_tcp(
                    tcp::Config::default().nodelay(true),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .expect("tcp")
                .with_behaviour(|key| Behaviour {
                    identify: identify::Behaviour::new(
                        identify::Config::new(IDENTIFY.into(), key.public())
                            .with_agent_version("chorus-rogue".into()),
                    ),
                    gossipsub: gossipsub::Behaviour::new(
                        MessageAuthenticity::Anonymous,
                        gossip_config,
                    )
                    .expect("gossipsub"),
                    sync: request_response::Behaviour::with_codec(
                        Raw,
                        [(StreamProtocol::new(SYNC), ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(Duration::from_secs(10))
                            .with_max_concurrent_streams(1024),
                    ),
                })
                .expect("behaviour")
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
                .build();
        Peer {
            ctx,
            attack: attack.into(),
            swarm,
            targets: HashMap::new(),
            serve: Serve::Busy,
            gossip: 0,
            gossip_bytes: 0,
            publish_errors: BTreeMap::new(),
            requests: 0,
            answers: BTreeMap::new(),
            first_sent_ms: None,
            records: Vec::new(),
            redial_open: HashMap::new(),
        }
    }

    /// Dials every target, subscribes to every shard, and waits (at most `within`) until
    /// each node is connected and has told its subscriptions.
    async fn connect(&mut self, within: Duration) {
        for s in all_shards() {
            let _ = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&IdentTopic::new(s));
        }
        for addr in self.ctx.args.targets.clone() {
            if let Some(p) = peer_of(&addr) {
                self.targets.entry(p).or_default();
            }
            let _ = self.swarm.dial(addr);
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline && !self.targets.values().all(|t| t.subscribed) {
            self.pump(Duration::from_millis(50)).await;
        }
    }

    /// Nodes still connected.
    fn connected(&self) -> usize {
        self.targets.values().filter(|t| t.connected).count()
    }

    /// Drives the swarm for `d`.
    async fn pump(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let ev = tokio::select! {
                ev = self.swarm.select_next_some() => ev,
                _ = tokio::time::sleep_until(deadline) => return,
            };
            self.handle(ev);
        }
    }

    fn handle(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        let ms = self.ctx.ms();
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                if let Some(t) = self.targets.get_mut(&peer_id) {
                    t.connected = true;
                    t.connected_ms.get_or_insert(ms);
                    if t.disconnected_ms.is_some() {
                        self.redial_open.insert(peer_id, Instant::now());
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                if let Some(t) = self.targets.get_mut(&peer_id) {
                    t.connected = false;
                    if t.disconnected_ms.is_none() {
                        t.disconnected_ms = Some(ms);
                        t.cause = Some(match cause {
                            Some(e) => format!("{e}"),
                            None => "closed by the remote".into(),
                        });
                    }
                    if self.redial_open.remove(&peer_id).is_some() {
                        t.redials_refused += 1;
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(p), ..
            } => {
                if let Some(t) = self.targets.get_mut(&p) {
                    if t.disconnected_ms.is_some() {
                        t.redials_refused += 1;
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic,
            })) if topic == IdentTopic::new(META).hash() => {
                if let Some(t) = self.targets.get_mut(&peer_id) {
                    t.subscribed = true;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) => {
                if let Ok((range, _)) = cbor::split_wire(&message.data) {
                    let id = RecordId::of(&message.data[range]);
                    if let Ok(mut c) = self.ctx.captured.lock() {
                        c.entry(id).or_insert(message.data);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.handle_sync(e),
            _ => {}
        }
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
                if let Some(t) = self.targets.get_mut(&peer) {
                    t.pulls += 1;
                }
                let answer = match (&self.serve, Request::decode(&request)) {
                    (Serve::Records(r), Ok(Request::Reconcile(_))) => {
                        Response::Reconcile(vec![Part {
                            upper: Bound::End,
                            mode: Mode::Ids(r.keys().map(|id| id.0).collect()),
                        }])
                    }
                    (Serve::Records(r), Ok(Request::Fetch(ids))) => Response::Records(
                        ids.iter()
                            .filter_map(|id| r.get(&RecordId(*id)).cloned())
                            .collect(),
                    ),
                    _ => Response::error("busy", "rogue"),
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, answer.encode());
            }
            request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            } => {
                let what = match Response::decode(&response) {
                    Ok(Response::Error { code, .. }) => code,
                    Ok(Response::Reconcile(_)) => "reconcile".into(),
                    Ok(Response::Records(_)) => "records".into(),
                    Ok(Response::Found { .. }) => "found".into(),
                    // A stream reset by the node reads as an empty answer.
                    Err(_) if response.is_empty() => "reset".into(),
                    Err(_) => "undecodable".into(),
                };
                *self.answers.entry(what).or_default() += 1;
            }
            request_response::Event::OutboundFailure { error, .. } => {
                let what = match error {
                    request_response::OutboundFailure::ConnectionClosed => {
                        "failed: connection closed"
                    }
                    request_response::OutboundFailure::Timeout => "failed: timeout",
                    request_response::OutboundFailure::DialFailure => "failed: dial",
                    request_response::OutboundFailure::UnsupportedProtocols => {
                        "failed: unsupported"
                    }
                    _ => "failed: stream reset or error",
                };
                *self.answers.entry(what.into()).or_default() += 1;
            }
            _ => {}
        }
    }

    fn note_sent(&mut self) {
        let ms = self.ctx.ms();
        self.first_sent_ms.get_or_insert(ms);
    }

    /// Publishes on a shard, to every node subscribed to it (flood publishing).
    fn publish(&mut self, shard: &str, data: Vec<u8>) {
        self.note_sent();
        let n = data.len() as u64;
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(shard), data)
        {
            Ok(_) => {
                self.gossip += 1;
                self.gossip_bytes += n;
            }
            Err(e) => {
                let key = format!("{e:?}");
                let key = key.split('(').next().unwrap_or("error").to_string();
                *self.publish_errors.entry(key).or_default() += 1;
            }
        }
    }

    /// Publishes a set of rogue messages, noting their ids.
    async fn publish_set(&mut self, set: Vec<Forged>) {
        for f in set {
            self.records.push(json!({
                "what": f.what,
                "id": f.id.map(|i| i.to_string()),
                "bytes": f.wire.len(),
            }));
            self.publish(&f.shard, f.wire);
        }
    }

    /// Sends a sync request to every connected node.
    fn request_all(&mut self, bytes: &[u8]) {
        self.note_sent();
        let peers: Vec<PeerId> = self
            .targets
            .iter()
            .filter(|(_, t)| t.connected)
            .map(|(p, _)| *p)
            .collect();
        for p in peers {
            self.requests += 1;
            self.swarm
                .behaviour_mut()
                .sync
                .send_request(&p, bytes.to_vec());
        }
    }

    /// Waits up to `d` for every node to have disconnected this identity.
    async fn await_disconnect(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while self.connected() > 0 && Instant::now() < deadline {
            self.pump(Duration::from_millis(50)).await;
        }
    }

    /// Dials again, twice, every node that disconnected this identity: a refusal is a dial
    /// that fails or a connection closed within a second.
    async fn redial(&mut self) {
        for _ in 0..2 {
            let gone: Vec<PeerId> = self
                .targets
                .iter()
                .filter(|(_, t)| t.disconnected_ms.is_some() && !t.connected)
                .map(|(p, _)| *p)
                .collect();
            if gone.is_empty() {
                return;
            }
            for p in &gone {
                if let Some(addr) = self
                    .ctx
                    .args
                    .targets
                    .iter()
                    .find(|a| peer_of(a) == Some(*p))
                {
                    if let Some(t) = self.targets.get_mut(p) {
                        t.redials += 1;
                    }
                    let _ = self.swarm.dial(addr.clone());
                }
            }
            self.pump(Duration::from_millis(1200)).await;
            // Still open after a second: the node took it back.
            for p in std::mem::take(&mut self.redial_open).into_keys() {
                if let Some(t) = self.targets.get_mut(&p) {
                    t.redials_accepted += 1;
                }
            }
        }
    }

    fn report(&self) -> Value {
        let mut targets: Vec<Value> = self
            .targets
            .iter()
            .map(|(p, t)| {
                json!({
                    "peer_id": p.to_string(),
                    "connected_ms": t.connected_ms,
                    "disconnected_ms": t.disconnected_ms,
                    "cause": t.cause,
                    "connected_at_end": t.connected,
                    "redials": t.redials,
                    "redials_refused": t.redials_refused,
                    "redials_accepted": t.redials_accepted,
                    "pulls_answered": t.pulls,
                })
            })
            .collect();
        targets.sort_by_key(|t| t["peer_id"].as_str().unwrap_or("").to_string());
        json!({
            "attack": self.attack,
            "peer_id": self.swarm.local_peer_id().to_string(),
            "first_sent_ms": self.first_sent_ms,
            "ended_ms": self.ctx.ms(),
            "gossip_sent": self.gossip,
            "gossip_bytes": self.gossip_bytes,
            "publish_errors": self.publish_errors,
            "requests_sent": self.requests,
            "answers": self.answers,
            "records": self.records,
            "targets": targets,
        })
    }

    /// Waits for the nodes to cut this identity off (at most `settle`), tries to come back,
    /// and reports.
    async fn finish(mut self, settle: Duration) -> Value {
        self.await_disconnect(settle).await;
        self.redial().await;
        self.report()
    }
}

// ---------------------------------------------------------------------------------------
// The attacks.

const CONNECT: Duration = Duration::from_secs(5);
const SETTLE: Duration = Duration::from_secs(4);

/// Sends sets of rogue messages from a fresh identity, a new set (new bytes, so that no
/// duplicate cache drops them) every 300 ms until every node has cut it off, `rounds`
/// sets at most, or until the floods are over and a few seconds more (a node that is
/// flooded ignores, unjudged, what it has no room for).
async fn set_attack(
    ctx: Arc<Ctx>,
    attack: &str,
    make: fn(&Ctx, &SigningKey) -> Vec<Forged>,
    rounds: usize,
) -> Vec<Value> {
    let mut peer = Peer::new(ctx.clone(), attack);
    peer.connect(CONNECT).await;
    let key = fresh_key();
    let end = Instant::now() + Duration::from_secs_f64(ctx.args.flood_secs + 4.0);
    for _ in 0..rounds {
        if peer.connected() == 0 || Instant::now() >= end {
            break;
        }
        peer.publish_set(make(&ctx, &key)).await;
        peer.pump(Duration::from_millis(300)).await;
    }
    vec![peer.finish(SETTLE).await]
}

/// Floods forged records for the flood's duration from up to `sybils` identities, one
/// after another: each floods until every node has cut it off, and the next starts at
/// once (a ban costs a rogue nothing but a fresh key). `authors`: whom the records claim
/// (empty: each identity's own key); then each identity opens with a burst of 300 records
/// for each author, more than a node lets one author publish at once.
async fn flood_attack(ctx: Arc<Ctx>, attack: &'static str, authors: Vec<AuthorKey>) -> Vec<Value> {
    let lanes: Vec<_> = (0..ctx.args.lanes)
        .map(|_| tokio::spawn(flood_lane(ctx.clone(), attack, authors.clone())))
        .collect();
    let mut out = Vec::new();
    for lane in lanes {
        out.extend(lane.await.unwrap_or_default());
    }
    out
}

/// One lane of a flood: its share of the identities, one after another.
async fn flood_lane(ctx: Arc<Ctx>, attack: &'static str, authors: Vec<AuthorKey>) -> Vec<Value> {
    let a = &ctx.args;
    let end = Instant::now() + Duration::from_secs_f64(a.flood_secs);
    let tick = Duration::from_millis(20);
    let per_tick = (a.rate as f64 * tick.as_secs_f64() / a.lanes as f64).ceil() as usize;
    let mut done = Vec::new();
    for _ in 0..a.sybils.div_ceil(a.lanes) {
        if Instant::now() >= end {
            break;
        }
        let mut peer = Peer::new(ctx.clone(), attack);
        peer.connect(CONNECT).await;
        let mut flood = Flood::new(&ctx, authors.clone());
        let shard = flood.shard.clone();
        for _ in 0..300 * authors.len() {
            let m = flood.next();
            peer.publish(&shard, m);
        }
        // One that starts near the end still floods long enough to be judged.
        let until = end.max(Instant::now() + Duration::from_secs(2));
        while Instant::now() < until && peer.connected() > 0 {
            for _ in 0..per_tick {
                let m = flood.next();
                peer.publish(&shard, m);
            }
            peer.pump(tick).await;
        }
        peer.records
            .push(json!({"what": "flood", "count": flood.n}));
        // Its redials are tried while the next identity floods.
        done.push(tokio::spawn(peer.finish(Duration::from_secs(2))));
    }
    let mut out = Vec::new();
    for d in done {
        out.extend(d.await.ok());
    }
    out
}

/// Replays the genuine records captured so far, `replay_times` each, spread over the
/// flood's duration; serves them to pulls too. Stays connected to the end of the run.
async fn replay_attack(ctx: Arc<Ctx>, done: tokio::sync::watch::Receiver<bool>) -> Vec<Value> {
    let mut peer = Peer::new(ctx.clone(), "replay");
    peer.connect(CONNECT).await;
    // Capture for a moment first.
    peer.pump(Duration::from_secs(2)).await;
    let a = ctx.args.clone();
    let mut times: BTreeMap<RecordId, u32> = BTreeMap::new();
    let rounds = a.replay_times.max(1);
    let gap = Duration::from_secs_f64(a.flood_secs / f64::from(rounds));
    for _ in 0..rounds {
        let captured: Vec<(RecordId, Vec<u8>)> = ctx
            .captured
            .lock()
            .map(|c| c.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default();
        peer.serve = Serve::Records(captured.iter().cloned().collect());
        for (id, wire) in captured {
            let Ok(rec) = chorus_protocol::SignedRecord::from_bytes(&wire) else {
                continue;
            };
            peer.publish(&shard_of(&rec.record().topic), wire);
            *times.entry(id).or_default() += 1;
        }
        peer.pump(gap).await;
    }
    for (id, n) in &times {
        peer.records
            .push(json!({"what": "replayed", "id": id.to_string(), "times": n}));
    }
    // Stay (and answer pulls with genuine records) until every other attack is over.
    let mut done = done;
    while !*done.borrow() {
        tokio::select! {
            _ = peer.pump(Duration::from_millis(200)) => {}
            _ = done.changed() => {}
        }
    }
    vec![peer.report()]
}

/// Sync requests: a burst at once, then as many as are answered for the flood's
/// duration, then oversized and malformed ones.
async fn sync_flood_attack(ctx: Arc<Ctx>) -> Vec<Value> {
    let mut peer = Peer::new(ctx.clone(), "sync-flood");
    peer.connect(CONNECT).await;
    let reconcile = Request::Reconcile(vec![Part {
        upper: Bound::End,
        mode: Mode::Have(Vec::new()),
    }])
    .encode();
    let fetch = Request::Fetch(
        (0..1024)
            .map(|_| noise_bytes(32).try_into().expect("32"))
            .collect(),
    )
    .encode();
    for i in 0..200 {
        peer.request_all(if i % 2 == 0 { &reconcile } else { &fetch });
    }
    let end = Instant::now() + Duration::from_secs_f64(ctx.args.flood_secs);
    // A quarter of the gossip flood's rate to each node: five times what a node admits.
    let per_tick = (ctx.args.rate as usize / 200).max(1);
    while Instant::now() < end && peer.connected() > 0 {
        for i in 0..per_tick {
            peer.request_all(if i % 2 == 0 { &reconcile } else { &fetch });
        }
        peer.pump(Duration::from_millis(20)).await;
    }
    // Let the answers come in, then break the rules.
    peer.pump(Duration::from_secs(1)).await;
    let oversized = noise_bytes(1024 * 1024 + 10);
    for _ in 0..3 {
        peer.request_all(&oversized);
    }
    peer.pump(Duration::from_secs(1)).await;
    for _ in 0..12 {
        peer.request_all(&noise_bytes(64));
        peer.pump(Duration::from_millis(50)).await;
    }
    peer.records
        .push(json!({"what": "sync-requests", "count": peer.requests}));
    vec![peer.finish(SETTLE).await]
}

/// Sync requests over the protocol's 1 MiB, for the flood's duration: every 100 ms, one to
/// each node for every 2000 of `--rate` (at most eight: a node's limit of open requests).
async fn sync_oversized_attack(ctx: Arc<Ctx>) -> Vec<Value> {
    let mut peer = Peer::new(ctx.clone(), "sync-oversized");
    peer.connect(CONNECT).await;
    let oversized = noise_bytes(1024 * 1024 + 10);
    let end = Instant::now() + Duration::from_secs_f64(ctx.args.flood_secs);
    let each = (ctx.args.rate as usize / 2000).clamp(1, 8);
    while Instant::now() < end && peer.connected() > 0 {
        for _ in 0..each {
            peer.request_all(&oversized);
        }
        peer.pump(Duration::from_millis(100)).await;
    }
    peer.records
        .push(json!({"what": "oversized-sync-requests", "count": peer.requests}));
    vec![peer.finish(SETTLE).await]
}

/// Answers the nodes' pulls (they pull on connect) with forged records.
async fn sync_serve_attack(ctx: Arc<Ctx>) -> Vec<Value> {
    let mut peer = Peer::new(ctx.clone(), "sync-serve");
    let key = fresh_key();
    let set = forged_set(&ctx, &key);
    for f in &set {
        peer.records
            .push(json!({"what": f.what, "id": f.id.map(|i| i.to_string()), "via": "sync"}));
    }
    peer.serve = Serve::Records(
        set.into_iter()
            .filter_map(|f| Some((f.id?, f.wire)))
            .collect(),
    );
    peer.connect(CONNECT).await;
    vec![peer.finish(Duration::from_secs(8)).await]
}

async fn run(args: Arc<Args>) -> Value {
    let ctx = Arc::new(Ctx {
        args: args.clone(),
        start: Instant::now(),
        captured: Mutex::new(BTreeMap::new()),
    });
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut tasks: Vec<(usize, tokio::task::JoinHandle<Vec<Value>>)> = Vec::new();
    let mut replay = None;
    for (order, attack) in ATTACKS.iter().enumerate() {
        if !args.attacks.iter().any(|a| a == attack) {
            continue;
        }
        let c = ctx.clone();
        let task = match *attack {
            "forged" => tokio::spawn(set_attack(c, "forged", forged_set, usize::MAX)),
            "malformed" => tokio::spawn(set_attack(c, "malformed", malformed_set, usize::MAX)),
            "oversized" => tokio::spawn(set_attack(c, "oversized", oversized_set, usize::MAX)),
            // Gossipsub drops a peer's gossip on a connection after five broken frames.
            "huge" => tokio::spawn(set_attack(c, "huge", huge_set, 3)),
            "replay" => {
                replay = Some(tokio::spawn(replay_attack(c, done_rx.clone())));
                continue;
            }
            "flood" => tokio::spawn(async move { flood_attack(c, "flood", Vec::new()).await }),
            "impersonate" => {
                let victims = args.victims.clone();
                tokio::spawn(async move { flood_attack(c, "impersonate", victims).await })
            }
            "sync-flood" => tokio::spawn(sync_flood_attack(c)),
            "sync-oversized" => tokio::spawn(sync_oversized_attack(c)),
            _ => tokio::spawn(sync_serve_attack(c)),
        };
        tasks.push((order, task));
    }
    let mut identities = Vec::new();
    for (_, t) in tasks {
        identities.extend(t.await.unwrap_or_default());
    }
    let _ = done_tx.send(true);
    if let Some(r) = replay {
        identities.extend(r.await.unwrap_or_default());
    }
    json!({
        "elapsed_ms": ctx.ms(),
        "targets": args.targets.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "identities": identities,
    })
}
