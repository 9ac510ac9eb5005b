//! Property tests: `decode(encode(x)) == x` for every message type, at the
//! size limits too, and the update-group packer never exceeds a limit or
//! loses a prefix.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use starling_wire::attr::{Aggregator, Segment, SegmentType};
use starling_wire::capability::{
    AddPathMode, ExtendedNextHop, GracefulRestart, GracefulRestartFamily, LongLivedFamily, Role,
};
use starling_wire::{
    Afi, AsPath, Capability, Community, Context, EncodeError, ExtendedCommunity, Family,
    Ipv4Prefix, Ipv6Prefix, LargeCommunity, Message, MpReach, MpUnreach, NextHop, Nlri,
    Notification, Open, Origin, PathAttributes, PerFamily, Prefix, RawAttribute, ReachEncoder,
    RefreshSubtype, RouteRefresh, Safi, Update, encode_withdrawals,
};

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![
        Just(Family::IPV4_UNICAST),
        Just(Family::IPV6_UNICAST),
        (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Family::new(Afi(a), Safi(s)))
    ]
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        (1u32..).prop_map(Capability::FourOctetAs),
        (0u8..8).prop_map(|r| Capability::Role(Role::from_u8(r))),
        prop::collection::vec((family(), any::<u16>()), 0..4).prop_map(|v| {
            Capability::ExtendedNextHop(
                v.into_iter()
                    .map(|(family, nh)| ExtendedNextHop {
                        family,
                        next_hop_afi: Afi(nh),
                    })
                    .collect(),
            )
        }),
        (
            any::<bool>(),
            any::<bool>(),
            0u8..4,
            0u16..4096,
            prop::collection::vec((family(), any::<bool>(), 0u8..128), 0..4)
        )
            .prop_map(|(r, n, res, t, fams)| Capability::GracefulRestart(
                GracefulRestart {
                    restarting: r,
                    notification: n,
                    reserved_flags: res,
                    restart_time: t,
                    families: fams
                        .into_iter()
                        .map(|(family, f, rf)| GracefulRestartFamily {
                            family,
                            forwarding_preserved: f,
                            reserved_flags: rf
                        })
                        .collect(),
                }
            )),
        prop::collection::vec(
            (
                family(),
                prop_oneof![
                    Just(AddPathMode::Receive),
                    Just(AddPathMode::Send),
                    Just(AddPathMode::Both)
                ]
            ),
            1..4
        )
        .prop_map(Capability::AddPath),
        prop::collection::vec((family(), any::<bool>(), 0u8..128, 0u32..(1 << 24)), 0..3).prop_map(
            |v| Capability::LongLivedGracefulRestart(
                v.into_iter()
                    .map(|(family, f, rf, t)| LongLivedFamily {
                        family,
                        forwarding_preserved: f,
                        reserved_flags: rf,
                        stale_time: t
                    })
                    .collect()
            )
        ),
        (
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        (
            prop_oneof![Just(3u8), 10u8..64, 74u8..=255],
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        1u16..,
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        prop::collection::vec(prop::collection::vec(capability(), 0..6), 0..4),
        any::<bool>(),
    )
        .prop_map(
            |(my_as, hold_time, id, capability_groups, extended_parameters)| Open {
                my_as,
                hold_time,
                bgp_id: Ipv4Addr::from(id),
                capability_groups,
                extended_parameters,
            },
        )
}

fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| Prefix::V4(Ipv4Prefix::new(Ipv4Addr::from(a), l).expect("len <= 32")))
}

fn v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Prefix::V6(Ipv6Prefix::new(Ipv6Addr::from(a), l).expect("len <= 128")))
}

fn nlri(
    prefix: impl Strategy<Value = Prefix>,
    add_path: bool,
    max: usize,
) -> impl Strategy<Value = Vec<Nlri>> {
    prop::collection::vec((prefix, any::<u32>()), 0..max).prop_map(move |v| {
        v.into_iter()
            .map(|(prefix, id)| Nlri {
                prefix,
                path_id: add_path.then_some(id),
            })
            .collect()
    })
}

fn asn(four: bool) -> BoxedStrategy<u32> {
    if four {
        (1u32..).boxed()
    } else {
        (1u32..=0xffff).boxed()
    }
}

fn as_path(four: bool) -> impl Strategy<Value = AsPath> {
    let seg = (
        prop_oneof![Just(SegmentType::Sequence), Just(SegmentType::Set)],
        prop::collection::vec(asn(four), 1..20),
    )
        .prop_map(|(kind, asns)| Segment { kind, asns });
    prop::collection::vec(seg, 0..4).prop_map(|segments| AsPath { segments })
}

