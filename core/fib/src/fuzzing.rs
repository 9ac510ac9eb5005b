//! The netlink reply parser under the fuzzer (`tests/fuzz`, target
//! `netlink`) and the corpus replay test: the same walk over a datagram
//! that dumps and route notifications take.

// A panic is how a fuzzer (and the corpus replay test) sees a failure.
#![allow(clippy::panic)]

use std::collections::BTreeMap;

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;

use crate::FibConfig;
use crate::monitor::events;
use crate::netlink::{each_message, ours};

/// One datagram as the kernel might send it: as notifications (the route
/// monitor) and as a dump reply (adoption, resync). No panic, no loop; a
/// route taken as ours has a destination of its family's length. How many
/// were taken as ours, so tests can tell the seeds hold some.
pub fn datagram(data: &[u8]) -> usize {
    let _ = events(data);
    let config = FibConfig::default();
    let groups = BTreeMap::new();
    let mut taken = 0;
    let _ = each_message(data, &mut |message| {
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) = message.payload
            && let Some((dest, _)) = ours(&config, &route, &groups)
        {
            let max = if dest.addr().is_ipv4() { 32 } else { 128 };
            assert!(dest.len() <= max, "{dest:?}");
            taken += 1;
        }
        Ok(false)
    });
    taken
}
