//! Catch-up sync: gossip only reaches nodes that are online, so peers reconcile the sets of
//! records they hold on the topics they follow and fetch what they miss.
//!
//! - [`session`]: one pull from one peer (reconcile, fetch in batches, ingest).

pub mod session;

pub use chorus_protocol::sync::PROTOCOL;