fn attributes(four: bool) -> impl Strategy<Value = PathAttributes> {
    (
        (
            prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ],
            as_path(four),
            proptest::option::of(any::<u32>()),
            any::<u32>(),
            any::<bool>(),
        ),
        (
            proptest::option::of((asn(four), any::<u32>())),
            prop::collection::vec(any::<u32>(), 0..10),
            proptest::option::of(any::<u32>()),
            prop::collection::vec(any::<u32>(), 0..4),
        ),
        (
            prop::collection::vec(any::<[u8; 8]>(), 0..4),
            prop::collection::vec(any::<(u32, u32, u32)>(), 0..4),
            proptest::option::of(1u32..),
        ),
        prop::collection::btree_map(
            prop_oneof![100u8..=200, 201u8..=254],
            prop::collection::vec(any::<u8>(), 0..300),
            0..3,
        ),
    )
        .prop_map(
            |(
                (origin, path, med, lp, atomic),
                (agg, comms, orig, clusters),
                (ext, large, otc),
                unknown,
            )| PathAttributes {
                origin: Some(origin),
                as_path: Some(path),
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                med,
                local_pref: Some(lp),
                atomic_aggregate: atomic,
                aggregator: agg.map(|(asn, a)| Aggregator {
                    asn,
                    address: Ipv4Addr::from(a),
                }),
                communities: comms.into_iter().map(Community).collect(),
                originator_id: orig.map(Ipv4Addr::from),
                cluster_list: clusters.into_iter().map(Ipv4Addr::from).collect(),
                extended_communities: ext.into_iter().map(ExtendedCommunity).collect(),
                large_communities: large
                    .into_iter()
                    .map(|(global, local1, local2)| LargeCommunity {
                        global,
                        local1,
                        local2,
                    })
                    .collect(),
                otc,
                other: unknown
                    .into_iter()
                    .map(|(code, value)| RawAttribute {
                        flags: 0xc0,
                        code,
                        value,
                    })
                    .collect(),
                layout: Vec::new(),
            },
        )
}

fn context() -> impl Strategy<Value = Context> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(four, ext, ap)| {
        let add_path = if ap { PerFamily::BOTH } else { PerFamily::NONE };
        Context {
            four_octet_as: four,
            extended_message: ext,
            add_path_receive: add_path,
            add_path_send: add_path,
            ..Context::default()
        }
    })
}

fn update(ctx: &Context) -> impl Strategy<Value = Update> + use<> {
    let ap = ctx.add_path_receive.ipv4_unicast;
    let most = if ctx.extended_message { 3000 } else { 300 };
    (
        attributes(ctx.four_octet_as),
        nlri(v4_prefix(), ap, most),
        nlri(v4_prefix(), ap, 50),
        proptest::option::of((
            nlri(v6_prefix(), ap, 100),
            any::<u128>(),
            proptest::option::of(any::<u128>()),
        )),
        proptest::option::of(nlri(v6_prefix(), ap, 50)),
    )
        .prop_map(|(attributes, nlri, withdrawn, reach, unreach)| {
            let mut u = Update {
                attributes,
                nlri,
                withdrawn,
                ..Update::default()
            };
            u.mp_reach = reach.map(|(nlri, g, ll)| MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop::V6 {
                    global: Ipv6Addr::from(g),
                    link_local: ll.map(Ipv6Addr::from),
                },
                nlri,
            });
            u.mp_unreach = unreach.map(|nlri| MpUnreach {
                family: Family::IPV6_UNICAST,
                nlri,
            });
            if u.nlri.is_empty() {
                u.attributes.next_hop = None;
            }
            u
        })
}

