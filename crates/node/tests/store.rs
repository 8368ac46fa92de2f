//! Store, ingest pipeline and derived state, in process.

use std::collections::BTreeMap;

use chorus_node::workload::{generate, Params};
use chorus_node::{
    recompute, Ingest, IngestConfig, IngestThreads, Outcome, PetitionState, Rejection, Store,
};
use chorus_protocol::testing::{author, key};
use chorus_protocol::*;
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const T0: u64 = 1_700_000_000_000;

fn start(store: &Store) -> (Ingest, IngestThreads) {
    Ingest::start(store.clone(), IngestConfig::default()).unwrap()
}

fn ingest(i: &Ingest, recs: &[&SignedRecord]) -> Vec<Outcome> {
    i.ingest_blocking(recs.iter().map(|r| r.wire().to_vec()).collect())
        .unwrap()
}

fn sign(k: u8, at: u64, body: Body, topic: Option<Topic>) -> SignedRecord {
    let mut b = RecordBuilder::new(body).created_at(at);
    if let Some(t) = topic {
        b = b.topic(t);
    }
    b.sign(&key(k)).unwrap()
}

fn petition(
    k: u8,
    producer: u8,
    threshold: u64,
    deadline: Option<u64>,
    group: Option<RecordId>,
) -> SignedRecord {
    sign(
        k,
        T0,
        Body::Petition(Petition {
            producer: author(producer),
            product: Some("gtin-1".into()),
            group,
            title: "Repairable".into(),
            text: "Sell spare parts.".into(),
            threshold,
            deadline,
            variant: PetitionVariant::Campaign {
                goal: "1EUR".parse().unwrap(),
            },
        }),
        None,
    )
}

/// A petition by key `k` at T0 with a variant of its own.
fn petition_of(
    k: u8,
    threshold: u64,
    deadline: Option<u64>,
    variant: PetitionVariant,
) -> SignedRecord {
    sign(
        k,
        T0,
        Body::Petition(Petition {
            producer: author(0),
            product: None,
            group: None,
            title: "Tooling".into(),
            text: "Fund the mould.".into(),
            threshold,
            deadline,
            variant,
        }),
        None,
    )
}

/// Ingests `recs` in `order` (indexes) into a fresh store, in batches of one to three, and
/// returns the store (checked against a recomputation).
fn ingested_in(recs: &[&SignedRecord], order: &[usize], batch_seed: u64) -> Store {
    let store = Store::temporary().unwrap();
    {
        let (ing, threads) = start(&store);
        let mut rng = rand::rngs::StdRng::seed_from_u64(batch_seed);
        let mut rest: Vec<&SignedRecord> = order.iter().map(|i| recs[*i]).collect();
        while !rest.is_empty() {
            let k = rng.random_range(1..=rest.len().min(3));
            ingest(&ing, &rest[..k]);
            rest.drain(..k);
        }
        drop(ing);
        threads.join();
    }
    assert_eq!(store.waiting().unwrap(), 0);
    assert!(recompute(&store).unwrap().is_empty(), "{order:?}");
    store
}

/// Every order of `recs` (all of them up to 6 records, else 200 shuffles, with the
/// sorted and reversed ones): the same derived state each time, which `check` judges.
fn in_every_order(recs: &[&SignedRecord], check: impl Fn(&Store)) {
    let n = recs.len();
    let mut orders: Vec<Vec<usize>> = Vec::new();
    if n <= 6 {
        fn permute(prefix: &mut Vec<usize>, n: usize, out: &mut Vec<Vec<usize>>) {
            if prefix.len() == n {
                out.push(prefix.clone());
                return;
            }
            for i in 0..n {
                if !prefix.contains(&i) {
                    prefix.push(i);
                    permute(prefix, n, out);
                    prefix.pop();
                }
            }
        }
        permute(&mut Vec::new(), n, &mut orders);
    } else {
        let mut rng = rand::rngs::StdRng::seed_from_u64(19);
        orders.push((0..n).collect());
        orders.push((0..n).rev().collect());
        for _ in 0..200 {
            let mut o: Vec<usize> = (0..n).collect();
            o.shuffle(&mut rng);
            orders.push(o);
        }
    }
    let mut reference = None;
    for (i, o) in orders.iter().enumerate() {
        let store = ingested_in(recs, o, i as u64);
        check(&store);
        let d = derived(&store);
        match &reference {
            None => reference = Some(d),
            Some(r) => assert_eq!(&d, r, "order {o:?}"),
        }
    }
}

