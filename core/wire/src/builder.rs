//! The update-group fast path: encode an attribute set once, then pack as
//! many prefixes as fit behind it into as few messages as possible.

use crate::EncodeError;
use crate::attr::{PathAttributes, code, encode::put_header, flags};
use crate::context::Context;
use crate::family::Family;
use crate::header::{HEADER_LEN, MessageType, patch_len, write_header};
use crate::prefix::Nlri;
use crate::update::{MpReach, NextHop, Update};

/// Fixed part of an UPDATE before the attributes: header, Withdrawn Routes
/// Length, Total Path Attribute Length.
const UPDATE_FIXED: usize = HEADER_LEN + 4;

/// Announcements of one attribute set for one family, ready to be stamped
/// onto any number of prefixes.
#[derive(Debug, Clone)]
pub struct ReachEncoder {
    family: Family,
    add_path: bool,
    max_len: usize,
    /// Every attribute except MP_REACH_NLRI, encoded.
    attributes: Vec<u8>,
    /// For MP families: the MP_REACH_NLRI value up to the NLRI (AFI, SAFI,
    /// next hop, reserved octet).
    mp_prefix: Option<Vec<u8>>,
}

impl ReachEncoder {
    /// Prepare announcements of `family` with `attributes` and `next_hop`.
    /// IPv4 with an IPv4 next hop uses the base NLRI field and the NEXT_HOP
    /// attribute; everything else goes in MP_REACH_NLRI.
    pub fn new(
        attributes: &PathAttributes,
        family: Family,
        next_hop: NextHop,
        ctx: &Context,
    ) -> Result<Self, EncodeError> {
        let mut attrs = attributes.clone();
        attrs.layout.clear();
        let base_v4 = match (family, next_hop) {
            (Family::IPV4_UNICAST, NextHop::V4(nh)) => {
                attrs.next_hop = Some(nh);
                true
            }
            (Family::IPV4_UNICAST, NextHop::V6 { .. }) if ctx.extended_next_hop => {
                attrs.next_hop = None;
                false
            }
            (Family::IPV6_UNICAST, NextHop::V6 { .. }) => {
                attrs.next_hop = None;
                false
            }
            _ => return Err(EncodeError::Unsupported("next hop does not fit the family")),
        };
        let mut encoded = Vec::with_capacity(128);
        Update {
            attributes: attrs,
            ..Update::default()
        }
        .encode_attributes(ctx, &mut encoded);
        let mp_prefix = (!base_v4).then(|| {
            let mut mp = Vec::with_capacity(40);
            let empty = MpReach {
                family,
                next_hop,
                nlri: Vec::new(),
            };
            crate::update::encode_mp_reach(&empty, None, ctx, &mut mp);
            // Keep only the value after the 3-octet header.
            mp.split_off(3)
        });
        let ctx_max = ctx.max_message_len();
        let overhead = UPDATE_FIXED + encoded.len() + mp_prefix.as_ref().map_or(0, |p| 4 + p.len());
        // The longest NLRI entry: an IPv6 /128 with a path id.
        if overhead + 21 > ctx_max {
            return Err(EncodeError::TooLarge(
                "path attributes leave no room for NLRI",
            ));
        }
        Ok(Self {
            family,
            add_path: ctx.add_path_send.get(family),
            max_len: ctx_max,
            attributes: encoded,
            mp_prefix,
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The encoded attributes (without MP_REACH_NLRI), shared by every
    /// message this encoder produces.
    pub fn attribute_bytes(&self) -> &[u8] {
        &self.attributes
    }

    /// Append UPDATE messages announcing `nlri` to `out`; returns how many
    /// messages were written. Prefixes must all be of this encoder's family.
    pub fn encode(&self, nlri: &[Nlri], out: &mut Vec<u8>) -> usize {
        let mut rest = nlri;
        let mut messages = 0;
        while !rest.is_empty() {
            let start = out.len();
            write_header(out, MessageType::Update, 0);
            out.extend_from_slice(&[0, 0]); // no withdrawals
            let tal_at = out.len();
            out.extend_from_slice(&[0, 0]);
            let taken = match &self.mp_prefix {
                None => {
                    out.extend_from_slice(&self.attributes);
                    let budget = self.max_len - (out.len() - start);
                    let taken = pack(rest, self.add_path, budget, out);
                    let tal = self.attributes.len() as u16;
                    if let Some(f) = out.get_mut(tal_at..tal_at + 2) {
                        f.copy_from_slice(&tal.to_be_bytes());
                    }
                    taken
                }
                Some(mp) => {
                    // MP_REACH_NLRI first (RFC 7606 §5.1), always with a
                    // two-octet length since the NLRI decides its size.
                    out.extend_from_slice(&[
                        flags::OPTIONAL_NON_TRANSITIVE | flags::EXTENDED_LENGTH,
                        code::MP_REACH_NLRI,
                        0,
                        0,
                    ]);
                    let mp_len_at = out.len() - 2;
                    out.extend_from_slice(mp);
                    let budget = self.max_len - (out.len() - start) - self.attributes.len();
                    let nlri_start = out.len();
                    let taken = pack(rest, self.add_path, budget, out);
                    let mp_len = (mp.len() + out.len() - nlri_start) as u16;
                    if let Some(f) = out.get_mut(mp_len_at..mp_len_at + 2) {
                        f.copy_from_slice(&mp_len.to_be_bytes());
                    }
                    out.extend_from_slice(&self.attributes);
                    let tal = (out.len() - tal_at - 2) as u16;
                    if let Some(f) = out.get_mut(tal_at..tal_at + 2) {
                        f.copy_from_slice(&tal.to_be_bytes());
                    }
                    taken
                }
            };
            let len = (out.len() - start) as u16;
            patch_len(out, start, len);
            rest = rest.get(taken..).unwrap_or_default();
            messages += 1;
        }
        messages
    }
}

/// Append as many entries as fit in `budget` octets; returns how many.
fn pack(nlri: &[Nlri], add_path: bool, budget: usize, out: &mut Vec<u8>) -> usize {
    let mut used = 0;
    let extra = if add_path { 4 } else { 0 };
    for (i, n) in nlri.iter().enumerate() {
        let need = n.prefix.wire_len() + extra;
        if used + need > budget {
            return i;
        }
        used += need;
        if add_path {
            out.extend_from_slice(&n.path_id.unwrap_or(0).to_be_bytes());
        }
        n.prefix.encode(out);
    }
    nlri.len()
}

/// Append UPDATE messages withdrawing `nlri` of `family`; returns how many
/// messages were written.
pub fn encode_withdrawals(
    family: Family,
    nlri: &[Nlri],
    ctx: &Context,
    out: &mut Vec<u8>,
) -> usize {
    let add_path = ctx.add_path_send.get(family);
    let max = ctx.max_message_len();
    let mut rest = nlri;
    let mut messages = 0;
    while !rest.is_empty() {
        let start = out.len();
        write_header(out, MessageType::Update, 0);
        let taken;
        if family == Family::IPV4_UNICAST {
            out.extend_from_slice(&[0, 0]);
            let budget = max - UPDATE_FIXED;
            taken = pack(rest, add_path, budget, out);
            let wd_len = (out.len() - start - HEADER_LEN - 2) as u16;
            out.extend_from_slice(&[0, 0]);
            if let Some(f) = out.get_mut(start + HEADER_LEN..start + HEADER_LEN + 2) {
                f.copy_from_slice(&wd_len.to_be_bytes());
            }
        } else {
            out.extend_from_slice(&[0, 0, 0, 0]);
            let attr_start = out.len();
            put_header(
                out,
                flags::OPTIONAL_NON_TRANSITIVE | flags::EXTENDED_LENGTH,
                code::MP_UNREACH_NLRI,
                0,
            );
            out.extend_from_slice(&family.afi.0.to_be_bytes());
            out.push(family.safi.0);
            let budget = max - (out.len() - start);
            let nlri_start = out.len();
            taken = pack(rest, add_path, budget, out);
            let mp_len = (3 + out.len() - nlri_start) as u16;
            if let Some(f) = out.get_mut(attr_start + 2..attr_start + 4) {
                f.copy_from_slice(&mp_len.to_be_bytes());
            }
            let tal = (out.len() - attr_start) as u16;
            if let Some(f) = out.get_mut(attr_start - 2..attr_start) {
                f.copy_from_slice(&tal.to_be_bytes());
            }
        }
        let len = (out.len() - start) as u16;
        patch_len(out, start, len);
        rest = rest.get(taken..).unwrap_or_default();
        messages += 1;
    }
    messages
}

/// Append the End-of-RIB marker for `family` (RFC 4724 §2).
pub fn encode_end_of_rib(family: Family, out: &mut Vec<u8>) {
    let start = out.len();
    write_header(out, MessageType::Update, 0);
    if family == Family::IPV4_UNICAST {
        out.extend_from_slice(&[0, 0, 0, 0]);
    } else {
        out.extend_from_slice(&[
            0,
            0,
            0,
            6,
            flags::OPTIONAL_NON_TRANSITIVE,
            code::MP_UNREACH_NLRI,
            3,
        ]);
        out.extend_from_slice(&family.afi.0.to_be_bytes());
        out.push(family.safi.0);
    }
    let len = (out.len() - start) as u16;
    patch_len(out, start, len);
}
