//! The watchdog's tools: `chorus audit` (of the running node, or offline of a stopped node's
//! store), `export` of a petition's bundle, and the offline checks `verify`, `proof` and
//! `verify-proof`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chorus_client::AuditReport;
use chorus_node::{DataDir, Store};
use chorus_protocol::bundle::{self, Bundle, Step, Verified};
use chorus_protocol::{Body, RecordId};
use hex::FromHex;

use crate::args::{AuditArgs, Cli, ExportArgs};
use crate::{print, running};

/// `chorus audit`: exit 1 with errors (and with warnings under `--strict`).
pub(crate) fn audit(cli: &Cli, a: &AuditArgs) -> Result<ExitCode> {
    let dir = cli.data_dir();
    let report = if a.offline {
        offline_audit(&dir)?
    } else {
        running::call(&dir, |c| c.audit())?
    };
    print::answer(cli.json, &report, print::audit)?;
    Ok(if report.errors > 0 || (a.strict && report.warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The audit of a stopped node's store, read here.
fn offline_audit(dir: &DataDir) -> Result<AuditReport> {
    if !dir.store_path().exists() {
        anyhow::bail!("no store in {}", dir.root().display());
    }
    let cfg = dir.config()?.audit;
    let store = Store::open(dir.store_path()).map_err(|e| {
        if e.is_corruption() {
            // Says what can be done with a damaged store.
            anyhow::anyhow!("{e}")
        } else {
            anyhow::anyhow!(
                "cannot open the store ({e}); if its node is running, audit without --offline"
            )
        }
    })?;
    Ok(chorus_node::audit::audit(
        &store,
        &cfg,
        chorus_node::clock::now_ms(),
    )?)
}

/// The running node's bundle of `petition`, checked here: its bytes and what it proves.
fn node_bundle(cli: &Cli, petition: &str) -> Result<(Vec<u8>, Verified)> {
    let bytes = running::call(&cli.data_dir(), |c| c.bundle(petition))?;
    let v = bundle::verify(&Bundle::decode(&bytes)?)
        .map_err(|e| anyhow::anyhow!("the node's own bundle does not verify: {e}"))?;
    Ok((bytes, v))
}

/// `chorus export`.
pub(crate) fn export(cli: &Cli, a: &ExportArgs) -> Result<ExitCode> {
    let (bytes, v) = node_bundle(cli, &a.petition)?;
    std::fs::write(&a.output, &bytes)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "file": a.output.display().to_string(), "petition": v.petition.id().to_string(),
                "count": v.count, "root": hex::encode(v.root), "bytes": bytes.len(),
            })
        );
    } else {
        println!(
            "wrote {}: {} endorsers of {}, root {}",
            a.output.display(),
            v.count,
            v.petition.id(),
            hex::encode(v.root)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `chorus verify`: exit 1 naming the culprit when the bundle does not hold.
pub(crate) fn verify(cli: &Cli, file: &Path) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let v = match Bundle::decode(&bytes).and_then(|b| bundle::verify(&b)) {
        Ok(v) => v,
        Err(e) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": false, "error": e.to_string() })
                );
            }
            eprintln!("chorus: {}: {e}", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let title = match &v.petition.record().body {
        Body::Petition(p) => p.title.clone(),
        _ => String::new(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "valid": true, "petition": v.petition.id().to_string(),
                "title": title, "count": v.count, "root": hex::encode(v.root),
                "response": v.response.as_ref().map(|r| serde_json::json!({"id": r.0.to_string(), "status": r.1, "cites_root": v.response_cites_root})),
                "pledged": v.pledged.as_ref().map(|(total, cur)| format!("{}.{:02}{cur}", total / 100, total % 100)),
                "funded": v.funded,
                "outcome": v.outcome(now),
                "state": v.state(now),
                "withdrawn_at": v.withdrawn_at,
                "first_reached_at": v.first_reached_at,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "valid: {} endorsers of \"{title}\" ({}), root {}",
        v.count,
        v.petition.id(),
        hex::encode(v.root)
    );
    match v.state(now) {
        "withdrawn" => println!(
            "state: withdrawn by its author at {} (what was made after does not count)",
            print::when(v.withdrawn_at)
        ),
        "closed" => println!("state: closed (its deadline has passed)"),
        _ => println!("state: open"),
    }
    match v.first_reached_at {
        Some(at) => println!("first reached: {}", print::when(Some(at))),
        None => println!("first reached: never"),
    }
    if let Some((total, cur)) = &v.pledged {
        println!(
            "pledged: {}.{:02}{cur}{}",
            total / 100,
            total % 100,
            match v.outcome(now) {
                Some("funded") => " — ended: funded".to_string(),
                Some("failed") =>
                    " — ended: failed (the goal was not met; the pledges are void)".to_string(),
                _ if v.funded => " — funded so far; the campaign is running".to_string(),
                _ => " — the campaign is running".to_string(),
            }
        );
    }
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
    Ok(ExitCode::SUCCESS)
}

/// `chorus proof`: the JSON proof that `endorsement` is counted under the petition's root.
pub(crate) fn proof(cli: &Cli, petition: &str, endorsement: &str) -> Result<ExitCode> {
    let (_, v) = node_bundle(cli, petition)?;
    let petition = v.petition.id();
    let endorsement = &full_id(cli, endorsement)?;
    let path = bundle::merkle_proof(&v.counted, endorsement)
        .with_context(|| format!("{endorsement} is not a counted endorsement of {petition}"))?;
    let proof = serde_json::json!({
        "petition": petition.to_string(),
        "endorsement": endorsement.to_string(),
        "count": v.count,
        "root": hex::encode(v.root),
        "path": path.iter().map(|s| serde_json::json!({"left": s.left, "hash": hex::encode(s.hash)})).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&proof)?);
    Ok(ExitCode::SUCCESS)
}

/// `chorus verify-proof`: exit 1 when the proof does not hold.
pub(crate) fn verify_proof(file: &str) -> Result<ExitCode> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    let v: serde_json::Value = serde_json::from_str(&text).context("the proof is not JSON")?;
    let hash = |v: &serde_json::Value| v.as_str().and_then(|s| <[u8; 32]>::from_hex(s).ok());
    let root = hash(&v["root"]).context("the proof has no valid root")?;
    let id: RecordId = v["endorsement"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("the proof has no valid endorsement id")?;
    let mut path = Vec::new();
    for step in v["path"].as_array().context("the proof has no path")? {
        path.push(Step {
            left: step["left"].as_bool().context("a path step has no side")?,
            hash: hash(&step["hash"]).context("a path step has no hash")?,
        });
    }
    if bundle::verify_proof(&root, &id, &path) {
        println!(
            "valid: endorsement {id} is counted under root {}",
            hex::encode(root)
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "chorus: the proof does not hold: {id} is not under root {}",
            hex::encode(root)
        );
        Ok(ExitCode::from(1))
    }
}

/// The whole id of a record given whole or by a short form (the running node resolves it).
fn full_id(cli: &Cli, text: &str) -> Result<RecordId> {
    if let Ok(id) = text.parse() {
        return Ok(id);
    }
    let rec = running::call(&cli.data_dir(), |c| c.record(text))?;
    rec["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("the node named no id for {text}"))
}
