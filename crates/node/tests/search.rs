//! Search between real libp2p swarms in one process, on 127.0.0.1 (PROTOCOL.md §13.5): a
//! node that follows nothing finds, through the peers that keep everything, a producer by
//! an accented name and a petition by a word of its title or a prefix of its id; what a
//! lying peer returns (forged records, records that do not match) is dropped and counted
//! against it until it is refused; and a search costs a few kilobytes.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use chorus_node::follow::FollowChange;
use chorus_node::net::PROTOCOL_VERSION;
use chorus_protocol::sync::wire::{kinds, Hit, HitKind, Request, Response, Scope};
use chorus_protocol::{
    AuthorKey, Body, Petition, PetitionVariant, Profile, RecordBuilder, Role, SignedRecord,
    SigningKey,
};
use futures::StreamExt;
use libp2p::identify;
use libp2p::request_response;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};

use common::{eventually, peer_of, start_with};

fn now() -> u64 {
    chorus_node::clock::now_ms()
}

fn signed(k: &SigningKey, body: Body) -> SignedRecord {
    RecordBuilder::new(body)
        .created_at(now() - 10_000)
        .sign(k)
        .unwrap()
}

fn petition(k: &SigningKey, producer: AuthorKey, title: &str) -> SignedRecord {
    signed(
        k,
        Body::Petition(Petition {
            producer,
            product: None,
            group: None,
            title: title.into(),
            text: "Please".into(),
            threshold: 10,
            deadline: None,
            variant: PetitionVariant::Demand,
        }),
    )
}

#[derive(NetworkBehaviour)]
struct LiarBehaviour {
    requests: request_response::Behaviour<chorus_node::net::RequestCodec>,
    identify: identify::Behaviour,
}

