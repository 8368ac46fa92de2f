//! Helpers shared by the in-process multi-node tests: a node on a temporary data dir,
//! listening on 127.0.0.1, and waiting for a condition.
#![allow(dead_code)]

use std::time::Duration;

use chorus_node::config::Config;
use chorus_node::net::PeerId;
use chorus_node::{DataDir, NetEvent, Node};
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, StreamProtocol, Swarm};
use tempfile::TempDir;

/// A running node, its listen address (`.../p2p/PEERID`) and its data dir.
pub struct TestNode {
    pub node: Node,
    pub addr: String,
    pub _dir: TempDir,
}

/// Starts a node listening on 127.0.0.1 (no mDNS, no API), bootstrapping from
/// `bootstrap`, with `tune` applied to its config; waits until it listens (unless `tune`
/// left it nothing to listen on: `addr` is empty then, and only it dials).
pub async fn start_with(bootstrap: &[&str], tune: impl FnOnce(&mut Config)) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    data.init().unwrap();
    let mut config = Config::default();
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.network.bootstrap = bootstrap.iter().map(|s| s.to_string()).collect();
    config.network.mdns = false;
    config.api.listen = String::new();
    tune(&mut config);
    let config_listens = config.network.listen.clone();
    let (node, mut events) = Node::start(&data, config).await.unwrap();
    let mut addr = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let listens = !config_listens.is_empty();
    while listens && addr.is_empty() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(NetEvent::Listening(a))) => addr = a.to_string(),
            Ok(Some(_)) => {}
            _ => panic!("node did not listen"),
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

/// Waits up to `secs` for `cond`, checking every 100 ms; panics naming `what` after.
pub async fn eventually(what: &str, secs: u64, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The peer id at the end of a full address.
pub fn peer_of(addr: &str) -> PeerId {
    let a: Multiaddr = addr.parse().unwrap();
    match a.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(p)) => p,
        _ => panic!("no /p2p in {addr}"),
    }
}

/// A swarm of `behaviour` on TCP (noise, yamux), for a fake peer that speaks Chorus's
/// protocols by hand, listening on 127.0.0.1; with its full address.
pub async fn fake_peer<B: NetworkBehaviour>(
    behaviour: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> (Swarm<B>, String) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| behaviour(key))
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address.with(libp2p::multiaddr::Protocol::P2p(*swarm.local_peer_id()));
        }
    };
    (swarm, addr.to_string())
}

/// The sync protocol (`/chorus/sync/1`), asked and answered, as a fake peer speaks it.
pub fn sync_protocol() -> request_response::Behaviour<chorus_node::net::RequestCodec> {
    request_response::Behaviour::with_codec(
        chorus_node::sync::codec(),
        [(
            StreamProtocol::new(chorus_node::sync::PROTOCOL),
            ProtocolSupport::Full,
        )],
        request_response::Config::default(),
    )
}
