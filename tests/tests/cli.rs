//! The `chorus` CLI end to end: real `chorus node` processes on loopback, the real `chorus`
//! binary against them, every user command, bad arguments and the `--json` shapes.

use std::process::Command;
use std::time::{Duration, Instant};

use chorus_e2e::cli::{
    eventually, fails, json_of, ok, start, stderr, stdout, FLAGS, PRODUCER, START, TRAVEL,
};
use chorus_e2e::{chorus, chorus_bin, DataDir, NodeProcess};
use serde_json::{json, Value};

/// Another one.
const OTHER: &str = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";

fn is_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks the answer of a record-creating command with `--json`; returns the new id.
fn created(v: &Value, kind: &str, author: &str) -> String {
    let id = v["id"].as_str().unwrap_or_else(|| panic!("no id: {v}"));
    assert!(is_id(id), "{v}");
    assert_eq!(v["kind"], kind, "{v}");
    assert_eq!(v["outcome"], "stored", "{v}");
    assert_eq!(v["record"]["id"], id, "{v}");
    assert_eq!(v["record"]["kind"], kind, "{v}");
    assert_eq!(v["record"]["author"], author, "{v}");
    id.to_string()
}

/// Runs a record-creating command without `--json`: it prints the id alone.
fn new_id(dir: &DataDir, args: &[&str]) -> String {
    let id = ok(dir, args);
    assert!(is_id(&id), "chorus {args:?} printed {id:?}");
    id
}

fn records(dir: &DataDir) -> u64 {
    json_of(dir, &["status"])["records"]
        .as_u64()
        .expect("status has records")
}

/// A petition's tally on `dir`, or None (after asking the node to catch up) while the node
/// does not know it.
fn tally_or_sync(dir: &DataDir, petition: &str) -> Option<Value> {
    let out = chorus(dir, &["tally", petition, "--json"]);
    if out.status.success() {
        return Some(serde_json::from_str(&stdout(&out)).expect("tally is JSON"));
    }
    let _ = chorus(dir, &["sync"]);
    None
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} array: {list}"))
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn commands_without_a_running_node_say_so_and_write_nothing() {
    let dir = DataDir::new();
    for args in [
        vec!["status"],
        vec!["peers"],
        vec!["follow"],
        vec!["follow", "--producer", PRODUCER],
        vec![
            "review", PRODUCER, "soap-1", "--rating", "4", "--text", "ok",
        ],
        vec!["petitions", "--json"],
        vec!["tally", PRODUCER],
    ] {
        let err = fails(&dir, &args);
        assert!(err.contains("no node is running"), "{args:?}: {err}");
    }
    assert!(!dir.path().exists(), "nothing written");
}

#[test]
fn id_status_and_peers_of_a_running_node() {
    let dir = DataDir::new();
    let (node, _) = start(&dir, None);

    let me = ok(&dir, &["id"]);
    assert!(is_id(&me), "{me}");
    assert_eq!(json_of(&dir, &["id"]), json!({ "author": me }));

    let s = json_of(&dir, &["status"]);
    let peer_id = s["peer_id"].as_str().expect("peer_id").to_string();
    assert!(peer_id.starts_with("12D3KooW"), "{s}");
    assert_eq!(s["author"], me.as_str());
    let addrs = s["listen_addrs"].as_array().expect("listen_addrs");
    assert!(!addrs.is_empty(), "{s}");
    for a in addrs {
        let a = a.as_str().expect("an address is a string");
        assert!(a.starts_with("/ip4/127.0.0.1/tcp/"), "{a}");
        assert!(a.ends_with(&format!("/p2p/{peer_id}")), "{a}");
    }
    assert_eq!(s["peers"], 0);
    assert_eq!(s["records"], 0);

    // Global flags go before or after the subcommand.
    let before: Value = serde_json::from_str(&ok(&dir, &["--json", "status"])).unwrap();
    assert_eq!(before["peer_id"], s["peer_id"]);
    let after = Command::new(chorus_bin())
        .args(["status", "--json", "--data-dir"])
        .arg(dir.path())
        .env_remove("CHORUS_DATA_DIR")
        .output()
        .unwrap();
    assert!(after.status.success(), "{}", stderr(&after));
    let after: Value = serde_json::from_str(&stdout(&after)).unwrap();
    assert_eq!(after["peer_id"], s["peer_id"]);

    let human = ok(&dir, &["status"]);
    assert!(human.contains(&format!("peer id  {peer_id}")), "{human}");
    assert!(human.contains(&format!("author   {me}")), "{human}");
    assert!(human.contains("peers    0"), "{human}");

    assert_eq!(ok(&dir, &["peers"]), "", "no peers yet");
    assert_eq!(json_of(&dir, &["peers"])["peers"], json!([]));

    assert_eq!(node.terminate(), Some(0));
    let err = fails(&dir, &["peers"]);
    assert!(err.contains("no node is running"), "{err}");
}

#[test]
fn follow_shows_adds_removes_and_survives_a_restart() {
    let dir = DataDir::new();
    let (node, _) = start(&dir, None);
    let me = ok(&dir, &["id"]);

    // A node always follows its own key's topic.
    let f = json_of(&dir, &["follow"]);
    assert_eq!(
        f,
        json!({ "all": false, "producers": [me], "groups": [], "products": [] })
    );
    assert_eq!(ok(&dir, &["follow"]), format!("producer {me}"));

    let f = json_of(&dir, &["follow", "--producer", PRODUCER]);
    let mut producers = vec![me.clone(), PRODUCER.to_string()];
    producers.sort();
    assert_eq!(f["producers"], json!(producers), "{f}");
    let product = format!("{OTHER}/soap-1");
    let f = json_of(&dir, &["follow", "--product", &product]);
    assert_eq!(f["products"], json!([product]), "{f}");
    let group = "1".repeat(64);
    let f = json_of(&dir, &["follow", "--group", &group]);
    assert_eq!(f["groups"], json!([group]), "{f}");
    let human = ok(&dir, &["follow"]);
    assert!(human.contains(&format!("producer {PRODUCER}")), "{human}");
    assert!(human.contains(&format!("product  {product}")), "{human}");
    assert!(human.contains(&format!("group    {group}")), "{human}");

    let f = json_of(&dir, &["unfollow", "--product", &product]);
    assert_eq!(f["products"], json!([]), "{f}");
    let f = json_of(&dir, &["unfollow", "--group", &group]);
    assert_eq!(f["groups"], json!([]), "{f}");
    let shown = ok(&dir, &["unfollow", "--producer", PRODUCER]);
    assert!(!shown.contains(PRODUCER), "{shown}");
    assert_eq!(json_of(&dir, &["follow"])["producers"], json!([me]));

    // Remembered across restarts, in follow.json.
    json_of(&dir, &["follow", "--producer", PRODUCER]);
    assert!(dir.path().join("follow.json").exists());
    assert_eq!(node.terminate(), Some(0));
    let (node, _) = start(&dir, None);
    let f = json_of(&dir, &["follow"]);
    assert_eq!(f["producers"], json!(producers), "after a restart: {f}");
    assert_eq!(node.terminate(), Some(0));
}

