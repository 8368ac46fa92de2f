//! Records made for this user, each signed by the node: `chorus profile`, `review`,
//! `group create|join|admit`, `petition open`, `endorse`, `retract`, `respond`, `attest`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chorus_client::{
    AdmitRequest, AttestRequest, Client, Created, EndorseRequest, Error, GroupRequest,
    PetitionRequest, ProfileRequest, RespondRequest, RetractRequest, ReviewRequest,
};
use chorus_protocol::RecordId;
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
pub(crate) fn join_group(cli: &Cli, group: &RecordId) -> Result<ExitCode> {
    make(cli, |c| c.join_group(&group.to_string()))
}

/// `chorus group admit`.
pub(crate) fn admit(cli: &Cli, group: &RecordId, member: &str) -> Result<ExitCode> {
    let req = AdmitRequest {
        member: member.to_string(),
    };
    make(cli, |c| c.admit(&group.to_string(), &req))
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
        group: a.group.map(|g| g.to_string()),
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
    let about = |verdict: &str, record: &RecordId, note: &Option<String>| AttestRequest {
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
