//! One test per row of the RFC 7606 table (shared/design/rfc7606.md, §2.2
//! and §2.3): each feeds a crafted UPDATE to the decoder and checks the
//! approach it picks, and for resets the exact NOTIFICATION.
//!
//! Over 800 lines on purpose: the file mirrors the table row by row, so a
//! reader finds a row's test where the row is; it grows with the table.

use std::net::Ipv4Addr;

use starling_wire::verdict::Action;
use starling_wire::{Context, Family, MpErrorHandling, PerFamily, Verdict, decode_update};

// ----- building blocks --------------------------------------------------

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
/// AS_PATH 64512 (the eBGP peer's AS) with 4-octet ASNs.
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x00];
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 192, 0, 2, 1];
const LOCAL_PREF: &[u8] = &[0x40, 5, 4, 0, 0, 0, 100];
/// 198.51.100.0/24
const NLRI: &[u8] = &[24, 198, 51, 100];

fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, code];
    if flags & 0x10 != 0 {
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.push(value.len() as u8);
    }
    out.extend_from_slice(value);
    out
}

fn body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut out = (withdrawn.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(withdrawn);
    out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    out.extend_from_slice(attrs);
    out.extend_from_slice(nlri);
    out
}

/// The mandatory attributes for the peer type, with `extra` appended.
fn base(ibgp: bool, extra: &[&[u8]]) -> Vec<u8> {
    let mut out = [ORIGIN, AS_PATH, NEXT_HOP].concat();
    if ibgp {
        out.extend_from_slice(LOCAL_PREF);
    }
    for e in extra {
        out.extend_from_slice(e);
    }
    out
}

fn ibgp() -> Context {
    Context {
        local_ipv4: Some(Ipv4Addr::new(192, 0, 2, 254)),
        ..Context::default()
    }
}

fn ebgp() -> Context {
    Context {
        local_ipv4: Some(Ipv4Addr::new(192, 0, 2, 254)),
        ..Context::external(64512)
    }
}

fn ipv4_only(mut ctx: Context) -> Context {
    ctx.families = PerFamily {
        ipv4_unicast: true,
        ipv6_unicast: false,
    };
    ctx
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Accept,
    /// Attribute codes discarded.
    Discard(Vec<u8>),
    Withdraw,
    Disable(Vec<Family>),
    Reset(u8, u8),
}
use Outcome::*;

fn decode(ctx: &Context, body: &[u8]) -> Outcome {
    match decode_update(body, ctx) {
        Err(reset) => Reset(reset.notification.code, reset.notification.subcode),
        Ok(p) if !p.disabled.is_empty() => Disable(p.disabled),
        Ok(p) => match p.verdict {
            Verdict::Accept => Accept,
            Verdict::TreatAsWithdraw => Withdraw,
            Verdict::AttributeDiscard => Discard(
                p.problems
                    .iter()
                    .filter(|x| x.action == Action::AttributeDiscard)
                    .filter_map(|x| x.attribute)
                    .collect(),
            ),
        },
    }
}

/// Decode an UPDATE of the base attributes plus `extra` and IPv4 NLRI.
fn with(ctx: &Context, extra: &[&[u8]]) -> Outcome {
    decode(ctx, &body(&[], &base(!ctx.ebgp, extra), NLRI))
}

fn mp_reach_v6(nh: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, nh.len() as u8];
    v.extend_from_slice(nh);
    v.push(0);
    v.extend_from_slice(nlri);
    attr(0x90, 14, &v)
}

const V6_NH: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// 2001:db8:1::/48
const V6_NLRI: &[u8] = &[48, 0x20, 0x01, 0x0d, 0xb8, 0, 1];

// ----- sanity ------------------------------------------------------------

#[test]
fn well_formed_updates_are_accepted() {
    assert_eq!(with(&ibgp(), &[]), Accept);
    assert_eq!(with(&ebgp(), &[]), Accept);
}

// ----- §2.2 message and structure rules ----------------------------------

