//! Finding what a person names without the whole id: a record id or a key by a unique prefix
//! of at least [`MIN_PREFIX`] hex digits (as git takes), a key by its profile's name
//! (PROTOCOL.md §11, §11.1).
//!
//! A prefix is a range scan of the id index (`r`), of the profile slots (`s` `F`) and of the
//! producer topics (`t` with tag 1, one seek per producer): each costs the matches it finds,
//! not the store's size. A name is looked for through the word index ([`super::search`]).

use chorus_protocol::sync::wire::kinds;
use chorus_protocol::{fold, AuthorKey, Body, Kind, RecordId, SignedRecord, Topic};

use super::keys::{self, SlotKey};
use super::Store;
use crate::error::{Error, Result};

/// The fewest hex digits a short form may have.
pub const MIN_PREFIX: usize = 8;

/// A hex prefix as whole bytes and an odd last digit, if any; `None` if not hex.
fn prefix_bytes(hex: &str) -> Option<(Vec<u8>, Option<u8>)> {
    if hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let lower = hex.to_ascii_lowercase();
    let even = lower.len() / 2 * 2;
    let bytes = hex::decode(&lower[..even]).ok()?;
    let nibble = match lower.get(even..) {
        Some(d) if !d.is_empty() => Some(u8::from_str_radix(d, 16).ok()?),
        _ => None,
    };
    Some((bytes, nibble))
}

/// Does the byte after the whole-byte prefix start with the odd last digit?
fn nibble_ok(next: Option<&u8>, nibble: Option<u8>) -> bool {
    nibble.is_none_or(|n| next.is_some_and(|b| b >> 4 == n))
}

fn bad_prefix(hex: &str) -> Error {
    Error::Config(format!(
        "{hex:?}: give at least {MIN_PREFIX} hex digits of an id or key"
    ))
}

