//! Builds `docs/test-vectors.json` and checks the committed file against it, so the vectors
//! cannot drift from the code. `CHORUS_BLESS=1 cargo test -p chorus-protocol vectors`
//! rewrites the file.

use ciborium::value::{Integer, Value};
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer, VerifyingKey};
use serde_json::{json, Value as J};
use sha2::{Digest, Sha512};

use crate::cbor;
use crate::record::*;
use crate::sign::{self, message, SigningKey};
use crate::validate::{check_wire, DEFAULT_SKEW_MS};

/// The verifier clock of every vector: 2026-01-01T00:00:00Z.
const NOW: u64 = 1_767_225_600_000;
/// Creation time of the valid vectors: one hour earlier.
const T: u64 = NOW - 3_600_000;

fn seed(i: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (j, b) in s.iter_mut().enumerate() {
        *b = i.wrapping_mul(31).wrapping_add(j as u8);
    }
    s
}

fn pk(i: u8) -> AuthorKey {
    AuthorKey(SigningKey::from_bytes(&seed(i)).verifying_key().to_bytes())
}

fn id_of(s: &str) -> RecordId {
    RecordId::of(s.as_bytes())
}

fn valid(name: &str, key_seed: [u8; 32], rec: &SignedRecord) -> J {
    json!({
        "name": name,
        "valid": true,
        "now": NOW,
        "secret_key": hex::encode(key_seed),
        "public_key": rec.author().to_string(),
        "record": hex::encode(rec.record_bytes()),
        "signature": hex::encode(rec.signature()),
        "wire": hex::encode(rec.wire()),
        "id": rec.id().to_string(),
        "decoded": cbor::record_to_json(rec.record_bytes()).unwrap(),
    })
}

fn invalid(
    name: &str,
    author: &[u8; 32],
    record: &[u8],
    sig: &[u8; 64],
    error: &str,
    now: u64,
) -> J {
    let wire = cbor::encode_wire(record, sig);
    invalid_wire(name, author, record, sig, &wire, error, now)
}

/// An invalid vector whose wire form is not the one `encode_wire` would build.
fn invalid_wire(
    name: &str,
    author: &[u8; 32],
    record: &[u8],
    sig: &[u8; 64],
    wire: &[u8],
    error: &str,
    now: u64,
) -> J {
    json!({
        "name": name,
        "valid": false,
        "now": now,
        "public_key": hex::encode(author),
        "record": hex::encode(record),
        "signature": hex::encode(sig),
        "wire": hex::encode(wire),
        "error": error,
    })
}

/// An invalid vector honestly signed by test key `i`, so that only `record` is at fault.
fn invalid_signed(name: &str, i: u8, record: &[u8], error: &str) -> J {
    invalid(name, &pk(i).0, record, &sign_bytes(i, record), error, NOW)
}

fn signed(i: u8, body: Body, topic: Option<Topic>) -> SignedRecord {
    let mut b = RecordBuilder::new(body).created_at(T);
    if let Some(t) = topic {
        b = b.topic(t);
    }
    b.sign(&SigningKey::from_bytes(&seed(i))).unwrap()
}

fn sign_bytes(i: u8, record: &[u8]) -> [u8; 64] {
    SigningKey::from_bytes(&seed(i))
        .sign(&message(&RecordId::of(record)))
        .to_bytes()
}

fn review(rating: u8, text: String) -> Record {
    Record {
        v: 1,
        author: pk(1),
        created_at: T,
        topic: Topic::Producer(pk(0)),
        body: Body::Review(Review {
            product: ProductRef {
                producer: pk(0),
                code: "4006381333931".into(),
            },
            rating,
            title: Some("Sturdy".into()),
            text,
        }),
    }
}

