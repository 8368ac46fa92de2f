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
    /// The configuration is invalid.
    #[error("config: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Networking failed to start or act.
    #[error("network: {0}")]
    Network(String),
    /// A key file is unsafe or unreadable.
    #[error("key file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A record in the store failed to decode.
    #[error("stored record: {0}")]
    Protocol(#[from] chorus_protocol::Error),
}

/// Result with the node's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
