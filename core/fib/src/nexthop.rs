//! Kernel nexthop objects (Linux 5.3+) for ECMP routes: one object per
//! gateway, one group per distinct gateway set, and routes that name the
//! group (`RTA_NH_ID`). A million routes over the same four gateways then
//! share one group: a route write carries 4 bytes of next hop instead of
//! the whole multipath list, and the kernel keeps one copy.
//!
//! netlink-packet-route has no nexthop messages, so they are encoded here
//! (linux/nexthop.h); they are small.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// `RTM_NEWNEXTHOP`, `RTM_DELNEXTHOP`, `RTM_GETNEXTHOP`.
pub(crate) const RTM_NEWNEXTHOP: u16 = 104;
pub(crate) const RTM_DELNEXTHOP: u16 = 105;
pub(crate) const RTM_GETNEXTHOP: u16 = 106;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Our ids start here, away from the low ids FRR's zebra and hand-made
/// objects tend to use.
const FIRST_ID: u32 = 0x5354_0000;

/// A nexthop object as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Object {
    pub(crate) id: u32,
    pub(crate) protocol: u8,
    pub(crate) gateway: Option<IpAddr>,
    pub(crate) group: Vec<u32>,
}

/// The body (after the netlink header) of an `RTM_NEWNEXTHOP` for one
/// gateway out of `oif`.
pub(crate) fn new_gateway(id: u32, protocol: u8, gateway: IpAddr, oif: u32) -> Vec<u8> {
    let family = match gateway {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    };
    let mut body = header(family, protocol);
    attribute(&mut body, NHA_ID, &id.to_ne_bytes());
    attribute(&mut body, NHA_OIF, &oif.to_ne_bytes());
    match gateway {
        IpAddr::V4(a) => attribute(&mut body, NHA_GATEWAY, &a.octets()),
        IpAddr::V6(a) => attribute(&mut body, NHA_GATEWAY, &a.octets()),
    }
    body
}

/// The body of an `RTM_NEWNEXTHOP` for a group of equal-weight members.
pub(crate) fn new_group(id: u32, protocol: u8, members: &[u32]) -> Vec<u8> {
    let mut body = header(AF_UNSPEC, protocol);
    attribute(&mut body, NHA_ID, &id.to_ne_bytes());
    // struct nexthop_grp { u32 id; u8 weight (0 means 1); u8; u16; }
    let group: Vec<u8> = members
        .iter()
        .flat_map(|m| {
            let mut entry = m.to_ne_bytes().to_vec();
            entry.extend_from_slice(&[0, 0, 0, 0]);
            entry
        })
        .collect();
    attribute(&mut body, NHA_GROUP, &group);
    body
}

/// The body of an `RTM_DELNEXTHOP`.
pub(crate) fn delete(id: u32) -> Vec<u8> {
    let mut body = header(AF_UNSPEC, 0);
    attribute(&mut body, NHA_ID, &id.to_ne_bytes());
    body
}

/// The body of an `RTM_GETNEXTHOP` dump request.
pub(crate) fn dump_request() -> Vec<u8> {
    header(AF_UNSPEC, 0)
}

/// `struct nhmsg`: family, scope, protocol, reserved, flags.
fn header(family: u8, protocol: u8) -> Vec<u8> {
    let mut body = vec![family, 0, protocol, 0];
    body.extend_from_slice(&0u32.to_ne_bytes());
    body
}

fn attribute(body: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let length = 4 + value.len();
    body.extend_from_slice(&(length as u16).to_ne_bytes());
    body.extend_from_slice(&kind.to_ne_bytes());
    body.extend_from_slice(value);
    body.resize(body.len().next_multiple_of(4), 0);
}

