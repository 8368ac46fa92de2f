//! When a held packet goes: never (lost), or at its arrival plus the latency, moved by the
//! jitter, and never before the packet of the same flow held before it. Pure: the clock
//! and the randomness come from the caller, so the tests drive both.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;

/// What is done to every packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Added to every packet's way out.
    pub latency: Duration,
    /// The standard deviation of a normal variation of the latency (as netem's
    /// `distribution normal`); a delay drawn below zero is zero.
    pub jitter: Duration,
    /// The share of packets lost, in percent (0 to 100).
    pub loss: f64,
}

/// What becomes of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Lost: dropped at once (the sender is not told, as on a real link).
    Lost,
    /// Let go at this instant.
    At(Instant),
}

/// Past this many flows remembered, the ones with nothing held are forgotten.
const FLOWS: usize = 4096;

/// The fate of each packet, one flow's packets kept in their order.
///
/// netem lets jitter reorder packets; here a packet drawn a shorter delay than the one
/// before it in its flow waits for that one instead, so a TCP connection sees varying
/// delays but no reordering (which it would answer with duplicate acks and spurious
/// retransmissions). Packets of different flows may overtake one another.
pub struct Schedule {
    shape: Shape,
    /// The instant each flow's latest packet goes.
    last: HashMap<u64, Instant>,
}

impl Schedule {
    /// A schedule of packets for `shape`.
    pub fn new(shape: Shape) -> Self {
        Schedule {
            shape,
            last: HashMap::new(),
        }
    }

    /// The fate of a packet of flow `flow` taken in at `now`.
    pub fn fate(&mut self, now: Instant, flow: u64, rng: &mut impl Rng) -> Fate {
        if self.shape.loss > 0.0 && rng.random::<f64>() * 100.0 < self.shape.loss {
            return Fate::Lost;
        }
        let mut ms = self.shape.latency.as_secs_f64() * 1000.0;
        if !self.shape.jitter.is_zero() {
            ms += self.shape.jitter.as_secs_f64() * 1000.0 * standard_normal(rng);
        }
        let mut at = now + Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        if self.last.len() >= FLOWS && !self.last.contains_key(&flow) {
            self.last.retain(|_, t| *t > now);
        }
        if let Some(prev) = self.last.get(&flow) {
            at = at.max(*prev);
        }
        self.last.insert(flow, at);
        Fate::At(at)
    }

    /// How many flows are remembered.
    pub fn flows(&self) -> usize {
        self.last.len()
    }
}

/// A draw of the standard normal distribution (Box–Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - [0, 1) is (0, 1]: the logarithm stays finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The flow a packet (an IPv4 or IPv6 packet, at least its first bytes) belongs to: its
/// protocol, addresses and, for TCP and UDP, ports, hashed. Bytes too short or of another
/// kind all fall in one flow.
pub fn flow_key(packet: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let (proto, addrs, rest): (u8, &[u8], &[u8]) = match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            (packet[9], &packet[12..20], packet.get(ihl..).unwrap_or(&[]))
        }
        Some(6) if packet.len() >= 40 => (packet[6], &packet[8..40], &packet[40..]),
        _ => (0, &[], &[]),
    };
    proto.hash(&mut h);
    addrs.hash(&mut h);
    // TCP and UDP: the ports are the first four bytes after the header.
    if matches!(proto, 6 | 17) {
        rest.get(..4).unwrap_or(&[]).hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn at(f: Fate) -> Instant {
        match f {
            Fate::At(t) => t,
            Fate::Lost => panic!("lost"),
        }
    }

    #[test]
    fn without_jitter_every_packet_waits_the_latency() {
        let mut s = Schedule::new(Shape {
            latency: ms(150),
            jitter: ms(0),
            loss: 0.0,
        });
        let mut rng = StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        for i in 0..100 {
            let now = t0 + ms(i);
            assert_eq!(at(s.fate(now, i % 7, &mut rng)), now + ms(150));
        }
    }

    #[test]
    fn loss_drops_about_its_share() {
        let mut s = Schedule::new(Shape {
            latency: ms(0),
            jitter: ms(0),
            loss: 5.0,
        });
        let mut rng = StdRng::seed_from_u64(2);
        let t0 = Instant::now();
        let lost = (0..20_000)
            .filter(|_| s.fate(t0, 1, &mut rng) == Fate::Lost)
            .count();
        // 5% of 20,000 is 1,000 (sd ≈ 31).
        assert!((850..1150).contains(&lost), "{lost} lost");
    }

    #[test]
    fn jitter_varies_the_delay_around_the_latency_but_keeps_each_flows_order() {
        let mut s = Schedule::new(Shape {
            latency: ms(100),
            jitter: ms(20),
            loss: 0.0,
        });
        let mut rng = StdRng::seed_from_u64(3);
        let t0 = Instant::now();
        let mut last: HashMap<u64, Instant> = HashMap::new();
        let mut first_draws = Vec::new();
        for i in 0..4000u64 {
            let now = t0 + Duration::from_micros(i * 500);
            let flow = i % 4;
            let t = at(s.fate(now, flow, &mut rng));
            assert!(t >= now);
            if let Some(p) = last.get(&flow) {
                assert!(t >= *p, "flow {flow} reordered");
            }
            last.insert(flow, t);
            // A flow's packets spaced far apart are not held back by their predecessor.
            if i % 400 == 0 {
                let lone = 1_000 + i;
                first_draws.push((at(s.fate(now, lone, &mut rng)) - now).as_secs_f64() * 1e3);
            }
        }
        let mean = first_draws.iter().sum::<f64>() / first_draws.len() as f64;
        assert!((85.0..115.0).contains(&mean), "mean {mean}");
        assert!(first_draws.iter().any(|d| (d - 100.0).abs() > 5.0));
    }

    #[test]
    fn flows_are_told_apart_by_addresses_and_ports() {
        let mut v4 = vec![0u8; 28];
        v4[0] = 0x45;
        v4[9] = 6;
        v4[12..16].copy_from_slice(&[10, 0, 0, 1]);
        v4[16..20].copy_from_slice(&[10, 0, 0, 2]);
        v4[20..24].copy_from_slice(&[0x1d, 0x2e, 0xc0, 0x01]);
        let mut other_port = v4.clone();
        other_port[23] = 2;
        let mut other_dst = v4.clone();
        other_dst[19] = 3;
        assert_ne!(flow_key(&v4), flow_key(&other_port));
        assert_ne!(flow_key(&v4), flow_key(&other_dst));
        // The rest of the packet (sequence numbers, payload) does not matter.
        let mut later = v4.clone();
        later[27] = 9;
        assert_eq!(flow_key(&v4), flow_key(&later));
        // Too short or not IP: one flow, no panic.
        assert_eq!(flow_key(&[]), flow_key(&[0x45]));
        assert_eq!(flow_key(&[0x60; 12]), flow_key(&[0x10; 3]));
    }

    #[test]
    fn flows_with_nothing_held_are_forgotten() {
        let mut s = Schedule::new(Shape {
            latency: ms(10),
            jitter: ms(0),
            loss: 0.0,
        });
        let mut rng = StdRng::seed_from_u64(4);
        let t0 = Instant::now();
        for f in 0..FLOWS as u64 {
            s.fate(t0, f, &mut rng);
        }
        assert_eq!(s.flows(), FLOWS);
        s.fate(t0 + ms(20), u64::MAX, &mut rng);
        assert_eq!(s.flows(), 1);
    }
}
