//! Entry points shared by the cargo-fuzz targets and the corpus replay test
//! on stable, so both exercise exactly the same code. Each asserts the
//! codec's invariants (by panicking, which is how fuzzers see a failure): no panic, and anything accepted re-encodes to
//! something that decodes to the same value.

// A panic is how a fuzzer (and the corpus replay test) sees a failure.
#![allow(clippy::panic)]

use crate::context::Context;
use crate::header::peek_header;
use crate::message::Message;
use crate::open::Open;
use crate::update::decode_update;

/// Session contexts the fuzzers cycle through, picked by the first byte.
fn context(selector: u8) -> Context {
    let add_path = if selector & 8 != 0 {
        crate::PerFamily::BOTH
    } else {
        crate::PerFamily::NONE
    };
    Context {
        four_octet_as: selector & 1 == 0,
        ebgp: selector & 2 != 0,
        peer_as: 64512,
        extended_message: selector & 4 != 0,
        add_path_receive: add_path,
        add_path_send: add_path,
        extended_next_hop: selector & 16 != 0,
        mp_errors: if selector & 32 != 0 {
            crate::MpErrorHandling::DisableFamily
        } else {
            crate::MpErrorHandling::ResetSession
        },
        ..Context::default()
    }
}

/// A whole message, header included, under a context chosen by `data[0]`.
pub fn message(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let ctx = context(selector);
    if let Ok(Some(header)) = peek_header(bytes, ctx.max_message_len())
        && let Some(msg) = bytes.get(..header.len)
        && let Ok(decoded) = Message::decode(msg, &ctx)
    {
        round_trip(&decoded, &ctx);
    }
}

/// An UPDATE body (no header).
pub fn update(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let ctx = context(selector);
    if let Ok(parsed) = decode_update(body, &ctx) {
        let _ = parsed.update.withdrawals(true).count();
        let _ = parsed.update.end_of_rib();
        let msg = Message::Update(parsed.update.clone().into());
        round_trip(&msg, &ctx);
    }
}

/// An OPEN body (no header).
pub fn open(data: &[u8]) {
    if let Ok(open) = Open::decode(data) {
        let _ = open.asn();
        round_trip(&Message::Open(open), &Context::default());
    }
}

/// Differential: whatever decodes, encoding and decoding again must give
/// the same value, and a second encode the same bytes.
fn round_trip(msg: &Message, ctx: &Context) {
    let Ok(bytes) = msg.to_bytes(ctx) else { return };
    let again = match Message::decode(&bytes, ctx) {
        Ok(m) => m,
        Err(e) => panic!("re-encoded message does not decode: {e}\n{msg:?}\n{bytes:02x?}"),
    };
    let normalize = |m: &Message| match m {
        Message::Update(p) => {
            let mut u = p.update.clone();
            u.attributes.layout.clear();
            Message::Update(u.into())
        }
        other => other.clone(),
    };
    assert_eq!(
        normalize(&again),
        normalize(msg),
        "round trip changed the message"
    );
    let bytes2 = again.to_bytes(ctx).unwrap_or_default();
    assert_eq!(bytes, bytes2, "second encode differs");
}

