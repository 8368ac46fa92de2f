//! The Chorus record format: everything two nodes (or a node and a watchdog's tool written
//! in another language) must agree on byte for byte.
//!
//! A [`Record`] is a typed envelope — author key, kind, creation time, [`Topic`] and a
//! kind-specific [`Body`]. Its canonical CBOR encoding ([`cbor`]) is hashed with BLAKE3 into a
//! [`RecordId`], and the author signs that id under a domain-separation prefix ([`sign`]). The
//! wire and storage form is a [`SignedRecord`]: the CBOR array `[record bytes, signature]`,
//! kept verbatim and never re-encoded once received.
//!
//! Components:
//! - [`record`]: the typed records, ids and keys, and the builder that signs.
//! - [`cbor`]: canonical encoding, and a strict decoder for untrusted bytes.
//! - [`sign`]: the signature rule (cofactored Ed25519 with strict encodings) alone and in
//!   batches, with the same verdict either way.
//! - [`validate`]: the context-free validity rules and their limits.
//! - [`rules`]: the kind rules, what a record that points at another needs of it, each
//!   refusal a [`RuleError`] with a stable code.
//! - [`bundle`]: verifiable tally bundles, Merkle roots and inclusion proofs.
//! - [`sync`]: catch-up sync's keys, range-based set reconciliation and messages.
//!
//! This crate is pure: no I/O, no async runtime, no clock (callers pass `now`).
//! `docs/PROTOCOL.md` in the repository is the normative specification.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]

pub mod bundle;
pub mod cbor;
mod error;
pub mod fold;
pub mod record;
pub mod rules;
pub mod sign;
pub mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validate;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod rule_vectors;
#[cfg(test)]
mod vectors;

pub use error::Error;
pub use record::{
    Admission, Admit, Amount, Attestation, AuthorKey, Body, Endorsement, Group, Join, Kind,
    Petition, PetitionVariant, ProductRef, Profile, Record, RecordBuilder, RecordId, Response,
    ResponseStatus, Retraction, Review, Role, SignedRecord, Subject, Topic, Verdict,
};
pub use rules::{Pointed, RuleError};
pub use sign::{verify_batch, verify_batch_cached, KeyCache, SigningKey, SIGNING_CONTEXT};
pub use validate::{check_wire, Limits, DEFAULT_SKEW_MS, MAX_WIRE_BYTES};

/// The protocol version this crate speaks, the `v` field of every record.
pub const PROTOCOL_VERSION: u64 = 1;
