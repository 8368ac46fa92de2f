//! What the API's handlers reach: the node's parts, shared.

use std::sync::Arc;

use chorus_protocol::{AuthorKey, SigningKey};
use tokio_util::sync::CancellationToken;

use super::limits::{BodyLimits, EventStreams};
use crate::audit::AuditConfig;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::follow::Following;
use crate::ingest::Ingest;
use crate::net::Client;
use crate::publish::Publisher;
use crate::store::Store;
use crate::sync::SyncHandle;
use crate::trust::Trust;

/// The token a request was let in with (a request extension, for the per-token limits).
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) Arc<str>);

/// The handlers' view of the node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) store: Store,
    pub(crate) client: Client,
    /// This user's key.
    pub(crate) author: AuthorKey,
    /// The bearer token every request must carry (a fresh one at each start).
    pub(crate) token: Arc<str>,
    /// Live events come from the pipeline.
    pub(crate) ingest: Ingest,
    pub(crate) publisher: Publisher,
    pub(crate) signer: Arc<SigningKey>,
    pub(crate) following: Following,
    pub(crate) sync: SyncHandle,
    /// Search, in the store and of the peers.
    pub(crate) directory: Directory,
    /// Fires when the node stops: long-lived answers (event streams) end then.
    pub(crate) cancel: CancellationToken,
    pub(crate) audit: AuditConfig,
    /// The watchdogs whose flags the trusted counts follow (changed at run time).
    pub(crate) trust: Trust,
    /// Creation times of the records made for this node's user.
    pub(crate) clock: Arc<Clock>,
    /// The limits of a request's body.
    pub(crate) body: BodyLimits,
    /// The event streams open, and their caps.
    pub(crate) streams: Arc<EventStreams>,
    /// The ids of the user's own records, kept up to date.
    pub(crate) mine: Arc<super::own::Mine>,
}