#[test]
fn profile_reviews_and_rating() {
    let dir = DataDir::new();
    let (node, _) = start(&dir, None);
    let me = ok(&dir, &["id"]);

    let p = json_of(
        &dir,
        &[
            "profile",
            "--name",
            "Alice",
            "--role",
            "consumer",
            "--about",
            "I buy soap",
        ],
    );
    created(&p, "profile", &me);
    assert_eq!(
        p["record"]["body"],
        json!({ "name": "Alice", "role": "consumer", "about": "I buy soap" })
    );
    new_id(&dir, &["profile", "--name", "Alice", "--role", "watchdog"]);
    new_id(&dir, &["profile", "--name", "Alice", "--role", "producer"]);

    let first = new_id(
        &dir,
        &[
            "review",
            PRODUCER,
            "soap-1",
            "--rating",
            "2",
            "--text",
            "Dries the skin",
        ],
    );
    // A second review by the same author replaces the first in the rating.
    let v = json_of(
        &dir,
        &[
            "review",
            PRODUCER,
            "soap-1",
            "--rating",
            "5",
            "--title",
            "Better now",
            "--text",
            "The new formula is fine",
        ],
    );
    let second = created(&v, "review", &me);
    assert_eq!(v["record"]["body"]["rating"], 5);
    assert_eq!(v["record"]["body"]["title"], "Better now");
    assert_eq!(
        v["record"]["body"]["product"],
        json!({ "producer": PRODUCER, "code": "soap-1" })
    );
    let other = new_id(
        &dir,
        &[
            "review", PRODUCER, "soap-2", "--rating", "3", "--text", "So so",
        ],
    );

    let r = json_of(&dir, &["reviews", PRODUCER, "soap-1"]);
    assert_eq!(
        ids(&r, "reviews"),
        vec![first.clone(), second.clone()],
        "{r}"
    );
    assert!(r["next"].is_null(), "{r}");
    assert_eq!(r["reviews"][0]["counted"], false, "{r}");
    assert_eq!(r["reviews"][0]["body"]["rating"], 2, "{r}");
    assert_eq!(r["reviews"][0]["body"]["text"], "Dries the skin", "{r}");
    assert_eq!(r["reviews"][1]["counted"], true, "{r}");
    assert_eq!(r["reviews"][1]["body"]["rating"], 5, "{r}");
    // Not trimmed: the first column marks the counted review.
    let human = stdout(&chorus(&dir, &["reviews", PRODUCER, "soap-1"]));
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), 2, "{human}");
    assert!(
        lines[0].starts_with("  2/5") && lines[0].contains(&first[..12]),
        "{human}"
    );
    assert!(
        lines[1].starts_with("* 5/5") && lines[1].contains(&second[..12]),
        "{human}"
    );
    assert!(
        lines[1].ends_with("Better now: The new formula is fine"),
        "{human}"
    );

    let rating = json_of(&dir, &["rating", PRODUCER, "soap-1"]);
    assert_eq!(rating["count"], 1, "{rating}");
    assert_eq!(rating["mean"].as_f64(), Some(5.0), "{rating}");
    assert_eq!(rating["histogram"], json!([0, 0, 0, 0, 1]), "{rating}");
    assert_eq!(
        ok(&dir, &["rating", PRODUCER, "soap-2"]),
        "3.00 from 1 reviews  [1:0 2:0 3:1 4:0 5:0]"
    );
    let none = json_of(&dir, &["rating", OTHER, "soap-1"]);
    assert_eq!(none["count"], 0, "{none}");
    assert_eq!(none["histogram"], json!([0, 0, 0, 0, 0]), "{none}");
    assert_eq!(
        json_of(&dir, &["reviews", OTHER, "soap-1"])["reviews"],
        json!([])
    );

    // Retracting a review takes it out of the rating.
    let ret = json_of(&dir, &["retract", &other]);
    let retraction = created(&ret, "retraction", &me);
    assert_eq!(ret["record"]["body"]["target"], other.as_str());
    assert_eq!(json_of(&dir, &["rating", PRODUCER, "soap-2"])["count"], 0);
    let r = json_of(&dir, &["reviews", PRODUCER, "soap-2"]);
    assert_eq!(r["reviews"][0]["counted"], false, "{r}");
    let err = fails(&dir, &["retract", &retraction]);
    assert!(err.contains("cannot be retracted"), "{err}");

    let shown = json_of(&dir, &["show", &second]);
    assert_eq!(shown, v["record"], "show gives the stored record");
    assert_eq!(records(&dir), 7);
    assert_eq!(node.terminate(), Some(0));
}

