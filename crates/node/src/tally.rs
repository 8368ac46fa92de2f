//! Derived state: a pure function of the *set* of applied records, maintained incrementally.
//! This module computes it and nothing else: the store ([`crate::store`]) keeps the records,
//! their indexes and the derived values; the kind rules are `chorus_protocol::rules`.
//!
//! The building block is the **slot**: a place where competing records of one author meet and
//! the latest by `(created_at, id)` wins. A retraction competes in the slot of the record it
//! retracts, as an "off" state. Slots:
//!
//! | class (`SlotClass`) | slot key         | "on" records            | feeds                          |
//! |---------------------|------------------|-------------------------|--------------------------------|
//! | `Endorsement`       | petition, author | endorsements            | petition tally                 |
//! | `Review`            | product, author  | reviews                 | product rating                 |
//! | `Join`              | group, author    | joins                   | membership                     |
//! | `Admit`             | group, member    | admits by the founder   | membership (approval groups)   |
//! | `Profile`           | author           | profiles                | latest profile                 |
//! | `Response`          | target, producer | responses               | the petition's latest response |
//! | `Withdrawal`        | petition         | the author's retraction | petition withdrawn             |
//!
//! Because every aggregate is a sum over slot winners, and a slot winner does not depend on
//! the order its candidates arrived in, the aggregates are order independent.
//!
//! A petition closes at the earlier of its deadline and its first withdrawal (PROTOCOL.md
//! §9): endorsements and their retractions made after that are not offered to any slot.
//! Each one made before is also kept in the petition's **history** (`h` keys, in
//! (`created_at`, id) order), whoever wins its slot. The history serves two things that
//! slots cannot:
//!
//! - a withdrawal that arrives after endorsements made later than it: those leave the
//!   history, and each endorser's slot goes back to their latest record made by the close;
//! - `first_reached_at`, the one order statistic: the history replayed in order until the
//!   petition is first reached. A record that comes after every other one (the usual case)
//!   settles it from the current count alone; one that comes after the record that first
//!   reached it cannot move it; only one that comes before (or while it was never reached)
//!   replays the history.
//!
//! The same code runs on the store (through an overlay of one chunk's writes) and on an
//! in-memory map, which is how [`recompute()`] rebuilds everything from raw records.
//!
//! - `ready`: can a record be applied now (what it points at is here, and it keeps the
//!   kind rules)?
//! - `apply`: what a record changes in derived state;
//! - `ctx`: what is kept across the records of one writer (decoded targets, the chunk's
//!   tallies and events);
//! - [`event`]: what subscribers are told;
//! - [`mod@recompute`]: derived state rebuilt from raw records and compared.

pub(crate) mod apply;
pub(crate) mod ctx;
pub mod event;
pub(crate) mod migrate;
pub(crate) mod ready;
pub mod recompute;

pub use apply::is_member;
pub use event::Event;
pub use ready::Readiness;
pub use recompute::{recompute, Difference};
