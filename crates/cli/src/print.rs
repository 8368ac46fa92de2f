//! What the CLI prints of the node's answers: one line of JSON under `--json`, else text for
//! people.

use anyhow::Result;
use chorus_client::{
    AuditReport, Created, Event, FollowSet, GroupInfo, GroupRequests, Outcome, Peers, Petitions,
    Rating, Reviews, SseEvent, Status, SyncAnswer, Tally, TrustSet, Trusted,
};
use serde::Serialize;
use serde_json::Value;

/// An answer as one line of JSON. Written through a [`Value`], whose keys are sorted: the CLI
/// has always printed the node's JSON that way.
pub(crate) fn json<T: Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_value(v)?);
    Ok(())
}

/// An answer: JSON under `--json`, else `text`.
pub(crate) fn answer<T: Serialize>(json: bool, v: &T, text: impl FnOnce(&T)) -> Result<()> {
    if json {
        return self::json(v);
    }
    text(v);
    Ok(())
}

/// What a record-creating call answered: the id (or the whole answer under `--json`), and
/// on stderr what became of a record not simply stored.
pub(crate) fn created(json: bool, c: &Created) -> Result<()> {
    if json {
        return self::json(c);
    }
    println!("{}", c.id);
    if let Some(earlier) = &c.replaces {
        eprintln!("(updates your earlier endorsement {})", short(earlier));
    }
    match c.outcome {
        Outcome::Duplicate => eprintln!("(already stored: the same record exists)"),
        Outcome::Waiting => eprintln!("(kept: it counts once the record it points at arrives)"),
        Outcome::Stored => {}
    }
    Ok(())
}

/// The followed producers, groups and products, each list with its singular label.
fn followed(f: &FollowSet) -> [(&'static str, &[String]); 3] {
    [
        ("producer", &f.producers),
        ("group", &f.groups),
        ("product", &f.products),
    ]
}

/// `chorus status`.
pub(crate) fn status(s: &Status) {
    println!("peer id  {}", s.peer_id);
    println!("author   {}", s.author);
    for a in &s.listen_addrs {
        println!("listen   {a}");
    }
    println!("peers    {}", s.peers);
    println!("records  {} ({} waiting)", s.records, s.waiting);
    if !s.sync_ready {
        println!("sync     not ready: rebuilding the sync index after a restart");
    }
    match (&s.storage.state, &s.storage.message) {
        (chorus_client::StorageCondition::Ok, _) => {}
        (state, message) => println!(
            "storage  {}: {}",
            if *state == chorus_client::StorageCondition::Full {
                "FULL"
            } else {
                "FAILED"
            },
            message.as_deref().unwrap_or("")
        ),
    }
    println!("shards   {}", s.shards.join(" "));
    if s.following.all {
        println!("follows  everything");
    }
    for (label, list) in followed(&s.following) {
        for x in list {
            println!("follows  {label} {x}");
        }
    }
}

/// `chorus follow` and `chorus unfollow`.
pub(crate) fn follow(f: &FollowSet) {
    if f.all {
        println!("all      everything");
    }
    for (label, list) in followed(f) {
        for x in list {
            println!("{label:<8} {x}");
        }
    }
}

/// `chorus trust`: a line per trusted watchdog, saying where its trust comes from.
pub(crate) fn trust(t: &TrustSet) {
    if t.watchdogs.is_empty() {
        println!("no watchdogs trusted (chorus trust add KEY)");
    }
    for w in &t.watchdogs {
        let from = if t.added.contains(w) {
            "added"
        } else {
            "config"
        };
        println!("trusted  {w} ({from})");
    }
    for w in &t.removed {
        if t.config.contains(w) {
            println!("removed  {w} (listed in config.toml, not trusted since chorus trust remove)");
        }
    }
}

/// `chorus sync`: a line per pull.
pub(crate) fn sync(s: &SyncAnswer) {
    if s.pulls.is_empty() {
        println!("no connected peers to sync with");
    }
    for p in &s.pulls {
        println!("{}", sync_words(p));
    }
}

/// What one pull did, in words.
fn sync_words(p: &chorus_client::SyncReport) -> String {
    let n = |k: u64, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    let took = format!(
        "{} in {:.1} s",
        n(u64::from(p.rounds), "round trip", "round trips"),
        p.millis as f64 / 1000.0
    );
    if let Some(e) = &p.error {
        return format!(
            "from peer {}: stopped after {} ({e})",
            p.peer,
            n(p.stored, "new record", "new records")
        );
    }
    if p.needed == 0 && p.fetched == 0 {
        return format!("from peer {}: nothing missing here ({took})", p.peer);
    }
    let mut parts = vec![n(p.stored, "new", "new")];
    for (k, what) in [
        (p.duplicates, "already here"),
        (p.refused, "refused by a rule"),
        (p.invalid, "invalid (the peer was penalised)"),
        (p.missing, "promised and not sent"),
    ] {
        if k > 0 {
            parts.push(format!("{k} {what}"));
        }
    }
    format!(
        "from peer {}: fetched {} ({}), {took}",
        p.peer,
        n(p.fetched, "record", "records"),
        parts.join(", ")
    )
}

/// `chorus peers`.
pub(crate) fn peers(p: &Peers) {
    for p in &p.peers {
        println!("{p}");
    }
}

/// `chorus reviews`: a line per review, `*` for those that count.
pub(crate) fn reviews(all: &Reviews, producer: &str) {
    if all.reviews.is_empty() && !all.partial {
        println!("no reviews of this product on this node yet");
    }
    if all.partial {
        println!(
            "note: this node does not follow this producer, so its reviews are missing or \
             partial: chorus follow --producer {}",
            shell_word(producer)
        );
    }
    for r in &all.reviews {
        let body = &r.record["body"];
        println!(
            "{} {}/5  {}  by {}  {}{}",
            if r.counted { "*" } else { " " },
            body["rating"],
            short(r.record["id"].as_str().unwrap_or("")),
            person(
                r.record["author"].as_str().unwrap_or(""),
                r.record["author_name"].as_str()
            ),
            body["title"]
                .as_str()
                .map(|t| format!("{t}: "))
                .unwrap_or_default(),
            body["text"].as_str().unwrap_or("")
        );
        if let Some(resp) = &r.response {
            println!(
                "    the producer answered: {}{}",
                resp.status,
                resp.text
                    .as_deref()
                    .map(|t| format!(": {t}"))
                    .unwrap_or_default()
            );
        }
    }
}

/// `chorus rating`.
pub(crate) fn rating(r: &Rating) {
    let h: Vec<String> = r
        .histogram
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}:{n}", i + 1))
        .collect();
    println!("{:.2} from {} reviews  [{}]", r.mean, r.count, h.join(" "));
    if r.partial {
        println!(
            "note: partial: this node does not follow the producer's topic (chorus follow --producer {})",
            r.producer
        );
    }
}

