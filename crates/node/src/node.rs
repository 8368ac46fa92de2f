//! The daemon: starts a node's parts on a data dir — the store, the ingest pipeline, the
//! network and the tasks that connect them (gossip judged into ingest, sync pulls and
//! answers), the local API, the metrics endpoint — and stops them together.

use std::path::PathBuf;
use std::sync::Arc;

use chorus_protocol::{AuthorKey, SignedRecord, SigningKey, Topic};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::data_dir::DataDir;
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::follow::{Follow, FollowChange, Following};
use crate::gossip::{Judge, Verdicts};
use crate::ingest::{Ingest, IngestConfig, IngestThreads, Outcome};
use crate::net::{self, Client, NetEvent, NetStatus, PeerId};
use crate::publish::Publisher;
use crate::store::Store;
use crate::sync::schedule::{Scheduler, SyncHandle};
use crate::sync::session::{SyncContext, SyncReport};
use crate::{api, sync};

/// A running node.
pub struct Node {
    store: Store,
    ingest: Ingest,
    client: Client,
    following: Following,
    sync: SyncHandle,
    publisher: Publisher,
    directory: Directory,
    author: SigningKey,
    cancel: CancellationToken,
    /// The network, gossip, sync and API tasks.
    tasks: JoinSet<Result<()>>,
    api: Option<std::net::SocketAddr>,
    /// Where the metrics endpoint listens, if it is served.
    metrics: Option<std::net::SocketAddr>,
    api_info: PathBuf,
    /// The API's open connections and event streams (for [`Node::api_load`]).
    api_load: Option<(Arc<api::Connections>, Arc<api::EventStreams>)>,
    threads: Option<IngestThreads>,
}

/// How much of the API's capacity is in use ([`Node::api_load`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApiLoad {
    /// Connections open (`api.max_connections` at most).
    pub connections: usize,
    /// Event streams open (`api.max_event_streams` at most).
    pub event_streams: usize,
}

/// Runs a task that cannot fail among those that can.
async fn infallible(f: impl std::future::Future<Output = ()>) -> Result<()> {
    f.await;
    Ok(())
}

/// How often the waiting area drops what has waited too long, when nothing arrives.
const WAITING_SWEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// The waiting area's chores (`crate::waiting`): peers whose waiting records never resolve
/// are penalised, records released from it are gossiped, and what waited too long is
/// dropped even when nothing arrives.
async fn waiting_chores(
    ingest: Ingest,
    client: net::Client,
    mut penalised: mpsc::Receiver<(Vec<u8>, u32)>,
    mut released: mpsc::Receiver<Vec<u8>>,
    cancel: CancellationToken,
) {
    let mut sweep = tokio::time::interval(WAITING_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            Some((peer, faults)) = penalised.recv() => {
                if let Ok(peer) = net::PeerId::from_bytes(&peer) {
                    tracing::info!(%peer, faults, "penalising a peer whose waiting records never resolve");
                    client.penalise(peer, faults).await;
                }
            }
            Some(wire) = released.recv() => {
                if let Ok(rec) = chorus_protocol::SignedRecord::from_bytes(&wire) {
                    let shard = net::shard_of(&rec.record().topic);
                    if let Err(e) = client.publish(shard, wire).await {
                        tracing::debug!(error = %e, "cannot gossip a released record");
                    }
                }
            }
            _ = sweep.tick() => {
                if let Err(e) = ingest.tick().await {
                    tracing::debug!(error = %e, "waiting area sweep");
                }
            }
        }
    }
}

