//! What the node follows: `chorus follow` (without an option: show it) and `unfollow`.

use std::process::ExitCode;

use anyhow::Result;
use chorus_client::FollowRequest;

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
    let given = req.given();
    if given > 1 || (!add && given == 0) {
        anyhow::bail!("give exactly one of --producer, --group, --product or --all");
    }
    let now = running::call(&cli.data_dir(), |c| match (given, add) {
        (0, _) => c.following(),
        (_, true) => c.follow(&req),
        (_, false) => c.unfollow(&req),
    })?;
    print::answer(cli.json, &now, print::follow)?;
    Ok(ExitCode::SUCCESS)
}