/// `chorus group show`.
pub(crate) fn group(g: &GroupInfo) {
    println!("group      {}", g.id);
    println!("name       {}", g.name);
    if let Some(c) = &g.charter {
        println!("charter    {c}");
    }
    println!(
        "founder    {}",
        person(&g.founder, g.founder_name.as_deref())
    );
    println!("admission  {}", g.admission);
    println!("members    {}", g.members);
    for m in &g.member_list {
        println!("member     {}", person(&m.key, m.name.as_deref()));
    }
    if g.partial {
        println!(
            "note       partial: this node does not follow the group's topic (chorus follow --group {})",
            g.id
        );
    }
    if g.pending > 0 {
        println!(
            "pending    {} request(s) to join (chorus group requests {})",
            g.pending, g.id
        );
    }
    println!(
        "you        {}",
        match g.status.as_str() {
            "founder" => "a member (the founder)",
            "pending" => "pending: you asked to join; the founder has not admitted you yet",
            _ if g.member => "a member",
            _ => "not a member",
        }
    );
}

/// A word as a shell takes it: quoted when it holds anything but letters, digits and
/// `-_./`.
pub(crate) fn shell_word(w: &str) -> String {
    let plain = !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || "-_./".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// A key as people read it: its profile name and short key, or the short key alone.
fn person(key: &str, name: Option<&str>) -> String {
    let short: String = key.chars().take(12).collect();
    match name {
        Some(n) => format!("{n} ({short}…)"),
        None => format!("{short}…"),
    }
}

/// `chorus group requests`: a line per pending request, oldest first.
pub(crate) fn group_requests(r: &GroupRequests) {
    if r.requests.is_empty() {
        println!("no pending requests");
    }
    if r.partial {
        println!(
            "note: partial: this node does not follow the group's topic (chorus follow --group {})",
            r.group
        );
    }
    for q in &r.requests {
        println!(
            "{}  {}  asked {}",
            person(&q.key, q.name.as_deref()),
            q.key,
            when(Some(q.created_at))
        );
    }
}

/// What a found thing is about, in words: its producer, its count, whether it is followed.
fn found_details(f: &chorus_client::Found) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &f.producer {
        if f.kind != "producer" {
            parts.push(format!("for {}", person(p, f.producer_name.as_deref())));
        }
    }
    if let (Some(n), Some(what)) = (f.count, f.counts.as_deref()) {
        let what = if n == 1 {
            what.trim_end_matches('s')
        } else {
            what
        };
        parts.push(if f.here {
            format!("{n} {what}")
        } else {
            format!("{n} {what} (as a peer counts)")
        });
    }
    if !f.following {
        // Whole keys: a short one may name nothing on a node that has not heard of it.
        let fix = match (f.kind.as_str(), &f.producer) {
            ("group", _) => format!("chorus follow --group {}", f.id),
            ("producer", _) => format!("chorus follow --producer {}", f.id),
            (_, Some(p)) => format!("chorus follow --producer {p}"),
            _ => String::new(),
        };
        parts.push(format!("not followed: {fix}"));
    }
    parts.join(" · ")
}