#[test]
fn s1_lengths_that_overrun_the_message_reset_3_1() {
    let mut b = body(&[], &base(true, &[]), NLRI);
    b[1] = 200; // Withdrawn Routes Length past the end
    assert_eq!(decode(&ibgp(), &b), Reset(3, 1));
    let mut b = body(&[], &base(true, &[]), NLRI);
    b[3] = 250; // Total Path Attribute Length past the end
    assert_eq!(decode(&ibgp(), &b), Reset(3, 1));
    assert_eq!(decode(&ibgp(), &[0]), Reset(3, 1));
}

#[test]
fn s2_optional_transitive_flag_conflicts() {
    // ORIGIN marked optional: treat-as-withdraw.
    assert_eq!(
        decode(
            &ibgp(),
            &body(
                &[],
                &[&attr(0xc0, 1, &[0])[..], AS_PATH, NEXT_HOP, LOCAL_PREF].concat(),
                NLRI
            )
        ),
        Withdraw
    );
    // MED marked well-known: treat-as-withdraw.
    assert_eq!(with(&ibgp(), &[&attr(0x40, 4, &[0, 0, 0, 1])]), Withdraw);
    // ATOMIC_AGGREGATE's own rule is discard, flags errors included.
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 6, &[])]), Discard(vec![6]));
    // Partial on a well-known attribute is not checked (BIRD, holo).
    assert_eq!(
        decode(
            &ibgp(),
            &body(
                &[],
                &[&attr(0x60, 1, &[0])[..], AS_PATH, NEXT_HOP, LOCAL_PREF].concat(),
                NLRI
            )
        ),
        Accept
    );
}

#[test]
fn s3_missing_well_known_attributes_treat_as_withdraw() {
    let no_origin = [AS_PATH, NEXT_HOP, LOCAL_PREF].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &no_origin, NLRI)), Withdraw);
    let no_path = [ORIGIN, NEXT_HOP, LOCAL_PREF].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &no_path, NLRI)), Withdraw);
    let no_next_hop = [ORIGIN, AS_PATH, LOCAL_PREF].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &no_next_hop, NLRI)), Withdraw);
    // LOCAL_PREF is mandatory on iBGP only.
    let no_local_pref = [ORIGIN, AS_PATH, NEXT_HOP].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &no_local_pref, NLRI)), Withdraw);
    assert_eq!(decode(&ebgp(), &body(&[], &no_local_pref, NLRI)), Accept);
    // NEXT_HOP is not needed when only MP_REACH_NLRI carries routes.
    let mp_only = [ORIGIN, AS_PATH, LOCAL_PREF, &mp_reach_v6(&V6_NH, V6_NLRI)].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &mp_only, &[])), Accept);
    // Nothing is mandatory without reachable NLRI (End-of-RIB, withdrawals).
    assert_eq!(decode(&ibgp(), &body(&[], &[], &[])), Accept);
    assert_eq!(decode(&ibgp(), &body(NLRI, &[], &[])), Accept);
}

#[test]
fn s4_duplicate_mp_attributes_reset_3_1() {
    let reach = mp_reach_v6(&V6_NH, V6_NLRI);
    let attrs = [ORIGIN, AS_PATH, LOCAL_PREF, &reach, &reach].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &attrs, &[])), Reset(3, 1));
    let unreach = attr(0x80, 15, &[0, 2, 1]);
    let attrs = [&unreach[..], &unreach].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &attrs, &[])), Reset(3, 1));
}

#[test]
fn s5_other_duplicates_keep_the_first() {
    let med1 = attr(0x80, 4, &[0, 0, 0, 1]);
    let med2 = attr(0x80, 4, &[0, 0, 0, 2]);
    assert_eq!(with(&ibgp(), &[&med1, &med2]), Discard(vec![4]));
    let p =
        decode_update(&body(&[], &base(true, &[&med1, &med2]), NLRI), &ibgp()).expect("no reset");
    assert_eq!(p.update.attributes.med, Some(1));
    // Unknown attributes too.
    let unknown = attr(0xc0, 200, &[1]);
    assert_eq!(with(&ibgp(), &[&unknown, &unknown]), Discard(vec![200]));
}

