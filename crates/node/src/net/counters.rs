//! Figures the network keeps as it runs, read without asking its event loop
//! ([`crate::net::Client::counts`]; the metrics endpoint's figures).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The network's figures: peers now, and what it counted since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounts {
    /// Peers connected now.
    pub peers: u64,
    /// Peers refused now for misbehaving (until their ban ends).
    pub banned: u64,
    /// Faults counted against peers since start: gossip records rejected as invalid, and
    /// faults others reported (malformed sync messages, forged records in a pull or a
    /// search, waiting records that never resolve): [`crate::net::NetStatus::rejected`].
    pub faults: u64,
    /// Gossip messages dropped unjudged because their sender was over its rate
    /// (`network.peer_rate`).
    pub gossip_over_rate: u64,
    /// Gossip messages dropped unjudged because too many already waited for their judge.
    pub gossip_queue_full: u64,
    /// Peers' requests (sync) answered `busy`: over a peer's rate, streams or memory
    /// allowance, over the node's, or too many waiting for an answerer.
    pub requests_refused: u64,
}

/// The counters behind [`NetCounts`], shared by the event loop, the inbound requests'
/// handlers and every [`crate::net::Client`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) peers: AtomicU64,
    pub(crate) banned: AtomicU64,
    pub(crate) faults: AtomicU64,
    pub(crate) gossip_over_rate: AtomicU64,
    pub(crate) gossip_queue_full: AtomicU64,
    /// Shared with the inbound requests' ledger, which refuses most of them.
    pub(crate) requests_refused: Arc<AtomicU64>,
}

impl Counters {
    /// The figures now.
    pub(crate) fn counts(&self) -> NetCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NetCounts {
            peers: get(&self.peers),
            banned: get(&self.banned),
            faults: get(&self.faults),
            gossip_over_rate: get(&self.gossip_over_rate),
            gossip_queue_full: get(&self.gossip_queue_full),
            requests_refused: get(&self.requests_refused),
        }
    }
}

/// Adds one.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Sets a gauge.
pub(crate) fn set(c: &AtomicU64, n: usize) {
    c.store(n as u64, Ordering::Relaxed);
}
