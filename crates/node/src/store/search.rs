//! Finding records by the words of what people call them (PROTOCOL.md §11.1, §13.5):
//! profiles and groups by their name, petitions by their title, products by their code.
//!
//! Each record with such a text gets one index entry per distinct word (`W` word 0x00 id,
//! written with the record, [`word_entries`]); the value is the bit set of what the word
//! finds the record as (a petition's title finds the petition, its product code the
//! product). A search scans the entries of its longest word as a prefix ("caf" finds
//! "café"), so it costs the records that share that word, not the store's size, and reads
//! each candidate to check its other words. Records are never removed from a store but by
//! a migration, so neither are their entries; a profile that a newer one replaced is
//! skipped when read.

use std::collections::HashSet;

use chorus_protocol::sync::wire::HitKind;
use chorus_protocol::{fold, AuthorKey, Body, RecordId, SignedRecord};

use super::keys::{self, ProductKey};
use super::Store;
use crate::error::Result;

/// Longest word kept in the index, in bytes (a longer word is kept cut, at a character
/// boundary; the record's own text settles the match).
const WORD_BYTES: usize = 24;
/// Most words indexed per record.
const MAX_WORDS: usize = 32;
/// Most index entries of the kinds looked for that one word's scan keeps, and most it reads
/// of any kind (four times as many): a search's cost whatever the store holds.
const MAX_SCANNED: usize = 20_000;
/// Most words of a query looked up in the index (the longest; the others are checked on
/// the records read).
const MAX_QUERY_WORDS: usize = 8;

/// One thing found: what it is, the record that shows it (for a product, a review or a
/// petition that names it) and its count here.
#[derive(Debug, Clone)]
pub struct Found {
    /// What was found.
    pub kind: HitKind,
    /// The record.
    pub record: SignedRecord,
    /// Endorsers of a petition, members of a group, reviews of a product; 0 for a profile.
    pub count: u64,
}

/// The producer a petition, product or review hit concerns (whose name a result shows
/// beside it); none for a profile or a group.
pub fn concerns(rec: &SignedRecord) -> Option<AuthorKey> {
    match &rec.record().body {
        Body::Petition(p) => Some(p.producer),
        Body::Review(r) => Some(r.product.producer),
        _ => None,
    }
}

/// The texts of a record that a search matches, with what each finds it as.
fn texts(rec: &SignedRecord) -> Vec<(HitKind, &str)> {
    match &rec.record().body {
        Body::Profile(p) => vec![(HitKind::Profile, p.name.as_str())],
        Body::Group(g) => vec![(HitKind::Group, g.name.as_str())],
        Body::Petition(p) => {
            let mut out = vec![(HitKind::Petition, p.title.as_str())];
            if let Some(code) = &p.product {
                out.push((HitKind::Product, code.as_str()));
            }
            out
        }
        Body::Review(r) => vec![(HitKind::Product, r.product.code.as_str())],
        _ => Vec::new(),
    }
}

/// A word as the index keeps it: at most [`WORD_BYTES`], cut at a character boundary.
fn clip(w: &str) -> &str {
    if w.len() <= WORD_BYTES {
        return w;
    }
    let mut end = WORD_BYTES;
    while !w.is_char_boundary(end) {
        end -= 1;
    }
    &w[..end]
}

/// The word index entries of a record (none for most kinds): `W` word 0x00 id, and the
/// bits of [`chorus_protocol::sync::wire::kinds`] the word finds it as.
pub(crate) fn word_entries(rec: &SignedRecord) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut words: Vec<(String, u8)> = Vec::new();
    for (kind, text) in texts(rec) {
        for w in fold::words(text) {
            let w = clip(&w).to_string();
            match words.iter().position(|(x, _)| *x == w) {
                Some(at) => words[at].1 |= kind.to_u8(),
                None if words.len() < MAX_WORDS => words.push((w, kind.to_u8())),
                None => {}
            }
        }
    }
    let id = rec.id();
    words
        .into_iter()
        .map(|(w, bits)| (word_key(w.as_bytes(), &id), vec![bits]))
        .collect()
}

