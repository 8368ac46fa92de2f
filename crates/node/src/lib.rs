//! The Chorus node: it stores signed records, counts them, gossips them and catches up with
//! peers, and serves its user a local API. `docs/ARCHITECTURE.md` maps every module.
//!
//! Components, bottom up:
//! - [`Store`] (`store`): one sled tree holding records by id (verbatim wire bytes), their
//!   indexes, the derived values, the arrival journal and the sync index; one crash-atomic
//!   write set (a redo intent, then its writes) per ingest chunk.
//! - `tally`: derived state — petition tallies, product ratings, group membership — as a
//!   pure function of the set of records, and [`recompute()`] to check it from raw records.
//!   The kind rules are `chorus_protocol::rules`.
//! - [`Ingest`] (`ingest`): the pipeline that decodes, validates, batch-verifies on all cores,
//!   drops duplicates, applies and durably commits records, then broadcasts [`Event`]s.
//! - `net`: one event loop owns the libp2p swarm; [`Client`] talks to it, and it reports
//!   gossip to judge and requests to answer. It knows nothing of records or sync.
//! - `gossip` judges gossip into ingest; `sync` schedules catch-up pulls and answers them;
//!   `follow` ([`Following`]) is what the node follows; `publish` stores then gossips
//!   what the user makes.
//! - `api`: the local JSON API (its contract is the `chorus_client` crate); `audit`,
//!   `trust` and `bundle` serve watchdogs; `roster` lists a group's members and pending
//!   requests.
//! - `metrics`: the Prometheus endpoint (`GET /metrics` on `metrics.listen`), the figures
//!   that `net`, `gossip`, `ingest` and `sync` count as they run, and the store's.
//! - [`Node`] (`node`): starts and stops all of it on a [`DataDir`] with a [`Config`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]

pub mod api;
pub mod audit;
mod background;
pub mod bundle;
mod campaigns;
pub mod clock;
pub mod config;
mod data_dir;
pub mod directory;
mod error;
pub mod follow;
mod gossip;
pub mod ingest;
pub mod keyfile;
pub mod metrics;
pub mod net;
pub mod node;
pub mod profiles;
pub mod publish;
mod rate;
pub mod roster;
pub mod store;
pub mod sync;
pub mod tally;
pub mod trust;
pub mod waiting;
mod web;
#[cfg(feature = "workload")]
pub mod workload;

pub use config::Config;
pub use data_dir::{Created, DataDir, Running, PASSPHRASE_ENV};
pub use error::{Error, Result, StorageFault};
pub use follow::{Follow, FollowChange, Following};
pub use ingest::{Ingest, IngestConfig, IngestThreads, Outcome, Rejection};
pub use net::{Client, NetEvent, NetStatus};
pub use node::{ApiLoad, Node};
pub use store::{GroupTally, PetitionState, PetitionTally, Rating, ResponseInfo};
pub use store::{Page, Store};
pub use sync::{SyncHandle, SyncReport};
pub use tally::{recompute, Difference, Event};
