//! The command line: every subcommand, flag, help text and value parser (clap derive).

use std::path::PathBuf;

use chorus_node::DataDir;
use chorus_protocol::Amount;
use clap::{Args, Parser, Subcommand};

/// Chorus: consumers speak to producers together, peer to peer.
#[derive(Parser, Debug)]
#[command(
    name = "chorus",
    version,
    about,
    long_about = None,
    after_help = "Ids and keys: give all 64 hex digits, or a unique prefix of at least 8 of them \
                  (like git); a key may also be given as the name of exactly one profile this \
                  node holds (--producer Ledito; case and accents ignored)."
)]
pub(crate) struct Cli {
    /// Data dir (keys, config, store). Default: $CHORUS_DATA_DIR, else ~/.local/share/chorus.
    #[arg(long, global = true, env = "CHORUS_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run a node: creates the data dir, keys and config on first run, joins the network and
    /// serves until Ctrl-C or SIGTERM.
    Node(NodeArgs),
    /// Create the data dir, keys and config without starting a node.
    Init(InitArgs),
    /// Print this user's author key (the key that signs their records).
    Id,
    /// Rewrite the store compactly now, with the node stopped: the same records in a fraction
    /// of the disk (sled keeps old page versions in its log; a store that grew by ingest
    /// shrinks about fourfold at a million records). A running node does this by itself
    /// whenever its store has doubled (`[store] compact`); this is for a node kept stopped.
    /// Crash-safe: the copy is made beside the store and takes over only once complete.
    /// Takes about a minute per million records.
    Compact,
    /// Set a damaged store aside (renamed `store.set-aside-<unix time>`, kept for you to
    /// inspect or delete) so that the next `chorus node` starts with an empty store and
    /// catches up from its peers; keys, config and follows are kept. Refused while a node
    /// runs. What only this node held (records no peer has) is then only in the set-aside
    /// copy, or in a backup: restore from a backup instead if you have one.
    ResetStore,
    /// Show the running node: peer id, addresses, peers, records, followed shards.
    Status,
    /// Open the node's web dashboard: prints a link that logs one browser in (it works once,
    /// within three minutes) and opens it with $BROWSER when that is set. The dashboard is
    /// served by the node at its API address (loopback by default).
    Open,
    /// Catch up now: pull what this node lacks on the topics it follows from every
    /// connected peer (or one), and report what each pull did.
    Sync(SyncArgs),
    /// List the connected peers.
    Peers,
    /// Follow (store and relay) a producer's feedback, a group, a product, or everything.
    /// Without an option, show what the node follows. Remembered across restarts.
    Follow(FollowArgs),
    /// Stop following a producer, group, product, or everything.
    Unfollow(FollowArgs),
    /// Trust a watchdog, stop trusting one, or list those trusted: tallies then also show the
    /// trusted count (keys a trusted watchdog judged to be one actor count as one) and what
    /// each watchdog attested. Takes effect at once; kept across restarts in trust.json in
    /// the data dir, on top of config.toml's `[trust] watchdogs` (a change made here wins).
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Publish your profile: a name and what you are (consumer, producer, watchdog).
    Profile(ProfileArgs),
    /// Review a product (1 to 5 stars); prints the review's id.
    Review(ReviewArgs),
    /// List a product's reviews, oldest first (`*` marks the ones that count).
    Reviews(ProductArgs),
    /// A product's rating: count, mean and histogram of the counted reviews.
    Rating(ProductArgs),
    /// Create, join, admit to and show groups; list the requests to join.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Open a petition (a demand, a proposal or a campaign).
    #[command(subcommand)]
    Petition(PetitionCommand),
    /// Endorse a petition; endorsing again updates your endorsement (it never counts twice).
    Endorse(EndorseArgs),
    /// Retract a record of yours (endorsement, review, petition, join). Given a petition you
    /// endorse, retracts your endorsement first (retract again to withdraw a petition of
    /// your own).
    Retract(IdArg),
    /// List petitions with their counts (those this node holds: of the producers it follows,
    /// and those it fetched), sorted as asked.
    Petitions(PetitionsArgs),
    /// Find producers, consumers, groups, petitions and products by the words of their
    /// names, titles and product codes (each word you give must start a word of theirs; case
    /// and accents ignored: "cafe" finds "Café"), or by 8+ hex digits of an id or key. Asks
    /// this node and up to 4 connected peers (those that keep everything first), so what
    /// this node does not follow is found too. Each result: its kind, name, short id, the
    /// producer it concerns, its count, and whether this node follows it.
    Find(FindArgs),
    /// List the producers whose profiles this node holds (every node keeps profiles), by
    /// name.
    Producers(PageArgs),
    /// List a producer's products (those the reviews and petitions this node holds name),
    /// with how many reviews each has.
    Products {
        /// The producer: key, 8+ digit prefix, or name.
        #[arg(value_parser = author_arg)]
        producer: String,
    },
    /// List the groups this node holds (every node keeps groups), the most members first.
    Groups(PageArgs),
    /// Show any stored record.
    Show(IdArg),
    /// A petition's tally: endorsers, threshold, pledges, the producer's answer.
    Tally(IdArg),
    /// Answer a petition or review aimed at you, as its producer.
    Respond(RespondArgs),
    /// Watchdog audit: re-verify every stored record, recompute every tally, report errors
    /// and suspicions with their evidence. Exit 0 without errors, 1 with errors (and with
    /// warnings too under --strict).
    Audit(AuditArgs),
    /// Publish a signed watchdog attestation: a verdict on a record, a petition's verified
    /// count (with its set root, computed by this node), or keys judged to be one actor.
    #[command(subcommand)]
    Attest(AttestCommand),
    /// Write a petition's verifiable bundle (the petition, every counted endorsement, the
    /// retractions that matter, the producer's responses, attestations, count and Merkle
    /// root) to a file anyone can check offline with `chorus verify`.
    Export(ExportArgs),
    /// Check a bundle file alone, offline: prints the count it proves; exit 1 naming the
    /// culprit if any piece is altered, forged, duplicated or missing.
    Verify {
        /// The bundle file.
        file: PathBuf,
    },
    /// Print (JSON) a proof that an endorsement is counted under the petition's root.
    Proof {
        /// The petition.
        #[arg(value_parser = id_arg)]
        petition: String,
        /// The endorsement.
        #[arg(value_parser = id_arg)]
        endorsement: String,
    },
    /// Check a proof printed by `chorus proof` (a file, or - for stdin), offline; exit 1 if
    /// it does not hold.
    VerifyProof {
        /// The proof file, or - for stdin.
        file: String,
    },
    /// List everything you signed that this node holds (reviews, petitions, endorsements
    /// with their pledges, joins, responses, retractions), oldest first, with ids and where
    /// each stands now.
    Mine,
    /// Take records signed elsewhere (by another program that holds its own key): FILE
    /// holds them in wire form one after another (PROTOCOL.md §8), or - for stdin. Each is
    /// checked as gossip is, stored and gossiped, or refused with its error code. Prints a
    /// line per refused record and the totals; exit 1 if any was refused.
    Import {
        /// The file of wire records, or - for stdin.
        file: String,
    },
    /// Follow the live feedback stream, one event per line: first what arrived since you
    /// last watched (a cursor kept in the data dir; the first time, everything stored on
    /// those topics), then live. Default: what you take part in (for a producer, the
    /// feedback aimed at its key; for a consumer, the petitions they opened or endorsed,
    /// their groups, the products they reviewed).
    Watch(WatchArgs),
}

