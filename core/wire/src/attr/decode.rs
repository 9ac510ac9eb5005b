//! Per-attribute decoding with the checks of RFC 7606 §7 and the specs that
//! own each attribute. Each decoder either fills `PathAttributes` or says
//! which approach the error calls for.

use std::net::Ipv4Addr;

use super::{
    Aggregator, AsPath, Community, ExtendedCommunity, LargeCommunity, Origin, PathAttributes,
    RawAttribute, code, expected_category, flags,
};
use crate::Context;
use crate::reader::Reader;
use crate::verdict::Action;

/// AS4_PATH and AS4_AGGREGATOR seen on a 2-octet session, merged once the
/// whole attribute list has been read (RFC 6793 §4.2.3).
#[derive(Debug, Default)]
pub(crate) struct As4Pending {
    pub(crate) path: Option<AsPath>,
    pub(crate) aggregator: Option<Aggregator>,
}

/// A per-attribute error: the action and why.
#[derive(Debug)]
pub(crate) struct Fault {
    pub(crate) action: Action,
    pub(crate) reason: String,
}

fn withdraw(reason: impl Into<String>) -> Fault {
    Fault {
        action: Action::TreatAsWithdraw,
        reason: reason.into(),
    }
}

fn discard(reason: impl Into<String>) -> Fault {
    Fault {
        action: Action::AttributeDiscard,
        reason: reason.into(),
    }
}

/// The approach for a malformed instance of `code` received from this peer.
fn malformed_action(code: u8, ctx: &Context) -> fn(String) -> Fault {
    match code {
        code::ATOMIC_AGGREGATE
        | code::AGGREGATOR
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::AIGP
        | code::BGP_LS
        | code::PREFIX_SID
        | 0
        | 255 => |r| discard(r),
        code::LOCAL_PREF | code::ORIGINATOR_ID | code::CLUSTER_LIST if ctx.ebgp => |r| discard(r),
        _ => |r| withdraw(r),
    }
}

