//! The node running for a data dir: found through its `api.json` and `api.token`, called
//! through [`chorus_client::Client`], its failures said in the CLI's words.

use anyhow::{Context, Result};
use chorus_client::{ApiInfo, Client, Error};
use chorus_node::DataDir;

/// Calls the node running for `dir`; says plainly when there is none.
pub(crate) fn call<T>(dir: &DataDir, f: impl FnOnce(&Client) -> Result<T, Error>) -> Result<T> {
    let client = connect(dir)?;
    f(&client).map_err(|e| match e {
        // A node that did not stop cleanly leaves its api.json behind: nobody answers there.
        Error::Unreachable { .. } => no_node(dir),
        Error::Timeout => anyhow::anyhow!("the node did not answer in time"),
        e => e.into(),
    })
}

/// A client of the node whose address `api.json` gives, with the data dir's token.
fn connect(dir: &DataDir) -> Result<Client> {
    // A node writes api.json when it starts and removes it when it stops.
    let info = std::fs::read_to_string(dir.api_info_path()).map_err(|_| no_node(dir))?;
    let info: ApiInfo = serde_json::from_str(&info).context("api.json is corrupt")?;
    let token = dir.api_token().context("cannot read the API token")?;
    Ok(Client::new(&info.addr, &token))
}

fn no_node(dir: &DataDir) -> anyhow::Error {
    anyhow::anyhow!(
        "no node is running for {} (start one with `chorus node`)",
        dir.root().display()
    )
}
