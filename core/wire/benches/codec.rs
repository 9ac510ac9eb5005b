//! Decode and encode throughput on a synthetic but realistic full table:
//! 1,000,000 IPv4 prefixes with the real-world prefix-length mix, grouped
//! under a few thousand shared attribute sets (as a transit feed is).
//!
//!   cargo bench -p starling-wire --bench codec
//!
//! Results and their meaning: docs/performance.md.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use starling_wire::{
    AsPath, Community, Context, Family, Ipv4Prefix, Message, NextHop, Nlri, Origin, PathAttributes,
    Prefix, ReachEncoder, decode_update, peek_header,
};

const PREFIXES: usize = 1_000_000;
const ATTRIBUTE_SETS: usize = 5_000;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Share of each prefix length in a 2025 IPv4 table, in per mille.
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

fn attribute_set(rng: &mut Rng, i: usize) -> PathAttributes {
    let hops = 1 + rng.below(6) as usize;
    let path: Vec<u32> = (0..hops).map(|_| 1 + rng.below(400_000) as u32).collect();
    PathAttributes {
        origin: Some(if i.is_multiple_of(7) {
            Origin::Incomplete
        } else {
            Origin::Igp
        }),
        as_path: Some(AsPath::from_sequence(path)),
        med: i.is_multiple_of(3).then_some(rng.below(1000) as u32),
        communities: (0..rng.below(4))
            .map(|_| Community(rng.next() as u32))
            .collect(),
        ..PathAttributes::default()
    }
}

struct Table {
    sets: Vec<PathAttributes>,
    /// Prefixes per attribute set, unique across the table.
    groups: Vec<Vec<Nlri>>,
}

fn table() -> Table {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let sets: Vec<_> = (0..ATTRIBUTE_SETS)
        .map(|i| attribute_set(&mut rng, i))
        .collect();
    let mut seen = std::collections::HashSet::with_capacity(PREFIXES);
    let mut groups = vec![Vec::new(); ATTRIBUTE_SETS];
    while seen.len() < PREFIXES {
        let len = prefix_length(&mut rng);
        let addr = Ipv4Addr::from(0x0100_0000 + rng.below(0xdf00_0000) as u32);
        let prefix = Prefix::V4(Ipv4Prefix::new(addr, len).expect("valid length"));
        if seen.insert(prefix) {
            // Skewed: low-numbered sets (big transit paths) carry more routes.
            let a = rng.below(ATTRIBUTE_SETS as u64);
            let set = rng.below(a + 1) as usize;
            groups[set].push(Nlri::new(prefix));
        }
    }
    Table { sets, groups }
}

fn next_hop() -> NextHop {
    NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))
}

/// Encode the whole table, one encoder (attribute set encoded once) per set.
fn encode_table(t: &Table, ctx: &Context, out: &mut Vec<u8>) -> usize {
    let mut messages = 0;
    for (attrs, nlri) in t.sets.iter().zip(&t.groups) {
        if nlri.is_empty() {
            continue;
        }
        let encoder =
            ReachEncoder::new(attrs, Family::IPV4_UNICAST, next_hop(), ctx).expect("fits");
        messages += encoder.encode(nlri, out);
    }
    messages
}

/// Decode a stream of UPDATE messages, counting prefixes.
fn decode_stream(mut stream: &[u8], ctx: &Context) -> usize {
    let mut prefixes = 0;
    while let Ok(Some(h)) = peek_header(stream, 4096) {
        let (msg, rest) = stream.split_at(h.len);
        let parsed = decode_update(&msg[19..], ctx).expect("valid UPDATE");
        prefixes += parsed.update.nlri.len();
        stream = rest;
    }
    prefixes
}

fn benches(c: &mut Criterion) {
    let ctx = Context::external(64512);
    let ctx = Context {
        enforce_first_as: false,
        ..ctx
    };
    let t = table();
    let mut stream = Vec::with_capacity(8 << 20);
    let messages = encode_table(&t, &ctx, &mut stream);
    eprintln!(
        "table: {PREFIXES} prefixes, {ATTRIBUTE_SETS} attribute sets, {messages} UPDATEs, {} MiB",
        stream.len() >> 20
    );
    assert_eq!(decode_stream(&stream, &ctx), PREFIXES);

    let mut g = c.benchmark_group("full_table");
    g.sample_size(20);
    g.throughput(Throughput::Elements(PREFIXES as u64));
    g.bench_function("decode_1m_ipv4", |b| {
        b.iter(|| decode_stream(black_box(&stream), &ctx))
    });
    let mut out = Vec::with_capacity(stream.len());
    g.bench_function("encode_1m_ipv4_shared_attributes", |b| {
        b.iter(|| {
            out.clear();
            encode_table(black_box(&t), &ctx, &mut out)
        })
    });
    g.finish();

    // Marginal cost per prefix: one full UPDATE versus one with one prefix.
    let attrs = &t.sets[0];
    let encoder = ReachEncoder::new(attrs, Family::IPV4_UNICAST, next_hop(), &ctx).expect("fits");
    let many: Vec<Nlri> = t.groups[0]
        .iter()
        .copied()
        .filter(|n| n.prefix.prefix_len() == 24)
        .take(5000)
        .collect();
    let mut full = Vec::new();
    encoder.encode(&many, &mut full);
    let full_len = usize::from(u16::from_be_bytes([full[16], full[17]]));
    let full = full[..full_len].to_vec();
    let in_full = decode_stream(&full, &ctx);
    let mut one = Vec::new();
    encoder.encode(&many[..1], &mut one);
    let mut g = c.benchmark_group("single_update");
    g.bench_function("decode_1_prefix", |b| {
        b.iter(|| decode_stream(black_box(&one), &ctx))
    });
    g.throughput(Throughput::Elements(in_full as u64));
    g.bench_function(format!("decode_{in_full}_prefixes"), |b| {
        b.iter(|| decode_stream(black_box(&full), &ctx))
    });
    g.finish();

    // Whole-message path, as the session layer will call it.
    let msg = Message::decode(&full, &ctx).expect("decodes");
    c.bench_function("message_encode_full_update", |b| {
        b.iter(|| black_box(&msg).to_bytes(&ctx))
    });
}

criterion_group!(codec, benches);
criterion_main!(codec);
