//! What decoding a sync message costs in memory, measured by counting every allocation:
//! a hostile message is refused before anything is allocated for what it announces, and
//! the largest message the limits let through holds a few megabytes, whatever its bytes say.
//! (The decoder this replaced first built a `ciborium::Value` tree: 32 to 48 bytes of memory
//! per byte of input, so a 1 MiB request of tiny items cost tens of megabytes before its
//! shape was even looked at.)
//!
//! One test in this binary, since the counting allocator sees every thread.

use std::alloc::System;

use chorus_protocol::sync::wire::{Request, Response, MAX_IDS, MAX_PARTS, MAX_REQUEST};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Runs `f` and returns what it returned and the bytes it asked the allocator for (growth by
/// reallocation included), never given back or not: an upper bound of its peak.
fn cost<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let region = Region::new(GLOBAL);
    let out = f();
    (out, region.change().bytes_allocated)
}

const MIB: usize = 1024 * 1024;

/// `[0, [_ part...]]` with `n` parts: the first bound 73 bytes, every other one sharing 72
/// of them (seven bytes of input for a 73-byte bound), `tail` appended to the last part's
/// mode, the message closed.
fn many_parts(n: usize, mode: &[u8]) -> Vec<u8> {
    let mut b = vec![0x82, 0x00, 0x9f];
    for i in 0..n {
        let (shared, suffix): (u8, Vec<u8>) = if i == 0 {
            (0, vec![0; 73])
        } else {
            (72, vec![(i % 251) as u8])
        };
        b.push(if mode.is_empty() { 0x82 } else { 0x83 });
        b.extend_from_slice(&[0x82, 0x18, shared]);
        b.push(0x58);
        b.push(suffix.len() as u8);
        b.extend_from_slice(&suffix);
        if mode.is_empty() {
            b.push(0x00);
        } else {
            b.extend_from_slice(mode);
        }
    }
    b.push(0xff);
    b
}

#[test]
fn hostile_sync_messages_cost_no_more_than_their_limits() {
    let huge = [0xff; 8];
    // A few bytes announcing more than the message could hold (gigabytes, or more parts than
    // allowed): refused, with nothing allocated for what they announce.
    for (what, b) in [
        ("parts", [&[0x82, 0x00, 0x9b][..], &huge].concat()),
        ("ids", [&[0x82, 0x01, 0x9b][..], &huge].concat()),
        ("record", [&[0x82, 0x01, 0x81, 0x5b][..], &huge].concat()),
        (
            "have",
            vec![
                0x82, 0x00, 0x81, 0x83, 0xf6, 0x02, 0x5a, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
        (
            "parts",
            [&[0x82, 0x00, 0x9a, 0x00, 0x01, 0x00, 0x00][..], &[0x80; 64]].concat(),
        ),
    ] {
        let (r, bytes) = cost(|| Request::decode(&b));
        assert!(r.is_err(), "{what}");
        let (s, more) = cost(|| Response::decode(&b));
        assert!(s.is_err(), "{what}");
        assert!(
            bytes + more < 1024,
            "{what}: {} bytes for a refused message",
            bytes + more
        );
    }

    // A full-size request of one-byte items (empty arrays): refused at the first, for the
    // cost of the one bound buffer. (The value tree cost over 30 MB here.)
    let mut tiny = vec![0x82, 0x00, 0x9f];
    tiny.resize(MAX_REQUEST - 1, 0x80);
    tiny.push(0xff);
    let (r, bytes) = cost(|| Request::decode(&tiny));
    assert!(r.is_err());
    assert!(bytes < 1024, "{bytes} bytes for a refused request");

    // Deep nesting: refused at the first array the grammar has no room for.
    let mut deep = vec![0x82, 0x00];
    deep.resize(MAX_REQUEST, 0x81);
    let (r, bytes) = cost(|| Request::decode(&deep));
    assert!(r.is_err());
    assert!(bytes < 1024, "{bytes} bytes for deep nesting");

    // The most a request can hold: every part a 73-byte bound, in 7 bytes each. Refused past
    // MAX_PARTS, after at most a few megabytes.
    let over = many_parts(MAX_PARTS + 1, &[]);
    assert!(over.len() < MAX_REQUEST);
    let (r, bytes) = cost(|| Request::decode(&over));
    assert!(r.is_err());
    assert!(bytes < 4 * MIB, "{bytes} bytes for a refused request");
    let most = many_parts(MAX_PARTS, &[]);
    let (r, bytes) = cost(|| Request::decode(&most));
    assert!(matches!(r, Ok(Request::Reconcile(ref p)) if p.len() == MAX_PARTS));
    drop(r);
    assert!(bytes < 4 * MIB, "{bytes} bytes for the largest request");

    // The same parts and MAX_IDS full ids in a response (1 MiB of them): still bounded.
    let mut ids = vec![0x03, 0x5a];
    ids.extend_from_slice(&((MAX_IDS * 32) as u32).to_be_bytes());
    ids.resize(ids.len() + MAX_IDS * 32, 7);
    let mut most = many_parts(
        MAX_PARTS - 1,
        &[0x01, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    most.pop();
    most.push(0x83);
    most.push(0xf6);
    most.extend_from_slice(&ids);
    most.push(0xff);
    let (r, bytes) = cost(|| Response::decode(&most));
    assert!(matches!(r, Ok(Response::Reconcile(ref p)) if p.len() == MAX_PARTS));
    drop(r);
    assert!(
        bytes < 5 * MIB,
        "{bytes} bytes for the largest reconciliation answer"
    );
}
