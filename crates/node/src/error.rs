//! The node crate's error type.

/// What can go wrong inside a node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine failed (disk full, corruption, I/O).
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// A stored value could not be decoded: the store is corrupt or from another version.
    #[error("corrupt store entry: {0}")]
    Corrupt(String),
    /// A background task of the node has stopped; the node is shutting down.
    #[error("node stopped")]
    NodeStopped,
    /// A record in the store failed to decode.
    #[error("stored record: {0}")]
    Protocol(#[from] chorus_protocol::Error),
}

/// Result with the node's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