/// A key with a torsion component, a signature under it that the cofactored rule accepts
/// and the cofactorless rule rejects, and the secret scalar.
fn torsion_vector() -> J {
    let a = Scalar::from_bytes_mod_order([42u8; 32]);
    let big_a = a * ED25519_BASEPOINT_POINT + EIGHT_TORSION[1];
    let author = AuthorKey(big_a.compress().to_bytes());
    let mut created_at = T;
    loop {
        let record = Record {
            v: 1,
            author,
            created_at,
            topic: Topic::Meta,
            body: Body::Profile(Profile {
                name: "torsion".into(),
                role: Role::Watchdog,
                about: Some("a key with a torsion component".into()),
            }),
        };
        let bytes = cbor::encode_record(&record);
        let id = RecordId::of(&bytes);
        let r = Scalar::from_hash(Sha512::new().chain_update(b"nonce").chain_update(id.0));
        let big_r = (r * ED25519_BASEPOINT_POINT).compress();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(author.0)
                .chain_update(message(&id)),
        );
        // With k = 0 mod 8 the torsion part vanishes and cofactorless would accept too.
        if k.as_bytes()[0].is_multiple_of(8) {
            created_at += 1;
            continue;
        }
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        let vk = VerifyingKey::from_bytes(&author.0).unwrap();
        assert!(vk
            .verify_strict(&message(&id), &ed25519_dalek::Signature::from_bytes(&sig))
            .is_err());
        let rec = SignedRecord::from_vec(cbor::encode_wire(&bytes, &sig)).unwrap();
        assert_eq!(rec.verify(), Ok(()));
        return json!({
            "name": "torsion-key",
            "valid": true,
            "now": NOW,
            "secret_scalar": hex::encode(a.as_bytes()),
            "public_key": author.to_string(),
            "record": hex::encode(&bytes),
            "signature": hex::encode(sig),
            "wire": hex::encode(rec.wire()),
            "id": rec.id().to_string(),
            "decoded": cbor::record_to_json(&bytes).unwrap(),
        });
    }
}

/// The entries of a record map (or any CBOR map), in their encoded order.
fn map_entries(bytes: &[u8]) -> Vec<(Value, Value)> {
    let Ok(Value::Map(entries)) = ciborium::de::from_reader::<Value, _>(bytes) else {
        unreachable!()
    };
    entries
}

/// Encodes a CBOR value as given: ciborium keeps the entry order and uses shortest heads.
fn raw_cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

/// Sorts text-keyed map entries into canonical order (shorter key first, then bytewise).
fn sort_canonical(entries: &mut [(Value, Value)]) {
    entries.sort_by(|a, b| {
        let (a, b) = (a.0.as_text().unwrap(), b.0.as_text().unwrap());
        (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes()))
    });
}

/// `bytes` with the one occurrence of `from` replaced by `to`.
fn replace_once(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "pattern must occur exactly once");
    [&bytes[..at[0]], to, &bytes[at[0] + from.len()..]].concat()
}

/// The encoding with y = p + 3 and sign bit 0: non-canonical, and y = 3 is on the curve.
fn y_p_plus_3() -> [u8; 32] {
    let mut y = [0xffu8; 32];
    y[0] = 0xf0;
    y[31] = 0x7f;
    y
}

fn text_map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.into()), v))
            .collect(),
    )
}

