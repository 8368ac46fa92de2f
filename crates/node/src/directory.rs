//! Finding what this node does not hold: a search answered from the store and by the
//! connected peers (PROTOCOL.md §13.5).
//!
//! Every node keeps `meta`'s groups, so groups are found locally once it has caught up; a
//! consumer's node keeps only the profiles it uses (`crate::profiles`), and petitions and
//! products live on the topics of the producers they concern, which it mostly does not
//! keep. A [`Directory`] therefore asks the store and, at
//! the same time, up to [`ASK`] connected peers that answer searches (protocol 1.3: sync 2),
//! peers known to keep everything first, several so that one cannot hide a result. Every
//! record a peer returns is checked like any record a peer sends (signature, id, limits,
//! time) and must match the query; one that fails is dropped and its sender penalised.
//! Groups found so are stored (the node keeps them anyway), and profiles the node keeps
//! (`Following::keeps`); petitions, products and other profiles are shown, not stored,
//! until the user acts on one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::sync::wire::{kinds, HitKind, Request, Response, Scope};
use chorus_protocol::{fold, validate, AuthorKey, RecordId, SignedRecord, Topic};
use rand::seq::SliceRandom;

use crate::clock::now_ms;
use crate::error::Result;
use crate::follow::Following;
use crate::ingest::Ingest;
use crate::net::{Client, PeerId};
use crate::store::{product_of, Found, Store};
use crate::waiting::Source;

/// Peers asked by one search, at most.
pub const ASK: usize = 4;
/// How long a peer may take to answer a search.
pub const WAIT: Duration = Duration::from_millis(1500);
/// Peers remembered as keeping everything.
const MAX_ARCHIVES: usize = 1024;
/// Records found on peers remembered, so that acting on one just found needs no fetch.
const MAX_RECENT: usize = 256;

/// One thing found.
#[derive(Debug, Clone)]
pub struct Hit {
    /// What it is.
    pub kind: HitKind,
    /// The record that shows it (for a product: a review or a petition that names it).
    pub record: SignedRecord,
    /// Its count: this node's own when `here`, else the highest a peer reported.
    pub count: u64,
    /// Found in this node's store (its count is this node's).
    pub here: bool,
}

/// What a search found, and how it went.
#[derive(Debug, Clone, Default)]
pub struct Searched {
    /// The hits, best first.
    pub hits: Vec<Hit>,
    /// Peers asked.
    pub asked: usize,
    /// Of those, peers that answered in time.
    pub answered: usize,
    /// Of those, peers that said they keep every topic.
    pub complete: usize,
    /// Records from peers dropped: invalid, or not matching the query.
    pub dropped: usize,
    /// Bytes of requests sent and answers received.
    pub bytes: u64,
}

/// Searches the store and the connected peers. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    store: Store,
    client: Client,
    ingest: Ingest,
    following: Following,
    skew_ms: u64,
    /// Peers whose answers said they keep everything: asked first.
    archives: Arc<Mutex<HashSet<PeerId>>>,
    /// The latest records found on peers (not stored), newest last, with who sent each.
    recent: Arc<Mutex<VecDeque<Recent>>>,
    /// Names from the checked profiles that searches brought and the node does not keep,
    /// with each profile's time, oldest learned first, at most [`MAX_NAMES`].
    names: Arc<Mutex<VecDeque<(AuthorKey, u64, String)>>>,
}

/// Names of authors whose profiles the node does not keep, remembered from searches.
const MAX_NAMES: usize = 4096;

/// A record found on a peer: its id, the peer, its wire form.
type Recent = (RecordId, PeerId, Vec<u8>);

/// What a hit is, to merge the same thing found twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Identity {
    Author([u8; 32]),
    Record([u8; 32]),
    Product([u8; 32], String),
}

fn identity(kind: HitKind, rec: &SignedRecord) -> Option<Identity> {
    match kind {
        HitKind::Profile => Some(Identity::Author(*rec.author().as_bytes())),
        HitKind::Group | HitKind::Petition => Some(Identity::Record(*rec.id().as_bytes())),
        HitKind::Product => {
            product_of(rec).map(|(producer, code)| Identity::Product(*producer.as_bytes(), code))
        }
    }
}

