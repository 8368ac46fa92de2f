//! Reading an index backwards: the newest records of a topic or a product first, a page at a
//! time. A dashboard shows what arrived last, and a topic or product may hold a million
//! records: a reverse range scan costs the page read, not the history before it.

use chorus_protocol::{AuthorKey, RecordId, Topic};

use super::keys::{self, ProductKey};
use super::{Page, Store};
use crate::error::{Error, Result};

impl Store {
    /// Records on a topic in (created_at, id) order from the newest, strictly before
    /// `before` (from the newest of all without it). The page's `next` is the `before` of
    /// the next (older) page; `None` at the oldest.
    pub fn newest_on_topic(
        &self,
        topic: &Topic,
        before: Option<(u64, RecordId)>,
        limit: usize,
    ) -> Result<Page> {
        self.page_back(
            keys::key(keys::TOPIC, &[&keys::topic_bytes(topic)]),
            before,
            limit,
        )
    }

    /// Reviews and petitions about a product from the newest, strictly before `before`
    /// (as [`Store::newest_on_topic`]).
    pub fn newest_by_product(
        &self,
        producer: &AuthorKey,
        code: &str,
        before: Option<(u64, RecordId)>,
        limit: usize,
    ) -> Result<Page> {
        self.page_back(
            keys::key(keys::PRODUCT, &[ProductKey::of(producer, code).as_bytes()]),
            before,
            limit,
        )
    }

    /// One page of the time-ordered index under `prefix` (each key `prefix`, created_at,
    /// id), read backwards from `before` (excluded).
    fn page_back(
        &self,
        prefix: Vec<u8>,
        before: Option<(u64, RecordId)>,
        limit: usize,
    ) -> Result<Page> {
        let end = match before {
            Some((at, id)) => [&prefix[..], &at.to_be_bytes(), id.as_bytes()].concat(),
            // Past every key under the prefix: each is 40 bytes longer than it.
            None => [&prefix[..], &[0xff; 41]].concat(),
        };
        let mut records = Vec::new();
        let mut last = None;
        for kv in self.cur.tree()?.range(prefix.clone()..end).rev() {
            if records.len() >= limit {
                break;
            }
            let (k, _) = kv?;
            let (at, id) =
                keys::timed_tail(&k).ok_or_else(|| Error::Corrupt("index key".into()))?;
            if let Some(rec) = self.record(&id)? {
                records.push(rec);
            }
            last = Some((at, id));
        }
        let next = if records.len() >= limit { last } else { None };
        Ok(Page { records, next })
    }
}

#[cfg(test)]
mod tests {
    use chorus_protocol::testing::key;
    use chorus_protocol::{Body, ProductRef, RecordBuilder, Review};

    use super::*;
    use crate::ingest::{Ingest, IngestConfig};

    #[test]
    fn a_topic_is_read_from_its_newest_record_a_page_at_a_time() {
        let store = Store::temporary().unwrap();
        let producer = AuthorKey(key(1).verifying_key().to_bytes());
        let t = crate::clock::now_ms() - 60_000;
        let made: Vec<_> = (0..5u8)
            .map(|n| {
                RecordBuilder::new(Body::Review(Review {
                    product: ProductRef {
                        producer,
                        code: "kettle".into(),
                    },
                    rating: 1 + n % 5,
                    title: None,
                    text: format!("review {n}"),
                }))
                .created_at(t + u64::from(n))
                .sign(&key(10 + n))
                .unwrap()
            })
            .collect();
        let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
        ing.ingest_blocking(made.iter().map(|r| r.wire().to_vec()).collect())
            .unwrap();
        drop(ing);
        threads.join();
        let made: Vec<_> = made.iter().map(|r| r.id()).collect();

        let topic = Topic::Producer(producer);
        let ids = |p: &Page| p.records.iter().map(|r| r.id()).collect::<Vec<_>>();
        let first = store.newest_on_topic(&topic, None, 2).unwrap();
        assert_eq!(ids(&first), vec![made[4], made[3]]);
        let second = store.newest_on_topic(&topic, first.next, 2).unwrap();
        assert_eq!(ids(&second), vec![made[2], made[1]]);
        let last = store.newest_on_topic(&topic, second.next, 2).unwrap();
        assert_eq!(ids(&last), vec![made[0]]);
        assert!(last.next.is_none());
        let by_product = store
            .newest_by_product(&producer, "kettle", None, 10)
            .unwrap();
        assert_eq!(by_product.records.len(), 5);
        assert_eq!(by_product.records[0].id(), made[4]);
        assert!(store
            .newest_by_product(&producer, "toaster", None, 10)
            .unwrap()
            .records
            .is_empty());
        assert!(store
            .newest_on_topic(&Topic::Producer(AuthorKey([9; 32])), None, 10)
            .unwrap()
            .records
            .is_empty());
    }
}
