//! The node running for a data dir: found through its `api.json` and `api.token`, called
//! through [`chorus_client::Client`], its failures said in the CLI's words.
//!
//! The token goes only to the process that wrote `api.json`: [`DataDir::running`] checks that
//! it is alive and is that very process (pid and start time) before the token is even read.
//! A node that was killed leaves its `api.json` behind, and anything may listen on its port
//! since; such a file is removed and the user told.

use anyhow::{Context, Result};
use chorus_client::{Client, Error};
use chorus_node::{DataDir, Running};

/// Calls the node running for `dir`; says plainly when there is none.
pub(crate) fn call<T>(dir: &DataDir, f: impl FnOnce(&Client) -> Result<T, Error>) -> Result<T> {
    let client = connect(dir)?;
    f(&client).map_err(|e| match e {
        // The node's process is alive but its API does not answer (it is stopping, say).
        Error::Unreachable { .. } => no_node(dir),
        Error::Timeout => anyhow::anyhow!("the node did not answer in time"),
        e => e.into(),
    })
}

/// A client of the node `api.json` names, with its token, once the node is checked.
fn connect(dir: &DataDir) -> Result<Client> {
    let info = match dir.running().context("cannot check the running node")? {
        Running::Node(info) => info,
        Running::None => return Err(no_node(dir)),
        Running::Stale { pid } => anyhow::bail!(
            "no node is running for {} (stale api.json from pid {pid} removed; start one with \
             `chorus node`)",
            dir.root().display()
        ),
    };
    let token = dir.api_token().context("cannot read the API token")?;
    Ok(Client::new(&info.addr, &token))
}

fn no_node(dir: &DataDir) -> anyhow::Error {
    anyhow::anyhow!(
        "no node is running for {} (start one with `chorus node`)",
        dir.root().display()
    )
}
