//! The node on the network: `chorus status`, `peers`, `sync`.

use std::process::ExitCode;

use anyhow::Result;
use chorus_client::SyncRequest;
use chorus_node::net::PeerId;

use crate::args::{Cli, SyncArgs};
use crate::{print, running};

/// `chorus status`.
pub(crate) fn status(cli: &Cli) -> Result<ExitCode> {
    let s = running::call(&cli.data_dir(), |c| c.status())?;
    print::answer(cli.json, &s, print::status)?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus open`: a one-time login link to the dashboard, opened with `$BROWSER` if set.
pub(crate) fn open(cli: &Cli) -> Result<ExitCode> {
    let link = running::call(&cli.data_dir(), |c| c.web_link())?;
    print::answer(cli.json, &link, |l| {
        println!("{}", l.url);
        println!(
            "(works once, within {} s; keep it to yourself: it logs a browser in)",
            l.expires_in_s
        );
    })?;
    if let Some(browser) = std::env::var_os("BROWSER").filter(|b| !b.is_empty()) {
        match std::process::Command::new(&browser).arg(&link.url).spawn() {
            Ok(_) => {}
            Err(e) => eprintln!(
                "could not start $BROWSER ({}): {e}; open the link by hand",
                browser.to_string_lossy()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `chorus peers`.
pub(crate) fn peers(cli: &Cli) -> Result<ExitCode> {
    let p = running::call(&cli.data_dir(), |c| c.peers())?;
    print::answer(cli.json, &p, print::peers)?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus sync`: fails (exit 2) when every pull failed.
pub(crate) fn sync(cli: &Cli, args: &SyncArgs) -> Result<ExitCode> {
    if let Some(p) = &args.peer {
        p.parse::<PeerId>()
            .map_err(|e| anyhow::anyhow!("--peer {p}: not a peer id: {e}"))?;
    }
    let req = SyncRequest {
        peer: args.peer.clone(),
    };
    let s = running::call(&cli.data_dir(), |c| c.sync(&req))?;
    print::answer(cli.json, &s, print::sync)?;
    let failed = s.pulls.iter().filter(|p| p.error.is_some()).count();
    if failed > 0 && failed == s.pulls.len() {
        anyhow::bail!("every pull failed");
    }
    Ok(ExitCode::SUCCESS)
}
