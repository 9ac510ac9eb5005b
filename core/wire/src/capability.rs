//! Capabilities advertised in OPEN (RFC 5492) and their value encodings.

use crate::family::{Afi, Family, Safi};
use crate::reader::Reader;

/// Capability codes (IANA "Capability Codes").
pub mod code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const ROLE: u8 = 9;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const LONG_LIVED_GRACEFUL_RESTART: u8 = 71;
    pub const FQDN: u8 = 73;
}

/// ADD-PATH direction per family (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    Receive = 1,
    Send = 2,
    Both = 3,
}

impl AddPathMode {
    pub fn can_receive(self) -> bool {
        matches!(self, Self::Receive | Self::Both)
    }

    pub fn can_send(self) -> bool {
        matches!(self, Self::Send | Self::Both)
    }
}

/// The BGP role of the speaker (RFC 9234).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Provider,
    RouteServer,
    RouteServerClient,
    Customer,
    Peer,
    /// A value not yet registered; kept so it can be reported.
    Other(u8),
}

impl Role {
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Provider,
            1 => Self::RouteServer,
            2 => Self::RouteServerClient,
            3 => Self::Customer,
            4 => Self::Peer,
            other => Self::Other(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            Self::Provider => 0,
            Self::RouteServer => 1,
            Self::RouteServerClient => 2,
            Self::Customer => 3,
            Self::Peer => 4,
            Self::Other(v) => v,
        }
    }

    /// The role a correctly configured peer must have opposite us.
    pub fn expected_peer_role(self) -> Option<Role> {
        Some(match self {
            Self::Provider => Self::Customer,
            Self::Customer => Self::Provider,
            Self::RouteServer => Self::RouteServerClient,
            Self::RouteServerClient => Self::RouteServer,
            Self::Peer => Self::Peer,
            Self::Other(_) => return None,
        })
    }
}

/// One family in the graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    pub family: Family,
    /// The F bit: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
    /// The other seven flag bits, kept for byte-exact round trips.
    pub reserved_flags: u8,
}

/// The graceful restart capability (RFC 4724, RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// The R bit: the sender has restarted.
    pub restarting: bool,
    /// The N bit: graceful restart also covers NOTIFICATIONs (RFC 8538).
    pub notification: bool,
    /// The two reserved flag bits, kept for byte-exact round trips.
    pub reserved_flags: u8,
    /// Restart time in seconds; 12 bits, at most 4095.
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

/// One family in the long-lived graceful restart capability (RFC 9494).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LongLivedFamily {
    pub family: Family,
    pub forwarding_preserved: bool,
    pub reserved_flags: u8,
    /// Long-lived stale time in seconds; 24 bits.
    pub stale_time: u32,
}

/// One tuple of the extended next hop capability (RFC 8950).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    pub family: Family,
    /// The next-hop address family, e.g. IPv6 for IPv4 NLRI over IPv6.
    pub next_hop_afi: Afi,
}

/// A capability as it appears in OPEN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    Multiprotocol(Family),
    RouteRefresh,
    ExtendedNextHop(Vec<ExtendedNextHop>),
    ExtendedMessage,
    Role(Role),
    GracefulRestart(GracefulRestart),
    FourOctetAs(u32),
    AddPath(Vec<(Family, AddPathMode)>),
    EnhancedRouteRefresh,
    LongLivedGracefulRestart(Vec<LongLivedFamily>),
    Fqdn {
        hostname: Vec<u8>,
        domain: Vec<u8>,
    },
    /// Anything else, kept as raw bytes so it can be shown and ignored.
    Unknown {
        code: u8,
        value: Vec<u8>,
    },
}