impl Node {
    /// Starts a node on `dir` (which must be initialised) with `config`. Returns the node and
    /// its network events (listen addresses, peers).
    pub async fn start(dir: &DataDir, config: Config) -> Result<(Node, mpsc::Receiver<NetEvent>)> {
        config.check().map_err(Error::Config)?;
        let author = dir.author_key()?;
        let keypair = dir.node_keypair()?;
        let me = AuthorKey(author.verifying_key().to_bytes());
        let (client, events, event_loop) = net::new(
            keypair,
            config.network.clone(),
            sync::request_protocol(&config.sync),
        )?;
        let following = Following::start(&config, Some(dir.follow_path()), me, client.clone())?;
        let mut store = Store::open(dir.store_path())?;
        if config.store.compact {
            store = store.with_compaction(crate::store::compact::Policy {
                ratio: config.store.compact_ratio,
                ..Default::default()
            })?;
        }
        // The feedback aimed at this user's key is journaled, so `chorus watch` can replay
        // what arrived while nobody watched.
        store.watch_topic(&Topic::Producer(me))?;
        let (penalties, penalised) = mpsc::channel(64);
        let (released, to_gossip) = mpsc::channel(1024);
        let ingest_config = IngestConfig {
            skew_ms: config.ingest.skew.as_millis() as u64,
            waiting: config.ingest.waiting(),
            penalties: Some(penalties),
            released: Some(released),
            ..IngestConfig::default()
        };
        let (ingest, threads) = Ingest::start(store.clone(), ingest_config)?;
        let judge = Judge::new(
            ingest.clone(),
            following.clone(),
            config.ingest.skew.as_millis() as u64,
            config.network.author_rate,
        );
        let verdicts = judge.verdicts();
        let params = chorus_protocol::sync::Params::default();
        let (scheduler, sync) = Scheduler::new(
            SyncContext {
                store: store.clone(),
                ingest: ingest.clone(),
                following: following.clone(),
                config: config.sync.clone(),
                params,
            },
            client.clone(),
        );
        let publisher = Publisher::new(ingest.clone(), client.clone());
        let directory = Directory::new(
            store.clone(),
            client.clone(),
            ingest.clone(),
            following.clone(),
            config.ingest.skew.as_millis() as u64,
        );
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(event_loop.run(cancel.clone()));
        tasks.spawn(infallible(judge.run(
            events.gossip,
            client.clone(),
            cancel.clone(),
        )));
        tasks.spawn(infallible(sync::serve::run(
            events.requests,
            store.clone(),
            params,
            client.clone(),
            {
                // Whether this node keeps every topic, for a search's answer.
                let f = following.clone();
                move || f.snapshot().all
            },
            sync.counters(),
            cancel.clone(),
        )));
        tasks.spawn(infallible(scheduler.run(events.connected, cancel.clone())));
        tasks.spawn(infallible(crate::campaigns::run(
            ingest.clone(),
            cancel.clone(),
        )));
        tasks.spawn(infallible(crate::follow::follow_petition_groups(
            store.clone(),
            ingest.subscribe(),
            following.clone(),
            sync.clone(),
            me,
            cancel.clone(),
        )));
        tasks.spawn(infallible(crate::profiles::fetch_wanted(
            store.clone(),
            ingest.subscribe(),
            following.clone(),
            sync.clone(),
            client.clone(),
            directory.clone(),
            cancel.clone(),
        )));
        tasks.spawn(infallible(waiting_chores(
            ingest.clone(),
            client.clone(),
            penalised,
            to_gossip,
            cancel.clone(),
        )));
        let mut node = Node {
            store,
            ingest,
            client,
            following,
            sync,
            publisher,
            directory,
            author,
            cancel,
            tasks,
            api: None,
            metrics: None,
            api_info: dir.api_info_path(),
            api_load: None,
            threads: Some(threads),
        };
        let served = match node.serve_api(dir, &config).await {
            Ok(()) => node.serve_metrics(&config, verdicts).await,
            Err(e) => Err(e),
        };
        if let Err(e) = served {
            // Nothing half-started is left running. If a task had stopped (the network could
            // not listen, say), its error is the reason, not the "node stopped" it caused.
            let stopped = node.shutdown().await;
            return Err(match (e, stopped) {
                (Error::NodeStopped, Err(cause)) => cause,
                (e, _) => e,
            });
        }
        info!(author = %me, "node started");
        Ok((node, events.node))
    }

    /// Subscribes to the followed shards and serves the local API (unless turned off), with a
    /// fresh token.
    async fn serve_api(&mut self, dir: &DataDir, config: &Config) -> Result<()> {
        self.following.subscribe().await?;
        let c = &config.api;
        if c.listen.is_empty() {
            return Ok(());
        }
        let streams = Arc::new(api::EventStreams::new(
            c.max_event_streams,
            c.max_event_streams_per_token,
            c.event_queue,
        ));
        let web = Arc::new(crate::web::Web::with_file(dir.web_sessions_path()));
        let state = api::ApiState {
            store: self.store.clone(),
            client: self.client.clone(),
            author: self.author(),
            token: Arc::from(dir.new_api_token()?),
            ingest: self.ingest.clone(),
            publisher: self.publisher.clone(),
            signer: Arc::new(self.author.clone()),
            following: self.following.clone(),
            sync: self.sync.clone(),
            directory: self.directory.clone(),
            cancel: self.cancel.clone(),
            audit: config.audit.clone(),
            trust: crate::trust::Trust::start(&config.trust, Some(dir.trust_path()))?,
            clock: Arc::new(crate::clock::Clock::new()),
            body: api::BodyLimits {
                max_bytes: c.max_body_bytes,
                timeout: c.body_timeout,
                page_too_large: Some(crate::web::too_large),
            },
            streams: streams.clone(),
            mine: Arc::new(api::Mine::new()),
        };
        // The dashboard beside the API: it reaches the API's state, not the other way.
        let pages = crate::web::routes(crate::web::WebState {
            api: state.clone(),
            web: web.clone(),
        });
        let connections = api::Connections::new(c.max_connections);
        let (addr, task) = api::serve(
            c,
            api::router(state, Some(pages)),
            connections.clone(),
            self.cancel.clone(),
        )
        .await?;
        web.set_addr(addr);
        self.tasks.spawn(infallible(async move {
            let _ = task.await;
        }));
        dir.write_api_info(addr)?;
        self.api = Some(addr);
        self.api_load = Some((connections, streams));
        Ok(())
    }

