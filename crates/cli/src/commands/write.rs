//! Records made for this user, each signed by the node: `chorus profile`, `review`,
//! `group create|join|admit`, `petition open`, `endorse`, `retract`, `respond`, `attest`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chorus_client::{
    AdmitRequest, AttestRequest, Client, Created, EndorseRequest, Error, GroupRequest,
    PetitionRequest, ProfileRequest, RespondRequest, RetractRequest, ReviewRequest,
};
use hex::FromHex;

use crate::args::{
    AttestCommand, Cli, EndorseArgs, IdArg, PetitionArgs, ProfileArgs, RespondArgs, ReviewArgs,
};
use crate::{print, running};

/// Asks the running node to make a record, and prints what it answered.
fn make(cli: &Cli, call: impl FnOnce(&Client) -> Result<Created, Error>) -> Result<ExitCode> {
    let created = running::call(&cli.data_dir(), call)?;
    print::created(cli.json, &created)?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus profile`.
pub(crate) fn profile(cli: &Cli, a: &ProfileArgs) -> Result<ExitCode> {
    let req = ProfileRequest {
        name: a.name.clone(),
        role: a.role.clone(),
        about: a.about.clone(),
    };
    make(cli, |c| c.profile(&req))
}

/// `chorus review`.
pub(crate) fn review(cli: &Cli, a: &ReviewArgs) -> Result<ExitCode> {
    let req = ReviewRequest {
        producer: a.producer.to_string(),
        product: a.product.clone(),
        rating: a.rating,
        title: a.title.clone(),
        text: a.text.clone(),
    };
    make(cli, |c| c.review(&req))
}

/// `chorus group create`.
pub(crate) fn create_group(
    cli: &Cli,
    name: &str,
    approval: bool,
    charter: &Option<String>,
) -> Result<ExitCode> {
    let req = GroupRequest {
        name: name.to_string(),
        approval,
        charter: charter.clone(),
    };
    make(cli, |c| c.create_group(&req))
}

/// `chorus group join`.
pub(crate) fn join_group(cli: &Cli, group: &str) -> Result<ExitCode> {
    make(cli, |c| c.join_group(group))
}

/// `chorus group admit`.
pub(crate) fn admit(cli: &Cli, group: &str, member: &str) -> Result<ExitCode> {
    let req = AdmitRequest {
        member: member.to_string(),
    };
    make(cli, |c| c.admit(group, &req))
}

/// `chorus petition open`.
pub(crate) fn open_petition(cli: &Cli, a: &PetitionArgs) -> Result<ExitCode> {
    let variant = if a.campaign {
        "campaign"
    } else if a.proposal {
        "proposal"
    } else {
        "demand"
    };
    let req = PetitionRequest {
        producer: a.producer.to_string(),
        product: a.product.clone(),
        group: a.group.clone(),
        title: a.title.clone(),
        text: a.text.clone(),
        threshold: a.threshold,
        deadline: a.deadline.clone(),
        variant: Some(variant.to_string()),
        goal: a.goal.as_ref().map(|g| g.to_string()),
    };
    make(cli, |c| c.open_petition(&req))
}

/// `chorus endorse`.
pub(crate) fn endorse(cli: &Cli, a: &EndorseArgs) -> Result<ExitCode> {
    let req = EndorseRequest {
        petition: a.id.to_string(),
        comment: a.comment.clone(),
        pledge: a.pledge.as_ref().map(|p| p.to_string()),
    };
    make(cli, |c| c.endorse(&req))
}

/// `chorus retract`.
pub(crate) fn retract(cli: &Cli, a: &IdArg) -> Result<ExitCode> {
    let req = RetractRequest {
        id: a.id.to_string(),
    };
    make(cli, |c| c.retract(&req))
}

/// `chorus respond`.
pub(crate) fn respond(cli: &Cli, a: &RespondArgs) -> Result<ExitCode> {
    if let Some(r) = &a.root {
        <[u8; 32]>::from_hex(r)
            .ok()
            .with_context(|| format!("--root {r}: not 64 hex digits"))?;
    }
    let req = RespondRequest {
        target: a.id.to_string(),
        status: a.status.clone(),
        text: a.text.clone(),
        root: a.root.clone(),
    };
    make(cli, |c| c.respond(&req))
}

/// `chorus attest`.
pub(crate) fn attest(cli: &Cli, a: &AttestCommand) -> Result<ExitCode> {
    let about = |verdict: &str, record: &str, note: &Option<String>| AttestRequest {
        verdict: verdict.to_string(),
        record: Some(record.to_string()),
        keys: None,
        note: note.clone(),
    };
    let req = match a {
        AttestCommand::Valid { id, note } => about("valid", id, note),
        AttestCommand::Invalid { id, note } => about("invalid", id, note),
        AttestCommand::Count { petition, note } => about("verified-count", petition, note),
        AttestCommand::OneActor { keys, note } => AttestRequest {
            verdict: "one-actor".to_string(),
            record: None,
            keys: Some(keys.iter().map(|k| k.to_string()).collect()),
            note: note.clone(),
        },
    };
    make(cli, |c| c.attest(&req))
}

/// Most bytes of wire records sent in one request (the node takes 2 MiB by default).
const IMPORT_BYTES: usize = 1 << 20;
/// Most records in one request (the node's limit).
const IMPORT_RECORDS: usize = 1_000;

/// `chorus import`.
pub(crate) fn import(cli: &Cli, file: &str) -> Result<ExitCode> {
    use std::io::Read;
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
    } else {
        bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    }
    let wires = chorus_protocol::cbor::split_sequence(&bytes, usize::MAX)
        .with_context(|| format!("{file}: not records in wire form one after another"))?;
    anyhow::ensure!(!wires.is_empty(), "{file} holds no record");
    // Requests within the node's limits, in order.
    let mut batches: Vec<Vec<u8>> = Vec::new();
    let mut in_batch = 0;
    for w in &wires {
        let full = batches
            .last()
            .is_none_or(|b| b.len() + w.len() > IMPORT_BYTES || in_batch >= IMPORT_RECORDS);
        if full {
            batches.push(Vec::new());
            in_batch = 0;
        }
        if let Some(b) = batches.last_mut() {
            b.extend_from_slice(w);
            in_batch += 1;
        }
    }
    let dir = cli.data_dir();
    let mut totals = [0usize; 4];
    let mut results = Vec::new();
    let progress = batches.len() > 1 && !cli.json;
    for batch in &batches {
        let answer = running::call(&dir, |c| c.submit_records(batch))?;
        totals[0] += answer.stored;
        totals[1] += answer.duplicate;
        totals[2] += answer.waiting;
        totals[3] += answer.rejected;
        results.extend(answer.results);
        if progress {
            eprintln!("imported {} of {} records", results.len(), wires.len());
        }
    }
    let [stored, duplicate, waiting, rejected] = totals;
    if cli.json {
        print::json(&chorus_client::SubmittedRecords {
            results,
            stored,
            duplicate,
            waiting,
            rejected,
        })?;
    } else {
        for (n, r) in results.iter().enumerate() {
            if r.outcome == "rejected" {
                println!(
                    "record {} ({}): refused, {}: {}",
                    n + 1,
                    r.id.as_deref().unwrap_or("no id"),
                    r.code.as_deref().unwrap_or("error"),
                    r.message.as_deref().unwrap_or("")
                );
            }
        }
        println!(
            "{stored} stored, {duplicate} already stored, {waiting} waiting for what they point at, {rejected} refused"
        );
    }
    Ok(if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
