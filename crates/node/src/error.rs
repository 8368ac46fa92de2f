//! The node crate's error type.

/// What can go wrong inside a node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine failed (disk full, corruption, I/O).
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// The store cannot write (or, after a failed reopen, read) now: the disk is full, or
    /// failed. Writes are refused at once until it recovers (`Store::recover`).
    #[error("{0}")]
    Unwritable(StorageFault),
    /// The store cannot be opened: its files are damaged. Says what can be done.
    #[error(
        "the store in {path} is damaged ({cause}); restore it from a backup (with the node \
         stopped), or run `chorus reset-store` to set it aside and let this node catch up from \
         its peers (keys, config and follows are kept)"
    )]
    DamagedStore {
        /// The store's directory.
        path: String,
        /// What the open met.
        cause: String,
    },
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

/// Why the store cannot write: what status and clients are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageFault {
    /// The disk is full.
    Full(String),
    /// Any other failure of the disk or of the storage engine.
    Failed(String),
}

impl StorageFault {
    /// The fault behind a failed store operation (`None`: not a storage failure).
    pub fn of(e: &Error) -> Option<StorageFault> {
        let io_kind = |e: &std::io::Error| e.kind() == std::io::ErrorKind::StorageFull;
        match e {
            Error::Unwritable(f) => Some(f.clone()),
            Error::Storage(sled::Error::Io(io)) | Error::Io(io) if io_kind(io) => {
                Some(StorageFault::Full("no space left on device".into()))
            }
            Error::Storage(s) => Some(StorageFault::Failed(s.to_string())),
            Error::Io(io) => Some(StorageFault::Failed(io.to_string())),
            _ => None,
        }
    }

    /// Is the disk full?
    pub fn is_full(&self) -> bool {
        matches!(self, StorageFault::Full(_))
    }
}

impl std::fmt::Display for StorageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageFault::Full(why) => write!(
                f,
                "the disk holding the store is full ({why}); free some space: the next write \
                 tries again"
            ),
            StorageFault::Failed(why) => write!(
                f,
                "the store cannot write ({why}); the next write tries to reopen it"
            ),
        }
    }
}

impl Error {
    /// Is this what opening a damaged store meets (rather than a store in use, or a disk
    /// that cannot be read)?
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corrupt(_)
                | Error::Protocol(_)
                | Error::DamagedStore { .. }
                | Error::Storage(sled::Error::Corruption { .. })
                | Error::Storage(sled::Error::ReportableBug(_))
        )
    }
}

/// Result with the node's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
