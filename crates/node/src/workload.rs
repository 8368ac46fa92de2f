//! Synthetic, deterministic workloads of valid (and some deliberately invalid) records, for
//! tests and benchmarks (feature `workload`).
//!
//! Records are generated in causal order — a petition before its endorsements, a record
//! before its retraction — with realistic proportions: mostly endorsements, many petitions
//! and products, some reviews, joins, admits, responses, profiles and attestations.

use chorus_protocol::{
    Admission, Admit, Amount, Attestation, AuthorKey, Body, Endorsement, Group, Join, Petition,
    PetitionVariant, ProductRef, Profile, RecordBuilder, RecordId, Response, ResponseStatus,
    Retraction, Review, Role, SignedRecord, SigningKey, Subject, Topic, Verdict,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// Shape of a workload.
#[derive(Debug, Clone)]
pub struct Params {
    /// Number of records.
    pub records: usize,
    /// Distinct consumer keys.
    pub authors: usize,
    /// Distinct producer keys.
    pub producers: usize,
    /// Petition thresholds are drawn from `1..=max_threshold`.
    pub max_threshold: u64,
    /// First `created_at` (ms).
    pub start_ms: u64,
    /// Mean gap between records (ms); several records may share a millisecond.
    pub step_ms: u64,
    /// Also generate records that break kind rules (responses by the wrong producer,
    /// admits by non-founders, pledges to a campaign in another currency), which the store
    /// must refuse.
    pub rule_breakers: bool,
    /// Text padding: review and petition texts get this many bytes on average.
    pub text_bytes: usize,
}

impl Params {
    /// Realistic proportions at a large size (benchmarks).
    pub fn realistic(records: usize) -> Self {
        Params {
            records,
            authors: (records / 20).clamp(16, 50_000),
            producers: (records / 2000).clamp(4, 500),
            max_threshold: 200,
            start_ms: 1_700_000_000_000,
            step_ms: 1,
            rule_breakers: false,
            text_bytes: 160,
        }
    }

    /// Small and dense in conflicts: few authors and petitions, many updates and
    /// retractions of the same slots (property tests).
    pub fn conflicts(records: usize) -> Self {
        Params {
            records,
            authors: 6,
            producers: 2,
            max_threshold: 4,
            start_ms: 1_700_000_000_000,
            step_ms: 3,
            rule_breakers: true,
            text_bytes: 20,
        }
    }
}

enum Plan {
    Profile(usize),
    Review {
        author: usize,
        producer: usize,
        product: u32,
        rating: u8,
    },
    Group {
        author: usize,
        approval: bool,
    },
    Join {
        author: usize,
        group: usize,
    },
    Admit {
        by: usize,
        group: usize,
        member: usize,
    },
    Petition {
        author: usize,
        producer: usize,
        group: Option<usize>,
        threshold: u64,
        deadline: Option<u64>,
        variant: u8,
    },
    Endorse {
        author: usize,
        petition: usize,
        pledge: Option<u64>,
    },
    Retract {
        author: usize,
        target: usize,
    },
    Respond {
        by: usize,
        petition: usize,
        status: usize,
    },
    Attest {
        author: usize,
        target: usize,
    },
}

/// Generates the workload for `seed`: same seed, same records, byte for byte.
pub fn generate(seed: u64, p: &Params) -> Vec<SignedRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let key_of = |space: u8, i: usize| {
        let mut s = [0u8; 32];
        s[0] = space;
        s[1..9].copy_from_slice(&(i as u64).to_le_bytes());
        s[9..17].copy_from_slice(&seed.to_le_bytes());
        SigningKey::from_bytes(&s)
    };
    let consumers: Vec<SigningKey> = (0..p.authors)
        .into_par_iter()
        .map(|i| key_of(1, i))
        .collect();
    let producers: Vec<SigningKey> = (0..p.producers)
        .into_par_iter()
        .map(|i| key_of(2, i))
        .collect();
    let producer_keys: Vec<AuthorKey> = producers
        .iter()
        .map(|k| AuthorKey(k.verifying_key().to_bytes()))
        .collect();

    // First plan every record (cheap, sequential, needs the rng), remembering what each
    // created, then build and sign them in parallel.
    let mut plans: Vec<(Plan, u64)> = Vec::with_capacity(p.records);
    let mut groups: Vec<(usize, bool)> = Vec::new(); // (plan index, approval)
    let mut group_founders: Vec<usize> = Vec::new();
    let mut petitions: Vec<(usize, usize, Option<u64>)> = Vec::new(); // (plan index, producer, deadline)
    let mut own: Vec<(usize, usize)> = Vec::new(); // (author, plan index) of retractable records
    let mut t = p.start_ms;
    for _ in 0..p.records {
        t += rng.random_range(0..=p.step_ms * 2);
        let author = rng.random_range(0..p.authors);
        let roll: u32 = rng.random_range(0..1000);
        let idx = plans.len();
        let plan = match roll {
            _ if petitions.is_empty() || roll < 25 => {
                let producer = rng.random_range(0..p.producers);
                let group = if !groups.is_empty() && rng.random_bool(0.3) {
                    Some(rng.random_range(0..groups.len()))
                } else {
                    None
                };
                let deadline = rng
                    .random_bool(0.2)
                    .then(|| t + rng.random_range(1..=p.step_ms * 200 + 10));
                petitions.push((idx, producer, deadline));
                own.push((author, idx));
                Plan::Petition {
                    author,
                    producer,
                    group,
                    threshold: rng.random_range(1..=p.max_threshold),
                    deadline,
                    variant: rng.random_range(0..3),
                }
            }
            25..=724 => {
                // Recent petitions draw most endorsements.
                let n = petitions.len();
                let pi = if rng.random_bool(0.7) {
                    n - 1 - rng.random_range(0..n.min(20))
                } else {
                    rng.random_range(0..n)
                };
                own.push((author, idx));
                Plan::Endorse {
                    author,
                    petition: pi,
                    pledge: rng.random_bool(0.2).then(|| rng.random_range(1..100_000)),
                }
            }
            725..=859 => {
                own.push((author, idx));
                Plan::Review {
                    author,
                    producer: rng.random_range(0..p.producers),
                    product: rng.random_range(0..20),
                    rating: rng.random_range(1..=5),
                }
            }
            860..=899 => {
                let mine: Vec<usize> = own
                    .iter()
                    .rev()
                    .take(200)
                    .filter(|(a, _)| *a == author)
                    .map(|(_, i)| *i)
                    .collect();
                match mine.first() {
                    Some(_) => Plan::Retract {
                        author,
                        target: mine[rng.random_range(0..mine.len())],
                    },
                    None => Plan::Profile(author),
                }
            }
            900..=924 => {
                own.push((author, idx));
                Plan::Profile(author)
            }
            925..=934 => {
                groups.push((idx, rng.random_bool(0.5)));
                group_founders.push(author);
                Plan::Group {
                    author,
                    approval: groups.last().is_some_and(|g| g.1),
                }
            }
            935..=959 if !groups.is_empty() => {
                own.push((author, idx));
                Plan::Join {
                    author,
                    group: rng.random_range(0..groups.len()),
                }
            }
            960..=974 if !groups.is_empty() => {
                let g = rng.random_range(0..groups.len());
                let by = if p.rule_breakers && rng.random_bool(0.2) {
                    author
                } else {
                    group_founders[g]
                };
                Plan::Admit {
                    by,
                    group: g,
                    member: rng.random_range(0..p.authors),
                }
            }
            975..=994 => {
                let pi = rng.random_range(0..petitions.len());
                let by = if p.rule_breakers && rng.random_bool(0.2) {
                    rng.random_range(0..p.producers)
                } else {
                    petitions[pi].1
                };
                Plan::Respond {
                    by,
                    petition: pi,
                    status: rng.random_range(0..ResponseStatus::ALL.len()),
                }
            }
            _ => Plan::Attest {
                author,
                target: petitions[rng.random_range(0..petitions.len())].0,
            },
        };
        plans.push((plan, t));
    }

    let pad = |rng_bytes: usize, what: &str| -> String {
        let mut s = String::from(what);
        while s.len() < rng_bytes {
            s.push_str(" lorem ipsum");
        }
        s
    };
    let texts = (
        pad(p.text_bytes, "Review:"),
        pad(p.text_bytes, "We ask for:"),
    );

    // Ids of earlier records are needed by later ones: build in order, sign in parallel
    // chunks whose dependencies lie in earlier chunks (dependencies point backwards, and a
    // record's id does not depend on its signature).
    let mut ids: Vec<RecordId> = Vec::with_capacity(plans.len());
    let mut topics: Vec<Topic> = Vec::with_capacity(plans.len());
    let mut builders: Vec<(usize, RecordBuilder, bool)> = Vec::with_capacity(plans.len());
    for (plan, at) in &plans {
        let (signer, producer_signer, body, topic): (usize, bool, Body, Option<Topic>) = match plan
        {
            Plan::Profile(a) => (
                *a,
                false,
                Body::Profile(Profile {
                    name: format!("user {a}"),
                    role: Role::Consumer,
                    about: None,
                }),
                None,
            ),
            Plan::Review {
                author,
                producer,
                product,
                rating,
            } => (
                *author,
                false,
                Body::Review(Review {
                    product: ProductRef {
                        producer: producer_keys[*producer],
                        code: format!("ean-{product:08}"),
                    },
                    rating: *rating,
                    title: Some("Honest review".into()),
                    text: texts.0.clone(),
                }),
                None,
            ),
            Plan::Group { author, approval } => (
                *author,
                false,
                Body::Group(Group {
                    name: format!("group {author}"),
                    charter: Some("Consumers together".into()),
                    admission: if *approval {
                        Admission::Approval
                    } else {
                        Admission::Open
                    },
                }),
                None,
            ),
            Plan::Join { author, group } => (
                *author,
                false,
                Body::Join(Join {
                    group: ids[groups[*group].0],
                }),
                None,
            ),
            Plan::Admit { by, group, member } => (
                *by,
                false,
                Body::Admit(Admit {
                    group: ids[groups[*group].0],
                    member: AuthorKey(consumers[*member].verifying_key().to_bytes()),
                }),
                None,
            ),
            Plan::Petition {
                author,
                producer,
                group,
                threshold,
                deadline,
                variant,
            } => (
                *author,
                false,
                Body::Petition(Petition {
                    producer: producer_keys[*producer],
                    product: Some(format!("ean-{:08}", author % 20)),
                    group: group.map(|g| ids[groups[g].0]),
                    title: format!("Petition {}", ids.len()),
                    text: texts.1.clone(),
                    threshold: *threshold,
                    deadline: *deadline,
                    variant: match variant {
                        0 => PetitionVariant::Demand,
                        1 => PetitionVariant::Proposal,
                        _ => PetitionVariant::Campaign {
                            goal: Amount {
                                value: 300_000,
                                currency: "EUR".into(),
                            },
                        },
                    },
                }),
                None,
            ),
            Plan::Endorse {
                author,
                petition,
                pledge,
            } => {
                let pid = petitions[*petition].0;
                (
                    *author,
                    false,
                    Body::Endorsement(Endorsement {
                        petition: ids[pid],
                        comment: None,
                        // A rule breaker pledges in dollars, which a campaign (in
                        // euros) refuses.
                        pledge: pledge.map(|v| Amount {
                            value: v,
                            currency: if p.rule_breakers && v % 8 == 0 {
                                "USD".into()
                            } else {
                                "EUR".into()
                            },
                        }),
                    }),
                    Some(topics[pid]),
                )
            }
            Plan::Retract { author, target } => (
                *author,
                false,
                Body::Retraction(Retraction {
                    target: ids[*target],
                }),
                Some(topics[*target]),
            ),
            Plan::Respond {
                by,
                petition,
                status,
            } => (
                *by,
                true,
                Body::Response(Response {
                    target: ids[petitions[*petition].0],
                    status: ResponseStatus::ALL[*status],
                    text: "Thank you, we read every one.".into(),
                    root: None,
                }),
                None,
            ),
            Plan::Attest { author, target } => (
                *author,
                false,
                Body::Attestation(Attestation {
                    subject: Subject::Record(ids[*target]),
                    verdict: Verdict::Valid,
                    count: None,
                    root: None,
                    note: None,
                }),
                Some(topics[*target]),
            ),
        };
        let mut b = RecordBuilder::new(body).created_at(*at);
        if let Some(t) = topic {
            b = b.topic(t);
        }
        let author_key = if producer_signer {
            &producers[signer]
        } else {
            &consumers[signer]
        };
        let author = AuthorKey(author_key.verifying_key().to_bytes());
        let (id, topic) = b.preview(author);
        ids.push(id);
        topics.push(topic);
        builders.push((signer, b, producer_signer));
    }
    builders
        .into_par_iter()
        .map(|(signer, b, producer_signer)| {
            let key = if producer_signer {
                &producers[signer]
            } else {
                &consumers[signer]
            };
            #[allow(clippy::expect_used)] // generated records are valid by construction
            b.sign(key).expect("workload records are valid")
        })
        .collect()
}