/// Is `query` one a peer answers (PROTOCOL.md §13.5): at most 256 bytes, with a word or of 8
/// to 64 hex digits? Anything else would be malformed to it (and count against this node).
pub fn searchable(query: &str) -> bool {
    let q = query.trim();
    let hex = (crate::store::MIN_PREFIX..=64).contains(&q.len())
        && q.bytes().all(|b| b.is_ascii_hexdigit());
    q.len() <= chorus_protocol::sync::wire::MAX_QUERY && (hex || !fold::words(q).is_empty())
}

/// Does a record a peer returned as `kind` match `query`: by its words, or by the hex
/// digits its id (or, for a profile, its author's key) starts with?
pub(crate) fn relevant(query: &str, kind: HitKind, rec: &SignedRecord) -> bool {
    let r = rec.record();
    let text = match (kind, &r.body) {
        (HitKind::Profile, chorus_protocol::Body::Profile(p)) => p.name.as_str(),
        (HitKind::Group, chorus_protocol::Body::Group(g)) => g.name.as_str(),
        (HitKind::Petition, chorus_protocol::Body::Petition(p)) => p.title.as_str(),
        (HitKind::Product, _) => match product_of(rec) {
            Some(_) => match &r.body {
                chorus_protocol::Body::Review(rv) => rv.product.code.as_str(),
                chorus_protocol::Body::Petition(p) => p.product.as_deref().unwrap_or(""),
                _ => return false,
            },
            None => return false,
        },
        _ => return false,
    };
    let q = query.trim().to_ascii_lowercase();
    let hex = q.len() >= crate::store::MIN_PREFIX && q.bytes().all(|b| b.is_ascii_hexdigit());
    if hex
        && (rec.id().to_string().starts_with(&q)
            || (kind == HitKind::Profile && r.author.to_string().starts_with(&q)))
    {
        return true;
    }
    let words = fold::words(query);
    let have = fold::words(text);
    !words.is_empty()
        && words
            .iter()
            .all(|w| have.iter().any(|h| h.starts_with(w.as_str())))
}

/// Whole words of the query found in the hit's text: ranks whole-word matches first.
fn whole_words(query: &[String], kind: HitKind, rec: &SignedRecord) -> usize {
    let text = match (&rec.record().body, kind) {
        (chorus_protocol::Body::Profile(p), _) => p.name.clone(),
        (chorus_protocol::Body::Group(g), _) => g.name.clone(),
        (chorus_protocol::Body::Petition(p), HitKind::Petition) => p.title.clone(),
        _ => product_of(rec).map(|(_, c)| c).unwrap_or_default(),
    };
    let have = fold::words(&text);
    query.iter().filter(|q| have.contains(q)).count()
}