fn strip_layout(m: Message) -> Message {
    match m {
        Message::Update(p) => {
            let mut u = p.update;
            u.attributes.layout.clear();
            Message::Update(u.into())
        }
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn open_round_trips(open in open()) {
        let ctx = Context::default();
        // `extended_parameters` records a *choice*: when the parameters
        // need the RFC 9072 form anyway, it comes back false.
        let required = {
            let classic = Open { extended_parameters: false, ..open.clone() };
            Message::Open(classic).to_bytes(&ctx).is_ok_and(|b| b.get(28..30) == Some(&[255, 255][..]))
        };
        let expected = Message::Open(Open { extended_parameters: open.extended_parameters && !required, ..open.clone() });
        match Message::Open(open).to_bytes(&ctx) {
            Ok(bytes) => prop_assert_eq!(Message::decode(&bytes, &ctx).expect("decodes"), expected),
            Err(EncodeError::TooLarge(_)) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    #[test]
    fn notification_round_trips(code in 1u8..=8, subcode in any::<u8>(), data in prop::collection::vec(any::<u8>(), 0..200)) {
        let ctx = Context::default();
        let msg = Message::Notification(Notification::with_data(code, subcode, data));
        let bytes = msg.to_bytes(&ctx).expect("fits");
        prop_assert_eq!(Message::decode(&bytes, &ctx).expect("decodes"), msg);
    }

    #[test]
    fn shutdown_message_round_trips(text in "\\PC{0,300}") {
        let n = Notification::cease_with_message(2, &text);
        prop_assert!(n.data.len() <= 256);
        let got = n.shutdown_message().expect("valid UTF-8 within 255 octets");
        prop_assert!(text.starts_with(got));
    }

    #[test]
    fn route_refresh_round_trips(f in family(), subtype in any::<u8>()) {
        let ctx = Context::default();
        let subtype = match subtype { 0 => RefreshSubtype::Request, 1 => RefreshSubtype::Begin, 2 => RefreshSubtype::End, v => RefreshSubtype::Reserved(v) };
        let msg = Message::RouteRefresh(RouteRefresh { family: f, subtype });
        let bytes = msg.to_bytes(&ctx).expect("fits");
        prop_assert_eq!(bytes.len(), 23);
        prop_assert_eq!(Message::decode(&bytes, &ctx).expect("decodes"), msg);
    }

    #[test]
    fn update_round_trips((ctx, u) in context().prop_flat_map(|ctx| { let s = update(&ctx); (Just(ctx), s) })) {
        let msg = Message::Update(u.into());
        match msg.to_bytes(&ctx) {
            Ok(bytes) => {
                prop_assert!(bytes.len() <= ctx.max_message_len());
                let back = Message::decode(&bytes, &ctx).expect("decodes");
                if let Message::Update(p) = &back {
                    prop_assert!(p.problems.is_empty(), "{:?}", p.problems);
                }
                prop_assert_eq!(strip_layout(back), msg);
            }
            // Only a message over the session's limit may be refused.
            Err(EncodeError::TooLarge(_)) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    #[test]
    fn packer_fills_messages_to_the_limit_and_loses_nothing(
        (ctx, attrs, prefixes, v6) in context().prop_flat_map(|ctx| {
            let ap = ctx.add_path_send.ipv4_unicast;
            let four = ctx.four_octet_as;
            (Just(ctx), attributes(four), nlri(prop_oneof![v4_prefix(), v6_prefix()], ap, 5000), any::<bool>())
        })
    ) {
        let family = if v6 { Family::IPV6_UNICAST } else { Family::IPV4_UNICAST };
        let prefixes: Vec<Nlri> = prefixes.into_iter().filter(|n| (n.prefix.afi() == Afi::IPV6) == v6).collect();
        let nh = if v6 { NextHop::V6 { global: "2001:db8::1".parse().expect("v6"), link_local: None } } else { NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)) };
        let encoder = match ReachEncoder::new(&attrs, family, nh, &ctx) {
            Ok(e) => e,
            Err(EncodeError::TooLarge(_)) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        let mut out = Vec::new();
        let count = encoder.encode(&prefixes, &mut out);
        let mut rest = out.as_slice();
        let mut got = Vec::new();
        let mut seen = 0;
        while !rest.is_empty() {
            let h = starling_wire::peek_header(rest, ctx.max_message_len()).expect("valid header").expect("whole header");
            prop_assert!(h.len <= ctx.max_message_len());
            let (msg, tail) = rest.split_at(h.len);
            rest = tail;
            seen += 1;
            let Message::Update(p) = Message::decode(msg, &ctx).expect("decodes") else { panic!("not an UPDATE") };
            prop_assert!(p.problems.is_empty(), "{:?}", p.problems);
            let mut a = p.update.attributes.clone();
            a.layout.clear();
            a.next_hop = attrs.next_hop;
            prop_assert_eq!(&a, &attrs);
            got.extend(p.update.nlri.iter().copied());
            got.extend(p.update.mp_reach.iter().flat_map(|m| m.nlri.iter().copied()));
        }
        prop_assert_eq!(seen, count);
        prop_assert_eq!(&got, &prefixes);

        let mut out = Vec::new();
        let n = encode_withdrawals(family, &prefixes, &ctx, &mut out);
        let mut rest = out.as_slice();
        let mut got = Vec::new();
        for _ in 0..n {
            let h = starling_wire::peek_header(rest, ctx.max_message_len()).expect("valid").expect("whole");
            let (msg, tail) = rest.split_at(h.len);
            rest = tail;
            let Message::Update(p) = Message::decode(msg, &ctx).expect("decodes") else { panic!("not an UPDATE") };
            got.extend(p.update.withdrawals(false).copied());
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(got, prefixes);
    }
}

#[test]
fn packer_packs_exactly_to_4096_octets() {
    let ctx = Context::default();
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([64512])),
        ..PathAttributes::default()
    };
    let encoder = ReachEncoder::new(
        &attrs,
        Family::IPV4_UNICAST,
        NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
        &ctx,
    )
    .expect("fits");
    // /24s take 4 octets each; 3,000 of them need several messages.
    let prefixes: Vec<Nlri> = (0..3000u32)
        .map(|i| {
            Nlri::new(Prefix::V4(
                Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24).expect("/24"),
            ))
        })
        .collect();
    let mut out = Vec::new();
    let messages = encoder.encode(&prefixes, &mut out);
    let fixed = 19 + 4 + encoder.attribute_bytes().len();
    let per_message = (4096 - fixed) / 4;
    assert_eq!(messages, 3000usize.div_ceil(per_message));
    assert!(messages > 1);
    // The first message is full to the last octet the /24s allow.
    let first_len = usize::from(u16::from_be_bytes([out[16], out[17]]));
    assert_eq!(first_len, fixed + per_message * 4);
    assert!(first_len <= 4096 && first_len + 4 > 4096);
}

#[test]
fn update_larger_than_4096_needs_extended_messages() {
    let mut u = Update::default();
    u.attributes.origin = Some(Origin::Igp);
    u.attributes.as_path = Some(AsPath::default());
    u.attributes.local_pref = Some(100);
    u.attributes.communities = (0..1100).map(Community).collect();
    let msg = Message::Update(u.into());
    assert!(matches!(
        msg.to_bytes(&Context::default()),
        Err(EncodeError::TooLarge(_))
    ));
    let ext = Context {
        extended_message: true,
        ..Context::default()
    };
    let bytes = msg.to_bytes(&ext).expect("fits in 65535");
    assert!(bytes.len() > 4096);
    assert_eq!(
        strip_layout(Message::decode(&bytes, &ext).expect("decodes")),
        msg
    );
}

#[test]
fn as_path_of_1000_asns_towards_a_2_octet_peer() {
    // B6: AS4_PATH synthesis of 1,000 4-octet ASNs.
    let ctx = Context {
        four_octet_as: false,
        extended_message: true,
        ..Context::default()
    };
    let mut u = Update::default();
    u.attributes.origin = Some(Origin::Igp);
    u.attributes.as_path = Some(AsPath::from_sequence((0..1000).map(|i| 4_200_000_000 + i)));
    u.attributes.local_pref = Some(100);
    u.attributes.next_hop = Some(Ipv4Addr::new(192, 0, 2, 1));
    u.nlri = vec![Nlri::new("203.0.113.0/24".parse().expect("prefix"))];
    let bytes = Message::Update(u.clone().into())
        .to_bytes(&ctx)
        .expect("fits");
    let Message::Update(p) = Message::decode(&bytes, &ctx).expect("decodes") else {
        panic!()
    };
    assert!(p.problems.is_empty());
    assert_eq!(p.update.attributes.as_path.expect("path").len(), 1000);
}

#[test]
fn open_that_needs_extended_parameters_round_trips() {
    // Found by proptest: parameters over 255 octets force the RFC 9072 form;
    // decoding must not report that as a choice the sender made.
    let fqdn = Capability::Fqdn {
        hostname: vec![b'h'; 100],
        domain: vec![b'd'; 50],
    };
    let caps = vec![fqdn.clone(), fqdn];
    let open = Open::new(64512, 90, Ipv4Addr::new(192, 0, 2, 1), caps);
    let msg = Message::Open(open);
    let bytes = msg.to_bytes(&Context::default()).expect("fits in 4096");
    assert_eq!(bytes[28..30], [255, 255], "extended form used");
    assert_eq!(
        Message::decode(&bytes, &Context::default()).expect("decodes"),
        msg
    );
}