#[test]
fn s6_attribute_framing_errors() {
    // The last attribute claims more octets than the attribute field has.
    let mut attrs = base(true, &[]);
    attrs.extend_from_slice(&[0x80, 4, 9, 0, 0]);
    let b = body(&[], &attrs, NLRI);
    // IPv4-only session: NLRI are located through the attribute length.
    assert_eq!(decode(&ipv4_only(ibgp()), &b), Withdraw);
    // With IPv6 negotiated, an MP_REACH_NLRI may hide in the broken part:
    // we cannot withdraw what we cannot see, so reset.
    assert_eq!(decode(&ibgp(), &b), Reset(3, 1));
    // Fewer than 3 octets left for a header.
    let mut attrs = base(true, &[]);
    attrs.extend_from_slice(&[0x80, 4]);
    assert_eq!(
        decode(&ipv4_only(ibgp()), &body(&[], &attrs, NLRI)),
        Withdraw
    );
    // Extended Length with only 3 octets left.
    let mut attrs = base(true, &[]);
    attrs.extend_from_slice(&[0x90, 4, 0]);
    assert_eq!(
        decode(&ipv4_only(ibgp()), &body(&[], &attrs, NLRI)),
        Withdraw
    );
}

#[test]
fn s7_mp_reach_need_not_be_first() {
    let attrs = [ORIGIN, AS_PATH, LOCAL_PREF, &mp_reach_v6(&V6_NH, V6_NLRI)].concat();
    let p = decode_update(&body(&[], &attrs, &[]), &ibgp()).expect("accepted");
    assert_eq!(p.verdict, Verdict::Accept);
    assert_eq!(p.update.mp_reach.expect("MP_REACH").nlri.len(), 1);
}

#[test]
fn s8_error_in_update_without_reachable_nlri_does_not_reset() {
    // Our choice (FRR's): a withdraw-only UPDATE with a bad attribute still
    // withdraws its routes; RFC 7606 §8 discourages resets.
    let bad_origin = attr(0x40, 1, &[7]);
    let p = decode_update(&body(NLRI, &bad_origin, &[]), &ibgp()).expect("no reset");
    assert_eq!(p.verdict, Verdict::TreatAsWithdraw);
    assert_eq!(p.update.withdrawals(true).count(), 1);
}

#[test]
fn s9_bad_nlri_fields_reset_3_10() {
    let attrs = base(true, &[]);
    assert_eq!(
        decode(&ibgp(), &body(&[], &attrs, &[33, 1, 2, 3, 4, 5])),
        Reset(3, 10)
    );
    assert_eq!(
        decode(&ibgp(), &body(&[], &attrs, &[24, 198, 51])),
        Reset(3, 10)
    );
    assert_eq!(
        decode(&ibgp(), &body(&[40, 1, 2, 3, 4, 5], &[], &[])),
        Reset(3, 10)
    );
    // ADD-PATH negotiated but the peer sends plain NLRI: misparses, reset.
    let mut ap = ibgp();
    ap.add_path_receive = PerFamily::BOTH;
    assert_eq!(decode(&ap, &body(&[], &attrs, NLRI)), Reset(3, 10));
}

#[test]
fn s10_malformed_mp_attributes() {
    let mp = |value: &[u8]| [ORIGIN, AS_PATH, LOCAL_PREF, &attr(0x80, 14, value)].concat();
    // MP_REACH shorter than 5 octets.
    assert_eq!(
        decode(&ibgp(), &body(&[], &mp(&[0, 2, 1, 0]), &[])),
        Reset(3, 1)
    );
    // MP_UNREACH shorter than 3 octets: 3/9, the attribute as data.
    let short = attr(0x80, 15, &[0, 2]);
    let reset = decode_update(&body(&[], &short, &[]), &ibgp()).expect_err("reset");
    assert_eq!(
        (reset.notification.code, reset.notification.subcode),
        (3, 9)
    );
    assert_eq!(reset.notification.data, short);
    // Bad flags on MP_REACH.
    let mut reach = mp_reach_v6(&V6_NH, V6_NLRI);
    reach[0] = 0xd0;
    let attrs = [ORIGIN, AS_PATH, LOCAL_PREF, &reach].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &attrs, &[])), Reset(3, 1));
    // Bad NLRI inside MP_UNREACH.
    let unreach = attr(0x80, 15, &[0, 2, 1, 129, 0]);
    assert_eq!(decode(&ibgp(), &body(&[], &unreach, &[])), Reset(3, 9));
}