/// Why a capability value was rejected; becomes NOTIFICATION 2/0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capability {code}: {reason}")]
pub struct CapabilityError {
    pub code: u8,
    pub reason: &'static str,
}

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Self::Multiprotocol(_) => code::MULTIPROTOCOL,
            Self::RouteRefresh => code::ROUTE_REFRESH,
            Self::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Self::ExtendedMessage => code::EXTENDED_MESSAGE,
            Self::Role(_) => code::ROLE,
            Self::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Self::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Self::AddPath(_) => code::ADD_PATH,
            Self::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Self::LongLivedGracefulRestart(_) => code::LONG_LIVED_GRACEFUL_RESTART,
            Self::Fqdn { .. } => code::FQDN,
            Self::Unknown { code, .. } => *code,
        }
    }

    /// Decode one capability value.
    pub fn decode(code: u8, value: &[u8]) -> Result<Self, CapabilityError> {
        let bad = |reason| CapabilityError { code, reason };
        let mut r = Reader::new(value);
        let cap = match code {
            code::MULTIPROTOCOL => {
                if value.len() != 4 {
                    return Err(bad("multiprotocol value must be 4 octets"));
                }
                let afi = r.u16().ok_or(bad("truncated"))?;
                let _reserved = r.u8();
                let safi = r.u8().ok_or(bad("truncated"))?;
                Self::Multiprotocol(Family::new(Afi(afi), Safi(safi)))
            }
            code::ROUTE_REFRESH | code::EXTENDED_MESSAGE | code::ENHANCED_ROUTE_REFRESH => {
                if !value.is_empty() {
                    return Err(bad("capability takes no value"));
                }
                match code {
                    code::ROUTE_REFRESH => Self::RouteRefresh,
                    code::EXTENDED_MESSAGE => Self::ExtendedMessage,
                    _ => Self::EnhancedRouteRefresh,
                }
            }
            code::EXTENDED_NEXT_HOP => {
                if !value.len().is_multiple_of(6) {
                    return Err(bad(
                        "extended next hop value must be a multiple of 6 octets",
                    ));
                }
                let mut tuples = Vec::with_capacity(value.len() / 6);
                while let (Some(afi), Some(safi), Some(nh)) = (r.u16(), r.u16(), r.u16()) {
                    let safi = u8::try_from(safi).map_err(|_| bad("SAFI above 255"))?;
                    tuples.push(ExtendedNextHop {
                        family: Family::new(Afi(afi), Safi(safi)),
                        next_hop_afi: Afi(nh),
                    });
                }
                Self::ExtendedNextHop(tuples)
            }
            code::ROLE => match value {
                [role] => Self::Role(Role::from_u8(*role)),
                _ => return Err(bad("role value must be 1 octet")),
            },
            code::GRACEFUL_RESTART => {
                if value.len() < 2 || !(value.len() - 2).is_multiple_of(4) {
                    return Err(bad("graceful restart value must be 2 + 4n octets"));
                }
                let head = r.u16().ok_or(bad("truncated"))?;
                let mut families = Vec::with_capacity((value.len() - 2) / 4);
                while let (Some(afi), Some(safi), Some(flags)) = (r.u16(), r.u8(), r.u8()) {
                    families.push(GracefulRestartFamily {
                        family: Family::new(Afi(afi), Safi(safi)),
                        forwarding_preserved: flags & 0x80 != 0,
                        reserved_flags: flags & 0x7f,
                    });
                }
                Self::GracefulRestart(GracefulRestart {
                    restarting: head & 0x8000 != 0,
                    notification: head & 0x4000 != 0,
                    reserved_flags: ((head >> 12) & 0x3) as u8,
                    restart_time: head & 0x0fff,
                    families,
                })
            }
            code::FOUR_OCTET_AS => {
                if value.len() != 4 {
                    return Err(bad("4-octet AS value must be 4 octets"));
                }
                let asn = r.u32().ok_or(bad("truncated"))?;
                if asn == 0 {
                    return Err(bad("AS number 0 is reserved (RFC 7607)"));
                }
                Self::FourOctetAs(asn)
            }
            code::ADD_PATH => {
                if value.is_empty() || !value.len().is_multiple_of(4) {
                    return Err(bad(
                        "ADD-PATH value must be a non-empty multiple of 4 octets",
                    ));
                }
                let mut entries = Vec::with_capacity(value.len() / 4);
                while let (Some(afi), Some(safi), Some(mode)) = (r.u16(), r.u8(), r.u8()) {
                    let mode = match mode {
                        1 => AddPathMode::Receive,
                        2 => AddPathMode::Send,
                        3 => AddPathMode::Both,
                        _ => return Err(bad("ADD-PATH send/receive must be 1, 2 or 3")),
                    };
                    entries.push((Family::new(Afi(afi), Safi(safi)), mode));
                }
                Self::AddPath(entries)
            }
            code::LONG_LIVED_GRACEFUL_RESTART => {
                if !value.len().is_multiple_of(7) {
                    return Err(bad("long-lived GR value must be a multiple of 7 octets"));
                }
                let mut families = Vec::with_capacity(value.len() / 7);
                while let (Some(afi), Some(safi), Some(flags), Some(time)) =
                    (r.u16(), r.u8(), r.u8(), r.array::<3>())
                {
                    families.push(LongLivedFamily {
                        family: Family::new(Afi(afi), Safi(safi)),
                        forwarding_preserved: flags & 0x80 != 0,
                        reserved_flags: flags & 0x7f,
                        stale_time: u32::from_be_bytes([0, time[0], time[1], time[2]]),
                    });
                }
                Self::LongLivedGracefulRestart(families)
            }
            code::FQDN => {
                let host_len = r.u8().ok_or(bad("FQDN hostname length missing"))?;
                let hostname = r
                    .take(usize::from(host_len))
                    .ok_or(bad("FQDN hostname overruns"))?;
                let domain_len = r.u8().ok_or(bad("FQDN domain length missing"))?;
                let domain = r
                    .take(usize::from(domain_len))
                    .ok_or(bad("FQDN domain overruns"))?;
                if !r.is_empty() {
                    return Err(bad("FQDN has trailing octets"));
                }
                Self::Fqdn {
                    hostname: hostname.to_vec(),
                    domain: domain.to_vec(),
                }
            }
            _ => Self::Unknown {
                code,
                value: value.to_vec(),
            },
        };
        Ok(cap)
    }

    /// Append the capability value (without code and length).
    pub fn encode_value(&self, out: &mut Vec<u8>) {
        match self {
            Self::Multiprotocol(f) => {
                out.extend_from_slice(&f.afi.0.to_be_bytes());
                out.push(0);
                out.push(f.safi.0);
            }
            Self::RouteRefresh | Self::ExtendedMessage | Self::EnhancedRouteRefresh => {}
            Self::ExtendedNextHop(tuples) => {
                for t in tuples {
                    out.extend_from_slice(&t.family.afi.0.to_be_bytes());
                    out.extend_from_slice(&u16::from(t.family.safi.0).to_be_bytes());
                    out.extend_from_slice(&t.next_hop_afi.0.to_be_bytes());
                }
            }
            Self::Role(role) => out.push(role.to_u8()),
            Self::GracefulRestart(gr) => {
                let head = (u16::from(gr.restarting) << 15)
                    | (u16::from(gr.notification) << 14)
                    | (u16::from(gr.reserved_flags & 0x3) << 12)
                    | (gr.restart_time & 0x0fff);
                out.extend_from_slice(&head.to_be_bytes());
                for f in &gr.families {
                    out.extend_from_slice(&f.family.afi.0.to_be_bytes());
                    out.push(f.family.safi.0);
                    out.push((u8::from(f.forwarding_preserved) << 7) | (f.reserved_flags & 0x7f));
                }
            }
            Self::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
            Self::AddPath(entries) => {
                for (family, mode) in entries {
                    out.extend_from_slice(&family.afi.0.to_be_bytes());
                    out.push(family.safi.0);
                    out.push(*mode as u8);
                }
            }
            Self::LongLivedGracefulRestart(families) => {
                for f in families {
                    out.extend_from_slice(&f.family.afi.0.to_be_bytes());
                    out.push(f.family.safi.0);
                    out.push((u8::from(f.forwarding_preserved) << 7) | (f.reserved_flags & 0x7f));
                    out.extend_from_slice(&(f.stale_time & 0x00ff_ffff).to_be_bytes()[1..]);
                }
            }
            Self::Fqdn { hostname, domain } => {
                // Lengths are one octet; longer names are cut rather than
                // producing a capability the peer cannot parse.
                for part in [hostname, domain] {
                    let len = part.len().min(255);
                    out.push(len as u8);
                    out.extend_from_slice(part.get(..len).unwrap_or_default());
                }
            }
            Self::Unknown { value, .. } => out.extend_from_slice(value),
        }
    }
}
