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
    pub family: Family,
    pub origin: String,
    pub peer_ip: String,
    pub peer_port: Option<u16>,
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
}

/// A node's AS and reflector role, as the host decided them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeFacts {
    pub node: String,
    pub local_as: u32,
    pub cluster_id: Option<String>,
}

/// The sessions of one node in one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub node: String,
    pub router_id: Option<String>,
    pub listen_port: Option<u16>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Import,
    Export,
}

/// The session a batch of routes crosses.
#[derive(Debug, Clone, PartialEq, Eq)]
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
