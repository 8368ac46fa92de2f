//! Catch-up sync: gossip only reaches nodes that are online, so peers reconcile the sets of
//! records they hold on the topics they follow and fetch what they miss. The keys, the
//! reconciliation engine and the messages are the protocol's (`chorus_protocol::sync`);
//! this module owns when to pull and how to answer:
//!
//! - [`schedule`]: when this node pulls (on connect, periodically, on demand);
//! - [`session`]: one pull from one peer (reconcile, fetch in batches, ingest);
//! - `serve`: the answers this node gives to pulls;
//! - `counters`: what sync has done since start ([`SyncCounts`]).

pub(crate) mod counters;
pub mod schedule;
pub(crate) mod serve;
pub mod session;

use chorus_protocol::sync::wire::{MAX_REQUEST, MAX_RESPONSE};

use crate::config::SyncConfig;
use crate::net::{RequestCodec, RequestProtocol};

pub use chorus_protocol::sync::PROTOCOL;
pub use counters::SyncCounts;
pub use schedule::{LastPull, SyncHandle};
pub use session::SyncReport;

/// The request-response protocol sync runs on, for the network to carry.
pub(crate) fn request_protocol(config: &SyncConfig) -> RequestProtocol {
    RequestProtocol {
        name: PROTOCOL,
        max_request: MAX_REQUEST,
        max_response: MAX_RESPONSE,
        timeout: config.request_timeout,
        busy: serve::busy(),
        limits: serve::limits(),
    }
}

/// The frames of the sync protocol, with its size limits (for tools that speak it).
pub fn codec() -> RequestCodec {
    RequestCodec::new(MAX_REQUEST, MAX_RESPONSE)
}
