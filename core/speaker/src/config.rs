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
    /// TCP-MD5 key (RFC 2385). Never printed.
    pub password: Option<Secret>,
    /// GTSM (RFC 5082): the peer is at most this many hops away; we send
    /// with TTL 255 and drop packets with a TTL below 256 - hops.
    pub ttl_security: Option<u8>,
    /// Close the session when the peer has not read anything we sent for
    /// this long (RFC 9687 send hold timer; `None` disables it).
    pub send_hold_time: Option<Duration>,
    /// Graceful restart (RFC 4724); `None` disables the capability.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// TTL for outgoing packets without GTSM (eBGP multihop); default 1
    /// for directly connected eBGP is not enforced, the kernel default is.
    pub ttl: Option<u8>,
}

/// Graceful restart settings (RFC 4724, RFC 8538).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// How long peers should keep our routes while we restart, in seconds
    /// (at most 4095).
    pub restart_time: u16,
    /// We are restarting (the R bit): set on the first session after a
    /// daemon restart that kept its forwarding state.
    pub restarting: bool,
    /// Our forwarding state survived the restart (the per-family F bit).
    pub forwarding_preserved: bool,
    /// Offer the N bit: graceful restart also after NOTIFICATIONs other
    /// than Hard Reset (RFC 8538).
    pub notification: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        Self {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: false,
            notification: true,
        }
    }
}

/// A password that never shows up in logs, debug output or metrics.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
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
            password: None,
            ttl_security: None,
            ttl: None,
            graceful_restart: Some(GracefulRestartConfig::default()),
            // RFC 9687: max(8 minutes, 2 × hold time).
            send_hold_time: Some(Duration::from_secs(480)),
        }
    }

    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.remote_as
    }
}
