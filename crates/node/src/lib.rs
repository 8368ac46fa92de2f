//! The Chorus node: it remembers signed records and counts them.
//!
//! Components:
//! - [`Store`] (`store`): one sled tree holding records by id (verbatim wire bytes), indexes
//!   by topic and time, author, target and product, and the derived state; one crash-atomic
//!   write set (a redo intent, then its writes) per ingest chunk.
//! - [`Ingest`] (`ingest`): the pipeline that decodes, validates, batch-verifies on all cores,
//!   drops duplicates, applies and durably commits records, then broadcasts [`Event`]s.
//! - `tally`: derived state — petition tallies, product ratings, group membership, profiles —
//!   as a pure function of the set of records, and [`recompute`] to check it from raw records.
//! - [`Node`] (`node`): the daemon — data dir, keys, config ([`Config`]), store, ingest and
//!   the libp2p network (`net`: one event loop owns the swarm; [`Client`] talks to it).
//! - `sync`: catch-up sync — range-based set reconciliation over the store's topic/time
//!   keys with incrementally maintained range fingerprints, pulled from peers on connect,
//!   periodically and on demand ([`SyncReport`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]

pub mod api;
pub mod audit;
mod background;
pub mod bundle;
pub mod clock;
pub mod config;
mod data_dir;
mod error;
pub mod follow;
mod gossip;
pub mod ingest;
pub mod keyfile;
pub mod net;
pub mod node;
pub mod publish;
mod rate;
pub mod store;
pub mod sync;
pub mod tally;
pub mod trust;
#[cfg(feature = "workload")]
pub mod workload;

pub use config::Config;
pub use data_dir::{Created, DataDir, PASSPHRASE_ENV};
pub use error::{Error, Result};
pub use follow::{Follow, FollowChange, Following};
pub use ingest::{Ingest, IngestConfig, IngestThreads, Outcome, Rejection};
pub use net::{Client, NetEvent, NetStatus};
pub use node::Node;
pub use store::{GroupTally, PetitionTally, Rating, ResponseInfo};
pub use store::{Page, Store};
pub use sync::{SyncHandle, SyncReport};
pub use tally::{recompute, Difference, Event};
