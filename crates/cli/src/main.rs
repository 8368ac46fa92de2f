//! `chorus`: run a Chorus node and act on the network from the terminal.
//!
//! Exit codes: 0 success, 1 a check failed (reserved for audits and verification), 2 any
//! error (bad arguments, no node, I/O), with a one-line reason on stderr.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chorus_node::{Config, DataDir, NetEvent, Node};
use chorus_protocol::AuthorKey;
use clap::Parser;

mod args;

use args::{
    AttestCommand, Cli, Command, FollowArgs, GroupCommand, NodeArgs, PetitionCommand, WatchArgs,
};

fn author_of(dir: &DataDir) -> Result<AuthorKey> {
    if !dir.author_key_path().exists() {
        anyhow::bail!(
            "no identity in {}: run `chorus init` first",
            dir.root().display()
        );
    }
    Ok(dir.author_public()?)
}

fn apply_overrides(mut c: Config, a: &NodeArgs) -> Config {
    if !a.listen.is_empty() {
        c.network.listen = a.listen.clone();
    }
    c.network.bootstrap.extend(a.bootstrap.iter().cloned());
    if let Some(api) = &a.api {
        c.api.listen = api.clone();
    }
    if a.no_mdns {
        c.network.mdns = false;
    }
    if a.follow_all {
        c.follow.all = true;
    }
    c
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Checks the flags before anything is written.
fn check_node_args(a: &NodeArgs) -> Result<()> {
    for l in &a.listen {
        l.parse::<libp2p_addr::Multiaddr>().with_context(|| {
            format!("--listen {l}: not a multiaddr (e.g. /ip4/0.0.0.0/tcp/7470)")
        })?;
    }
    for b in &a.bootstrap {
        let addr: libp2p_addr::Multiaddr = b
            .parse()
            .with_context(|| format!("--bootstrap {b}: not a multiaddr"))?;
        if !matches!(addr.iter().last(), Some(libp2p_addr::Protocol::P2p(_))) {
            anyhow::bail!("--bootstrap {b}: must end in /p2p/PEERID");
        }
    }
    if let Some(api) = &a.api {
        api.parse::<std::net::SocketAddr>()
            .with_context(|| format!("--api {api}: expected HOST:PORT, e.g. 127.0.0.1:7471"))?;
    }
    Ok(())
}

async fn run_node(cli: &Cli, args: &NodeArgs) -> Result<ExitCode> {
    check_node_args(args)?;
    let dir = cli.data_dir();
    let created = dir
        .init()
        .with_context(|| format!("cannot create data dir {}", dir.root().display()))?;
    if created.dir || created.author_key {
        eprintln!(
            "created data dir {} (keys and config.toml)",
            dir.root().display()
        );
    }
    let config = apply_overrides(dir.config().context("cannot read config")?, args);
    let (node, mut events) = Node::start(&dir, config)
        .await
        .context("cannot start the node")?;
    let status = node.status().await?;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({ "event": "started", "peer_id": status.peer_id, "author": node.author().to_string() })
        );
    } else {
        println!("peer id  {}", status.peer_id);
        println!("author   {}", node.author());
        println!("data dir {}", dir.root().display());
        if let Some(api) = node.api_addr() {
            println!("api      http://{api}");
        }
    }
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            ev = events.recv() => match ev {
                Some(NetEvent::Listening(addr)) => {
                    if cli.json {
                        println!("{}", serde_json::json!({ "event": "listening", "addr": addr.to_string() }));
                    } else {
                        println!("listening {addr}");
                    }
                }
                Some(NetEvent::PeerConnected(p)) => tracing::info!(peer = %p, "peer connected"),
                Some(NetEvent::PeerBanned(p)) => tracing::warn!(peer = %p, "peer banned"),
                None => break,
            }
        }
    }
    eprintln!("shutting down...");
    node.shutdown().await.context("shutdown")?;
    Ok(ExitCode::SUCCESS)
}

/// Multiaddr types, re-exported through the node crate's libp2p.
mod libp2p_addr {
    pub use chorus_node::net::{Multiaddr, Protocol};
}

