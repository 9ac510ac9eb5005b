//! The BGP-4 message codec of Starling.
//!
//! Pure functions over bytes: no I/O, no async, no global state, and no
//! panics on any input. Decoding an UPDATE yields its routes together with
//! the RFC 7606 verdict (accept, attribute discard, treat-as-withdraw,
//! AFI/SAFI disable, or the exact NOTIFICATION for a session reset), so the
//! session layer only has to carry out what the codec decided.
//!
//! Supported: OPEN with RFC 9072 extended parameters; capabilities for
//! multiprotocol, route refresh, enhanced route refresh, 4-octet AS,
//! graceful restart, long-lived GR, ADD-PATH, extended next hop, extended
//! messages, BGP role and FQDN; UPDATE with every attribute of RFC 7606's
//! table; NOTIFICATION with RFC 9003 shutdown messages; KEEPALIVE;
//! ROUTE-REFRESH with BoRR/EoRR. See `docs/wire.md` for choices made where
//! implementations diverge.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod attr;
pub mod builder;
pub mod capability;
pub mod context;
pub mod family;
pub mod header;
pub mod message;
pub mod notification;
pub mod open;
pub mod prefix;
mod reader;
pub mod route_refresh;
pub mod update;
pub mod verdict;

#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod testdata;

pub use attr::{
    Aggregator, AsPath, Community, ExtendedCommunity, LargeCommunity, Origin, PathAttributes,
    RawAttribute,
};
pub use builder::{ReachEncoder, encode_end_of_rib, encode_withdrawals};
pub use capability::Capability;
pub use context::{Context, MpErrorHandling};
pub use family::{Afi, Family, PerFamily, Safi};
pub use header::{Header, MessageType, peek_header};
pub use message::{DecodeError, Message};
pub use notification::Notification;
pub use open::Open;
pub use prefix::{Ipv4Prefix, Ipv6Prefix, Nlri, Prefix};
pub use route_refresh::{RefreshSubtype, RouteRefresh};
pub use update::{MpReach, MpUnreach, NextHop, ParsedUpdate, Update, decode_update};
pub use verdict::{Action, Problem, SessionReset, Verdict};

/// The 2-octet stand-in for a 4-octet AS number (RFC 6793).
pub const AS_TRANS: u32 = 23456;

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("too large: {0}")]
    TooLarge(&'static str),
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}
