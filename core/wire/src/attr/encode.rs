//! Encoding of one typed attribute, header included.

use super::{PathAttributes, code, expected_category, flags};

/// Write the attribute header. The Extended Length bit is set when the
/// value needs it or when `flags` (from the arrival layout) already had it.
pub(crate) fn put_header(out: &mut Vec<u8>, attr_flags: u8, attr_code: u8, len: usize) {
    if len > 255 || attr_flags & flags::EXTENDED_LENGTH != 0 {
        out.push(attr_flags | flags::EXTENDED_LENGTH);
        out.push(attr_code);
        out.extend_from_slice(&(len.min(0xffff) as u16).to_be_bytes());
    } else {
        out.push(attr_flags);
        out.push(attr_code);
        out.push(len as u8);
    }
}

/// Encode attribute `attr_code` of `attrs` if it is present. `slot_flags`
/// are the flags it arrived with, if any; otherwise the standard ones.
/// Returns whether anything was written.
pub(crate) fn encode_attribute(
    attrs: &PathAttributes,
    attr_code: u8,
    four_octet: bool,
    slot_flags: Option<u8>,
    out: &mut Vec<u8>,
) -> bool {
    let standard = expected_category(attr_code).unwrap_or(flags::OPTIONAL_TRANSITIVE);
    let f = slot_flags.unwrap_or(standard);
    match attr_code {
        code::ORIGIN => {
            let Some(origin) = attrs.origin else {
                return false;
            };
            put_header(out, f, attr_code, 1);
            out.push(origin as u8);
        }
        code::AS_PATH => {
            let Some(path) = &attrs.as_path else {
                return false;
            };
            put_header(out, f, attr_code, path.encoded_len(four_octet));
            path.encode(four_octet, out);
        }
        code::NEXT_HOP => {
            let Some(nh) = attrs.next_hop else {
                return false;
            };
            put_header(out, f, attr_code, 4);
            out.extend_from_slice(&nh.octets());
        }
        code::MULTI_EXIT_DISC | code::LOCAL_PREF | code::OTC => {
            let value = match attr_code {
                code::MULTI_EXIT_DISC => attrs.med,
                code::LOCAL_PREF => attrs.local_pref,
                _ => attrs.otc,
            };
            let Some(value) = value else { return false };
            put_header(out, f, attr_code, 4);
            out.extend_from_slice(&value.to_be_bytes());
        }
        code::ATOMIC_AGGREGATE => {
            if !attrs.atomic_aggregate {
                return false;
            }
            put_header(out, f, attr_code, 0);
        }
        code::AGGREGATOR => {
            let Some(agg) = attrs.aggregator else {
                return false;
            };
            if four_octet {
                put_header(out, f, attr_code, 8);
                out.extend_from_slice(&agg.asn.to_be_bytes());
            } else {
                put_header(out, f, attr_code, 6);
                let narrow = u16::try_from(agg.asn).unwrap_or(crate::AS_TRANS as u16);
                out.extend_from_slice(&narrow.to_be_bytes());
            }
            out.extend_from_slice(&agg.address.octets());
        }
        code::COMMUNITIES => {
            if attrs.communities.is_empty() {
                return false;
            }
            put_header(out, f, attr_code, attrs.communities.len() * 4);
            for c in &attrs.communities {
                out.extend_from_slice(&c.0.to_be_bytes());
            }
        }
        code::ORIGINATOR_ID => {
            let Some(id) = attrs.originator_id else {
                return false;
            };
            put_header(out, f, attr_code, 4);
            out.extend_from_slice(&id.octets());
        }
        code::CLUSTER_LIST => {
            if attrs.cluster_list.is_empty() {
                return false;
            }
            put_header(out, f, attr_code, attrs.cluster_list.len() * 4);
            for id in &attrs.cluster_list {
                out.extend_from_slice(&id.octets());
            }
        }
        code::EXTENDED_COMMUNITIES => {
            if attrs.extended_communities.is_empty() {
                return false;
            }
            put_header(out, f, attr_code, attrs.extended_communities.len() * 8);
            for c in &attrs.extended_communities {
                out.extend_from_slice(&c.0);
            }
        }
        code::AS4_PATH => {
            // Only towards 2-octet speakers, and only when it says more
            // than AS_PATH does (RFC 6793 §4.2.2).
            let Some(path) = &attrs.as_path else {
                return false;
            };
            if four_octet || !path.needs_as4_path() {
                return false;
            }
            let as4 = path.to_as4_path();
            put_header(out, f, attr_code, as4.encoded_len(true));
            as4.encode(true, out);
        }
        code::AS4_AGGREGATOR => {
            let Some(agg) = attrs.aggregator else {
                return false;
            };
            if four_octet || agg.asn <= u32::from(u16::MAX) {
                return false;
            }
            put_header(out, f, attr_code, 8);
            out.extend_from_slice(&agg.asn.to_be_bytes());
            out.extend_from_slice(&agg.address.octets());
        }
        code::LARGE_COMMUNITIES => {
            if attrs.large_communities.is_empty() {
                return false;
            }
            put_header(out, f, attr_code, attrs.large_communities.len() * 12);
            for c in &attrs.large_communities {
                out.extend_from_slice(&c.global.to_be_bytes());
                out.extend_from_slice(&c.local1.to_be_bytes());
                out.extend_from_slice(&c.local2.to_be_bytes());
            }
        }
        _ => {
            let Some(raw) = attrs.other.iter().find(|a| a.code == attr_code) else {
                return false;
            };
            put_header(
                out,
                slot_flags.unwrap_or(raw.flags),
                attr_code,
                raw.value.len(),
            );
            out.extend_from_slice(&raw.value);
        }
    }
    true
}