/// Calls the running node's API: finds its address in `api.json` and its token in
/// `api.token`, and says plainly when no node is running. `body` makes it a POST.
/// Where the running node's API is and its token; says plainly when no node is running.
fn endpoint(dir: &DataDir) -> Result<(String, String)> {
    let info = std::fs::read_to_string(dir.api_info_path()).map_err(|_| no_node(dir))?;
    let info: serde_json::Value = serde_json::from_str(&info).context("api.json is corrupt")?;
    let addr = info["addr"]
        .as_str()
        .context("api.json has no addr")?
        .to_string();
    let token = dir.api_token().context("cannot read the API token")?;
    Ok((addr, format!("Bearer {token}")))
}

/// A failed call: the node is not there, or it did not answer in time.
fn transport(dir: &DataDir, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Timeout(_) => anyhow::anyhow!("the node did not answer in time"),
        _ => no_node(dir),
    }
}

fn no_node(dir: &DataDir) -> anyhow::Error {
    anyhow::anyhow!(
        "no node is running for {} (start one with `chorus node`)",
        dir.root().display()
    )
}

/// A failed answer's JSON error as one line.
fn api_error(resp: &mut ureq::http::Response<ureq::Body>) -> anyhow::Error {
    let body: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
    anyhow::anyhow!(
        "{} ({})",
        body["message"].as_str().unwrap_or("request failed"),
        body["code"].as_str().unwrap_or("error")
    )
}

fn agent(timeout: Option<std::time::Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout)
        .build()
        .into()
}

/// Calls the running node's API (`body` makes it a POST) and returns its JSON answer.
fn api_call(
    dir: &DataDir,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let (addr, auth) = endpoint(dir)?;
    let url = format!("http://{addr}{path}");
    // A catch-up or an audit may take minutes on a big store; everything else is quick.
    let slow = path.starts_with("/v1/sync") || path.starts_with("/v1/audit");
    let limit = std::time::Duration::from_secs(if slow { 3600 } else { 60 });
    let agent = agent(Some(limit));
    let sent = match body {
        None => agent.get(&url).header("Authorization", &auth).call(),
        Some(b) => agent.post(&url).header("Authorization", &auth).send_json(b),
    };
    let mut resp = sent.map_err(|e| transport(dir, e))?;
    if !resp.status().is_success() {
        return Err(api_error(&mut resp));
    }
    resp.body_mut()
        .read_json()
        .with_context(|| format!("{url}: the node's answer is not JSON"))
}