    /// Serves the metrics endpoint, if `metrics.listen` is set.
    async fn serve_metrics(&mut self, config: &Config, verdicts: Arc<Verdicts>) -> Result<()> {
        let listen = &config.metrics.listen;
        if listen.is_empty() {
            return Ok(());
        }
        let sources = crate::metrics::Sources {
            store: self.store.clone(),
            ingest: self.ingest.clone(),
            client: self.client.clone(),
            sync: self.sync.clone(),
            verdicts,
        };
        let (addr, task) = crate::metrics::serve(listen, sources, self.cancel.clone()).await?;
        self.tasks.spawn(infallible(async move {
            let _ = task.await;
        }));
        self.metrics = Some(addr);
        Ok(())
    }

    /// Where the metrics endpoint listens (`GET /metrics`), if it is served: the address
    /// bound, so with port 0 the port picked.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
    }

    /// How many of the API's connections and event streams are open now (zeros without an
    /// API).
    pub fn api_load(&self) -> ApiLoad {
        self.api_load
            .as_ref()
            .map(|(c, s)| ApiLoad {
                connections: c.open(),
                event_streams: s.open(),
            })
            .unwrap_or_default()
    }

    /// Where the local API listens, if it is served.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api
    }

    /// Search: the store and the connected peers.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The ingest pipeline.
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// The author key that signs this user's records.
    pub fn signing_key(&self) -> &SigningKey {
        &self.author
    }

    /// The author's public key.
    pub fn author(&self) -> AuthorKey {
        AuthorKey(self.author.verifying_key().to_bytes())
    }

    /// Network state.
    pub async fn status(&self) -> Result<NetStatus> {
        self.client.status().await
    }

    /// The network client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ingests a record made here, then gossips it on its shard. A record nobody hears yet is
    /// kept (stored, and queued for gossip) rather than dropped.
    pub async fn publish(&self, rec: &SignedRecord) -> Result<Outcome> {
        self.publisher.publish(rec).await
    }

    /// Gossips raw bytes on a shard without any check: only for tests that play a hostile
    /// peer.
    #[doc(hidden)]
    pub async fn publish_unchecked(&self, shard: String, bytes: Vec<u8>) -> Result<()> {
        self.client.publish(shard, bytes).await
    }

    /// Follows more; subscribes to the shards that needs (and remembers it across restarts).
    pub async fn follow(&self, change: FollowChange) -> Result<()> {
        self.following.change(change, true).await.map(|_| ())
    }

    /// Follows less.
    pub async fn unfollow(&self, change: FollowChange) -> Result<()> {
        self.following.change(change, false).await.map(|_| ())
    }

    /// Pulls now what this node lacks from every connected peer (or one), and reports each
    /// pull.
    pub async fn sync_now(&self, peer: Option<PeerId>) -> Result<Vec<SyncReport>> {
        self.sync.sync_now(peer).await
    }

    /// What the node follows.
    pub fn following(&self) -> Follow {
        self.following.snapshot()
    }

    /// Stops the network and every task, drains the ingest pipeline and flushes the store.
    pub async fn shutdown(mut self) -> Result<()> {
        self.cancel.cancel();
        let mut result = Ok(());
        while let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(Err(e)) if result.is_ok() => result = Err(e),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "a node task panicked"),
            }
        }
        if self.api.is_some() {
            let _ = std::fs::remove_file(&self.api_info);
        }
        let store = self.store.clone();
        let threads = self.threads.take();
        drop(self);
        if let Some(t) = threads {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .map_err(|_| Error::NodeStopped)?;
        }
        result?;
        store.close()?;
        info!("node stopped; store flushed");
        match store.settle() {
            Ok(true) => debug!("store settled"),
            Ok(false) => debug!("store still in use; not settled"),
            Err(e) => warn!(error = %e, "could not settle the store"),
        }
        Ok(())
    }
}
