//! The inbound half of the request protocol: streams peers open to ask this node something,
//! admitted with their peer known before a byte of them is read.
//!
//! libp2p's request-response reads a request whole before anyone learns who sent it, and
//! bounds only the streams of one connection. Here every stream is first weighed against
//! its peer's rate and open streams and the node's open streams ([`InboundLimits`]); one
//! over a limit is answered `busy` unread. An admitted request is read in steps charged to
//! the peer's and the node's byte allowance (a step that does not fit: `busy`), handed up as
//! an [`InboundRequest`], and its answer is charged in turn until it has been written. So
//! whatever peers send, the requests and answers in memory stay within `total_bytes`, and no
//! peer holds more than `peer_bytes` of it. Outbound requests stay with request-response.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt, StreamExt};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, Stream, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::oneshot;
use tokio::time::{timeout_at, Instant};
use tracing::debug;

use crate::rate::Buckets;

/// Bytes of a request read (and charged) at first; each step doubles the buffer up to
/// [`READ_STEP`], so a small request is charged little more than its size.
const FIRST_STEP: usize = 4 * 1024;
/// Most bytes of a request read (and charged) at a time.
const READ_STEP: usize = 64 * 1024;
/// `busy` answers being written on one connection at once; streams refused beyond that are
/// reset without an answer.
const MAX_REFUSING: usize = 8;
/// How long a `busy` answer may take to write.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Peers remembered by the rate limit at once.
const MAX_RATED_PEERS: usize = 10_000;

/// How much peers may ask of this node at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundLimits {
    /// Streams one peer may have open at once (being read, waiting for their answer, or
    /// having it written), over all its connections.
    pub peer_streams: usize,
    /// Streams open at once, all peers together.
    pub total_streams: usize,
    /// Streams one peer may open per second (bursts of ten times that).
    pub peer_rate: u32,
    /// Bytes of requests and answers one peer may have in memory at once.
    pub peer_bytes: usize,
    /// Bytes of requests and answers in memory at once, all peers together.
    pub total_bytes: usize,
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Rate,
    PeerStreams,
    TotalStreams,
}

#[derive(Debug, Default)]
struct Use {
    streams: usize,
    bytes: usize,
}

#[derive(Debug)]
struct LedgerState {
    streams: usize,
    bytes: usize,
    peers: HashMap<PeerId, Use>,
    rates: Buckets<PeerId>,
}

/// What every connection's handler admits and charges against: streams and bytes in use,
/// per peer and in all.
#[derive(Debug)]
pub(crate) struct Ledger {
    limits: InboundLimits,
    busy: Vec<u8>,
    state: Mutex<LedgerState>,
    /// Requests answered `busy` (or reset unanswered) for want of room, since start.
    refused: Arc<AtomicU64>,
}

impl Ledger {
    fn new(limits: InboundLimits, busy: Vec<u8>) -> Arc<Self> {
        Arc::new(Ledger {
            limits,
            busy,
            state: Mutex::new(LedgerState {
                streams: 0,
                bytes: 0,
                peers: HashMap::new(),
                rates: Buckets::new(limits.peer_rate, MAX_RATED_PEERS),
            }),
            refused: Arc::default(),
        })
    }

    /// Counts a request refused.
    fn refuse(&self) {
        super::counters::bump(&self.refused);
    }

    fn state(&self) -> MutexGuard<'_, LedgerState> {
        // Nothing is left half-updated under this lock, so a poisoned one is still sound.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new stream from `peer`, or says why not.
    fn admit(self: &Arc<Self>, peer: PeerId) -> Result<Slot, Refusal> {
        let mut s = self.state();
        if !s.rates.take(peer) {
            return Err(Refusal::Rate);
        }
        if s.streams >= self.limits.total_streams {
            return Err(Refusal::TotalStreams);
        }
        let u = s.peers.entry(peer).or_default();
        if u.streams >= self.limits.peer_streams {
            return Err(Refusal::PeerStreams);
        }
        u.streams += 1;
        s.streams += 1;
        Ok(Slot {
            ledger: self.clone(),
            peer,
        })
    }

    /// Streams and bytes in use now: `(streams, bytes)`.
    #[cfg(test)]
    fn in_use(&self) -> (usize, usize) {
        let s = self.state();
        (s.streams, s.bytes)
    }
}

fn forget_if_idle(s: &mut LedgerState, peer: &PeerId) {
    if s.peers
        .get(peer)
        .is_some_and(|u| u.streams == 0 && u.bytes == 0)
    {
        s.peers.remove(peer);
    }
}