/// Every vector, valid ones first.
pub(crate) fn build() -> J {
    let producer = pk(0);
    let mut out = Vec::new();

    let profile = signed(
        0,
        Body::Profile(Profile {
            name: "Acme Tools".into(),
            role: Role::Producer,
            about: Some("We make hammers.".into()),
        }),
        None,
    );
    out.push(valid("profile", seed(0), &profile));
    let rev = sign::sign_record(
        &review(4, "Good grip, heavy head.".into()),
        &SigningKey::from_bytes(&seed(1)),
    )
    .unwrap();
    out.push(valid("review", seed(1), &rev));
    let group = signed(
        2,
        Body::Group(Group {
            name: "Hammer users".into(),
            charter: Some("People who hammer.".into()),
            admission: Admission::Approval,
        }),
        None,
    );
    out.push(valid("group", seed(2), &group));
    let join = signed(3, Body::Join(Join { group: group.id() }), None);
    out.push(valid("join", seed(3), &join));
    let admit = signed(
        2,
        Body::Admit(Admit {
            group: group.id(),
            member: pk(3),
        }),
        None,
    );
    out.push(valid("admit", seed(2), &admit));
    let petition = signed(
        2,
        Body::Petition(Petition {
            producer,
            product: Some("4006381333931".into()),
            group: Some(group.id()),
            title: "Lifetime warranty".into(),
            text: "Offer a lifetime warranty on the head.".into(),
            threshold: 1000,
            deadline: Some(NOW + 30 * 86_400_000),
            variant: PetitionVariant::Demand,
        }),
        None,
    );
    out.push(valid("petition", seed(2), &petition));
    let proposal = signed(
        3,
        Body::Petition(Petition {
            producer,
            product: Some("4006381333931".into()),
            group: None,
            title: "Rubber grip".into(),
            text: "Specify a rubber grip option.".into(),
            threshold: 50,
            deadline: None,
            variant: PetitionVariant::Proposal,
        }),
        None,
    );
    out.push(valid("petition-proposal", seed(3), &proposal));
    let campaign = signed(
        3,
        Body::Petition(Petition {
            producer,
            product: None,
            group: None,
            title: "Left-handed hammer".into(),
            text: "Make one; we pledge toward the tooling.".into(),
            threshold: 100,
            deadline: None,
            variant: PetitionVariant::Campaign {
                goal: "3000EUR".parse().unwrap(),
            },
        }),
        None,
    );
    out.push(valid("petition-campaign", seed(3), &campaign));
    let endorsement = signed(
        4,
        Body::Endorsement(Endorsement {
            petition: campaign.id(),
            comment: Some("Yes please".into()),
            pledge: Some("25.50EUR".parse().unwrap()),
        }),
        Some(Topic::Producer(producer)),
    );
    out.push(valid("endorsement", seed(4), &endorsement));
    let retraction = signed(
        4,
        Body::Retraction(Retraction {
            target: endorsement.id(),
        }),
        Some(Topic::Producer(producer)),
    );
    out.push(valid("retraction", seed(4), &retraction));
    let response = signed(
        0,
        Body::Response(Response {
            target: petition.id(),
            status: ResponseStatus::InProgress,
            text: "Working on it.".into(),
            root: Some(*id_of("root").as_bytes()),
        }),
        None,
    );
    out.push(valid("response", seed(0), &response));
    let attestation = signed(
        5,
        Body::Attestation(Attestation {
            subject: Subject::Record(petition.id()),
            verdict: Verdict::VerifiedCount,
            count: Some(987),
            root: Some(*id_of("set").as_bytes()),
            note: None,
        }),
        Some(Topic::Producer(producer)),
    );
    out.push(valid("attestation", seed(5), &attestation));
    let mut keys = vec![pk(6), pk(7), pk(8)];
    keys.sort();
    let one_actor = Body::Attestation(Attestation {
        subject: Subject::Keys(keys),
        verdict: Verdict::OneActor,
        count: None,
        root: None,
        note: Some("fresh keys, same minute".into()),
    });
    let sybil = signed(5, one_actor.clone(), Some(Topic::Meta));
    out.push(valid("attestation-one-actor", seed(5), &sybil));
    out.push(torsion_vector());

    // Invalid vectors.
    let rb = rev.record_bytes().to_vec();
    let author1 = pk(1).0;
    let mut bad = *rev.signature();
    bad[40] ^= 0x01;
    out.push(invalid(
        "bad-signature",
        &author1,
        &rb,
        &bad,
        "invalid-signature",
        NOW,
    ));
    out.push(invalid(
        "signature-by-another-key",
        &author1,
        &rb,
        &sign_bytes(2, &rb),
        "invalid-signature",
        NOW,
    ));

    // The identity point as key, R = identity, S = 0: passes the bare equation for every
    // message, which is why small-order keys are refused.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = Record {
        author: AuthorKey(identity),
        ..review(4, "weak".into())
    };
    let wb = cbor::encode_record(&weak);
    let mut weak_sig = [0u8; 64];
    weak_sig[0] = 1;
    out.push(invalid(
        "small-order-public-key",
        &identity,
        &wb,
        &weak_sig,
        "small-order-key",
        NOW,
    ));

    // S + L: the same point equation, but S not reduced.
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut s_plus_l = *rev.signature();
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s_plus_l[32 + i]) + u16::from(l[i]) + carry;
        s_plus_l[32 + i] = v as u8;
        carry = v >> 8;
    }
    out.push(invalid(
        "non-canonical-signature-s",
        &author1,
        &rb,
        &s_plus_l,
        "non-canonical-signature",
        NOW,
    ));

    // R replaced by a non-canonical encoding of a point: y = p + 3, which reduced is y = 3,
    // a point of large order (y = p + 2 would not be on the curve at all).
    let mut r_nc = *rev.signature();
    r_nc[..32].copy_from_slice(&y_p_plus_3());
    out.push(invalid(
        "non-canonical-r",
        &author1,
        &rb,
        &r_nc,
        "invalid-signature-r",
        NOW,
    ));

    let big = cbor::encode_record(&review(4, "x".repeat(5000)));
    out.push(invalid(
        "oversized-record",
        &author1,
        &big,
        &sign_bytes(1, &big),
        "too-large",
        NOW,
    ));

    let future = Record {
        created_at: NOW + DEFAULT_SKEW_MS + 1,
        ..review(4, "from tomorrow".into())
    };
    let fb = cbor::encode_record(&future);
    out.push(invalid(
        "future-timestamp",
        &author1,
        &fb,
        &sign_bytes(1, &fb),
        "from-the-future",
        NOW,
    ));

    let six = cbor::encode_record(&review(6, "six stars".into()));
    out.push(invalid(
        "rating-out-of-range",
        &author1,
        &six,
        &sign_bytes(1, &six),
        "rating-out-of-range",
        NOW,
    ));

    let poll = text_map(vec![
        ("v", Value::Integer(Integer::from(1u8))),
        (
            "body",
            text_map(vec![("question", Value::Text("?".into()))]),
        ),
        ("kind", Value::Text("poll".into())),
        ("topic", Value::Text("meta".into())),
        ("author", Value::Bytes(author1.to_vec())),
        ("created_at", Value::Integer(Integer::from(T))),
    ]);
    let mut pb = Vec::new();
    ciborium::ser::into_writer(&poll, &mut pb).unwrap();
    out.push(invalid(
        "unknown-kind",
        &author1,
        &pb,
        &sign_bytes(1, &pb),
        "unknown-kind",
        NOW,
    ));

    let trunc = &rb[..rb.len() / 2];
    out.push(invalid(
        "truncated-cbor",
        &author1,
        trunc,
        &sign_bytes(1, trunc),
        "malformed",
        NOW,
    ));

    // The same map with two keys swapped: well-formed CBOR, but not the canonical encoding.
    let Ok(Value::Map(mut entries)) = ciborium::de::from_reader::<Value, _>(&rb[..]) else {
        unreachable!()
    };
    entries.swap(0, 1);
    let mut swapped = Vec::new();
    ciborium::ser::into_writer(&Value::Map(entries), &mut swapped).unwrap();
    out.push(invalid(
        "non-canonical-key-order",
        &author1,
        &swapped,
        &sign_bytes(1, &swapped),
        "non-canonical",
        NOW,
    ));

    let v2 = Record {
        v: 2,
        ..review(4, "from the future protocol".into())
    };
    let v2b = cbor::encode_record(&v2);
    out.push(invalid(
        "unknown-version",
        &author1,
        &v2b,
        &sign_bytes(1, &v2b),
        "unsupported-version",
        NOW,
    ));

    let moved = Record {
        topic: Topic::Producer(pk(9)),
        ..review(4, "wrong topic".into())
    };
    let mb = cbor::encode_record(&moved);
    out.push(invalid(
        "topic-mismatch",
        &author1,
        &mb,
        &sign_bytes(1, &mb),
        "topic-mismatch",
        NOW,
    ));

    // An attestation about keys has no target to follow: it travels on `meta` (§6).
    let off_meta = cbor::encode_record(&Record {
        v: 1,
        author: pk(5),
        created_at: T,
        topic: Topic::Producer(producer),
        body: one_actor,
    });
    out.push(invalid_signed(
        "one-actor-off-meta",
        5,
        &off_meta,
        "topic-mismatch",
    ));

    // An author whose y is p + 3 (y = 3 reduced, a point of large order): only the
    // canonical-y check refuses it. The signature is an honest one by another key, so S and R
    // pass.
    let nc_key = y_p_plus_3();
    let nck = cbor::encode_record(&Record {
        author: AuthorKey(nc_key),
        ..review(4, "a key with y >= p".into())
    });
    out.push(invalid(
        "non-canonical-public-key",
        &nc_key,
        &nck,
        &sign_bytes(1, &nck),
        "non-canonical-key",
        NOW,
    ));

    // R of order 8, an honest key and S = k·a: then [S]B - R - [k]A = -R, a torsion point,
    // so the cofactored equation holds and only the R check fails.
    let r_bytes = EIGHT_TORSION[1].compress().to_bytes();
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(author1)
            .chain_update(message(&rev.id())),
    );
    let s = k * SigningKey::from_bytes(&seed(1)).to_scalar();
    let mut r_small = [0u8; 64];
    r_small[..32].copy_from_slice(&r_bytes);
    r_small[32..].copy_from_slice(s.as_bytes());
    out.push(invalid(
        "small-order-r",
        &author1,
        &rb,
        &r_small,
        "invalid-signature-r",
        NOW,
    ));

    // The review body with one more key, in canonical position.
    let mut entries = map_entries(&rb);
    for (k, v) in entries.iter_mut() {
        if k.as_text() == Some("body") {
            let Value::Map(body) = v else { unreachable!() };
            body.push((Value::Text("colour".into()), Value::Text("red".into())));
            sort_canonical(body);
        }
    }
    let extra = raw_cbor(&Value::Map(entries));
    out.push(invalid_signed(
        "unknown-body-field",
        1,
        &extra,
        "unexpected-field",
    ));

    // `"v": 1` twice at the head of the record map (a map of 7): a duplicate key is an
    // unexpected field (§5.4), whatever the value.
    assert_eq!(rb[..3], [0xa6, 0x61, 0x76]);
    let dup = [&[0xa7, 0x61, 0x76, 0x01][..], &rb[1..]].concat();
    out.push(invalid_signed(
        "duplicate-map-key",
        1,
        &dup,
        "unexpected-field",
    ));

    // The record map with an indefinite length (0xbf ... 0xff): same content, other bytes.
    let indef_map = [&[0xbf][..], &rb[1..], &[0xff][..]].concat();
    out.push(invalid_signed(
        "indefinite-length-map",
        1,
        &indef_map,
        "non-canonical",
    ));

    // The title "Sturdy" as an indefinite-length text of two chunks.
    let indef_text = replace_once(&rb, b"\x66Sturdy", b"\x7f\x63Stu\x63rdy\xff");
    out.push(invalid_signed(
        "indefinite-length-text",
        1,
        &indef_text,
        "non-canonical",
    ));

    // created_at = 10^9 (a 4-byte head, 0x1a) written with an 8-byte head (0x1b).
    let early = cbor::encode_record(&Record {
        created_at: 1_000_000_000,
        ..review(4, "written long ago".into())
    });
    let long_head = replace_once(
        &early,
        &[0x1a, 0x3b, 0x9a, 0xca, 0x00],
        &[0x1b, 0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0x00],
    );
    out.push(invalid_signed(
        "non-shortest-integer-head",
        1,
        &long_head,
        "non-canonical",
    ));

    // The record's byte-string head in the wire as 0x59 (2-byte length) for a length < 256.
    let prof = profile.record_bytes();
    let n = u8::try_from(prof.len()).expect("profile record under 256 bytes");
    assert!(n >= 24);
    let wire = [
        &[0x82, 0x59, 0x00, n][..],
        prof,
        &[0x58, 0x40][..],
        profile.signature(),
    ]
    .concat();
    out.push(invalid_wire(
        "non-shortest-wire-head",
        &producer.0,
        prof,
        profile.signature(),
        &wire,
        "non-canonical",
        NOW,
    ));

    // The signature's head as 0x59 0x00 0x40 instead of 0x58 0x40.
    let wire = [
        &[0x82, 0x58, n][..],
        prof,
        &[0x59, 0x00, 0x40][..],
        profile.signature(),
    ]
    .concat();
    out.push(invalid_wire(
        "non-shortest-signature-head",
        &producer.0,
        prof,
        profile.signature(),
        &wire,
        "non-canonical",
        NOW,
    ));

    // LF is allowed in text, CR is not.
    let cr = cbor::encode_record(&review(4, "Good grip.\r\nHeavy head.".into()));
    out.push(invalid_signed(
        "control-character-in-text",
        1,
        &cr,
        "invalid-text",
    ));

    let petition_at = |variant: PetitionVariant, deadline: Option<u64>| Record {
        v: 1,
        author: pk(3),
        created_at: T,
        topic: Topic::Producer(producer),
        body: Body::Petition(Petition {
            producer,
            product: None,
            group: None,
            title: "Cheaper handles".into(),
            text: "Sell the handle on its own.".into(),
            threshold: 10,
            deadline,
            variant,
        }),
    };
    let due = cbor::encode_record(&petition_at(PetitionVariant::Demand, Some(T)));
    out.push(invalid_signed(
        "deadline-not-after-created-at",
        3,
        &due,
        "invalid-field",
    ));
    let zero_goal = cbor::encode_record(&petition_at(
        PetitionVariant::Campaign {
            goal: Amount {
                value: 0,
                currency: "EUR".into(),
            },
        },
        None,
    ));
    out.push(invalid_signed(
        "campaign-zero-goal",
        3,
        &zero_goal,
        "invalid-field",
    ));

    // `verified-count` needs both `count` and `root` (§4.10): here `root` is missing.
    let uncounted = cbor::encode_record(&Record {
        v: 1,
        author: pk(5),
        created_at: T,
        topic: Topic::Producer(producer),
        body: Body::Attestation(Attestation {
            subject: Subject::Record(petition.id()),
            verdict: Verdict::VerifiedCount,
            count: Some(987),
            root: None,
            note: None,
        }),
    });
    out.push(invalid_signed(
        "verified-count-without-root",
        5,
        &uncounted,
        "invalid-field",
    ));

    // The review's topic with the producer key in uppercase hex: one topic, one spelling.
    let mut entries = map_entries(&rb);
    for (k, v) in entries.iter_mut() {
        if k.as_text() == Some("topic") {
            let upper = format!("producer/{}", producer.to_string().to_ascii_uppercase());
            assert_ne!(v.as_text(), Some(upper.as_str()));
            *v = Value::Text(upper);
        }
    }
    let upper = raw_cbor(&Value::Map(entries));
    out.push(invalid_signed(
        "uppercase-topic-hex",
        1,
        &upper,
        "invalid-topic",
    ));

    J::Array(out)
}

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/test-vectors.json")
}

