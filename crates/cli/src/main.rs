//! `chorus`: run a Chorus node and act on the network from the terminal.
//!
//! Exit codes: 0 success, 1 a check failed (reserved for audits and verification), 2 any
//! error (bad arguments, no node, I/O), with a one-line reason on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chorus_node::{Config, DataDir, NetEvent, Node};
use chorus_protocol::AuthorKey;
use clap::{Args, Parser, Subcommand};

/// Chorus: consumers speak to producers together, peer to peer.
#[derive(Parser, Debug)]
#[command(name = "chorus", version, about, long_about = None)]
struct Cli {
    /// Data dir (keys, config, store). Default: $CHORUS_DATA_DIR, else ~/.local/share/chorus.
    #[arg(long, global = true, env = "CHORUS_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node: creates the data dir, keys and config on first run, joins the network and
    /// serves until Ctrl-C or SIGTERM.
    Node(NodeArgs),
    /// Create the data dir, keys and config without starting a node.
    Init,
    /// Print this user's author key (the key that signs their records).
    Id,
    /// Show the running node: peer id, addresses, peers, records, followed shards.
    Status,
    /// Catch up now: pull what this node lacks on the topics it follows from every
    /// connected peer (or one), and report what each pull did.
    Sync(SyncArgs),
}

#[derive(Args, Debug)]
struct SyncArgs {
    /// Pull only from this connected peer (a peer id, as `chorus status` shows them).
    #[arg(long, value_name = "PEERID")]
    peer: Option<String>,
}

#[derive(Args, Debug)]
struct NodeArgs {
    /// Listen on this multiaddr (repeatable), e.g. /ip4/0.0.0.0/tcp/7470. Replaces the
    /// config's list.
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Bootstrap peer, a multiaddr ending in /p2p/PEERID (repeatable). Added to the config's.
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Serve the local API on HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    api: Option<String>,
    /// Do not discover peers on the LAN with mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// Follow (store) everything: archive and watchdog nodes.
    #[arg(long)]
    follow_all: bool,
}

fn data_dir(cli: &Cli) -> DataDir {
    match &cli.data_dir {
        Some(d) => DataDir::new(d),
        None => DataDir::default_location(),
    }
}

fn author_of(dir: &DataDir) -> Result<AuthorKey> {
    let key = dir.author_key().with_context(|| {
        format!(
            "no identity in {}: run `chorus init` first",
            dir.root().display()
        )
    })?;
    Ok(AuthorKey(key.verifying_key().to_bytes()))
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
    let dir = data_dir(cli);
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
fn api_call(
    dir: &DataDir,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let no_node = || {
        anyhow::anyhow!(
            "no node is running for {} (start one with `chorus node`)",
            dir.root().display()
        )
    };
    let info = std::fs::read_to_string(dir.api_info_path()).map_err(|_| no_node())?;
    let info: serde_json::Value = serde_json::from_str(&info).context("api.json is corrupt")?;
    let addr = info["addr"]
        .as_str()
        .context("api.json has no addr")?
        .to_string();
    let token = dir.api_token().context("cannot read the API token")?;
    let url = format!("http://{addr}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let auth = format!("Bearer {token}");
    let sent = match body {
        None => agent.get(&url).header("Authorization", &auth).call(),
        Some(b) => agent.post(&url).header("Authorization", &auth).send_json(b),
    };
    let mut resp = sent.map_err(|_| no_node())?;
    let status = resp.status();
    let body: serde_json::Value = resp
        .body_mut()
        .read_json()
        .with_context(|| format!("{url}: the node's answer is not JSON"))?;
    if !status.is_success() {
        anyhow::bail!(
            "{} ({})",
            body["message"].as_str().unwrap_or("request failed"),
            body["code"].as_str().unwrap_or("error")
        );
    }
    Ok(body)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Status => {
            let dir = data_dir(&cli);
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
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync(args) => {
            if let Some(p) = &args.peer {
                p.parse::<chorus_node::net::PeerId>()
                    .map_err(|e| anyhow::anyhow!("--peer {p}: not a peer id: {e}"))?;
            }
            let dir = data_dir(&cli);
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
        Command::Init => {
            let dir = data_dir(&cli);
            let created = dir
                .init()
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
            let author = author_of(&data_dir(&cli))?;
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
    let cli = Cli::parse();
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