/// Gets raw bytes from the running node's API.
fn api_bytes(dir: &DataDir, path: &str) -> Result<Vec<u8>> {
    let (addr, auth) = endpoint(dir)?;
    let mut resp = agent(Some(std::time::Duration::from_secs(120)))
        .get(&format!("http://{addr}{path}"))
        .header("Authorization", &auth)
        .call()
        .map_err(|e| transport(dir, e))?;
    if !resp.status().is_success() {
        return Err(api_error(&mut resp));
    }
    resp.body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .context("the node's answer broke off")
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

async fn call(
    cli: &Cli,
    path: String,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let dir = cli.data_dir();
    tokio::task::spawn_blocking(move || api_call(&dir, &path, body)).await?
}

/// Prints what a record-creating call answered: the id (or the whole answer with --json).
fn created(cli: &Cli, v: &serde_json::Value) {
    if cli.json {
        println!("{v}");
        return;
    }
    println!("{}", v["id"].as_str().unwrap_or(""));
    match v["outcome"].as_str() {
        Some("duplicate") => eprintln!("(already stored: the same record exists)"),
        Some("waiting") => eprintln!("(kept: it counts once the record it points at arrives)"),
        _ => {}
    }
}

fn follow_body(a: &FollowArgs) -> Option<serde_json::Value> {
    let mut body = serde_json::Map::new();
    if let Some(p) = &a.producer {
        body.insert("producer".into(), p.to_string().into());
    }
    if let Some(g) = &a.group {
        body.insert("group".into(), g.to_string().into());
    }
    if let Some(p) = &a.product {
        body.insert("product".into(), p.clone().into());
    }
    if a.all {
        body.insert("all".into(), true.into());
    }
    (!body.is_empty()).then(|| body.into())
}

fn print_follow(v: &serde_json::Value) {
    if v["all"].as_bool() == Some(true) {
        println!("all      everything");
    }
    for (label, field) in [
        ("producer", "producers"),
        ("group", "groups"),
        ("product", "products"),
    ] {
        for x in v[field].as_array().into_iter().flatten() {
            println!("{label:<8} {}", x.as_str().unwrap_or(""));
        }
    }
}

fn when(ms: &serde_json::Value) -> String {
    match ms.as_u64() {
        Some(ms) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string(),
        None => "-".into(),
    }
}

fn print_tally(t: &serde_json::Value) {
    println!("petition  {}", t["id"].as_str().unwrap_or(""));
    if let Some(title) = t["title"].as_str() {
        println!("title     {title}");
    }
    println!("producer  {}", t["producer"].as_str().unwrap_or(""));
    println!(
        "count     {} of {}{}",
        t["endorsers"],
        t["threshold"],
        if t["reached"].as_bool() == Some(true) {
            format!(" — reached {}", when(&t["reached_at"]))
        } else {
            String::new()
        }
    );
    if let Some(g) = t["group"].as_str() {
        println!(
            "group     {g} ({} endorsers are members)",
            t["member_endorsers"]
        );
    }
    if let Some(goal) = t["goal"].as_str() {
        println!("goal      {goal}");
    }
    if let Some(p) = t["pledged"].as_object() {
        for (cur, v) in p {
            println!("pledged   {}{cur}", v.as_str().unwrap_or(""));
        }
    }
    if !t["deadline"].is_null() {
        println!("deadline  {}", when(&t["deadline"]));
    }
    println!(
        "state     {}",
        if t["withdrawn"].as_bool() == Some(true) {
            "withdrawn"
        } else if t["open"].as_bool() == Some(true) {
            "open"
        } else {
            "closed"
        }
    );
    if let Some(tr) = t["trusted"].as_object() {
        let vouched: Vec<&str> = tr["vouched_by"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        println!(
            "trusted   {} ({} excluded as flagged by your watchdogs); vouched by: {}",
            tr["endorsers"],
            tr["excluded"],
            if vouched.is_empty() {
                "none".to_string()
            } else {
                vouched.join(", ")
            }
        );
    }
    match t["response"].as_object() {
        Some(r) => println!(
            "response  {} ({}, {})",
            r["status"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or(""),
            when(&r["created_at"])
        ),
        None => println!("response  none yet"),
    }
}

/// Reads a server-sent event stream from the running node, calling `each(event, id, data)`
/// per event until it returns false or the stream ends.
fn api_stream(
    dir: &DataDir,
    path: &str,
    mut each: impl FnMut(&str, Option<u64>, &str) -> Result<bool>,
) -> Result<()> {
    use std::io::BufRead;
    let (addr, auth) = endpoint(dir)?;
    let mut resp = agent(None)
        .get(&format!("http://{addr}{path}"))
        .header("Authorization", &auth)
        .call()
        .map_err(|_| no_node(dir))?;
    if !resp.status().is_success() {
        return Err(api_error(&mut resp));
    }
    let reader = std::io::BufReader::new(resp.into_body().into_reader());
    let (mut event, mut id, mut data) = (String::new(), None, String::new());
    for line in reader.lines() {
        let line = line.context("the stream from the node broke")?;
        if line.is_empty() {
            if !data.is_empty() && !each(&event, id, &data)? {
                return Ok(());
            }
            event.clear();
            id = None;
            data.clear();
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    Ok(())
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// One line for a person.
fn describe_event(kind: &str, v: &serde_json::Value) -> String {
    match kind {
        "record" => {
            let r = &v["record"];
            let b = &r["body"];
            let what = match r["kind"].as_str().unwrap_or("") {
                "review" => format!(
                    "{}/5 for {} {}",
                    b["rating"],
                    b["product"]["code"].as_str().unwrap_or(""),
                    b["title"].as_str().or(b["text"].as_str()).unwrap_or("")
                ),
                "petition" => format!(
                    "\"{}\" (threshold {})",
                    b["title"].as_str().unwrap_or(""),
                    b["threshold"]
                ),
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
                when(&r["created_at"]),
                r["kind"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or(""),
                short(r["author"].as_str().unwrap_or(""))
            )
        }
        "tally" | "threshold" => {
            let t = &v["tally"];
            format!(
                "{} {} {}/{}{}  {}",
                if kind == "threshold" {
                    "THRESHOLD"
                } else {
                    "tally    "
                },
                t["id"].as_str().unwrap_or(""),
                t["endorsers"],
                t["threshold"],
                if t["reached"].as_bool() == Some(true) {
                    " reached"
                } else {
                    ""
                },
                t["title"].as_str().unwrap_or("")
            )
        }
        "response" => format!(
            "response  {} answered {}: {}",
            short(v["producer"].as_str().unwrap_or("")),
            v["target"].as_str().unwrap_or(""),
            v["status"].as_str().unwrap_or("")
        ),
        "rating" => format!(
            "rating    {} {:.2} from {}",
            v["product"].as_str().unwrap_or(""),
            v["mean"].as_f64().unwrap_or(0.0),
            v["count"]
        ),
        other => format!("{other} {v}"),
    }
}

fn watch(cli: &Cli, a: &WatchArgs) -> Result<()> {
    let dir = cli.data_dir();
    let producer = match (a.producer, a.petition, a.group) {
        (Some(p), _, _) => Some(p),
        (None, None, None) => Some(author_of(&dir)?),
        _ => None,
    };
    let name = match (producer, a.petition, a.group) {
        (Some(p), _, _) => format!("producer-{p}"),
        (None, Some(p), _) => format!("petition-{p}"),
        (None, None, Some(g)) => format!("group-{g}"),
        _ => "all".into(),
    };
    let name = match &a.kind {
        Some(k) => format!("{name}-{k}"),
        None => name,
    };
    let cursor_dir = dir.root().join("watch");
    std::fs::create_dir_all(&cursor_dir).context("cannot create the watch cursor dir")?;
    let cursor_file = cursor_dir.join(&name);
    let after: u64 = std::fs::read_to_string(&cursor_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let path = format!(
        "/v1/events{}",
        query(&[
            ("producer", producer.map(|p| p.to_string())),
            ("petition", a.petition.map(|p| p.to_string())),
            ("group", a.group.map(|g| g.to_string())),
            ("kind", a.kind.clone()),
            ("after", Some(after.to_string())),
            ("follow", a.no_follow.then(|| "false".to_string())),
        ])
    );
    let save = |seq: u64| -> Result<()> {
        let tmp = cursor_file.with_extension("tmp");
        std::fs::write(&tmp, seq.to_string())?;
        std::fs::rename(&tmp, &cursor_file)?;
        Ok(())
    };
    let json = cli.json;
    let follow = !a.no_follow;
    api_stream(&dir, &path, |event, id, data| {
        let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        if event == "ready" {
            if let Some(seq) = id {
                save(seq)?;
            }
            if json {
                // Machines learn where the replay ended.
                println!("{data}");
            } else if follow {
                eprintln!("-- caught up; following live (Ctrl-C to stop) --");
            }
            return Ok(true);
        }
        if event == "error" {
            anyhow::bail!("{}", v["message"].as_str().unwrap_or("the stream failed"));
        }
        if json {
            println!("{data}");
        } else {
            println!("{}", describe_event(event, &v));
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        if let Some(seq) = id {
            save(seq)?;
        }
        Ok(true)
    })
}

fn print_audit(cli: &Cli, v: &serde_json::Value) {
    if cli.json {
        println!("{v}");
        return;
    }
    println!(
        "{} records, {} verified, {} petitions: {} errors, {} warnings",
        v["records"], v["verified"], v["petitions"], v["errors"], v["warnings"]
    );
    for f in v["findings"].as_array().into_iter().flatten() {
        println!(
            "{:<7} {:<15} {}",
            f["severity"].as_str().unwrap_or(""),
            f["code"].as_str().unwrap_or(""),
            f["message"].as_str().unwrap_or("")
        );
    }
}

fn hex32(b: &[u8; 32]) -> String {
    hex::encode(b)
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let id: chorus_protocol::RecordId = s.parse().ok()?;
    Some(*id.as_bytes())
}

fn fetch_bundle(cli: &Cli, petition: &chorus_protocol::RecordId) -> Result<Vec<u8>> {
    let dir = cli.data_dir();
    let path = format!("/v1/bundle/{petition}");
    api_bytes(&dir, &path)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Attest(a) => {
            let body = match a {
                AttestCommand::Valid { id, note } => {
                    serde_json::json!({ "verdict": "valid", "record": id.to_string(), "note": note })
                }
                AttestCommand::Invalid { id, note } => {
                    serde_json::json!({ "verdict": "invalid", "record": id.to_string(), "note": note })
                }
                AttestCommand::Count { petition, note } => serde_json::json!({
                    "verdict": "verified-count", "record": petition.to_string(), "note": note
                }),
                AttestCommand::OneActor { keys, note } => serde_json::json!({
                    "verdict": "one-actor",
                    "keys": keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
                    "note": note,
                }),
            };
            created(&cli, &call(&cli, "/v1/attest".into(), Some(body)).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(a) => {
            let cli2 = Cli {
                data_dir: cli.data_dir.clone(),
                json: cli.json,
                command: Command::Id,
            };
            let petition = a.petition;
            let bytes =
                tokio::task::spawn_blocking(move || fetch_bundle(&cli2, &petition)).await??;
            let bundle = chorus_protocol::bundle::Bundle::decode(&bytes)?;
            let v = chorus_protocol::bundle::verify(&bundle)
                .map_err(|e| anyhow::anyhow!("the node's own bundle does not verify: {e}"))?;
            std::fs::write(&a.output, &bytes)
                .with_context(|| format!("cannot write {}", a.output.display()))?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": a.output.display().to_string(), "petition": a.petition.to_string(),
                        "count": v.count, "root": hex32(&v.root), "bytes": bytes.len(),
                    })
                );
            } else {
                println!(
                    "wrote {}: {} endorsers of {}, root {}",
                    a.output.display(),
                    v.count,
                    a.petition,
                    hex32(&v.root)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { file } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let checked = chorus_protocol::bundle::Bundle::decode(&bytes)
                .and_then(|b| chorus_protocol::bundle::verify(&b));
            match checked {
                Ok(v) => {
                    let title = match &v.petition.record().body {
                        chorus_protocol::Body::Petition(p) => p.title.clone(),
                        _ => String::new(),
                    };
                    if cli.json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "valid": true, "petition": v.petition.id().to_string(),
                                "title": title, "count": v.count, "root": hex32(&v.root),
                                "response": v.response.as_ref().map(|r| serde_json::json!({"id": r.0.to_string(), "status": r.1, "cites_root": v.response_cites_root})),
                            })
                        );
                    } else {
                        println!(
                            "valid: {} endorsers of \"{title}\" ({}), root {}",
                            v.count,
                            v.petition.id(),
                            hex32(&v.root)
                        );
                        if let Some((id, status)) = &v.response {
                            println!("producer's answer: {status} ({id})");
                            match v.response_cites_root {
                                Some(true) => println!(
                                    "the answer cites this root: the producer acknowledged all {} endorsements",
                                    v.count
                                ),
                                Some(false) => println!("the answer cites another root"),
                                None => {}
                            }
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    if cli.json {
                        println!(
                            "{}",
                            serde_json::json!({ "valid": false, "error": e.to_string() })
                        );
                    }
                    eprintln!("chorus: {}: {e}", file.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Proof {
            petition,
            endorsement,
        } => {
            let cli2 = Cli {
                data_dir: cli.data_dir.clone(),
                json: cli.json,
                command: Command::Id,
            };
            let p = *petition;
            let bytes = tokio::task::spawn_blocking(move || fetch_bundle(&cli2, &p)).await??;
            let v =
                chorus_protocol::bundle::verify(&chorus_protocol::bundle::Bundle::decode(&bytes)?)
                    .map_err(|e| anyhow::anyhow!("the node's own bundle does not verify: {e}"))?;
            let path = chorus_protocol::bundle::merkle_proof(&v.counted, endorsement)
                .with_context(|| {
                    format!("{endorsement} is not a counted endorsement of {petition}")
                })?;
            let proof = serde_json::json!({
                "petition": petition.to_string(),
                "endorsement": endorsement.to_string(),
                "count": v.count,
                "root": hex32(&v.root),
                "path": path.iter().map(|s| serde_json::json!({"left": s.left, "hash": hex32(&s.hash)})).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&proof)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::VerifyProof { file } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
            } else {
                std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
            };
            let v: serde_json::Value =
                serde_json::from_str(&text).context("the proof is not JSON")?;
            let root = v["root"]
                .as_str()
                .and_then(unhex32)
                .context("the proof has no valid root")?;
            let id: chorus_protocol::RecordId = v["endorsement"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .context("the proof has no valid endorsement id")?;
            let mut path = Vec::new();
            for step in v["path"].as_array().context("the proof has no path")? {
                path.push(chorus_protocol::bundle::Step {
                    left: step["left"].as_bool().context("a path step has no side")?,
                    hash: step["hash"]
                        .as_str()
                        .and_then(unhex32)
                        .context("a path step has no hash")?,
                });
            }
            if chorus_protocol::bundle::verify_proof(&root, &id, &path) {
                println!(
                    "valid: endorsement {id} is counted under root {}",
                    hex32(&root)
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "chorus: the proof does not hold: {id} is not under root {}",
                    hex32(&root)
                );
                Ok(ExitCode::from(1))
            }
        }
        Command::Audit(a) => {
            let v = if a.offline {
                let dir = cli.data_dir();
                if !dir.store_path().exists() {
                    anyhow::bail!("no store in {}", dir.root().display());
                }
                let cfg = dir.config()?.audit;
                tokio::task::spawn_blocking(move || -> Result<serde_json::Value> {
                    let store = chorus_node::Store::open(dir.store_path()).map_err(|e| {
                        anyhow::anyhow!(
                            "cannot open the store ({e}); if its node is running, audit without --offline"
                        )
                    })?;
                    let report = chorus_node::audit::audit(&store, &cfg, chorus_node::clock::now_ms())?;
                    Ok(serde_json::to_value(report)?)
                })
                .await??
            } else {
                call(&cli, "/v1/audit".into(), None).await?
            };
            print_audit(&cli, &v);
            let errors = v["errors"].as_u64().unwrap_or(0);
            let warnings = v["warnings"].as_u64().unwrap_or(0);
            Ok(if errors > 0 || (a.strict && warnings > 0) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Watch(a) => {
            if let Some(k) = &a.kind {
                k.parse::<chorus_protocol::Kind>()
                    .map_err(|e| anyhow::anyhow!("--kind {k}: {e}"))?;
            }
            let cli2 = Cli {
                data_dir: cli.data_dir.clone(),
                json: cli.json,
                command: Command::Id,
            };
            let args = WatchArgs {
                producer: a.producer,
                petition: a.petition,
                group: a.group,
                kind: a.kind.clone(),
                no_follow: a.no_follow,
            };
            tokio::task::spawn_blocking(move || watch(&cli2, &args)).await??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Peers => {
            let v = call(&cli, "/v1/peers".into(), None).await?;
            if cli.json {
                println!("{v}");
            } else {
                for p in v["peers"].as_array().into_iter().flatten() {
                    println!("{}", p.as_str().unwrap_or(""));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Follow(a) | Command::Unfollow(a) => {
            let add = matches!(cli.command, Command::Follow(_));
            let body = follow_body(a);
            let given = usize::from(a.producer.is_some())
                + usize::from(a.group.is_some())
                + usize::from(a.product.is_some())
                + usize::from(a.all);
            if given > 1 || (!add && given == 0) {
                anyhow::bail!("give exactly one of --producer, --group, --product or --all");
            }
            let v = match body {
                None => call(&cli, "/v1/follow".into(), None).await?,
                Some(b) => {
                    let path = if add { "/v1/follow" } else { "/v1/unfollow" };
                    call(&cli, path.into(), Some(b)).await?
                }
            };
            if cli.json {
                println!("{v}");
            } else {
                print_follow(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile(a) => {
            let body = serde_json::json!({ "name": a.name, "role": a.role, "about": a.about });
            created(&cli, &call(&cli, "/v1/profile".into(), Some(body)).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Review(a) => {
            let body = serde_json::json!({
                "producer": a.producer.to_string(), "product": a.product,
                "rating": a.rating, "title": a.title, "text": a.text,
            });
            created(&cli, &call(&cli, "/v1/reviews".into(), Some(body)).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Reviews(a) => {
            let q = query(&[
                ("producer", Some(a.producer.to_string())),
                ("product", Some(a.product.clone())),
                ("limit", Some("1000".into())),
            ]);
            let v = call(&cli, format!("/v1/reviews{q}"), None).await?;
            if cli.json {
                println!("{v}");
            } else {
                for r in v["reviews"].as_array().into_iter().flatten() {
                    let body = &r["body"];
                    println!(
                        "{} {}/5  {}  {}{}",
                        if r["counted"].as_bool() == Some(true) {
                            "*"
                        } else {
                            " "
                        },
                        body["rating"],
                        r["id"].as_str().unwrap_or(""),
                        body["title"]
                            .as_str()
                            .map(|t| format!("{t}: "))
                            .unwrap_or_default(),
                        body["text"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rating(a) => {
            let q = query(&[
                ("producer", Some(a.producer.to_string())),
                ("product", Some(a.product.clone())),
            ]);
            let v = call(&cli, format!("/v1/rating{q}"), None).await?;
            if cli.json {
                println!("{v}");
            } else {
                let h: Vec<String> = v["histogram"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, n)| format!("{}:{n}", i + 1))
                    .collect();
                println!(
                    "{:.2} from {} reviews  [{}]",
                    v["mean"].as_f64().unwrap_or(0.0),
                    v["count"],
                    h.join(" ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Group(g) => {
            match g {
                GroupCommand::Create {
                    name,
                    approval,
                    charter,
                } => {
                    let body = serde_json::json!({ "name": name, "approval": approval, "charter": charter });
                    created(&cli, &call(&cli, "/v1/groups".into(), Some(body)).await?);
                }
                GroupCommand::Join { group } => {
                    let v = call(
                        &cli,
                        format!("/v1/groups/{group}/join"),
                        Some(serde_json::json!({})),
                    )
                    .await?;
                    created(&cli, &v);
                }
                GroupCommand::Admit { group, member } => {
                    let body = serde_json::json!({ "member": member.to_string() });
                    created(
                        &cli,
                        &call(&cli, format!("/v1/groups/{group}/admit"), Some(body)).await?,
                    );
                }
                GroupCommand::Show { group } => {
                    let v = call(&cli, format!("/v1/groups/{group}"), None).await?;
                    if cli.json {
                        println!("{v}");
                    } else {
                        println!("group      {}", v["id"].as_str().unwrap_or(""));
                        println!("name       {}", v["name"].as_str().unwrap_or(""));
                        if let Some(c) = v["charter"].as_str() {
                            println!("charter    {c}");
                        }
                        println!("founder    {}", v["founder"].as_str().unwrap_or(""));
                        println!("admission  {}", v["admission"].as_str().unwrap_or(""));
                        println!("members    {}", v["members"]);
                        println!(
                            "you        {}",
                            if v["member"].as_bool() == Some(true) {
                                "a member"
                            } else {
                                "not a member"
                            }
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Petition(PetitionCommand::Open(a)) => {
            let variant = if a.campaign {
                "campaign"
            } else if a.proposal {
                "proposal"
            } else {
                "demand"
            };
            let body = serde_json::json!({
                "producer": a.producer.to_string(),
                "product": a.product,
                "group": a.group.map(|g| g.to_string()),
                "title": a.title,
                "text": a.text,
                "threshold": a.threshold,
                "deadline": a.deadline,
                "variant": variant,
                "goal": a.goal.as_ref().map(|g| g.to_string()),
            });
            created(&cli, &call(&cli, "/v1/petitions".into(), Some(body)).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Endorse(a) => {
            let body = serde_json::json!({
                "petition": a.id.to_string(),
                "comment": a.comment,
                "pledge": a.pledge.as_ref().map(|p| p.to_string()),
            });
            created(&cli, &call(&cli, "/v1/endorse".into(), Some(body)).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Retract(a) => {
            let body = serde_json::json!({ "id": a.id.to_string() });
            created(&cli, &call(&cli, "/v1/retract".into(), Some(body)).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Petitions(a) => {
            let q = query(&[
                ("producer", a.producer.map(|p| p.to_string())),
                ("group", a.group.map(|g| g.to_string())),
                ("open", a.open.then(|| "true".to_string())),
            ]);
            let v = call(&cli, format!("/v1/petitions{q}"), None).await?;
            if cli.json {
                println!("{v}");
            } else {
                for p in v["petitions"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {:>6}/{:<6} {:<8} {}",
                        p["id"].as_str().unwrap_or(""),
                        p["endorsers"],
                        p["threshold"],
                        if p["reached"].as_bool() == Some(true) {
                            "reached"
                        } else if p["open"].as_bool() == Some(true) {
                            "open"
                        } else {
                            "closed"
                        },
                        p["title"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show(a) => {
            let v = call(&cli, format!("/v1/records/{}", a.id), None).await?;
            if cli.json {
                println!("{v}");
            } else {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tally(a) => {
            let v = call(&cli, format!("/v1/tally/{}", a.id), None).await?;
            if cli.json {
                println!("{v}");
            } else {
                print_tally(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Respond(a) => {
            if let Some(r) = &a.root {
                unhex32(r).with_context(|| format!("--root {r}: not 64 hex digits"))?;
            }
            let body = serde_json::json!({ "target": a.id.to_string(), "status": a.status, "text": a.text, "root": a.root });
            created(&cli, &call(&cli, "/v1/respond".into(), Some(body)).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let dir = cli.data_dir();
            let s =
                tokio::task::spawn_blocking(move || api_call(&dir, "/v1/status", None)).await??;
            if cli.json {
                println!("{s}");
            } else {
                println!("peer id  {}", s["peer_id"].as_str().unwrap_or(""));
                println!("author   {}", s["author"].as_str().unwrap_or(""));
                for a in s["listen_addrs"].as_array().into_iter().flatten() {
                    println!("listen   {}", a.as_str().unwrap_or(""));
                }
                println!("peers    {}", s["peers"]);
                println!("records  {} ({} waiting)", s["records"], s["waiting"]);
                let shards: Vec<&str> = s["shards"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str())
                    .collect();
                println!("shards   {}", shards.join(" "));
                let f = &s["following"];
                if f["all"].as_bool() == Some(true) {
                    println!("follows  everything");
                }
                for (label, field) in [
                    ("producer", "producers"),
                    ("group", "groups"),
                    ("product", "products"),
                ] {
                    for x in f[field].as_array().into_iter().flatten() {
                        println!("follows  {label} {}", x.as_str().unwrap_or(""));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync(args) => {
            if let Some(p) = &args.peer {
                p.parse::<chorus_node::net::PeerId>()
                    .map_err(|e| anyhow::anyhow!("--peer {p}: not a peer id: {e}"))?;
            }
            let dir = cli.data_dir();
            let body = serde_json::json!({ "peer": args.peer });
            let s = tokio::task::spawn_blocking(move || api_call(&dir, "/v1/sync", Some(body)))
                .await??;
            let pulls = s["pulls"].as_array().cloned().unwrap_or_default();
            if cli.json {
                println!("{s}");
            } else if pulls.is_empty() {
                println!("no connected peers to sync with");
            } else {
                for p in &pulls {
                    let peer = p["peer"].as_str().unwrap_or("?");
                    match p["error"].as_str() {
                        Some(e) => println!("{peer}: stopped: {e} (stored {})", p["stored"]),
                        None => println!(
                            "{peer}: {} round trips, {} missing here, {} stored",
                            p["rounds"], p["needed"], p["stored"]
                        ),
                    }
                }
            }
            let failed = pulls.iter().filter(|p| !p["error"].is_null()).count();
            if failed > 0 && failed == pulls.len() {
                anyhow::bail!("every pull failed");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Node(args) => run_node(&cli, args).await,
        Command::Init(a) => {
            let dir = cli.data_dir();
            let from_env = std::env::var(chorus_node::PASSPHRASE_ENV)
                .ok()
                .filter(|p| !p.is_empty());
            let passphrase = match (a.passphrase, from_env) {
                (_, Some(p)) => Some(p),
                (true, None) if dir.author_key_path().exists() => {
                    anyhow::bail!(
                        "{} already exists: a key is never overwritten",
                        dir.author_key_path().display()
                    )
                }
                (true, None) => {
                    let p = rpassword::prompt_password("passphrase for the new author key: ")
                        .context("cannot read a passphrase (or set CHORUS_PASSPHRASE)")?;
                    let again = rpassword::prompt_password("again: ")
                        .context("cannot read a passphrase")?;
                    if p.is_empty() || p != again {
                        anyhow::bail!("the passphrases are empty or differ; nothing written");
                    }
                    Some(p)
                }
                (false, None) => None,
            };
            let created = dir
                .init_with(passphrase.as_deref())
                .with_context(|| format!("cannot create data dir {}", dir.root().display()))?;
            let author = author_of(&dir)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "data_dir": dir.root().display().to_string(),
                        "author": author.to_string(),
                        "created": created.author_key || created.config || created.node_key,
                    })
                );
            } else {
                let what = if created.author_key {
                    "created"
                } else {
                    "already initialised"
                };
                println!("{what}: {}", dir.root().display());
                println!("author {author}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Id => {
            let author = author_of(&cli.data_dir())?;
            if cli.json {
                println!("{}", serde_json::json!({ "author": author.to_string() }));
            } else {
                println!("{author}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    // Output piped into a reader that stops early (`chorus petitions | head`) is not an
    // error worth a backtrace: leave quietly, as other tools do.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version: not errors.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `chorus` alone, or `chorus group`: show what can follow.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // One line: what is wrong, with what it names (clap's usage hints are left to
            // `--help`).
            let text = e.to_string();
            let what: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            let line = what.join(" ");
            eprintln!("chorus: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHORUS_LOG")
                .unwrap_or_else(|_| "info,libp2p=warn,libp2p_kad=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chorus: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chorus: {e:#}");
            ExitCode::from(2)
        }
    }
}
