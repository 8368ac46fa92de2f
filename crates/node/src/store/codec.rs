//! How derived state is encoded in the tree.
//!
//! The two values written most — an endorsement or review slot (one per endorsement) and a
//! petition tally (one per petition an ingest chunk touches) — use a compact binary form:
//! fixed-width big-endian integers, raw 32-byte keys and ids, and strings as a 4-byte length
//! and their UTF-8 bytes. The CBOR maps this replaced (field names, ids as 64 hex digits)
//! were two to four times larger, and sled's cost per write grows with the bytes of the
//! nodes it copies, logs and pages in. Everything else stays CBOR ([`Stored`] by serde).
//!
//! A compact value starts with [`COMPACT`]; a CBOR map starts with a byte in `0xa0..=0xbf`,
//! so a value written by an older node is still read (and rewritten compact by
//! [`crate::store::Store::open`]'s one-off migration, so that stored bytes compare equal to
//! recomputed ones).

use crate::error::{Error, Result};

/// First byte of a compact value.
pub(crate) const COMPACT: u8 = 0x01;

/// A value of derived state, as stored.
pub(crate) trait Stored: Sized {
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self>;
}

/// Is this a CBOR map (the older encoding of every derived value)?
pub(crate) fn is_cbor_map(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(0xa0..=0xbf))
}

pub(crate) fn cbor_encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing plain data into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(v, &mut out);
    out
}

pub(crate) fn cbor_decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    ciborium::de::from_reader(bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// Builds a compact value.
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn new(capacity: usize) -> Self {
        let mut v = Vec::with_capacity(capacity);
        v.push(COMPACT);
        Writer(v)
    }
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u128(&mut self, v: u128) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn bytes32(&mut self, v: &[u8; 32]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// A string: its length (4 bytes) and its UTF-8 bytes.
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    /// Bytes: their length (4 bytes) and themselves.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads a compact value; every read checks the length, so a corrupt value is an error.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Result<Self> {
        match bytes.split_first() {
            Some((&COMPACT, rest)) => Ok(Reader { rest, what }),
            _ => Err(Error::Corrupt(format!("{what}: unknown encoding"))),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(Error::Corrupt(format!("{}: truncated", self.what)));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn u128(&mut self) -> Result<u128> {
        Ok(u128::from_be_bytes(self.array()?))
    }
    pub(crate) fn bytes32(&mut self) -> Result<[u8; 32]> {
        self.array()
    }
    pub(crate) fn str(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Error::Corrupt(format!("{}: string is not UTF-8", self.what)))
    }
    /// Bytes written by [`Writer::bytes`].
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// Fails unless every byte was read.
    pub(crate) fn end(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::Corrupt(format!("{}: trailing bytes", self.what)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_truncation_is_an_error() {
        let mut w = Writer::new(8);
        w.u8(7)
            .u64(u64::MAX - 1)
            .u128(1 << 100)
            .bytes32(&[9; 32])
            .str("EUR");
        let b = w.finish();
        let mut r = Reader::new(&b, "test").unwrap();
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u64().unwrap(), u64::MAX - 1);
        assert_eq!(r.u128().unwrap(), 1 << 100);
        assert_eq!(r.bytes32().unwrap(), [9; 32]);
        assert_eq!(r.str().unwrap(), "EUR");
        r.end().unwrap();
        for n in 0..b.len() {
            let read = || -> Result<()> {
                let mut r = Reader::new(&b[..n], "test")?;
                r.u8()?;
                r.u64()?;
                r.u128()?;
                r.bytes32()?;
                r.str()?;
                r.end()
            };
            assert!(read().is_err(), "{n} bytes read as whole");
        }
        let mut long = b.clone();
        long.push(0);
        let mut r = Reader::new(&long, "test").unwrap();
        r.u8().unwrap();
        r.u64().unwrap();
        r.u128().unwrap();
        r.bytes32().unwrap();
        r.str().unwrap();
        assert!(r.end().is_err());
    }

    #[test]
    fn a_cbor_map_is_told_apart_from_a_compact_value() {
        assert!(is_cbor_map(&cbor_encode(
            &std::collections::BTreeMap::from([("a", 1)])
        )));
        assert!(!is_cbor_map(&Writer::new(1).finish()));
        assert!(Reader::new(&[0xa1], "x").is_err());
        assert!(Reader::new(&[], "x").is_err());
    }
}