/// A found thing as one line: kind, short id, name, details.
fn found_line(f: &chorus_client::Found) -> String {
    // A product's id is PRODUCER/CODE: its code is its name, the producer follows.
    let id = if f.kind == "product" {
        String::new()
    } else {
        format!("{}  ", short(&f.id))
    };
    let details = found_details(f);
    format!(
        "{:<9} {id}{}{}",
        f.kind,
        f.name,
        if details.is_empty() {
            String::new()
        } else {
            format!("  — {details}")
        }
    )
}

/// `chorus find`: a line per result, then who was asked.
pub(crate) fn found(r: &chorus_client::SearchResults) {
    if r.results.is_empty() {
        println!("nothing found for {:?}", r.query);
    }
    for f in &r.results {
        println!("{}", found_line(f));
    }
    if r.peers_asked == 0 {
        println!("(this node only: no connected peer answers searches)");
    } else {
        println!(
            "(this node and {} of {} peers asked{})",
            r.peers_answered,
            r.peers_asked,
            if r.peers_complete > 0 {
                format!(", {} keeping everything", r.peers_complete)
            } else {
                String::new()
            }
        );
    }
}

/// `chorus producers`, `products`, `groups`: a line each, and how many there are.
pub(crate) fn directory(d: &chorus_client::Directory, what: &str) {
    if d.results.is_empty() {
        println!("no {what} known to this node yet");
    }
    for f in &d.results {
        println!("{}", found_line(f));
    }
    if d.total > d.results.len() {
        println!(
            "({} of {} {what}; see --limit and --offset)",
            d.results.len(),
            d.total
        );
    }
}

/// `chorus petitions`: a line per petition.
pub(crate) fn petitions(p: &Petitions, producer: Option<&str>) {
    for t in &p.petitions {
        // The counts stand unpadded: the CLI printed them through serde_json's Display,
        // which ignores widths.
        // The state (open, withdrawn, closed by its deadline), and whether it is reached.
        let state = match (t.state.as_str(), t.reached) {
            ("open", true) => "reached".to_string(),
            (s, true) => format!("reached, {s}"),
            (s, false) => s.to_string(),
        };
        // A proposal or a campaign says so before its title.
        let variant = match t.variant.as_deref() {
            Some(v @ ("proposal" | "campaign")) => format!("[{v}] "),
            _ => String::new(),
        };
        println!(
            "{}  {}/{} {:<9} {variant}{}",
            short(&t.id),
            t.endorsers,
            t.threshold,
            state,
            t.title.as_deref().unwrap_or("")
        );
    }
    if p.partial {
        println!(
            "note: this node does not follow that producer, so its petitions are missing or \
             partial: chorus follow --producer {}",
            producer
                .map(shell_word)
                .unwrap_or_else(|| "PRODUCER".into())
        );
    } else if p.petitions.is_empty() {
        println!("no petitions on this node (find some with chorus find WORDS)");
    }
}

