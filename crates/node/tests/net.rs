//! The network layer alone, with no store, ingest or sync: two real swarms on loopback, the
//! test playing the judge of gossip and the answerer of requests.

use std::time::Duration;

use chorus_node::config::NetworkConfig;
use chorus_node::net::{
    self, Client, Events, InboundLimits, Multiaddr, NetEvent, RequestProtocol, Verdict,
};
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
        limits: InboundLimits {
            peer_streams: 8,
            total_streams: 64,
            peer_rate: 100,
            peer_bytes: 1 << 20,
            total_bytes: 8 << 20,
        },
    }
}

/// A running network: its client, events and listen address.
async fn start(bootstrap: Vec<String>, cancel: &CancellationToken) -> (Client, Events, Multiaddr) {
    start_with(config(bootstrap), protocol(), cancel).await
}

async fn start_with(
    config: NetworkConfig,
    protocol: RequestProtocol,
    cancel: &CancellationToken,
) -> (Client, Events, Multiaddr) {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let (client, mut events, event_loop) = net::new(key, config, protocol).unwrap();
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

/// The peer id at the end of a full address.
fn peer_of(addr: &Multiaddr) -> libp2p::PeerId {
    match addr.iter().last() {
        Some(net::Protocol::P2p(p)) => p,
        _ => panic!("no /p2p in {addr}"),
    }
}

async fn connected(client: &Client, peer: libp2p::PeerId) -> bool {
    client.peers().await.unwrap().connected.contains(&peer)
}

/// Issue 18: a peer over its open streams, or asking more than its memory allowance holds, is
/// answered `busy` without its request being read or handed to the answerer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_a_peers_limits_are_refused_unread() {
    let cancel = CancellationToken::new();
    let mut tight = protocol();
    tight.max_request = 64 * 1024;
    tight.limits = InboundLimits {
        peer_streams: 2,
        total_streams: 64,
        peer_rate: 1_000,
        peer_bytes: 16 * 1024,
        total_bytes: 1 << 20,
    };
    let (a, mut a_events, a_addr) = start_with(config(Vec::new()), tight, &cancel).await;
    let (b, _b_events, _) = start(vec![a_addr.to_string()], &cancel).await;
    let peer_a = peer_of(&a_addr);
    for _ in 0..100 {
        if connected(&b, peer_a).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Five requests at once, while nobody answers: two streams are admitted and read, the
    // other three are answered busy at once.
    let asks: Vec<_> = (0..5u8)
        .map(|i| {
            let b = b.clone();
            tokio::spawn(async move { b.request(peer_a, vec![i; 10]).await })
        })
        .collect();
    let mut held = Vec::new();
    for _ in 0..2 {
        let r = tokio::time::timeout(Duration::from_secs(10), a_events.requests.recv())
            .await
            .expect("two requests reach the answerer")
            .unwrap();
        held.push(r);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        a_events.requests.try_recv().is_err(),
        "no third request was read"
    );
    let mut busy = 0;
    let mut waiting = Vec::new();
    for ask in asks {
        if ask.is_finished() {
            assert_eq!(ask.await.unwrap().unwrap(), b"busy");
            busy += 1;
        } else {
            waiting.push(ask);
        }
    }
    assert_eq!(busy, 3, "three requests over the peer's two streams");
    for r in held {
        let answer = r.request.clone();
        a.respond(r.reply, answer).await;
    }
    for ask in waiting {
        let answer = ask.await.unwrap().unwrap();
        assert_eq!(answer.len(), 10, "the admitted requests are answered");
    }

    // A request larger than the peer's 16 KiB allowance: busy, never handed up.
    let answer = b.request(peer_a, vec![7; 40 * 1024]).await.unwrap();
    assert_eq!(answer, b"busy");
    assert!(a_events.requests.try_recv().is_err());
    // Within the allowance, it is read and answered as ever.
    let asked = tokio::spawn({
        let b = b.clone();
        async move { b.request(peer_a, vec![8; 8 * 1024]).await }
    });
    let r = tokio::time::timeout(Duration::from_secs(10), a_events.requests.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.request.len(), 8 * 1024);
    a.respond(r.reply, b"ok".to_vec()).await;
    assert_eq!(asked.await.unwrap().unwrap(), b"ok");
    // An answer larger than the allowance is replaced by busy.
    let asked = tokio::spawn({
        let b = b.clone();
        async move { b.request(peer_a, b"big answer".to_vec()).await }
    });
    let r = tokio::time::timeout(Duration::from_secs(10), a_events.requests.recv())
        .await
        .unwrap()
        .unwrap();
    a.respond(r.reply, vec![0; 20 * 1024]).await;
    assert_eq!(asked.await.unwrap().unwrap(), b"busy");
    cancel.cancel();
}

/// Issue 18: connections still in their handshake are bounded: while silent TCP connections
/// hold the only pending slots, a peer cannot connect; once they go, it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_incoming_connections_are_bounded() {
    let cancel = CancellationToken::new();
    let limited = NetworkConfig {
        max_pending_incoming: 2,
        ..config(Vec::new())
    };
    let (a, _a_events, a_addr) = start_with(limited, protocol(), &cancel).await;
    let port = a_addr
        .iter()
        .find_map(|p| match p {
            net::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    let silent: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (b, _b_events, b_addr) = start(Vec::new(), &cancel).await;
    let peer_a = peer_of(&a_addr);
    b.dial(a_addr.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !connected(&b, peer_a).await,
        "refused while the pending slots are taken"
    );
    assert!(!connected(&a, peer_of(&b_addr)).await);

    drop(silent);
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.dial(a_addr).await.unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if connected(&b, peer_a).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "connects once the slots are free");
    cancel.cancel();
}
