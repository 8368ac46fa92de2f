//! Property tests of the codec and the signature rule.

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use crate::cbor;
use crate::record::*;
use crate::sign;
use crate::testing::arb_signed;
use crate::Error;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// decode(encode(x)) == x for every kind, and the wire bytes come back unchanged.
    #[test]
    fn decode_encode_round_trip(rec in arb_signed()) {
        let again = SignedRecord::from_bytes(rec.wire()).unwrap();
        prop_assert_eq!(again.record(), rec.record());
        prop_assert_eq!(again.wire(), rec.wire());
        prop_assert_eq!(again.id(), rec.id());
        prop_assert_eq!(cbor::encode_record(again.record()), again.record_bytes().to_vec());
        prop_assert_eq!(cbor::decode_record(rec.record_bytes()).unwrap(), rec.record().clone());
        prop_assert!(again.verify().is_ok());
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedRecord::from_bytes(&bytes);
        let _ = cbor::decode_record(&bytes);
        let mut wire = vec![0x82, 0x59];
        wire.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        wire.extend_from_slice(&bytes);
        let _ = SignedRecord::from_bytes(&wire);
    }

    /// Mutated valid records never panic the decoder, and never decode to a record that
    /// still verifies under the original signature unless nothing changed.
    #[test]
    fn mutated_wire_never_panics(rec in arb_signed(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut wire = rec.wire().to_vec();
        let i = pos.index(wire.len());
        let changed = wire[i] != byte;
        wire[i] = byte;
        if let Ok(m) = SignedRecord::from_bytes(&wire) {
            if changed {
                prop_assert!(m.verify().is_err());
            }
        }
    }

    /// Any flipped bit in `record` or `signature` fails verification (or decoding).
    #[test]
    fn flipped_bit_fails(rec in arb_signed(), bit in any::<prop::sample::Index>(), in_sig in any::<bool>()) {
        let rec_len = rec.record_bytes().len();
        let mut record = rec.record_bytes().to_vec();
        let mut sig = *rec.signature();
        if in_sig {
            let b = bit.index(64 * 8);
            sig[b / 8] ^= 1 << (b % 8);
        } else {
            let b = bit.index(rec_len * 8);
            record[b / 8] ^= 1 << (b % 8);
        }
        let wire = cbor::encode_wire(&record, &sig);
        if let Ok(m) = SignedRecord::from_bytes(&wire) {
            prop_assert!(m.verify().is_err());
        }
        // Even without the structural checks, the signature no longer covers the bytes.
        prop_assert!(sign::verify(&rec.author(), &RecordId::of(&record), &sig).is_err());
    }

    /// The batch verdict of every record equals its single verdict, whatever the batch.
    #[test]
    fn batch_agrees_with_single(recs in proptest::collection::vec(arb_signed(), 1..40), forge in proptest::collection::vec(any::<bool>(), 40)) {
        let recs: Vec<SignedRecord> = recs.into_iter().zip(forge).map(|(r, f)| if f { forged(&r) } else { r }).collect();
        let refs: Vec<&SignedRecord> = recs.iter().collect();
        let batch = sign::verify_batch(&refs);
        for (r, v) in recs.iter().zip(batch) {
            prop_assert_eq!(v, r.verify());
        }
    }
}

/// The same record with a signature by another key.
pub(crate) fn forged(rec: &SignedRecord) -> SignedRecord {
    use ed25519_dalek::Signer;
    let other = crate::testing::key(200);
    let sig = other.sign(&sign::message(&rec.id())).to_bytes();
    SignedRecord::from_vec(cbor::encode_wire(rec.record_bytes(), &sig)).unwrap()
}

#[test]
fn forged_is_rejected_alone_and_in_batch() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let recs: Vec<SignedRecord> = (0..100)
        .map(|_| arb_signed().new_tree(&mut runner).unwrap().current())
        .collect();
    let mut mixed = recs.clone();
    mixed[37] = forged(&recs[37]);
    mixed[90] = forged(&recs[90]);
    let refs: Vec<&SignedRecord> = mixed.iter().collect();
    let verdicts = sign::verify_batch(&refs);
    for (i, v) in verdicts.iter().enumerate() {
        if i == 37 || i == 90 {
            assert_eq!(v, &Err(Error::InvalidSignature));
        } else {
            assert_eq!(v, &Ok(()), "record {i}");
        }
    }
}
