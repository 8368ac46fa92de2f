//! Which profiles a node keeps (PROTOCOL.md §13.6), between nodes on loopback: a consumer's
//! node checks and forwards the profiles it does not keep, stores none of them, and fetches
//! the profiles of the authors of the records it stores from a peer that keeps them.

mod common;

use std::time::Duration;

use chorus_protocol::{
    AuthorKey, Body, ProductRef, Profile, RecordBuilder, Review, Role, SignedRecord, SigningKey,
};
use common::{eventually, start_with};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn author(seed: u8) -> AuthorKey {
    AuthorKey(key(seed).verifying_key().to_bytes())
}

fn profile(seed: u8, name: &str, at: u64) -> SignedRecord {
    RecordBuilder::new(Body::Profile(Profile {
        name: name.into(),
        role: Role::Consumer,
        about: None,
    }))
    .created_at(at)
    .sign(&key(seed))
    .unwrap()
}

fn review(seed: u8, producer: AuthorKey, text: &str) -> SignedRecord {
    RecordBuilder::new(Body::Review(Review {
        product: ProductRef {
            producer,
            code: "kettle".into(),
        },
        rating: 4,
        title: None,
        text: text.into(),
    }))
    .created_at(chorus_node::clock::now_ms())
    .sign(&key(seed))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_forwards_profiles_it_does_not_keep_and_fetches_its_authors_profiles() {
    let producer = author(21);
    // `c`, a consumer's node following one producer, is the only node that listens: the
    // archives `a` and `d` reach each other only through it.
    let c = start_with(&[], |cfg| {
        cfg.follow.producers = vec![producer.to_string()];
    })
    .await;
    let archive = |cfg: &mut chorus_node::config::Config| {
        cfg.follow.all = true;
        cfg.network.listen = Vec::new();
    };
    let a = start_with(&[&c.addr], archive).await;
    let d = start_with(&[&c.addr], archive).await;

    // A stranger's profiles, published by `a`: `c` checks and forwards them, `d` stores
    // them, `c` keeps none (it neither follows the stranger nor holds a record of theirs).
    let stranger = author(31);
    let mut sent = Vec::new();
    eventually(
        "d stores a stranger's profile relayed by c",
        30,
        async || {
            let at = chorus_node::clock::now_ms() - 60_000 + sent.len() as u64;
            let p = profile(31, &format!("Stranger {}", sent.len()), at);
            a.node.publish(&p).await.unwrap();
            sent.push(p.id());
            tokio::time::sleep(Duration::from_millis(400)).await;
            d.node.store().has_profile(&stranger).unwrap()
        },
    )
    .await;
    for id in &sent {
        assert!(!c.node.store().contains(id).unwrap(), "c kept {id}");
    }
    assert!(!c.node.store().has_profile(&stranger).unwrap());
    assert_eq!(c.node.status().await.unwrap().rejected, 0);

    // A reviewer's profile that only the archives hold (not gossiped), then the reviewer's
    // review of the producer `c` follows: `c` stores the review, wants its author's
    // profile and pulls it from an archive.
    let reviewer = profile(32, "Rita Reviewer", chorus_node::clock::now_ms() - 60_000);
    for n in [&a, &d] {
        let out = n
            .node
            .ingest()
            .ingest(vec![reviewer.wire().to_vec()])
            .await
            .unwrap();
        assert!(out[0].is_accepted(), "{out:?}");
    }
    let mut reviews = Vec::new();
    eventually("c stores the reviewer's review", 30, async || {
        let r = review(32, producer, &format!("Boils fast {}", reviews.len()));
        a.node.publish(&r).await.unwrap();
        reviews.push(r.id());
        tokio::time::sleep(Duration::from_millis(400)).await;
        let store = c.node.store();
        reviews.iter().any(|id| store.contains(id).unwrap())
    })
    .await;
    eventually("c fetches the reviewer's profile", 30, async || {
        c.node.store().has_profile(&author(32)).unwrap()
    })
    .await;
    assert_eq!(
        c.node.store().name_of(&author(32)).unwrap().as_deref(),
        Some("Rita Reviewer")
    );
    assert!(!c.node.store().has_profile(&stranger).unwrap());
    for n in [a, c, d] {
        n.node.shutdown().await.unwrap();
    }
}
