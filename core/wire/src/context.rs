//! What the codec must know about a session to read and write its bytes.

use std::net::Ipv4Addr;

use crate::family::{Family, PerFamily};
use crate::header::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};

/// How to treat an MP_REACH_NLRI or MP_UNREACH_NLRI that cannot be parsed
/// (RFC 7606 §5.3, §7.11): both approaches are allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MpErrorHandling {
    /// Reset the session, as BIRD and FRR do. The default.
    #[default]
    ResetSession,
    /// Drop the family for the rest of the session (RFC 4760 §7) and keep
    /// the others running.
    DisableFamily,
}

/// Session parameters that change the encoding: negotiated capabilities and
/// the kind of peer. Build one per session after OPEN negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Both sides sent the 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// Both sides sent the Extended Message capability (RFC 8654).
    pub extended_message: bool,
    /// Families negotiated on the session.
    pub families: PerFamily,
    /// We receive ADD-PATH path identifiers for these families.
    pub add_path_receive: PerFamily,
    /// We send ADD-PATH path identifiers for these families.
    pub add_path_send: PerFamily,
    /// IPv4 NLRI may carry an IPv6 next hop (RFC 8950).
    pub extended_next_hop: bool,
    /// Enhanced route refresh was negotiated (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// The peer is in another AS.
    pub ebgp: bool,
    /// The peer's AS, for the first-AS check.
    pub peer_as: u32,
    /// Treat-as-withdraw routes whose first AS is not the peer's (eBGP only;
    /// turn off for route servers, RFC 7947).
    pub enforce_first_as: bool,
    /// The peer is a member of our confederation, so AS_CONFED segments are
    /// legitimate.
    pub confederation: bool,
    /// Our own address on the session, to reject it as a NEXT_HOP.
    pub local_ipv4: Option<Ipv4Addr>,
    pub mp_errors: MpErrorHandling,
}

impl Default for Context {
    /// A 4-octet, IPv4+IPv6 unicast iBGP session with no ADD-PATH.
    fn default() -> Self {
        Self {
            four_octet_as: true,
            extended_message: false,
            families: PerFamily::BOTH,
            add_path_receive: PerFamily::NONE,
            add_path_send: PerFamily::NONE,
            extended_next_hop: false,
            enhanced_route_refresh: false,
            ebgp: false,
            peer_as: 0,
            enforce_first_as: true,
            confederation: false,
            local_ipv4: None,
            mp_errors: MpErrorHandling::ResetSession,
        }
    }
}

impl Context {
    /// An eBGP session with `peer_as`.
    pub fn external(peer_as: u32) -> Self {
        Self {
            ebgp: true,
            peer_as,
            ..Self::default()
        }
    }

    /// Largest message this session may carry.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }

    pub fn negotiated(&self, family: Family) -> bool {
        self.families.get(family)
    }
}