#[test]
fn s10_afi_safi_disable_when_configured() {
    let mut ctx = ibgp();
    ctx.mp_errors = MpErrorHandling::DisableFamily;
    let reach = mp_reach_v6(&V6_NH[..15], V6_NLRI);
    let attrs = [ORIGIN, AS_PATH, NEXT_HOP, LOCAL_PREF, &reach].concat();
    let p = decode_update(&body(&[], &attrs, NLRI), &ctx).expect("no reset");
    assert_eq!(p.disabled, vec![Family::IPV6_UNICAST]);
    assert!(p.update.mp_reach.is_none());
    // The IPv4 routes of the same UPDATE are untouched.
    assert_eq!(p.verdict, Verdict::Accept);
    assert_eq!(p.update.nlri.len(), 1);
}

#[test]
fn s11_families_not_negotiated_are_ignored() {
    // EVPN (AFI 25, SAFI 70) was never negotiated: drop the attribute, keep
    // the IPv4 routes.
    let evpn = attr(
        0x90,
        14,
        &[
            0, 25, 70, 4, 192, 0, 2, 1, 0, 2, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    assert_eq!(with(&ibgp(), &[&evpn]), Discard(vec![14]));
    // Same for IPv6 on an IPv4-only session.
    let reach = mp_reach_v6(&V6_NH, V6_NLRI);
    assert_eq!(with(&ipv4_only(ibgp()), &[&reach]), Discard(vec![14]));
}

#[test]
fn s12_unknown_optional_non_transitive_is_dropped_quietly() {
    let p = decode_update(
        &body(&[], &base(true, &[&attr(0x80, 201, &[1, 2])]), NLRI),
        &ibgp(),
    )
    .expect("accepted");
    assert_eq!(p.verdict, Verdict::Accept);
    assert!(p.update.attributes.other.is_empty());
}

#[test]
fn s13_unknown_optional_transitive_is_kept_byte_for_byte_with_partial() {
    let unknown = attr(0xc0, 202, &[9, 8, 7]);
    let p = decode_update(&body(&[], &base(true, &[&unknown]), NLRI), &ibgp()).expect("accepted");
    assert_eq!(p.verdict, Verdict::Accept);
    let out = p.update.attributes.for_propagation();
    assert_eq!(out.other.len(), 1);
    assert_eq!(out.other[0].value, vec![9, 8, 7]);
    assert_eq!(out.other[0].flags, 0xe0, "Partial bit set on propagation");
}

#[test]
fn s14_unknown_well_known_treats_as_withdraw() {
    // Our choice (BIRD's) over RFC 4271's 3/2 reset: see docs/wire.md.
    assert_eq!(with(&ibgp(), &[&attr(0x40, 203, &[1])]), Withdraw);
}

#[test]
fn s15_reserved_flag_bits_are_ignored() {
    let origin = attr(0x4f, 1, &[0]);
    let attrs = [&origin[..], AS_PATH, NEXT_HOP, LOCAL_PREF].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &attrs, NLRI)), Accept);
}

#[test]
fn s16_enforce_first_as_on_ebgp() {
    let other_as = [ORIGIN, &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8][..], NEXT_HOP].concat();
    assert_eq!(decode(&ebgp(), &body(&[], &other_as, NLRI)), Withdraw);
    let mut route_server = ebgp();
    route_server.enforce_first_as = false;
    assert_eq!(decode(&route_server, &body(&[], &other_as, NLRI)), Accept);
    // An eBGP peer that did not prepend at all.
    let empty_path = [ORIGIN, &[0x40, 2, 0][..], NEXT_HOP].concat();
    assert_eq!(decode(&ebgp(), &body(&[], &empty_path, NLRI)), Withdraw);
}

// ----- §2.3 per-attribute rules ------------------------------------------