/// Decode one attribute other than MP_REACH/MP_UNREACH into `attrs`.
pub(crate) fn decode_attribute(
    attr_flags: u8,
    attr_code: u8,
    value: &[u8],
    ctx: &Context,
    attrs: &mut PathAttributes,
    as4: &mut As4Pending,
) -> Result<(), Fault> {
    let fail = malformed_action(attr_code, ctx);
    let Some(category) = expected_category(attr_code) else {
        return decode_unknown(attr_flags, attr_code, value, attrs);
    };
    if attr_flags & flags::CATEGORY != category {
        return Err(fail(format!(
            "flags {attr_flags:#04x} conflict with the attribute's Optional/Transitive bits"
        )));
    }
    let exact = |len: usize, what: &str| {
        if value.len() == len {
            Ok(())
        } else {
            Err(fail(format!(
                "{what} length {} (must be {len})",
                value.len()
            )))
        }
    };
    let multiple = |unit: usize, what: &str| {
        if !value.is_empty() && value.len().is_multiple_of(unit) {
            Ok(())
        } else {
            Err(fail(format!(
                "{what} length {} (must be a non-zero multiple of {unit})",
                value.len()
            )))
        }
    };
    let be32 = |v: &[u8]| v.first_chunk::<4>().map_or(0, |b| u32::from_be_bytes(*b));

    match attr_code {
        code::ORIGIN => {
            exact(1, "ORIGIN")?;
            attrs.origin = Some(match value.first() {
                Some(0) => Origin::Igp,
                Some(1) => Origin::Egp,
                Some(2) => Origin::Incomplete,
                other => return Err(fail(format!("ORIGIN value {other:?} is not 0, 1 or 2"))),
            });
        }
        code::AS_PATH => {
            let path = AsPath::decode(value, ctx.four_octet_as)
                .map_err(|e| fail(format!("malformed AS_PATH: {e}")))?;
            if path.has_confed_segments() && !ctx.confederation {
                return Err(fail(
                    "AS_CONFED segment from a peer outside our confederation".into(),
                ));
            }
            if ctx.ebgp && ctx.enforce_first_as && path.first_asn() != Some(ctx.peer_as) {
                return Err(fail(format!(
                    "first AS in AS_PATH is not the peer's AS {}",
                    ctx.peer_as
                )));
            }
            attrs.as_path = Some(path);
        }
        code::NEXT_HOP => {
            exact(4, "NEXT_HOP")?;
            let nh = Ipv4Addr::from(be32(value));
            // A session that itself runs over loopback (tests, one-host
            // labs) legitimately uses 127/8 next hops.
            let loopback_session = ctx.local_ipv4.is_some_and(|a| a.is_loopback());
            let semantically_bad = nh.is_unspecified()
                || (nh.is_loopback() && !loopback_session)
                || nh.is_multicast()
                || ctx.local_ipv4 == Some(nh);
            if semantically_bad {
                // RFC 4271 §6.3: ignore the route, no NOTIFICATION.
                return Err(withdraw(format!("NEXT_HOP {nh} is not a usable address")));
            }
            attrs.next_hop = Some(nh);
        }
        code::MULTI_EXIT_DISC => {
            exact(4, "MULTI_EXIT_DISC")?;
            attrs.med = Some(be32(value));
        }
        code::LOCAL_PREF => {
            if ctx.ebgp {
                return Err(discard("LOCAL_PREF from an external peer"));
            }
            exact(4, "LOCAL_PREF")?;
            attrs.local_pref = Some(be32(value));
        }
        code::ATOMIC_AGGREGATE => {
            exact(0, "ATOMIC_AGGREGATE")?;
            attrs.atomic_aggregate = true;
        }
        code::AGGREGATOR => {
            let aggregator = decode_aggregator(value, ctx.four_octet_as).map_err(fail)?;
            attrs.aggregator = Some(aggregator);
        }
        code::COMMUNITIES => {
            multiple(4, "COMMUNITIES")?;
            attrs.communities = value
                .chunks_exact(4)
                .map(|c| Community(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
        }
        code::ORIGINATOR_ID => {
            if ctx.ebgp {
                return Err(discard("ORIGINATOR_ID from an external peer"));
            }
            exact(4, "ORIGINATOR_ID")?;
            attrs.originator_id = Some(Ipv4Addr::from(be32(value)));
        }
        code::CLUSTER_LIST => {
            if ctx.ebgp {
                return Err(discard("CLUSTER_LIST from an external peer"));
            }
            multiple(4, "CLUSTER_LIST")?;
            attrs.cluster_list = value
                .chunks_exact(4)
                .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                .collect();
        }
        code::EXTENDED_COMMUNITIES => {
            multiple(8, "EXTENDED_COMMUNITIES")?;
            attrs.extended_communities = value
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    ExtendedCommunity(b)
                })
                .collect();
        }
        code::AS4_PATH => {
            if ctx.four_octet_as {
                return Err(discard(
                    "AS4_PATH from a 4-octet speaker is ignored (RFC 6793)",
                ));
            }
            let path = AsPath::decode(value, true)
                .map_err(|e| fail(format!("malformed AS4_PATH: {e}")))?;
            as4.path = Some(path.to_as4_path());
        }
        code::AS4_AGGREGATOR => {
            if ctx.four_octet_as {
                return Err(discard(
                    "AS4_AGGREGATOR from a 4-octet speaker is ignored (RFC 6793)",
                ));
            }
            as4.aggregator = Some(decode_aggregator(value, true).map_err(fail)?);
        }
        code::LARGE_COMMUNITIES => {
            multiple(12, "LARGE_COMMUNITY")?;
            attrs.large_communities = value
                .chunks_exact(12)
                .map(|c| LargeCommunity {
                    global: be32(c),
                    local1: be32(c.get(4..).unwrap_or_default()),
                    local2: be32(c.get(8..).unwrap_or_default()),
                })
                .collect();
        }
        code::OTC => {
            exact(4, "OTC")?;
            let asn = be32(value);
            if asn == 0 {
                return Err(fail("OTC carries AS 0".into()));
            }
            attrs.otc = Some(asn);
        }
        code::PMSI_TUNNEL => {
            if value.len() < 5 {
                return Err(fail(format!(
                    "PMSI_TUNNEL length {} (must be at least 5)",
                    value.len()
                )));
            }
            keep_raw(attr_flags, attr_code, value, attrs);
        }
        code::TUNNEL_ENCAPSULATION | code::BGP_LS => {
            tlvs_tile(value, 2, 2).map_err(fail)?;
            keep_raw(attr_flags, attr_code, value, attrs);
        }
        code::PREFIX_SID => {
            tlvs_tile(value, 1, 2).map_err(fail)?;
            keep_raw(attr_flags, attr_code, value, attrs);
        }
        code::AIGP => {
            check_aigp(value).map_err(fail)?;
            keep_raw(attr_flags, attr_code, value, attrs);
        }
        code::IPV6_EXTENDED_COMMUNITIES => {
            multiple(20, "IPv6 address specific extended communities")?;
            keep_raw(attr_flags, attr_code, value, attrs);
        }
        code::TRAFFIC_ENGINEERING => {
            check_traffic_engineering(value).map_err(fail)?;
            keep_raw(attr_flags, attr_code, value, attrs);
        }
        _ => keep_raw(attr_flags, attr_code, value, attrs),
    }
    Ok(())
}