/// A dumped `RTM_NEWNEXTHOP` body.
pub(crate) fn parse(body: &[u8]) -> Option<Object> {
    let header = body.get(..8)?;
    let protocol = header[2];
    let mut object = Object {
        id: 0,
        protocol,
        gateway: None,
        group: Vec::new(),
    };
    let mut rest = &body[8..];
    while rest.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if length < 4 || length > rest.len() {
            break;
        }
        let value = &rest[4..length];
        match kind {
            NHA_ID => object.id = u32::from_ne_bytes(value.get(..4)?.try_into().ok()?),
            NHA_GATEWAY => {
                object.gateway = match value.len() {
                    4 => Some(IpAddr::from(<[u8; 4]>::try_from(value).ok()?)),
                    16 => Some(IpAddr::from(<[u8; 16]>::try_from(value).ok()?)),
                    _ => None,
                }
            }
            NHA_GROUP => {
                object.group = value
                    .chunks_exact(8)
                    .filter_map(|e| Some(u32::from_ne_bytes(e.get(..4)?.try_into().ok()?)))
                    .collect();
            }
            _ => {}
        }
        rest = rest.get(length.next_multiple_of(4)..).unwrap_or_default();
    }
    (object.id != 0).then_some(object)
}

/// Which objects of ours exist, for which gateways and gateway sets.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) gateways: BTreeMap<IpAddr, u32>,
    /// Sorted gateway set → group id.
    pub(crate) groups: BTreeMap<Vec<IpAddr>, u32>,
    next: u32,
}

impl Registry {
    /// Rebuild from the kernel's objects of our protocol.
    pub(crate) fn adopt(&mut self, objects: &[Object]) {
        self.gateways.clear();
        self.groups.clear();
        let by_id: BTreeMap<u32, IpAddr> = objects
            .iter()
            .filter_map(|o| Some((o.id, o.gateway?)))
            .collect();
        for o in objects {
            if let Some(gw) = o.gateway {
                self.gateways.insert(gw, o.id);
            }
        }
        for o in objects.iter().filter(|o| !o.group.is_empty()) {
            let mut set: Vec<IpAddr> = o
                .group
                .iter()
                .filter_map(|m| by_id.get(m).copied())
                .collect();
            set.sort_unstable();
            if set.len() == o.group.len() {
                self.groups.insert(set, o.id);
            }
        }
        self.next = objects.iter().map(|o| o.id + 1).max().unwrap_or(0);
    }

    /// A fresh id of ours.
    pub(crate) fn allocate(&mut self) -> u32 {
        let used = |id: &u32| {
            self.gateways.values().any(|v| v == id) || self.groups.values().any(|v| v == id)
        };
        let mut id = self.next.max(FIRST_ID);
        while used(&id) {
            id = id.wrapping_add(1).max(FIRST_ID);
        }
        self.next = id.wrapping_add(1);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_the_parser() {
        let gw: IpAddr = "192.0.2.2".parse().expect("ip");
        let object = parse(&new_gateway(FIRST_ID, 199, gw, 7)).expect("gateway");
        assert_eq!(
            object,
            Object {
                id: FIRST_ID,
                protocol: 199,
                gateway: Some(gw),
                group: Vec::new()
            }
        );
        let v6: IpAddr = "2001:db8::2".parse().expect("ip");
        assert_eq!(
            parse(&new_gateway(9, 199, v6, 7)).expect("v6").gateway,
            Some(v6)
        );
        let group = parse(&new_group(FIRST_ID + 2, 199, &[FIRST_ID, FIRST_ID + 1])).expect("group");
        assert_eq!(group.group, [FIRST_ID, FIRST_ID + 1]);
        assert_eq!(parse(&delete(5)).expect("delete").id, 5);
    }

    #[test]
    fn ids_are_ours_and_never_reused_while_in_use() {
        let mut r = Registry::default();
        r.adopt(&[Object {
            id: FIRST_ID + 5,
            protocol: 199,
            gateway: Some("192.0.2.2".parse().expect("ip")),
            group: vec![],
        }]);
        assert_eq!(r.allocate(), FIRST_ID + 6);
        let mut empty = Registry::default();
        assert_eq!(empty.allocate(), FIRST_ID);
        assert_eq!(empty.allocate(), FIRST_ID + 1);
    }
}
