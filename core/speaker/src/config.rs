//! What the operator says about one peer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use starling_wire::Family;
use starling_wire::capability::AddPathMode;

/// One BGP neighbour, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Remote address and port (179 unless the peer listens elsewhere).
    pub remote: SocketAddr,
    /// Source address for outbound connections; also the address a NEXT_HOP
    /// must not equal.
    pub local_address: Option<IpAddr>,
    pub local_as: u32,
    pub remote_as: u32,
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// Delay between outbound connection attempts.
    pub connect_retry: Duration,
    /// First delay before restarting after an error; doubles with each
    /// consecutive failure up to `max_idle_hold` (damping flapping peers,
    /// RFC 4271 §8.1.1 DampPeerOscillations).
    pub idle_hold: Duration,
    pub max_idle_hold: Duration,
    /// Never connect out; wait for the peer.
    pub passive: bool,
    /// Families to offer (IPv4 and/or IPv6 unicast).
    pub families: Vec<Family>,
    /// ADD-PATH to offer, per family.
    pub add_path: Vec<(Family, AddPathMode)>,
    /// Offer RFC 8654 Extended Messages.
    pub extended_message: bool,
    /// Offer RFC 8950 IPv4 NLRI over IPv6 next hops.
    pub extended_next_hop: bool,
    /// Check that eBGP routes start with the peer's AS.
    pub enforce_first_as: bool,
}

impl PeerConfig {
    /// A peer with the usual defaults: hold time 90 s, connect retry 120 s,
    /// IPv4 and IPv6 unicast.
    pub fn new(remote: SocketAddr, local_as: u32, remote_as: u32, router_id: Ipv4Addr) -> Self {
        Self {
            remote,
            local_address: None,
            local_as,
            remote_as,
            router_id,
            hold_time: 90,
            connect_retry: Duration::from_secs(120),
            idle_hold: Duration::from_secs(1),
            max_idle_hold: Duration::from_secs(120),
            passive: false,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            add_path: Vec::new(),
            extended_message: false,
            extended_next_hop: false,
            enforce_first_as: true,
        }
    }

    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.remote_as
    }
}