fn endorse(k: u8, at: u64, p: &SignedRecord, pledge: Option<&str>) -> SignedRecord {
    sign(
        k,
        at,
        Body::Endorsement(Endorsement {
            petition: p.id(),
            comment: None,
            pledge: pledge.map(|s| s.parse().unwrap()),
        }),
        Some(p.record().topic),
    )
}

fn retract(k: u8, at: u64, target: &SignedRecord) -> SignedRecord {
    sign(
        k,
        at,
        Body::Retraction(Retraction {
            target: target.id(),
        }),
        Some(target.record().topic),
    )
}

fn respond(k: u8, at: u64, target: &SignedRecord, status: ResponseStatus) -> SignedRecord {
    sign(
        k,
        at,
        Body::Response(Response {
            target: target.id(),
            status,
            text: "ok".into(),
            root: None,
        }),
        None,
    )
}

#[test]
fn endorsements_count_once_latest_wins_and_retractions_remove() {
    let store = Store::temporary().unwrap();
    let (ing, _threads) = start(&store);
    let p = petition(1, 0, 2, None, None);
    let a1 = endorse(2, T0 + 10, &p, Some("10EUR"));
    let a2 = endorse(2, T0 + 20, &p, Some("30EUR")); // update: still one endorser
    let b1 = endorse(3, T0 + 15, &p, Some("5EUR"));
    let out = ingest(&ing, &[&p, &a1, &a2, &b1, &a1]);
    assert!(matches!(out[0], Outcome::Stored(_)));
    assert!(matches!(out[4], Outcome::Duplicate(_)), "{out:?}");
    let t = store.tally(&p.id()).unwrap().unwrap();
    assert_eq!(t.endorsers, 2);
    assert!(t.reached, "two endorsers and 35 of 1 EUR");
    assert_eq!(
        t.first_reached_at,
        Some(T0 + 15),
        "the second endorser came at T0 + 15 (A's update at T0 + 20 does not move it)"
    );
    assert_eq!(
        t.pledged.get("EUR"),
        Some(&3500),
        "30 + 5 EUR in hundredths"
    );

    // B retracts: one endorser left, threshold no longer reached.
    let rb = retract(3, T0 + 30, &b1);
    assert!(matches!(ingest(&ing, &[&rb])[0], Outcome::Stored(_)));
    let t = store.tally(&p.id()).unwrap().unwrap();
    assert_eq!((t.endorsers, t.reached), (1, false));
    assert_eq!(t.pledged.get("EUR"), Some(&3000));
    // An older endorsement by B arriving late changes nothing: the retraction is later.
    let b0 = endorse(3, T0 + 5, &p, None);
    ingest(&ing, &[&b0]);
    assert_eq!(store.tally(&p.id()).unwrap().unwrap().endorsers, 1);
    // Someone else cannot retract B's endorsement.
    let forged_retraction = retract(4, T0 + 40, &a2);
    assert_eq!(
        ingest(&ing, &[&forged_retraction])[0],
        Outcome::Rejected(Rejection::Rule(RuleError::RetractionNotAuthor))
    );
    assert!(recompute(&store).unwrap().is_empty());
}

#[test]
fn a_withdrawal_closes_the_petition_whatever_the_arrival_order() {
    let p = petition_of(1, 2, None, PetitionVariant::Demand);
    let a = endorse(2, T0 + 10, &p, None);
    let b = endorse(3, T0 + 20, &p, None);
    let w = retract(1, T0 + 30, &p);
    // Made after the withdrawal: none counts, even where it arrived first.
    let c = endorse(4, T0 + 40, &p, None);
    let a_again = endorse(2, T0 + 50, &p, Some("5EUR"));
    let b_gone = retract(3, T0 + 60, &b);
    let recs = [&a, &b, &w, &c, &a_again, &b_gone];
    let check = |store: &Store| {
        let t = store.tally(&p.id()).unwrap().unwrap();
        assert_eq!((t.endorsers, t.reached), (2, true), "{t:?}");
        assert!(t.pledged.is_empty(), "A's later pledge does not count");
        assert_eq!((t.withdrawn, t.withdrawn_at), (true, Some(T0 + 30)));
        assert_eq!(t.first_reached_at, Some(T0 + 20));
        assert_eq!(t.state(T0), PetitionState::Withdrawn);
    };
    let mut all = vec![&p];
    all.extend(recs);
    in_every_order(&all, check);
}

