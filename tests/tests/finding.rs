//! Issue 20 on real processes: short ids and names standing for ids and keys, `chorus
//! mine`, records signed elsewhere taken in (`chorus import`, `POST /v1/records`), a
//! petition fetched from peers when the node lacks it, `follow` catching up at once, and
//! the small things a new user met.

use chorus_e2e::cli::{
    campaign, eventually, fails, json_of, now_ms, ok, open_petition, start, stderr, stdout, FLAGS,
    PRODUCER, START, TRAVEL,
};
use chorus_e2e::{chorus, DataDir, NodeProcess};
use chorus_protocol::{cbor, Body, Petition, PetitionVariant, RecordBuilder, SigningKey};

/// A petition aimed at [`PRODUCER`], signed by a key no node holds.
fn petition_signed_elsewhere(title: &str) -> chorus_protocol::SignedRecord {
    let producer: chorus_protocol::AuthorKey = PRODUCER.parse().unwrap();
    RecordBuilder::new(Body::Petition(Petition {
        producer,
        product: None,
        group: None,
        title: title.into(),
        text: "Signed on a phone".into(),
        threshold: 2,
        deadline: None,
        variant: PetitionVariant::Demand,
    }))
    .created_at(now_ms() - 1_000)
    .sign(&SigningKey::from_bytes(&[42; 32]))
    .unwrap()
}

#[test]
fn records_signed_elsewhere_are_imported_gossiped_and_forgeries_are_refused_and_stored_nowhere() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (b, _) = start(&db, Some(&addr));
    ok(&db, &["follow", "--producer", PRODUCER]);

    let good = petition_signed_elsewhere("Repairable kettles");
    let other = petition_signed_elsewhere("Longer warranty");
    let file = da.path().join("records.cbor");
    std::fs::write(&file, [good.wire(), other.wire()].concat()).unwrap();
    let file_s = file.to_str().unwrap();
    let out = ok(&da, &["import", file_s]);
    assert!(out.contains("2 stored"), "{out}");
    // Again: nothing new.
    let v = json_of(&da, &["import", file_s]);
    assert_eq!(
        (v["stored"].as_u64(), v["duplicate"].as_u64()),
        (Some(0), Some(2)),
        "{v}"
    );
    assert_eq!(v["results"][0]["id"], good.id().to_string());
    // Gossiped: it reaches B, which never saw the key that signed it (B's list is read
    // from its own store: nothing there asks a peer).
    let id = good.id().to_string();
    eventually("the imported petition reaches B", TRAVEL, || {
        let list = json_of(&db, &["petitions", "--producer", PRODUCER]);
        list.to_string().contains(&id).then_some(())
    });
    let t = json_of(&db, &["tally", &id]);
    assert_eq!(t["title"], "Repairable kettles", "{t}");

    // A forged signature: refused with its code, exit 1, stored on neither node.
    let mut forged = petition_signed_elsewhere("Forged").wire().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let (range, _) = cbor::split_wire(&forged).unwrap();
    let forged_id = chorus_protocol::RecordId::of(&forged[range]).to_string();
    // A well-framed record whose bytes are not a record.
    let garbage = cbor::encode_wire(b"not a record", &[7; 64]);
    let bad = da.path().join("bad.cbor");
    std::fs::write(&bad, [forged.as_slice(), garbage.as_slice()].concat()).unwrap();
    let out = chorus(&da, &["import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&forged_id) && text.contains("invalid-signature"),
        "{text}"
    );
    assert!(
        text.contains("record 2") && text.contains("malformed"),
        "{text}"
    );
    assert!(
        text.contains("0 stored") && text.contains("2 refused"),
        "{text}"
    );
    for d in [&da, &db] {
        let err = fails(d, &["show", &forged_id]);
        assert!(
            err.contains("no record") || err.contains("not_found"),
            "{err}"
        );
    }
    // Bytes that are not wire records at all: refused before anything is sent.
    let junk = da.path().join("junk.bin");
    std::fs::write(&junk, b"hello").unwrap();
    let err = fails(&da, &["import", junk.to_str().unwrap()]);
    assert!(err.contains("wire form"), "{err}");

    for n in [b, a] {
        assert_eq!(n.terminate(), Some(0));
    }
}

