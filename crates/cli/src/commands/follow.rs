//! What the node follows: `chorus follow` (without an option: show it; with one, catch up on
//! it at once) and `unfollow`; the watchdogs it trusts: `chorus trust`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use anyhow::Result;
use chorus_client::{FollowCount, FollowRequest, SyncRequest, TrustRequest};

use crate::args::{Cli, FollowArgs};
use crate::{print, running};

/// `chorus follow` (`add`) or `chorus unfollow`.
pub(crate) fn follow(cli: &Cli, a: &FollowArgs, add: bool) -> Result<ExitCode> {
    let req = FollowRequest {
        producer: a.producer.clone(),
        group: a.group.clone(),
        product: a.product.clone(),
        all: a.all,
    };
    // `chorus follow` alone shows what the node follows.
    let show = match req.check() {
        Ok(()) => false,
        Err(FollowCount::None) if add => true,
        Err(_) => anyhow::bail!("give exactly one of --producer, --group, --product or --all"),
    };
    let now = running::call(&cli.data_dir(), |c| match (show, add) {
        (true, _) => c.following(),
        (false, true) => c.follow(&req),
        (false, false) => c.unfollow(&req),
    })?;
    print::answer(cli.json, &now, print::follow)?;
    if add && !show {
        catch_up(cli)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// How often the progress of a catch-up is shown.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Pulls what the node now follows from every connected peer at once (rather than at the
/// next scheduled pull), showing progress while it runs: a line updated in place on a
/// terminal, a JSON line per step with `--json` (on stderr, so stdout stays one answer).
fn catch_up(cli: &Cli) -> Result<()> {
    let dir = cli.data_dir();
    let before = running::call(&dir, |c| c.status())?.records;
    let (tx, rx) = std::sync::mpsc::channel();
    let puller = dir.clone();
    std::thread::spawn(move || {
        let _ = tx.send(running::call(&puller, |c| c.sync(&SyncRequest::default())));
    });
    let tty = std::io::stderr().is_terminal();
    let mut shown = false;
    let answer = loop {
        match rx.recv_timeout(PROGRESS_EVERY) {
            Ok(answer) => break answer?,
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("the catch-up stopped"),
            Err(RecvTimeoutError::Timeout) => {
                let now = running::call(&dir, |c| c.status())?.records;
                let stored = now.saturating_sub(before);
                if cli.json {
                    eprintln!(
                        "{}",
                        serde_json::json!({"type": "progress", "stored": stored})
                    );
                } else if tty {
                    eprint!("\rcatching up: {stored} records stored so far");
                    shown = true;
                }
            }
        }
    };
    if shown {
        eprintln!();
    }
    let stored: u64 = answer.pulls.iter().map(|p| p.stored).sum();
    if cli.json {
        eprintln!(
            "{}",
            serde_json::json!({"type": "caught_up", "stored": stored, "peers": answer.pulls.len()})
        );
    } else if answer.pulls.is_empty() {
        eprintln!("no peer connected yet: the node catches up as peers connect");
    } else {
        eprintln!(
            "caught up from {} peer{}: {stored} new record{}",
            answer.pulls.len(),
            if answer.pulls.len() == 1 { "" } else { "s" },
            if stored == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// `chorus trust add|remove` (a watchdog, and whether to trust it) or `chorus trust list`.
pub(crate) fn trust(cli: &Cli, change: Option<(&str, bool)>) -> Result<ExitCode> {
    let now = running::call(&cli.data_dir(), |c| match change {
        None => c.trust(),
        Some((w, add)) => {
            let req = TrustRequest {
                watchdog: w.to_string(),
            };
            if add {
                c.trust_add(&req)
            } else {
                c.trust_remove(&req)
            }
        }
    })?;
    print::answer(cli.json, &now, print::trust)?;
    Ok(ExitCode::SUCCESS)
}