/// Replace the base attribute `code` with `replacement`.
fn replacing(ctx: &Context, code: u8, replacement: &[u8]) -> Outcome {
    let mut attrs = Vec::new();
    for a in [ORIGIN, AS_PATH, NEXT_HOP, LOCAL_PREF] {
        if a[1] == code {
            attrs.extend_from_slice(replacement);
        } else if a[1] != 5 || !ctx.ebgp {
            attrs.extend_from_slice(a);
        }
    }
    decode(ctx, &body(&[], &attrs, NLRI))
}

#[test]
fn attr_1_origin() {
    assert_eq!(replacing(&ibgp(), 1, &attr(0x40, 1, &[0, 0])), Withdraw);
    assert_eq!(replacing(&ibgp(), 1, &attr(0x40, 1, &[3])), Withdraw);
    assert_eq!(replacing(&ibgp(), 1, &attr(0x40, 1, &[2])), Accept);
}

#[test]
fn attr_2_as_path() {
    let cases: &[&[u8]] = &[
        &[5, 1, 0, 0, 0xfc, 0],                         // unknown segment type
        &[2, 2, 0, 0, 0xfc, 0],                         // segment overrun
        &[2, 1, 0, 0, 0xfc, 0, 9],                      // one octet left over
        &[2, 0],                                        // segment of length 0
        &[2, 1, 0, 0, 0, 0],                            // AS 0 (RFC 7607)
        &[3, 1, 0, 0, 0xfd, 0xe9, 2, 1, 0, 0, 0xfc, 0], // confed from a non-confed peer
    ];
    for value in cases {
        assert_eq!(
            replacing(&ibgp(), 2, &attr(0x40, 2, value)),
            Withdraw,
            "{value:?}"
        );
    }
    let mut confed = ibgp();
    confed.confederation = true;
    assert_eq!(replacing(&confed, 2, &attr(0x40, 2, cases[5])), Accept);
}

#[test]
fn attr_3_next_hop() {
    assert_eq!(
        replacing(&ibgp(), 3, &attr(0x40, 3, &[192, 0, 2, 1, 0])),
        Withdraw
    );
    for bad in [
        [0, 0, 0, 0],
        [127, 0, 0, 1],
        [224, 0, 0, 5],
        [192, 0, 2, 254],
    ] {
        assert_eq!(
            replacing(&ibgp(), 3, &attr(0x40, 3, &bad)),
            Withdraw,
            "{bad:?}"
        );
    }
    // On a session that itself runs over loopback, 127/8 is fine.
    let mut lo = ibgp();
    lo.local_ipv4 = Some(Ipv4Addr::LOCALHOST);
    assert_eq!(replacing(&lo, 3, &attr(0x40, 3, &[127, 0, 0, 2])), Accept);
}

#[test]
fn attr_4_med() {
    assert_eq!(with(&ibgp(), &[&attr(0x80, 4, &[0, 0, 1])]), Withdraw);
}

#[test]
fn attr_5_local_pref() {
    // From eBGP: discarded, well formed or not.
    assert_eq!(with(&ebgp(), &[LOCAL_PREF]), Discard(vec![5]));
    assert_eq!(with(&ebgp(), &[&attr(0x40, 5, &[1])]), Discard(vec![5]));
    assert_eq!(replacing(&ibgp(), 5, &attr(0x40, 5, &[0, 0, 1])), Withdraw);
}

#[test]
fn attr_6_atomic_aggregate() {
    assert_eq!(with(&ibgp(), &[&attr(0x40, 6, &[1])]), Discard(vec![6]));
    assert_eq!(with(&ibgp(), &[&attr(0x40, 6, &[])]), Accept);
}

#[test]
fn attr_7_aggregator() {
    assert_eq!(
        with(&ibgp(), &[&attr(0xc0, 7, &[0xfc, 0, 192, 0, 2, 1])]),
        Discard(vec![7])
    );
    assert_eq!(
        with(&ibgp(), &[&attr(0xc0, 7, &[0, 0, 0, 0, 192, 0, 2, 1])]),
        Discard(vec![7])
    );
    let mut two = ibgp();
    two.four_octet_as = false;
    let two_path: &[u8] = &[0x40, 2, 4, 2, 1, 0xfc, 0];
    let attrs = [
        ORIGIN,
        two_path,
        NEXT_HOP,
        LOCAL_PREF,
        &attr(0xc0, 7, &[0, 0, 0xfc, 0, 192, 0, 2, 1]),
    ]
    .concat();
    assert_eq!(decode(&two, &body(&[], &attrs, NLRI)), Discard(vec![7]));
}

