//! Signing and the one verification rule, alone and in batches.
//!
//! The signed message is the 16 ASCII bytes `chorus/v1/record` followed by the 32-byte record
//! id. A signature `(R, S)` by key `A` is valid iff
//!
//! 1. `S` is canonical (`S < L`),
//! 2. `A` and `R` are canonical encodings (`y < p`) of curve points that are not of small
//!    order, and
//! 3. the **cofactored** equation holds: `[8]([S]B - R - [k]A) = 0` with
//!    `k = SHA-512(R || A || message) mod L`.
//!
//! Why cofactored: the batch check of ed25519-dalek is a random linear combination of the
//! single equations. With the cofactorless single equation, a signer who plants a torsion
//! component in `R` or `A` makes a record that some batches accept and single verification
//! rejects (Chalkias, Garillot, Nikolaenko, "Taming the many EdDSAs", 2020). With the
//! cofactored rule, every batch that passes contains only signatures that pass alone, and a
//! batch that fails is split until each record's verdict comes from the single check, so the
//! verdict never depends on the batch a record landed in. Keys with a torsion component are
//! therefore valid; a test vector holds one.

use std::collections::HashMap;
use std::sync::OnceLock;

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use sha2::{Digest, Sha512};

use crate::record::{AuthorKey, Record, RecordId, SignedRecord};
use crate::{cbor, Error};

pub use ed25519_dalek::SigningKey;

/// The domain-separation prefix of every signed message.
pub const SIGNING_CONTEXT: &[u8; 16] = b"chorus/v1/record";

/// Batches below this size are verified one by one after a batch failure: at that size a
/// further split costs more than it saves.
const MIN_SPLIT: usize = 4;

/// The 48-byte message the author signs for a record id.
pub fn message(id: &RecordId) -> [u8; 48] {
    let mut m = [0u8; 48];
    m[..16].copy_from_slice(SIGNING_CONTEXT);
    m[16..].copy_from_slice(&id.0);
    m
}

/// Encodes, signs and wraps a record in wire form. Fails if the record breaks a
/// context-free rule.
pub fn sign_record(record: &Record, key: &SigningKey) -> Result<SignedRecord, Error> {
    let bytes = cbor::encode_record(record);
    let id = RecordId::of(&bytes);
    let sig = key.sign(&message(&id)).to_bytes();
    SignedRecord::from_vec(cbor::encode_wire(&bytes, &sig))
}

/// Is this 32-byte encoding's y coordinate reduced (< 2^255 - 19)?
fn canonical_y(b: &[u8; 32]) -> bool {
    // y >= p only for y in [2^255 - 19, 2^255 - 1]: low byte >= 0xed, then all ones.
    let top = b[31] & 0x7f;
    !(top == 0x7f && b[1..31].iter().all(|x| *x == 0xff) && b[0] >= 0xed)
}

/// Is this the encoding of a point of small order (any sign bit)? The y coordinates of the
/// eight torsion points are compared directly, so no decompression is needed: both points
/// with a given y are torsion points or neither is.
fn small_order_encoding(b: &[u8; 32]) -> bool {
    static TORSION_Y: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    let ys = TORSION_Y.get_or_init(|| {
        EIGHT_TORSION
            .iter()
            .map(|t| {
                let mut y = t.compress().to_bytes();
                y[31] &= 0x7f;
                y
            })
            .collect()
    });
    let mut y = *b;
    y[31] &= 0x7f;
    ys.contains(&y)
}

/// Checks a key for the strict rules (canonical, not of small order, on the curve).
pub fn check_key(author: &AuthorKey) -> Result<VerifyingKey, Error> {
    if !canonical_y(&author.0) {
        return Err(Error::NonCanonicalKey);
    }
    if small_order_encoding(&author.0) {
        return Err(Error::SmallOrderKey);
    }
    VerifyingKey::from_bytes(&author.0).map_err(|_| Error::NonCanonicalKey)
}

/// Checks what needs no curve arithmetic: S < L, R canonical and not of small order.
/// (Whether R is on the curve at all is found when it is decompressed.)
fn check_signature_parts(sig: &[u8; 64]) -> Result<Scalar, Error> {
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..]);
    let s: Option<Scalar> = Scalar::from_canonical_bytes(s).into();
    let s = s.ok_or(Error::NonCanonicalSignature)?;
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    if !canonical_y(&r) || small_order_encoding(&r) {
        return Err(Error::InvalidSignatureR);
    }
    Ok(s)
}

/// Verifies one signature under the protocol's rule (module docs).
pub fn verify(author: &AuthorKey, id: &RecordId, sig: &[u8; 64]) -> Result<(), Error> {
    let vk = check_key(author)?;
    let s = check_signature_parts(sig)?;
    equation(&vk, id, sig, s)
}