/// An admitted stream: counted until dropped.
#[derive(Debug)]
struct Slot {
    ledger: Arc<Ledger>,
    peer: PeerId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.ledger.state();
        s.streams = s.streams.saturating_sub(1);
        if let Some(u) = s.peers.get_mut(&self.peer) {
            u.streams = u.streams.saturating_sub(1);
        }
        forget_if_idle(&mut s, &self.peer);
    }
}

/// Bytes of a request or an answer held in memory, charged to its peer and the node until
/// dropped.
#[derive(Debug)]
pub(crate) struct Held {
    ledger: Arc<Ledger>,
    peer: PeerId,
    bytes: usize,
}

impl Held {
    fn new(ledger: Arc<Ledger>, peer: PeerId) -> Self {
        Held {
            ledger,
            peer,
            bytes: 0,
        }
    }

    /// Charges `n` more bytes, if both allowances have room for them.
    fn grow(&mut self, n: usize) -> bool {
        let limits = self.ledger.limits;
        let mut s = self.ledger.state();
        let peer_bytes = s.peers.get(&self.peer).map_or(0, |u| u.bytes);
        let fits = |used: usize, max: usize| used.checked_add(n).is_some_and(|t| t <= max);
        if !fits(s.bytes, limits.total_bytes) || !fits(peer_bytes, limits.peer_bytes) {
            return false;
        }
        s.bytes += n;
        s.peers.entry(self.peer).or_default().bytes += n;
        self.bytes += n;
        true
    }

