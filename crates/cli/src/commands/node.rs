//! Running a node, the identity in the data dir and the store offline: `chorus node`,
//! `init`, `id`, `compact`. The only commands that need no running node, and `chorus node` the only one with an async runtime.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chorus_node::net::{Multiaddr, Protocol};
use chorus_node::{Config, DataDir, NetEvent, Node, PASSPHRASE_ENV};
use chorus_protocol::AuthorKey;

use crate::args::{Cli, InitArgs, NodeArgs};

/// This user's author key, from the data dir (which must be initialised).
pub(crate) fn author_of(dir: &DataDir) -> Result<AuthorKey> {
    if !dir.author_key_path().exists() {
        anyhow::bail!(
            "no identity in {}: run `chorus init` first",
            dir.root().display()
        );
    }
    Ok(dir.author_public()?)
}

/// `chorus id`.
pub(crate) fn id(cli: &Cli) -> Result<ExitCode> {
    let author = author_of(&cli.data_dir())?;
    if cli.json {
        println!("{}", serde_json::json!({ "author": author.to_string() }));
    } else {
        println!("{author}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `chorus reset-store`.
pub(crate) fn reset_store(cli: &Cli) -> Result<ExitCode> {
    let dir = cli.data_dir();
    let store = dir.store_path();
    if !store.exists() {
        anyhow::bail!("no store in {}", dir.root().display());
    }
    if let chorus_node::Running::Node(info) = dir.running()? {
        anyhow::bail!(
            "a node is running on {} (pid {}): stop it first",
            dir.root().display(),
            info.pid
        );
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = dir.root().join(format!("store.set-aside-{secs}"));
    std::fs::rename(&store, &aside)
        .with_context(|| format!("cannot move {} to {}", store.display(), aside.display()))?;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({ "set_aside": aside.display().to_string() })
        );
    } else {
        println!(
            "the store is set aside as {}; the next `chorus node` starts with an empty store \
             and catches up from its peers",
            aside.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `chorus compact`.
pub(crate) fn compact(cli: &Cli) -> Result<ExitCode> {
    let dir = cli.data_dir();
    let store = dir.store_path();
    let start = std::time::Instant::now();
    let mut last = start;
    let c = chorus_node::store::compact::compact(&store, |keys| {
        if last.elapsed() >= std::time::Duration::from_secs(2) {
            last = std::time::Instant::now();
            eprintln!("  {keys} keys copied");
        }
    })
    .with_context(|| format!("cannot compact {}", store.display()))?;
    let secs = start.elapsed().as_secs_f64();
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "store": store.display().to_string(),
                "bytes_before": c.before,
                "bytes_after": c.after,
                "keys": c.keys,
                "seconds": secs,
            })
        );
    } else {
        println!(
            "compacted {}: {} -> {} bytes ({:.1}x smaller, {} keys, {secs:.1} s)",
            store.display(),
            c.before,
            c.after,
            c.before as f64 / c.after.max(1) as f64,
            c.keys
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `chorus init`.
pub(crate) fn init(cli: &Cli, a: &InitArgs) -> Result<ExitCode> {
    let dir = cli.data_dir();
    let from_env = std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty());
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
            let again =
                rpassword::prompt_password("again: ").context("cannot read a passphrase")?;
            if p.is_empty() || p != again {
                anyhow::bail!("the passphrases are empty or differ; nothing written");
            }
            Some(p)
        }
        (false, None) => None,
    };
    let created = dir
        .init_opts(passphrase.as_deref(), a.new_identity)
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

/// `chorus node`: checks the flags, then runs the node on a runtime of its own until Ctrl-C
/// or SIGTERM.
pub(crate) fn run(cli: &Cli, args: &NodeArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(serve(cli, args))
}

fn apply_overrides(mut c: Config, a: &NodeArgs) -> Config {
    if !a.listen.is_empty() {
        c.network.listen = a.listen.clone();
    }
    c.network.bootstrap.extend(a.bootstrap.iter().cloned());
    if let Some(api) = &a.api {
        c.api.listen = api.clone();
    }
    if let Some(metrics) = &a.metrics {
        c.metrics.listen = metrics.clone();
    }
    if a.no_mdns {
        c.network.mdns = false;
    }
    if a.follow_all {
        c.follow.all = true;
    }
    c
}

/// Registers for SIGINT and SIGTERM at once, and returns what waits for either. Registered
/// before the node starts: a signal that comes while it starts (a supervisor or a test
/// stopping it early) stops it cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
    };
    async move {
        #[cfg(unix)]
        if let Ok((mut term, mut int)) = signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Checks the flags before anything is written.
fn check_node_args(a: &NodeArgs) -> Result<()> {
    for l in &a.listen {
        l.parse::<Multiaddr>().with_context(|| {
            format!("--listen {l}: not a multiaddr (e.g. /ip4/0.0.0.0/tcp/7470)")
        })?;
    }
    for b in &a.bootstrap {
        let addr: Multiaddr = b
            .parse()
            .with_context(|| format!("--bootstrap {b}: not a multiaddr"))?;
        if !matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
            anyhow::bail!("--bootstrap {b}: must end in /p2p/PEERID");
        }
    }
    if let Some(api) = &a.api {
        api.parse::<std::net::SocketAddr>()
            .with_context(|| format!("--api {api}: expected HOST:PORT, e.g. 127.0.0.1:7471"))?;
    }
    if let Some(m) = &a.metrics {
        m.parse::<std::net::SocketAddr>()
            .with_context(|| format!("--metrics {m}: expected HOST:PORT, e.g. 127.0.0.1:9470"))?;
    }
    Ok(())
}

async fn serve(cli: &Cli, args: &NodeArgs) -> Result<ExitCode> {
    let stop = shutdown_signal();
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
    let status = match node.status().await {
        Ok(s) => s,
        Err(e) => {
            // A part of the node stopped at once (it cannot listen, say): its reason, and the
            // clean-up of a stop (api.json removed), rather than a bare "node stopped".
            let reason = match node.shutdown().await {
                Err(reason) => anyhow::Error::new(reason),
                Ok(()) => anyhow::Error::new(e),
            };
            return Err(reason.context("cannot start the node"));
        }
    };
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "started",
                "peer_id": status.peer_id,
                "author": node.author().to_string(),
                "metrics": node.metrics_addr().map(|a| format!("http://{a}/metrics")),
            })
        );
    } else {
        println!("peer id  {}", status.peer_id);
        println!("author   {}", node.author());
        println!("data dir {}", dir.root().display());
        if let Some(api) = node.api_addr() {
            println!("api      http://{api}");
        }
        if let Some(metrics) = node.metrics_addr() {
            println!("metrics  http://{metrics}/metrics");
        }
    }
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