/// `chorus mine`: a line per record, then where it stands.
pub(crate) fn mine(m: &chorus_client::Mine) {
    if m.records.is_empty() {
        println!("nothing signed by {} on this node yet", short(&m.author));
    }
    for r in &m.records {
        let p = &r["body"]["pledge"];
        let pledge = match (p["value"].as_u64(), p["currency"].as_str()) {
            (Some(value), Some(currency)) => {
                let amount = chorus_protocol::Amount {
                    value,
                    currency: currency.to_string(),
                };
                format!(" pledging {amount}")
            }
            _ => String::new(),
        };
        // Whole ids in the state shortened, as everywhere in text.
        let state: Vec<String> = r["state"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .map(|w| match w.len() {
                64 if w.bytes().all(|b| b.is_ascii_hexdigit()) => short(w).to_string(),
                _ => w.to_string(),
            })
            .collect();
        println!("{}{pledge} — {}", record_line(r), state.join(" "));
    }
}

/// A time in milliseconds as RFC 3339 (seconds), or `-`.
pub(crate) fn when(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string(),
        None => "-".into(),
    }
}

/// A petition's variant for a person.
fn variant_words(v: &str) -> &str {
    match v {
        "demand" => "demand",
        "proposal" => "proposal (a feature for the product's specification)",
        "campaign" => "campaign (all or nothing: funded once the pledges reach the goal)",
        other => other,
    }
}

/// `chorus tally`.
pub(crate) fn tally(t: &Tally) {
    println!("petition  {}", t.id);
    if let Some(title) = &t.title {
        println!("title     {title}");
    }
    if let Some(v) = &t.variant {
        println!("variant   {}", variant_words(v));
    }
    println!(
        "producer  {}",
        person(&t.producer, t.producer_name.as_deref())
    );
    println!(
        "count     {} of {}{}",
        t.endorsers,
        t.threshold,
        if t.reached {
            " — reached".to_string()
        } else {
            String::new()
        }
    );
    if t.first_reached_at.is_some() {
        println!("reached   first {}", when(t.first_reached_at));
    }
    if let Some(g) = &t.group {
        println!(
            "group     {g} ({})",
            match t.member_endorsers {
                1 => "1 endorser is a member".to_string(),
                n => format!("{n} endorsers are members"),
            }
        );
    }
    if let Some(goal) = &t.goal {
        println!("goal      {goal}");
        println!(
            "pledged   {}{}",
            t.pledged_total.as_deref().unwrap_or("0"),
            if t.funded { " — funded" } else { "" }
        );
    } else {
        for (cur, v) in &t.pledged {
            println!("pledged   {v}{cur}");
        }
    }
    if t.deadline.is_some() {
        println!("deadline  {}", when(t.deadline));
    }
    match t.state.as_str() {
        "withdrawn" => println!(
            "state     withdrawn {}: endorsements made since do not count",
            when(t.withdrawn_at)
        ),
        "closed" => println!("state     closed (deadline passed)"),
        s => println!("state     {s}"),
    }
    match t.outcome.as_deref() {
        Some("failed") => {
            println!("outcome   failed: the goal was not met by the deadline; the pledges are void")
        }
        Some(o) => println!("outcome   {o}"),
        None => {}
    }
    if t.partial {
        println!(
            "note      partial: this node does not follow every topic these figures come from{}",
            match &t.group {
                Some(g) => format!(
                    " (chorus follow --group {g}; chorus follow --producer {})",
                    t.producer
                ),
                None => format!(" (chorus follow --producer {})", t.producer),
            }
        );
    }
    if let Some(tr) = &t.trusted {
        trusted(t, tr);
    }
    match &t.response {
        Some(r) => {
            println!(
                "response  {} ({}, {})",
                r.status,
                r.id,
                when(Some(r.created_at))
            );
            if let Some(text) = &r.text {
                println!("          \"{text}\"");
            }
        }
        None => println!("response  none yet"),
    }
}

/// The trusted view of a tally: the count with each actor once, the pledges recomputed,
/// and per watchdog whether it vouches for the current raw count or attested another.
fn trusted(t: &Tally, tr: &Trusted) {
    println!(
        "trusted   {} ({} left out: keys your watchdogs judged one actor count once)",
        tr.endorsers, tr.excluded
    );
    if t.goal.is_some() || !tr.pledged.is_empty() {
        let sums: Vec<String> = tr.pledged.iter().map(|(c, v)| format!("{v}{c}")).collect();
        println!(
            "trusted   pledged {}",
            if sums.is_empty() {
                "nothing".to_string()
            } else {
                sums.join(", ")
            }
        );
    }
    for a in &tr.attested {
        if a.current {
            println!(
                "vouched by {} ({} endorsers, root {})",
                person(&a.watchdog, a.watchdog_name.as_deref()),
                a.count,
                a.root
            );
        } else if a.count == t.endorsers {
            println!(
                "attested  {} attested {} at {}, now {} (a different set of endorsements)",
                person(&a.watchdog, a.watchdog_name.as_deref()),
                a.count,
                when(Some(a.created_at)),
                t.endorsers
            );
        } else {
            println!(
                "attested  {} attested {} at {}, now {}",
                person(&a.watchdog, a.watchdog_name.as_deref()),
                a.count,
                when(Some(a.created_at)),
                t.endorsers
            );
        }
    }
}

