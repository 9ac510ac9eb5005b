//! OPEN messages (RFC 4271 §4.2) with RFC 9072 extended optional parameters.

use std::net::Ipv4Addr;

use crate::capability::Capability;
use crate::notification::{Notification, code};
use crate::reader::Reader;
use crate::{AS_TRANS, EncodeError};

/// Optional parameter type carrying capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: a non-extended length of 255 followed by this type means the
/// parameters use two-octet lengths.
const PARAM_EXTENDED: u8 = 255;

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The 2-octet My Autonomous System field (AS_TRANS for 4-octet ASNs).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// Capabilities, grouped as they travel in optional parameters. BIRD
    /// sends one parameter with every capability, GoBGP one per capability;
    /// keeping the grouping makes re-encoding byte-exact.
    pub capability_groups: Vec<Vec<Capability>>,
    /// Use the RFC 9072 encoding even when the parameters would fit in 255
    /// octets (it is chosen automatically when they do not). Decoding sets
    /// it only when a peer used the extended form without needing it, so
    /// that re-encoding is byte-exact either way.
    pub extended_parameters: bool,
}

impl Open {
    /// An OPEN for `asn` with every capability in one optional parameter.
    /// The 4-octet AS capability is added when missing.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, mut caps: Vec<Capability>) -> Self {
        if !caps.iter().any(|c| matches!(c, Capability::FourOctetAs(_))) {
            caps.push(Capability::FourOctetAs(asn));
        }
        Self {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS as u16),
            hold_time,
            bgp_id,
            capability_groups: vec![caps],
            extended_parameters: false,
        }
    }

    /// Every capability, in wire order.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.capability_groups.iter().flatten()
    }

    /// The sender's AS: the 4-octet AS capability if present, else My AS.
    pub fn asn(&self) -> u32 {
        self.capabilities()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Self, Notification> {
        let malformed = || Notification::new(code::OPEN_MESSAGE, code::open::UNSPECIFIC);
        let mut r = Reader::new(body);
        let version = r.u8().ok_or_else(malformed)?;
        if version != 4 {
            // The data is the largest version we support (RFC 4271 §6.2).
            return Err(Notification::with_data(
                code::OPEN_MESSAGE,
                code::open::UNSUPPORTED_VERSION,
                vec![0, 4],
            ));
        }
        let my_as = r.u16().ok_or_else(malformed)?;
        let hold_time = r.u16().ok_or_else(malformed)?;
        let bgp_id = Ipv4Addr::from(r.u32().ok_or_else(malformed)?);
        let short_len = r.u8().ok_or_else(malformed)?;
        if my_as == 0 {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                code::open::BAD_PEER_AS,
            ));
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                code::open::UNACCEPTABLE_HOLD_TIME,
            ));
        }
        if bgp_id.is_unspecified() {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                code::open::BAD_BGP_IDENTIFIER,
            ));
        }

        let extended = short_len == 255 && r.rest().first() == Some(&PARAM_EXTENDED);
        let params_len = if extended {
            r.u8();
            usize::from(r.u16().ok_or_else(malformed)?)
        } else {
            usize::from(short_len)
        };
        if params_len != r.remaining() {
            return Err(malformed());
        }
        let mut capability_groups = Vec::new();
        // Whether the parameters would have fitted the classic encoding.
        let mut fits_classic = true;
        let mut classic_total = 0usize;
        while !r.is_empty() {
            let kind = r.u8().ok_or_else(malformed)?;
            let len = if extended {
                r.u16().map(usize::from)
            } else {
                r.u8().map(usize::from)
            };
            let value = r.take(len.ok_or_else(malformed)?).ok_or_else(malformed)?;
            classic_total += 2 + value.len();
            fits_classic &= value.len() <= 255 && classic_total <= 255;
            if kind != PARAM_CAPABILITIES {
                return Err(Notification::new(
                    code::OPEN_MESSAGE,
                    code::open::UNSUPPORTED_OPTIONAL_PARAMETER,
                ));
            }
            let mut caps = Vec::new();
            let mut cr = Reader::new(value);
            while !cr.is_empty() {
                let cap_code = cr.u8().ok_or_else(malformed)?;
                let cap_len = cr.u8().ok_or_else(malformed)?;
                let cap_value = cr.take(usize::from(cap_len)).ok_or_else(malformed)?;
                caps.push(Capability::decode(cap_code, cap_value).map_err(|_| malformed())?);
            }
            capability_groups.push(caps);
        }
        Ok(Self {
            my_as,
            hold_time,
            bgp_id,
            capability_groups,
            extended_parameters: extended && fits_classic,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(4);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());

        let mut params = Vec::with_capacity(64);
        let mut needs_extended = self.extended_parameters;
        for group in &self.capability_groups {
            let mut value = Vec::with_capacity(32);
            for cap in group {
                let start = value.len();
                value.extend_from_slice(&[cap.code(), 0]);
                cap.encode_value(&mut value);
                let cap_len = u8::try_from(value.len() - start - 2)
                    .map_err(|_| EncodeError::TooLarge("capability value over 255 octets"))?;
                if let Some(len) = value.get_mut(start + 1) {
                    *len = cap_len;
                }
            }
            needs_extended |= value.len() > 255;
            params.push(value);
        }
        let short_total: usize = params.iter().map(|p| 2 + p.len()).sum();
        needs_extended |= short_total > 255;
        if needs_extended {
            let total: usize = params.iter().map(|p| 3 + p.len()).sum();
            let total = u16::try_from(total)
                .map_err(|_| EncodeError::TooLarge("optional parameters over 65535 octets"))?;
            out.extend_from_slice(&[255, PARAM_EXTENDED]);
            out.extend_from_slice(&total.to_be_bytes());
            for p in &params {
                out.push(PARAM_CAPABILITIES);
                out.extend_from_slice(&(p.len() as u16).to_be_bytes());
                out.extend_from_slice(p);
            }
        } else {
            out.push(short_total as u8);
            for p in &params {
                out.extend_from_slice(&[PARAM_CAPABILITIES, p.len() as u8]);
                out.extend_from_slice(p);
            }
        }
        Ok(())
    }
}