fn word_key(word: &[u8], id: &RecordId) -> Vec<u8> {
    [&[keys::WORD][..], word, &[0], id.as_bytes()].concat()
}

/// Does every word of the query start a word of `text`?
fn matches(query: &[String], text: &str) -> bool {
    let words = fold::words(text);
    query
        .iter()
        .all(|q| words.iter().any(|w| w.starts_with(q.as_str())))
}

/// How well `text` matches: the query words that are whole words of it.
fn exact(query: &[String], text: &str) -> usize {
    let words = fold::words(text);
    query.iter().filter(|q| words.contains(q)).count()
}

impl Store {
    /// What this node holds that matches `query` (PROTOCOL.md §13.5): records of the kinds
    /// in `wanted` (bits of [`chorus_protocol::sync::wire::kinds`]) whose text has, for every word of the query, a word
    /// that starts with it; or, for a query of 8 to 64 hex digits, the records and profiles
    /// whose id or key starts with it. At most `limit`, whole-word matches first, then by
    /// count.
    pub fn search(&self, query: &str, wanted: u8, limit: usize) -> Result<Vec<Found>> {
        let mut out = Vec::new();
        let mut seen: HashSet<(HitKind, [u8; 32], Option<ProductKey>)> = HashSet::new();
        let q = query.trim();
        if (super::MIN_PREFIX..=64).contains(&q.len()) && q.bytes().all(|b| b.is_ascii_hexdigit()) {
            for id in self.ids_starting(q, limit)? {
                // What the record is first (a petition, not the product it names).
                if let Some(rec) = self.record(&id)? {
                    if let Some((kind, _)) = texts(&rec).first() {
                        self.consider(*kind, &rec, wanted, &mut seen, &mut out)?;
                    }
                }
            }
            for key in self.keys_starting(q, limit)? {
                if let Some(rec) = self.profile(&key)? {
                    self.consider(HitKind::Profile, &rec, wanted, &mut seen, &mut out)?;
                }
            }
        }
        let words = fold::words(q);
        let Some(longest) = words.iter().max_by_key(|w| w.len()) else {
            out.truncate(limit);
            return Ok(out);
        };
        // Candidates beyond `limit`, to rank; bounded.
        let want = limit.saturating_mul(4).min(400).max(limit);
        // The index entries of every word of the query, intersected before any record is
        // read: a record must have a word starting with each (the kinds it is found as are
        // those all its words agree on). Only the longest word's order is kept.
        let (mut candidates, _) = self.word_hits(longest, wanted)?;
        let mut others: Vec<&String> = words.iter().filter(|w| *w != longest).collect();
        others.sort_by_key(|w| std::cmp::Reverse(w.len()));
        others.dedup();
        for w in others.into_iter().take(MAX_QUERY_WORDS - 1) {
            if candidates.is_empty() {
                break;
            }
            let (hits, complete) = self.word_hits(w, wanted)?;
            // A scan cut short cannot rule a record out: the record's own words decide.
            if !complete {
                continue;
            }
            let mut bits_of: std::collections::HashMap<RecordId, u8> =
                std::collections::HashMap::new();
            for (id, bits) in hits {
                *bits_of.entry(id).or_default() |= bits;
            }
            candidates.retain_mut(|(id, bits)| {
                *bits &= bits_of.get(id).copied().unwrap_or(0);
                *bits != 0
            });
        }
        for (id, bits) in candidates {
            let Some(rec) = self.record(&id)? else {
                continue;
            };
            for (kind, text) in texts(&rec) {
                if bits & kind.to_u8() != 0 && matches(&words, text) {
                    self.consider(kind, &rec, wanted, &mut seen, &mut out)?;
                }
            }
            if out.len() >= want {
                break;
            }
        }
        // Whole-word matches first, then the larger counts; ties in index order.
        let mut scored: Vec<(usize, Found)> = out
            .into_iter()
            .map(|f| {
                let text = texts(&f.record)
                    .into_iter()
                    .find(|(k, _)| *k == f.kind)
                    .map(|(_, t)| t.to_string())
                    .unwrap_or_default();
                (exact(&words, &text), f)
            })
            .collect();
        scored.sort_by(|(a, fa), (b, fb)| b.cmp(a).then(fb.count.cmp(&fa.count)));
        Ok(scored.into_iter().take(limit).map(|(_, f)| f).collect())
    }

