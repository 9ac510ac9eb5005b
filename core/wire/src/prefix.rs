//! IP prefixes and the NLRI encoding (RFC 4271 §4.3, RFC 4760 §5,
//! RFC 7911 ADD-PATH path identifiers).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::family::{Afi, Family};

/// An IPv4 prefix. Host bits are always zero, so two prefixes that cover the
/// same addresses compare equal however the peer padded its last octet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: u32,
    len: u8,
}

/// An IPv6 prefix, host bits zero. The address is kept as big-endian
/// bytes rather than a `u128` so that `Prefix` stays 20 bytes with 4-byte
/// alignment: it is the key of every RIB table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    addr: [u8; 16],
    len: u8,
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl Ipv4Prefix {
    /// `None` when `len` is over 32. Host bits are cleared.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32).then(|| Self {
            addr: u32::from(addr) & mask_v4(len),
            len,
        })
    }

    pub fn addr(self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    pub fn prefix_len(self) -> u8 {
        self.len
    }

    pub fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask_v4(self.len) == self.addr
    }
}

impl Ipv6Prefix {
    /// `None` when `len` is over 128. Host bits are cleared.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        (len <= 128).then(|| Self {
            addr: (u128::from(addr) & mask_v6(len)).to_be_bytes(),
            len,
        })
    }

    pub fn addr(self) -> Ipv6Addr {
        Ipv6Addr::from(self.addr)
    }

    pub fn prefix_len(self) -> u8 {
        self.len
    }

    pub fn contains(self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & mask_v6(self.len) == u128::from_be_bytes(self.addr)
    }
}

/// An IPv4 or IPv6 prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    V4(Ipv4Prefix),
    V6(Ipv6Prefix),
}

impl Prefix {
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        match addr {
            IpAddr::V4(a) => Ipv4Prefix::new(a, len).map(Prefix::V4),
            IpAddr::V6(a) => Ipv6Prefix::new(a, len).map(Prefix::V6),
        }
    }

    pub fn addr(self) -> IpAddr {
        match self {
            Prefix::V4(p) => IpAddr::V4(p.addr()),
            Prefix::V6(p) => IpAddr::V6(p.addr()),
        }
    }

    pub fn prefix_len(self) -> u8 {
        match self {
            Prefix::V4(p) => p.len,
            Prefix::V6(p) => p.len,
        }
    }

    pub fn afi(self) -> Afi {
        match self {
            Prefix::V4(_) => Afi::IPV4,
            Prefix::V6(_) => Afi::IPV6,
        }
    }

    /// Octets this prefix takes in an NLRI field, without a path id.
    pub fn wire_len(self) -> usize {
        1 + usize::from(self.prefix_len()).div_ceil(8)
    }

    /// Append the length octet and the significant address octets.
    pub fn encode(self, out: &mut Vec<u8>) {
        let octets = usize::from(self.prefix_len()).div_ceil(8);
        out.push(self.prefix_len());
        match self {
            Prefix::V4(p) => {
                out.extend_from_slice(p.addr.to_be_bytes().get(..octets).unwrap_or_default())
            }
            Prefix::V6(p) => out.extend_from_slice(p.addr.get(..octets).unwrap_or_default()),
        }
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

macro_rules! debug_as_display {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    )*};
}
debug_as_display!(Ipv4Prefix, Ipv6Prefix, Prefix);

/// Why a prefix string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid prefix {0:?}: expected ADDRESS/LENGTH such as 192.0.2.0/24")]
pub struct ParsePrefixError(String);

impl FromStr for Prefix {
    type Err = ParsePrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParsePrefixError(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let len: u8 = len.parse().map_err(|_| err())?;
        Prefix::new(addr, len).ok_or_else(err)
    }
}

/// One NLRI entry: a prefix and, on ADD-PATH sessions, its path identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    pub prefix: Prefix,
    pub path_id: Option<u32>,
}

impl Nlri {
    pub fn new(prefix: Prefix) -> Self {
        Self {
            prefix,
            path_id: None,
        }
    }

    pub fn with_path_id(prefix: Prefix, path_id: u32) -> Self {
        Self {
            prefix,
            path_id: Some(path_id),
        }
    }

    pub fn wire_len(&self) -> usize {
        self.prefix.wire_len() + if self.path_id.is_some() { 4 } else { 0 }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some(id) = self.path_id {
            out.extend_from_slice(&id.to_be_bytes());
        }
        self.prefix.encode(out);
    }
}

/// Why an NLRI field could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NlriError {
    #[error("prefix length {len} is longer than the address family allows")]
    LengthTooLong { len: u8 },
    #[error("prefix runs past the end of the field ({missing} octets missing)")]
    Truncated { missing: usize },
    #[error("address family {0} has no NLRI decoder")]
    UnsupportedFamily(Family),
}

