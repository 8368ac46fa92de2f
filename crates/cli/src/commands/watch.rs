//! `chorus watch`: the live event stream, one line per event, resumed from a cursor kept in
//! the data dir (`watch/NAME`, one per filter).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chorus_client::{Event, EventsQuery};

use super::node::author_of;
use crate::args::{Cli, WatchArgs};
use crate::{print, running};

/// `chorus watch`.
pub(crate) fn watch(cli: &Cli, a: &WatchArgs) -> Result<ExitCode> {
    if let Some(k) = &a.kind {
        k.parse::<chorus_protocol::Kind>()
            .map_err(|e| anyhow::anyhow!("--kind {k}: {e}"))?;
    }
    let dir = cli.data_dir();
    let mine = a.producer.is_none() && a.petition.is_none() && a.group.is_none();
    // A producer given by a name or a short key is watched under its whole key.
    let producer = match &a.producer {
        Some(p) if p.len() != 64 => {
            let who = running::call(&dir, |c| c.person(p))?;
            Some(who.key)
        }
        other => other.clone(),
    };
    // A petition given by a short id is watched under its whole id (one cursor for it).
    let petition = match &a.petition {
        Some(p) if p.len() < 64 => {
            let rec = running::call(&dir, |c| c.record(p))?;
            Some(rec["id"].as_str().unwrap_or(p).to_string())
        }
        other => other.clone(),
    };
    // The cursor's file is named after what is watched: a whole id or key as it is, any
    // other text (a name, a prefix) by its hash, so no text the user types reaches the file
    // system as a path, and the name stays short.
    let safe = |t: &str| {
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            t.to_ascii_lowercase()
        } else {
            format!("text-{}", chorus_protocol::RecordId::of(t.as_bytes()))
        }
    };
    let name = match (&producer, &petition, &a.group) {
        (Some(p), _, _) => format!("producer-{}", safe(p)),
        (None, Some(p), _) => format!("petition-{}", safe(p)),
        (None, None, Some(g)) => format!("group-{}", safe(g)),
        _ => "mine".into(),
    };
    let name = match &a.kind {
        Some(k) => format!("{name}-{k}"),
        None => name,
    };
    let cursor_dir = dir.root().join("watch");
    std::fs::create_dir_all(&cursor_dir).context("cannot create the watch cursor dir")?;
    let cursor_file = cursor_dir.join(&name);
    let read = |f: &std::path::Path| -> Option<u64> {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    // Before `mine`, a plain watch followed the user's own feedback topic: go on from its
    // cursor rather than replay everything.
    let earlier = || {
        let me = author_of(&dir).ok()?;
        let old = match &a.kind {
            Some(k) => format!("producer-{me}-{k}"),
            None => format!("producer-{me}"),
        };
        read(&cursor_dir.join(old))
    };
    let cursor: Option<u64> = read(&cursor_file).or_else(|| if mine { earlier() } else { None });
    let after = cursor.unwrap_or(0);
    let q = EventsQuery {
        producer,
        petition,
        group: a.group.clone(),
        kind: a.kind.clone(),
        after: Some(after),
        follow: a.no_follow.then_some(false),
        // A first watch (no cursor yet) gets the topics' history too.
        history: cursor.is_none().then_some(true),
        mine,
    };
    let save = |seq: u64| -> Result<()> {
        let tmp = cursor_file.with_extension("tmp");
        std::fs::write(&tmp, seq.to_string())?;
        std::fs::rename(&tmp, &cursor_file)?;
        Ok(())
    };
    for e in running::call(&dir, |c| c.events(&q))? {
        let e = e?;
        if e.event == "ready" {
            if let Some(seq) = e.id {
                save(seq)?;
            }
            if cli.json {
                // Machines learn where the replay ended.
                println!("{}", e.data);
            } else if !a.no_follow {
                eprintln!("-- caught up; following live (Ctrl-C to stop) --");
            }
            continue;
        }
        if e.event == "error" {
            let message = match e.decode() {
                Ok(Event::Error(err)) => err.message,
                _ => "the stream failed".to_string(),
            };
            anyhow::bail!("{message}");
        }
        if cli.json {
            println!("{}", e.data);
        } else {
            println!("{}", print::event(&e));
        }
        std::io::stdout().flush()?;
        if let Some(seq) = e.id {
            save(seq)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