#[test]
fn the_earliest_withdrawal_closes_and_stored_endorsements_made_after_it_stop_counting() {
    let p = petition_of(1, 1, Some(T0 + 1_000), PetitionVariant::Demand);
    let a = endorse(2, T0 + 10, &p, None);
    let b = endorse(3, T0 + 35, &p, None);
    let late = retract(1, T0 + 40, &p);
    let early = retract(1, T0 + 30, &p);
    // Stored and counted first; the withdrawals then uncount B.
    let store = ingested_in(&[&p, &a, &b, &late, &early], &[0, 1, 2, 3, 4], 0);
    let t = store.tally(&p.id()).unwrap().unwrap();
    assert_eq!((t.endorsers, t.withdrawn_at), (1, Some(T0 + 30)));
    assert_eq!(t.first_reached_at, Some(T0 + 10));
    in_every_order(&[&p, &a, &b, &late, &early], |s| {
        let t = s.tally(&p.id()).unwrap().unwrap();
        assert_eq!((t.endorsers, t.withdrawn_at), (1, Some(T0 + 30)));
    });
}

#[test]
fn first_reached_at_is_a_function_of_the_records_and_updates_never_move_it() {
    let p = petition_of(1, 2, None, PetitionVariant::Demand);
    let a = endorse(2, T0 + 10, &p, None);
    let b = endorse(3, T0 + 20, &p, None);
    // A updates (a new comment or pledge) before and after B came: the count never changes.
    let a_update = endorse(2, T0 + 15, &p, Some("3EUR"));
    let a_late_update = endorse(2, T0 + 25, &p, Some("4EUR"));
    // A retracts, C comes: reached again, but first reached stays at B.
    let a_gone = retract(2, T0 + 30, &a_late_update);
    let c = endorse(4, T0 + 40, &p, None);
    in_every_order(&[&p, &a, &b, &a_update, &a_late_update, &a_gone, &c], |s| {
        let t = s.tally(&p.id()).unwrap().unwrap();
        assert_eq!((t.endorsers, t.reached), (2, true), "{t:?}");
        assert_eq!(t.first_reached_at, Some(T0 + 20), "{t:?}");
    });
    // Without C: no longer reached, and it still first was at B's.
    in_every_order(&[&p, &a, &b, &a_late_update, &a_gone], |s| {
        let t = s.tally(&p.id()).unwrap().unwrap();
        assert_eq!((t.endorsers, t.reached), (1, false), "{t:?}");
        assert_eq!(t.first_reached_at, Some(T0 + 20), "{t:?}");
    });
}

#[test]
fn a_campaign_is_reached_when_its_goal_is_met_not_its_threshold() {
    let goal = |g: &str| PetitionVariant::Campaign {
        goal: g.parse().unwrap(),
    };
    // The bug of issue 19: 2,000 EUR of a 3,000 EUR goal, threshold met.
    let p = petition_of(1, 2, Some(T0 + 1_000), goal("3000EUR"));
    let a = endorse(2, T0 + 10, &p, Some("1500EUR"));
    let b = endorse(3, T0 + 20, &p, Some("500EUR"));
    let c = endorse(4, T0 + 30, &p, Some("1000EUR"));
    let b_more = endorse(3, T0 + 40, &p, Some("600EUR"));
    in_every_order(&[&p, &a, &b], |s| {
        let t = s.tally(&p.id()).unwrap().unwrap();
        assert_eq!(t.endorsers, 2);
        assert_eq!(t.pledged_total(), Some(200_000));
        assert!(
            !t.reached && !t.funded && t.first_reached_at.is_none(),
            "{t:?}"
        );
        assert_eq!(t.outcome(T0 + 1_001), Some("failed"));
        assert_eq!(t.outcome(T0 + 1_000), None, "not before its deadline");
    });
    in_every_order(&[&p, &a, &b, &c, &b_more], |s| {
        let t = s.tally(&p.id()).unwrap().unwrap();
        assert_eq!(t.pledged_total(), Some(310_000));
        assert!(t.reached && t.funded, "{t:?}");
        assert_eq!(t.first_reached_at, Some(T0 + 30), "3,000 EUR at C's pledge");
        assert_eq!(t.outcome(T0 + 1_001), Some("funded"));
    });
}

