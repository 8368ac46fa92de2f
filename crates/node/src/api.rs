//! The local JSON API, served on loopback for the CLI, scripts and dashboards. Its contract —
//! every request and answer type — is the `chorus_client` crate; `docs/API.md` describes each
//! endpoint.
//!
//! Every call needs `Authorization: Bearer <token>`, the token the node makes at each start and
//! writes to its data dir (`api.token`, mode 0600); anything else gets 401. Errors are JSON
//! objects with a stable `code` and a human `message`. The address actually bound, the pid
//! and the process's start time are written to `api.json` in the data dir so the CLI can find
//! the node, and tell it from a process that took the port of a killed one. Every resource a
//! connection can hold is bounded (`server`, `limits`; ARCHITECTURE.md lists each limit).
//!
//! - `server`: the HTTP server: the connection cap, header and write timeouts;
//! - `router`: the routes, the token check;
//! - `limits`: the body's size and time, the event streams' caps;
//! - [`write`]: endpoints that make, sign and publish one record each;
//! - `read`: endpoints that read the store;
//! - `directory`: search, and the lists of producers, groups and products;
//! - `follow`: what the node follows;
//! - `network`: status, peers, catching up;
//! - `watchdog`: audit, bundles, attestations;
//! - `events`: the live event stream;
//! - `error`, `parse`, `views`, `state`: errors, reading requests, showing values,
//!   what the handlers reach.

mod directory;
mod error;
mod events;
mod fetch;
mod follow;
mod limits;
mod mine;
mod network;
mod own;
mod parse;
mod read;
mod records;
mod router;
mod server;
mod state;
mod views;
mod watchdog;
mod write;

pub(crate) use directory::search;
pub use error::ApiError;
pub(crate) use error::{JsonBody, Q};
pub(crate) use events::events as event_stream;
pub(crate) use fetch::stored_or_fetched;
pub(crate) use limits::{BodyLimits, EventStreams};
pub(crate) use mine::my_records;
pub(crate) use network::status_of;
pub(crate) use own::Mine;
pub(crate) use parse::record_id;
pub(crate) use read::{group_requests, group_show};
pub(crate) use router::{no_such_endpoint, router};
pub(crate) use server::{serve, serve_at, Connections, Limits as ServerLimits};
pub(crate) use state::ApiState;
pub(crate) use state::Authenticated;
pub(crate) use write::{endorse, retract};
pub(crate) use write::{group_admit, group_join};
// --- Producer pages (inbox, products, product page) ---
pub(crate) use parse::author_named;
pub(crate) use write::respond;

// --- Watchdog pages (audit, attest, trust, verify, bundles) ---
pub(crate) use follow::{trust_add, trust_remove};
pub(crate) use watchdog::{attest, bundle};

// --- Node pages (peers, follow, first run, browse) and forms ---
pub(crate) use directory::{groups, producers};
pub(crate) use follow::{follow, unfollow};
pub(crate) use network::peers;
pub(crate) use write::{group_create, petition_open, profile, review};