#[test]
fn attr_8_communities() {
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 8, &[])]), Withdraw);
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 8, &[0, 0, 0, 1, 2])]), Withdraw);
}

#[test]
fn attr_9_originator_id() {
    assert_eq!(
        with(&ebgp(), &[&attr(0x80, 9, &[192, 0, 2, 9])]),
        Discard(vec![9])
    );
    assert_eq!(with(&ibgp(), &[&attr(0x80, 9, &[192, 0, 2])]), Withdraw);
    assert_eq!(with(&ibgp(), &[&attr(0x80, 9, &[192, 0, 2, 9])]), Accept);
}

#[test]
fn attr_10_cluster_list() {
    assert_eq!(
        with(&ebgp(), &[&attr(0x80, 10, &[192, 0, 2, 9])]),
        Discard(vec![10])
    );
    assert_eq!(with(&ibgp(), &[&attr(0x80, 10, &[])]), Withdraw);
    assert_eq!(
        with(&ibgp(), &[&attr(0x80, 10, &[1, 2, 3, 4, 5, 6])]),
        Withdraw
    );
}

#[test]
fn attr_14_mp_reach_next_hop_lengths() {
    for len in [0usize, 4, 15, 17, 24, 33] {
        let nh = vec![0x20; len];
        let attrs = [ORIGIN, AS_PATH, LOCAL_PREF, &mp_reach_v6(&nh, V6_NLRI)].concat();
        assert_eq!(
            decode(&ibgp(), &body(&[], &attrs, &[])),
            Reset(3, 1),
            "next hop length {len}"
        );
    }
    for len in [16usize, 32] {
        let mut nh = V6_NH.repeat(2);
        nh.truncate(len);
        let attrs = [ORIGIN, AS_PATH, LOCAL_PREF, &mp_reach_v6(&nh, V6_NLRI)].concat();
        assert_eq!(
            decode(&ibgp(), &body(&[], &attrs, &[])),
            Accept,
            "next hop length {len}"
        );
    }
    // Next-hop length overruns the attribute.
    let overrun = attr(0x90, 14, &[0, 2, 1, 40, 1, 2, 3]);
    assert_eq!(
        decode(
            &ibgp(),
            &body(&[], &[ORIGIN, AS_PATH, LOCAL_PREF, &overrun].concat(), &[])
        ),
        Reset(3, 1)
    );
    // IPv4 NLRI with an IPv6 next hop needs RFC 8950 negotiated.
    let mut v4_over_v6 = vec![0, 1, 1, 16];
    v4_over_v6.extend_from_slice(&V6_NH);
    v4_over_v6.push(0);
    v4_over_v6.extend_from_slice(NLRI);
    let attrs = [ORIGIN, AS_PATH, LOCAL_PREF, &attr(0x90, 14, &v4_over_v6)].concat();
    assert_eq!(decode(&ibgp(), &body(&[], &attrs, &[])), Reset(3, 1));
    let mut enh = ibgp();
    enh.extended_next_hop = true;
    assert_eq!(decode(&enh, &body(&[], &attrs, &[])), Accept);
}

#[test]
fn attr_15_mp_unreach() {
    assert_eq!(
        decode(&ibgp(), &body(&[], &attr(0x80, 15, &[0, 2]), &[])),
        Reset(3, 9)
    );
    assert_eq!(
        decode(&ibgp(), &body(&[], &attr(0x80, 15, &[0, 2, 1, 64, 1]), &[])),
        Reset(3, 9)
    );
    // End-of-RIB for IPv6.
    let p = decode_update(&body(&[], &attr(0x80, 15, &[0, 2, 1]), &[]), &ibgp()).expect("EoR");
    assert_eq!(p.update.end_of_rib(), Some(Family::IPV6_UNICAST));
}