#[test]
fn a_pledge_in_another_currency_than_the_campaigns_is_refused_even_after_waiting() {
    let p = petition_of(
        1,
        1,
        None,
        PetitionVariant::Campaign {
            goal: "3000EUR".parse().unwrap(),
        },
    );
    let dollars = endorse(2, T0 + 10, &p, Some("100USD"));
    let euros = endorse(3, T0 + 10, &p, Some("100EUR"));
    let store = Store::temporary().unwrap();
    let (ing, _t) = start(&store);
    // Before its campaign: it waits; the campaign's arrival refuses it.
    assert_eq!(ingest(&ing, &[&dollars])[0], Outcome::Waiting(dollars.id()));
    let out = ingest(&ing, &[&p, &euros]);
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Stored(_))),
        "{out:?}"
    );
    assert!(!store.contains(&dollars.id()).unwrap());
    assert_eq!(store.waiting().unwrap(), 0);
    assert_eq!(
        ingest(&ing, &[&dollars])[0],
        Outcome::Rejected(Rejection::Rule(RuleError::EndorsementCurrencyMismatch))
    );
    let t = store.tally(&p.id()).unwrap().unwrap();
    assert_eq!((t.endorsers, t.pledged_total()), (1, Some(10_000)));
    assert!(recompute(&store).unwrap().is_empty());
}

#[test]
fn deadline_freezes_the_count() {
    let store = Store::temporary().unwrap();
    let (ing, _t) = start(&store);
    let p = petition(1, 0, 5, Some(T0 + 100), None);
    let early = endorse(2, T0 + 50, &p, None);
    let late = endorse(3, T0 + 150, &p, None);
    let late_retraction = retract(2, T0 + 200, &early);
    let out = ingest(&ing, &[&p, &early, &late, &late_retraction]);
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Stored(_))),
        "{out:?}"
    );
    assert_eq!(store.tally(&p.id()).unwrap().unwrap().endorsers, 1);
    assert!(recompute(&store).unwrap().is_empty());
}

#[test]
fn only_the_targeted_producer_responds_and_responses_wait_for_their_target() {
    let store = Store::temporary().unwrap();
    let (ing, _t) = start(&store);
    let p = petition(1, 0, 1, None, None);
    let good = respond(0, T0 + 10, &p, ResponseStatus::Accepted);
    let wrong = respond(5, T0 + 10, &p, ResponseStatus::Declined);
    // The response arrives before its petition: it waits, durably.
    assert_eq!(ingest(&ing, &[&good])[0], Outcome::Waiting(good.id()));
    assert_eq!(store.waiting().unwrap(), 1);
    assert!(!store.contains(&good.id()).unwrap());
    let out = ingest(&ing, &[&p, &wrong]);
    assert!(matches!(out[0], Outcome::Stored(_)));
    assert_eq!(
        out[1],
        Outcome::Rejected(Rejection::Rule(RuleError::ResponseNotProducer))
    );
    assert!(
        store.contains(&good.id()).unwrap(),
        "released when the petition arrived"
    );
    assert_eq!(store.waiting().unwrap(), 0);
    let t = store.tally(&p.id()).unwrap().unwrap();
    assert_eq!(t.response.unwrap().status, "accepted");
    assert!(recompute(&store).unwrap().is_empty());
}

#[test]
fn records_waiting_when_the_node_stops_are_released_after_it_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let p = petition(1, 0, 1, None, None);
    let response = respond(0, T0 + 10, &p, ResponseStatus::Done);
    {
        let store = Store::open(dir.path()).unwrap();
        let (ing, threads) = start(&store);
        assert_eq!(
            ingest(&ing, &[&response])[0],
            Outcome::Waiting(response.id())
        );
        drop(ing);
        threads.join();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.waiting().unwrap(), 1);
    let (ing, _t) = start(&store);
    // Records nothing waits for pass by; the petition releases its response.
    let other = petition(2, 0, 1, None, None);
    assert!(matches!(ingest(&ing, &[&other])[0], Outcome::Stored(_)));
    assert_eq!(store.waiting().unwrap(), 1);
    assert!(matches!(ingest(&ing, &[&p])[0], Outcome::Stored(_)));
    assert!(store.contains(&response.id()).unwrap());
    assert_eq!(store.waiting().unwrap(), 0);
    let t = store.tally(&p.id()).unwrap().unwrap();
    assert_eq!(t.response.unwrap().status, "done");
    assert!(recompute(&store).unwrap().is_empty());
}

