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
//! the order its candidates arrived in, the aggregates are order independent. The one
//! order statistic, the time a petition reached its threshold, is the `threshold`-th earliest
//! counted endorsement, recomputed from the petition's slots when a change could move it.
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
pub(crate) mod ready;
pub mod recompute;

pub use apply::is_member;
pub use event::Event;
pub use ready::Readiness;
pub use recompute::{recompute, Difference};