#[test]
fn attr_16_extended_communities() {
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 16, &[])]), Withdraw);
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 16, &[0; 9])]), Withdraw);
    // Unknown type and subtype are not errors.
    assert_eq!(
        with(&ibgp(), &[&attr(0xc0, 16, &[0x7f, 0x7f, 1, 2, 3, 4, 5, 6])]),
        Accept
    );
}

#[test]
fn attr_17_as4_path() {
    // From a 4-octet speaker: ignored (discarded).
    assert_eq!(
        with(&ibgp(), &[&attr(0xc0, 17, &[2, 1, 0, 0, 0xfc, 0])]),
        Discard(vec![17])
    );
    // Malformed on a 2-octet session: discarded, the route stands.
    let mut two = ibgp();
    two.four_octet_as = false;
    let two_path: &[u8] = &[0x40, 2, 4, 2, 1, 0x5b, 0xa0]; // AS_TRANS
    let bad4 = attr(0xc0, 17, &[2, 2, 0, 0, 0, 1]);
    let attrs = [ORIGIN, two_path, NEXT_HOP, LOCAL_PREF, &bad4].concat();
    assert_eq!(decode(&two, &body(&[], &attrs, NLRI)), Discard(vec![17]));
    // Well formed: the real path is rebuilt (RFC 6793 §4.2.3).
    let good4 = attr(0xc0, 17, &[2, 1, 0xfa, 0x56, 0xea, 0x01]);
    let attrs = [ORIGIN, two_path, NEXT_HOP, LOCAL_PREF, &good4].concat();
    let p = decode_update(&body(&[], &attrs, NLRI), &two).expect("accepted");
    assert_eq!(p.verdict, Verdict::Accept);
    assert_eq!(
        p.update.attributes.as_path.expect("path").to_string(),
        "4200000001"
    );
}

#[test]
fn attr_18_as4_aggregator() {
    let mut two = ibgp();
    two.four_octet_as = false;
    let two_path: &[u8] = &[0x40, 2, 4, 2, 1, 0xfc, 0];
    for value in [&[0u8, 0, 0, 1, 192, 0, 2][..], &[0, 0, 0, 0, 192, 0, 2, 1]] {
        let attrs = [
            ORIGIN,
            two_path,
            NEXT_HOP,
            LOCAL_PREF,
            &attr(0xc0, 18, value),
        ]
        .concat();
        assert_eq!(
            decode(&two, &body(&[], &attrs, NLRI)),
            Discard(vec![18]),
            "{value:?}"
        );
    }
}

#[test]
fn attr_22_pmsi_tunnel() {
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 22, &[0, 0, 0])]), Withdraw);
    assert_eq!(
        with(&ibgp(), &[&attr(0xc0, 22, &[0, 6, 0, 0, 0, 192, 0, 2, 1])]),
        Accept
    );
}

#[test]
fn attr_23_tunnel_encapsulation() {
    assert_eq!(
        with(&ibgp(), &[&attr(0xc0, 23, &[0, 7, 0, 9, 1])]),
        Withdraw
    );
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 23, &[0, 7, 0, 1, 1])]), Accept);
}

#[test]
fn attr_24_traffic_engineering_is_checked_then_carried() {
    // An Interface Switching Capability Descriptor (RFC 5543, RFC 4203
    // §1.4): 36 octets of fixed part, PSC and TDM 8 more.
    let iscd = |capability: u8, len: usize| {
        let mut v = vec![0u8; len];
        if let Some(first) = v.first_mut() {
            *first = capability;
        }
        v
    };
    assert_eq!(with(&ibgp(), &[&attr(0x80, 24, &[1, 2, 3])]), Withdraw);
    assert_eq!(with(&ibgp(), &[&attr(0x80, 24, &[])]), Withdraw);
    assert_eq!(
        with(&ibgp(), &[&attr(0x80, 24, &iscd(51, 36))]),
        Accept,
        "L2SC"
    );
    assert_eq!(with(&ibgp(), &[&attr(0x80, 24, &iscd(51, 35))]), Withdraw);
    assert_eq!(
        with(&ibgp(), &[&attr(0x80, 24, &iscd(1, 36))]),
        Withdraw,
        "PSC-1 needs 44"
    );
    assert_eq!(with(&ibgp(), &[&attr(0x80, 24, &iscd(1, 44))]), Accept);
    assert_eq!(
        with(&ibgp(), &[&attr(0x80, 24, &iscd(100, 43))]),
        Withdraw,
        "TDM needs 44"
    );
    // Wrong flags (optional transitive) stay a withdrawal.
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 24, &iscd(51, 36))]), Withdraw);
}