    /// Charges exactly `n` bytes from now on (`n` no more than is charged).
    fn shrink_to(&mut self, n: usize) {
        let freed = self.bytes.saturating_sub(n);
        if freed == 0 {
            return;
        }
        let mut s = self.ledger.state();
        s.bytes = s.bytes.saturating_sub(freed);
        if let Some(u) = s.peers.get_mut(&self.peer) {
            u.bytes = u.bytes.saturating_sub(freed);
        }
        forget_if_idle(&mut s, &self.peer);
        self.bytes -= freed;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

/// Where the answer to an inbound request goes.
#[derive(Debug)]
pub struct Reply {
    tx: oneshot::Sender<(Vec<u8>, Held)>,
    /// The request's bytes, charged until it is answered.
    held: Held,
}

impl Reply {
    /// Sends the answer, charged to the asker's allowance until it has been written. An
    /// answer the allowance has no room for is replaced by the protocol's `busy`, which the
    /// asker retries.
    pub(crate) fn send(self, response: Vec<u8>) {
        let Reply { tx, mut held } = self;
        held.shrink_to(0);
        let response = if held.grow(response.len()) {
            response
        } else {
            debug!(peer = %held.peer, bytes = response.len(), "answer over the allowance, answered busy");
            held.ledger.refuse();
            held.ledger.busy.clone()
        };
        let _ = tx.send((response, held));
    }

    /// Has the asker gone (stream reset, timed out, connection closed)? Then nobody reads
    /// an answer.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A request from a peer, to answer with [`crate::net::Client::respond`].
#[derive(Debug)]
pub struct InboundRequest {
    /// Who asks.
    pub peer: PeerId,
    /// The request's bytes.
    pub request: Vec<u8>,
    /// Hand back with the answer.
    pub reply: Reply,
}

/// What became of a stream.
enum Done {
    /// Its request was read whole: the handler hands it up.
    Read(Box<Read>),
    /// Answered (or reset): the stream is gone.
    Finished,
    /// Refused unread.
    Refused,
}

/// A request read whole.
struct Read {
    request: Vec<u8>,
    held: Held,
    slot: Slot,
    stream: Stream,
    deadline: Instant,
}

enum ReadError {
    /// The allowance has no room for the next step.
    Busy,
    /// Over the protocol's size limit, or the stream failed.
    Broken,
}

/// Reads a request to its end (the asker closes its side), each step charged before it is
/// allocated, never more than `max` bytes.
async fn read_request(
    stream: &mut Stream,
    max: usize,
    held: &mut Held,
) -> Result<Vec<u8>, ReadError> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let len = buf.len();
        if len == buf.capacity() {
            if len > max {
                return Err(ReadError::Broken);
            }
            // One byte past `max` tells a request that is too large.
            let step = len.clamp(FIRST_STEP, READ_STEP).min(max + 1 - len);
            if !held.grow(step) {
                return Err(ReadError::Busy);
            }
            buf.reserve_exact(step);
        }
        let cap = buf.capacity();
        buf.resize(cap, 0);
        let n = match stream.read(&mut buf[len..]).await {
            Ok(n) => n,
            Err(_) => return Err(ReadError::Broken),
        };
        buf.truncate(len + n);
        if n == 0 {
            break;
        }
    }
    if buf.len() > max {
        return Err(ReadError::Broken);
    }
    buf.shrink_to_fit();
    held.shrink_to(buf.capacity());
    Ok(buf)
}

async fn write_answer(stream: &mut Stream, answer: &[u8]) -> std::io::Result<()> {
    stream.write_all(answer).await?;
    stream.close().await
}

/// Refuses a stream unread: `busy`, then close.
async fn refuse(mut stream: Stream, busy: Vec<u8>) -> Done {
    let _ = timeout_at(
        Instant::now() + REFUSAL_TIMEOUT,
        write_answer(&mut stream, &busy),
    )
    .await;
    Done::Refused
}

/// Reads an admitted stream's request, or refuses it.
async fn read(mut stream: Stream, slot: Slot, max: usize, timeout: Duration) -> Done {
    let deadline = Instant::now() + timeout;
    let mut held = Held::new(slot.ledger.clone(), slot.peer);
    match timeout_at(deadline, read_request(&mut stream, max, &mut held)).await {
        Ok(Ok(request)) => Done::Read(Box::new(Read {
            request,
            held,
            slot,
            stream,
            deadline,
        })),
        Ok(Err(ReadError::Busy)) => {
            debug!(peer = %slot.peer, "request over the allowance, answered busy unread");
            slot.ledger.refuse();
            drop(held);
            let busy = slot.ledger.busy.clone();
            let _ = timeout_at(deadline, write_answer(&mut stream, &busy)).await;
            Done::Finished
        }
        // Dropping the stream resets it.
        Ok(Err(ReadError::Broken)) | Err(_) => Done::Finished,
    }
}

/// Writes the answer when it comes, then lets the stream and its slot go.
async fn answer(
    mut stream: Stream,
    rx: oneshot::Receiver<(Vec<u8>, Held)>,
    slot: Slot,
    deadline: Instant,
) -> Done {
    let _ = timeout_at(deadline, async {
        match rx.await {
            Ok((answer, _held)) => write_answer(&mut stream, &answer).await,
            // Nobody answers (the node stops): the asker sees the stream end.
            Err(_) => stream.close().await,
        }
    })
    .await;
    drop(slot);
    Done::Finished
}

/// What the handlers share: the protocol and the ledger.
#[derive(Debug)]
struct Shared {
    protocol: StreamProtocol,
    max_request: usize,
    timeout: Duration,
    ledger: Arc<Ledger>,
}

/// Inbound requests on one connection.
pub struct Handler {
    peer: PeerId,
    shared: Arc<Shared>,
    /// Streams being read, answered or refused.
    streams: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Of those, the ones being refused.
    refusing: usize,
}

/// A request read on a connection, for the behaviour to report.
#[derive(Debug)]
pub struct Inbound {
    request: Vec<u8>,
    reply: Reply,
}

impl Handler {
    fn on_stream(&mut self, stream: Stream) {
        match self.shared.ledger.admit(self.peer) {
            Ok(slot) => self
                .streams
                .push(read(stream, slot, self.shared.max_request, self.shared.timeout).boxed()),
            Err(why) => {
                debug!(peer = %self.peer, ?why, "inbound request refused unread");
                self.shared.ledger.refuse();
                // Past that many, dropping the stream resets it.
                if self.refusing < MAX_REFUSING {
                    self.refusing += 1;
                    let busy = self.shared.ledger.busy.clone();
                    self.streams.push(refuse(stream, busy).boxed());
                }
            }
        }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Inbound;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(self.shared.protocol.clone()), ())
    }

    fn connection_keep_alive(&self) -> bool {
        !self.streams.is_empty()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        while let Poll::Ready(Some(done)) = self.streams.poll_next_unpin(cx) {
            let read = match done {
                Done::Read(read) => read,
                Done::Finished => continue,
                Done::Refused => {
                    self.refusing = self.refusing.saturating_sub(1);
                    continue;
                }
            };
            let Read {
                request,
                held,
                slot,
                stream,
                deadline,
            } = *read;
            let (tx, rx) = oneshot::channel();
            self.streams
                .push(answer(stream, rx, slot, deadline).boxed());
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(Inbound {
                request,
                reply: Reply { tx, held },
            }));
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: stream,
            ..
        }) = event
        {
            self.on_stream(stream);
        }
    }
}

/// Accepts the request protocol's inbound streams on every connection.
pub struct Behaviour {
    shared: Arc<Shared>,
    events: VecDeque<InboundRequest>,
}