impl Store {
    /// The stored records whose id starts with the hex digits `hex`, at most `limit`, in id
    /// order.
    pub fn ids_starting(&self, hex: &str, limit: usize) -> Result<Vec<RecordId>> {
        let (bytes, nibble) = prefix_bytes(hex).ok_or_else(|| bad_prefix(hex))?;
        let mut out = Vec::new();
        for kv in self.scan(&keys::key(keys::RECORD, &[&bytes])) {
            let (k, _) = kv?;
            if !nibble_ok(k.get(1 + bytes.len()), nibble) {
                continue;
            }
            if let Some(id) = keys::id_at(&k, 1) {
                out.push(id);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The keys this node knows that start with the hex digits `hex`, at most `limit`, in
    /// key order: authors of the profiles it holds, producers whose topics it stores.
    pub fn keys_starting(&self, hex: &str, limit: usize) -> Result<Vec<AuthorKey>> {
        let (bytes, nibble) = prefix_bytes(hex).ok_or_else(|| bad_prefix(hex))?;
        let mut found = std::collections::BTreeSet::new();
        let profiles = SlotKey::profile(&AuthorKey([0; 32])).into_bytes();
        let profile_prefix = [&profiles[..2], &bytes[..]].concat();
        for kv in self.scan(&profile_prefix) {
            let (k, _) = kv?;
            if nibble_ok(k.get(profile_prefix.len()), nibble) {
                if let Some(a) = key_at(&k, 2) {
                    found.insert(a);
                }
            }
            if found.len() >= limit {
                break;
            }
        }
        // Producer topics: `t`, tag 1, the key, then a record's time and id; one seek per
        // producer.
        let tree = self.cur.tree()?;
        let topics = [&[keys::TOPIC, 1][..], &bytes[..]].concat();
        let mut from = topics.clone();
        while found.len() < limit {
            let Some(kv) = tree.range(from.clone()..).next() else {
                break;
            };
            let (k, _) = kv?;
            if !k.starts_with(&topics) {
                break;
            }
            let Some(producer) = key_at(&k, 2) else {
                break;
            };
            if nibble_ok(k.get(topics.len()), nibble) {
                found.insert(producer);
            }
            // Past every key of this producer's topic.
            from = [&[keys::TOPIC, 1][..], producer.as_bytes(), &[0xff; 41]].concat();
        }
        Ok(found.into_iter().take(limit).collect())
    }

    /// The authors whose profile (their latest, unretracted) is named `name`, case and
    /// accents ignored (PROTOCOL.md §11.1), at most `limit`: found through the word index,
    /// so it costs the profiles that share the name's words, not all of them.
    pub fn keys_named(&self, name: &str, limit: usize) -> Result<Vec<AuthorKey>> {
        let wanted = fold::fold(name.trim());
        let words = fold::words(name);
        let mut out = Vec::new();
        // A name without a word (only signs, say) is not in the word index: every profile
        // is read then.
        let candidates: Vec<SignedRecord> = match words.iter().max_by_key(|w| w.len()) {
            Some(longest) => {
                let mut recs = Vec::new();
                for id in self.ids_with_word(longest, kinds::PROFILE)? {
                    recs.extend(self.record(&id)?);
                }
                recs
            }
            None => self.profiles()?,
        };
        for rec in candidates {
            let id = rec.id();
            let named = matches!(&rec.record().body, Body::Profile(p) if fold::fold(p.name.trim()) == wanted);
            // Only the author's current profile names them.
            let current = named && self.profile(&rec.author())?.is_some_and(|p| p.id() == id);
            if current && !out.contains(&rec.author()) {
                out.push(rec.author());
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every author's current profile (latest, unretracted), in key order.
    pub fn profiles(&self) -> Result<Vec<SignedRecord>> {
        let slots = SlotKey::profile(&AuthorKey([0; 32])).into_bytes();
        let mut out = Vec::new();
        for kv in self.scan(&slots[..2]) {
            let (k, _) = kv?;
            if let Some(rec) = key_at(&k, 2)
                .map(|a| self.profile(&a))
                .transpose()?
                .flatten()
            {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Every group this node holds (groups travel on `meta`, which every node keeps), in
    /// time order.
    pub fn groups(&self) -> Result<Vec<SignedRecord>> {
        let mut out = Vec::new();
        for kv in self.scan(&keys::key(keys::TOPIC, &[&keys::topic_bytes(&Topic::Meta)])) {
            let (_, wire) = kv?;
            let rec = SignedRecord::from_vec(wire.to_vec())?;
            if rec.record().kind() == Kind::Group {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// The products of `producer` that the records this node holds name (reviews,
    /// petitions), in the order of their codes' hashes: each code and a record naming it.
    /// One seek per product.
    pub fn products_of(&self, producer: &AuthorKey) -> Result<Vec<(String, SignedRecord)>> {
        let tree = self.cur.tree()?;
        let prefix = keys::key(keys::PRODUCT, &[producer.as_bytes()]);
        let mut from = prefix.clone();
        let mut out = Vec::new();
        loop {
            let Some(kv) = tree.range(from.clone()..).next() else {
                break;
            };
            let (k, _) = kv?;
            if !k.starts_with(&prefix) {
                break;
            }
            let Some(product) = k.get(1..65) else {
                break;
            };
            let id = k.len().checked_sub(32).and_then(|at| keys::id_at(&k, at));
            if let Some(rec) = id.map(|id| self.record(&id)).transpose()?.flatten() {
                if let Some((_, code)) = super::product_of(&rec) {
                    out.push((code, rec));
                }
            }
            // Past every key of this product.
            from = [&[keys::PRODUCT][..], product, &[0xff; 41]].concat();
        }
        Ok(out)
    }

    /// The name in an author's profile, if this node holds one.
    pub fn name_of(&self, author: &AuthorKey) -> Result<Option<String>> {
        Ok(self
            .profile(author)?
            .and_then(|rec| match &rec.record().body {
                Body::Profile(p) => Some(p.name.clone()),
                _ => None,
            }))
    }
}

/// The 32-byte key at `at` in a store key.
fn key_at(k: &[u8], at: usize) -> Option<AuthorKey> {
    k.get(at..at + 32)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(AuthorKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_split_into_whole_bytes_and_an_odd_digit() {
        assert_eq!(
            prefix_bytes("6c7a8c97"),
            Some((vec![0x6c, 0x7a, 0x8c, 0x97], None))
        );
        assert_eq!(
            prefix_bytes("6C7a8c9"),
            Some((vec![0x6c, 0x7a, 0x8c], Some(9)))
        );
        assert_eq!(prefix_bytes("xyz"), None);
        assert_eq!(prefix_bytes(&"a".repeat(65)), None);
        assert!(nibble_ok(Some(&0x9f), Some(9)));
        assert!(!nibble_ok(Some(&0x8f), Some(9)));
        assert!(nibble_ok(None, None));
        assert!(!nibble_ok(None, Some(1)));
    }
}
