//! The plain Rust mirror of the `starling:policy` WIT contract
//! (`wit/starling-policy`): the types the plugin host converts to and from
//! component values, and that the guest SDK hands to plugin code. One
//! definition for both sides, so the host never depends on a guest crate.
//!
//! The resource envelope itself ([`Object`], [`SecretRef`], [`Problem`])
//! lives in `starling-resources`, shared with the datastore; it is
//! re-exported here because the contract speaks of it.

use std::net::IpAddr;

pub use starling_resources::{Object, Problem, SecretRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NextHopMode {
    #[default]
    Auto,
    SetSelf,
    Keep,
}

/// One session a node should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub name: String,
    /// The family of the session's own addresses (IPv6 for a session on
    /// an interface): where `node status` lists it.
    pub family: Family,
    /// The families it carries (MP-BGP): one or both. A 0.1 plugin's
    /// session carries its own family.
    pub families: Vec<Family>,
    /// IPv4 routes with IPv6 next hops (RFC 8950).
    pub extended_next_hop: bool,
    pub origin: String,
    /// Empty for a session on `interface` whose peer is learnt there.
    pub peer_ip: String,
    pub peer_port: Option<u16>,
    /// Peer over this interface (link-local, "unnumbered").
    pub interface: Option<String>,
    pub peer_as: u32,
    pub local_as: u32,
    pub source_address: Option<String>,
    pub passive: bool,
    pub rr_client: bool,
    pub rr_cluster_id: Option<String>,
    pub password: Option<SecretRef>,
    pub graceful_restart_time: Option<u32>,
    pub keepalive_time: Option<u32>,
    pub ttl_security: Option<u8>,
    pub next_hop: NextHopMode,
    pub allow_local_as: Option<u32>,
    pub filters: Vec<String>,
    pub reachable_by: Option<String>,
    pub bfd: Option<Bfd>,
    /// Seconds before a failed session is tried again; `None`: the default.
    pub error_wait: Option<u32>,
    /// Seconds: the longest wait as failures repeat (since 0.3); `None`:
    /// the default.
    pub error_wait_longest: Option<u32>,
}

impl Default for Session {
    /// An IPv4 session with every option at its default, for building
    /// sessions field by field.
    fn default() -> Self {
        Session {
            name: String::new(),
            family: Family::Ipv4,
            families: vec![Family::Ipv4],
            extended_next_hop: false,
            origin: String::new(),
            peer_ip: String::new(),
            peer_port: None,
            interface: None,
            peer_as: 0,
            local_as: 0,
            source_address: None,
            passive: false,
            rr_client: false,
            rr_cluster_id: None,
            password: None,
            graceful_restart_time: None,
            keepalive_time: None,
            ttl_security: None,
            next_hop: NextHopMode::Auto,
            allow_local_as: None,
            filters: Vec::new(),
            reachable_by: None,
            bfd: None,
            error_wait: None,
            error_wait_longest: None,
        }
    }
}

/// BFD for a session (RFC 5880/5881), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bfd {
    pub min_rx: u32,
    pub min_tx: u32,
    pub multiplier: u8,
}

/// An address of a node, with the length of the subnet it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeAddress {
    pub address: IpAddr,
    pub prefix_length: u8,
}

/// Who a node is (the node-identity role).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Identity {
    pub node: String,
    pub router_id: Option<String>,
    pub addresses: Vec<NodeAddress>,
}

/// A node's AS, reflector role and identity, as the host decided them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NodeFacts {
    pub node: String,
    pub local_as: u32,
    pub cluster_id: Option<String>,
    pub router_id: Option<String>,
    pub addresses: Vec<NodeAddress>,
}

/// What the kernel gets for an originated prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KernelRoute {
    /// Nothing: the prefix is only announced.
    None,
    Blackhole,
    /// A route through this gateway.
    Via(IpAddr),
}

