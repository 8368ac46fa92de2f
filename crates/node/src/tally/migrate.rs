//! Opening a store: one-off rewrites of what older nodes stored, done when a store opens.
//! They are a rebuild of the derived state under this version's rules, which is why the
//! public ways to open a store ([`Store::open`], [`Store::open_rebuilding_above`]) live here,
//! beside the rules, and not in `crate::store`.

use std::path::Path;

use std::collections::BTreeSet;

use chorus_protocol::rules::depends_on;
use chorus_protocol::{RecordId, SignedRecord};

use crate::error::{Error, Result};
use crate::store::index::index_keys;
use crate::store::search::{build_word_index, word_entries};
use crate::store::{keys, Journaled, Store, BACKGROUND_ABOVE};

impl Store {
    /// Opens (or creates) the store in `dir`. Without a snapshot of its indexes, a store of
    /// more than [`BACKGROUND_ABOVE`] records rebuilds them in the background
    /// ([`Store::indexes_ready`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        Self::open_rebuilding_above(dir, BACKGROUND_ABOVE).map_err(|e| {
            if e.is_corruption() && !matches!(e, Error::DamagedStore { .. }) {
                Error::DamagedStore {
                    path: dir.display().to_string(),
                    cause: e.to_string(),
                }
            } else {
                e
            }
        })
    }

    /// [`Store::open`], rebuilding the indexes in the background when the store holds more
    /// than `records` records (`0`: always; `u64::MAX`: never).
    pub fn open_rebuilding_above(dir: impl AsRef<Path>, records: u64) -> Result<Self> {
        Self::open_with(dir.as_ref(), records, &migrate_derived)
    }
}

/// Brings the derived state of a store written by an older version up to
/// [`keys::FORMAT_VERSION`], once per store (marked by [`keys::FORMAT`]). Derived state is
/// a function of the records, so the rewrite is a rebuild: every derived key is removed and
/// the derived state is computed again from the stored records under this version's rules
/// ([`super::recompute::derive`]), as the audit computes it. A record that breaks a
/// rule it did not break before (a pledge in another currency than its campaign's) is
/// removed, with every record that points at it ([`remove_records`]): the store is then
/// the one a node of this version would have built from the same records. The marker is written once the rebuild is durable, so a
/// crash part-way starts it again at the next open. (Plain inserts, not a `sled::Batch`:
/// the first batch would switch on sled's global read lock for the life of the process.)
/// Returns whether it rebuilt anything.
pub(crate) fn migrate_derived(db: &sled::Db, tree: &sled::Tree) -> Result<bool> {
    let version = tree
        .get(keys::FORMAT)?
        .and_then(|v| v.first().copied())
        .unwrap_or(1);
    if version >= keys::FORMAT_VERSION {
        return Ok(false);
    }
    let start = std::time::Instant::now();
    if version < 4 {
        let words = build_word_index(tree)?;
        tracing::info!(entries = words, "word index written for the stored records");
    }
    let moved = if version < 5 { move_profiles(tree)? } else { 0 };
    if moved > 0 {
        tracing::info!(profiles = moved, "profiles moved to their authors' places");
    }
    if version >= 3 {
        db.flush()?;
        tree.insert(keys::FORMAT, &[keys::FORMAT_VERSION])?;
        db.flush()?;
        // The derived state is unchanged. The saved sync index is still right unless
        // profiles moved (their sync keys changed): then it is rebuilt.
        return Ok(moved > 0);
    }
    for prefix in keys::DERIVED {
        for k in tree.scan_prefix([prefix]).keys() {
            tree.remove(k?)?;
        }
    }
    let (mut fresh, mut refused) = super::recompute::derive(tree)?;
    let mut removed = 0;
    if !refused.is_empty() {
        let ids = refused
            .iter()
            .filter_map(|d| hex::decode(&d.key).ok()?.try_into().ok().map(RecordId))
            .collect();
        removed = remove_records(tree, ids)?;
        (fresh, refused) = super::recompute::derive(tree)?;
    }
    let mut written = 0u64;
    for (k, v) in fresh.into_entries() {
        if k == keys::COUNT || k.first().is_some_and(|p| keys::DERIVED.contains(p)) {
            tree.insert(k, v)?;
            written += 1;
        }
    }
    db.flush()?;
    tree.insert(keys::FORMAT, &[keys::FORMAT_VERSION])?;
    db.flush()?;
    tracing::info!(
        from = version,
        to = keys::FORMAT_VERSION,
        derived_keys = written,
        removed,
        refused = refused.len(),
        ms = start.elapsed().as_millis() as u64,
        "derived state rebuilt under this version's rules"
    );
    Ok(true)
}

/// Moves every profile stored under `meta` (format 4 and older) to its author's place
/// (`chorus_protocol::sync::place_of`): its `t` key and its id-index entry. Each is written
/// at its new key before its old key goes, so a crash part-way loses nothing, and the next
/// open moves the rest. Returns how many moved.
fn move_profiles(tree: &sled::Tree) -> Result<u64> {
    let meta = keys::key(
        keys::TOPIC,
        &[&keys::topic_bytes(&chorus_protocol::Topic::Meta)],
    );
    let mut moved = 0;
    for kv in tree.scan_prefix(&meta) {
        let (old, wire) = kv?;
        let rec = SignedRecord::from_vec(wire.to_vec())?;
        let r = rec.record();
        if r.kind() != chorus_protocol::Kind::Profile {
            continue;
        }
        let place = chorus_protocol::sync::place_of(r);
        let id = rec.id();
        tree.insert(keys::timed(keys::TOPIC, &place, r.created_at, &id), wire)?;
        tree.insert(keys::record(&id), keys::location(&place, r.created_at))?;
        tree.remove(old)?;
        moved += 1;
    }
    Ok(moved)
}

