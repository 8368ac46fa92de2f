//! Several real libp2p swarms in one process, on 127.0.0.1: gossip delivery to followers
//! only, and a hostile peer's garbage dropped, not forwarded, and the peer cut off.

use std::time::Duration;

use chorus_node::config::Config;
use chorus_node::net::shard_of;
use chorus_node::{DataDir, NetEvent, Node};
use chorus_protocol::{
    AuthorKey, Body, Petition, PetitionVariant, ProductRef, RecordBuilder, Retraction, Review,
    SignedRecord, SigningKey, Topic,
};
use tempfile::TempDir;

const TCP: &[&str] = &["/ip4/127.0.0.1/tcp/0"];

struct TestNode {
    node: Node,
    addr: String,
    _dir: TempDir,
}

async fn start(
    producers: &[AuthorKey],
    bootstrap: &[&str],
    listen: &[&str],
    max_invalid: u32,
) -> TestNode {
    start_in(new_dir(), producers, bootstrap, listen, max_invalid).await
}

/// A fresh, initialised data directory (with its own random author key).
fn new_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    DataDir::new(dir.path()).init().unwrap();
    dir
}

/// The author key a node started in `dir` uses (and always follows).
fn own_key(dir: &TempDir) -> AuthorKey {
    key_of(&DataDir::new(dir.path()).author_key().unwrap())
}

async fn start_in(
    dir: TempDir,
    producers: &[AuthorKey],
    bootstrap: &[&str],
    listen: &[&str],
    max_invalid: u32,
) -> TestNode {
    let data = DataDir::new(dir.path());
    let mut config = Config::default();
    config.network.listen = listen.iter().map(|s| s.to_string()).collect();
    config.network.bootstrap = bootstrap.iter().map(|s| s.to_string()).collect();
    config.network.mdns = false;
    config.api.listen = "127.0.0.1:0".into();
    config.network.max_invalid = max_invalid;
    config.follow.producers = producers.iter().map(|k| k.to_string()).collect();
    let (node, mut events) = Node::start(&data, config).await.unwrap();
    let mut addr = String::new();
    if !listen.is_empty() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while addr.is_empty() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(NetEvent::Listening(a))) => addr = a.to_string(),
                Ok(Some(_)) => {}
                _ => panic!("node did not listen"),
            }
        }
    }
    // Keep draining events so the channel never fills.
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    TestNode {
        node,
        addr,
        _dir: dir,
    }
}

