//! Proptest strategies for valid records, shared by this crate's tests and the node's
//! (feature `testing`).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::record::*;
use crate::sign::SigningKey;

/// The deterministic signing key number `i` (seed: 32 bytes of `i + 1`).
pub fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i.wrapping_add(1); 32])
}

/// The author key of [`key`]`(i)`.
pub fn author(i: u8) -> AuthorKey {
    AuthorKey(key(i).verifying_key().to_bytes())
}

/// A record about `p` (on `p`'s topic) made at `at` by `signer`. (Test helper: panics on an
/// invalid record.)
#[allow(clippy::expect_used)]
pub fn about(p: &SignedRecord, signer: &SigningKey, at: u64, body: Body) -> SignedRecord {
    RecordBuilder::new(body)
        .created_at(at)
        .topic(p.record().topic)
        .sign(signer)
        .expect("a valid record")
}

/// An endorsement of the petition `p` made at `at` by `signer`, pledging `amount` (such as
/// `"20EUR"`) if given.
#[allow(clippy::expect_used)]
pub fn pledge(
    p: &SignedRecord,
    signer: &SigningKey,
    at: u64,
    amount: Option<&str>,
) -> SignedRecord {
    about(
        p,
        signer,
        at,
        Body::Endorsement(Endorsement {
            petition: p.id(),
            comment: None,
            pledge: amount.map(|a| a.parse().expect("an amount")),
        }),
    )
}

/// A sync key (PROTOCOL.md §13.2) in one of three producer topics, at a time derived from
/// `n`, with the id BLAKE3 of `n`: distinct for distinct `n`.
pub fn sync_key(n: u64) -> crate::sync::Key {
    let mut k = [0u8; crate::sync::KEY_LEN];
    k[0] = 1;
    k[1] = (n % 3) as u8;
    k[33..41].copy_from_slice(&(1_700_000_000_000 + n / 3).to_be_bytes());
    k[41..].copy_from_slice(blake3::hash(&n.to_le_bytes()).as_bytes());
    k
}

/// Text within `1..=max` bytes, printable, with some non-ASCII characters.
pub fn arb_text(max: usize) -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        8 => proptest::char::range('a', 'z'),
        2 => Just(' '),
        1 => Just('\n'),
        1 => Just('é'),
        1 => Just('ß'),
        1 => Just('😀'),
    ];
    vec(chars, 1..=max.clamp(1, 40)).prop_map(move |cs| {
        let mut s: String = cs.into_iter().collect();
        while s.len() > max {
            s.pop();
        }
        if s.is_empty() {
            s.push('x');
        }
        s
    })
}

/// A product code.
pub fn arb_code() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,20}"
}

/// An amount.
pub fn arb_amount() -> impl Strategy<Value = Amount> {
    (
        1u64..=1_000_000_000,
        prop_oneof![Just("EUR"), Just("USD"), Just("JPY")],
    )
        .prop_map(|(value, c)| Amount {
            value,
            currency: c.to_string(),
        })
}

fn arb_id() -> impl Strategy<Value = RecordId> {
    any::<[u8; 32]>().prop_map(RecordId)
}

fn arb_key() -> impl Strategy<Value = AuthorKey> {
    (0u8..8).prop_map(author)
}

