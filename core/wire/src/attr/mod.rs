//! Path attributes (RFC 4271 §4.3, §5) and their per-attribute RFC 7606
//! checks. MP_REACH_NLRI and MP_UNREACH_NLRI live with the UPDATE, since
//! they carry NLRI rather than route properties.

pub mod as_path;
pub mod community;
pub(crate) mod decode;
pub(crate) mod encode;

use std::net::Ipv4Addr;

pub use as_path::{AsPath, AsPathError, Segment, SegmentType};
pub use community::{Community, ExtendedCommunity, LargeCommunity};
pub(crate) use decode::decode_attribute;
pub(crate) use encode::encode_attribute;

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const PMSI_TUNNEL: u8 = 22;
    pub const TUNNEL_ENCAPSULATION: u8 = 23;
    pub const TRAFFIC_ENGINEERING: u8 = 24;
    pub const IPV6_EXTENDED_COMMUNITIES: u8 = 25;
    pub const AIGP: u8 = 26;
    pub const BGP_LS: u8 = 29;
    pub const LARGE_COMMUNITIES: u8 = 32;
    pub const OTC: u8 = 35;
    pub const PREFIX_SID: u8 = 40;
}

/// Attribute flag bits.
pub mod flags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
    /// The Optional and Transitive bits, which RFC 7606 §3(c) checks.
    pub const CATEGORY: u8 = OPTIONAL | TRANSITIVE;
    pub const WELL_KNOWN: u8 = TRANSITIVE;
    pub const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;
    pub const OPTIONAL_NON_TRANSITIVE: u8 = OPTIONAL;
}

/// The Optional/Transitive category an attribute's specification mandates,
/// or `None` for attributes this codec does not know.
pub fn expected_category(code: u8) -> Option<u8> {
    use code::*;
    Some(match code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => flags::WELL_KNOWN,
        AGGREGATOR
        | COMMUNITIES
        | EXTENDED_COMMUNITIES
        | AS4_PATH
        | AS4_AGGREGATOR
        | PMSI_TUNNEL
        | TUNNEL_ENCAPSULATION
        | IPV6_EXTENDED_COMMUNITIES
        | LARGE_COMMUNITIES
        | OTC
        | PREFIX_SID => flags::OPTIONAL_TRANSITIVE,
        MULTI_EXIT_DISC | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI
        | TRAFFIC_ENGINEERING | AIGP | BGP_LS => flags::OPTIONAL_NON_TRANSITIVE,
        _ => return None,
    })
}

/// ORIGIN values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// AGGREGATOR (or the merged AS4_AGGREGATOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

/// An attribute kept as bytes: one this codec validates but does not model
/// (AIGP, PMSI tunnel, ...) or an unknown optional transitive one, which
/// must be propagated byte for byte (RFC 4271 §9).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawAttribute {
    pub flags: u8,
    pub code: u8,
    pub value: Vec<u8>,
}

impl RawAttribute {
    /// Whether this codec knows the attribute's meaning.
    pub fn is_recognized(&self) -> bool {
        expected_category(self.code).is_some()
    }
}

/// Where and with which flags an attribute arrived. Re-encoding a received
/// attribute set follows this order and keeps these flags, so what goes out
/// is byte-identical to what came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrSlot {
    pub code: u8,
    pub flags: u8,
}

/// The attributes of a route, as typed values.
///
/// Absent list attributes are empty lists: a zero-length COMMUNITIES or
/// CLUSTER_LIST is malformed on the wire (RFC 7606 §7.8, §7.10), so
/// "absent" and "empty" cannot both be sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Vec<Community>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub extended_communities: Vec<ExtendedCommunity>,
    pub large_communities: Vec<LargeCommunity>,
    pub otc: Option<u32>,
    /// Validated-but-opaque and unknown transitive attributes, by code.
    pub other: Vec<RawAttribute>,
    /// Arrival order and flags; empty for attribute sets built locally,
    /// which encode in canonical order (ascending type code).
    pub layout: Vec<AttrSlot>,
}

impl PathAttributes {
    /// Forget the arrival order, so two sets that differ only in how a peer
    /// ordered them compare equal (for interning).
    pub fn canonicalize(&mut self) {
        self.layout.clear();
    }

    /// Prepare a received set for propagation to another peer: unknown
    /// transitive attributes get the Partial bit (RFC 4271 §5), non-
    /// transitive unknowns are dropped, and the arrival layout is forgotten.
    pub fn for_propagation(mut self) -> Self {
        self.other
            .retain(|a| a.is_recognized() || a.flags & flags::TRANSITIVE != 0);
        for attr in &mut self.other {
            if !attr.is_recognized() {
                attr.flags |= flags::PARTIAL;
            }
        }
        self.layout.clear();
        self
    }

    /// Whether no attribute is present (the arrival layout aside).
    pub fn is_empty(&self) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            origin,
            as_path,
            next_hop,
            med,
            local_pref,
            atomic_aggregate,
            aggregator,
            communities,
            originator_id,
            cluster_list,
            extended_communities,
            large_communities,
            otc,
            other,
            layout: _,
        } = self;
        origin.is_none()
            && as_path.is_none()
            && next_hop.is_none()
            && med.is_none()
            && local_pref.is_none()
            && !atomic_aggregate
            && aggregator.is_none()
            && communities.is_empty()
            && originator_id.is_none()
            && cluster_list.is_empty()
            && extended_communities.is_empty()
            && large_communities.is_empty()
            && otc.is_none()
            && other.is_empty()
    }

    /// Whether the set carries `community`.
    pub fn has_community(&self, community: Community) -> bool {
        self.communities.contains(&community)
    }

    /// Codes present in this set, ascending, as they would be encoded for a
    /// session with or without 4-octet AS support.
    pub(crate) fn present_codes(&self, four_octet: bool, out: &mut Vec<u8>) {
        use code::*;
        let needs_as4 = !four_octet && self.as_path.as_ref().is_some_and(AsPath::needs_as4_path);
        let needs_as4_aggregator =
            !four_octet && self.aggregator.is_some_and(|a| a.asn > u32::from(u16::MAX));
        let flags = [
            (ORIGIN, self.origin.is_some()),
            (AS_PATH, self.as_path.is_some()),
            (NEXT_HOP, self.next_hop.is_some()),
            (MULTI_EXIT_DISC, self.med.is_some()),
            (LOCAL_PREF, self.local_pref.is_some()),
            (ATOMIC_AGGREGATE, self.atomic_aggregate),
            (AGGREGATOR, self.aggregator.is_some()),
            (COMMUNITIES, !self.communities.is_empty()),
            (ORIGINATOR_ID, self.originator_id.is_some()),
            (CLUSTER_LIST, !self.cluster_list.is_empty()),
            (EXTENDED_COMMUNITIES, !self.extended_communities.is_empty()),
            (AS4_PATH, needs_as4),
            (AS4_AGGREGATOR, needs_as4_aggregator),
            (LARGE_COMMUNITIES, !self.large_communities.is_empty()),
            (OTC, self.otc.is_some()),
        ];
        let mut typed = flags
            .iter()
            .filter(|(_, present)| *present)
            .map(|(c, _)| *c)
            .peekable();
        let mut raw = self.other.iter().map(|a| a.code).peekable();
        // Merge two ascending lists.
        loop {
            let next = match (typed.peek(), raw.peek()) {
                (Some(&t), Some(&r)) if t <= r => typed.next(),
                (Some(_), Some(_)) | (None, Some(_)) => raw.next(),
                (Some(_), None) => typed.next(),
                (None, None) => break,
            };
            out.extend(next);
        }
    }
}
