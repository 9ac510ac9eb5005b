//! Test data: a synthetic but realistic IPv4 table, shared by the codec
//! benchmarks and the side-by-side harness (`tests/bench`). Not part of
//! the codec's API.
//!
//! A synthetic but realistic IPv4 table: the real-world prefix-length mix,
//! AS paths of 1–6 hops, a skewed share of prefixes per attribute set.
//! Deterministic for a given seed, so every daemon sees the same table.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::{
    AsPath, Community, Context, Family, Ipv4Prefix, NextHop, Nlri, Origin, PathAttributes, Prefix,
    ReachEncoder, encode_end_of_rib,
};

/// xorshift64*: deterministic and dependency-free.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Share of each prefix length in an IPv4 full table, in per mille.
const LENGTH_MIX: &[(u8, u64)] = &[
    (24, 600),
    (23, 80),
    (22, 100),
    (21, 45),
    (20, 45),
    (19, 35),
    (18, 17),
    (17, 12),
    (16, 25),
    (15, 6),
    (14, 6),
    (13, 5),
    (12, 4),
    (11, 3),
    (10, 2),
    (9, 1),
    (8, 1),
    (25, 5),
    (26, 3),
    (27, 2),
    (28, 1),
    (29, 1),
    (30, 1),
];

fn prefix_length(rng: &mut Rng) -> u8 {
    let total: u64 = LENGTH_MIX.iter().map(|(_, w)| w).sum();
    let mut pick = rng.below(total);
    for &(len, weight) in LENGTH_MIX {
        if pick < weight {
            return len;
        }
        pick -= weight;
    }
    24
}

/// The generated table: attribute sets and the prefixes of each.
#[derive(Debug)]
pub struct Table {
    pub sets: Vec<PathAttributes>,
    pub groups: Vec<Vec<Nlri>>,
}

impl Table {
    /// `prefixes` unique prefixes over `sets` attribute sets, all paths
    /// starting with `first_as` (the announcing peer's AS).
    pub fn generate(prefixes: usize, sets: usize, first_as: u32, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let attrs: Vec<PathAttributes> = (0..sets)
            .map(|i| {
                let hops = rng.below(6) as usize;
                let mut path = vec![first_as];
                path.extend((0..hops).map(|_| 1 + rng.below(400_000) as u32));
                PathAttributes {
                    origin: Some(if i % 7 == 0 {
                        Origin::Incomplete
                    } else {
                        Origin::Igp
                    }),
                    as_path: Some(AsPath::from_sequence(path)),
                    med: i.is_multiple_of(3).then(|| rng.below(1000) as u32),
                    communities: (0..rng.below(4))
                        .map(|_| Community(rng.next_u64() as u32))
                        .collect(),
                    ..PathAttributes::default()
                }
            })
            .collect();
        let mut seen = HashSet::with_capacity(prefixes);
        let mut groups = vec![Vec::new(); sets];
        while seen.len() < prefixes {
            let len = prefix_length(&mut rng);
            // 1.0.0.0 – 223.255.255.255 without 127/8, which daemons refuse
            // as martian (BIRD drops it on import).
            let addr = Ipv4Addr::from(0x0100_0000 + rng.below(0xdf00_0000) as u32);
            let Some(p) = Ipv4Prefix::new(addr, len) else {
                continue;
            };
            if p.addr().octets()[0] == 127 || p.prefix_len() < 8 {
                continue;
            }
            let prefix = Prefix::V4(p);
            if seen.insert(prefix) {
                let a = rng.below(sets as u64);
                groups[rng.below(a + 1) as usize].push(Nlri::new(prefix));
            }
        }
        Self {
            sets: attrs,
            groups,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(Vec::is_empty)
    }

    pub fn len(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }

    /// Every prefix with the index of its attribute set, set by set.
    pub fn routes(&self) -> impl Iterator<Item = (usize, &Nlri)> {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(set, group)| group.iter().map(move |nlri| (set, nlri)))
    }

    /// The whole table as UPDATE messages with `next_hop`, then End-of-RIB.
    pub fn encode(&self, next_hop: Ipv4Addr, ctx: &Context) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * 5);
        for (attrs, nlri) in self.sets.iter().zip(&self.groups) {
            if nlri.is_empty() {
                continue;
            }
            if let Ok(enc) =
                ReachEncoder::new(attrs, Family::IPV4_UNICAST, NextHop::V4(next_hop), ctx)
            {
                enc.encode(nlri, &mut out);
            }
        }
        encode_end_of_rib(Family::IPV4_UNICAST, &mut out);
        out
    }
}
