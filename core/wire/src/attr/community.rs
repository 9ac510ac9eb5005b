//! Communities: standard (RFC 1997), extended (RFC 4360) and large (RFC 8092).

use std::fmt;
use std::str::FromStr;

/// A standard community, `ASN:VALUE` in 16:16 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    pub const NO_PEER: Community = Community(0xFFFF_FF04);
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);

    pub fn new(asn: u16, value: u16) -> Self {
        Self((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

impl fmt::Debug for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a community string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid community {0:?}: expected A:B (standard, 16-bit parts) or A:B:C (large, 32-bit parts)"
)]
pub struct ParseCommunityError(String);

impl FromStr for Community {
    type Err = ParseCommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCommunityError(s.to_owned());
        let (a, b) = s.split_once(':').ok_or_else(err)?;
        Ok(Self::new(
            a.parse().map_err(|_| err())?,
            b.parse().map_err(|_| err())?,
        ))
    }
}

/// An extended community: eight opaque octets. Unknown types and subtypes
/// are not errors (RFC 7606 §7.14) and travel unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl ExtendedCommunity {
    /// The Transitive bit is clear: the community must not leave the AS.
    pub fn is_non_transitive(self) -> bool {
        self.0[0] & 0x40 != 0
    }

    /// A two-octet-AS route target (type 0x00, subtype 0x02).
    pub fn route_target(asn: u16, value: u32) -> Self {
        let [a, b] = asn.to_be_bytes();
        let [c, d, e, f] = value.to_be_bytes();
        Self([0x00, 0x02, a, b, c, d, e, f])
    }
}

impl fmt::Debug for ExtendedCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [t, s, a, b, c, d, e, g] = self.0;
        match (t, s) {
            (0x00, 0x02) => {
                write!(
                    f,
                    "rt:{}:{}",
                    u16::from_be_bytes([a, b]),
                    u32::from_be_bytes([c, d, e, g])
                )
            }
            (0x00, 0x03) => {
                write!(
                    f,
                    "ro:{}:{}",
                    u16::from_be_bytes([a, b]),
                    u32::from_be_bytes([c, d, e, g])
                )
            }
            _ => write!(
                f,
                "ext:{t:02x}{s:02x}:{a:02x}{b:02x}{c:02x}{d:02x}{e:02x}{g:02x}"
            ),
        }
    }
}

/// A large community, `GLOBAL:LOCAL1:LOCAL2` in 32:32:32 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

impl fmt::Debug for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for LargeCommunity {
    type Err = ParseCommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCommunityError(s.to_owned());
        let mut parts = s.split(':').map(|p| p.parse::<u32>().map_err(|_| err()));
        let community = Self {
            global: parts.next().ok_or_else(err)??,
            local1: parts.next().ok_or_else(err)??,
            local2: parts.next().ok_or_else(err)??,
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(community)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let c: Community = "64512:100".parse().expect("parses");
        assert_eq!(c, Community::new(64512, 100));
        assert_eq!(c.to_string(), "64512:100");
        assert!("65536:1".parse::<Community>().is_err());
        let l: LargeCommunity = "4200000000:1:2".parse().expect("parses");
        assert_eq!(l.to_string(), "4200000000:1:2");
        assert!("1:2".parse::<LargeCommunity>().is_err());
        assert!("1:2:3:4".parse::<LargeCommunity>().is_err());
    }

    #[test]
    fn well_known_values() {
        assert_eq!(Community::NO_EXPORT.to_string(), "65535:65281");
        assert_eq!(
            format!("{:?}", ExtendedCommunity::route_target(64512, 7)),
            "rt:64512:7"
        );
    }
}