/// A prefix a node originates (the origination role).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Originated {
    pub prefix: Prefix,
    pub kernel: KernelRoute,
    pub communities: Vec<u32>,
    pub large_communities: Vec<(u32, u32, u32)>,
    /// Why, for logs and `starling plan` (e.g. `block`, `service`).
    pub reason: String,
}

/// The sessions of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub node: String,
    pub router_id: Option<String>,
    pub listen_port: Option<u16>,
    /// The local addresses the node accepts connections on (since 0.3);
    /// empty: every address.
    pub listen_addresses: Vec<IpAddr>,
    pub sessions: Vec<Session>,
    pub warnings: Vec<String>,
}

/// The roles a plugin can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    AsAssignment,
    RouteReflection,
    PeerSelection,
    RoutePolicy,
    /// Since 0.2.
    NodeIdentity,
    /// Since 0.2.
    Origination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// An IP prefix as 128 bits plus a length; IPv4 sits in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub family: Family,
    pub bits: u128,
    pub length: u8,
}

impl Prefix {
    pub fn new(addr: IpAddr, length: u8) -> Self {
        match addr {
            IpAddr::V4(a) => Prefix {
                family: Family::Ipv4,
                bits: u128::from(u32::from(a)),
                length,
            },
            IpAddr::V6(a) => Prefix {
                family: Family::Ipv6,
                bits: u128::from(a),
                length,
            },
        }
    }

    /// The address width of the family: 32 or 128.
    pub fn width(&self) -> u8 {
        match self.family {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }

    /// Whether `self` lies inside `outer` (or equals it).
    pub fn within(&self, outer: &Prefix) -> bool {
        if self.family != outer.family || self.length < outer.length {
            return false;
        }
        let shift = u32::from(self.width() - outer.length);
        if shift >= u32::from(self.width()) {
            return true;
        }
        (self.bits >> shift) == (outer.bits >> shift)
    }

    pub fn addr(&self) -> IpAddr {
        match self.family {
            Family::Ipv4 => IpAddr::V4((self.bits as u32).into()),
            Family::Ipv6 => IpAddr::V6(self.bits.into()),
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr(), self.length)
    }
}

/// Route attributes policy may read and change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Attributes {
    pub as_path: Vec<u32>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<(u32, u32, u32)>,
    pub local_pref: Option<u32>,
    pub from_peer: bool,
    pub interface: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Import,
    Export,
}

/// The session a batch of routes crosses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteContext {
    pub node: String,
    pub session: String,
    pub family: Family,
    pub direction: Direction,
    pub peer_as: u32,
    pub local_as: u32,
    pub filters: Vec<String>,
}

/// A route in a batch: its prefix and an index into the attribute sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: Prefix,
    pub attributes: u32,
}

/// The verdicts for one batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdicts {
    /// Per route: [`Verdicts::REJECT`], [`Verdicts::ACCEPT`], or `n ≥ 2`
    /// for "accept with `changed[n - 2]`".
    pub outcome: Vec<u32>,
    pub changed: Vec<Attributes>,
}

impl Verdicts {
    pub const REJECT: u32 = 0;
    pub const ACCEPT: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_containment() {
        let p = |s: &str| {
            let (a, l) = s.split_once('/').expect("slash");
            Prefix::new(a.parse().expect("ip"), l.parse().expect("len"))
        };
        assert!(p("10.1.2.0/24").within(&p("10.0.0.0/8")));
        assert!(p("10.0.0.0/8").within(&p("10.0.0.0/8")));
        assert!(!p("10.0.0.0/8").within(&p("10.1.0.0/16")));
        assert!(!p("11.0.0.0/24").within(&p("10.0.0.0/8")));
        assert!(p("11.0.0.0/24").within(&p("0.0.0.0/0")));
        assert!(p("2001:db8::/48").within(&p("2001:db8::/32")));
        assert!(!p("2001:db8::/48").within(&p("10.0.0.0/8")));
        assert!(p("::/0").within(&p("::/0")));
        assert_eq!(p("192.0.2.0/24").to_string(), "192.0.2.0/24");
    }
}