/// `chorus audit`: the totals, then a line per finding.
pub(crate) fn audit(a: &AuditReport) {
    println!(
        "{} records, {} verified, {} petitions: {} errors, {} warnings",
        a.records, a.verified, a.petitions, a.errors, a.warnings
    );
    for f in &a.findings {
        println!("{:<7} {:<15} {}", f.severity.as_str(), f.code, f.message);
    }
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// `chorus watch`: an event as one line for a person.
pub(crate) fn event(e: &SseEvent) -> String {
    match e.decode() {
        Ok(Event::Record(r)) => record_line(&r.record),
        Ok(Event::Tally(t)) => tally_line("tally    ", &t.tally),
        Ok(Event::Threshold(t)) => tally_line("THRESHOLD", &t.tally),
        Ok(Event::Funded(t)) => tally_line("FUNDED   ", &t.tally),
        Ok(Event::Ended(t)) => format!(
            "{} ({})",
            tally_line("ENDED    ", &t.tally),
            match t.tally.outcome.as_deref() {
                Some("failed") => "failed: its pledges are void",
                Some(o) => o,
                None => "ended",
            }
        ),
        Ok(Event::Response(r)) => format!(
            "response  {} answered {}: {}",
            person(&r.producer, r.producer_name.as_deref()),
            short(&r.target),
            r.status
        ),
        Ok(Event::Rating(r)) => {
            format!("rating    {} {:.2} from {}", r.product, r.mean, r.count)
        }
        // Anything else (`lagged`, an event this CLI does not know): its name and data.
        _ => format!(
            "{} {}",
            e.event,
            serde_json::from_str::<Value>(&e.data).unwrap_or_default()
        ),
    }
}

fn record_line(r: &Value) -> String {
    let b = &r["body"];
    let what = match r["kind"].as_str().unwrap_or("") {
        "review" => format!(
            "{}/5 for {} {}",
            b["rating"],
            b["product"]["code"].as_str().unwrap_or(""),
            b["title"].as_str().or(b["text"].as_str()).unwrap_or("")
        ),
        "petition" => {
            let variant = match &b["variant"] {
                Value::String(v) => v.clone(),
                Value::Object(o) => o.keys().next().cloned().unwrap_or_default(),
                _ => String::new(),
            };
            format!(
                "\"{}\" ({}threshold {})",
                b["title"].as_str().unwrap_or(""),
                match variant.as_str() {
                    "proposal" | "campaign" => format!("{variant}, "),
                    _ => String::new(),
                },
                b["threshold"]
            )
        }
        "endorsement" => format!("of {}", short(b["petition"].as_str().unwrap_or(""))),
        "response" => format!(
            "{} to {}",
            b["status"].as_str().unwrap_or(""),
            short(b["target"].as_str().unwrap_or(""))
        ),
        "retraction" => format!("of {}", short(b["target"].as_str().unwrap_or(""))),
        _ => String::new(),
    };
    format!(
        "{} {:<11} {} by {}  {what}",
        when(r["created_at"].as_u64()),
        r["kind"].as_str().unwrap_or(""),
        short(r["id"].as_str().unwrap_or("")),
        person(
            r["author"].as_str().unwrap_or(""),
            r["author_name"].as_str()
        )
    )
}

fn tally_line(label: &str, t: &Tally) -> String {
    format!(
        "{label} {} {}/{}{}{}  {}",
        short(&t.id),
        t.endorsers,
        t.threshold,
        match (&t.pledged_total, &t.goal) {
            (Some(p), Some(g)) => format!(" pledged {p} of {g}"),
            _ => String::new(),
        },
        if t.reached { " reached" } else { "" },
        t.title.as_deref().unwrap_or("")
    )
}