#[derive(Subcommand, Debug)]
pub(crate) enum AttestCommand {
    /// The record was checked and is valid.
    Valid {
        /// The record.
        #[arg(value_parser = id_arg)]
        id: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// The record is forged, malformed or breaks a kind rule.
    Invalid {
        /// The record.
        #[arg(value_parser = id_arg)]
        id: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// The petition's count, recomputed here, with the root of its counted endorsements.
    Count {
        /// The petition.
        #[arg(value_parser = id_arg)]
        petition: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// These keys (1 to 64) look like one actor.
    OneActor {
        /// The keys (whole: 64 hex digits each).
        #[arg(required = true, value_parser = whole_key_arg)]
        keys: Vec<String>,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// The petition.
    #[arg(value_parser = id_arg)]
    pub(crate) petition: String,
    /// Where to write the bundle.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct AuditArgs {
    /// Audit a stopped node's data dir directly instead of asking the running node.
    #[arg(long)]
    pub(crate) offline: bool,
    /// Warnings fail the audit too (exit 1).
    #[arg(long)]
    pub(crate) strict: bool,
}

#[derive(Args, Debug)]
pub(crate) struct WatchArgs {
    /// Events about this producer's topic. Without --producer, --petition or --group: what
    /// you take part in (the feedback aimed at your key, the petitions you opened or
    /// endorsed, your groups, the products you reviewed, answers to your records).
    #[arg(long, value_parser = author_arg)]
    pub(crate) producer: Option<String>,
    /// Events about this petition (its endorsements, tally, responses).
    #[arg(long, value_parser = id_arg)]
    pub(crate) petition: Option<String>,
    /// Events on this group's topic.
    #[arg(long, value_parser = id_arg)]
    pub(crate) group: Option<String>,
    /// Only records of this kind (review, petition, endorsement, response, ...).
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// Print what was missed, then exit instead of following live.
    #[arg(long)]
    pub(crate) no_follow: bool,
}

/// A key as a person gives it: 64 hex digits, a unique prefix of at least 8 of them, or the
/// name of exactly one profile (the node resolves the last two, PROTOCOL.md §11).
fn author_arg(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 100 {
        return Err(
            "expected a key (64 hex digits, or at least its first 8) or a profile's name".into(),
        );
    }
    Ok(t.to_string())
}

/// A whole key (64 hex digits): whom to trust or accuse is never picked by a name anyone
/// may choose or a prefix a key can be ground to.
fn whole_key_arg(s: &str) -> Result<String, String> {
    s.trim()
        .parse::<chorus_protocol::AuthorKey>()
        .map(|k| k.to_string())
        .map_err(|e| format!("not an author key (64 hex digits): {e}"))
}

/// An id as a person gives it: 64 hex digits, or a unique prefix of at least 8 of them (the
/// node resolves it, PROTOCOL.md §11).
fn id_arg(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.len() < 8 || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{t:?} is not a record id: expected 64 hex digits, or at least its first 8"
        ));
    }
    Ok(t.to_ascii_lowercase())
}

fn amount_arg(s: &str) -> Result<Amount, String> {
    s.parse()
        .map_err(|e| format!("not an amount like 3000EUR: {e}"))
}

fn product_arg(s: &str) -> Result<String, String> {
    chorus_node::follow::split_product(s).map(|_| s.to_string())
}

fn deadline_arg(s: &str) -> Result<String, String> {
    chorus_client::parse_deadline(s).map(|_| s.to_string())
}

#[derive(Args, Debug)]
pub(crate) struct FollowArgs {
    /// A producer: its key, an 8+ digit prefix of it, or its profile's name.
    #[arg(long, value_name = "KEY", value_parser = author_arg)]
    pub(crate) producer: Option<String>,
    /// A group's id.
    #[arg(long, value_name = "GROUP", value_parser = id_arg)]
    pub(crate) group: Option<String>,
    /// A product, as PRODUCER/CODE (the producer by key, 8+ digit prefix or name).
    #[arg(long, value_name = "PRODUCER/CODE", value_parser = product_arg)]
    pub(crate) product: Option<String>,
    /// Everything (archive and watchdog nodes).
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ProfileArgs {
    /// Your display name.
    #[arg(long)]
    pub(crate) name: String,
    /// consumer, producer or watchdog.
    #[arg(long, value_parser = ["consumer", "producer", "watchdog"])]
    pub(crate) role: String,
    /// A few words about you.
    #[arg(long)]
    pub(crate) about: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ReviewArgs {
    /// The producer's author key.
    #[arg(value_parser = author_arg)]
    pub(crate) producer: String,
    /// The product code (EAN/GTIN or a slug).
    pub(crate) product: String,
    /// 1 to 5.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub(crate) rating: u8,
    /// A title.
    #[arg(long)]
    pub(crate) title: Option<String>,
    /// The review.
    #[arg(long)]
    pub(crate) text: String,
}

#[derive(Args, Debug)]
pub(crate) struct ProductArgs {
    /// The producer's author key.
    #[arg(value_parser = author_arg)]
    pub(crate) producer: String,
    /// The product code.
    pub(crate) product: String,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TrustCommand {
    /// Trust a watchdog.
    Add {
        /// The watchdog's author key (whole: 64 hex digits).
        #[arg(value_parser = whole_key_arg)]
        watchdog: String,
    },
    /// Stop trusting a watchdog (also one the config lists).
    Remove {
        /// The watchdog's author key (whole: 64 hex digits).
        #[arg(value_parser = whole_key_arg)]
        watchdog: String,
    },
    /// List the watchdogs trusted, and where each comes from.
    List,
}

#[derive(Subcommand, Debug)]
pub(crate) enum GroupCommand {
    /// Create a group; prints its id.
    Create {
        /// The group's name.
        name: String,
        /// Members need your approval (`chorus group admit`); default: anyone joins.
        #[arg(long)]
        approval: bool,
        /// What the group stands for.
        #[arg(long)]
        charter: Option<String>,
    },
    /// Join a group.
    Join {
        /// The group's id.
        #[arg(value_parser = id_arg)]
        group: String,
    },
    /// Admit a member to an approval group you founded.
    Admit {
        /// The group's id.
        #[arg(value_parser = id_arg)]
        group: String,
        /// The member: an author key, or the profile name of one pending request (as
        /// `chorus group requests` lists them).
        member: String,
    },
    /// List the requests to join an approval group that wait for its founder's admission,
    /// oldest first, with the requesters' profile names.
    Requests {
        /// The group's id.
        #[arg(value_parser = id_arg)]
        group: String,
    },
    /// Show a group: name, charter, founder, admission, its members by name, pending
    /// requests, and where you stand (founder, member, pending, not a member).
    Show {
        /// The group's id.
        #[arg(value_parser = id_arg)]
        group: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum PetitionCommand {
    /// Open a petition aimed at a producer; prints its id.
    Open(PetitionArgs),
}

#[derive(Args, Debug)]
pub(crate) struct PetitionArgs {
    /// The producer it is aimed at (author key).
    #[arg(long, value_parser = author_arg)]
    pub(crate) producer: String,
    /// The product it is about (code).
    #[arg(long)]
    pub(crate) product: Option<String>,
    /// The group it speaks for (group id).
    #[arg(long, value_parser = id_arg)]
    pub(crate) group: Option<String>,
    /// A short title.
    #[arg(long)]
    pub(crate) title: String,
    /// The demand.
    #[arg(long)]
    pub(crate) text: String,
    /// Endorsements needed.
    #[arg(long)]
    pub(crate) threshold: u64,
    /// Last day (YYYY-MM-DD, end of day UTC) or time (RFC 3339) for endorsements to count.
    #[arg(long, value_parser = deadline_arg)]
    pub(crate) deadline: Option<String>,
    /// A feature proposed for the product's specification (co-design).
    #[arg(long, conflicts_with = "campaign")]
    pub(crate) proposal: bool,
    /// A funding campaign: endorsers may pledge; it succeeds only if the goal is reached.
    #[arg(long, requires = "goal")]
    pub(crate) campaign: bool,
    /// The campaign's goal, like 3000EUR.
    #[arg(long, value_parser = amount_arg, requires = "campaign")]
    pub(crate) goal: Option<Amount>,
}

#[derive(Args, Debug)]
pub(crate) struct EndorseArgs {
    /// The petition's id.
    #[arg(value_parser = id_arg)]
    pub(crate) id: String,
    /// A comment.
    #[arg(long)]
    pub(crate) comment: Option<String>,
    /// A pledge toward a campaign, like 50EUR (a promise, not a payment).
    #[arg(long, value_parser = amount_arg)]
    pub(crate) pledge: Option<Amount>,
}

#[derive(Args, Debug)]
pub(crate) struct IdArg {
    /// A record id (64 hex digits).
    #[arg(value_parser = id_arg)]
    pub(crate) id: String,
}

#[derive(Args, Debug)]
pub(crate) struct PetitionsArgs {
    /// Only those aimed at this producer.
    #[arg(long, value_parser = author_arg)]
    pub(crate) producer: Option<String>,
    /// Only those of this group.
    #[arg(long, value_parser = id_arg)]
    pub(crate) group: Option<String>,
    /// Only those still open (not withdrawn, deadline not passed).
    #[arg(long)]
    pub(crate) open: bool,
    /// The order (default: by id).
    #[arg(long, value_enum)]
    pub(crate) sort: Option<PetitionOrder>,
    /// At most this many.
    #[arg(long)]
    pub(crate) limit: Option<usize>,
}

#[derive(Args, Debug)]
pub(crate) struct FindArgs {
    /// The words to find (or 8+ hex digits of an id or key).
    #[arg(required = true, num_args = 1..)]
    pub(crate) words: Vec<String>,
    /// Only these kinds: profile, producer, consumer, watchdog, group, petition, product
    /// (comma-separated).
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// At most this many results.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub(crate) limit: u16,
    /// Only what this node holds: ask no peer.
    #[arg(long)]
    pub(crate) local: bool,
}

#[derive(Args, Debug)]
pub(crate) struct PageArgs {
    /// At most this many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub(crate) limit: u16,
    /// Skip this many first.
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: usize,
}

/// The orders of `chorus petitions`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PetitionOrder {
    /// The most endorsers first.
    Endorsers,
    /// The newest first.
    Newest,
    /// The nearest deadline first (closed ones and those without a deadline last).
    Closing,
}

#[derive(Args, Debug)]
pub(crate) struct RespondArgs {
    /// The petition or review answered.
    #[arg(value_parser = id_arg)]
    pub(crate) id: String,
    /// Where it stands.
    #[arg(long, value_parser = ["acknowledged", "in-progress", "accepted", "declined", "done"])]
    pub(crate) status: String,
    /// The answer.
    #[arg(long)]
    pub(crate) text: String,
    /// The set root of the endorsements you acknowledge (from `chorus proof` or `chorus
    /// export`): makes "N asked, and the producer saw all N" provable.
    #[arg(long, value_name = "HEX")]
    pub(crate) root: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct SyncArgs {
    /// Pull only from this connected peer (a peer id, as `chorus status` shows them).
    #[arg(long, value_name = "PEERID")]
    pub(crate) peer: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// Seal the author key with a passphrase (Argon2id + XChaCha20-Poly1305): taken from
    /// CHORUS_PASSPHRASE, else asked for. A node then needs CHORUS_PASSPHRASE to start.
    /// (CHORUS_PASSPHRASE set at init seals the key even without this flag.)
    #[arg(long)]
    pub(crate) passphrase: bool,
    /// Make a new author key even though the data dir holds a store signed by a key that is
    /// missing (restore the old author.key from a backup instead if you can: records it
    /// signed cannot be retracted or updated without it).
    #[arg(long)]
    pub(crate) new_identity: bool,
}

#[derive(Args, Debug)]
pub(crate) struct NodeArgs {
    /// Listen on this multiaddr (repeatable), e.g. /ip4/0.0.0.0/tcp/7470. Replaces the
    /// config's list.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) listen: Vec<String>,
    /// Bootstrap peer, a multiaddr ending in /p2p/PEERID (repeatable), used besides the
    /// bootstrap peers of the config.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) bootstrap: Vec<String>,
    /// Serve the local API on HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) api: Option<String>,
    /// Serve Prometheus metrics (counts of gossip, sync, ingest and the store; no records or
    /// keys) at http://HOST:PORT/metrics, e.g. 127.0.0.1:9470. Off by default; replaces the
    /// config's `[metrics] listen`. The endpoint takes no token: keep it on loopback or a
    /// private address.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) metrics: Option<String>,
    /// Do not discover peers on the LAN with mDNS.
    #[arg(long)]
    pub(crate) no_mdns: bool,
    /// Follow (store) everything: archive and watchdog nodes.
    #[arg(long)]
    pub(crate) follow_all: bool,
}

impl Cli {
    /// The data dir named by `--data-dir` or `$CHORUS_DATA_DIR`, else the default location.
    pub(crate) fn data_dir(&self) -> DataDir {
        match &self.data_dir {
            Some(d) => DataDir::new(d),
            None => DataDir::default_location(),
        }
    }
}