/// Decode a whole NLRI field of IPv4 or IPv6 unicast prefixes, appending to
/// `out`. The hot path of route ingestion: no allocation per prefix.
pub fn decode_nlri(
    mut field: &[u8],
    family: Family,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), NlriError> {
    let v6 = match family {
        Family::IPV4_UNICAST => false,
        Family::IPV6_UNICAST => true,
        other => return Err(NlriError::UnsupportedFamily(other)),
    };
    // Shortest entry is one octet (a /0), so this bounds the growth.
    out.reserve(field.len() / if v6 { 4 } else { 3 });
    while !field.is_empty() {
        let path_id = if add_path {
            let Some((id, rest)) = field.split_first_chunk::<4>() else {
                return Err(NlriError::Truncated {
                    missing: 4 - field.len(),
                });
            };
            field = rest;
            Some(u32::from_be_bytes(*id))
        } else {
            None
        };
        let Some((&len, rest)) = field.split_first() else {
            return Err(NlriError::Truncated { missing: 1 });
        };
        if len > if v6 { 128 } else { 32 } {
            return Err(NlriError::LengthTooLong { len });
        }
        let octets = usize::from(len).div_ceil(8);
        let Some((addr, rest)) = rest.split_at_checked(octets) else {
            return Err(NlriError::Truncated {
                missing: octets - rest.len(),
            });
        };
        field = rest;
        let prefix = if v6 {
            let mut bytes = [0u8; 16];
            bytes
                .get_mut(..octets)
                .unwrap_or_default()
                .copy_from_slice(addr);
            Prefix::V6(Ipv6Prefix {
                addr: (u128::from_be_bytes(bytes) & mask_v6(len)).to_be_bytes(),
                len,
            })
        } else {
            let mut bytes = [0u8; 4];
            bytes
                .get_mut(..octets)
                .unwrap_or_default()
                .copy_from_slice(addr);
            Prefix::V4(Ipv4Prefix {
                addr: u32::from_be_bytes(bytes) & mask_v4(len),
                len,
            })
        };
        out.push(Nlri { prefix, path_id });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_compact() {
        assert_eq!(std::mem::size_of::<Prefix>(), 20);
    }

    fn p(s: &str) -> Prefix {
        s.parse().expect("test prefix")
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(p("192.0.2.77/24"), p("192.0.2.0/24"));
        assert_eq!(p("2001:db8::1/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn default_and_host_routes_round_trip() {
        for s in [
            "0.0.0.0/0",
            "203.0.113.9/32",
            "::/0",
            "2001:db8::1/128",
            "10.0.0.0/9",
        ] {
            let prefix = p(s);
            let mut buf = Vec::new();
            prefix.encode(&mut buf);
            assert_eq!(buf.len(), prefix.wire_len());
            let mut out = Vec::new();
            let family = if prefix.afi() == Afi::IPV4 {
                Family::IPV4_UNICAST
            } else {
                Family::IPV6_UNICAST
            };
            decode_nlri(&buf, family, false, &mut out).expect("decodes");
            assert_eq!(out, vec![Nlri::new(prefix)]);
        }
    }

    #[test]
    fn rfc4271_vectors() {
        // 10.0.0.0/8 then 192.0.2.0/24, as a peer puts them on the wire.
        let field = [8, 10, 24, 192, 0, 2];
        let mut out = Vec::new();
        decode_nlri(&field, Family::IPV4_UNICAST, false, &mut out).expect("decodes");
        assert_eq!(
            out,
            vec![Nlri::new(p("10.0.0.0/8")), Nlri::new(p("192.0.2.0/24"))]
        );
    }

    #[test]
    fn overlong_and_truncated_prefixes_are_errors() {
        let mut out = Vec::new();
        assert_eq!(
            decode_nlri(&[33, 1, 2, 3, 4, 5], Family::IPV4_UNICAST, false, &mut out),
            Err(NlriError::LengthTooLong { len: 33 })
        );
        assert_eq!(
            decode_nlri(&[24, 192, 0], Family::IPV4_UNICAST, false, &mut out),
            Err(NlriError::Truncated { missing: 1 })
        );
        assert_eq!(
            decode_nlri(&[128], Family::IPV6_UNICAST, false, &mut out),
            Err(NlriError::Truncated { missing: 16 })
        );
        assert_eq!(
            decode_nlri(&[0, 0, 1], Family::IPV4_UNICAST, true, &mut out),
            Err(NlriError::Truncated { missing: 1 })
        );
    }

    #[test]
    fn add_path_ids_precede_prefixes() {
        let field = [0, 0, 0, 7, 24, 198, 51, 100];
        let mut out = Vec::new();
        decode_nlri(&field, Family::IPV4_UNICAST, true, &mut out).expect("decodes");
        assert_eq!(out, vec![Nlri::with_path_id(p("198.51.100.0/24"), 7)]);
        let mut buf = Vec::new();
        out[0].encode(&mut buf);
        assert_eq!(buf, field);
    }
}
