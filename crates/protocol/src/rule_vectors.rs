//! Builds `docs/test-rules.json`, the kind rules' test vectors (PROTOCOL.md §9.1), and checks
//! the committed file against it: each case is a record, the record it points at and the
//! code of the rule it breaks (`null`: it breaks none). `CHORUS_BLESS=1 cargo test -p
//! chorus-protocol rule_vectors` rewrites the file.

use serde_json::{json, Value as J};

use crate::record::*;
use crate::rules::{check, Pointed};
use crate::sign::SigningKey;

const T: u64 = 1_767_222_000_000;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

fn author(i: u8) -> AuthorKey {
    AuthorKey(key(i).verifying_key().to_bytes())
}

fn signed(body: Body, topic: Option<Topic>, by: u8, at: u64) -> SignedRecord {
    let b = RecordBuilder::new(body).created_at(at);
    match topic {
        Some(t) => b.topic(t),
        None => b,
    }
    .sign(&key(by))
    .unwrap()
}

/// The cases: name, target, record.
fn cases() -> Vec<(&'static str, SignedRecord, SignedRecord)> {
    let (founder, member, producer, other) = (1, 2, 3, 4);
    let group = signed(
        Body::Group(Group {
            name: "Repair Café".into(),
            charter: None,
            admission: Admission::Approval,
        }),
        None,
        founder,
        T,
    );
    let petition = |variant| {
        signed(
            Body::Petition(Petition {
                producer: author(producer),
                product: None,
                group: None,
                title: "Spare parts".into(),
                text: "Sell them".into(),
                threshold: 10,
                deadline: None,
                variant,
            }),
            None,
            member,
            T,
        )
    };
    let demand = petition(PetitionVariant::Demand);
    let campaign = petition(PetitionVariant::Campaign {
        goal: "3000EUR".parse().unwrap(),
    });
    let review = signed(
        Body::Review(Review {
            product: ProductRef {
                producer: author(producer),
                code: "gtin-4006381333931".into(),
            },
            rating: 4,
            title: None,
            text: "Sturdy".into(),
        }),
        None,
        member,
        T,
    );
    let group_topic = Topic::Group(group.id());
    let join =
        |g: &SignedRecord, t| signed(Body::Join(Join { group: g.id() }), Some(t), member, T + 1);
    let admit = |g: &SignedRecord, by, t| {
        signed(
            Body::Admit(Admit {
                group: g.id(),
                member: author(member),
            }),
            Some(t),
            by,
            T + 2,
        )
    };
    let endorse = |p: &SignedRecord, t, pledge: Option<&str>| {
        signed(
            Body::Endorsement(Endorsement {
                petition: p.id(),
                comment: None,
                pledge: pledge.map(|a| a.parse().unwrap()),
            }),
            Some(t),
            other,
            T + 3,
        )
    };
    let retract = |x: &SignedRecord, by, t| {
        signed(
            Body::Retraction(Retraction { target: x.id() }),
            Some(t),
            by,
            T + 4,
        )
    };
    let respond = |x: &SignedRecord, by| {
        signed(
            Body::Response(Response {
                target: x.id(),
                status: ResponseStatus::Accepted,
                text: "Next model".into(),
                root: None,
            }),
            None,
            by,
            T + 5,
        )
    };
    let ptopic = demand.record().topic;
    let pledged = endorse(&campaign, ptopic, Some("50EUR"));
    vec![
        ("join-group", group.clone(), join(&group, group_topic)),
        (
            "join-not-a-group",
            demand.clone(),
            join(&demand, Topic::Group(demand.id())),
        ),
        (
            "admit-by-founder",
            group.clone(),
            admit(&group, founder, group_topic),
        ),
        (
            "admit-not-a-group",
            review.clone(),
            admit(&review, founder, Topic::Group(review.id())),
        ),
        (
            "admit-not-founder",
            group.clone(),
            admit(&group, other, group_topic),
        ),
        (
            "endorse-petition",
            demand.clone(),
            endorse(&demand, ptopic, None),
        ),
        (
            "endorse-not-a-petition",
            review.clone(),
            endorse(&review, ptopic, None),
        ),
        (
            "endorse-wrong-topic",
            demand.clone(),
            endorse(&demand, Topic::Producer(author(other)), None),
        ),
        (
            "pledge-in-the-campaigns-currency",
            campaign.clone(),
            pledged.clone(),
        ),
        (
            "pledge-in-another-currency",
            campaign.clone(),
            endorse(&campaign, ptopic, Some("50USD")),
        ),
        (
            "pledge-to-a-demand",
            demand.clone(),
            endorse(&demand, ptopic, Some("50USD")),
        ),
        (
            "retract-own",
            pledged.clone(),
            retract(&pledged, other, ptopic),
        ),
        (
            "retract-not-yours",
            pledged.clone(),
            retract(&pledged, member, ptopic),
        ),
        (
            "retract-a-retraction",
            retract(&pledged, other, ptopic),
            retract(&retract(&pledged, other, ptopic), other, ptopic),
        ),
        (
            "retract-wrong-topic",
            pledged.clone(),
            retract(&pledged, other, Topic::Producer(author(other))),
        ),
        (
            "withdraw-own-petition",
            demand.clone(),
            retract(&demand, member, ptopic),
        ),
        (
            "respond-to-petition",
            demand.clone(),
            respond(&demand, producer),
        ),
        (
            "respond-to-review",
            review.clone(),
            respond(&review, producer),
        ),
        (
            "respond-not-answerable",
            group.clone(),
            respond(&group, producer),
        ),
        (
            "respond-not-producer",
            demand.clone(),
            respond(&demand, other),
        ),
    ]
}

fn build() -> J {
    let cases: Vec<J> = cases()
        .into_iter()
        .map(|(name, target, record)| {
            let error = check(record.record(), &Pointed::of(target.record()))
                .err()
                .map(|e| e.code());
            json!({
                "name": name,
                "target": hex::encode(target.wire()),
                "record": hex::encode(record.wire()),
                "error": error,
            })
        })
        .collect();
    J::Array(cases)
}

#[test]
fn the_committed_kind_rule_vectors_match_the_code_and_cover_every_rule() {
    let built = build();
    let text = serde_json::to_string_pretty(&built).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/test-rules.json");
    if std::env::var_os("CHORUS_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect(
        "docs/test-rules.json missing: CHORUS_BLESS=1 cargo test -p chorus-protocol rule_vectors",
    );
    assert_eq!(committed, text, "docs/test-rules.json is stale");
    // Every code of §9.1 is the answer of some case, and some cases break no rule.
    let codes: std::collections::BTreeSet<&str> = built
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["error"].as_str())
        .collect();
    for e in crate::rules::RuleError::ALL {
        assert!(codes.contains(e.code()), "no case for {}", e.code());
    }
    assert!(built
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["error"].is_null()));
}
