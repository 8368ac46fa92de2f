//! The contract of a Chorus node's local JSON API (`docs/API.md`): the request bodies and
//! queries it accepts, the answers and live events it sends, the error body and the
//! `api.json` file by which a node says where it listens, all as plain serde types whose JSON
//! is exactly the node's. With the default `blocking` feature it also offers a small blocking
//! [`Client`] (one method per endpoint, each returning its typed answer) and the reader of the
//! server-sent event stream. It depends on neither libp2p nor sled nor an async runtime, so a
//! producer's own software, a script's helper or a dashboard can depend on it alone.
//!
//! Modules:
//! - `request`: what a client sends ([`ReviewRequest`], [`FollowRequest`], [`EventsQuery`], ...).
//! - `response`: what the node answers ([`Status`], [`Tally`], [`Created`], [`AuditReport`],
//!   [`ErrorBody`], ...).
//! - `event`: the payloads of `GET /v1/events` ([`Event`]).
//! - `api_info`: `DATA_DIR/api.json` ([`ApiInfo`]).
//! - `deadline`: [`parse_deadline`], the one reading of a petition's deadline.
//! - `blocking` (feature `blocking`): [`Client`], its [`Error`] and the [`SseReader`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]

mod api_info;
#[cfg(feature = "blocking")]
mod blocking;
mod deadline;
mod event;
mod request;
mod response;

pub use api_info::ApiInfo;
#[cfg(feature = "blocking")]
pub use blocking::{Client, Error, EventStream, SseEvent, SseReader};
pub use deadline::parse_deadline;
pub use event::{
    ErrorEvent, Event, LaggedEvent, ReadyEvent, RecordEvent, ResponseEvent, TallyEvent,
};
pub use request::{
    AdmitRequest, AttestRequest, DirectoryQuery, EndorseRequest, EventsQuery, FollowCount,
    FollowRequest, GroupRequest, PetitionRequest, PetitionsQuery, ProductQuery, ProductsQuery,
    ProfileRequest, RecordsRequest, RespondRequest, RetractRequest, ReviewRequest, SearchQuery,
    SyncRequest, TrustRequest,
};
pub use response::{
    Attested, AuditReport, CountedReview, Created, Directory, ErrorBody, Finding, FollowSet, Found,
    GroupInfo, GroupRequests, JoinRequest, LatestResponse, Mine, Outcome, PeerPull, Peers, Person,
    Petitions, Rating, Reviews, SearchResults, Severity, Status, StorageCondition, StorageState,
    Submitted, SubmittedRecords, SyncAnswer, SyncReport, Tally, TrustSet, Trusted, WebLink,
};
