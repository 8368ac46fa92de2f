//! `chorus-netem`: latency, jitter and loss on a Linux network namespace's link, for
//! kernels without `sch_netem` (`tc qdisc add ... netem` answers "Specified qdisc kind is
//! unknown"). An iptables rule sends the packets arriving on the namespace's interface to
//! an NFQUEUE queue; this program, run inside the namespace, takes each packet's metadata
//! and first bytes, drops the lost ones and holds the others, and lets each go when its
//! delay is up (the kernel keeps the packet meanwhile and accepts verdicts in any order, by
//! packet id). `deploy/testnet.sh` starts one per node where netem is missing:
//!
//! ```sh
//! iptables -t mangle -A PREROUTING -i eth0 -j NFQUEUE --queue-num 0 --queue-bypass
//! chorus-netem --queue 0 --latency 150 --jitter 10 --loss 5
//! ```
//!
//! Packets are held on their way in rather than out: one held on its way out still counts
//! against its sending socket, and TCP's small-queue limit then allows a connection only a
//! couple of packets held at once (measured: 4 MB took 226 s at 150 ms each way, against
//! 2.9 s held on the way in). Between two shaped namespaces each packet is held once, as
//! with netem on each one's way out.
//!
//! It cannot wedge the namespace: the queue holds at most `--max-held` packets and lets
//! the next ones through undelayed (fail-open), and the rule's `--queue-bypass` lets
//! everything through while no program listens (before it starts, after it stops).

mod schedule;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Latency, jitter and loss on the packets an NFQUEUE queue receives.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// The NFQUEUE queue the iptables rule sends packets to.
    #[arg(long, default_value_t = 0)]
    queue: u16,
    /// Every packet's delay, in ms.
    #[arg(long, default_value_t = 0)]
    latency: u64,
    /// The standard deviation of the delay, in ms (normal, like netem's
    /// `distribution normal`); a flow's packets keep their order.
    #[arg(long, default_value_t = 0)]
    jitter: u64,
    /// The share of packets lost, in percent (decimals allowed).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Packets held at most; past it the kernel lets packets through undelayed.
    #[arg(long, default_value_t = 4096)]
    max_held: u32,
    /// Print counters every this many seconds (0: never).
    #[arg(long, default_value_t = 10)]
    stats: u64,
    /// Only check that a queue can be bound here (needs CAP_NET_ADMIN and the kernel's
    /// nfnetlink_queue), then exit.
    #[arg(long)]
    probe: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(0.0..=100.0).contains(&args.loss) {
        eprintln!("chorus-netem: --loss must be 0 to 100");
        return ExitCode::from(2);
    }
    let shape = schedule::Shape {
        latency: Duration::from_millis(args.latency),
        jitter: Duration::from_millis(args.jitter),
        loss: args.loss,
    };
    match run::run(&args, shape) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus-netem: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod run {
    /// NFQUEUE is Linux's.
    pub fn run(_: &super::Args, _: super::schedule::Shape) -> Result<(), String> {
        Err("NFQUEUE needs Linux".into())
    }
}

#[cfg(target_os = "linux")]
mod run {
    use std::cmp::Ordering;
    use std::collections::BinaryHeap;
    use std::io::ErrorKind;
    use std::time::{Duration, Instant};

    use nfq::{Message, Queue, Verdict};

    use super::schedule::{flow_key, Fate, Schedule, Shape};
    use super::Args;

    /// Enough of each packet for its flow: an IPv6 header and the ports behind it, or an
    /// IPv4 header with options.
    const COPIED: u16 = 128;
    /// The longest sleep while packets may be arriving: how late a packet can be taken in
    /// (the queue's socket is not handed out, so it is read without blocking).
    const TICK: Duration = Duration::from_millis(1);
    /// Packets taken in at most before letting the due ones go.
    const BATCH: usize = 512;

    /// A packet held until `at`.
    struct Held {
        at: Instant,
        seq: u64,
        msg: Message,
    }

    impl PartialEq for Held {
        fn eq(&self, o: &Self) -> bool {
            (self.at, self.seq) == (o.at, o.seq)
        }
    }
    impl Eq for Held {}
    impl PartialOrd for Held {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Held {
        // The heap's top is the earliest.
        fn cmp(&self, o: &Self) -> Ordering {
            (o.at, o.seq).cmp(&(self.at, self.seq))
        }
    }