/// A peer that speaks Chorus 1.2 and answers every search with `hits`.
async fn liar(hits: Vec<Hit>, profiles: Vec<Vec<u8>>) -> (String, tokio::task::JoinHandle<()>) {
    let (mut swarm, addr) = common::fake_peer(|key| LiarBehaviour {
        requests: common::sync_protocol(),
        identify: identify::Behaviour::new(identify::Config::new(
            PROTOCOL_VERSION.into(),
            key.public(),
        )),
    })
    .await;
    let task = tokio::spawn(async move {
        loop {
            let SwarmEvent::Behaviour(LiarBehaviourEvent::Requests(
                request_response::Event::Message {
                    message:
                        request_response::Message::Request {
                            request, channel, ..
                        },
                    ..
                },
            )) = swarm.select_next_some().await
            else {
                continue;
            };
            let answer = match Request::decode(&request) {
                Ok(Request::Search { .. }) => Response::Found {
                    scope: Scope::Everything,
                    hits: hits.clone(),
                    profiles: profiles.clone(),
                },
                _ => Response::error("busy", "later"),
            };
            let _ = swarm
                .behaviour_mut()
                .requests
                .send_response(channel, answer.encode());
        }
    });
    (addr.to_string(), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_follows_nothing_finds_through_its_peers_and_a_liar_gains_nothing() {
    // The archive keeps everything: a producer's profile and a petition aimed at it.
    let archive = start_with(&[], |c| c.follow.all = true).await;
    let producer_key = SigningKey::from_bytes(&[7; 32]);
    let producer = AuthorKey(producer_key.verifying_key().to_bytes());
    let profile = signed(
        &producer_key,
        Body::Profile(Profile {
            name: "Café Ledito".into(),
            role: Role::Producer,
            about: None,
        }),
    );
    let kettles = petition(
        &SigningKey::from_bytes(&[8; 32]),
        producer,
        "Repairable kettles",
    );
    // The petition's author, and someone this story never meets.
    let consumer_profile = |seed: u8, name: &str| {
        signed(
            &SigningKey::from_bytes(&[seed; 32]),
            Body::Profile(Profile {
                name: name.into(),
                role: Role::Consumer,
                about: None,
            }),
        )
    };
    let (ada, bob) = (
        consumer_profile(8, "Ada Kettle"),
        consumer_profile(10, "Bob Stranger"),
    );
    let outs = archive
        .node
        .ingest()
        .ingest(
            [&profile, &kettles, &ada, &bob]
                .iter()
                .map(|r| r.wire().to_vec())
                .collect(),
        )
        .await
        .unwrap();
    assert!(outs.iter().all(|o| o.is_accepted()), "{outs:?}");

    // The liar answers with a forged copy of a petition (a flipped signature byte) and a
    // valid record that does not match what is asked, each "counted" a million times.
    let mut forged = petition(
        &SigningKey::from_bytes(&[9; 32]),
        producer,
        "Repairable kettles",
    )
    .wire()
    .to_vec();
    let n = forged.len();
    forged[n - 5] ^= 1;
    let off_topic = petition(
        &SigningKey::from_bytes(&[9; 32]),
        producer,
        "Cheaper toasters",
    );
    let lies = vec![
        Hit {
            kind: HitKind::Petition,
            wire: forged,
            count: 1_000_000,
        },
        Hit {
            kind: HitKind::Petition,
            wire: off_topic.wire().to_vec(),
            count: 1_000_000,
        },
    ];
    // And a valid profile that no hit of its concerns, to name someone falsely.
    let stranger = signed(
        &SigningKey::from_bytes(&[11; 32]),
        Body::Profile(Profile {
            name: "Café Ledito".into(),
            role: Role::Producer,
            about: None,
        }),
    );
    let (liar_addr, liar_task) = liar(lies, vec![stranger.wire().to_vec()]).await;

    // A consumer's node: it follows nothing (meta aside), and is refused nothing yet.
    let consumer = start_with(&[&archive.addr], |c| {
        c.network.max_invalid = 3;
        c.sync.on_connect = false;
        c.sync.repair = Duration::ZERO;
    })
    .await;
    consumer
        .node
        .client()
        .dial(liar_addr.parse().unwrap())
        .await
        .unwrap();
    let (a, l) = (peer_of(&archive.addr), peer_of(&liar_addr));
    eventually("both peers announce search", 20, async || {
        let p = consumer.node.client().peers().await.unwrap();
        p.searchable.contains(&a) && p.searchable.contains(&l)
    })
    .await;

    let dir = consumer.node.directory();
    let found = dir.search("kettles", kinds::ALL, 20, true).await.unwrap();
    assert_eq!(found.asked, 2, "{found:?}");
    assert_eq!(found.answered, 2, "{found:?}");
    assert_eq!(found.complete, 2, "{found:?}");
    assert_eq!(found.dropped, 3, "every lie is dropped: {found:?}");
    assert_eq!(found.hits.len(), 1, "{found:?}");
    let hit = &found.hits[0];
    assert_eq!(hit.record.id(), kettles.id());
    assert_eq!(hit.kind, HitKind::Petition);
    assert_eq!(hit.count, 0, "the archive's count, not the liar's");
    assert!(!hit.here);
    // Found, not stored: the consumer does not follow the producer. The archive's answer
    // carried the producer's profile, so the result is named, not stored either.
    assert!(!consumer.node.store().contains(&kettles.id()).unwrap());
    assert_eq!(dir.name_of(&producer).as_deref(), Some("Café Ledito"));
    assert_eq!(dir.name_of(&stranger.author()), None);
    assert!(!consumer.node.store().has_profile(&producer).unwrap());
    // By a prefix of its id.
    let prefix = &kettles.id().to_string()[..10];
    let by_id = dir.search(prefix, kinds::PETITION, 5, true).await.unwrap();
    assert_eq!(by_id.hits.len(), 1, "{by_id:?}");
    assert_eq!(by_id.hits[0].record.id(), kettles.id());

    // "cafe" finds "Café Ledito". A consumer keeps only the profiles it uses: this one is
    // remembered for acting on, not stored.
    let cafe = dir.search("CAFE", kinds::PROFILE, 20, true).await.unwrap();
    assert_eq!(cafe.hits.len(), 1, "{cafe:?}");
    let found_profile = cafe.hits[0].record.clone();
    assert_eq!(found_profile.author(), producer);
    assert!(dir.recently_found(&found_profile.id()).is_some());
    assert!(!consumer.node.store().has_profile(&producer).unwrap());
    assert_eq!(
        consumer.node.store().keys_named("cafe ledito", 5).unwrap(),
        []
    );
    // Nothing the liar sent was stored.
    assert!(consumer
        .node
        .store()
        .record(&off_topic.id())
        .unwrap()
        .is_none());

    // Every lie counts against the liar: it is refused soon.
    eventually("the liar is refused", 20, async || {
        let _ = dir.search("kettles", kinds::ALL, 20, true).await;
        consumer
            .node
            .status()
            .await
            .unwrap()
            .banned
            .contains(&l.to_string())
    })
    .await;
    let again = dir.search("kettles", kinds::ALL, 20, true).await.unwrap();
    assert_eq!(again.asked, 1, "only the archive is asked now: {again:?}");
    assert_eq!(again.hits.len(), 1);
    // A search costs a few kilobytes (request and answer).
    assert!(again.bytes < 4_096, "{again:?}");

    // Following the producer brings its topic and its profile; the petition's author's
    // profile follows soon after (the node wants the authors of what it stores), and no
    // other profile comes.
    consumer
        .node
        .follow(FollowChange::Producer(producer))
        .await
        .unwrap();
    consumer.node.sync_now(Some(a)).await.unwrap();
    let store = consumer.node.store();
    assert!(store.contains(&kettles.id()).unwrap());
    assert_eq!(store.profile(&producer).unwrap(), Some(profile.clone()));
    assert_eq!(store.keys_named("cafe ledito", 5).unwrap(), [producer]);
    eventually("the petition's author's profile arrives", 20, async || {
        store.has_profile(&ada.author()).unwrap()
    })
    .await;
    assert!(!store.has_profile(&bob.author()).unwrap());
    assert!(store.record(&bob.id()).unwrap().is_none());

    liar_task.abort();
    for n in [consumer, archive] {
        n.node.shutdown().await.unwrap();
    }
}