/// Encode∘decode differential: build a well-formed UPDATE from the fuzzer's
/// bytes, encode it, decode it, and require the same value back. Finds
/// encoder bugs that byte-level fuzzing of the decoder cannot reach.
pub fn build_round_trip(data: &[u8]) {
    use crate::attr::{
        Aggregator, AsPath, Community, LargeCommunity, Origin, Segment, SegmentType,
    };
    use crate::family::Family;
    use crate::prefix::{Ipv4Prefix, Ipv6Prefix, Nlri, Prefix};
    use crate::update::{MpReach, MpUnreach, NextHop, Update};
    use std::net::{Ipv4Addr, Ipv6Addr};

    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next().unwrap_or(0);
    let selector = next();
    let mut ctx = context(selector & !32);
    ctx.ebgp = false;
    let four = ctx.four_octet_as;
    let u32_from = |n: &mut dyn FnMut() -> u8| u32::from_be_bytes([n(), n(), n(), n()]);
    let mut u = Update::default();
    let flags = next();
    let a = &mut u.attributes;
    a.origin = Some([Origin::Igp, Origin::Egp, Origin::Incomplete][usize::from(next() % 3)]);
    let mut segments = Vec::new();
    for _ in 0..next() % 4 {
        let kind = [SegmentType::Sequence, SegmentType::Set][usize::from(next() % 2)];
        let count = usize::from(next() % 8) + 1;
        let asns: Vec<u32> = (0..count)
            .map(|_| {
                let asn = u32_from(&mut next).max(1);
                if four { asn } else { asn & 0xffff | 1 }
            })
            .collect();
        segments.push(Segment { kind, asns });
    }
    a.as_path = Some(AsPath { segments });
    a.local_pref = Some(u32_from(&mut next));
    if flags & 1 != 0 {
        a.med = Some(u32_from(&mut next));
    }
    if flags & 2 != 0 {
        a.atomic_aggregate = true;
        let asn = u32_from(&mut next).max(1);
        a.aggregator = Some(Aggregator {
            asn: if four { asn } else { asn & 0xffff | 1 },
            address: Ipv4Addr::from(u32_from(&mut next)),
        });
    }
    for _ in 0..next() % 5 {
        a.communities.push(Community(u32_from(&mut next)));
    }
    for _ in 0..next() % 3 {
        a.large_communities.push(LargeCommunity {
            global: u32_from(&mut next),
            local1: u32_from(&mut next),
            local2: u32_from(&mut next),
        });
    }
    if flags & 4 != 0 {
        a.originator_id = Some(Ipv4Addr::from(u32_from(&mut next)));
        a.cluster_list.push(Ipv4Addr::from(u32_from(&mut next)));
    }
    let path_id =
        |n: &mut dyn FnMut() -> u8, on: bool| on.then(|| u32::from_be_bytes([n(), n(), n(), n()]));
    let v4_ap = ctx.add_path_receive.get(Family::IPV4_UNICAST);
    let v6_ap = ctx.add_path_receive.get(Family::IPV6_UNICAST);
    for _ in 0..next() % 6 {
        let p = Ipv4Prefix::new(Ipv4Addr::from(u32_from(&mut next)), next() % 33);
        if let Some(p) = p {
            u.nlri.push(Nlri {
                prefix: Prefix::V4(p),
                path_id: path_id(&mut next, v4_ap),
            });
        }
    }
    for _ in 0..next() % 3 {
        let p = Ipv4Prefix::new(Ipv4Addr::from(u32_from(&mut next)), next() % 33);
        if let Some(p) = p {
            u.withdrawn.push(Nlri {
                prefix: Prefix::V4(p),
                path_id: path_id(&mut next, v4_ap),
            });
        }
    }
    if !u.nlri.is_empty() {
        // Avoid the martian next hops the decoder rightly refuses.
        u.attributes.next_hop = Some(Ipv4Addr::new(192, 0, 2, next().max(1)));
    }
    if flags & 8 != 0 {
        let mut nlri = Vec::new();
        for _ in 0..next() % 4 + 1 {
            let addr = Ipv6Addr::from(u128::from(u32_from(&mut next)) << 96);
            if let Some(p) = Ipv6Prefix::new(addr, next() % 129) {
                nlri.push(Nlri {
                    prefix: Prefix::V6(p),
                    path_id: path_id(&mut next, v6_ap),
                });
            }
        }
        let global = Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(next()));
        let link_local = (flags & 16 != 0).then(|| Ipv6Addr::from(0xfe80_u128 << 112 | 1));
        u.mp_reach = Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: NextHop::V6 { global, link_local },
            nlri,
        });
    }
    if flags & 32 != 0 {
        u.mp_unreach = Some(MpUnreach {
            family: Family::IPV6_UNICAST,
            nlri: Vec::new(),
        });
    }
    if !u.has_reachable() && flags & 64 != 0 {
        u.attributes = crate::attr::PathAttributes::default();
    }
    let msg = Message::Update(u.into());
    let Ok(bytes) = msg.to_bytes(&ctx) else {
        return;
    };
    match Message::decode(&bytes, &ctx) {
        Ok(Message::Update(parsed)) => {
            assert!(
                parsed.problems.is_empty(),
                "built UPDATE has problems: {:?}",
                parsed.problems
            );
            let Message::Update(orig) = &msg else { return };
            let mut back = parsed.update;
            back.attributes.layout.clear();
            assert_eq!(back, orig.update, "encode∘decode changed the UPDATE");
        }
        other => panic!("built UPDATE does not decode: {other:?}"),
    }
}

/// Replay every input in `dir` (a fuzz target's corpus) through `check`,
/// as the stable replay tests of every crate do; a failure names the file
/// and how to replay it under the fuzzer. The number of inputs replayed.
pub fn replay_corpus<T>(dir: &std::path::Path, target: &str, check: fn(&[u8]) -> T) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| {
            check(&data);
        });
        assert!(
            outcome.is_ok(),
            "{} fails; replay it with `cargo fuzz run {target}` in its fuzz directory",
            path.display()
        );
        count += 1;
    }
    assert!(count > 0, "the corpus of {target} is empty");
    count
}
