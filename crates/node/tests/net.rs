//! The network layer alone, with no store, ingest or sync: two real swarms on loopback, the
//! test playing the judge of gossip and the answerer of requests.

use std::time::Duration;

use chorus_node::config::NetworkConfig;
use chorus_node::net::{self, Client, Events, Multiaddr, NetEvent, RequestProtocol, Verdict};
use tokio_util::sync::CancellationToken;

const SHARD: &str = "chorus/v1/p/00";

fn config(bootstrap: Vec<String>) -> NetworkConfig {
    NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        bootstrap,
        mdns: false,
        max_invalid: 3,
        ..NetworkConfig::default()
    }
}

fn protocol() -> RequestProtocol {
    RequestProtocol {
        name: "/chorus/test/1",
        max_request: 1024,
        max_response: 1024,
        timeout: Duration::from_secs(10),
        busy: b"busy".to_vec(),
    }
}

/// A running network: its client, events and listen address.
async fn start(bootstrap: Vec<String>, cancel: &CancellationToken) -> (Client, Events, Multiaddr) {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let (client, mut events, event_loop) = net::new(key, config(bootstrap), protocol()).unwrap();
    tokio::spawn(event_loop.run(cancel.clone()));
    client.set_shards(vec![SHARD.into()]).await.unwrap();
    let addr = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.node.recv()).await {
            Ok(Some(NetEvent::Listening(a))) => break a,
            Ok(Some(_)) => {}
            other => panic!("no listen address: {other:?}"),
        }
    };
    (client, events, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_is_judged_and_requests_are_answered_by_whoever_holds_the_channels() {
    let cancel = CancellationToken::new();
    let (a, mut a_events, a_addr) = start(Vec::new(), &cancel).await;
    let (b, mut b_events, _) = start(vec![a_addr.to_string()], &cancel).await;

    // The connection is reported to whoever schedules work per peer.
    let peer_a = tokio::time::timeout(Duration::from_secs(20), b_events.connected.recv())
        .await
        .expect("b connects")
        .unwrap();
    assert_eq!(peer_a.to_string(), a.status().await.unwrap().peer_id);

    // A request from b is handed to a's answerer, whose answer reaches b.
    let answerer = tokio::spawn(async move {
        let req = a_events.requests.recv().await.unwrap();
        let mut answer = b"echo: ".to_vec();
        answer.extend_from_slice(&req.request);
        a.respond(req.reply, answer).await;
        (a, a_events)
    });
    let answer = b.request(peer_a, b"ping".to_vec()).await.unwrap();
    assert_eq!(answer, b"echo: ping");
    let (a, mut a_events) = answerer.await.unwrap();

    // Gossip from b reaches a's judge once the mesh has formed (published until heard).
    let mut heard = None;
    for i in 0..100u32 {
        b.publish(SHARD.into(), format!("message {i}").into_bytes())
            .await
            .unwrap();
        if let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_millis(200), a_events.gossip.recv()).await
        {
            heard = Some(m);
            break;
        }
    }
    let msg = heard.expect("a hears b's gossip");
    assert!(msg.data.starts_with(b"message "));
    assert_eq!(msg.source.to_string(), b.status().await.unwrap().peer_id);
    a.verdict(msg.receipt, Verdict::Accept).await;

    // Invalid messages, judged so, cost the sender: at `max_invalid` it is banned.
    let mut rejected = 0;
    for i in 0..200u32 {
        if rejected >= 3 {
            break;
        }
        b.publish(SHARD.into(), format!("garbage {i}").into_bytes())
            .await
            .unwrap();
        while let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_millis(100), a_events.gossip.recv()).await
        {
            a.verdict(m.receipt, Verdict::Reject).await;
            rejected += 1;
        }
    }
    assert!(rejected >= 3, "{rejected} judged");
    let banned = loop {
        match tokio::time::timeout(Duration::from_secs(10), a_events.node.recv()).await {
            Ok(Some(NetEvent::PeerBanned(p))) => break p,
            Ok(Some(_)) => {}
            other => panic!("b was not banned: {other:?}"),
        }
    };
    assert_eq!(banned.to_string(), b.status().await.unwrap().peer_id);
    assert!(a.peers().await.unwrap().banned.contains(&banned));
    cancel.cancel();
}
