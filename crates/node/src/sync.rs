//! Catch-up sync: gossip only reaches nodes that are online, so peers reconcile the sets of
//! record ids they hold per topic shard and fetch what they miss.
//!
//! [`reconcile`] is the pure range-based set reconciliation engine. The store-backed range
//! index and the libp2p request-response protocol that carries its messages come next
//! (issue 6).

pub mod reconcile;
