//! The Chorus node (in progress).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]
