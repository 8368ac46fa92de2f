//! When this node pulls: from a peer when it connects and shares a gossip shard (if
//! `on_connect`; see [`crate::net::Events::connected`]), from every
//! connected peer every `interval` (jittered by up to 20%), from one connected peer picked
//! at random every `repair` (anti-entropy: what gossip lost is back within seconds, not
//! minutes; off when zero), and on demand
//! ([`SyncHandle::sync_now`]). One pull per peer at a time: asking again while one runs
//! waits for that one's report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::counters::{Counters, SyncCounts};
use super::session::{pull, SyncContext, SyncReport};
use crate::error::{Error, Result};
use crate::net::{Client, PeerId};

enum Command {
    Now {
        peer: Option<PeerId>,
        reply: oneshot::Sender<Vec<SyncReport>>,
    },
    Done {
        peer: PeerId,
        report: Box<SyncReport>,
    },
}

/// At most this many peers' last pulls are remembered (the oldest is forgotten first): the
/// node's connection limits keep the peers it pulls from fewer than this.
const REMEMBERED: usize = 256;

/// The last pull from one peer: when it ended (ms since the epoch) and what it did.
#[derive(Clone, Debug)]
pub struct LastPull {
    /// When the pull ended, in ms since the Unix epoch.
    pub at: u64,
    /// What it did.
    pub report: SyncReport,
}

/// Asks the scheduler for pulls. Cheap to clone.
#[derive(Clone)]
pub struct SyncHandle {
    tx: mpsc::Sender<Command>,
    /// The last pull from each peer, for the API and the dashboard (who is this node
    /// catching up from, and how much came).
    last: Arc<Mutex<HashMap<PeerId, LastPull>>>,
    /// What sync has done since start.
    counters: Arc<Counters>,
}

impl SyncHandle {
    /// Pulls now from every connected peer (or just `peer`), and reports each pull. For a
    /// peer already being pulled from, that pull's report.
    pub async fn sync_now(&self, peer: Option<PeerId>) -> Result<Vec<SyncReport>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Now { peer, reply })
            .await
            .map_err(|_| Error::NodeStopped)?;
        rx.await.map_err(|_| Error::NodeStopped)
    }

    /// What sync has done since the node started: pulls and their figures, answers to
    /// peers' pulls (a few atomic loads).
    pub fn counts(&self) -> SyncCounts {
        self.counters.counts()
    }

    /// The counters, for the answerer of peers' pulls to count its answers.
    pub(crate) fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// The last pull from each peer remembered, the latest first.
    pub fn last_pulls(&self) -> Vec<LastPull> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<LastPull> = last.values().cloned().collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.at));
        all
    }

    fn remember(&self, peer: PeerId, report: &SyncReport) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() >= REMEMBERED && !last.contains_key(&peer) {
            if let Some(oldest) = last.iter().min_by_key(|(_, p)| p.at).map(|(k, _)| *k) {
                last.remove(&oldest);
            }
        }
        last.insert(
            peer,
            LastPull {
                at: crate::clock::now_ms(),
                report: report.clone(),
            },
        );
    }
}

/// Decides when to pull. Run it with [`Scheduler::run`].
pub(crate) struct Scheduler {
    ctx: SyncContext,
    client: Client,
    rx: mpsc::Receiver<Command>,
    tx: mpsc::Sender<Command>,
    /// Pulls running, with whoever waits for each one's report.
    pulling: HashMap<PeerId, Vec<oneshot::Sender<SyncReport>>>,
    handle: SyncHandle,
}

impl Scheduler {
    /// A scheduler of pulls through `client`, and its handle.
    pub(crate) fn new(ctx: SyncContext, client: Client) -> (Scheduler, SyncHandle) {
        let (tx, rx) = mpsc::channel(64);
        let handle = SyncHandle {
            tx: tx.clone(),
            last: Arc::default(),
            counters: Arc::default(),
        };
        (
            Scheduler {
                ctx,
                client,
                rx,
                tx,
                pulling: HashMap::new(),
                handle: handle.clone(),
            },
            handle,
        )
    }

