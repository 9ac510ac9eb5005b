//! Address families (RFC 4760): AFI, SAFI and the pair of them.

use std::fmt;

/// Address Family Identifier. Kept as the raw number so that families we do
/// not route (VPN, EVPN, ...) still survive capability negotiation intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    pub const IPV4: Afi = Afi(1);
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    pub const UNICAST: Safi = Safi(1);
    pub const MULTICAST: Safi = Safi(2);
}

/// An AFI/SAFI pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    pub afi: Afi,
    pub safi: Safi,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family::new(Afi::IPV4, Safi::UNICAST);
    pub const IPV6_UNICAST: Family = Family::new(Afi::IPV6, Safi::UNICAST);

    pub const fn new(afi: Afi, safi: Safi) -> Self {
        Self { afi, safi }
    }

    /// The families whose NLRI this codec can parse.
    pub fn is_routable(self) -> bool {
        self == Self::IPV4_UNICAST || self == Self::IPV6_UNICAST
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Self::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            Family { afi, safi } => write!(f, "afi{}-safi{}", afi.0, safi.0),
        }
    }
}

/// A per-family boolean for the two families Starling routes. Used for
/// negotiated ADD-PATH directions and the like, where a map would be overkill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PerFamily {
    pub ipv4_unicast: bool,
    pub ipv6_unicast: bool,
}

impl PerFamily {
    pub const NONE: PerFamily = PerFamily {
        ipv4_unicast: false,
        ipv6_unicast: false,
    };
    pub const BOTH: PerFamily = PerFamily {
        ipv4_unicast: true,
        ipv6_unicast: true,
    };

    pub fn get(self, family: Family) -> bool {
        match family {
            Family::IPV4_UNICAST => self.ipv4_unicast,
            Family::IPV6_UNICAST => self.ipv6_unicast,
            _ => false,
        }
    }

    pub fn set(&mut self, family: Family, value: bool) {
        match family {
            Family::IPV4_UNICAST => self.ipv4_unicast = value,
            Family::IPV6_UNICAST => self.ipv6_unicast = value,
            _ => {}
        }
    }
}