fn decode_unknown(
    attr_flags: u8,
    attr_code: u8,
    value: &[u8],
    attrs: &mut PathAttributes,
) -> Result<(), Fault> {
    if attr_code == 0 || attr_code == 255 {
        return Err(discard(format!("attribute type {attr_code} is reserved")));
    }
    if attr_flags & flags::OPTIONAL == 0 {
        // RFC 4271 would reset (3/2); we follow BIRD and withdraw only
        // these routes, so a future well-known attribute cannot take a
        // whole session down. Recorded in docs/rfc7606.md.
        return Err(withdraw(format!(
            "unrecognized well-known attribute {attr_code}"
        )));
    }
    if attr_flags & flags::TRANSITIVE != 0 {
        keep_raw(attr_flags, attr_code, value, attrs);
    }
    // Unknown optional non-transitive: dropped quietly (RFC 4271 §9).
    Ok(())
}

fn keep_raw(attr_flags: u8, attr_code: u8, value: &[u8], attrs: &mut PathAttributes) {
    // Extended Length is a property of one encoding, not of the attribute;
    // the arrival layout remembers it for byte-exact re-encoding.
    attrs.other.push(RawAttribute {
        flags: attr_flags & !flags::EXTENDED_LENGTH,
        code: attr_code,
        value: value.to_vec(),
    });
}

fn decode_aggregator(value: &[u8], four_octet: bool) -> Result<Aggregator, String> {
    let want = if four_octet { 8 } else { 6 };
    if value.len() != want {
        return Err(format!(
            "AGGREGATOR length {} (must be {want})",
            value.len()
        ));
    }
    let mut r = Reader::new(value);
    let asn = if four_octet {
        r.u32()
    } else {
        r.u16().map(u32::from)
    };
    let address = r.u32().map(Ipv4Addr::from);
    match (asn, address) {
        (Some(0), _) => Err("AGGREGATOR carries AS 0 (RFC 7607)".into()),
        (Some(asn), Some(address)) => Ok(Aggregator { asn, address }),
        _ => Err("AGGREGATOR truncated".into()),
    }
}

/// Check that `value` is a sequence of TLVs with `type_len`-octet types and
/// `len_len`-octet lengths that ends exactly at the end of the attribute.
fn tlvs_tile(value: &[u8], type_len: usize, len_len: usize) -> Result<(), String> {
    let mut r = Reader::new(value);
    while !r.is_empty() {
        r.take(type_len).ok_or("TLV type truncated")?;
        let len = match len_len {
            1 => r.u8().map(usize::from),
            _ => r.u16().map(usize::from),
        }
        .ok_or("TLV length truncated")?;
        r.take(len)
            .ok_or_else(|| format!("TLV of length {len} overruns the attribute"))?;
    }
    Ok(())
}

/// Traffic Engineering (RFC 5543): an Interface Switching Capability
/// Descriptor (RFC 4203 §1.4): switching capability, encoding, 2 reserved
/// octets and 8 priorities' maximum LSP bandwidth (36 octets), then what
/// the capability adds: PSC-1..4 and TDM add 8 (minimum LSP bandwidth and
/// MTU, or indication, padded).
fn check_traffic_engineering(value: &[u8]) -> Result<(), String> {
    const FIXED: usize = 36;
    let Some(&capability) = value.first() else {
        return Err("TRAFFIC_ENGINEERING is empty".into());
    };
    let needed = match capability {
        1..=4 | 100 => FIXED + 8,
        _ => FIXED,
    };
    if value.len() < needed {
        return Err(format!(
            "TRAFFIC_ENGINEERING length {} (switching capability {capability} needs at least {needed})",
            value.len()
        ));
    }
    Ok(())
}

/// AIGP (RFC 7311): TLVs whose length includes the 3-octet header; the only
/// defined TLV is type 1 with length 11.
fn check_aigp(value: &[u8]) -> Result<(), String> {
    let mut r = Reader::new(value);
    while !r.is_empty() {
        let (Some(kind), Some(len)) = (r.u8(), r.u16()) else {
            return Err("AIGP TLV header truncated".into());
        };
        if kind != 1 || len != 11 {
            return Err(format!(
                "AIGP TLV type {kind} length {len} (only type 1, length 11)"
            ));
        }
        r.take(8).ok_or("AIGP metric truncated")?;
    }
    Ok(())
}