    /// Runs until `cancel` fires, pulling from peers as they connect (`connected`), every
    /// interval, and when asked.
    pub(crate) async fn run(
        mut self,
        mut connected: mpsc::Receiver<PeerId>,
        cancel: CancellationToken,
    ) {
        let jittered = |d: Duration| d.mul_f64(rand::random_range(0.8..1.2));
        // A zero period is off: the branch never fires (far away) rather than spinning.
        let after = |d: Duration| {
            if d.is_zero() {
                Duration::from_secs(365 * 24 * 3600)
            } else {
                jittered(d)
            }
        };
        let interval = self.ctx.config.interval;
        let repair = self.ctx.config.repair;
        let mut next = tokio::time::Instant::now() + after(interval);
        let mut next_repair = tokio::time::Instant::now() + after(repair);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                cmd = self.rx.recv() => match cmd {
                    Some(c) => self.handle(c).await,
                    None => return,
                },
                peer = connected.recv() => match peer {
                    Some(p) if self.ctx.config.on_connect => self.start(p, None),
                    Some(_) => {}
                    None => return,
                },
                _ = tokio::time::sleep_until(next) => {
                    next = tokio::time::Instant::now() + after(interval);
                    if let Ok(peers) = self.client.peers().await {
                        for p in peers.connected {
                            self.start(p, None);
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_repair) => {
                    next_repair = tokio::time::Instant::now() + after(repair);
                    if let Ok(peers) = self.client.peers().await {
                        let idle: Vec<PeerId> = peers
                            .connected
                            .into_iter()
                            .filter(|p| !self.pulling.contains_key(p) && !peers.banned.contains(p))
                            .collect();
                        if !idle.is_empty() {
                            let p = idle[rand::random_range(0..idle.len())];
                            self.start(p, None);
                        }
                    }
                }
            }
        }
    }

    async fn handle(&mut self, c: Command) {
        match c {
            Command::Now { peer, reply } => {
                let peers = match self.client.peers().await {
                    Ok(p) => p,
                    Err(_) => return,
                };
                let targets: Vec<PeerId> = match peer {
                    Some(p) => vec![p],
                    None => peers.connected.clone(),
                };
                let mut waits = Vec::new();
                for p in targets {
                    let (tx, rx) = oneshot::channel();
                    if peers.banned.contains(&p) {
                        let _ = tx.send(SyncReport {
                            peer: p.to_string(),
                            error: Some("the peer is banned".into()),
                            ..SyncReport::default()
                        });
                    } else {
                        self.start(p, Some(tx));
                    }
                    waits.push(rx);
                }
                tokio::spawn(async move {
                    let mut reports = Vec::new();
                    for w in waits {
                        if let Ok(r) = w.await {
                            reports.push(r);
                        }
                    }
                    let _ = reply.send(reports);
                });
            }
            Command::Done { peer, report } => {
                self.handle.counters.pulled(&report);
                self.handle.remember(peer, &report);
                for w in self.pulling.remove(&peer).unwrap_or_default() {
                    let _ = w.send((*report).clone());
                }
            }
        }
    }

    /// Starts a pull from `peer`, unless one is running; either way its report goes to
    /// `reply` when it ends.
    fn start(&mut self, peer: PeerId, reply: Option<oneshot::Sender<SyncReport>>) {
        if let Some(waiters) = self.pulling.get_mut(&peer) {
            waiters.extend(reply);
            return;
        }
        self.pulling.insert(peer, reply.into_iter().collect());
        let ctx = self.ctx.clone();
        let client = self.client.clone();
        let done = self.tx.clone();
        tokio::spawn(async move {
            let report = pull(ctx, client, peer).await;
            if let Some(e) = &report.error {
                debug!(%peer, error = %e, "pull stopped early");
            } else if report.stored > 0 {
                info!(%peer, stored = report.stored, rounds = report.rounds, "caught up");
            }
            let _ = done
                .send(Command::Done {
                    peer,
                    report: Box::new(report),
                })
                .await;
        });
    }
}