impl Directory {
    /// A directory over this node's store, network and ingest.
    pub fn new(
        store: Store,
        client: Client,
        ingest: Ingest,
        following: Following,
        skew_ms: u64,
    ) -> Self {
        Directory {
            store,
            client,
            ingest,
            following,
            skew_ms,
            archives: Arc::new(Mutex::new(HashSet::new())),
            recent: Arc::new(Mutex::new(VecDeque::new())),
            names: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// An author's name: from the profile the store holds, else from a checked profile a
    /// recent search brought (search answers carry the profiles of the producers their
    /// hits concern, PROTOCOL.md §13.5).
    pub fn name_of(&self, author: &AuthorKey) -> Option<String> {
        if let Ok(Some(n)) = self.store.name_of(author) {
            return Some(n);
        }
        let names = self.names.lock().ok()?;
        names
            .iter()
            .find(|(a, _, _)| a == author)
            .map(|(_, _, n)| n.clone())
    }

    /// Remembers the name of a checked profile, unless one as recent of the same author is
    /// remembered already (a peer may replay an author's older profile, not bring back an
    /// old name).
    fn learn_name(&self, profile: &SignedRecord) {
        let chorus_protocol::Body::Profile(p) = &profile.record().body else {
            return;
        };
        let (author, at) = (profile.author(), profile.record().created_at);
        if let Ok(mut names) = self.names.lock() {
            if names.iter().any(|(a, t, _)| *a == author && *t >= at) {
                return;
            }
            names.retain(|(a, _, _)| *a != author);
            if names.len() >= MAX_NAMES {
                names.pop_front();
            }
            names.push_back((author, at, p.name.clone()));
        }
    }

    /// Did this peer's answer to a search say it keeps everything?
    pub fn is_archive(&self, peer: &PeerId) -> bool {
        self.archives.lock().is_ok_and(|a| a.contains(peer))
    }

    /// A record a recent search found on a peer, and that peer: what acting on a search
    /// result starts from, instead of fetching it again.
    pub fn recently_found(&self, id: &RecordId) -> Option<(PeerId, Vec<u8>)> {
        let recent = self.recent.lock().ok()?;
        recent
            .iter()
            .rev()
            .find(|(r, _, _)| r == id)
            .map(|(_, p, w)| (*p, w.clone()))
    }

    fn remember(&self, id: RecordId, peer: PeerId, wire: Vec<u8>) {
        if let Ok(mut recent) = self.recent.lock() {
            if recent.iter().any(|(r, _, _)| *r == id) {
                return;
            }
            if recent.len() >= MAX_RECENT {
                recent.pop_front();
            }
            recent.push_back((id, peer, wire));
        }
    }

    /// Finds what matches `query` (words, or 8 to 64 hex digits of an id or key) among the
    /// kinds in `wanted` (bits of [`kinds`]): in the store, and, with `peers`, from up to
    /// [`ASK`] connected peers at once, each given [`WAIT`]. At most `limit` hits (at most
    /// [`chorus_protocol::sync::wire::MAX_HITS`]).
    pub async fn search(
        &self,
        query: &str,
        wanted: u8,
        limit: usize,
        peers: bool,
    ) -> Result<Searched> {
        let limit = limit.clamp(1, chorus_protocol::sync::wire::MAX_HITS);
        let wanted = wanted & kinds::ALL;
        let store = self.store.clone();
        let q = query.to_string();
        let local = tokio::task::spawn_blocking(move || store.search(&q, wanted, limit));
        let remote = async {
            if peers && searchable(query) {
                self.ask_peers(query, wanted, limit).await
            } else {
                Ok(Vec::new())
            }
        };
        let (local, remote) = tokio::join!(local, remote);
        let local = local.map_err(|e| crate::Error::Network(format!("search failed: {e}")))??;
        let (answers, mut out) = match remote {
            Ok(a) => (a, Searched::default()),
            Err(_) => (Vec::new(), Searched::default()),
        };
        let words = fold::words(query);
        // Each source's hits, best first by its own ranking; merged below so that every
        // source's best make the list (no peer can push the others' results out with
        // counts it makes up).
        let mut lists: Vec<Vec<Identity>> = Vec::new();
        let mut merged: HashMap<Identity, Hit> = HashMap::new();
        let mut own = Vec::new();
        for Found {
            kind,
            record,
            count,
        } in local
        {
            if let Some(id) = identity(kind, &record) {
                own.push(id.clone());
                merged.insert(
                    id,
                    Hit {
                        kind,
                        record,
                        count,
                        here: true,
                    },
                );
            }
        }
        lists.push(own);
        let now = now_ms();
        out.asked = answers.len();
        for answer in answers {
            out.bytes += answer.bytes;
            let Some((peer, scope, hits, profiles)) = answer.found else {
                continue;
            };
            out.answered += 1;
            if scope == Scope::Everything {
                out.complete += 1;
                if let Ok(mut a) = self.archives.lock() {
                    if a.len() < MAX_ARCHIVES {
                        a.insert(peer);
                    }
                }
            }
            let mut faults = 0;
            let mut meta = Vec::new();
            let mut list = Vec::new();
            // The producers this peer's valid hits concern: the only profiles it may add.
            let mut concerned: HashSet<AuthorKey> = HashSet::new();
            for h in hits {
                let rec = match validate::check_wire(&h.wire, now, self.skew_ms) {
                    Ok(rec) => rec,
                    // A record a little ahead of this node's clock is no one's fault
                    // (PROTOCOL.md §12.2); it is dropped, unblamed, and the profile of
                    // the producer it concerns may still come with it.
                    Err(e) => {
                        let blamed = crate::ingest::sender_at_fault(&e);
                        faults += u32::from(blamed);
                        if !blamed {
                            if let Ok(r) = SignedRecord::from_bytes(&h.wire) {
                                concerned.extend(crate::store::search::concerns(&r));
                            }
                        }
                        out.dropped += 1;
                        continue;
                    }
                };
                if h.kind.to_u8() & wanted == 0 || !relevant(query, h.kind, &rec) {
                    faults += 1;
                    out.dropped += 1;
                    continue;
                }
                concerned.extend(crate::store::search::concerns(&rec));
                if h.kind == HitKind::Profile {
                    self.learn_name(&rec);
                }
                let Some(id) = identity(h.kind, &rec) else {
                    continue;
                };
                // A profile has no count; any other is a claim: the lowest of those made.
                let claim = if h.kind == HitKind::Profile {
                    0
                } else {
                    h.count
                };
                match merged.get_mut(&id) {
                    Some(m) => {
                        if !m.here {
                            m.count = m.count.min(claim);
                        }
                    }
                    None => {
                        if h.kind == HitKind::Profile && self.newer_profile_here(&rec)? {
                            continue;
                        }
                        // `meta`'s groups and attestations are kept; a profile only if
                        // the node uses it (`Following::keeps`).
                        let kept = rec.record().topic == Topic::Meta
                            && self.following.keeps(rec.record(), &self.store);
                        if kept {
                            meta.push(h.wire.clone());
                        } else {
                            self.remember(rec.id(), peer, h.wire.clone());
                        }
                        merged.insert(
                            id.clone(),
                            Hit {
                                kind: h.kind,
                                record: rec,
                                count: claim,
                                here: false,
                            },
                        );
                    }
                }
                list.push(id);
            }
            lists.push(list);
            for wire in profiles {
                let rec = match validate::check_wire(&wire, now, self.skew_ms) {
                    Ok(rec) => rec,
                    Err(e) => {
                        faults += u32::from(crate::ingest::sender_at_fault(&e));
                        out.dropped += 1;
                        continue;
                    }
                };
                let named = rec.record().kind() == chorus_protocol::Kind::Profile
                    && concerned.contains(&rec.author());
                if !named {
                    faults += 1;
                    out.dropped += 1;
                    continue;
                }
                self.learn_name(&rec);
                if self.following.keeps(rec.record(), &self.store)
                    && !self.newer_profile_here(&rec)?
                {
                    meta.push(wire);
                }
            }
            if faults > 0 {
                self.client.penalise(peer, faults).await;
            }
            // What the node keeps of `meta` is stored, as a pull would store it.
            if !meta.is_empty() {
                let _ = self
                    .ingest
                    .ingest_from(meta, Source::Peer(peer.to_bytes()))
                    .await;
            }
        }
        // Whole-word matches first, then the rest; within each, the sources take turns
        // (this node first), each in its own order.
        let mut order: Vec<Identity> = Vec::new();
        let mut placed: HashSet<Identity> = HashSet::new();
        for whole in [true, false] {
            let mut queues: Vec<std::collections::VecDeque<&Identity>> = lists
                .iter()
                .map(|l| {
                    l.iter()
                        .filter(|id| {
                            merged.get(*id).is_some_and(|h| {
                                (whole_words(&words, h.kind, &h.record) == words.len()) == whole
                            })
                        })
                        .collect()
                })
                .collect();
            while queues.iter().any(|q| !q.is_empty()) {
                for q in &mut queues {
                    while let Some(id) = q.pop_front() {
                        if placed.insert(id.clone()) {
                            order.push(id.clone());
                            break;
                        }
                    }
                }
            }
        }
        out.hits = order
            .into_iter()
            .filter_map(|id| merged.remove(&id))
            .take(limit)
            .collect();
        Ok(out)
    }

    /// Does this node hold a profile of the same author at least as recent?
    fn newer_profile_here(&self, rec: &SignedRecord) -> Result<bool> {
        Ok(self.store.profile(&rec.author())?.is_some_and(|p| {
            p.id() != rec.id() && p.record().created_at >= rec.record().created_at
        }))
    }

    /// Asks up to [`ASK`] peers that answer searches, known archives first, all at once.
    async fn ask_peers(&self, query: &str, wanted: u8, limit: usize) -> Result<Vec<Answer>> {
        let mut peers = self.client.peers().await?.searchable;
        peers.shuffle(&mut rand::rng());
        let archives = self.archives.lock().map(|a| a.clone()).unwrap_or_default();
        peers.sort_by_key(|p| !archives.contains(p));
        peers.truncate(ASK);
        let request = Request::Search {
            query: query.to_string(),
            kinds: wanted,
            limit: limit as u16,
        }
        .encode();
        let asks = peers.into_iter().map(|peer| {
            let request = request.clone();
            async move {
                let sent = request.len() as u64;
                match tokio::time::timeout(WAIT, self.client.request(peer, request)).await {
                    Ok(Ok(raw)) => {
                        let bytes = sent + raw.len() as u64;
                        let found = match Response::decode(&raw) {
                            Ok(Response::Found {
                                scope,
                                hits,
                                profiles,
                            }) => Some((peer, scope, hits, profiles)),
                            Ok(_) => None,
                            Err(_) => {
                                self.client.penalise(peer, 1).await;
                                None
                            }
                        };
                        Answer { bytes, found }
                    }
                    _ => Answer {
                        bytes: sent,
                        found: None,
                    },
                }
            }
        });
        Ok(futures::future::join_all(asks).await)
    }
}

/// One peer's answer to a search: bytes sent and received, and what it found (if it
/// answered).
struct Answer {
    bytes: u64,
    found: Option<Answered>,
}

/// A peer, what it keeps, its hits and the profiles of the producers they concern.
type Answered = (
    PeerId,
    Scope,
    Vec<chorus_protocol::sync::wire::Hit>,
    Vec<Vec<u8>>,
);

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::testing::key;
    use chorus_protocol::{Body, Group, Profile, RecordBuilder, Role};

    fn signed(k: &chorus_protocol::SigningKey, body: Body) -> SignedRecord {
        RecordBuilder::new(body)
            .created_at(now_ms())
            .sign(k)
            .unwrap()
    }

    #[test]
    fn peers_hits_must_match_the_query() {
        let k = key(1);
        let profile = signed(
            &k,
            Body::Profile(Profile {
                name: "Café Ledito".into(),
                role: Role::Producer,
                about: None,
            }),
        );
        assert!(relevant("cafe", HitKind::Profile, &profile));
        assert!(relevant("LED caf", HitKind::Profile, &profile));
        assert!(!relevant("tea", HitKind::Profile, &profile));
        // A profile is not a group, whatever its name.
        assert!(!relevant("cafe", HitKind::Group, &profile));
        let prefix = &profile.id().to_string()[..10];
        assert!(relevant(prefix, HitKind::Profile, &profile));
        let key = &profile.author().to_string()[..8];
        assert!(relevant(key, HitKind::Profile, &profile));
        let group = signed(
            &k,
            Body::Group(Group {
                name: "Cafe lovers".into(),
                charter: None,
                admission: chorus_protocol::Admission::Open,
            }),
        );
        assert!(relevant("café", HitKind::Group, &group));
        assert!(!relevant(key, HitKind::Group, &group));
    }
}