#[test]
fn vectors_file_matches_code() {
    let built = build();
    let text = serde_json::to_string_pretty(&built).unwrap() + "\n";
    if std::env::var_os("CHORUS_BLESS").is_some() {
        std::fs::write(path(), &text).unwrap();
    }
    let committed = std::fs::read_to_string(path())
        .expect("docs/test-vectors.json missing: run with CHORUS_BLESS=1 to write it");
    let committed: J = serde_json::from_str(&committed).unwrap();
    assert_eq!(
        committed, built,
        "docs/test-vectors.json is stale: CHORUS_BLESS=1 cargo test -p chorus-protocol vectors"
    );
}

/// Replays every vector as an independent verifier would: from hex, through check_wire.
#[test]
fn vectors_give_their_verdicts() {
    let J::Array(all) = build() else {
        unreachable!()
    };
    let mut kinds = std::collections::BTreeSet::new();
    for v in &all {
        let name = v["name"].as_str().unwrap();
        let wire = hex::decode(v["wire"].as_str().unwrap()).unwrap();
        let now = v["now"].as_u64().unwrap();
        let verdict = check_wire(&wire, now, DEFAULT_SKEW_MS);
        if v["valid"].as_bool().unwrap() {
            let rec = verdict.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(rec.id().to_string(), v["id"].as_str().unwrap(), "{name}");
            assert_eq!(
                cbor::record_to_json(rec.record_bytes()).unwrap(),
                v["decoded"],
                "{name}"
            );
            // Alone and in a batch, the same verdict.
            assert_eq!(sign::verify_batch(&[&rec]), vec![Ok(())], "{name}");
            kinds.insert(rec.record().kind());
            if let Some(sk) = v["secret_key"].as_str() {
                let key = SigningKey::from_bytes(&hex::decode(sk).unwrap().try_into().unwrap());
                assert_eq!(
                    hex::encode(key.verifying_key().as_bytes()),
                    v["public_key"].as_str().unwrap()
                );
            }
        } else {
            let err = verdict.expect_err(name);
            assert_eq!(err.code(), v["error"].as_str().unwrap(), "{name}: {err}");
        }
    }
    assert_eq!(kinds.len(), Kind::ALL.len(), "a valid vector per kind");
}