#[test]
fn petitions_endorsements_retractions_and_tallies_on_one_node() {
    let dir = DataDir::new();
    let (node, _) = start(&dir, None);
    let me = ok(&dir, &["id"]);
    let group = new_id(
        &dir,
        &[
            "group",
            "create",
            "Soap lovers",
            "--charter",
            "Less plastic",
        ],
    );

    let demand = new_id(
        &dir,
        &[
            "petition",
            "open",
            "--producer",
            PRODUCER,
            "--product",
            "soap-1",
            "--group",
            &group,
            "--title",
            "Refill stations",
            "--text",
            "Sell refills in every shop",
            "--threshold",
            "2",
            "--deadline",
            "2099-12-31",
        ],
    );
    let t = json_of(&dir, &["tally", &demand]);
    assert_eq!(t["id"], demand.as_str(), "{t}");
    assert_eq!(t["title"], "Refill stations", "{t}");
    assert_eq!(t["variant"], "demand", "{t}");
    assert_eq!(t["producer"], PRODUCER, "{t}");
    assert_eq!(t["product"], "soap-1", "{t}");
    assert_eq!(t["group"], group.as_str(), "{t}");
    assert_eq!(t["threshold"], 2, "{t}");
    assert_eq!(t["endorsers"], 0, "{t}");
    assert_eq!(t["reached"], false, "{t}");
    assert_eq!(t["open"], true, "{t}");
    assert_eq!(t["withdrawn"], false, "{t}");
    assert_eq!(t["pledged"], json!({}), "{t}");
    assert!(t["response"].is_null(), "{t}");
    assert!(t["goal"].is_null(), "{t}");
    // 2099-12-31, end of day UTC.
    assert_eq!(t["deadline"], 4_102_444_799_999u64, "{t}");
    assert_eq!(
        serde_json::from_str::<Value>(&ok(&dir, &["--json", "tally", &demand])).unwrap()["id"],
        t["id"],
        "--json before the subcommand"
    );

    let shown = json_of(&dir, &["show", &demand]);
    assert_eq!(shown["kind"], "petition", "{shown}");
    assert_eq!(shown["author"], me.as_str(), "{shown}");
    assert_eq!(shown["topic"], format!("producer/{PRODUCER}"), "{shown}");
    assert_eq!(shown["body"]["title"], "Refill stations", "{shown}");
    assert_eq!(
        shown["body"]["text"], "Sell refills in every shop",
        "{shown}"
    );
    let pretty: Value = serde_json::from_str(&ok(&dir, &["show", &demand])).unwrap();
    assert_eq!(pretty, shown);

    // Endorsing twice updates the endorsement: it counts once.
    let e = json_of(&dir, &["endorse", &demand, "--comment", "Yes please"]);
    let first = created(&e, "endorsement", &me);
    assert_eq!(
        e["record"]["body"],
        json!({ "petition": demand, "comment": "Yes please" })
    );
    let second = new_id(&dir, &["endorse", &demand, "--comment", "Still yes"]);
    assert_ne!(first, second);
    let t = json_of(&dir, &["tally", &demand]);
    assert_eq!(t["endorsers"], 1, "endorsing twice counts once: {t}");
    assert_eq!(t["member_endorsers"], 1, "the founder is a member: {t}");
    assert_eq!(t["reached"], false, "{t}");

    let proposal = new_id(
        &dir,
        &[
            "petition",
            "open",
            "--producer",
            PRODUCER,
            "--title",
            "A bigger bar",
            "--text",
            "200 g",
            "--threshold",
            "10",
            "--proposal",
        ],
    );
    let campaign = new_id(
        &dir,
        &[
            "petition",
            "open",
            "--producer",
            PRODUCER,
            "--title",
            "Fund a plastic-free line",
            "--text",
            "We pledge",
            "--threshold",
            "1",
            "--campaign",
            "--goal",
            "3000EUR",
        ],
    );
    let elsewhere = new_id(
        &dir,
        &[
            "petition",
            "open",
            "--producer",
            OTHER,
            "--title",
            "Elsewhere",
            "--text",
            "x",
            "--threshold",
            "1",
        ],
    );
    assert_eq!(json_of(&dir, &["tally", &proposal])["variant"], "proposal");

    new_id(&dir, &["endorse", &campaign, "--pledge", "50EUR"]);
    new_id(
        &dir,
        &[
            "endorse",
            &campaign,
            "--pledge",
            "70EUR",
            "--comment",
            "more",
        ],
    );
    let t = json_of(&dir, &["tally", &campaign]);
    assert_eq!(t["variant"], "campaign", "{t}");
    assert_eq!(t["goal"], "3000EUR", "{t}");
    assert_eq!(t["endorsers"], 1, "{t}");
    assert_eq!(
        t["pledged"],
        json!({ "EUR": "70.00" }),
        "the latest pledge only: {t}"
    );
    // One backer meets the threshold of 1, but 70 of 3000 EUR is not the goal.
    assert_eq!(t["reached"], false, "{t}");
    assert_eq!(t["funded"], false, "{t}");
    assert_eq!(t["pledged_total"], "70.00EUR", "{t}");
    assert!(t["first_reached_at"].is_null(), "{t}");
    assert_eq!(t["state"], "open", "{t}");
    let human = ok(&dir, &["tally", &campaign]);
    assert!(human.contains("goal      3000EUR"), "{human}");
    assert!(human.contains("pledged   70.00EUR"), "{human}");
    assert!(human.contains("response  none yet"), "{human}");

    // Lists and filters.
    let all = json_of(&dir, &["petitions"]);
    let mut listed = ids(&all, "petitions");
    listed.sort();
    let mut expected = vec![
        demand.clone(),
        proposal.clone(),
        campaign.clone(),
        elsewhere.clone(),
    ];
    expected.sort();
    assert_eq!(listed, expected, "{all}");
    let mut to_producer = ids(
        &json_of(&dir, &["petitions", "--producer", PRODUCER]),
        "petitions",
    );
    to_producer.sort();
    expected.retain(|p| p != &elsewhere);
    assert_eq!(to_producer, expected);
    assert_eq!(
        ids(
            &json_of(&dir, &["petitions", "--producer", OTHER]),
            "petitions"
        ),
        vec![elsewhere.clone()]
    );
    let of_group = json_of(&dir, &["petitions", "--group", &group]);
    assert_eq!(ids(&of_group, "petitions"), vec![demand.clone()]);
    assert_eq!(of_group["petitions"][0]["endorsers"], 1);
    let human = ok(&dir, &["petitions", "--group", &group]);
    // Text output shows 12-digit short ids.
    assert!(
        human.starts_with(&format!("{}  ", &demand[..12])),
        "{human}"
    );
    assert!(human.contains("Refill stations"), "{human}");
    assert_eq!(human.lines().count(), 1, "{human}");

    // Retract on a petition I endorse takes back my endorsement (the latest one)...
    let r = json_of(&dir, &["retract", &demand]);
    created(&r, "retraction", &me);
    assert_eq!(r["record"]["body"]["target"], second.as_str(), "{r}");
    let t = json_of(&dir, &["tally", &demand]);
    assert_eq!(t["endorsers"], 0, "{t}");
    assert_eq!(t["withdrawn"], false, "{t}");
    // ... and again withdraws my own petition.
    let r = json_of(&dir, &["retract", &demand]);
    assert_eq!(r["record"]["body"]["target"], demand.as_str(), "{r}");
    let t = json_of(&dir, &["tally", &demand]);
    assert_eq!(t["withdrawn"], true, "{t}");
    assert_eq!(t["open"], false, "{t}");
    let mut open = ids(&json_of(&dir, &["petitions", "--open"]), "petitions");
    open.sort();
    let mut expected = vec![proposal.clone(), campaign.clone(), elsewhere.clone()];
    expected.sort();
    assert_eq!(open, expected, "a withdrawn petition is not open");
    let listed = ok(&dir, &["petitions", "--group", &group]);
    assert!(
        listed.contains(&format!("{}  0/", &demand[..12])) && listed.contains(" withdrawn "),
        "{listed}"
    );

    // Only the targeted producer responds...
    let before = records(&dir);
    let err = fails(
        &dir,
        &[
            "respond", &campaign, "--status", "accepted", "--text", "Deal",
        ],
    );
    assert!(err.contains("only the targeted producer"), "{err}");
    assert!(err.contains(PRODUCER), "{err}");
    assert_eq!(records(&dir), before, "a refused answer is not stored");
    // ... which this node is for petitions aimed at its own key; the latest answer counts.
    let mine = new_id(
        &dir,
        &[
            "petition",
            "open",
            "--producer",
            &me,
            "--title",
            "To myself",
            "--text",
            "x",
            "--threshold",
            "1",
        ],
    );
    let mut last = String::new();
    for status in [
        "acknowledged",
        "in-progress",
        "accepted",
        "declined",
        "done",
    ] {
        let v = json_of(
            &dir,
            &["respond", &mine, "--status", status, "--text", "Noted"],
        );
        last = created(&v, "response", &me);
        assert_eq!(v["record"]["body"]["status"], status, "{v}");
        assert_eq!(v["record"]["body"]["target"], mine.as_str(), "{v}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = json_of(&dir, &["tally", &mine]);
    assert_eq!(t["response"]["status"], "done", "{t}");
    assert_eq!(t["response"]["id"], last.as_str(), "{t}");
    assert!(ok(&dir, &["tally", &mine]).contains("response  done ("));
    assert_eq!(node.terminate(), Some(0));
}

#[test]
fn groups_are_created_joined_admitted_and_shown_across_two_nodes() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (mut b, _) = start(&db, Some(&addr));
    b.wait_for("peer connected", START);
    let (ka, kb) = (ok(&da, &["id"]), ok(&db, &["id"]));

    let v = json_of(
        &da,
        &[
            "group",
            "create",
            "Soap lovers",
            "--approval",
            "--charter",
            "Less plastic",
        ],
    );
    let group = created(&v, "group", &ka);
    assert_eq!(
        v["record"]["body"],
        json!({ "name": "Soap lovers", "admission": "approval", "charter": "Less plastic" })
    );
    let show = json_of(&da, &["group", "show", &group]);
    assert_eq!(
        show,
        json!({
            "id": group, "name": "Soap lovers", "charter": "Less plastic", "founder": ka,
            "admission": "approval", "members": 1, "member": true, "status": "founder",
            "member_list": [{"key": ka, "name": null}], "pending": 0, "partial": false,
        })
    );
    let human = ok(&da, &["group", "show", &group]);
    assert!(human.contains("admission  approval"), "{human}");
    assert!(human.contains("you        a member"), "{human}");

    // The group reaches B (groups travel on meta, which every node follows).
    let on_b = eventually("the group on B", TRAVEL, || {
        let out = chorus(&db, &["group", "show", &group, "--json"]);
        if out.status.success() {
            return Some(serde_json::from_str::<Value>(&stdout(&out)).unwrap());
        }
        let _ = chorus(&db, &["sync"]);
        None
    });
    assert_eq!(on_b["founder"], ka.as_str());
    assert_eq!(on_b["member"], false);

    // Membership records travel on the group's topic: the founder follows it by creating
    // the group, a member by joining (see
    // `a_group_founder_sees_who_joined_without_following_the_group`).

    let j = json_of(&db, &["group", "join", &group]);
    created(&j, "join", &kb);
    assert_eq!(j["record"]["body"]["group"], group.as_str());
    let pending = json_of(&db, &["group", "show", &group]);
    assert_eq!(
        pending["member"], false,
        "an approval group needs the founder's admission"
    );
    assert_eq!(pending["status"], "pending", "{pending}");
    assert!(ok(&db, &["group", "show", &group]).contains("you        pending"));

    // Only the founder admits.
    let before = records(&db);
    let err = fails(&db, &["group", "admit", &group, &kb]);
    assert!(err.contains("only the group's founder"), "{err}");
    assert_eq!(records(&db), before, "nothing stored");

    let adm = json_of(&da, &["group", "admit", &group, &kb]);
    created(&adm, "admit", &ka);
    assert_eq!(adm["record"]["body"]["member"], kb.as_str());
    eventually("B is a member on B", TRAVEL, || {
        let s = json_of(&db, &["group", "show", &group]);
        (s["member"] == true && s["members"] == 2).then_some(())
    });
    eventually("two members on A", TRAVEL, || {
        (json_of(&da, &["group", "show", &group])["members"] == 2).then_some(())
    });

    // An open group: joining is enough.
    let open = new_id(&da, &["group", "create", "Open house"]);
    eventually("the open group on B", TRAVEL, || {
        chorus(&db, &["group", "show", &open])
            .status
            .success()
            .then_some(())
    });
    new_id(&db, &["group", "join", &open]);
    let s = json_of(&db, &["group", "show", &open]);
    assert_eq!(s["admission"], "open", "{s}");
    assert_eq!(s["member"], true, "{s}");
    assert!(s["charter"].is_null(), "{s}");

    let err = fails(&da, &["group", "show", &"0".repeat(64)]);
    assert!(err.contains("no group"), "{err}");
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
}

#[test]
fn an_approval_request_is_listed_by_name_and_admitted_from_the_list() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (mut b, _) = start(&db, Some(&addr));
    b.wait_for("peer connected", START);
    let (ka, kb) = (ok(&da, &["id"]), ok(&db, &["id"]));
    new_id(&da, &["profile", "--name", "Ann", "--role", "consumer"]);
    new_id(&db, &["profile", "--name", "Bea", "--role", "consumer"]);
    let group = new_id(&da, &["group", "create", "Menders", "--approval"]);
    eventually("the group on B", TRAVEL, || {
        let out = chorus(&db, &["group", "show", &group]);
        if !out.status.success() {
            let _ = chorus(&db, &["sync"]);
        }
        out.status.success().then_some(())
    });
    new_id(&db, &["group", "join", &group]);
    let mine = json_of(&db, &["group", "show", &group]);
    assert_eq!(mine["status"], "pending", "{mine}");
    assert_eq!(mine["member"], false, "{mine}");

    // The founder lists the request, with the requester's name.
    let listed = eventually("the request on A", TRAVEL, || {
        let r = json_of(&da, &["group", "requests", &group]);
        if r["requests"].as_array().is_some_and(|l| l.len() == 1)
            && r["requests"][0]["name"] == "Bea"
        {
            return Some(r);
        }
        let _ = chorus(&da, &["sync"]);
        None
    });
    assert_eq!(listed["group"], group.as_str());
    assert_eq!(listed["requests"][0]["key"], kb.as_str(), "{listed}");
    let text = ok(&da, &["group", "requests", &group]);
    assert!(text.starts_with("Bea ("), "{text}");
    assert!(text.contains(&kb), "{text}");
    let show = ok(&da, &["group", "show", &group]);
    assert!(show.contains("pending    1 request(s)"), "{show}");
    assert!(show.contains("member     Ann ("), "{show}");

    // A name nobody asked under is refused, saying what to do.
    let err = fails(&da, &["group", "admit", &group, "Nobody"]);
    assert!(err.contains("chorus group requests"), "{err}");
    // Admitted by name.
    let adm = json_of(&da, &["group", "admit", &group, "Bea"]);
    created(&adm, "admit", &ka);
    assert_eq!(adm["record"]["body"]["member"], kb.as_str());
    let r = json_of(&da, &["group", "requests", &group]);
    assert_eq!(r["requests"], json!([]), "{r}");
    assert_eq!(
        ok(&da, &["group", "requests", &group]),
        "no pending requests"
    );
    let s = json_of(&da, &["group", "show", &group]);
    assert_eq!(s["members"], 2, "{s}");
    assert_eq!(s["pending"], 0, "{s}");
    assert!(
        s["member_list"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": kb, "name": "Bea"})),
        "{s}"
    );
    assert!(ok(&da, &["group", "show", &group]).contains("member     Bea ("));
    eventually("B a member on B", TRAVEL, || {
        let s = json_of(&db, &["group", "show", &group]);
        if s["status"] == "member" && s["member"] == true {
            return Some(());
        }
        let _ = chorus(&db, &["sync"]);
        None
    });
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
}

#[test]
fn a_producer_follows_the_group_of_a_petition_aimed_at_it_and_a_partial_count_says_so() {
    let (da, db, dp) = (DataDir::new(), DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (mut b, _) = start(&db, Some(&addr));
    b.wait_for("peer connected", START);
    let (mut p, _) = start(&dp, Some(&addr));
    p.wait_for("peer connected", START);
    let kp = ok(&dp, &["id"]);
    let group = new_id(&da, &["group", "create", "Menders"]);
    eventually("the group on B", TRAVEL, || {
        let out = chorus(&db, &["group", "show", &group]);
        if !out.status.success() {
            let _ = chorus(&db, &["sync"]);
        }
        out.status.success().then_some(())
    });
    new_id(&db, &["group", "join", &group]);
    ok(&db, &["follow", "--producer", &kp]);
    let petition = new_id(
        &da,
        &[
            "petition",
            "open",
            "--producer",
            &kp,
            "--group",
            &group,
            "--title",
            "Spare parts",
            "--text",
            "t",
            "--threshold",
            "3",
        ],
    );
    new_id(&da, &["endorse", &petition]);
    tally_until(&db, &petition, "the petition on B", |_| true);
    new_id(&db, &["endorse", &petition]);
    tally_until(&da, &petition, "both members on A", |t| {
        t["member_endorsers"] == 2
    });

    // The producer never followed the group: its node does so by itself, and counts as A does.
    let t = tally_until(&dp, &petition, "both members on the producer's node", |t| {
        t["member_endorsers"] == 2
    });
    assert_eq!(t["partial"], false, "{t}");
    assert!(!ok(&dp, &["tally", &petition]).contains("partial"));
    let f = json_of(&dp, &["follow"]);
    assert!(
        f["groups"].as_array().unwrap().contains(&json!(group)),
        "{f}"
    );

    // Not following the group: the count says it may be incomplete.
    ok(&dp, &["unfollow", "--group", &group]);
    let t = json_of(&dp, &["tally", &petition]);
    assert_eq!(t["partial"], true, "{t}");
    let text = ok(&dp, &["tally", &petition]);
    assert!(text.contains("note      partial"), "{text}");
    assert_eq!(json_of(&dp, &["group", "show", &group])["partial"], true);
    assert_eq!(json_of(&da, &["group", "show", &group])["partial"], false);
    assert_eq!(p.terminate(), Some(0));
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
}

/// Node A's consumer opens a petition aimed at node B's key; B receives it, only B may answer,
/// and the answer reaches A.
#[test]
fn a_producer_on_another_node_answers_a_petition() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (mut b, _) = start(&db, Some(&addr));
    b.wait_for("peer connected", START);
    let (ka, kb) = (ok(&da, &["id"]), ok(&db, &["id"]));

    let sa = json_of(&da, &["status"]);
    let sb = json_of(&db, &["status"]);
    let peer_b = sb["peer_id"].as_str().unwrap().to_string();
    eventually("A lists B among its peers", TRAVEL, || {
        ok(&da, &["peers"])
            .lines()
            .any(|l| l == peer_b)
            .then_some(())
    });
    assert_eq!(json_of(&da, &["peers"])["peers"], json!([peer_b]));
    assert_eq!(json_of(&db, &["status"])["peers"], 1);
    assert_eq!(
        json_of(&db, &["peers"])["peers"],
        json!([sa["peer_id"]]),
        "B lists A"
    );

    // A follows B's feedback by petitioning B, so B's answer is stored on A (see
    // `the_author_of_a_petition_sees_the_answer_without_following_the_producer`).

    let petition = new_id(
        &da,
        &[
            "petition",
            "open",
            "--producer",
            &kb,
            "--product",
            "soap-1",
            "--title",
            "Refill stations",
            "--text",
            "Please",
            "--threshold",
            "2",
        ],
    );
    let review = new_id(
        &da,
        &[
            "review",
            &kb,
            "soap-1",
            "--rating",
            "2",
            "--text",
            "Too much plastic",
        ],
    );
    let t = eventually("the petition on B", TRAVEL, || {
        tally_or_sync(&db, &petition)
    });
    assert_eq!(t["producer"], kb.as_str(), "{t}");
    assert_eq!(t["title"], "Refill stations", "{t}");
    eventually("the review on B", TRAVEL, || {
        let r = json_of(&db, &["rating", &kb, "soap-1"]);
        (r["count"] == 1).then_some(())
    });

    // A is not the producer: refused, and nothing is stored.
    let before = records(&da);
    let err = fails(
        &da,
        &[
            "respond", &petition, "--status", "accepted", "--text", "Sure",
        ],
    );
    assert!(err.contains("only the targeted producer"), "{err}");
    assert_eq!(records(&da), before);
    // B cannot retract A's petition, which it does not endorse.
    let err = fails(&db, &["retract", &petition]);
    assert!(err.contains("you do not endorse"), "{err}");
    let err = fails(&db, &["retract", &review]);
    assert!(err.contains("not your record"), "{err}");

    // B endorses; A sees the count.
    new_id(&db, &["endorse", &petition, "--comment", "Me too"]);
    eventually("B's endorsement on A", TRAVEL, || {
        (tally_or_sync(&da, &petition)?["endorsers"] == 1).then_some(())
    });

    // B answers the petition and the review.
    let v = json_of(
        &db,
        &[
            "respond",
            &petition,
            "--status",
            "in-progress",
            "--text",
            "Working on it",
        ],
    );
    let answer = created(&v, "response", &kb);
    assert_eq!(
        v["record"]["body"],
        json!({ "target": petition, "status": "in-progress", "text": "Working on it" })
    );
    new_id(
        &db,
        &[
            "respond",
            &review,
            "--status",
            "acknowledged",
            "--text",
            "Thanks",
        ],
    );
    assert_eq!(
        json_of(&db, &["tally", &petition])["response"]["status"],
        "in-progress"
    );
    let t = eventually("B's answer on A", TRAVEL, || {
        let t = tally_or_sync(&da, &petition)?;
        (!t["response"].is_null()).then_some(t)
    });
    assert_eq!(t["response"]["status"], "in-progress", "{t}");
    assert_eq!(t["response"]["id"], answer.as_str(), "{t}");
    let shown = json_of(&da, &["show", &answer]);
    assert_eq!(shown["author"], kb.as_str());
    assert_eq!(json_of(&da, &["show", &petition])["author"], ka.as_str());

    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
}

/// Minimal: a consumer who opened a petition sees the producer's answer in its tally, without
/// having to `chorus follow` the producer first.
#[test]
fn the_author_of_a_petition_sees_the_answer_without_following_the_producer() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (mut b, _) = start(&db, Some(&addr));
    b.wait_for("peer connected", START);
    let kb = ok(&db, &["id"]);
    let petition = new_id(
        &da,
        &[
            "petition",
            "open",
            "--producer",
            &kb,
            "--title",
            "Refill stations",
            "--text",
            "Please",
            "--threshold",
            "2",
        ],
    );
    eventually("the petition on B", TRAVEL, || {
        tally_or_sync(&db, &petition)
    });
    new_id(
        &db,
        &[
            "respond", &petition, "--status", "accepted", "--text", "Yes",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut t = Value::Null;
    while Instant::now() < deadline {
        t = tally_or_sync(&da, &petition).expect("A has its own petition");
        if !t["response"].is_null() {
            break;
        }
        let _ = chorus(&da, &["sync"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = t["response"]["status"].clone();
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(
        status, "accepted",
        "the producer's answer never reached the petition's author: {t}"
    );
}

/// Minimal: the founder of a group sees that someone joined it, without having to
/// `chorus follow --group` the group it founded (nor the joiner the group it joined).
#[test]
fn a_group_founder_sees_who_joined_without_following_the_group() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (mut b, _) = start(&db, Some(&addr));
    b.wait_for("peer connected", START);
    let group = new_id(&da, &["group", "create", "Open house"]);
    eventually("the group on B", TRAVEL, || {
        let out = chorus(&db, &["group", "show", &group]);
        if !out.status.success() {
            let _ = chorus(&db, &["sync"]);
        }
        out.status.success().then_some(())
    });
    new_id(&db, &["group", "join", &group]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut s = Value::Null;
    while Instant::now() < deadline {
        s = json_of(&da, &["group", "show", &group]);
        if s["members"] == 2 {
            break;
        }
        let _ = chorus(&da, &["sync"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(s["members"], 2, "the founder never saw the join: {s}");
}

#[test]
fn bad_arguments_exit_2_with_one_line_and_write_nothing() {
    let dir = DataDir::new();
    let (node, _) = start(&dir, None);
    new_id(&dir, &["profile", "--name", "Alice", "--role", "consumer"]);
    let before = records(&dir);
    let follow = json_of(&dir, &["follow"]);
    let unknown = "0".repeat(64);
    let past = "2001-01-01";
    let open = |extra: &[&'static str]| {
        let mut v = vec![
            "petition",
            "open",
            "--producer",
            PRODUCER,
            "--title",
            "T",
            "--text",
            "X",
            "--threshold",
            "1",
        ];
        v.extend_from_slice(extra);
        v
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["review", PRODUCER, "soap-1", "--rating", "9", "--text", "x"],
            "--rating",
        ),
        (
            vec!["review", PRODUCER, "soap-1", "--rating", "0", "--text", "x"],
            "--rating",
        ),
        (
            vec![
                "--json", "review", PRODUCER, "soap-1", "--rating", "9", "--text", "x",
            ],
            "--rating",
        ),
        (
            vec![
                "review", "not-hex", "soap-1", "--rating", "3", "--text", "x",
            ],
            "not an author key",
        ),
        (vec!["rating", "abc", "soap-1"], "not an author key"),
        (vec!["follow", "--producer", "xyz"], "not an author key"),
        (open(&["--campaign"]), "required"),
        (open(&["--campaign", "--goal", "lots"]), "not an amount"),
        (open(&["--goal", "3000EUR"]), "required"),
        (
            open(&["--proposal", "--campaign", "--goal", "5EUR"]),
            "cannot be used",
        ),
        (open(&["--deadline", "tomorrow"]), "not a date"),
        (open(&["--deadline", past]), "in the past"),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (vec!["group", "frobnicate"], "unrecognized subcommand"),
        (vec!["endorse", "1234"], "not a record id"),
        (vec!["endorse", &unknown, "--pledge", "5"], "not an amount"),
        (vec!["endorse", &unknown], "no petition"),
        (vec!["tally", &unknown], "no petition"),
        (vec!["show", &unknown], "no record"),
        (vec!["retract", &unknown], "no record"),
        (vec!["group", "join", &unknown], "no group"),
        (vec!["group", "admit", "1234", PRODUCER], "not a record id"),
        (
            vec!["respond", &unknown, "--status", "maybe", "--text", "x"],
            "--status",
        ),
        (vec!["profile", "--name", "x", "--role", "king"], "--role"),
        (
            vec!["follow", "--producer", PRODUCER, "--all"],
            "exactly one",
        ),
        (vec!["unfollow"], "exactly one"),
        (vec!["follow", "--product", "soap-1"], "--product"),
    ];
    for (args, needle) in &cases {
        let err = fails(&dir, args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(records(&dir), before, "no bad command stored anything");
    assert_eq!(
        json_of(&dir, &["follow"]),
        follow,
        "nor changed what is followed"
    );
    assert_eq!(node.terminate(), Some(0));
}

/// Minimal: an error for a missing required flag names the flag.
#[test]
fn a_missing_required_flag_is_named_in_its_one_line_error() {
    let dir = DataDir::new();
    let err = fails(
        &dir,
        &[
            "petition",
            "open",
            "--producer",
            PRODUCER,
            "--title",
            "T",
            "--text",
            "X",
            "--threshold",
            "1",
            "--campaign",
        ],
    );
    assert!(!dir.path().exists(), "nothing written");
    assert!(
        err.contains("--goal"),
        "the error does not say what is missing: {err}"
    );
}

#[test]
fn watch_replays_what_was_missed_from_its_cursor_then_follows_live() {
    let dir = DataDir::new();
    let (node, _) = start(&dir, None);
    let me = ok(&dir, &["id"]);
    // Nothing yet.
    assert_eq!(ok(&dir, &["watch", "--no-follow"]), "");
    // Feedback arrives while nobody watches.
    let petition = new_id(
        &dir,
        &[
            "petition",
            "open",
            "--producer",
            &me,
            "--title",
            "Longer warranty",
            "--text",
            "5 years",
            "--threshold",
            "1",
        ],
    );
    let endorsement = new_id(&dir, &["endorse", &petition]);
    let missed = ok(&dir, &["watch", "--no-follow"]);
    let lines: Vec<&str> = missed.lines().collect();
    assert_eq!(lines.len(), 4, "{missed}");
    assert!(
        lines[0].contains("petition") && lines[0].contains(&petition[..12]),
        "{missed}"
    );
    assert!(
        lines[1].contains("endorsement") && lines[1].contains(&endorsement[..12]),
        "{missed}"
    );
    // The threshold was reached while nobody watched: told in the replay, in its place.
    assert!(
        lines[2].starts_with("THRESHOLD") && lines[2].contains(&petition[..12]),
        "{missed}"
    );
    assert!(lines[3].contains("1/1 reached"), "{missed}");
    // The cursor moved: nothing is replayed twice.
    assert_eq!(ok(&dir, &["watch", "--no-follow"]), "");
    assert!(
        dir.path().join("watch").exists(),
        "the cursor lives in the data dir"
    );
    // Another filter keeps its own cursor.
    let by_petition = ok(
        &dir,
        &["watch", "--petition", &petition, "--no-follow", "--json"],
    );
    assert_eq!(
        by_petition
            .lines()
            .filter(|l| l.contains("\"record\""))
            .count(),
        2
    );
    for l in by_petition.lines() {
        serde_json::from_str::<Value>(l).expect("one JSON object per line");
    }

    // Live: a running watch prints the producer's answer as it is stored.
    let mut watch = NodeProcess::spawn(&dir, &["watch", "--json"]);
    watch.wait_for("\"ready\"", START);
    ok(
        &dir,
        &[
            "respond",
            &petition,
            "--status",
            "accepted",
            "--text",
            "coming in May",
        ],
    );
    let line = watch.wait_for("coming in May", START);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["record"]["kind"], "response");
    drop(watch); // stopped by its pid
                 // Bad filters are refused up front.
    let out = chorus(&dir, &["watch", "--kind", "gossip"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        node.terminate(),
        Some(0),
        "a node with a watcher gone stops cleanly"
    );
}

#[test]
fn a_node_stops_cleanly_while_a_watch_is_connected() {
    let dir = DataDir::new();
    let (node, _) = start(&dir, None);
    let mut watch = NodeProcess::spawn(&dir, &["watch"]);
    watch.wait_for("caught up", START);
    assert_eq!(node.terminate(), Some(0));
}

#[test]
fn audit_reports_nothing_on_an_honest_node_and_strict_fails_on_warnings() {
    let (da, db) = (DataDir::new(), DataDir::new());
    // A watchdog that finds one endorse-only key suspicious (the default is dozens).
    ok(&da, &["init"]);
    std::fs::write(da.path().join("config.toml"), "[audit]\nidle_keys = 1\n").unwrap();
    let (a, addr) = start(&da, None);
    let (b, _) = start(&db, Some(&addr));
    let me = ok(&da, &["id"]);
    let petition = new_id(
        &da,
        &[
            "petition",
            "open",
            "--producer",
            &me,
            "--title",
            "Spare parts",
            "--text",
            "t",
            "--threshold",
            "2",
        ],
    );
    let clean = chorus(&da, &["audit", "--json"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    let v: Value = serde_json::from_str(stdout(&clean).trim()).unwrap();
    assert_eq!(
        (v["errors"].as_u64(), v["warnings"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(v["verified"], v["records"]);
    assert!(v["records"].as_u64().unwrap() >= 1);

    // B only ever endorses A's petition: a suspicion on A (with this config), not an error.
    ok(&db, &["follow", "--producer", &me]);
    let deadline = Instant::now() + TRAVEL;
    while chorus(&db, &["show", &petition]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "the petition never reached B");
        let _ = chorus(&db, &["sync"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&db, &["endorse", &petition]);
    let deadline = Instant::now() + TRAVEL;
    loop {
        let t = json_of(&da, &["tally", &petition]);
        if t["endorsers"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the endorsement never reached A: {t}"
        );
        let _ = chorus(&da, &["sync"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let warned = chorus(&da, &["audit"]);
    assert_eq!(
        warned.status.code(),
        Some(0),
        "warnings alone pass: {}",
        stderr(&warned)
    );
    assert!(stdout(&warned).contains("idle-keys"), "{}", stdout(&warned));
    let strict = chorus(&da, &["audit", "--strict"]);
    assert_eq!(strict.status.code(), Some(1));

    // Offline: refused while the node holds the store, then fine once it stopped.
    let busy = chorus(&da, &["audit", "--offline"]);
    assert_eq!(busy.status.code(), Some(2));
    assert!(stderr(&busy).contains("running"), "{}", stderr(&busy));
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));
    let offline = chorus(&da, &["audit", "--offline", "--json"]);
    assert_eq!(offline.status.code(), Some(0), "{}", stderr(&offline));
    let v: Value = serde_json::from_str(stdout(&offline).trim()).unwrap();
    assert_eq!(v["errors"], 0);
    assert_eq!(v["warnings"], 1);
}

#[test]
fn bundles_and_proofs_export_verify_offline_and_catch_tampering() {
    let (da, db) = (DataDir::new(), DataDir::new());
    let (a, addr) = start(&da, None);
    let (b, _) = start(&db, Some(&addr));
    let kb = ok(&db, &["id"]);
    let petition = new_id(
        &da,
        &[
            "petition",
            "open",
            "--producer",
            &kb,
            "--title",
            "Spare parts",
            "--text",
            "t",
            "--threshold",
            "2",
        ],
    );
    let mine = new_id(&da, &["endorse", &petition]);
    // The producer answers; the answer travels back to A.
    let deadline = Instant::now() + TRAVEL;
    while chorus(&db, &["show", &petition]).status.code() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the petition never reached the producer"
        );
        let _ = chorus(&db, &["sync"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(
        &db,
        &[
            "respond",
            &petition,
            "--status",
            "acknowledged",
            "--text",
            "seen",
        ],
    );
    let deadline = Instant::now() + TRAVEL;
    while json_of(&da, &["tally", &petition])["response"].is_null() {
        assert!(Instant::now() < deadline, "the answer never reached A");
        let _ = chorus(&da, &["sync"]);
        std::thread::sleep(Duration::from_millis(200));
    }

    let file = da.path().join("petition.bundle");
    let file_s = file.to_str().unwrap();
    let exported = json_of(&da, &["export", &petition, "-o", file_s]);
    assert_eq!(exported["count"], 1);
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(a.terminate(), Some(0));

    // Offline, with no node at all.
    let v = json_of(&da, &["verify", file_s]);
    assert_eq!(
        (v["valid"].as_bool(), v["count"].as_u64()),
        (Some(true), Some(1)),
        "{v}"
    );
    assert_eq!(v["root"], exported["root"]);
    assert_eq!(v["response"]["status"], "acknowledged");
    assert!(ok(&da, &["verify", file_s]).contains("valid: 1 endorsers"));

    // Any altered byte is caught, and the culprit named.
    let bytes = std::fs::read(&file).unwrap();
    for i in (0..bytes.len()).step_by(7) {
        let mut t = bytes.clone();
        t[i] ^= 0x20;
        std::fs::write(&file, &t).unwrap();
        let out = chorus(&da, &["verify", file_s]);
        assert_eq!(out.status.code(), Some(1), "byte {i} altered unnoticed");
        assert_eq!(stderr(&out).lines().count(), 1);
    }
    std::fs::write(&file, &bytes).unwrap();

    // Proofs (the node must run to make one; anyone checks it offline).
    let (a, _) = start(&da, None);
    let proof = ok(&da, &["proof", &petition, &mine]);
    let p: Value = serde_json::from_str(&proof).unwrap();
    assert_eq!(p["root"], exported["root"]);
    let proof_file = da.path().join("proof.json");
    std::fs::write(&proof_file, &proof).unwrap();
    assert!(ok(&da, &["verify-proof", proof_file.to_str().unwrap()]).starts_with("valid"));
    let stranger = "ab".repeat(32);
    let refused = chorus(&da, &["proof", &petition, &stranger]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("not a counted endorsement"));
    assert_eq!(a.terminate(), Some(0));
    let mut forged: Value = p.clone();
    forged["endorsement"] = json!(stranger);
    std::fs::write(&proof_file, forged.to_string()).unwrap();
    let out = chorus(&da, &["verify-proof", proof_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

/// Waits until `dir`'s tally of `petition` satisfies `f` (syncing meanwhile); returns it.
fn tally_until(dir: &DataDir, petition: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let deadline = Instant::now() + TRAVEL;
    loop {
        if let Some(t) = tally_or_sync(dir, petition) {
            if f(&t) {
                return t;
            }
            last = t;
            let _ = chorus(dir, &["sync"]);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {TRAVEL:?}: {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn trust_changes_at_run_time_one_actor_counts_once_and_vouches_match_the_count() {
    let (dw, dc, dd) = (DataDir::new(), DataDir::new(), DataDir::new());
    ok(&dw, &["init"]);
    let watchdog = ok(&dw, &["id"]);
    let mut wflags = FLAGS.to_vec();
    wflags.push("--follow-all");
    let mut w = NodeProcess::start(&dw, &wflags);
    w.wait_for("api      http://127.0.0.1:", START);
    let waddr = w
        .wait_for("listening /ip4/127.0.0.1/tcp/", START)
        .trim_start_matches("listening ")
        .to_string();
    let (c, _) = start(&dc, Some(&waddr));
    let (d, _) = start(&dd, Some(&waddr));
    let (kc, kd) = (ok(&dc, &["id"]), ok(&dd, &["id"]));
    let petition = new_id(
        &dc,
        &[
            "petition",
            "open",
            "--producer",
            PRODUCER,
            "--title",
            "Refills",
            "--text",
            "t",
            "--threshold",
            "5",
            "--campaign",
            "--goal",
            "100EUR",
        ],
    );
    new_id(&dc, &["endorse", &petition, "--pledge", "10EUR"]);
    ok(&dd, &["follow", "--producer", PRODUCER]);
    tally_until(&dd, &petition, "the petition on D", |_| true);
    new_id(&dd, &["endorse", &petition, "--pledge", "20EUR"]);
    let t = tally_until(&dc, &petition, "both endorsements on C", |t| {
        t["endorsers"] == 2
    });
    assert!(t.get("trusted").is_none(), "nothing trusted yet: {t}");
    assert_eq!(json_of(&dc, &["trust", "list"])["watchdogs"], json!([]));

    // Trusted at run time, no restart: the tally shows the trusted view at once.
    let set = json_of(&dc, &["trust", "add", &watchdog]);
    assert_eq!(set["watchdogs"], json!([watchdog]));
    assert_eq!(set["added"], json!([watchdog]));
    let t = json_of(&dc, &["tally", &petition]);
    assert_eq!(t["trusted"]["endorsers"], 2, "{t}");
    assert_eq!(t["trusted"]["attested"], json!([]), "{t}");
    assert_eq!(t["trusted"]["pledged"], json!({"EUR": "30.00"}), "{t}");
    assert!(ok(&dc, &["trust", "list"]).contains(&format!("trusted  {watchdog} (added)")));

    // The watchdog vouches for the count of 2, then judges C and D to be one actor.
    tally_until(&dw, &petition, "both endorsements on W", |t| {
        t["endorsers"] == 2
    });
    let att = json_of(&dw, &["attest", "count", &petition]);
    assert_eq!(att["record"]["body"]["count"], 2);
    ok(
        &dw,
        &["attest", "one-actor", &kc, &kd, "--note", "same device"],
    );
    let t = tally_until(&dc, &petition, "the attestations on C", |t| {
        t["trusted"]["endorsers"] == 1 && t["trusted"]["vouched_by"] == json!([watchdog])
    });
    assert_eq!(t["endorsers"], 2, "the raw count stays: {t}");
    assert_eq!(t["trusted"]["excluded"], 1, "{t}");
    // C endorsed first: C's pledge is the actor's.
    assert_eq!(t["trusted"]["pledged"], json!({"EUR": "10.00"}), "{t}");
    assert_eq!(t["trusted"]["attested"][0]["count"], 2, "{t}");
    assert_eq!(t["trusted"]["attested"][0]["current"], true, "{t}");
    let text = ok(&dc, &["tally", &petition]);
    assert!(
        text.contains(&format!("vouched by {}… (2 endorsers", &watchdog[..12])),
        "{text}"
    );
    assert!(text.contains("trusted   1 (1 left out"), "{text}");
    assert!(text.contains("trusted   pledged 10.00EUR"), "{text}");

    // D withdraws its endorsement: the attested 2 is no longer the count, so no vouching.
    ok(&dd, &["retract", &petition]);
    let t = tally_until(&dc, &petition, "the retraction on C", |t| {
        t["endorsers"] == 1
    });
    assert_eq!(t["trusted"]["vouched_by"], json!([]), "{t}");
    assert_eq!(t["trusted"]["attested"][0]["current"], false, "{t}");
    assert_eq!(t["trusted"]["endorsers"], 1, "{t}");
    let text = ok(&dc, &["tally", &petition]);
    assert!(!text.contains("vouched by"), "{text}");
    assert!(
        text.contains(&format!("{}… attested 2 at ", &watchdog[..12])),
        "{text}"
    );
    assert!(text.contains(", now 1"), "{text}");

    // Removed: gone from the tally at once.
    assert_eq!(
        json_of(&dc, &["trust", "remove", &watchdog])["watchdogs"],
        json!([])
    );
    assert!(json_of(&dc, &["tally", &petition]).get("trusted").is_none());
    // Trusted again, then a restart: the trust is kept (trust.json), config.toml untouched.
    json_of(&dc, &["trust", "add", &watchdog]);
    assert_eq!(c.terminate(), Some(0));
    assert!(!std::fs::read_to_string(dc.path().join("config.toml"))
        .unwrap_or_default()
        .contains(&watchdog));
    let (c, _) = start(&dc, Some(&waddr));
    assert_eq!(
        json_of(&dc, &["trust", "list"])["watchdogs"],
        json!([watchdog])
    );
    let t = json_of(&dc, &["tally", &petition]);
    assert_eq!(t["trusted"]["watchdogs"], json!([watchdog]), "{t}");
    let err = fails(&dc, &["trust", "add", "nope"]);
    assert!(err.contains("author key"), "{err}");
    assert_eq!(c.terminate(), Some(0));
    assert_eq!(d.terminate(), Some(0));
    assert_eq!(w.terminate(), Some(0));
}

#[test]
fn compact_refuses_a_running_node_then_rewrites_the_store_keeping_every_record() {
    let dir = DataDir::new();
    let (node, _) = start(&dir, None);
    let mut ids = Vec::new();
    for n in 0..20 {
        let code = format!("soap-{n}");
        ids.push(new_id(
            &dir,
            &["review", PRODUCER, &code, "--rating", "4", "--text", "Fine"],
        ));
    }
    let before = records(&dir);
    let err = fails(&dir, &["compact"]);
    assert!(err.contains("stop the node"), "{err}");
    assert_eq!(node.terminate(), Some(0));

    let c = json_of(&dir, &["compact"]);
    assert!(c["keys"].as_u64().unwrap() > 20, "{c}");
    assert!(c["bytes_after"].as_u64().unwrap() > 0, "{c}");
    // The copy took over as the store's next generation; the old one is gone.
    let store = dir.path().join("store");
    let mut left: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["GENERATION", "g1"]);
    assert!(store.join("g1/conf").exists());

    let (node, _) = start(&dir, None);
    assert_eq!(records(&dir), before);
    for id in &ids {
        let shown = json_of(&dir, &["show", id]);
        assert_eq!(shown["id"], json!(id), "{shown}");
        assert_eq!(shown["body"]["text"], json!("Fine"), "{shown}");
    }
    assert_eq!(node.terminate(), Some(0));
}