#[test]
fn amounts_take_a_decimal_comma_and_tallies_say_the_variant_and_an_update() {
    let dir = DataDir::new();
    let (mut node, _) = start(&dir, None);
    // Logs that go to a pipe carry no colour codes.
    let line = node.wait_for("INFO", START);
    assert!(!line.contains('\u{1b}'), "{line:?}");
    // A space before the currency.
    let id = campaign(&dir, "30 EUR", None);
    let first = chorus(&dir, &["endorse", &id, "--pledge", "5,00EUR"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!stderr(&first).contains("updates"), "{}", stderr(&first));
    let again = chorus(&dir, &["endorse", &id, "--pledge", "7.50 EUR"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let earlier = stdout(&first).trim().to_string();
    assert!(
        stderr(&again).contains(&format!(
            "updates your earlier endorsement {}",
            &earlier[..12]
        )),
        "{}",
        stderr(&again)
    );
    let t = ok(&dir, &["tally", &id]);
    assert!(t.contains("variant   campaign"), "{t}");
    assert!(t.contains("pledged   7.50EUR"), "{t}");
    let list = ok(&dir, &["petitions"]);
    assert!(list.contains("[campaign] Fund the mould"), "{list}");
    assert_eq!(node.terminate(), Some(0));
}

#[test]
fn short_ids_and_names_stand_for_ids_and_keys_and_mine_lists_what_was_signed() {
    let (dp, dc, dx) = (DataDir::new(), DataDir::new(), DataDir::new());
    let (p, addr) = start(&dp, None);
    let (c, _) = start(&dc, Some(&addr));
    let producer = ok(&dp, &["id"]);
    ok(
        &dp,
        &["profile", "--name", "Café Ledito", "--role", "producer"],
    );
    // The consumer names the producer by its profile's name, case and accents aside, once
    // the profile (on the meta topic every node keeps) has reached it.
    eventually(
        "the producer's profile reaches the consumer",
        TRAVEL,
        || {
            let _ = chorus(&dc, &["sync"]);
            chorus(&dc, &["follow", "--producer", "CAFE LEDITO"])
                .status
                .success()
                .then_some(())
        },
    );
    let follows = json_of(&dc, &["follow"]);
    assert!(
        follows["producers"].to_string().contains(&producer),
        "{follows}"
    );
    let id = ok(
        &dc,
        &[
            "petition",
            "open",
            "--producer",
            &producer[..10],
            "--title",
            "Refill packs",
            "--text",
            "Sell refills",
            "--threshold",
            "2",
        ],
    );
    // Endorse and show by an 8-digit prefix.
    let endorsement = ok(&dc, &["endorse", &id[..8]]);
    let shown = json_of(&dc, &["show", &endorsement[..8]]);
    assert_eq!(shown["body"]["petition"], id.as_str(), "{shown}");
    assert_eq!(json_of(&dc, &["tally", &id[..9]])["endorsers"], 1);
    // A first watch of the petition replays its whole history, made before any watch.
    let history = ok(&dc, &["watch", "--no-follow", "--petition", &id[..8]]);
    assert!(
        history.contains(&id[..12]) && history.contains(&endorsement[..12]),
        "{history}"
    );
    assert_eq!(
        ok(&dc, &["watch", "--no-follow", "--petition", &id[..8]]),
        ""
    );
    // Too short, or not hex: refused before anything is asked.
    let err = fails(&dc, &["show", &id[..7]]);
    assert!(err.contains("at least its first 8"), "{err}");
    // A prefix nothing has: said so.
    let none = if id.starts_with("00000000") {
        "ffffffff"
    } else {
        "00000000"
    };
    let err = fails(&dc, &["show", none]);
    assert!(err.contains("no record"), "{err}");

    // Two profiles with one name: to a node that keeps neither, the name is ambiguous, and
    // both candidates, found on its peers, are listed.
    let (x, x_addr) = start(&dx, Some(&addr));
    let other = ok(&dx, &["id"]);
    ok(
        &dx,
        &["profile", "--name", "cafe ledito", "--role", "producer"],
    );
    let dy = DataDir::new();
    let mut flags = FLAGS.to_vec();
    flags.extend(["--bootstrap", &addr, "--bootstrap", &x_addr]);
    let mut y = NodeProcess::start(&dy, &flags);
    y.wait_for("api      http://127.0.0.1:", START);
    let err = eventually("both profiles are found by name", TRAVEL, || {
        let out = chorus(&dy, &["follow", "--producer", "Café Ledito"]);
        let err = stderr(&out);
        (!out.status.success() && err.contains(&other[..12]) && err.contains(&producer[..12]))
            .then_some(err)
    });
    assert!(err.contains("could be any of"), "{err}");
    // The consumer keeps the profile of the producer it follows, not the namesake's: to it,
    // the name still stands for the producer it follows.
    let follows = json_of(&dc, &["follow", "--producer", "Café Ledito"]);
    assert!(
        follows["producers"].to_string().contains(&producer)
            && !follows["producers"].to_string().contains(&other),
        "{follows}"
    );
    assert_eq!(y.terminate(), Some(0));

    // What the consumer signed: the petition and the endorsement, with where they stand.
    let mine = ok(&dc, &["mine"]);
    let lines: Vec<&str> = mine.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&id[..12]) && l.contains("1 of 2 endorsers, open")),
        "{mine}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&endorsement[..12]) && l.ends_with("— counts")),
        "{mine}"
    );
    let again = ok(&dc, &["endorse", &id[..8]]);
    let mine = json_of(&dc, &["mine"]);
    let states: Vec<(String, String)> = mine["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_string(),
                r["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&(endorsement.clone(), format!("replaced by {again}"))),
        "{states:?}"
    );
    assert!(
        states.contains(&(again, "counts".to_string())),
        "{states:?}"
    );
    for n in [x, c, p] {
        assert_eq!(n.terminate(), Some(0));
    }
}

#[test]
fn follow_catches_up_at_once_and_sync_reports_in_words() {
    let (dp, dc) = (DataDir::new(), DataDir::new());
    let (p, addr) = start(&dp, None);
    let producer = ok(&dp, &["id"]);
    let mut reviews = Vec::new();
    for (product, rating) in [("kettle", "4"), ("toaster", "2")] {
        reviews.push(ok(
            &dp,
            &[
                "review", &producer, product, "--rating", rating, "--text", "Fine",
            ],
        ));
    }
    ok(
        &dp,
        &[
            "respond",
            &reviews[1],
            "--status",
            "acknowledged",
            "--text",
            "Fixed in the next batch",
        ],
    );
    let (c, _) = start(&dc, Some(&addr));
    // The consumer is connected; following pulls the producer's topic before it returns,
    // with no `chorus sync`.
    eventually("the consumer is connected", TRAVEL, || {
        (json_of(&dc, &["status"])["peers"].as_u64() > Some(0)).then_some(())
    });
    let out = chorus(&dc, &["follow", "--producer", &producer]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("caught up from 1 peer"),
        "{}",
        stderr(&out)
    );
    let r = json_of(&dc, &["rating", &producer, "kettle"]);
    assert_eq!(r["count"], 1, "{r}");
    // The producer's answer shows under the review it answers.
    let listed = ok(&dc, &["reviews", &producer, "toaster"]);
    assert!(
        listed.contains("the producer answered: acknowledged: Fixed in the next batch"),
        "{listed}"
    );
    let v = json_of(&dc, &["reviews", &producer, "toaster"]);
    assert_eq!(
        v["reviews"][0]["response"]["text"], "Fixed in the next batch",
        "{v}"
    );
    let words = ok(&dc, &["sync"]);
    assert!(
        words.contains("from peer ") && words.contains("nothing missing here"),
        "{words}"
    );
    for n in [c, p] {
        assert_eq!(n.terminate(), Some(0));
    }
}

#[test]
fn a_petition_the_node_does_not_follow_is_fetched_when_endorsed_by_its_id() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let id = open_petition(&da, PRODUCER, "Spare parts", 2);
    // B follows nothing and never saw the petition: a friend sent its id.
    let (b, _) = start(&db, Some(&addr));
    eventually("B is connected", TRAVEL, || {
        (json_of(&db, &["status"])["peers"].as_u64() > Some(0)).then_some(())
    });
    let follows = json_of(&db, &["follow"]);
    assert!(
        !follows["producers"].to_string().contains(PRODUCER),
        "{follows}"
    );
    let out = chorus(&db, &["endorse", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let follows = json_of(&db, &["follow"]);
    assert!(
        follows["producers"].to_string().contains(PRODUCER),
        "{follows}"
    );
    assert_eq!(json_of(&db, &["tally", &id])["endorsers"], 1);
    eventually("B's endorsement reaches A", TRAVEL, || {
        (json_of(&da, &["tally", &id])["endorsers"] == 1).then_some(())
    });
    // An id no peer has: said so.
    let err = fails(&db, &["show", &"ab".repeat(32)]);
    assert!(err.contains("no connected peer has it"), "{err}");
    for n in [b, a] {
        assert_eq!(n.terminate(), Some(0));
    }
}

#[test]
fn a_fresh_node_finds_a_producer_by_an_accented_name_and_endorses_its_petition_by_a_prefix() {
    let (dx, dp, dc, df) = (
        DataDir::new(),
        DataDir::new(),
        DataDir::new(),
        DataDir::new(),
    );
    // An archive that keeps everything, a producer, a consumer who opens a petition.
    let (x, addr) = start(&dx, None);
    ok(&dx, &["follow", "--all"]);
    let (p, _) = start(&dp, Some(&addr));
    let producer = ok(&dp, &["id"]);
    ok(
        &dp,
        &["profile", "--name", "Café Ledito", "--role", "producer"],
    );
    let (c, _) = start(&dc, Some(&addr));
    let petition = open_petition(&dc, &producer, "Repairable kettles", 2);
    eventually("the archive holds the petition", TRAVEL, || {
        let t = chorus(&dx, &["tally", &petition]);
        t.status.success().then_some(())
    });

    // A fresh node that follows nothing.
    let (f, _) = start(&df, Some(&addr));
    // "cafe" finds "Café Ledito": the archive answers while this node may not hold the
    // profile yet.
    let found = eventually("find cafe", TRAVEL, || {
        let v = json_of(&df, &["find", "cafe"]);
        let hit = v["results"]
            .as_array()?
            .iter()
            .find(|r| r["kind"] == "producer")?
            .clone();
        Some((v, hit))
    });
    let (v, hit) = found;
    assert_eq!(hit["name"], "Café Ledito", "{v}");
    assert_eq!(hit["id"], producer.as_str(), "{v}");
    assert_eq!(hit["following"], false, "{v}");
    assert!(v["peers_answered"].as_u64() >= Some(1), "{v}");
    assert!(v["peers_complete"].as_u64() >= Some(1), "{v}");
    let text = ok(&df, &["find", "CAFÉ"]);
    assert!(
        text.contains("producer") && text.contains("Café Ledito") && text.contains(&producer[..12]),
        "{text}"
    );
    assert!(text.contains("chorus follow --producer"), "{text}");

    // The petition, by a word of its title: its producer by name, the count the archive
    // reported, not followed here.
    let v = json_of(&df, &["find", "kettles", "--kind", "petition"]);
    let hits = v["results"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{v}");
    assert_eq!(hits[0]["id"], petition.as_str(), "{v}");
    assert_eq!(hits[0]["producer_name"], "Café Ledito", "{v}");
    assert_eq!(hits[0]["count"], 0, "{v}");
    assert_eq!(hits[0]["here"], false, "{v}");
    let text = ok(&df, &["find", "kettles"]);
    assert!(
        text.contains("Repairable kettles")
            && text.contains("for Café Ledito")
            && text.contains("0 endorsers (as a peer counts)"),
        "{text}"
    );
    // Nothing is found for nonsense, and a query with no word is refused.
    assert!(ok(&df, &["find", "zzzyx"]).contains("nothing found"));
    let err = fails(&df, &["find", "--", "--"]);
    assert!(
        err.contains("bad_query") || err.contains("give a word"),
        "{err}"
    );

    // Endorsed by 8 digits of its id, never followed first: fetched, followed, counted.
    let out = chorus(&df, &["endorse", &petition[..8]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = json_of(&df, &["tally", &petition[..8]]);
    assert_eq!(t["endorsers"], 1, "{t}");
    assert_eq!(t["title"], "Repairable kettles", "{t}");
    let follows = json_of(&df, &["follow"]);
    assert!(
        follows["producers"].to_string().contains(&producer),
        "{follows}"
    );
    // The endorsement reaches the consumer who opened it.
    eventually(
        "the endorsement reaches the petition's author",
        TRAVEL,
        || {
            let t = json_of(&dc, &["tally", &petition]);
            (t["endorsers"] == 1).then_some(())
        },
    );
    // The directory: producers by name on the fresh node, the producer's products.
    let list = ok(&df, &["producers"]);
    assert!(list.contains("Café Ledito"), "{list}");
    let v = json_of(&df, &["petitions", "--sort", "endorsers"]);
    assert_eq!(v["petitions"][0]["id"], petition.as_str(), "{v}");

    for n in [f, c, p, x] {
        assert_eq!(n.terminate(), Some(0));
    }
}

#[test]
fn a_consumers_first_watch_replays_the_history_of_what_they_endorsed_then_only_what_is_new() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    // A petition with an endorsement, made before the consumer on B has heard of it.
    let petition = open_petition(&da, PRODUCER, "Spare parts for ten years", 5);
    let first = ok(&da, &["endorse", &petition]);
    let (b, _) = start(&db, Some(&addr));
    eventually("B is connected", TRAVEL, || {
        let s = json_of(&db, &["status"]);
        (s["peers"].as_u64()? > 0).then_some(())
    });
    let mine = ok(&db, &["endorse", &petition[..8]]);
    // B's first plain watch: what B takes part in, with its history (A's endorsement came
    // before B followed anything), then the count.
    let history = ok(&db, &["watch", "--no-follow"]);
    for (what, id) in [
        ("petition", &petition),
        ("A's endorsement", &first),
        ("mine", &mine),
    ] {
        assert!(history.contains(&id[..12]), "{what} missing: {history}");
    }
    assert!(history.contains("2/5"), "{history}");
    // Nothing twice.
    assert_eq!(ok(&db, &["watch", "--no-follow"]), "");
    // What happens next on that petition is told, and nothing else on the producer's topic.
    let other = open_petition(&da, PRODUCER, "Another matter", 5);
    let retraction = ok(&da, &["retract", &petition[..8]]);
    let next = eventually("the retraction reaches B's watch", TRAVEL, || {
        let out = ok(&db, &["watch", "--no-follow"]);
        out.contains(&retraction[..12]).then_some(out)
    });
    assert!(!next.contains(&other[..12]), "{next}");
    for n in [b, a] {
        assert_eq!(n.terminate(), Some(0));
    }
}