#[test]
fn attr_25_ipv6_extended_communities() {
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 25, &[0; 19])]), Withdraw);
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 25, &[0; 20])]), Accept);
}

#[test]
fn attr_26_aigp() {
    assert_eq!(
        with(
            &ibgp(),
            &[&attr(0x80, 26, &[1, 0, 10, 0, 0, 0, 0, 0, 0, 0])]
        ),
        Discard(vec![26])
    );
    assert_eq!(
        with(
            &ibgp(),
            &[&attr(0xc0, 26, &[1, 0, 11, 0, 0, 0, 0, 0, 0, 0, 1])]
        ),
        Discard(vec![26])
    );
    assert_eq!(
        with(
            &ibgp(),
            &[&attr(0x80, 26, &[1, 0, 11, 0, 0, 0, 0, 0, 0, 0, 1])]
        ),
        Accept
    );
}

#[test]
fn attr_29_bgp_ls() {
    assert_eq!(
        with(&ibgp(), &[&attr(0x80, 29, &[1, 2, 0, 5, 1])]),
        Discard(vec![29])
    );
}

#[test]
fn attr_32_large_communities() {
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 32, &[0; 11])]), Withdraw);
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 32, &[])]), Withdraw);
}

#[test]
fn attr_35_otc() {
    assert_eq!(with(&ebgp(), &[&attr(0xc0, 35, &[0, 0, 1])]), Withdraw);
    assert_eq!(with(&ebgp(), &[&attr(0xc0, 35, &[0, 0, 0, 0])]), Withdraw);
    assert_eq!(with(&ebgp(), &[&attr(0xc0, 35, &[0, 0, 0xfc, 0])]), Accept);
}

#[test]
fn attr_40_prefix_sid() {
    assert_eq!(
        with(&ibgp(), &[&attr(0xc0, 40, &[1, 0, 9, 0])]),
        Discard(vec![40])
    );
}

#[test]
fn attr_0_and_255_are_discarded() {
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 0, &[1])]), Discard(vec![0]));
    assert_eq!(with(&ibgp(), &[&attr(0xc0, 255, &[1])]), Discard(vec![255]));
}

// ----- precedence ---------------------------------------------------------

#[test]
fn the_strongest_action_wins() {
    // Discard + treat-as-withdraw -> treat-as-withdraw.
    assert_eq!(
        with(&ibgp(), &[&attr(0x40, 6, &[1]), &attr(0x80, 4, &[1])]),
        Withdraw
    );
    // Treat-as-withdraw + reset -> reset, with every problem reported.
    let attrs = [
        &attr(0x40, 1, &[9])[..],
        AS_PATH,
        LOCAL_PREF,
        &attr(0x80, 15, &[0]),
    ]
    .concat();
    let reset = decode_update(&body(&[], &attrs, &[]), &ibgp()).expect_err("reset");
    assert_eq!(reset.problems.len(), 2);
    assert_eq!(
        (reset.notification.code, reset.notification.subcode),
        (3, 9)
    );
}

#[test]
fn treat_as_withdraw_lists_every_nlri() {
    let reach = mp_reach_v6(&V6_NH, V6_NLRI);
    let attrs = [
        &attr(0x40, 1, &[9])[..],
        AS_PATH,
        NEXT_HOP,
        LOCAL_PREF,
        &reach,
    ]
    .concat();
    let p = decode_update(&body(&[], &attrs, NLRI), &ibgp()).expect("no reset");
    assert_eq!(p.verdict, Verdict::TreatAsWithdraw);
    let withdrawn: Vec<String> = p
        .update
        .withdrawals(true)
        .map(|n| n.prefix.to_string())
        .collect();
    assert_eq!(withdrawn, vec!["198.51.100.0/24", "2001:db8:1::/48"]);
}