/// Any body, valid under the context-free rules, with `created_at` for deadlines.
pub fn arb_body(created_at: u64) -> impl Strategy<Value = Body> {
    let profile = (
        arb_text(100),
        prop::sample::select(Role::ALL),
        option::of(arb_text(500)),
    )
        .prop_map(|(name, role, about)| Body::Profile(Profile { name, role, about }));
    let review = (
        arb_key(),
        arb_code(),
        1u8..=5,
        option::of(arb_text(200)),
        arb_text(2000),
    )
        .prop_map(|(producer, code, rating, title, text)| {
            Body::Review(Review {
                product: ProductRef { producer, code },
                rating,
                title,
                text,
            })
        });
    let group = (
        arb_text(100),
        option::of(arb_text(1000)),
        prop::sample::select(Admission::ALL),
    )
        .prop_map(|(name, charter, admission)| {
            Body::Group(Group {
                name,
                charter,
                admission,
            })
        });
    let join = arb_id().prop_map(|group| Body::Join(Join { group }));
    let admit =
        (arb_id(), arb_key()).prop_map(|(group, member)| Body::Admit(Admit { group, member }));
    let variant = prop_oneof![
        Just(PetitionVariant::Demand),
        Just(PetitionVariant::Proposal),
        arb_amount().prop_map(|goal| PetitionVariant::Campaign { goal }),
    ];
    let petition = (
        arb_key(),
        option::of(arb_code()),
        option::of(arb_id()),
        arb_text(200),
        arb_text(2000),
        1u64..=1_000_000,
        option::of(1u64..=10_000_000_000),
        variant,
    )
        .prop_map(
            move |(producer, product, group, title, text, threshold, d, variant)| {
                Body::Petition(Petition {
                    producer,
                    product,
                    group,
                    title,
                    text,
                    threshold,
                    deadline: d.map(|d| created_at + d),
                    variant,
                })
            },
        );
    let endorsement = (
        arb_id(),
        option::of(arb_text(500)),
        option::of(arb_amount()),
    )
        .prop_map(|(petition, comment, pledge)| {
            Body::Endorsement(Endorsement {
                petition,
                comment,
                pledge,
            })
        });
    let retraction = arb_id().prop_map(|target| Body::Retraction(Retraction { target }));
    let response = (
        arb_id(),
        prop::sample::select(ResponseStatus::ALL),
        arb_text(2000),
        option::of(any::<[u8; 32]>()),
    )
        .prop_map(|(target, status, text, root)| {
            Body::Response(Response {
                target,
                status,
                text,
                root,
            })
        });
    let attestation = prop_oneof![
        (
            arb_id(),
            prop::sample::select(vec![Verdict::Valid, Verdict::Invalid]),
            option::of(arb_text(500))
        )
            .prop_map(|(id, verdict, note)| Body::Attestation(Attestation {
                subject: Subject::Record(id),
                verdict,
                count: None,
                root: None,
                note,
            })),
        (arb_id(), any::<u64>(), any::<[u8; 32]>()).prop_map(
            |(id, count, root)| Body::Attestation(Attestation {
                subject: Subject::Record(id),
                verdict: Verdict::VerifiedCount,
                count: Some(count),
                root: Some(root),
                note: None,
            })
        ),
        proptest::sample::subsequence((0u8..8).collect::<Vec<_>>(), 1..=8).prop_map(|idx| {
            let mut keys: Vec<AuthorKey> = idx.into_iter().map(author).collect();
            keys.sort();
            Body::Attestation(Attestation {
                subject: Subject::Keys(keys),
                verdict: Verdict::OneActor,
                count: None,
                root: None,
                note: None,
            })
        }),
    ];
    prop_oneof![
        profile,
        review,
        group,
        join,
        admit,
        petition,
        endorsement,
        retraction,
        response,
        attestation,
    ]
}

/// A signed valid record by one of the eight test keys.
pub fn arb_signed() -> impl Strategy<Value = SignedRecord> {
    (0u8..8, 1_600_000_000_000u64..1_800_000_000_000).prop_flat_map(|(k, created_at)| {
        (arb_body(created_at), arb_key()).prop_map(move |(body, topic_key)| {
            let mut b = RecordBuilder::new(body).created_at(created_at);
            if b.clone().sign(&key(k)).is_err() {
                // Kinds whose topic follows their target: any producer topic will do here.
                b = b.topic(Topic::Producer(topic_key));
            }
            #[allow(clippy::expect_used)] // the strategy builds valid records by construction
            b.sign(&key(k)).expect("strategy builds valid records")
        })
    })
}
