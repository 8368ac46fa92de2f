//! The daemon: a data dir, a store, the ingest pipeline and the network, started and stopped
//! together.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chorus_protocol::{AuthorKey, RecordId, SignedRecord, SigningKey};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{self, Config};
use crate::data_dir::DataDir;
use crate::ingest::{Ingest, IngestConfig, IngestThreads, Outcome};
use crate::net::{self, Client, Follow, NetEvent, NetStatus, Validator};
use crate::sync::session::SyncReport;
use crate::{Error, Result, Store};

/// Parses `PRODUCERKEY/CODE`.
pub fn parse_product(s: &str) -> Result<(AuthorKey, String)> {
    let p: chorus_protocol::ProductRef = s
        .parse()
        .map_err(|e| Error::Config(format!("product {s:?}: {e}")))?;
    Ok((p.producer, p.code))
}

/// What the user set at run time, if anything: it replaces the config's `[follow]`.
fn load_follow(path: &Path) -> Result<Option<Follow>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let section: config::FollowConfig = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    follow_of(&Config {
        follow: section,
        ..Config::default()
    })
    .map(Some)
}

/// What a node follows, in the config's form (keys and ids as hex, sorted).
pub(crate) fn follow_section(f: &Follow) -> config::FollowConfig {
    let mut producers: Vec<String> = f.producers.iter().map(|k| k.to_string()).collect();
    let mut groups: Vec<String> = f.groups.iter().map(|g| g.to_string()).collect();
    let mut products: Vec<String> = f.products.iter().map(|(p, c)| format!("{p}/{c}")).collect();
    producers.sort();
    groups.sort();
    products.sort();
    config::FollowConfig {
        all: f.all,
        producers,
        groups,
        products,
    }
}

/// Writes what a node follows to `path` (atomically: a temporary file, then a rename).
fn save_follow(path: &Path, f: &Follow) -> Result<()> {
    let section = follow_section(f);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&section).map_err(|e| Error::Config(e.to_string()))?,
    )?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Changes what a node follows, subscribes to the shards that needs and, with a path,
/// remembers the change across restarts.
pub(crate) async fn change_follow(
    follow: &RwLock<Follow>,
    client: &Client,
    path: Option<&Path>,
    change: impl FnOnce(&mut Follow),
) -> Result<Follow> {
    let now = {
        let mut f = follow.write().map_err(|_| Error::NodeStopped)?;
        change(&mut f);
        f.clone()
    };
    if let Some(p) = path {
        save_follow(p, &now)?;
    }
    client
        .set_shards(now.shards().into_iter().collect())
        .await?;
    Ok(now)
}

/// Applies a follow change (`add`: follow, else unfollow).
pub(crate) fn apply_change(f: &mut Follow, change: FollowChange, add: bool) {
    match (change, add) {
        (FollowChange::Producer(k), true) => {
            f.producers.insert(k);
        }
        (FollowChange::Producer(k), false) => {
            f.producers.remove(&k);
        }
        (FollowChange::Group(g), true) => {
            f.groups.insert(g);
        }
        (FollowChange::Group(g), false) => {
            f.groups.remove(&g);
        }
        (FollowChange::Product(p, c), true) => {
            f.products.insert((p, c));
        }
        (FollowChange::Product(p, c), false) => {
            f.products.remove(&(p, c));
        }
        (FollowChange::All, add) => f.all = add,
    }
}

/// Ingests a record made on this node, then gossips it on its shard (queued if nobody
/// listens yet).
pub(crate) async fn publish_record(
    ingest: &Ingest,
    client: &Client,
    rec: &SignedRecord,
) -> Result<Outcome> {
    let outcome = ingest
        .ingest(vec![rec.wire().to_vec()])
        .await?
        .pop()
        .ok_or(Error::NodeStopped)?;
    if outcome.is_accepted() {
        client
            .publish(net::shard_of(&rec.record().topic), rec.wire().to_vec())
            .await?;
    }
    Ok(outcome)
}

/// Parses a config's follow section.
fn follow_of(c: &Config) -> Result<Follow> {
    let mut f = Follow {
        all: c.follow.all,
        ..Follow::default()
    };
    for p in &c.follow.producers {
        f.producers.insert(
            p.parse::<AuthorKey>()
                .map_err(|e| Error::Config(format!("follow.producers {p}: {e}")))?,
        );
    }
    for p in &c.follow.products {
        f.products.insert(parse_product(p)?);
    }
    for g in &c.follow.groups {
        f.groups.insert(
            g.parse::<RecordId>()
                .map_err(|e| Error::Config(format!("follow.groups {g}: {e}")))?,
        );
    }
    Ok(f)
}

/// A running node.
pub struct Node {
    store: Store,
    ingest: Ingest,
    client: Client,
    follow: Arc<RwLock<Follow>>,
    author: SigningKey,
    cancel: CancellationToken,
    net_task: tokio::task::JoinHandle<Result<()>>,
    api: Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>,
    api_info: PathBuf,
    follow_file: PathBuf,
    threads: Option<IngestThreads>,
}

/// A change to what the node follows.
#[derive(Debug, Clone)]
pub enum FollowChange {
    /// Follow a producer's feedback.
    Producer(AuthorKey),
    /// Follow a group's membership.
    Group(RecordId),
    /// Follow a product (its producer's topic, where its records travel).
    Product(AuthorKey, String),
    /// Follow everything.
    All,
}

