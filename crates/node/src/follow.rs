//! What a node follows: the producers, groups and products whose records it stores (and
//! whose gossip shards it subscribes to), changed at run time and remembered across restarts
//! in `follow.json`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chorus_protocol::{AuthorKey, Kind, ProductRef, Record, RecordId, Topic};

use crate::config::{Config, FollowConfig};
use crate::error::{Error, Result};
use crate::net::topics::{all_shards, shard_of, META};
use crate::net::Client;
use crate::store::Store;
use crate::sync::SyncHandle;
use crate::tally::Event;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What a node follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Follow {
    /// Everything.
    pub all: bool,
    /// Producers whose feedback is stored.
    pub producers: HashSet<AuthorKey>,
    /// Groups whose membership records are stored.
    pub groups: HashSet<RecordId>,
    /// Products followed. A product's records travel on its producer's topic, so following
    /// a product subscribes to that shard and stores that producer's topic.
    pub products: HashSet<(AuthorKey, String)>,
}

impl Follow {
    /// Does the node store records of this topic? Meta is always followed: its groups and
    /// attestations are few and every node needs them. (Its profiles are another matter:
    /// [`Following::keeps`].)
    pub fn follows(&self, topic: &Topic) -> bool {
        self.all
            || match topic {
                Topic::Meta => true,
                Topic::Producer(k) => {
                    self.producers.contains(k) || self.products.iter().any(|(p, _)| p == k)
                }
                Topic::Group(g) => self.groups.contains(g),
            }
    }

    /// Does the node keep every profile of `author` because of what it follows (everything,
    /// or the author's own topic)?
    pub fn follows_author(&self, author: &AuthorKey) -> bool {
        self.all || self.follows(&Topic::Producer(*author))
    }

    /// The shards to subscribe to.
    pub fn shards(&self) -> BTreeSet<String> {
        if self.all {
            return all_shards();
        }
        let mut s = BTreeSet::from([META.to_string()]);
        s.extend(
            self.producers
                .iter()
                .map(|k| shard_of(&Topic::Producer(*k))),
        );
        s.extend(self.groups.iter().map(|g| shard_of(&Topic::Group(*g))));
        s.extend(
            self.products
                .iter()
                .map(|(p, _)| shard_of(&Topic::Producer(*p))),
        );
        s
    }
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

impl Follow {
    /// Applies a change (`add`: follow, else unfollow).
    pub fn apply(&mut self, change: FollowChange, add: bool) {
        match (change, add) {
            (FollowChange::Producer(k), true) => {
                self.producers.insert(k);
            }
            (FollowChange::Producer(k), false) => {
                self.producers.remove(&k);
            }
            (FollowChange::Group(g), true) => {
                self.groups.insert(g);
            }
            (FollowChange::Group(g), false) => {
                self.groups.remove(&g);
            }
            (FollowChange::Product(p, c), true) => {
                self.products.insert((p, c));
            }
            (FollowChange::Product(p, c), false) => {
                self.products.remove(&(p, c));
            }
            (FollowChange::All, add) => self.all = add,
        }
    }

    /// What a config's `[follow]` section (or `follow.json`) says.
    pub fn from_config(c: &FollowConfig) -> Result<Follow> {
        let mut f = Follow {
            all: c.all,
            ..Follow::default()
        };
        for p in &c.producers {
            f.producers.insert(
                p.parse::<AuthorKey>()
                    .map_err(|e| Error::Config(format!("follow.producers {p}: {e}")))?,
            );
        }
        for p in &c.products {
            f.products.insert(
                parse_product(p).map_err(|e| Error::Config(format!("follow.products {e}")))?,
            );
        }
        for g in &c.groups {
            f.groups.insert(
                g.parse::<RecordId>()
                    .map_err(|e| Error::Config(format!("follow.groups {g}: {e}")))?,
            );
        }
        Ok(f)
    }

    /// In the config's form (keys and ids as hex, sorted): what `follow.json` holds and the
    /// API shows.
    pub fn to_config(&self) -> FollowConfig {
        let mut producers: Vec<String> = self.producers.iter().map(|k| k.to_string()).collect();
        let mut groups: Vec<String> = self.groups.iter().map(|g| g.to_string()).collect();
        let mut products: Vec<String> = self
            .products
            .iter()
            .map(|(p, c)| format!("{p}/{c}"))
            .collect();
        producers.sort();
        groups.sort();
        products.sort();
        FollowConfig {
            all: self.all,
            producers,
            groups,
            products,
        }
    }
}

/// Parses `PRODUCERKEY/CODE`; the error says what is wrong with `s`, for whoever gave it (a
/// config file, an API request, a flag) to put in its own words.
pub fn parse_product(s: &str) -> std::result::Result<(AuthorKey, String), String> {
    if !s.contains('/') {
        return Err(format!("product {s:?}: expected PRODUCERKEY/CODE"));
    }
    let p: ProductRef = s.parse().map_err(|e| format!("product {s:?}: {e}"))?;
    Ok((p.producer, p.code))
}

/// Splits a product as a person names it, `PRODUCER/CODE`, where PRODUCER may be a key, an
/// 8+ digit prefix of one or a profile's name (resolved by the node): checks the code and
/// that a producer is given.
pub fn split_product(s: &str) -> std::result::Result<(&str, &str), String> {
    let Some((producer, code)) = s.split_once('/') else {
        return Err(format!("product {s:?}: expected PRODUCER/CODE"));
    };
    if producer.trim().is_empty() {
        return Err(format!("product {s:?}: no producer before the /"));
    }
    chorus_protocol::validate::check_product_code(code)
        .map_err(|e| format!("product {s:?}: {e}"))?;
    Ok((producer.trim(), code))
}

/// What the user set at run time, if anything: it replaces the config's `[follow]`.
fn load(path: &Path) -> Result<Option<Follow>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let section: FollowConfig = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Follow::from_config(&section).map(Some)
}