    #[derive(Default)]
    struct Counters {
        passed: u64,
        lost: u64,
        held_most: usize,
        /// How late a packet went at worst (the loop's tick and the machine's load).
        late_most: Duration,
        /// Verdicts for packets the kernel no longer held (an interface gone down).
        stale: u64,
    }

    fn bind(args: &Args) -> Result<Queue, String> {
        let mut q = Queue::open().map_err(|e| {
            format!("cannot open a netfilter socket: {e} (needs Linux with nfnetlink)")
        })?;
        q.bind(args.queue).map_err(|e| {
            format!(
                "cannot bind NFQUEUE queue {}: {e} (needs root or CAP_NET_ADMIN, the kernel's \
                 nfnetlink_queue, and no other program on that queue)",
                args.queue
            )
        })?;
        let configure = |q: &mut Queue| -> std::io::Result<()> {
            q.set_copy_range(args.queue, COPIED)?;
            q.set_queue_max_len(args.queue, args.max_held)?;
            q.set_fail_open(args.queue, true)
        };
        configure(&mut q).map_err(|e| format!("cannot configure queue {}: {e}", args.queue))?;
        q.set_nonblocking(true);
        Ok(q)
    }

    pub fn run(args: &Args, shape: Shape) -> Result<(), String> {
        let mut q = bind(args)?;
        if args.probe {
            let _ = q.unbind(args.queue);
            println!(
                "chorus-netem: NFQUEUE queue {} can be bound here",
                args.queue
            );
            return Ok(());
        }
        println!(
            "chorus-netem: ready: queue {}, delay {} ms, jitter {} ms (normal, each flow in \
             order), loss {}%, at most {} packets held (then let through)",
            args.queue, args.latency, args.jitter, args.loss, args.max_held
        );
        let mut schedule = Schedule::new(shape);
        let mut rng = rand::rng();
        let mut held: BinaryHeap<Held> = BinaryHeap::new();
        let mut seq = 0u64;
        let mut n = Counters::default();
        let stats_every = Duration::from_secs(args.stats);
        let mut next_stats = Instant::now() + stats_every;
        loop {
            let mut taken = 0;
            while taken < BATCH {
                match q.recv() {
                    Ok(mut msg) => {
                        taken += 1;
                        let now = Instant::now();
                        match schedule.fate(now, flow_key(msg.get_payload()), &mut rng) {
                            Fate::Lost => {
                                n.lost += 1;
                                msg.set_verdict(Verdict::Drop);
                                q.verdict(msg).map_err(|e| format!("verdict: {e}"))?;
                            }
                            Fate::At(at) => {
                                seq += 1;
                                held.push(Held { at, seq, msg });
                                n.held_most = n.held_most.max(held.len());
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // The kernel's answer to a verdict on a packet it dropped meanwhile.
                    Err(e) if e.kind() == ErrorKind::NotFound => n.stale += 1,
                    Err(e) => return Err(format!("receiving from queue {}: {e}", args.queue)),
                }
            }
            let now = Instant::now();
            while held.peek().is_some_and(|h| h.at <= now) {
                let Some(h) = held.pop() else { break };
                n.late_most = n.late_most.max(now - h.at);
                n.passed += 1;
                // A message's verdict is Accept unless set otherwise.
                q.verdict(h.msg).map_err(|e| format!("verdict: {e}"))?;
            }
            if !stats_every.is_zero() && now >= next_stats {
                next_stats = now + stats_every;
                let all = (n.passed + n.lost).max(1);
                eprintln!(
                    "chorus-netem: queue {}: {} passed, {} lost ({:.1}%), {} held now, at most \
                     {}, at worst {} ms late, {} flows, {} stale",
                    args.queue,
                    n.passed,
                    n.lost,
                    n.lost as f64 * 100.0 / all as f64,
                    held.len(),
                    n.held_most,
                    n.late_most.as_millis(),
                    schedule.flows(),
                    n.stale
                );
            }
            if taken < BATCH {
                let wait = held
                    .peek()
                    .map_or(TICK, |h| h.at.saturating_duration_since(now))
                    .min(TICK);
                std::thread::sleep(wait);
            }
        }
    }
}