    /// The ids of the records with a word that starts with `word` (as the index keeps it)
    /// for one of the kinds in `wanted`: at most [`MAX_SCANNED`] entries read.
    pub(crate) fn ids_with_word(&self, word: &str, wanted: u8) -> Result<Vec<RecordId>> {
        Ok(self
            .word_hits(word, wanted)?
            .0
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// [`Self::ids_with_word`], with the kinds (bits) the word finds each record as, among
    /// `wanted`. Entries come in word order, so whole words come before longer ones; a
    /// record with several words starting so appears once per word. Also says whether the
    /// scan went to the end (else it stopped at [`MAX_SCANNED`]).
    fn word_hits(&self, word: &str, wanted: u8) -> Result<(Vec<(RecordId, u8)>, bool)> {
        let prefix = [&[keys::WORD][..], clip(word).as_bytes()].concat();
        let mut out = Vec::new();
        for (read, kv) in self.scan(&prefix).enumerate() {
            if out.len() >= MAX_SCANNED || read >= 4 * MAX_SCANNED {
                return Ok((out, false));
            }
            let (k, v) = kv?;
            let bits = v.first().copied().unwrap_or(0) & wanted;
            if bits == 0 {
                continue;
            }
            if let Some(id) = k.len().checked_sub(32).and_then(|at| keys::id_at(&k, at)) {
                out.push((id, bits));
            }
        }
        Ok((out, true))
    }

    /// Adds `rec` as a `kind` hit unless unwanted, already found, or a profile that a newer
    /// one replaced.
    fn consider(
        &self,
        kind: HitKind,
        rec: &SignedRecord,
        wanted: u8,
        seen: &mut HashSet<(HitKind, [u8; 32], Option<ProductKey>)>,
        out: &mut Vec<Found>,
    ) -> Result<()> {
        if wanted & kind.to_u8() == 0 {
            return Ok(());
        }
        let r = rec.record();
        let (identity, count) = match (&r.body, kind) {
            (Body::Profile(_), HitKind::Profile) => {
                let current = self.profile(&r.author)?.map(|p| p.id());
                if current != Some(rec.id()) {
                    return Ok(());
                }
                ((kind, *r.author.as_bytes(), None), 0)
            }
            (Body::Group(_), HitKind::Group) => {
                let members = self.group(&rec.id())?.map(|t| t.members).unwrap_or(1);
                ((kind, *rec.id().as_bytes(), None), members)
            }
            (Body::Petition(_), HitKind::Petition) => {
                let endorsers = self.tally(&rec.id())?.map(|t| t.endorsers).unwrap_or(0);
                ((kind, *rec.id().as_bytes(), None), endorsers)
            }
            (_, HitKind::Product) => {
                let Some((producer, code)) = product_of(rec) else {
                    return Ok(());
                };
                let pk = ProductKey::of(&producer, &code);
                let reviews = self.rating(&producer, &code)?.count;
                ((kind, [0; 32], Some(pk)), reviews)
            }
            _ => return Ok(()),
        };
        if seen.insert(identity) {
            out.push(Found {
                kind,
                record: rec.clone(),
                count,
            });
        }
        Ok(())
    }
}

/// The product a review or a petition names.
pub fn product_of(rec: &SignedRecord) -> Option<(AuthorKey, String)> {
    match &rec.record().body {
        Body::Review(r) => Some((r.product.producer, r.product.code.clone())),
        Body::Petition(p) => p.product.clone().map(|c| (p.producer, c)),
        _ => None,
    }
}

/// Writes the word index of every stored record (a store of format 3 or older has none):
/// once, when such a store opens. Returns how many entries were written.
pub(crate) fn build_word_index(tree: &sled::Tree) -> Result<u64> {
    let mut written = 0;
    let started = std::time::Instant::now();
    for (n, kv) in tree.scan_prefix([keys::TOPIC]).enumerate() {
        let rec = SignedRecord::from_vec(kv?.1.to_vec())?;
        for (k, v) in word_entries(&rec) {
            tree.insert(k, v)?;
            written += 1;
        }
        if n > 0 && n % 500_000 == 0 {
            tracing::info!(
                records = n,
                secs = started.elapsed().as_secs(),
                "writing the word index of the stored records (once, for this version)"
            );
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Ingest, IngestConfig};
    use chorus_protocol::sync::wire::kinds;
    use chorus_protocol::testing::key;
    use chorus_protocol::{
        Admission, Group, Petition, PetitionVariant, ProductRef, Profile, RecordBuilder, Review,
        Role, SigningKey,
    };

    fn signed(k: &SigningKey, at: u64, body: Body) -> SignedRecord {
        RecordBuilder::new(body).created_at(at).sign(k).unwrap()
    }

    fn profile(k: &SigningKey, at: u64, name: &str) -> SignedRecord {
        signed(
            k,
            at,
            Body::Profile(Profile {
                name: name.into(),
                role: Role::Producer,
                about: None,
            }),
        )
    }

    /// A producer "Café Ledito", a consumer group, a petition about a product and a review
    /// of it, ingested into `store`.
    fn sample(store: &Store) -> Vec<SignedRecord> {
        let t = crate::clock::now_ms() - 60_000;
        let producer = AuthorKey(key(1).verifying_key().to_bytes());
        let recs = vec![
            profile(&key(1), t, "Café Ledito"),
            profile(&key(2), t, "Ledo"),
            signed(
                &key(3),
                t,
                Body::Group(Group {
                    name: "Cafe lovers of Lyon".into(),
                    charter: None,
                    admission: Admission::Open,
                }),
            ),
            signed(
                &key(3),
                t + 1,
                Body::Petition(Petition {
                    producer,
                    product: Some("kettle-2000".into()),
                    group: None,
                    title: "Repairable kettles, please".into(),
                    text: "Sell spare parts".into(),
                    threshold: 10,
                    deadline: None,
                    variant: PetitionVariant::Demand,
                }),
            ),
            signed(
                &key(4),
                t + 2,
                Body::Review(Review {
                    product: ProductRef {
                        producer,
                        code: "kettle-2000".into(),
                    },
                    rating: 4,
                    title: None,
                    text: "Boils fast".into(),
                }),
            ),
        ];
        let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
        ing.ingest_blocking(recs.iter().map(|r| r.wire().to_vec()).collect())
            .unwrap();
        drop(ing);
        threads.join();
        recs
    }

    fn found(store: &Store, q: &str, wanted: u8) -> Vec<(HitKind, RecordId, u64)> {
        store
            .search(q, wanted, 20)
            .unwrap()
            .into_iter()
            .map(|f| (f.kind, f.record.id(), f.count))
            .collect()
    }

    #[test]
    fn names_titles_and_codes_are_found_by_the_starts_of_their_words() {
        let store = Store::temporary().unwrap();
        let recs = sample(&store);
        let (ledito, group, petition, review) = (&recs[0], &recs[2], &recs[3], &recs[4]);
        // Accents and case ignored; whole words, then the larger count, first.
        assert_eq!(
            found(&store, "CAFE", kinds::ALL),
            [
                (HitKind::Group, group.id(), 1),
                (HitKind::Profile, ledito.id(), 0)
            ]
        );
        assert_eq!(
            found(&store, "caf", kinds::ALL),
            [
                (HitKind::Group, group.id(), 1),
                (HitKind::Profile, ledito.id(), 0)
            ]
        );
        assert_eq!(
            found(&store, "caf led", kinds::ALL),
            [(HitKind::Profile, ledito.id(), 0)]
        );
        assert_eq!(found(&store, "led", kinds::PROFILE).len(), 2);
        assert_eq!(found(&store, "led", kinds::GROUP), []);
        // A petition by its title; its product by its code, once though two records name it.
        assert_eq!(
            found(&store, "repairable", kinds::ALL),
            [(HitKind::Petition, petition.id(), 0)]
        );
        let kettle = found(&store, "kettle", kinds::ALL);
        assert_eq!(kettle.len(), 2, "{kettle:?}");
        assert!(kettle.contains(&(HitKind::Petition, petition.id(), 0)));
        let product: Vec<_> = kettle
            .iter()
            .filter(|(k, _, _)| *k == HitKind::Product)
            .collect();
        assert_eq!(product.len(), 1);
        assert!(product[0].1 == petition.id() || product[0].1 == review.id());
        assert_eq!(product[0].2, 1, "one review of it");
        // An id prefix.
        let prefix = &petition.id().to_string()[..8];
        assert_eq!(
            found(&store, prefix, kinds::ALL),
            [(HitKind::Petition, petition.id(), 0)]
        );
        assert_eq!(found(&store, "nothing", kinds::ALL), []);
        assert_eq!(found(&store, " -- ", kinds::ALL), []);
    }

    #[test]
    fn a_renamed_profile_is_found_by_its_new_name_only() {
        let store = Store::temporary().unwrap();
        let recs = sample(&store);
        let renamed = profile(&key(1), recs[0].record().created_at + 10, "Ledito Kitchens");
        let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
        ing.ingest_blocking(vec![renamed.wire().to_vec()]).unwrap();
        drop(ing);
        threads.join();
        assert_eq!(found(&store, "cafe", kinds::PROFILE), []);
        assert_eq!(
            found(&store, "kitchen", kinds::PROFILE),
            [(HitKind::Profile, renamed.id(), 0)]
        );
    }

    #[test]
    fn a_store_of_an_older_format_gets_its_word_index_when_it_opens() {
        let dir = tempfile::tempdir().unwrap();
        let ledito = {
            let store = Store::open(dir.path()).unwrap();
            let recs = sample(&store);
            // What a node of format 3 left: no word index.
            let tree = store.tree();
            for k in tree.scan_prefix([keys::WORD]).keys() {
                tree.remove(k.unwrap()).unwrap();
            }
            store.set_format_version(3).unwrap();
            assert_eq!(found(&store, "cafe", kinds::PROFILE), []);
            store.close().unwrap();
            recs[0].id()
        };
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            found(&store, "cafe", kinds::PROFILE),
            [(HitKind::Profile, ledito, 0)]
        );
    }

    #[test]
    fn long_words_are_cut_at_a_character_boundary() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(20); // 40 bytes
        assert_eq!(clip(&long).len(), 24);
        let odd = format!("a{}", "é".repeat(20)); // a boundary at 23, not 24
        assert_eq!(clip(&odd).len(), 23);
    }

    #[test]
    fn every_query_word_must_start_a_word() {
        let q = fold::words("caf led");
        assert!(matches(&q, "Café Ledito"));
        assert!(!matches(&q, "Café"));
        assert!(!matches(&fold::words("edito"), "Ledito"));
        assert_eq!(exact(&fold::words("cafe"), "Café Ledito"), 1);
        assert_eq!(exact(&fold::words("caf"), "Café Ledito"), 0);
    }
}
