//! The watchdog audit: nothing on an honest store; each planted problem found, with its
//! evidence.

use chorus_node::audit::{audit, AuditConfig, Report, Severity};
use chorus_node::workload::{generate, Params};
use chorus_node::{Ingest, IngestConfig, Store};
use chorus_protocol::testing::{author, key};
use chorus_protocol::*;

const T0: u64 = 1_700_000_000_000;
const NOW: u64 = T0 + 86_400_000;

fn sign(k: &SigningKey, at: u64, body: Body, topic: Option<Topic>) -> SignedRecord {
    let mut b = RecordBuilder::new(body).created_at(at);
    if let Some(t) = topic {
        b = b.topic(t);
    }
    b.sign(k).unwrap()
}

fn petition(k: u8, producer: u8) -> SignedRecord {
    sign(
        &key(k),
        T0,
        Body::Petition(Petition {
            producer: author(producer),
            product: None,
            group: None,
            title: "Repairable".into(),
            text: "Sell spare parts.".into(),
            threshold: 10,
            deadline: None,
            variant: PetitionVariant::Demand,
        }),
        None,
    )
}

fn endorse(k: &SigningKey, at: u64, p: &SignedRecord) -> SignedRecord {
    sign(
        k,
        at,
        Body::Endorsement(Endorsement {
            petition: p.id(),
            comment: None,
            pledge: None,
        }),
        Some(p.record().topic),
    )
}

fn store_with(recs: &[SignedRecord]) -> Store {
    let store = Store::temporary().unwrap();
    let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
    for chunk in recs.chunks(500) {
        let outs = ing
            .ingest_blocking(chunk.iter().map(|r| r.wire().to_vec()).collect())
            .unwrap();
        assert!(outs.iter().all(|o| o.is_accepted()), "{outs:?}");
    }
    drop(ing);
    threads.join();
    store
}

fn codes(r: &Report, severity: Severity) -> Vec<&str> {
    r.findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.code.as_str())
        .collect()
}

#[test]
fn an_honest_store_has_no_findings() {
    let mut p = Params::realistic(6_000);
    p.text_bytes = 40;
    let recs = generate(7, &p);
    let store = store_with(&recs);
    let r = audit(&store, &AuditConfig::default(), NOW).unwrap();
    assert!(r.records >= 5_900, "{}", r.records);
    assert_eq!(r.verified, r.records);
    assert!(r.petitions > 0);
    assert_eq!((r.errors, r.warnings), (0, 0), "{:#?}", r.findings);
}

#[test]
fn updates_are_normal_but_a_burst_of_fresh_endorse_only_keys_is_flagged() {
    let p = petition(1, 2);
    let mut recs = vec![p.clone()];
    // One author endorsing again and again: an update, not a finding.
    for i in 0..5 {
        recs.push(endorse(&key(3), T0 + 1_000 + i, &p));
    }
    let store = store_with(&recs);
    let r = audit(&store, &AuditConfig::default(), NOW).unwrap();
    assert_eq!((r.errors, r.warnings), (0, 0), "{:#?}", r.findings);

    // Thirty keys nobody has seen, within a minute, doing nothing but endorse `p`.
    let sybils: Vec<SigningKey> = (0..30u8)
        .map(|i| {
            SigningKey::from_bytes(&[
                200 + (i % 50),
                i,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
            ])
        })
        .collect();
    for (i, k) in sybils.iter().enumerate() {
        recs.push(endorse(k, T0 + 3_600_000 + i as u64 * 2_000, &p));
    }
    let store = store_with(&recs);
    let r = audit(&store, &AuditConfig::default(), NOW).unwrap();
    assert_eq!(r.errors, 0, "{:#?}", r.findings);
    assert_eq!(codes(&r, Severity::Warning), ["sybil-burst"]);
    let burst = &r.findings[0];
    assert_eq!(burst.evidence["count"], 30);
    assert_eq!(burst.evidence["petition"], p.id().to_string());
    let keys = burst.evidence["keys"].as_array().unwrap();
    for k in &sybils {
        let k = AuthorKey(k.verifying_key().to_bytes()).to_string();
        assert!(keys.contains(&serde_json::json!(k)));
    }
    // Below the threshold: not a finding.
    let cfg = AuditConfig {
        burst_keys: 31,
        idle_keys: 100,
        ..AuditConfig::default()
    };
    assert_eq!(audit(&store, &cfg, NOW).unwrap().warnings, 0);
}