impl Node {
    /// Starts a node on `dir` (which must be initialised) with `config`. Returns the node and
    /// its network events (listen addresses, peers).
    pub async fn start(dir: &DataDir, config: Config) -> Result<(Node, mpsc::Receiver<NetEvent>)> {
        let author = dir.author_key()?;
        let keypair = dir.node_keypair()?;
        let mut initial = follow_of(&config)?;
        if let Some(saved) = load_follow(&dir.follow_path())? {
            initial = saved;
        }
        // A user always follows the feedback aimed at their own key: that is how a
        // producer's node receives it (for a consumer the topic is simply empty).
        initial
            .producers
            .insert(AuthorKey(author.verifying_key().to_bytes()));
        let follow = Arc::new(RwLock::new(initial));
        let store = Store::open(dir.store_path())?;
        // The feedback aimed at this user's key is journaled, so `chorus watch` can replay
        // what arrived while nobody watched.
        store.watch_topic(&chorus_protocol::Topic::Producer(AuthorKey(
            author.verifying_key().to_bytes(),
        )))?;
        let ingest_config = IngestConfig {
            skew_ms: config.ingest.skew.as_millis() as u64,
            max_waiting: config.ingest.max_waiting,
            ..IngestConfig::default()
        };
        let (ingest, threads) = Ingest::start(store.clone(), ingest_config)?;
        let validator = Validator::new(
            ingest.clone(),
            follow.clone(),
            config.ingest.skew.as_millis() as u64,
            config.network.author_rate,
        );
        let (events_tx, events_rx) = mpsc::channel(256);
        let sync = crate::sync::session::SyncContext {
            store: store.clone(),
            ingest: ingest.clone(),
            follow: follow.clone(),
            config: config.sync.clone(),
            params: chorus_protocol::sync::Params::default(),
        };
        let (client, event_loop) =
            net::new(keypair, config.network.clone(), validator, sync, events_tx)?;
        let cancel = CancellationToken::new();
        let net_task = tokio::spawn(event_loop.run(cancel.clone()));
        let shards: Vec<String> = follow
            .read()
            .map(|f| f.shards().into_iter().collect())
            .unwrap_or_default();
        client.set_shards(shards).await?;
        let author_key = AuthorKey(author.verifying_key().to_bytes());
        let api = if config.api.listen.is_empty() {
            None
        } else {
            let state = crate::api::ApiState {
                store: store.clone(),
                client: client.clone(),
                author: author_key,
                token: std::sync::Arc::new(dir.api_token()?),
                ingest: ingest.clone(),
                signer: Arc::new(author.clone()),
                follow: follow.clone(),
                follow_file: dir.follow_path(),
                cancel: cancel.clone(),
                audit: config.audit.clone(),
                trusted: Arc::new(config.trust.keys()?),
                clock: Arc::new(crate::clock::Clock::new()),
            };
            let (addr, task) = crate::api::serve(&config.api.listen, state, cancel.clone()).await?;
            let info = serde_json::json!({ "addr": addr.to_string(), "pid": std::process::id() });
            std::fs::write(dir.api_info_path(), info.to_string())?;
            Some((addr, task))
        };
        info!(author = %author_key, "node started");
        Ok((
            Node {
                store,
                ingest,
                client,
                follow,
                author,
                cancel,
                net_task,
                api,
                api_info: dir.api_info_path(),
                follow_file: dir.follow_path(),
                threads: Some(threads),
            },
            events_rx,
        ))
    }

    /// Where the local API listens, if it is served.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api.as_ref().map(|(a, _)| *a)
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
        publish_record(&self.ingest, &self.client, rec).await
    }

    /// Gossips raw bytes on a shard without any check: only for tests that play a hostile
    /// peer.
    #[doc(hidden)]
    pub async fn publish_unchecked(&self, shard: String, bytes: Vec<u8>) -> Result<()> {
        self.client.publish(shard, bytes).await
    }

    /// Follows more; subscribes to the shards that needs (and remembers it across restarts).
    pub async fn follow(&self, change: FollowChange) -> Result<()> {
        change_follow(&self.follow, &self.client, Some(&self.follow_file), |f| {
            apply_change(f, change, true)
        })
        .await
        .map(|_| ())
    }

    /// Follows less.
    pub async fn unfollow(&self, change: FollowChange) -> Result<()> {
        change_follow(&self.follow, &self.client, Some(&self.follow_file), |f| {
            apply_change(f, change, false)
        })
        .await
        .map(|_| ())
    }

    /// Pulls now what this node lacks from every connected peer (or one), and reports each
    /// pull.
    pub async fn sync_now(&self, peer: Option<net::PeerId>) -> Result<Vec<SyncReport>> {
        self.client.sync_now(peer).await
    }

    /// What the node follows.
    pub fn following(&self) -> Follow {
        self.follow.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// Stops the network, drains the ingest pipeline and flushes the store.
    pub async fn shutdown(mut self) -> Result<()> {
        self.cancel.cancel();
        if let Some((_, task)) = self.api.take() {
            let _ = task.await;
            let _ = std::fs::remove_file(&self.api_info);
        }
        match (&mut self.net_task).await {
            Ok(r) => r?,
            Err(e) => warn!(error = %e, "network task panicked"),
        }
        let store = self.store.clone();
        let threads = self.threads.take();
        drop(self);
        if let Some(t) = threads {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .map_err(|_| Error::NodeStopped)?;
        }
        store.close()?;
        info!("node stopped; store flushed");
        Ok(())
    }
}