/// Signature vectors mixed into batches of honest records keep their single verdicts.
#[test]
fn signature_vectors_same_verdict_in_batches() {
    let J::Array(all) = build() else {
        unreachable!()
    };
    let decoded: Vec<(SignedRecord, bool)> = all
        .iter()
        .filter_map(|v| {
            let wire = hex::decode(v["wire"].as_str().unwrap()).unwrap();
            let rec = SignedRecord::from_bytes(&wire).ok()?;
            rec.check_time(NOW, DEFAULT_SKEW_MS).ok()?;
            Some((rec, v["valid"].as_bool().unwrap()))
        })
        .collect();
    assert!(
        decoded.iter().any(|(_, ok)| !ok),
        "some signature vectors are invalid"
    );
    let honest: Vec<SignedRecord> = decoded
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(r, _)| r.clone())
        .collect();
    for (rec, ok) in &decoded {
        for size in [1, 7, 33, 64] {
            let mut batch: Vec<&SignedRecord> = honest.iter().cycle().take(size).collect();
            batch.insert(size / 2, rec);
            let verdicts = sign::verify_batch(&batch);
            assert_eq!(verdicts[size / 2].is_ok(), *ok);
            assert_eq!(
                verdicts.iter().filter(|v| v.is_err()).count(),
                usize::from(!ok)
            );
        }
    }
}
