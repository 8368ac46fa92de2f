//! What the node follows: `chorus follow` (without an option: show it) and `unfollow`; the
//! watchdogs it trusts: `chorus trust`.

use std::process::ExitCode;

use anyhow::Result;
use chorus_client::{FollowCount, FollowRequest, TrustRequest};
use chorus_protocol::AuthorKey;

use crate::args::{Cli, FollowArgs};
use crate::{print, running};

/// `chorus follow` (`add`) or `chorus unfollow`.
pub(crate) fn follow(cli: &Cli, a: &FollowArgs, add: bool) -> Result<ExitCode> {
    let req = FollowRequest {
        producer: a.producer.map(|p| p.to_string()),
        group: a.group.map(|g| g.to_string()),
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
    Ok(ExitCode::SUCCESS)
}

/// `chorus trust add|remove` (a watchdog, and whether to trust it) or `chorus trust list`.
pub(crate) fn trust(cli: &Cli, change: Option<(&AuthorKey, bool)>) -> Result<ExitCode> {
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
