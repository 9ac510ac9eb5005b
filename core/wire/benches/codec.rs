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
use starling_wire::testdata::Table;
use starling_wire::{
    Context, Family, Message, NextHop, Nlri, ReachEncoder, decode_update, peek_header,
};

const PREFIXES: usize = 1_000_000;
const ATTRIBUTE_SETS: usize = 5_000;

fn table() -> Table {
    Table::generate(PREFIXES, ATTRIBUTE_SETS, 64512, 0x5eed_cafe_f00d_d00d)
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
