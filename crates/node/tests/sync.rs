//! Catch-up sync between real libp2p swarms in one process, on 127.0.0.1: an offline node
//! catches up, partitions heal, identical stores exchange almost nothing, a lying or
//! stalling peer neither corrupts nor wedges an honest node, and peers flooding a node with
//! the largest requests do not keep an honest peer from pulling.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chorus_node::config::Config;
use chorus_node::workload::{generate, Params};
use chorus_node::{Node, SyncReport};
use chorus_protocol::sync::reconcile::{Bound, Mode, Part};
use chorus_protocol::sync::wire::{Hit, HitKind, Request, Response, Scope};
use chorus_protocol::{RecordId, SignedRecord};
use common::{eventually, peer_of, TestNode};
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, StreamProtocol};

/// A node that follows everything (what these tests sync), tuned by `tune`.
async fn start_with(bootstrap: &[&str], tune: impl FnOnce(&mut Config)) -> TestNode {
    common::start_with(bootstrap, |c| {
        c.follow.all = true;
        tune(c)
    })
    .await
}

async fn start(bootstrap: &[&str]) -> TestNode {
    start_with(bootstrap, |_| {}).await
}

fn workload(seed: u64, n: usize) -> Vec<SignedRecord> {
    let mut p = Params::realistic(n);
    p.text_bytes = 40;
    generate(seed, &p)
}

async fn ingest(node: &Node, recs: &[SignedRecord]) {
    for chunk in recs.chunks(1000) {
        let outs = node
            .ingest()
            .ingest(chunk.iter().map(|r| r.wire().to_vec()).collect())
            .await
            .unwrap();
        assert!(outs.iter().all(|o| o.is_accepted()), "{outs:?}");
    }
}

fn ids(node: &Node) -> BTreeSet<RecordId> {
    node.store().ids().unwrap().into_iter().collect()
}