#[test]
fn ratings_take_each_authors_latest_unretracted_review() {
    let store = Store::temporary().unwrap();
    let (ing, _t) = start(&store);
    let review = |k: u8, at: u64, rating: u8| {
        sign(
            k,
            at,
            Body::Review(Review {
                product: ProductRef {
                    producer: author(0),
                    code: "gtin-1".into(),
                },
                rating,
                title: None,
                text: "fine".into(),
            }),
            None,
        )
    };
    let r1 = review(1, T0, 2);
    let r1b = review(1, T0 + 5, 4);
    let r2 = review(2, T0, 5);
    let r3 = review(3, T0, 1);
    let x3 = retract(3, T0 + 9, &r3);
    ingest(&ing, &[&r1b, &r2, &r3, &x3, &r1]);
    let rating = store.rating(&author(0), "gtin-1").unwrap();
    assert_eq!(rating.count, 2);
    assert_eq!(rating.histogram, [0, 0, 0, 1, 1]);
    assert!((rating.mean() - 4.5).abs() < 1e-9);
    let page = store.by_product(&author(0), "gtin-1", None, 10).unwrap();
    assert_eq!(page.records.len(), 4);
    assert!(recompute(&store).unwrap().is_empty());
}

#[test]
fn approval_groups_count_admitted_members_of_group_petitions() {
    let store = Store::temporary().unwrap();
    let (ing, _t) = start(&store);
    let g = sign(
        1,
        T0,
        Body::Group(Group {
            name: "g".into(),
            charter: None,
            admission: Admission::Approval,
        }),
        None,
    );
    let p = petition(1, 0, 2, None, Some(g.id()));
    let join2 = sign(2, T0 + 1, Body::Join(Join { group: g.id() }), None);
    let admit2 = sign(
        1,
        T0 + 2,
        Body::Admit(Admit {
            group: g.id(),
            member: author(2),
        }),
        None,
    );
    let bad_admit = sign(
        3,
        T0 + 2,
        Body::Admit(Admit {
            group: g.id(),
            member: author(3),
        }),
        None,
    );
    let join3 = sign(3, T0 + 1, Body::Join(Join { group: g.id() }), None);
    let e1 = endorse(1, T0 + 3, &p, None);
    let e2 = endorse(2, T0 + 3, &p, None);
    let e3 = endorse(3, T0 + 3, &p, None);
    // Endorsements first, admit last: membership changes must reach the tally.
    let out = ingest(
        &ing,
        &[&g, &p, &e1, &e2, &e3, &join2, &join3, &bad_admit, &admit2],
    );
    assert_eq!(
        out[7],
        Outcome::Rejected(Rejection::Rule(RuleError::AdmitNotFounder))
    );
    let t = store.tally(&p.id()).unwrap().unwrap();
    assert_eq!(
        (t.endorsers, t.member_endorsers),
        (3, 2),
        "founder and admitted member"
    );
    assert_eq!(store.group(&g.id()).unwrap().unwrap().members, 2);
    assert!(chorus_node::tally::is_member(&store, &g.id(), &author(2)).unwrap());
    assert!(!chorus_node::tally::is_member(&store, &g.id(), &author(3)).unwrap());
    assert!(recompute(&store).unwrap().is_empty());
}

#[test]
fn forged_and_malformed_records_are_rejected_honest_ones_stored() {
    let store = Store::temporary().unwrap();
    let (ing, _t) = start(&store);
    let recs = generate(7, &Params::realistic(300));
    let mut wires: Vec<Vec<u8>> = recs.iter().map(|r| r.wire().to_vec()).collect();
    let mut forged = wires[10].clone();
    let n = forged.len();
    forged[n - 5] ^= 0x40; // inside S
    wires[10] = forged;
    wires[20] = vec![0x82, 0x00];
    wires[30].truncate(40);
    let out = ing.ingest_blocking(wires).unwrap();
    for (i, o) in out.iter().enumerate() {
        match i {
            10 | 20 | 30 => assert!(
                matches!(o, Outcome::Rejected(Rejection::Invalid(_))),
                "{i}: {o:?}"
            ),
            _ => assert!(o.is_accepted(), "{i}: {o:?}"),
        }
    }
    assert!(!store.contains(&recs[10].id()).unwrap());
    assert!(recompute(&store).unwrap().is_empty());
}