fn equation(vk: &VerifyingKey, id: &RecordId, sig: &[u8; 64], s: Scalar) -> Result<(), Error> {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    let r = CompressedEdwardsY(r)
        .decompress()
        .ok_or(Error::InvalidSignatureR)?;
    let mut h = Sha512::new();
    h.update(&sig[..32]);
    h.update(vk.as_bytes());
    h.update(message(id));
    let k = Scalar::from_hash(h);
    let a = vk.to_edwards();
    // [S]B - [k]A, then compare with R up to the cofactor.
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &(-a), &s);
    if (sb_minus_ka - r).mul_by_cofactor().is_identity() {
        Ok(())
    } else {
        Err(Error::InvalidSignature)
    }
}

/// Decoded author keys, so a key seen again costs no point decompression. Bounded: it is
/// emptied when full.
#[derive(Default)]
pub struct KeyCache {
    keys: HashMap<AuthorKey, Result<VerifyingKey, Error>>,
}

impl KeyCache {
    /// Most keys kept.
    pub const CAPACITY: usize = 65_536;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&mut self, author: &AuthorKey) -> Result<VerifyingKey, Error> {
        if let Some(k) = self.keys.get(author) {
            return k.clone();
        }
        if self.keys.len() >= Self::CAPACITY {
            self.keys.clear();
        }
        let k = check_key(author);
        self.keys.insert(*author, k.clone());
        k
    }
}

/// Verifies many signatures, giving each the verdict [`verify`] would give it alone.
///
/// Records that pass the cheap checks go through ed25519-dalek's batch equation; a failing
/// batch is halved until the culprits are found (halves of at most 4 are checked one by
/// one), so one forged record costs its batch about two batches' work, not `n` single
/// verifications.
pub fn verify_batch(records: &[&SignedRecord]) -> Vec<Result<(), Error>> {
    verify_batch_cached(records, &mut KeyCache::new())
}

/// [`verify_batch`] with a cache of decoded keys kept by the caller across batches.
pub fn verify_batch_cached(
    records: &[&SignedRecord],
    cache: &mut KeyCache,
) -> Vec<Result<(), Error>> {
    let mut out: Vec<Result<(), Error>> = vec![Ok(()); records.len()];
    let mut ready: Vec<Prepared> = Vec::with_capacity(records.len());
    for (i, rec) in records.iter().enumerate() {
        match prepare(i, rec, cache) {
            Ok(p) => ready.push(p),
            Err(e) => out[i] = Err(e),
        }
    }
    check_group(&ready, &mut out);
    out
}

struct Prepared {
    index: usize,
    vk: VerifyingKey,
    sig: [u8; 64],
    s: Scalar,
    msg: [u8; 48],
    id: RecordId,
}

fn prepare(index: usize, rec: &SignedRecord, cache: &mut KeyCache) -> Result<Prepared, Error> {
    let vk = cache.get(&rec.author())?;
    let s = check_signature_parts(rec.signature())?;
    Ok(Prepared {
        index,
        vk,
        sig: *rec.signature(),
        s,
        msg: message(&rec.id()),
        id: rec.id(),
    })
}

fn check_group(items: &[Prepared], out: &mut [Result<(), Error>]) {
    if items.is_empty() {
        return;
    }
    if items.len() <= MIN_SPLIT {
        for p in items {
            out[p.index] = equation(&p.vk, &p.id, &p.sig, p.s);
        }
        return;
    }
    let msgs: Vec<&[u8]> = items.iter().map(|p| &p.msg[..]).collect();
    let sigs: Vec<Signature> = items
        .iter()
        .map(|p| Signature::from_bytes(&p.sig))
        .collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|p| p.vk).collect();
    // A passing cofactorless batch implies every cofactored single check passes (module
    // docs); a failing one decides nothing, so split.
    if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
        return;
    }
    let (a, b) = items.split_at(items.len() / 2);
    check_group(a, out);
    check_group(b, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_y_boundaries() {
        let mut p = [0xffu8; 32];
        p[31] = 0x7f;
        p[0] = 0xec; // p - 1: canonical
        assert!(canonical_y(&p));
        p[0] = 0xed; // p: not canonical
        assert!(!canonical_y(&p));
        p[31] = 0xff; // sign bit set, same y
        assert!(!canonical_y(&p));
        assert!(canonical_y(&[0u8; 32]));
    }

    #[test]
    fn small_order_key_is_refused() {
        // The identity point (y = 1).
        let mut id = [0u8; 32];
        id[0] = 1;
        assert_eq!(check_key(&AuthorKey(id)).err(), Some(Error::SmallOrderKey));
        for t in EIGHT_TORSION {
            assert!(small_order_encoding(&t.compress().to_bytes()));
        }
        let honest = SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes();
        assert!(!small_order_encoding(&honest));
    }
}