/// Writes what a node follows to `path` (atomically: a temporary file, then a rename).
fn save(path: &Path, f: &Follow) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&f.to_config()).map_err(|e| Error::Config(e.to_string()))?,
    )?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What a running node follows, shared by everything that needs to know (gossip, sync, the
/// API). Cheap to clone. A change subscribes the network to the shards it needs and is saved
/// to `follow.json`.
#[derive(Clone)]
pub struct Following {
    now: Arc<RwLock<Follow>>,
    file: Option<PathBuf>,
    client: Client,
    /// Authors whose profiles the node wants and has not got yet (authors of records it
    /// stored), at most [`MAX_WANTED`], with when each was first wanted and how many pulls
    /// have asked for it: pulls ask peers for them (`crate::sync`), `crate::profiles` notes
    /// them.
    wanted: Arc<Mutex<BTreeMap<AuthorKey, (Instant, u32)>>>,
}

/// How long an author's profile stays wanted if no pull finds it (the author may have
/// published none, or only nodes that do not keep it were asked): long enough for the
/// scheduled pulls from every peer to ask.
pub const WANTED_FOR: Duration = Duration::from_secs(15 * 60);

/// Most authors whose profiles are wanted at once; more are not noted (their names show as
/// short keys until a profile of theirs arrives by gossip or a lookup).
pub const MAX_WANTED: usize = 4096;

impl Following {
    /// What a node starting with `config` and `file` (`follow.json`, if any) follows. The
    /// user always follows the feedback aimed at their own key `me`: that is how a
    /// producer's node receives it (for a consumer the topic is simply empty).
    pub(crate) fn start(
        config: &Config,
        file: Option<PathBuf>,
        me: AuthorKey,
        client: Client,
    ) -> Result<Self> {
        let mut initial = Follow::from_config(&config.follow)?;
        if let Some(saved) = file.as_deref().map(load).transpose()?.flatten() {
            initial = saved;
        }
        initial.producers.insert(me);
        Ok(Following {
            now: Arc::new(RwLock::new(initial)),
            file,
            client,
            wanted: Arc::default(),
        })
    }

    /// What the node follows now.
    pub fn snapshot(&self) -> Follow {
        self.now.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// Does the node follow everything (an archive)?
    pub fn follows_all(&self) -> bool {
        self.now.read().map(|f| f.all).unwrap_or(false)
    }

    /// Does the node store records of this topic?
    pub fn follows(&self, topic: &Topic) -> bool {
        self.now.read().map(|f| f.follows(topic)).unwrap_or(false)
    }

    /// Does the node keep this record? A record of a followed topic, except a profile: a node
    /// that follows everything keeps every profile, any other node only those it uses — of
    /// the authors whose topics it follows (its user's among them), of authors it already
    /// holds a profile of (a newer one replaces it), and of authors it wants
    /// ([`Following::want_profile`]: the authors of records it stores). The others are
    /// found by search when they are needed (`crate::directory`). What it does not keep a
    /// node still checks and forwards on gossip.
    pub fn keeps(&self, record: &Record, store: &Store) -> bool {
        if record.kind() != Kind::Profile {
            return self.follows(&record.topic);
        }
        let author = record.author;
        let followed = self
            .now
            .read()
            .map(|f| f.follows_author(&author))
            .unwrap_or(false);
        followed
            || self.wants(&author)
            // A store that cannot say keeps it: a profile is small.
            || store.has_profile(&author).unwrap_or(true)
    }

    /// Notes that the node wants `author`'s profile (it stored a record of theirs and has
    /// none); false if it was wanted already or too many are.
    pub fn want_profile(&self, author: AuthorKey) -> bool {
        let Ok(mut w) = self.wanted.lock() else {
            return false;
        };
        if w.len() >= MAX_WANTED || w.contains_key(&author) {
            return false;
        }
        w.insert(author, (Instant::now(), 0));
        true
    }

    /// Is `author`'s profile wanted?
    pub fn wants(&self, author: &AuthorKey) -> bool {
        self.wanted.lock().is_ok_and(|w| w.contains_key(author))
    }

    /// Up to `n` of the authors whose profiles are wanted, those asked for least often
    /// first, for a pull to ask for.
    pub fn wanted(&self, n: usize) -> Vec<AuthorKey> {
        let Ok(w) = self.wanted.lock() else {
            return Vec::new();
        };
        let mut all: Vec<(u32, AuthorKey)> = w.iter().map(|(a, (_, n))| (*n, *a)).collect();
        all.sort_unstable();
        all.into_iter().take(n).map(|(_, a)| a).collect()
    }

    /// How many profiles are wanted now.
    pub fn wanted_count(&self) -> usize {
        self.wanted.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// A pull asked a peer for these authors' profiles: those now held are no longer
    /// wanted, nor those wanted for longer than [`WANTED_FOR`].
    pub fn asked_for(&self, authors: &[AuthorKey], store: &Store) {
        let Ok(mut w) = self.wanted.lock() else {
            return;
        };
        for a in authors {
            let gone = match w.get_mut(a) {
                Some((since, n)) => {
                    *n += 1;
                    store.has_profile(a).unwrap_or(false) || since.elapsed() > WANTED_FOR
                }
                None => false,
            };
            if gone {
                w.remove(a);
            }
        }
    }

    /// Subscribes the network to the shards of what the node follows now.
    pub(crate) async fn subscribe(&self) -> Result<()> {
        let shards = self.snapshot().shards().into_iter().collect();
        self.client.set_shards(shards).await
    }

    /// Follows more (`add`) or less; subscribes to the shards that needs and remembers the
    /// change across restarts. Returns what the node follows now.
    pub async fn change(&self, change: FollowChange, add: bool) -> Result<Follow> {
        let now = {
            let mut f = self.now.write().map_err(|_| Error::NodeStopped)?;
            f.apply(change, add);
            f.clone()
        };
        if let Some(p) = &self.file {
            save(p, &now)?;
        }
        self.client
            .set_shards(now.shards().into_iter().collect())
            .await?;
        Ok(now)
    }
}

/// The groups of the stored petitions aimed at `me` that the node does not follow yet.
fn unfollowed_groups(
    store: &Store,
    following: &Following,
    me: &AuthorKey,
) -> Result<BTreeSet<RecordId>> {
    Ok(store
        .petitions()?
        .into_iter()
        .filter(|(_, t)| t.producer == *me)
        .filter_map(|(_, t)| t.group)
        .filter(|g| !following.follows(&Topic::Group(*g)))
        .collect())
}

/// A producer's node follows the group of every petition aimed at it (`me`), and catches up
/// on it from its peers, so that it counts the petition's member endorsers as the group's
/// members do. Runs until `cancel`: first over the petitions already stored, then on every
/// tally change (again over all of them if it fell behind the events).
pub(crate) async fn follow_petition_groups(
    store: Store,
    mut events: broadcast::Receiver<Event>,
    following: Following,
    sync: SyncHandle,
    me: AuthorKey,
    cancel: CancellationToken,
) {
    let mut rescan = true;
    loop {
        let groups = if rescan {
            rescan = false;
            // Reads every petition's tally: off the async threads.
            let (s, f) = (store.clone(), following.clone());
            let found = tokio::task::spawn_blocking(move || unfollowed_groups(&s, &f, &me))
                .await
                .unwrap_or(Err(Error::NodeStopped));
            match found {
                Ok(g) => g,
                Err(e) => {
                    warn!(error = %e, "could not list the petitions aimed at this node");
                    BTreeSet::new()
                }
            }
        } else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                ev = events.recv() => match ev {
                    Ok(Event::TallyChanged { tally, .. }) if tally.producer == me => tally
                        .group
                        .filter(|g| !following.follows(&Topic::Group(*g)))
                        .into_iter()
                        .collect(),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        rescan = true;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        };
        if groups.is_empty() {
            continue;
        }
        for g in groups {
            info!(group = %g, "following the group of a petition aimed at this node");
            if let Err(e) = following.change(FollowChange::Group(g), true).await {
                warn!(group = %g, error = %e, "could not follow a petition's group");
            }
        }
        let sync = sync.clone();
        tokio::spawn(async move {
            let _ = sync.sync_now(None).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::topics::META;

    #[test]
    fn following_a_producer_subscribes_its_shard_and_meta() {
        let k = AuthorKey([3; 32]);
        let f = Follow {
            producers: HashSet::from([k]),
            ..Follow::default()
        };
        assert!(f.follows(&Topic::Producer(k)));
        assert!(!f.follows(&Topic::Producer(AuthorKey([4; 32]))));
        assert_eq!(
            f.shards(),
            BTreeSet::from([META.to_string(), shard_of(&Topic::Producer(k))])
        );
    }

    #[test]
    fn following_a_product_follows_its_producers_topic() {
        let k = AuthorKey([5; 32]);
        let f = Follow {
            products: HashSet::from([(k, "gtin-1".to_string())]),
            ..Follow::default()
        };
        assert!(f.follows(&Topic::Producer(k)));
        assert!(f.shards().contains(&shard_of(&Topic::Producer(k))));
        assert!(!f.follows(&Topic::Producer(AuthorKey([6; 32]))));
    }
}