impl Behaviour {
    /// Serves `protocol` (requests of at most `max_request` bytes, each stream open at most
    /// `timeout`), answering `busy` beyond `limits`.
    pub(crate) fn new(
        protocol: StreamProtocol,
        max_request: usize,
        timeout: Duration,
        limits: InboundLimits,
        busy: Vec<u8>,
    ) -> Self {
        Behaviour {
            shared: Arc::new(Shared {
                protocol,
                max_request,
                timeout,
                ledger: Ledger::new(limits, busy),
            }),
            events: VecDeque::new(),
        }
    }

    /// The count of requests refused for want of room (answered `busy`, or reset beyond
    /// the refusals one connection may be writing), shared.
    pub(crate) fn refused(&self) -> Arc<AtomicU64> {
        self.shared.ledger.refused.clone()
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            shared: self.shared.clone(),
            streams: FuturesUnordered::new(),
            refusing: 0,
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = InboundRequest;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        _: ConnectionId,
        Inbound { request, reply }: THandlerOutEvent<Self>,
    ) {
        self.events.push_back(InboundRequest {
            peer,
            request,
            reply,
        });
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.events.pop_front() {
            Some(e) => Poll::Ready(ToSwarm::GenerateEvent(e)),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> InboundLimits {
        InboundLimits {
            peer_streams: 2,
            total_streams: 3,
            peer_rate: 1_000,
            peer_bytes: 100,
            total_bytes: 150,
        }
    }

    #[test]
    fn streams_are_admitted_per_peer_and_in_all_until_dropped() {
        let ledger = Ledger::new(limits(), b"busy".to_vec());
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = ledger.admit(a).unwrap();
        let a2 = ledger.admit(a).unwrap();
        assert_eq!(ledger.admit(a).unwrap_err(), Refusal::PeerStreams);
        let b1 = ledger.admit(b).unwrap();
        assert_eq!(ledger.admit(b).unwrap_err(), Refusal::TotalStreams);
        drop(a1);
        let a3 = ledger.admit(a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(ledger.in_use(), (0, 0));
        assert!(ledger.state().peers.is_empty(), "idle peers are forgotten");
    }

    #[test]
    fn a_peer_over_its_rate_is_refused() {
        let ledger = Ledger::new(
            InboundLimits {
                peer_rate: 1,
                ..limits()
            },
            Vec::new(),
        );
        let a = PeerId::random();
        // A burst of ten times the rate, then nothing until tokens come back.
        for _ in 0..10 {
            drop(ledger.admit(a).unwrap());
        }
        assert_eq!(ledger.admit(a).unwrap_err(), Refusal::Rate);
        assert!(ledger.admit(PeerId::random()).is_ok());
    }

    #[test]
    fn bytes_are_charged_per_peer_and_in_all_until_dropped() {
        let ledger = Ledger::new(limits(), Vec::new());
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut ha = Held::new(ledger.clone(), a);
        assert!(ha.grow(60));
        assert!(ha.grow(40));
        assert!(!ha.grow(1), "over the peer's allowance");
        let mut hb = Held::new(ledger.clone(), b);
        assert!(hb.grow(50));
        assert!(!hb.grow(1), "over the total allowance");
        ha.shrink_to(10);
        assert!(
            hb.grow(50),
            "room again once the other peer gave bytes back"
        );
        assert_eq!(ledger.in_use(), (0, 110));
        drop(ha);
        drop(hb);
        assert_eq!(ledger.in_use(), (0, 0));
        assert!(ledger.state().peers.is_empty());
    }

    #[test]
    fn an_answer_over_the_allowance_becomes_busy() {
        let ledger = Ledger::new(limits(), b"busy".to_vec());
        let a = PeerId::random();
        let mut held = Held::new(ledger.clone(), a);
        assert!(held.grow(80));
        let (tx, mut rx) = oneshot::channel();
        Reply { tx, held }.send(vec![0; 101]);
        let (answer, held) = rx.try_recv().unwrap();
        assert_eq!(answer, b"busy");
        assert_eq!(held.bytes, 0, "the request's bytes were released");
        let (tx, mut rx) = oneshot::channel();
        Reply {
            tx,
            held: Held::new(ledger.clone(), a),
        }
        .send(vec![0; 100]);
        let (answer, held) = rx.try_recv().unwrap();
        assert_eq!(answer.len(), 100);
        assert_eq!(ledger.in_use(), (0, 100), "charged until written");
        drop(held);
        assert_eq!(ledger.in_use(), (0, 0));
    }
}