#[test]
fn forged_records_wrong_keys_and_inflated_tallies_are_errors() {
    let p = petition(1, 2);
    let e = endorse(&key(3), T0 + 1_000, &p);
    let store = store_with(&[p.clone(), e.clone()]);

    // A forged record slipped into the store (a broken signature).
    let forged = endorse(&key(4), T0 + 2_000, &p);
    let mut wire = forged.wire().to_vec();
    let n = wire.len();
    wire[n - 3] ^= 1;
    store
        .plant_record(&wire, &p.record().topic, T0 + 2_000, &forged.id())
        .unwrap();
    // A response by someone who is not the targeted producer.
    let fake = sign(
        &key(9),
        T0 + 3_000,
        Body::Response(Response {
            target: p.id(),
            status: ResponseStatus::Accepted,
            text: "sure".into(),
            root: None,
        }),
        None,
    );
    store
        .plant_record(fake.wire(), &fake.record().topic, T0 + 3_000, &fake.id())
        .unwrap();
    // An inflated tally.
    let mut t = store.tally(&p.id()).unwrap().unwrap();
    t.endorsers += 100;
    store.plant_tally(&p.id(), &t).unwrap();

    let r = audit(&store, &AuditConfig::default(), NOW).unwrap();
    let errors = codes(&r, Severity::Error);
    assert!(errors.contains(&"invalid-record"), "{errors:?}");
    assert!(errors.contains(&"wrong-key"), "{errors:?}");
    assert!(errors.contains(&"tally-mismatch"), "{errors:?}");
    let invalid = r
        .findings
        .iter()
        .find(|f| f.code == "invalid-record")
        .unwrap();
    assert_eq!(invalid.evidence["id"], forged.id().to_string());
    let wrong = r.findings.iter().find(|f| f.code == "wrong-key").unwrap();
    assert_eq!(wrong.evidence["id"], fake.id().to_string());
    assert_eq!(wrong.evidence["expected"], author(2).to_string());
    // Errors come first.
    assert_eq!(r.findings[0].severity, Severity::Error);
}

#[test]
fn timestamps_out_of_order_or_ahead_are_warnings() {
    let p = petition(1, 2);
    let early = endorse(&key(3), T0 - 60_000, &p);
    let store = store_with(&[p.clone(), early.clone()]);
    let r = audit(&store, &AuditConfig::default(), NOW).unwrap();
    assert_eq!(
        codes(&r, Severity::Warning),
        ["timestamp"],
        "{:#?}",
        r.findings
    );
    assert_eq!(r.findings[0].evidence["id"], early.id().to_string());
    // Seen from a clock an hour behind, the petition is in the future.
    let r = audit(&store, &AuditConfig::default(), T0 - 3_600_000).unwrap();
    assert!(r
        .findings
        .iter()
        .any(|f| f.code == "timestamp" && f.evidence["id"] == p.id().to_string()));
}

#[test]
fn a_planted_record_that_breaks_a_kind_rule_is_an_error_naming_the_rule() {
    let p = petition(1, 2);
    let store = store_with(std::slice::from_ref(&p));
    // A join that points at a petition, as if it were a group.
    let join = sign(
        &key(5),
        T0 + 1_000,
        Body::Join(Join { group: p.id() }),
        None,
    );
    store
        .plant_record(join.wire(), &join.record().topic, T0 + 1_000, &join.id())
        .unwrap();
    let r = audit(&store, &AuditConfig::default(), NOW).unwrap();
    let broken = r
        .findings
        .iter()
        .find(|f| f.code == "kind-rule")
        .unwrap_or_else(|| panic!("{:#?}", r.findings));
    assert_eq!(broken.severity, Severity::Error);
    assert_eq!(broken.evidence["id"], join.id().to_string());
    assert_eq!(broken.evidence["rule"], "not_a_group");
    assert_eq!(broken.evidence["target"], p.id().to_string());
}