/// Removes the records this version would never have stored: `refused` (they break a kind
/// rule) and every record that points at a removed one (a node that lacks a record's target
/// keeps the record waiting, then lets it go), with their index and journal entries.
/// Returns how many. Each round reads every record; there are as many rounds as the longest
/// chain of records pointing at a removed one, plus one.
fn remove_records(tree: &sled::Tree, refused: BTreeSet<RecordId>) -> Result<usize> {
    let mut gone = refused;
    loop {
        let mut more = Vec::new();
        for kv in tree.scan_prefix([keys::TOPIC]) {
            let rec = SignedRecord::from_vec(kv?.1.to_vec())?;
            let points_at_gone = depends_on(&rec.record().body).is_some_and(|t| gone.contains(&t));
            if points_at_gone && !gone.contains(&rec.id()) {
                more.push(rec.id());
            }
        }
        if more.is_empty() {
            break;
        }
        gone.extend(more);
    }
    for id in &gone {
        let Some(location) = tree.get(keys::record(id))? else {
            continue;
        };
        let at = keys::stored_at(&location, id);
        if let Some(wire) = tree.get(&at)? {
            let rec = SignedRecord::from_vec(wire.to_vec())?;
            for k in index_keys(&rec) {
                tree.remove(k)?;
            }
            for (k, _) in word_entries(&rec) {
                tree.remove(k)?;
            }
        }
        tree.remove(at)?;
        tree.remove(keys::record(id))?;
        tree.remove(keys::key(keys::ENDED, &[id.as_bytes()]))?;
    }
    for kv in tree.scan_prefix([keys::JOURNAL]) {
        let (k, v) = kv?;
        let about = match Journaled::decode(&v) {
            Ok(Journaled::Record(id) | Journaled::Milestone(_, id)) => Some(id),
            Err(_) => None,
        };
        if about.is_some_and(|id| gone.contains(&id)) {
            tree.remove(k)?;
        }
    }
    Ok(gone.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Ingest, IngestConfig};
    use chorus_protocol::sync::{profiles_range, record_key, topic_range, RangeIndex};
    use chorus_protocol::{
        Admission, AuthorKey, Body, Group, Profile, RecordBuilder, Role, SigningKey, Topic,
    };

    #[test]
    fn a_store_of_format_4_moves_its_profiles_out_of_meta_when_it_opens() {
        // As a node of format 4 left it, and as a crash part-way through the move leaves
        // it (the new key written, the old one and the id index's old place still there).
        for crashed in [false, true] {
            moves_profiles(crashed);
        }
    }

    fn moves_profiles(crashed: bool) {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[3; 32]);
        let me = AuthorKey(key.verifying_key().to_bytes());
        let t = crate::clock::now_ms() - 60_000;
        let profile = RecordBuilder::new(Body::Profile(Profile {
            name: "Ada".into(),
            role: Role::Producer,
            about: None,
        }))
        .created_at(t)
        .sign(&key)
        .unwrap();
        let group = RecordBuilder::new(Body::Group(Group {
            name: "Ada's friends".into(),
            charter: None,
            admission: Admission::Open,
        }))
        .created_at(t)
        .sign(&key)
        .unwrap();
        let meta = keys::topic_bytes(&Topic::Meta);
        {
            let store = Store::open(dir.path()).unwrap();
            let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
            ing.ingest_blocking(vec![profile.wire().to_vec(), group.wire().to_vec()])
                .unwrap();
            drop(ing);
            threads.join();
            // What a node of format 4 left: the profile under `meta`.
            let tree = store.tree();
            let id = profile.id();
            let new = keys::timed(
                keys::TOPIC,
                &chorus_protocol::sync::place_of(profile.record()),
                t,
                &id,
            );
            if crashed {
                assert!(tree.contains_key(new).unwrap());
            } else {
                assert!(tree.remove(new).unwrap().is_some());
            }
            tree.insert(keys::timed(keys::TOPIC, &meta, t, &id), profile.wire())
                .unwrap();
            tree.insert(keys::record(&id), keys::location(&meta, t))
                .unwrap();
            store.set_format_version(4).unwrap();
            store.close().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let view = store.sync_view();
        let (lo, hi) = profiles_range(&me);
        assert_eq!(
            view.keys(&lo, &hi, 10).unwrap(),
            [record_key(profile.record(), &profile.id())]
        );
        let (lo, hi) = topic_range(&Topic::Meta);
        assert_eq!(
            view.keys(&lo, &hi, 10).unwrap(),
            [record_key(group.record(), &group.id())]
        );
        assert_eq!(store.record(&profile.id()).unwrap(), Some(profile.clone()));
        assert_eq!(store.profile(&me).unwrap(), Some(profile));
        let old = keys::key(keys::TOPIC, &[&meta]);
        assert_eq!(store.tree().scan_prefix(old).count(), 1);
    }
}