#[test]
fn pages_follow_created_at_order() {
    let store = Store::temporary().unwrap();
    let (ing, _t) = start(&store);
    let p = petition(1, 0, 1000, None, None);
    let es: Vec<SignedRecord> = (0..25u8)
        .map(|k| endorse(k + 10, T0 + 100 - u64::from(k), &p, None))
        .collect();
    let mut all = vec![&p];
    all.extend(es.iter());
    ingest(&ing, &all);
    let topic = Topic::Producer(author(0));
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.by_topic(&topic, after, 10).unwrap();
        seen.extend(page.records.iter().map(|r| r.record().created_at));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    let mut endorsers = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = store.endorsements(&p.id(), after, 7).unwrap();
        endorsers.extend(page.iter().map(|(r, counted)| (r.author(), *counted)));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(endorsers.len(), 25);
    assert!(endorsers.iter().all(|(_, counted)| *counted));
    assert!(endorsers.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(
        store
            .by_topic(&Topic::Producer(author(0)), None, 1000)
            .unwrap()
            .records
            .len(),
        26
    );
    // Only attestations are indexed by author: an endorser has none.
    assert!(store
        .attestations_by(&author(11), None, 10)
        .unwrap()
        .records
        .is_empty());
    assert_eq!(store.len().unwrap(), 26);
}

/// The derived state of a store, for comparisons.
fn derived(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store.derived_snapshot().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random sets of records, ingested in random orders, with duplicates and in random batch
    /// sizes, give identical derived state, equal to recompute().
    #[test]
    fn derived_state_is_a_function_of_the_set(seed in any::<u64>(), n in 20usize..160, order_seed in any::<u64>()) {
        let recs = generate(seed, &Params::conflicts(n));
        let reference = Store::temporary().unwrap();
        {
            let (ing, threads) = start(&reference);
            ingest(&ing, &recs.iter().collect::<Vec<_>>());
            drop(ing);
            threads.join();
        }
        prop_assert!(recompute(&reference).unwrap().is_empty());

        let mut rng = rand::rngs::StdRng::seed_from_u64(order_seed);
        let mut shuffled: Vec<&SignedRecord> = recs.iter().collect();
        for _ in 0..n / 5 {
            shuffled.push(&recs[rng.random_range(0..recs.len())]);
        }
        shuffled.shuffle(&mut rng);
        let store = Store::temporary().unwrap();
        let (ing, threads) = start(&store);
        let mut rest = &shuffled[..];
        while !rest.is_empty() {
            let k = rng.random_range(1..=rest.len().min(17));
            ingest(&ing, &rest[..k]);
            rest = &rest[k..];
        }
        drop(ing);
        threads.join();
        // What waits for a target that never comes (a retraction of a refused pledge in a
        // foreign currency) waits in every order alike.
        prop_assert_eq!(store.waiting().unwrap(), reference.waiting().unwrap());
        prop_assert_eq!(store.len().unwrap(), reference.len().unwrap());
        prop_assert_eq!(derived(&store), derived(&reference));
        prop_assert!(recompute(&store).unwrap().is_empty());
    }
}

/// An approval group with requests, admits and a retracted join, a group campaign, and a
/// watchdog's one-actor and verified-count attestations: in every arrival order tried, the
/// same roster (members, pending requests) and the same trusted view (one actor counted
/// once, by its earliest endorsement, whose pledge alone counts; vouched for).
#[test]
fn rosters_and_trusted_counts_are_functions_of_the_set() {
    use chorus_node::roster::{self, Status};
    let g = sign(
        1,
        T0,
        Body::Group(Group {
            name: "g".into(),
            charter: None,
            admission: Admission::Approval,
        }),
        None,
    );
    let p = petition(1, 0, 5, None, Some(g.id()));
    let join = |k: u8, at: u64| sign(k, at, Body::Join(Join { group: g.id() }), None);
    let (join2, join3, join4) = (join(2, T0 + 1), join(3, T0 + 2), join(4, T0 + 1));
    let unjoin4 = retract(4, T0 + 9, &join4);
    let admit2 = sign(
        1,
        T0 + 2,
        Body::Admit(Admit {
            group: g.id(),
            member: author(2),
        }),
        None,
    );
    let e1 = endorse(1, T0 + 5, &p, Some("10EUR"));
    let e2 = endorse(2, T0 + 3, &p, Some("20EUR"));
    let e3 = endorse(3, T0 + 4, &p, Some("5EUR"));
    let attest =
        |body: Attestation, topic: Option<Topic>| sign(9, T0 + 20, Body::Attestation(body), topic);
    let one_actor = attest(
        Attestation {
            subject: Subject::Keys(vec![author(3), author(2)]),
            verdict: Verdict::OneActor,
            count: None,
            root: None,
            note: None,
        },
        None,
    );
    let counted = attest(
        Attestation {
            subject: Subject::Record(p.id()),
            verdict: Verdict::VerifiedCount,
            count: Some(3),
            root: Some(bundle::merkle_root(&[e1.id(), e2.id(), e3.id()])),
            note: None,
        },
        Some(p.record().topic),
    );
    let all = [
        &g, &p, &join2, &join3, &join4, &unjoin4, &admit2, &e1, &e2, &e3, &one_actor, &counted,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    for round in 0..12 {
        let mut order = all.to_vec();
        if round > 0 {
            order.shuffle(&mut rng);
        }
        let store = Store::temporary().unwrap();
        let (ing, threads) = start(&store);
        for r in &order {
            ingest(&ing, &[r]);
        }
        drop(ing);
        threads.join();
        let r = roster::of(&store, &g.id()).unwrap().unwrap();
        assert_eq!(r.members, vec![author(1), author(2)], "order {round}");
        assert_eq!(r.pending.len(), 1, "order {round}");
        assert_eq!(r.pending[0].key, author(3));
        assert_eq!(r.pending[0].join, join3.id());
        assert_eq!(r.status(&author(3)), Status::Pending);
        assert_eq!(
            r.status(&author(4)),
            Status::None,
            "a retracted join asks nothing"
        );
        let t = store.tally(&p.id()).unwrap().unwrap();
        assert_eq!((t.endorsers, t.member_endorsers), (3, 2), "order {round}");
        let v = chorus_node::trust::view(&store, &[author(9)], &p.id(), &t)
            .unwrap()
            .unwrap();
        assert_eq!((v.endorsers, v.excluded), (2, 1), "order {round}");
        assert_eq!(
            v.pledged,
            BTreeMap::from([("EUR".to_string(), "30.00".to_string())]),
            "key 2 endorsed before key 3: its pledge is the actor's"
        );
        assert_eq!(v.vouched_by, vec![author(9).to_string()]);
        assert!(v.attested[0].current);
        assert!(chorus_node::trust::view(&store, &[], &p.id(), &t)
            .unwrap()
            .is_none());
        assert!(recompute(&store).unwrap().is_empty());
    }
}

// The waiting area (issue 18): bounded per source, per author and in total, entries expire,
// and a peer whose records never resolve is penalised.

mod waiting_area {
    use super::*;
    use chorus_node::waiting::{Limits, Source, PENALTY_EVERY};
    use std::time::Duration;

    fn peer(n: u8) -> Source {
        Source::Peer(vec![n; 38])
    }

    /// An endorsement by a key made for it alone, of a petition that does not exist.
    fn orphan(n: u32) -> Vec<u8> {
        let k = SigningKey::from_bytes(blake3::hash(&n.to_be_bytes()).as_bytes());
        RecordBuilder::new(Body::Endorsement(Endorsement {
            petition: RecordId(*blake3::hash(&[&n.to_be_bytes()[..], b"p"].concat()).as_bytes()),
            comment: None,
            pledge: None,
        }))
        .created_at(T0)
        .topic(Topic::Producer(author(0)))
        .sign(&k)
        .unwrap()
        .wire()
        .to_vec()
    }

    struct Running {
        ing: Ingest,
        rt: tokio::runtime::Runtime,
        _threads: IngestThreads,
    }

    impl Running {
        fn from(&self, source: Source, wires: Vec<Vec<u8>>) -> Vec<Outcome> {
            self.rt
                .block_on(self.ing.ingest_from(wires, source))
                .unwrap()
        }
    }

    fn start_with(store: &Store, config: IngestConfig) -> Running {
        let (ing, threads) = Ingest::start(store.clone(), config).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Running {
            ing,
            rt,
            _threads: threads,
        }
    }

    fn waited(outcomes: &[Outcome]) -> usize {
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Waiting(_)))
            .count()
    }

    #[test]
    fn a_flood_of_orphans_from_throwaway_keys_does_not_stop_an_honest_out_of_order_record() {
        let store = Store::temporary().unwrap();
        let (released, mut gossiped) = tokio::sync::mpsc::channel(16);
        let run = start_with(
            &store,
            IngestConfig {
                waiting: Limits {
                    total: 100,
                    per_source: 40,
                    per_author: 5,
                    ttl: Duration::from_secs(3600),
                },
                released: Some(released),
                ..IngestConfig::default()
            },
        );
        // Three peers flood orphans made by fresh keys: each keeps its share at most, and
        // a full area only ever displaces the largest share.
        let mut n = 0;
        for p in 1..=3 {
            let wires: Vec<Vec<u8>> = (0..80)
                .map(|_| {
                    n += 1;
                    orphan(n)
                })
                .collect();
            let out = run.from(peer(p), wires);
            assert!(waited(&out) <= 40, "peer {p}: {}", waited(&out));
            assert!(out.iter().all(|o| matches!(
                o,
                Outcome::Waiting(_) | Outcome::Rejected(Rejection::TooManyWaiting)
            )));
        }
        assert_eq!(store.waiting().unwrap(), 100);
        // One author cannot fill the area alone either.
        let k = key(77);
        let one_author: Vec<Vec<u8>> = (0..10u8)
            .map(|i| {
                RecordBuilder::new(Body::Retraction(Retraction {
                    target: RecordId([i; 32]),
                }))
                .created_at(T0)
                .topic(Topic::Producer(author(0)))
                .sign(&k)
                .unwrap()
                .wire()
                .to_vec()
            })
            .collect();
        assert_eq!(waited(&run.from(peer(4), one_author)), 5);

        // An honest endorsement arrives before its petition, from another peer: it waits,
        // is applied when the petition comes, and is then handed back to be gossiped.
        let p = petition(9, 0, 1, None, None);
        let e = endorse(10, T0 + 5, &p, None);
        assert_eq!(
            run.from(peer(9), vec![e.wire().to_vec()]),
            vec![Outcome::Waiting(e.id())]
        );
        assert_eq!(
            run.from(peer(9), vec![p.wire().to_vec()]),
            vec![Outcome::Stored(p.id())]
        );
        assert!(store.contains(&e.id()).unwrap());
        assert_eq!(store.tally(&p.id()).unwrap().unwrap().endorsers, 1);
        assert_eq!(gossiped.try_recv().unwrap(), e.wire().to_vec());
        assert!(store.waiting().unwrap() <= 100);
    }

    #[test]
    fn orphans_expire_and_the_peer_that_sent_them_is_penalised_not_an_honest_one() {
        let store = Store::temporary().unwrap();
        let (penalties, mut charged) = tokio::sync::mpsc::channel(16);
        let run = start_with(
            &store,
            IngestConfig {
                waiting: Limits {
                    ttl: Duration::from_millis(200),
                    ..Limits::default()
                },
                penalties: Some(penalties),
                ..IngestConfig::default()
            },
        );
        let flood: Vec<Vec<u8>> = (0..PENALTY_EVERY + 20).map(orphan).collect();
        let out = run.from(peer(1), flood);
        assert_eq!(waited(&out), (PENALTY_EVERY + 20) as usize);
        // An honest peer's out-of-order record resolves.
        let p = petition(9, 0, 1, None, None);
        let e = endorse(10, T0 + 5, &p, None);
        run.from(peer(2), vec![e.wire().to_vec()]);
        run.from(peer(2), vec![p.wire().to_vec()]);
        std::thread::sleep(Duration::from_millis(300));
        // Nothing arrives: the node's tick drops what waited too long.
        run.rt.block_on(run.ing.tick()).unwrap();
        assert_eq!(store.waiting().unwrap(), 0);
        assert_eq!(charged.try_recv().unwrap(), (vec![1; 38], 1));
        assert!(
            charged.try_recv().is_err(),
            "the honest peer is not charged"
        );
        // Gone from the store for good: a restart does not bring them back.
        assert!(store.waiting_ids().unwrap().is_empty());
    }
}
