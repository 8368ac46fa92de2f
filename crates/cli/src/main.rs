//! `chorus`: run a Chorus node and act on the network from the terminal.
//!
//! Exit codes: 0 success, 1 a check failed (reserved for audits and verification), 2 any
//! error (bad arguments, no node, I/O), with a one-line reason on stderr.
//!
//! This file parses the command line, sets up logging and hands the command to its module
//! under `commands`; those that act on a running node call it through `running`, the one
//! place that finds it, and print its answers through `print`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

mod args;
mod commands;
mod print;
mod running;

use args::{Cli, Command, GroupCommand, PetitionCommand, TrustCommand};
use commands::{follow, network, node, read, watch, watchdog, write};

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Node(a) => node::run(cli, a),
        Command::Init(a) => node::init(cli, a),
        Command::Id => node::id(cli),
        Command::Compact => node::compact(cli),
        Command::ResetStore => node::reset_store(cli),
        Command::Status => network::status(cli),
        Command::Open => network::open(cli),
        Command::Sync(a) => network::sync(cli, a),
        Command::Peers => network::peers(cli),
        Command::Follow(a) => follow::follow(cli, a, true),
        Command::Unfollow(a) => follow::follow(cli, a, false),
        Command::Trust(TrustCommand::Add { watchdog }) => {
            follow::trust(cli, Some((watchdog.as_str(), true)))
        }
        Command::Trust(TrustCommand::Remove { watchdog }) => {
            follow::trust(cli, Some((watchdog.as_str(), false)))
        }
        Command::Trust(TrustCommand::List) => follow::trust(cli, None),
        Command::Profile(a) => write::profile(cli, a),
        Command::Review(a) => write::review(cli, a),
        Command::Reviews(a) => read::reviews(cli, a),
        Command::Rating(a) => read::rating(cli, a),
        Command::Group(GroupCommand::Create {
            name,
            approval,
            charter,
        }) => write::create_group(cli, name, *approval, charter),
        Command::Group(GroupCommand::Join { group }) => write::join_group(cli, group),
        Command::Group(GroupCommand::Admit { group, member }) => write::admit(cli, group, member),
        Command::Group(GroupCommand::Show { group }) => read::group(cli, group),
        Command::Group(GroupCommand::Requests { group }) => read::group_requests(cli, group),
        Command::Petition(PetitionCommand::Open(a)) => write::open_petition(cli, a),
        Command::Endorse(a) => write::endorse(cli, a),
        Command::Retract(a) => write::retract(cli, a),
        Command::Petitions(a) => read::petitions(cli, a),
        Command::Find(a) => read::find(cli, a),
        Command::Producers(a) => read::producers(cli, a),
        Command::Products { producer } => read::products(cli, producer),
        Command::Groups(a) => read::groups(cli, a),
        Command::Show(a) => read::show(cli, a),
        Command::Tally(a) => read::tally(cli, a),
        Command::Respond(a) => write::respond(cli, a),
        Command::Audit(a) => watchdog::audit(cli, a),
        Command::Attest(a) => write::attest(cli, a),
        Command::Export(a) => watchdog::export(cli, a),
        Command::Verify { file } => watchdog::verify(cli, file),
        Command::Proof {
            petition,
            endorsement,
        } => watchdog::proof(cli, petition, endorsement),
        Command::VerifyProof { file } => watchdog::verify_proof(file),
        Command::Watch(a) => watch::watch(cli, a),
        Command::Import { file } => write::import(cli, file),
        Command::Mine => read::mine(cli),
    }
}

fn main() -> ExitCode {
    // Output piped into a reader that stops early (`chorus petitions | head`) is not an
    // error worth a backtrace: leave quietly, as other tools do.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version: not errors.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `chorus` alone, or `chorus group`: show what can follow.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // One line: what is wrong, with what it names (clap's usage hints are left to
            // `--help`).
            let text = e.to_string();
            let what: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            let line = what.join(" ");
            eprintln!("chorus: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHORUS_LOG")
                .unwrap_or_else(|_| "info,libp2p=warn,libp2p_kad=error".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chorus: {e:#}");
            ExitCode::from(2)
        }
    }
}
