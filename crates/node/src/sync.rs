//! Catch-up sync: gossip only reaches nodes that are online, so peers reconcile the sets of
//! records they hold on the topics they follow and fetch what they miss.
//!
//! - [`reconcile`]: the pure range-based set reconciliation engine;
//! - [`index`]: the store's range fingerprints, maintained as records are written;
//! - [`wire`]: the protocol's messages on the wire;
//! - [`session`]: one pull from one peer (reconcile, fetch in batches, ingest).

pub mod index;
pub mod reconcile;
pub mod session;
pub mod wire;

/// The protocol id of catch-up sync (request-response).
pub const PROTOCOL: &str = "/chorus/sync/1";
