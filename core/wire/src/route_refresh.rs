//! ROUTE-REFRESH (RFC 2918) with the RFC 7313 demarcation subtypes.

use crate::family::{Afi, Family, Safi};

/// The Message Subtype octet (formerly Reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshSubtype {
    /// A plain request to resend the Adj-RIB-Out.
    Request,
    /// Beginning of Route Refresh (BoRR).
    Begin,
    /// End of Route Refresh (EoRR).
    End,
    /// Any other value: RFC 7313 §5 says to ignore the message.
    Reserved(u8),
}

impl RefreshSubtype {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Request,
            1 => Self::Begin,
            2 => Self::End,
            other => Self::Reserved(other),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Request => 0,
            Self::Begin => 1,
            Self::End => 2,
            Self::Reserved(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    pub family: Family,
    pub subtype: RefreshSubtype,
}

impl RouteRefresh {
    pub fn request(family: Family) -> Self {
        Self {
            family,
            subtype: RefreshSubtype::Request,
        }
    }

    /// The body is exactly four octets; the header check guarantees it.
    pub(crate) fn decode(body: &[u8]) -> Option<Self> {
        let [a, b, subtype, safi] = *body.first_chunk::<4>()?;
        (body.len() == 4).then(|| Self {
            family: Family::new(Afi(u16::from_be_bytes([a, b])), Safi(safi)),
            subtype: RefreshSubtype::from_u8(subtype),
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.0.to_be_bytes());
        out.push(self.subtype.to_u8());
        out.push(self.family.safi.0);
    }
}
