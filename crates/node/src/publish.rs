//! Publishing a record made on this node: stored through the ingest pipeline first, then
//! gossiped on its topic's shard (queued by the network if nobody listens yet).

use chorus_protocol::SignedRecord;

use crate::error::{Error, Result};
use crate::ingest::{Ingest, Outcome};
use crate::net::{shard_of, Client};

/// Stores and gossips the records this node's user makes. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    ingest: Ingest,
    client: Client,
}

impl Publisher {
    /// A publisher through `ingest` onto `client`'s network.
    pub fn new(ingest: Ingest, client: Client) -> Self {
        Publisher { ingest, client }
    }

    /// Ingests records signed elsewhere (the API's `POST /v1/records`) as one batch, then
    /// gossips each one stored; the outcomes are in the order of `wires`.
    pub async fn submit(&self, wires: Vec<Vec<u8>>) -> Result<Vec<Outcome>> {
        let outcomes = self.ingest.ingest(wires.clone()).await?;
        for (wire, outcome) in wires.into_iter().zip(&outcomes) {
            // New and accepted (stored, or kept for its target), as `publish` does.
            if !matches!(outcome, Outcome::Stored(_) | Outcome::Waiting(_)) {
                continue;
            }
            if let Ok(rec) = SignedRecord::from_vec(wire) {
                let shard = shard_of(&rec.record().topic);
                // Stored whatever becomes of the gossip: catch-up sync carries it too.
                if let Err(e) = self.client.publish(shard, rec.into_wire()).await {
                    tracing::warn!(error = %e, "cannot gossip a record taken through the API");
                }
            }
        }
        Ok(outcomes)
    }

    /// Ingests a record made here, then gossips it on its shard. A record nobody hears yet
    /// is kept (stored, and queued for gossip) rather than dropped; a refused one is not
    /// gossiped.
    pub async fn publish(&self, rec: &SignedRecord) -> Result<Outcome> {
        let outcome = self
            .ingest
            .ingest(vec![rec.wire().to_vec()])
            .await?
            .pop()
            .ok_or(Error::NodeStopped)?;
        if outcome.is_accepted() {
            self.client
                .publish(shard_of(&rec.record().topic), rec.wire().to_vec())
                .await?;
        }
        Ok(outcome)
    }
}
