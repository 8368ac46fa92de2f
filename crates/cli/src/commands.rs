//! The subcommands, one module per group: each function runs one subcommand and says how
//! the process exits (0, or 1 for a failed check; errors are the caller's exit 2).

pub(crate) mod follow;
pub(crate) mod network;
pub(crate) mod node;
pub(crate) mod read;
pub(crate) mod watch;
pub(crate) mod watchdog;
pub(crate) mod write;
