//! Issue 19's rules on real processes: campaigns that are funded or fail, a pledge in a
//! foreign currency refused, and a withdrawn petition that no endorsement reopens — made
//! locally or arriving from another node.

use std::time::Duration;

use chorus_e2e::cli::{
    campaign, eventually, fails, json_of, now_ms, ok, open_petition, start, stdout, PRODUCER,
    START, TRAVEL,
};
use chorus_e2e::{chorus, DataDir, NodeProcess};
use serde_json::Value;

/// The tally of `petition` on `dir` once `ready` holds of it (asking the node to catch up
/// meanwhile).
fn tally_when(dir: &DataDir, petition: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(what, TRAVEL, || {
        let out = chorus(dir, &["tally", petition, "--json"]);
        if out.status.success() {
            let t: Value = serde_json::from_str(&stdout(&out)).expect("tally is JSON");
            if ready(&t) {
                return Some(t);
            }
        }
        let _ = chorus(dir, &["sync"]);
        None
    })
}

#[test]
fn a_campaign_is_funded_by_pledges_from_three_nodes_and_a_foreign_currency_is_refused() {
    let (da, db, dc) = (DataDir::new(), DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (b, _) = start(&db, Some(&addr));
    let (c, _) = start(&dc, Some(&addr));
    let id = campaign(&da, "30EUR", None);
    let mut watch = NodeProcess::spawn(&da, &["watch", "--petition", &id]);
    watch.wait_for("caught up", START);

    ok(&da, &["endorse", &id, "--pledge", "10EUR"]);
    for d in [&db, &dc] {
        ok(d, &["follow", "--producer", PRODUCER]);
        tally_when(d, &id, "the campaign reaches the backer's node", |_| true);
        // Dollars to a campaign in euros: refused, saying what to do.
        let err = fails(d, &["endorse", &id, "--pledge", "10USD"]);
        assert!(err.contains("EUR"), "{err}");
        ok(d, &["endorse", &id, "--pledge", "10EUR"]);
    }
    let t = tally_when(&da, &id, "three pledges reach A", |t| t["endorsers"] == 3);
    assert_eq!(t["pledged_total"], "30.00EUR", "{t}");
    assert_eq!(
        (&t["reached"], &t["funded"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{t}"
    );
    assert!(t["first_reached_at"].as_u64().is_some(), "{t}");
    assert!(t["outcome"].is_null(), "no deadline, no outcome: {t}");
    let line = watch.wait_for("FUNDED", TRAVEL);
    assert!(
        line.contains(&id[..12]) && line.contains("pledged 30.00EUR of 30EUR"),
        "{line}"
    );
    let human = ok(&da, &["tally", &id]);
    assert!(human.contains("pledged   30.00EUR — funded"), "{human}");

    // The bundle proves the total.
    let file = da.path().join("campaign.cbor");
    let file_s = file.to_str().unwrap();
    ok(&da, &["export", &id, "-o", file_s]);
    let v = json_of(&da, &["verify", file_s]);
    assert_eq!(v["pledged"], "30.00EUR", "{v}");
    assert_eq!(v["funded"], true, "{v}");
    assert_eq!(v["first_reached_at"], t["first_reached_at"], "{v} vs {t}");
    assert_eq!(v["state"], "open", "{v}");
    assert!(ok(&da, &["verify", file_s]).contains("pledged: 30.00EUR"));
    watch.kill();
    for n in [c, b, a] {
        assert_eq!(n.terminate(), Some(0));
    }
}

#[test]
fn a_campaign_that_misses_its_goal_fails_at_its_deadline() {
    let dir = DataDir::new();
    let (node, _) = start(&dir, None);
    let deadline = now_ms() + 6_000;
    let id = campaign(&dir, "3000EUR", Some(deadline));
    let mut watch = NodeProcess::spawn(&dir, &["watch", "--petition", &id]);
    watch.wait_for("caught up", START);
    ok(&dir, &["endorse", &id, "--pledge", "2000EUR"]);
    let t = json_of(&dir, &["tally", &id]);
    assert_eq!(t["reached"], false, "2000 of 3000 EUR: {t}");
    assert_eq!(t["state"], "open", "{t}");
    assert!(t["outcome"].is_null(), "{t}");

    let line = watch.wait_for("ENDED", Duration::from_secs(20));
    assert!(line.contains("failed: its pledges are void"), "{line}");
    assert!(now_ms() > deadline, "ended before its deadline");
    let t = json_of(&dir, &["tally", &id]);
    assert_eq!(t["outcome"], "failed", "{t}");
    assert_eq!(t["state"], "closed", "{t}");
    assert!(ok(&dir, &["tally", &id]).contains("pledges are void"));
    let err = fails(&dir, &["endorse", &id, "--pledge", "1000EUR"]);
    assert!(err.contains("past its deadline"), "{err}");
    watch.kill();
    assert_eq!(node.terminate(), Some(0));
}

#[test]
fn an_endorsement_made_after_a_withdrawal_is_refused_locally_and_not_counted_when_it_arrives() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (b, _) = start(&db, Some(&addr));
    let id = open_petition(&da, PRODUCER, "Spare parts", 2);
    ok(&db, &["follow", "--producer", PRODUCER]);
    tally_when(&db, &id, "the petition reaches B", |_| true);
    ok(&db, &["endorse", &id]);
    tally_when(&da, &id, "B's endorsement reaches A", |t| {
        t["endorsers"] == 1
    });

    // B goes offline; A withdraws; A's own node refuses an endorsement now.
    assert_eq!(b.terminate(), Some(0));
    ok(&da, &["retract", &id]);
    let err = fails(&da, &["endorse", &id]);
    assert!(err.contains("withdrawn"), "{err}");
    let t = json_of(&da, &["tally", &id]);
    assert_eq!(
        (&t["state"], &t["endorsers"]),
        (&Value::from("withdrawn"), &Value::from(1)),
        "{t}"
    );

    // B, alone, does not know: it takes back its endorsement and endorses again, both
    // after A's withdrawal, and counts itself meanwhile.
    let (b, _) = start(&db, None);
    ok(&db, &["retract", &id]);
    let late = ok(&db, &["endorse", &id]);
    assert_eq!(json_of(&db, &["tally", &id])["endorsers"], 1);
    assert_eq!(b.terminate(), Some(0));

    // Back together: the withdrawal reaches B, which uncounts what it had counted (its
    // records made after the withdrawal), so B's endorsement from before stands; B's late
    // records reach A, which does not count them.
    let (b, _) = start(&db, Some(&addr));
    let on_b = tally_when(&db, &id, "the withdrawal reaches B", |t| {
        t["withdrawn"] == true
    });
    assert_eq!(on_b["endorsers"], 1, "{on_b}");
    assert_eq!(on_b["state"], "withdrawn", "{on_b}");
    eventually("B's late endorsement reaches A", TRAVEL, || {
        let _ = chorus(&da, &["sync"]);
        chorus(&da, &["show", &late]).status.success().then_some(())
    });
    let on_a = json_of(&da, &["tally", &id]);
    assert_eq!(on_a["endorsers"], 1, "{on_a}");
    assert_eq!(on_a["withdrawn_at"], on_b["withdrawn_at"], "{on_a}");
    let err = fails(&db, &["endorse", &id]);
    assert!(err.contains("withdrawn"), "{err}");
    let audit = chorus(&da, &["audit", "--json"]);
    let v: Value = serde_json::from_str(stdout(&audit).trim()).unwrap();
    assert_eq!(v["errors"], 0, "{v}");

    // Each node's bundle carries the withdrawal and proves the same: one endorser, the
    // petition withdrawn at the same time, B's late records left out.
    let mut proofs = Vec::new();
    for dir in [&da, &db] {
        let file = dir.path().join("withdrawn.cbor");
        let file_s = file.to_str().unwrap();
        ok(dir, &["export", &id, "-o", file_s]);
        let v = json_of(dir, &["verify", file_s]);
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(
            (&v["count"], &v["state"]),
            (&Value::from(1), &Value::from("withdrawn")),
            "{v}"
        );
        assert_eq!(v["withdrawn_at"], on_a["withdrawn_at"], "{v}");
        assert!(ok(dir, &["verify", file_s]).contains("state: withdrawn by its author"));
        proofs.push((v["root"].clone(), v["first_reached_at"].clone()));
    }
    assert_eq!(proofs[0], proofs[1]);
    for n in [b, a] {
        assert_eq!(n.terminate(), Some(0));
    }
}

/// `chorus watch --no-follow` on `dir` until a line holds `needle`; every line it printed.
fn replay_until(dir: &DataDir, filter: &[&str], needle: &str) -> String {
    let mut seen = String::new();
    eventually(&format!("a watcher is told {needle}"), TRAVEL, || {
        let mut args = vec!["watch", "--no-follow"];
        args.extend_from_slice(filter);
        let out = ok(dir, &args);
        seen.push_str(&out);
        seen.push('\n');
        seen.contains(needle).then(|| seen.clone())
    })
}

#[test]
fn a_watcher_that_was_away_is_told_a_campaign_was_funded_and_ended_once_even_across_a_restart() {
    let da = DataDir::new();
    let (a, _) = start(&da, None);
    let deadline = now_ms() + 10_000;
    let id = campaign(&da, "30EUR", Some(deadline));
    let filter = ["--petition", id.as_str()];
    // The watcher looks once (its cursor is kept), then is away while the campaign is
    // funded.
    let first = ok(&da, &["watch", "--no-follow", "--petition", &id]);
    assert!(!first.contains("FUNDED"), "{first}");
    ok(&da, &["endorse", &id, "--pledge", "30EUR"]);
    let back = replay_until(&da, &filter, "FUNDED");
    assert!(back.contains("pledged 30.00EUR of 30EUR"), "{back}");
    assert!(!back.contains("ENDED"), "before the deadline: {back}");

    // The node is down when the deadline passes; at its next start it notes the end, and
    // the returning watcher is told, once.
    assert_eq!(a.terminate(), Some(0));
    while now_ms() <= deadline + 500 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (a, addr) = start(&da, None);
    let ended = replay_until(&da, &filter, "ENDED");
    let line = ended.lines().find(|l| l.contains("ENDED")).unwrap_or("");
    assert!(
        line.contains(&id[..12]) && line.contains("(funded)"),
        "{ended}"
    );
    assert_eq!(ended.matches("ENDED").count(), 1, "{ended}");
    assert!(
        !ended.contains("FUNDED"),
        "told of the funding again: {ended}"
    );
    let again = ok(&da, &["watch", "--no-follow", "--petition", &id]);
    assert!(!again.contains("ENDED"), "told of the end twice: {again}");
    let events = ok(&da, &["--json", "watch", "--no-follow", "--petition", &id]);
    assert!(!events.contains("\"ended\""), "{events}");

    // A node that first hears of the campaign after its deadline tells its watcher that
    // it ended, with the outcome its records give.
    let db = DataDir::new();
    let (b, _) = start(&db, Some(&addr));
    let quiet = ok(&db, &["watch", "--no-follow", "--producer", PRODUCER]);
    assert!(!quiet.contains("ENDED"), "{quiet}");
    ok(&db, &["follow", "--producer", PRODUCER]);
    tally_when(&db, &id, "the ended campaign and its pledge reach B", |t| {
        t["endorsers"] == 1
    });
    let on_b = replay_until(&db, &["--producer", PRODUCER], "ENDED");
    assert!(on_b.contains(&id[..12]), "{on_b}");
    let t = json_of(&db, &["tally", &id]);
    assert_eq!(
        (&t["outcome"], &t["state"]),
        (&Value::from("funded"), &Value::from("closed")),
        "{t}"
    );
    for n in [b, a] {
        assert_eq!(n.terminate(), Some(0));
    }
}
