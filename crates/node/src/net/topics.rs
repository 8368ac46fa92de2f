//! Gossip topics: a bounded set of shards that record topics travel on.
//!
//! Record topics are unbounded (one per producer, one per group), but a node can subscribe to
//! at most 100 gossipsub topics, so records travel on **shards**: `chorus/v1/p/NN` (32 shards)
//! for producer topics, `chorus/v1/g/NN` (8 shards) for group topics, and `chorus/v1/meta`.
//! A record's shard is a function of its topic alone (BLAKE3 of the 32 key bytes), so every
//! node agrees. A node subscribes to the shards of what it follows (`crate::follow`); it
//! stores the records of followed topics and only checks and forwards the others that share
//! those shards.

use std::collections::BTreeSet;

use chorus_protocol::Topic;

/// Shards for producer topics.
pub const PRODUCER_SHARDS: u16 = 32;
/// Shards for group topics.
pub const GROUP_SHARDS: u16 = 8;
/// The meta shard (profiles, group creations, attestations about keys).
pub const META: &str = "chorus/v1/meta";

fn bucket(bytes: &[u8; 32], n: u16) -> u16 {
    let h = blake3::hash(bytes);
    u16::from_le_bytes([h.as_bytes()[0], h.as_bytes()[1]]) % n
}

/// The gossipsub topic a record topic travels on.
pub fn shard_of(topic: &Topic) -> String {
    match topic {
        Topic::Meta => META.to_string(),
        Topic::Producer(k) => format!("chorus/v1/p/{:02}", bucket(k.as_bytes(), PRODUCER_SHARDS)),
        Topic::Group(g) => format!("chorus/v1/g/{:02}", bucket(g.as_bytes(), GROUP_SHARDS)),
    }
}

/// Every shard (what an archive node subscribes to).
pub fn all_shards() -> BTreeSet<String> {
    let mut s: BTreeSet<String> = (0..PRODUCER_SHARDS)
        .map(|i| format!("chorus/v1/p/{i:02}"))
        .collect();
    s.extend((0..GROUP_SHARDS).map(|i| format!("chorus/v1/g/{i:02}")));
    s.insert(META.to_string());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::AuthorKey;

    #[test]
    fn shards_are_bounded_and_stable() {
        let all = all_shards();
        assert_eq!(all.len(), 41);
        for i in 0..200u8 {
            let t = Topic::Producer(AuthorKey([i; 32]));
            assert!(all.contains(&shard_of(&t)));
            assert_eq!(shard_of(&t), shard_of(&t));
        }
        assert_eq!(shard_of(&Topic::Meta), META);
    }
}