async fn eventually(what: &str, secs: u64, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn producer_keys() -> (SigningKey, SigningKey) {
    producer_keys_avoiding(&[])
}

/// Two producer keys on different shards, the first on none of the shards of `avoid`.
fn producer_keys_avoiding(avoid: &[AuthorKey]) -> (SigningKey, SigningKey) {
    let avoided: Vec<String> = avoid
        .iter()
        .map(|k| shard_of(&Topic::Producer(*k)))
        .collect();
    let x = (1..=255u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .find(|x| !avoided.contains(&shard_of(&Topic::Producer(key_of(x)))))
        .expect("some key lands on another shard");
    let x_key = key_of(&x);
    for i in 1..=255u8 {
        let y = SigningKey::from_bytes(&[i; 32]);
        let y_key = AuthorKey(y.verifying_key().to_bytes());
        if shard_of(&Topic::Producer(y_key)) != shard_of(&Topic::Producer(x_key)) {
            return (x, y);
        }
    }
    unreachable!("some key lands on another shard")
}

fn review(author: &SigningKey, producer: AuthorKey, text: &str) -> SignedRecord {
    let now = chorus_node::clock::now_ms();
    RecordBuilder::new(Body::Review(Review {
        product: ProductRef {
            producer,
            code: "gtin-42".into(),
        },
        rating: 4,
        title: None,
        text: text.into(),
    }))
    .created_at(now)
    .sign(author)
    .unwrap()
}

/// [`review`] made at `at` (ms) by the author's clock.
fn review_at(author: &SigningKey, producer: AuthorKey, text: &str, at: u64) -> SignedRecord {
    RecordBuilder::new(Body::Review(Review {
        product: ProductRef {
            producer,
            code: "gtin-42".into(),
        },
        rating: 4,
        title: None,
        text: text.into(),
    }))
    .created_at(at)
    .sign(author)
    .unwrap()
}

fn key_of(k: &SigningKey) -> AuthorKey {
    AuthorKey(k.verifying_key().to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_reaches_every_follower_and_only_followers() {
    let (x, y) = producer_keys();
    let (xk, yk) = (key_of(&x), key_of(&y));
    let a = start(&[xk], &[], TCP, 10).await;
    let b = start(&[xk], &[&a.addr], TCP, 10).await;
    let c = start(&[xk], &[&a.addr], TCP, 10).await;
    let d = start(&[yk], &[&a.addr], TCP, 10).await;
    let consumer = SigningKey::from_bytes(&[77; 32]);

    // Publish until the mesh has formed and the first record is through.
    let first = review(&consumer, xk, "first");
    b.node.publish(&first).await.unwrap();
    eventually("followers store the review", 30, async || {
        a.node.store().contains(&first.id()).unwrap()
            && c.node.store().contains(&first.id()).unwrap()
    })
    .await;
    for i in 0..5 {
        let r = review(
            &SigningKey::from_bytes(&[100 + i; 32]),
            xk,
            &format!("review {i}"),
        );
        c.node.publish(&r).await.unwrap();
        eventually("every follower stores it", 10, async || {
            a.node.store().contains(&r.id()).unwrap() && b.node.store().contains(&r.id()).unwrap()
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !d.node.store().contains(&first.id()).unwrap(),
        "a node that does not follow X stored X's review"
    );
    assert_eq!(d.node.store().len().unwrap(), 0);
    assert!(
        !d.node.status().await.unwrap().peers.is_empty(),
        "d was connected all along"
    );
    for n in [a, b, c, d] {
        n.node.shutdown().await.unwrap();
    }
}

/// Three nodes following `xk`: `a` listens; `b` and `h` (the one to misbehave) reach the
/// network only through `a`, so whatever `b` sees, `a` forwarded. Returns them once honest
/// traffic flows from `b` to `a` and `h`'s mesh includes `a`, with `h`'s peer id.
async fn a_b_and_h(xk: AuthorKey, consumer: &SigningKey) -> (TestNode, TestNode, TestNode, String) {
    let a = start(&[xk], &[], TCP, 3).await;
    let b = start(&[xk], &[&a.addr], &[], 3).await;
    let h = start(&[xk], &[&a.addr], &[], 3).await;
    let warmup = review(consumer, xk, "warm-up");
    b.node.publish(&warmup).await.unwrap();
    eventually("honest traffic flows", 30, async || {
        a.node.store().contains(&warmup.id()).unwrap()
    })
    .await;
    let h_id = h.node.status().await.unwrap().peer_id;
    eventually("h is connected to a", 10, async || {
        a.node.status().await.unwrap().peers.contains(&h_id)
    })
    .await;
    // Let h's mesh include a.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (a, b, h, h_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_is_dropped_not_forwarded_and_cut_off() {
    let (x, _) = producer_keys();
    let xk = key_of(&x);
    let consumer = SigningKey::from_bytes(&[9; 32]);
    let (a, b, h, h_id) = a_b_and_h(xk, &consumer).await;

    let shard = shard_of(&Topic::Producer(xk));
    let mut forged_ids = Vec::new();
    for i in 0..6u8 {
        let honest = review(&consumer, xk, &format!("forged {i}"));
        let other = SigningKey::from_bytes(&[200; 32]);
        use chorus_protocol::sign::message;
        let sig = ed25519_dalek::Signer::sign(&other, &message(&honest.id())).to_bytes();
        let forged = chorus_protocol::cbor::encode_wire(honest.record_bytes(), &sig);
        forged_ids.push(honest.id());
        h.node
            .publish_unchecked(shard.clone(), forged)
            .await
            .unwrap();
        h.node
            .publish_unchecked(shard.clone(), vec![0x82, 0x41, i])
            .await
            .unwrap();
    }
    eventually("a bans h", 20, async || {
        a.node.status().await.unwrap().banned.contains(&h_id)
    })
    .await;
    eventually("h is disconnected from a", 10, async || {
        !a.node.status().await.unwrap().peers.contains(&h_id)
    })
    .await;
    for id in &forged_ids {
        assert!(!a.node.store().contains(id).unwrap());
        assert!(!b.node.store().contains(id).unwrap());
    }
    assert_eq!(
        b.node.status().await.unwrap().rejected,
        0,
        "a forwarded invalid records to b"
    );
    assert!(a.node.status().await.unwrap().rejected >= 3);

    // Honest traffic keeps flowing.
    let after = review(&consumer, xk, "after the ban");
    b.node.publish(&after).await.unwrap();
    eventually("honest traffic after the ban", 15, async || {
        a.node.store().contains(&after.id()).unwrap()
    })
    .await;
    for n in [a, b, h] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_travel_over_quic() {
    let (x, _) = producer_keys();
    let xk = key_of(&x);
    let quic = &["/ip4/127.0.0.1/udp/0/quic-v1"];
    let a = start(&[xk], &[], quic, 10).await;
    assert!(a.addr.contains("/quic-v1/"), "{}", a.addr);
    let b = start(&[xk], &[&a.addr], quic, 10).await;
    let r = review(&SigningKey::from_bytes(&[5; 32]), xk, "over quic");
    b.node.publish(&r).await.unwrap();
    eventually("a stores the review sent over QUIC", 30, async || {
        a.node.store().contains(&r.id()).unwrap()
    })
    .await;
    for n in [a, b] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_published_with_nobody_listening_is_kept_and_delivered_later() {
    let (x, _) = producer_keys();
    let xk = key_of(&x);
    let a = start(&[xk], &[], TCP, 10).await;
    let r = review(&SigningKey::from_bytes(&[6; 32]), xk, "alone at first");
    let outcome = a.node.publish(&r).await.unwrap();
    assert!(
        matches!(outcome, chorus_node::Outcome::Stored(_)),
        "{outcome:?}"
    );
    let b = start(&[xk], &[&a.addr], TCP, 10).await;
    eventually("the late peer receives the kept record", 30, async || {
        b.node.store().contains(&r.id()).unwrap()
    })
    .await;
    for n in [a, b] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_can_change_at_run_time() {
    // b always follows its own key: x must live on another shard, or b keeps x's shard after
    // unfollowing x (rightly) and the last check below could not tell.
    let b_dir = new_dir();
    let (x, y) = producer_keys_avoiding(&[own_key(&b_dir)]);
    let (xk, yk) = (key_of(&x), key_of(&y));
    let a = start(&[xk], &[], TCP, 10).await;
    let b = start_in(b_dir, &[yk], &[&a.addr], TCP, 10).await;
    let author = SigningKey::from_bytes(&[8; 32]);
    let before = review(&author, xk, "before b follows x");
    a.node.publish(&before).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!b.node.store().contains(&before.id()).unwrap());

    b.node
        .follow(chorus_node::FollowChange::Producer(xk))
        .await
        .unwrap();
    assert!(b.node.following().producers.contains(&xk));
    assert!(b
        .node
        .status()
        .await
        .unwrap()
        .shards
        .contains(&shard_of(&Topic::Producer(xk))));
    // Keep publishing until the new subscription has joined the mesh; any of the reviews
    // arriving (even one published in an earlier turn, delivered late) proves it.
    let mut published = Vec::new();
    eventually("b stores x's feedback after following x", 30, async || {
        let r = review(&author, xk, &format!("after {}", published.len() + 1));
        a.node.publish(&r).await.unwrap();
        published.push(r.id());
        tokio::time::sleep(Duration::from_millis(400)).await;
        let store = b.node.store();
        published.iter().any(|id| store.contains(id).unwrap())
    })
    .await;
    b.node
        .unfollow(chorus_node::FollowChange::Producer(xk))
        .await
        .unwrap();
    assert!(!b
        .node
        .status()
        .await
        .unwrap()
        .shards
        .contains(&shard_of(&Topic::Producer(xk))));
    for n in [a, b] {
        n.node.shutdown().await.unwrap();
    }
}

/// A producer key other than `x` whose topic travels on the same shard.
fn same_shard_key(x: AuthorKey) -> AuthorKey {
    for i in 0..=u16::MAX {
        let mut seed = [9u8; 32];
        seed[..2].copy_from_slice(&i.to_le_bytes());
        let k = key_of(&SigningKey::from_bytes(&seed));
        if k != x && shard_of(&Topic::Producer(k)) == shard_of(&Topic::Producer(x)) {
            return k;
        }
    }
    unreachable!("one in 32 keys shares the shard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_follower_on_the_same_shard_checks_and_forwards_without_storing() {
    let (x, _) = producer_keys();
    let xk = key_of(&x);
    let zk = same_shard_key(xk);
    // e follows another producer on x's shard and is the only node that listens: a and f
    // (who follow x) can reach each other only through e.
    let e = start(&[zk], &[], TCP, 10).await;
    let a = start(&[xk], &[&e.addr], &[], 10).await;
    let f = start(&[xk], &[&e.addr], &[], 10).await;
    let author = SigningKey::from_bytes(&[11; 32]);
    // Keep publishing until the mesh carries one through; any of the reviews arriving (even
    // one published in an earlier turn, delivered late) proves the relay forwarded it.
    let mut published = Vec::new();
    eventually("f stores x's review relayed by e", 30, async || {
        let r = review(&author, xk, &format!("relayed {}", published.len() + 1));
        a.node.publish(&r).await.unwrap();
        published.push(r.id());
        tokio::time::sleep(Duration::from_millis(400)).await;
        let store = f.node.store();
        published.iter().any(|id| store.contains(id).unwrap())
    })
    .await;
    for id in &published {
        assert!(
            !e.node.store().contains(id).unwrap(),
            "the relay stored a topic it does not follow: {id}"
        );
    }
    assert_eq!(e.node.status().await.unwrap().rejected, 0);
    for n in [a, e, f] {
        n.node.shutdown().await.unwrap();
    }
}

/// A peer whose clock runs fast sends records dated an hour ahead: they are refused (not
/// stored, not forwarded) and the peer is not penalised for them, however many; its records
/// on time still get through. Records dated days ahead, beyond the skew and a day more
/// (`ingest::FAR_FUTURE_MS`), are the sender's fault: a few of them get it banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_clock_is_refused_unpenalised_and_only_far_future_records_are_blamed() {
    let (x, _) = producer_keys();
    let xk = key_of(&x);
    let consumer = SigningKey::from_bytes(&[9; 32]);
    let (a, b, fast, fast_id) = a_b_and_h(xk, &consumer).await;

    let shard = shard_of(&Topic::Producer(xk));
    let hour_ahead = chorus_node::clock::now_ms() + 3_600_000;
    let mut ahead = Vec::new();
    // Three times the number of faults that would get it banned.
    for i in 0..9u64 {
        let r = review_at(&consumer, xk, &format!("ahead {i}"), hour_ahead + i);
        ahead.push(r.id());
        fast.node
            .publish_unchecked(shard.clone(), r.wire().to_vec())
            .await
            .unwrap();
    }
    let on_time = review(&consumer, xk, "on time, from the fast node");
    fast.node
        .publish_unchecked(shard.clone(), on_time.wire().to_vec())
        .await
        .unwrap();
    eventually("the fast node's record on time reaches b", 20, async || {
        b.node.store().contains(&on_time.id()).unwrap()
    })
    .await;
    for id in &ahead {
        assert!(
            !a.node.store().contains(id).unwrap(),
            "stored a record an hour ahead"
        );
        assert!(
            !b.node.store().contains(id).unwrap(),
            "a forwarded a record an hour ahead"
        );
    }
    let status = a.node.status().await.unwrap();
    assert!(!status.banned.contains(&fast_id), "a fast clock got banned");
    assert!(status.peers.contains(&fast_id));

    // Days ahead: the sender's fault.
    let days_ahead = chorus_node::clock::now_ms() + 3 * 24 * 3_600_000;
    for i in 0..6u64 {
        let r = review_at(&consumer, xk, &format!("days ahead {i}"), days_ahead + i);
        fast.node
            .publish_unchecked(shard.clone(), r.wire().to_vec())
            .await
            .unwrap();
    }
    eventually(
        "a bans the peer sending records days ahead",
        20,
        async || a.node.status().await.unwrap().banned.contains(&fast_id),
    )
    .await;
    for n in [a, b, fast] {
        n.node.shutdown().await.unwrap();
    }
}

/// Issue 19's rules across nodes: a campaign withdrawn part-way, its records reaching two
/// nodes in different orders (an endorsement made after the withdrawal reaches one node
/// before the withdrawal does), ends with the same tally on both: the endorsements made by
/// the withdrawal count, their pledges fall short of the goal, nothing was ever reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_withdrawn_part_way_ends_alike_on_every_node_whatever_the_order() {
    let (x, _) = producer_keys();
    let xk = key_of(&x);
    let a = start(&[xk], &[], TCP, 3).await;
    let b = start(&[xk], &[&a.addr], &[], 3).await;
    let t0 = chorus_node::clock::now_ms() - 60_000;
    let author = SigningKey::from_bytes(&[40; 32]);
    let p = RecordBuilder::new(Body::Petition(Petition {
        producer: xk,
        product: None,
        group: None,
        title: "Tooling".into(),
        text: "Fund the mould".into(),
        threshold: 2,
        deadline: None,
        variant: PetitionVariant::Campaign {
            goal: "30EUR".parse().unwrap(),
        },
    }))
    .created_at(t0)
    .sign(&author)
    .unwrap();
    let signer = |k: u8| SigningKey::from_bytes(&[k; 32]);
    let pledge = |k: u8, at: u64, amount: &str| {
        chorus_protocol::testing::pledge(&p, &signer(k), at, Some(amount))
    };
    let e1 = pledge(41, t0 + 10_000, "20EUR");
    let e2 = pledge(42, t0 + 20_000, "5EUR");
    let withdrawal = chorus_protocol::testing::about(
        &p,
        &signer(40),
        t0 + 25_000,
        Body::Retraction(Retraction { target: p.id() }),
    );
    let e3 = pledge(43, t0 + 30_000, "10EUR");
    a.node.publish(&p).await.unwrap();
    eventually("the campaign reaches b", 20, async || {
        b.node.store().contains(&p.id()).unwrap()
    })
    .await;
    // a: e1, the withdrawal, then (from b) e2 and e3. b: e2, e3 before the withdrawal.
    a.node.publish(&e1).await.unwrap();
    a.node.publish(&withdrawal).await.unwrap();
    b.node.publish(&e2).await.unwrap();
    b.node.publish(&e3).await.unwrap();
    let settled = async |n: &TestNode| {
        let s = n.node.store();
        [&e1, &e2, &e3, &withdrawal]
            .iter()
            .all(|r| s.contains(&r.id()).unwrap())
    };
    eventually("every record reaches both nodes", 30, async || {
        settled(&a).await && settled(&b).await
    })
    .await;
    let ta = a.node.store().tally(&p.id()).unwrap().unwrap();
    let tb = b.node.store().tally(&p.id()).unwrap().unwrap();
    assert_eq!(ta, tb, "the two nodes disagree");
    assert_eq!(ta.endorsers, 2, "e3 was made after the withdrawal: {ta:?}");
    assert_eq!(ta.pledged_total(), Some(2_500), "{ta:?}");
    assert!(ta.withdrawn && !ta.funded && !ta.reached, "{ta:?}");
    assert_eq!(ta.withdrawn_at, Some(t0 + 25_000));
    // Two backers from t0 + 20 s, but 25 of 30 EUR: never reached.
    assert_eq!(ta.first_reached_at, None, "{ta:?}");
    for n in [a, b] {
        n.node.shutdown().await.unwrap();
    }
}
