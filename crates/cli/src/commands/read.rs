//! What the node's store knows: `chorus reviews`, `rating`, `group show`, `petitions`,
//! `show`, `tally`, `mine`; and finding: `find`, `producers`, `products`, `groups`.

use std::process::ExitCode;

use anyhow::Result;
use chorus_client::{DirectoryQuery, PetitionsQuery, ProductQuery, ProductsQuery, SearchQuery};

use crate::args::{Cli, FindArgs, IdArg, PageArgs, PetitionOrder, PetitionsArgs, ProductArgs};
use crate::{print, running};

/// `chorus reviews`: the first thousand (the node's largest page).
pub(crate) fn reviews(cli: &Cli, a: &ProductArgs) -> Result<ExitCode> {
    let q = ProductQuery {
        producer: a.producer.to_string(),
        product: a.product.clone(),
        after: None,
        limit: Some(1000),
    };
    let r = running::call(&cli.data_dir(), |c| c.reviews(&q))?;
    print::answer(cli.json, &r, |r| print::reviews(r, &a.producer))?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus rating`.
pub(crate) fn rating(cli: &Cli, a: &ProductArgs) -> Result<ExitCode> {
    let q = ProductQuery {
        producer: a.producer.to_string(),
        product: a.product.clone(),
        after: None,
        limit: None,
    };
    let r = running::call(&cli.data_dir(), |c| c.rating(&q))?;
    print::answer(cli.json, &r, print::rating)?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus group show`.
pub(crate) fn group(cli: &Cli, group: &str) -> Result<ExitCode> {
    let g = running::call(&cli.data_dir(), |c| c.group(group))?;
    print::answer(cli.json, &g, print::group)?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus group requests`.
pub(crate) fn group_requests(cli: &Cli, group: &str) -> Result<ExitCode> {
    let r = running::call(&cli.data_dir(), |c| c.group_requests(group))?;
    print::answer(cli.json, &r, print::group_requests)?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus petitions`.
pub(crate) fn petitions(cli: &Cli, a: &PetitionsArgs) -> Result<ExitCode> {
    let q = PetitionsQuery {
        producer: a.producer.clone(),
        group: a.group.clone(),
        open: a.open,
        sort: a.sort.map(|s| {
            match s {
                PetitionOrder::Endorsers => "endorsers",
                PetitionOrder::Newest => "newest",
                PetitionOrder::Closing => "closing",
            }
            .to_string()
        }),
        limit: a.limit,
    };
    let p = running::call(&cli.data_dir(), |c| c.petitions(&q))?;
    print::answer(cli.json, &p, |p| print::petitions(p, a.producer.as_deref()))?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus find`.
pub(crate) fn find(cli: &Cli, a: &FindArgs) -> Result<ExitCode> {
    let q = SearchQuery {
        q: a.words.join(" "),
        kind: a.kind.clone(),
        limit: Some(usize::from(a.limit)),
        local: a.local,
    };
    let r = running::call(&cli.data_dir(), |c| c.search(&q))?;
    print::answer(cli.json, &r, print::found)?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus producers`.
pub(crate) fn producers(cli: &Cli, a: &PageArgs) -> Result<ExitCode> {
    let q = page(a);
    let r = running::call(&cli.data_dir(), |c| c.producers(&q))?;
    print::answer(cli.json, &r, |d| {
        print::directory(d, "producers");
        if d.partial {
            println!(
                "note: this node keeps the profiles of the producers it follows and of the \
                 authors of what it holds; find any other by name: chorus find NAME --kind producer"
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus groups`.
pub(crate) fn groups(cli: &Cli, a: &PageArgs) -> Result<ExitCode> {
    let q = page(a);
    let r = running::call(&cli.data_dir(), |c| c.groups(&q))?;
    print::answer(cli.json, &r, |d| print::directory(d, "groups"))?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus products PRODUCER`.
pub(crate) fn products(cli: &Cli, producer: &str) -> Result<ExitCode> {
    let q = ProductsQuery {
        producer: producer.to_string(),
        limit: Some(1000),
        offset: None,
    };
    let r = running::call(&cli.data_dir(), |c| c.products(&q))?;
    print::answer(cli.json, &r, |d| {
        print::directory(d, "products");
        if d.partial {
            println!(
                "note: this node does not follow this producer, so some products may be \
                 missing: chorus follow --producer {}",
                print::shell_word(producer)
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn page(a: &PageArgs) -> DirectoryQuery {
    DirectoryQuery {
        limit: Some(usize::from(a.limit)),
        offset: Some(a.offset),
    }
}

/// `chorus show`: the record's JSON, pretty for people.
pub(crate) fn show(cli: &Cli, a: &IdArg) -> Result<ExitCode> {
    let r = running::call(&cli.data_dir(), |c| c.record(&a.id.to_string()))?;
    if cli.json {
        print::json(&r)?;
    } else {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `chorus tally`.
pub(crate) fn tally(cli: &Cli, a: &IdArg) -> Result<ExitCode> {
    let t = running::call(&cli.data_dir(), |c| c.tally(&a.id.to_string()))?;
    print::answer(cli.json, &t, print::tally)?;
    Ok(ExitCode::SUCCESS)
}

/// `chorus mine`.
pub(crate) fn mine(cli: &Cli) -> Result<ExitCode> {
    let m = running::call(&cli.data_dir(), |c| c.mine())?;
    print::answer(cli.json, &m, print::mine)?;
    Ok(ExitCode::SUCCESS)
}