async fn connected(node: &Node, peer: &str) {
    let want = peer_of(peer).to_string();
    eventually("peers connect", 20, async || {
        node.status().await.unwrap().peers.contains(&want)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_offline_catches_up_on_connect() {
    let a = start(&[]).await;
    // `b` does not pull on connect: a pull started then (before the ingest below) could
    // still be running when `sync_now` asks, which would join it and report its stale
    // result. So the explicit pull is b's only one. (`c`, below, does pull on connect.)
    let b = start_with(&[&a.addr], |c| {
        c.sync.on_connect = false;
        c.sync.repair = Duration::ZERO;
    })
    .await;
    connected(&b.node, &a.addr).await;
    // 5,000 records reach the online nodes while `c` is off.
    let recs = workload(1, 5_000);
    ingest(&a.node, &recs).await;
    let held = ids(&a.node);
    assert!(held.len() >= 4_900, "{}", held.len());
    // `b` was online: it pulls too (periodically or now).
    b.node.sync_now(None).await.unwrap();
    assert_eq!(ids(&b.node), held);

    let c = start(&[&b.addr]).await;
    eventually("the returning node holds every record", 60, async || {
        c.node.store().len().unwrap() as usize >= held.len()
    })
    .await;
    assert_eq!(ids(&c.node), held);
    assert_eq!(
        c.node.store().derived_snapshot().unwrap(),
        a.node.store().derived_snapshot().unwrap(),
        "same records, same tallies"
    );
    for n in [a, b, c] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_heal_to_identical_sets_and_tallies() {
    let fast = |c: &mut Config| c.sync.interval = Duration::from_secs(2);
    let a1 = start_with(&[], fast).await;
    let a2 = start_with(&[&a1.addr], fast).await;
    let b1 = start_with(&[], fast).await;
    let b2 = start_with(&[&b1.addr], fast).await;
    connected(&a2.node, &a1.addr).await;
    connected(&b2.node, &b1.addr).await;
    // One history, split between the sides (and some of it on both).
    let recs = workload(2, 3_000);
    let (side_a, side_b): (Vec<_>, Vec<_>) = recs
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 3 != 0);
    let side_a: Vec<SignedRecord> = side_a.into_iter().map(|(_, r)| r).collect();
    let side_b: Vec<SignedRecord> = side_b.into_iter().map(|(_, r)| r).collect();
    ingest(&a1.node, &side_a[..side_a.len() / 2]).await;
    ingest(&a2.node, &side_a[side_a.len() / 2..]).await;
    ingest(&b1.node, &side_b).await;
    ingest(&b2.node, &recs[..200]).await;
    assert_ne!(ids(&a1.node), ids(&b1.node));

    // Heal: one link between the halves.
    a1.node
        .client()
        .dial(b1.addr.parse().unwrap())
        .await
        .unwrap();
    let nodes = [&a1, &a2, &b1, &b2];
    eventually("all four hold the same records", 90, async || {
        let first = ids(&nodes[0].node);
        nodes.iter().all(|n| ids(&n.node) == first)
    })
    .await;
    let snapshot = a1.node.store().derived_snapshot().unwrap();
    for n in &nodes[1..] {
        assert_eq!(n.node.store().derived_snapshot().unwrap(), snapshot);
    }
    for n in [a1, a2, b1, b2] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_stores_exchange_a_handful_of_small_messages() {
    let recs = workload(3, 4_000);
    let off = |c: &mut Config| {
        c.sync.on_connect = false;
        c.sync.repair = Duration::ZERO;
    };
    let a = start_with(&[], off).await;
    ingest(&a.node, &recs).await;
    let b = start_with(&[&a.addr], off).await;
    ingest(&b.node, &recs).await;
    connected(&b.node, &a.addr).await;
    let reports: Vec<SyncReport> = b.node.sync_now(None).await.unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.error, None);
    assert_eq!(r.rounds, 1, "{r:?}");
    assert_eq!(r.fetches, 0);
    assert_eq!(r.needed, 0);
    assert!(r.bytes_sent + r.bytes_received < 100, "{r:?}");
    a.node.shutdown().await.unwrap();
    b.node.shutdown().await.unwrap();
}

/// A peer that speaks the sync protocol and lies: it claims ids it does not have, answers
/// fetches with forged and unrequested records, or (when `stall`) never answers at all.
async fn liar(forged: Vec<Vec<u8>>, stall: bool) -> (String, tokio::task::JoinHandle<()>) {
    let (mut swarm, addr) = common::fake_peer(|_| common::sync_protocol()).await;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut round = 0u8;
        loop {
            let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = swarm.select_next_some().await
            else {
                continue;
            };
            if stall {
                held.push(channel);
                continue;
            }
            round = round.wrapping_add(1);
            let answer = match Request::decode(&request) {
                // Wrong fingerprints, then ids it does not have.
                Ok(Request::Reconcile(_)) if round % 2 == 1 => Response::Reconcile(vec![
                    Part {
                        upper: Bound::Below(vec![1, round]),
                        mode: Mode::Fingerprint([round; 16]),
                    },
                    Part {
                        upper: Bound::End,
                        mode: Mode::Ids((0..8).map(|i| [i ^ round; 32]).collect()),
                    },
                ]),
                Ok(Request::Reconcile(_)) => Response::Reconcile(vec![Part {
                    upper: Bound::End,
                    mode: Mode::Ids((0..8).map(|i| [i + 100; 32]).collect()),
                }]),
                Ok(Request::Fetch(_)) => Response::Records(forged.clone()),
                // Forged records as what everyone looks for.
                Ok(Request::Search { .. }) => Response::Found {
                    scope: Scope::Everything,
                    profiles: Vec::new(),
                    hits: forged
                        .iter()
                        .map(|w| Hit {
                            kind: HitKind::Petition,
                            wire: w.clone(),
                            count: 1_000_000,
                        })
                        .collect(),
                },
                Err(_) => Response::error("malformed", "?"),
            };
            let _ = swarm
                .behaviour_mut()
                .send_response(channel, answer.encode());
        }
    });
    (addr.to_string(), task)
}

/// Records that look right but are forged: another key's signature, or a flipped byte.
fn forgeries() -> Vec<Vec<u8>> {
    let recs = workload(9, 40);
    recs.iter()
        .take(20)
        .map(|r| {
            let mut w = r.wire().to_vec();
            let n = w.len();
            w[n - 5] ^= 1; // inside the signature
            w
        })
        .chain(std::iter::once(b"not even cbor".to_vec()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_peer_neither_corrupts_nor_wedges_an_honest_node() {
    let honest = start(&[]).await;
    let recs = workload(4, 1_000);
    ingest(&honest.node, &recs).await;
    let node = start_with(&[], |c| {
        c.network.max_invalid = 5;
        c.sync.on_connect = false;
        c.sync.repair = Duration::ZERO;
    })
    .await;

    let (liar_addr, liar_task) = liar(forgeries(), false).await;
    node.node
        .client()
        .dial(liar_addr.parse().unwrap())
        .await
        .unwrap();
    connected(&node.node, &liar_addr).await;
    let reports = node.node.sync_now(Some(peer_of(&liar_addr))).await.unwrap();
    let r = &reports[0];
    assert!(
        r.invalid > 0,
        "forged records are counted against the liar: {r:?}"
    );
    assert_eq!(r.stored, 0, "{r:?}");
    assert!(node.node.store().is_empty(), "nothing forged was stored");
    eventually("the liar is banned", 20, async || {
        node.node
            .status()
            .await
            .unwrap()
            .banned
            .contains(&peer_of(&liar_addr).to_string())
    })
    .await;

    // A staller: the pull gives up after the request timeout; the node carries on.
    let staller_node = start_with(&[], |c| {
        c.sync.on_connect = false;
        c.sync.repair = Duration::ZERO;
        c.sync.request_timeout = Duration::from_secs(2);
    })
    .await;
    let (stall_addr, stall_task) = liar(Vec::new(), true).await;
    staller_node
        .node
        .client()
        .dial(stall_addr.parse().unwrap())
        .await
        .unwrap();
    connected(&staller_node.node, &stall_addr).await;
    let started = std::time::Instant::now();
    let reports = staller_node
        .node
        .sync_now(Some(peer_of(&stall_addr)))
        .await
        .unwrap();
    assert!(reports[0].error.is_some(), "{:?}", reports[0]);
    assert!(started.elapsed() < Duration::from_secs(20));

    // Both nodes still catch up from an honest peer.
    for n in [&node, &staller_node] {
        n.node
            .client()
            .dial(honest.addr.parse().unwrap())
            .await
            .unwrap();
        connected(&n.node, &honest.addr).await;
        let r = n.node.sync_now(Some(peer_of(&honest.addr))).await.unwrap();
        assert_eq!(r[0].error, None, "{:?}", r[0]);
        assert_eq!(ids(&n.node), ids(&honest.node));
    }
    liar_task.abort();
    stall_task.abort();
    for n in [honest, node, staller_node] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_gossip_missed_is_repaired_by_a_pull_from_a_random_peer() {
    // Neither the pull on connect nor the periodic pull from every peer: only the repair.
    let tune = |c: &mut Config| {
        c.sync.on_connect = false;
        c.sync.interval = Duration::from_secs(3600);
        c.sync.repair = Duration::from_secs(1);
    };
    let a = start_with(&[], tune).await;
    let b = start_with(&[&a.addr], tune).await;
    connected(&b.node, &a.addr).await;
    // Stored on `a` without gossip, as if every copy had been lost on the way.
    let recs = workload(9, 300);
    ingest(&a.node, &recs).await;
    let held = ids(&a.node);
    eventually("the repair pull brings every record", 30, async || {
        ids(&b.node) == held
    })
    .await;
    for n in [a, b] {
        n.node.shutdown().await.unwrap();
    }
}

/// What a flooding peer got back.
#[derive(Default)]
struct FloodCounts {
    busy: std::sync::atomic::AtomicU64,
    answered: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

/// A peer that sends `requests` (in turn) to `target`, `at_once` of them in flight at all
/// times, each refusal or failure followed at once by the next.
async fn flooder(
    target: &str,
    requests: Vec<Vec<u8>>,
    at_once: usize,
) -> (std::sync::Arc<FloodCounts>, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                chorus_node::sync::codec(),
                [(
                    StreamProtocol::new(chorus_node::sync::PROTOCOL),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_max_concurrent_streams(at_once * 2),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let peer = peer_of(target);
    let addr = target.parse::<Multiaddr>().unwrap();
    swarm.dial(addr.clone()).unwrap();
    let counts = std::sync::Arc::new(FloodCounts::default());
    let seen = counts.clone();
    let task = tokio::spawn(async move {
        let mut next = 0usize;
        let mut connected = false;
        let mut send = |swarm: &mut libp2p::Swarm<request_response::Behaviour<_>>| {
            let r = requests[next % requests.len()].clone();
            next += 1;
            swarm.behaviour_mut().send_request(&peer, r);
        };
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => {
                    connected = true;
                    for _ in 0..at_once {
                        send(&mut swarm);
                    }
                }
                // Dropped (a loaded machine can time a connection out): dial again after a
                // pause, instead of sending into a dial that fails at once, in a loop that
                // would hold a runtime thread.
                SwarmEvent::ConnectionClosed { .. } => {
                    connected = false;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = swarm.dial(addr.clone());
                }
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    match Response::decode(&response) {
                        Ok(Response::Error { code, .. }) if code == "busy" => {
                            seen.busy.fetch_add(1, Relaxed)
                        }
                        _ => seen.answered.fetch_add(1, Relaxed),
                    };
                    send(&mut swarm);
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                    seen.failed.fetch_add(1, Relaxed);
                    if connected {
                        send(&mut swarm);
                    }
                }
                _ => {}
            }
        }
    });
    (counts, task)
}

/// A reconciliation request as large as a valid one gets: `n` fingerprints of ranges that
/// cover the key space in order, then every id prefix it may list.
fn heavy_reconcile(n: u32) -> Vec<u8> {
    use chorus_protocol::sync::wire::MAX_IDS;
    let step = u32::MAX / n;
    let mut parts: Vec<Part> = (1..n)
        .map(|i| Part {
            upper: Bound::Below((i * step).to_be_bytes().to_vec()),
            mode: Mode::Fingerprint([(i % 251) as u8; 16]),
        })
        .collect();
    parts.push(Part {
        upper: Bound::End,
        mode: Mode::Have((0..MAX_IDS as u64).map(|i| i.to_be_bytes()).collect()),
    });
    Request::Reconcile(parts).encode()
}

/// Issue 18: peers flooding a node with the largest valid sync requests, as many at once as
/// they can, get `busy` beyond their share, and an honest peer's pull still completes: the
/// node takes requests in turns between peers instead of answering whoever asked last
/// `busy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sync_requests_does_not_starve_an_honest_pull() {
    use std::sync::atomic::Ordering::Relaxed;
    let target = start(&[]).await;
    let recs = workload(11, 2_000);
    ingest(&target.node, &recs).await;
    let held: Vec<[u8; 32]> = recs.iter().map(|r| *r.id().as_bytes()).collect();
    let heavy = vec![
        heavy_reconcile(2_000),
        Request::Fetch(held[..1024].to_vec()).encode(),
        Request::Fetch(held[1024..].to_vec()).encode(),
    ];
    assert!(heavy[0].len() > 250_000, "{} bytes", heavy[0].len());
    let mut floods = Vec::new();
    for _ in 0..4 {
        floods.push(flooder(&target.addr, heavy.clone(), 16).await);
    }
    eventually("the flood is answered", 60, async || {
        floods
            .iter()
            .all(|(c, _)| c.answered.load(Relaxed) + c.busy.load(Relaxed) > 0)
    })
    .await;

    let honest = start_with(&[], |c| {
        c.sync.on_connect = false;
        c.sync.repair = Duration::ZERO;
    })
    .await;
    honest
        .node
        .client()
        .dial(target.addr.parse().unwrap())
        .await
        .unwrap();
    connected(&honest.node, &target.addr).await;
    let started = std::time::Instant::now();
    let reports = honest
        .node
        .sync_now(Some(peer_of(&target.addr)))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(reports[0].error, None, "{:?}", reports[0]);
    assert_eq!(ids(&honest.node), ids(&target.node));
    assert!(took < Duration::from_secs(60), "the pull took {took:?}");

    let busy: u64 = floods.iter().map(|(c, _)| c.busy.load(Relaxed)).sum();
    let answered: u64 = floods.iter().map(|(c, _)| c.answered.load(Relaxed)).sum();
    assert!(
        busy > 0,
        "the flood was held to its share ({answered} answered)"
    );
    assert!(answered > 0, "within its share, a flooder is answered");
    let banned = target.node.status().await.unwrap().banned;
    assert!(banned.is_empty(), "busy is nobody's fault: {banned:?}");
    for (_, task) in floods {
        task.abort();
    }
    for n in [target, honest] {
        n.node.shutdown().await.unwrap();
    }
}
