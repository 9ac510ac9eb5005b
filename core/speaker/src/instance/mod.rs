//! One BGP instance: its peers, the RIB and the update groups' Adj-RIB-Outs.
//!
//! Split the way holo splits a protocol instance, and sans-I/O the way
//! quinn-proto and [`crate::session`] are:
//!
//! - [`Core`] (`core.rs`) is the instance's state and its whole logic. It
//!   is driven by inputs — a [`Request`], a peer's [`PeerEvent`], the end
//!   of a batch of events, the current time — and asks for I/O only
//!   through [`Links`] (start, stop and write to peer sessions). Its
//!   timers are deadlines it reports ([`Core::poll_timeout`]) and is told
//!   of ([`Core::handle_timeout`]); it never reads the clock and never
//!   spawns a task, so tests drive it with simulated time and no runtime.
//! - `requests.rs` has one `process_*` per [`Request`], `events.rs` one
//!   per peer event, `recovery.rs` graceful restart (ours and the
//!   peers'), `advertise.rs` update groups and what peers are sent,
//!   `export_cache.rs` the export results kept across passes.
//! - `shell.rs` is the thin tokio shell: [`Instance`], the handle the rest
//!   of Starling holds, and the task that feeds the core its channels and
//!   sleeps until its next deadline.

mod advertise;
mod best;
mod core;
mod events;
mod export_cache;
mod links;
mod monitor;
mod peer;
mod recovery;
mod requests;
mod shell;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;

pub use self::best::{BestChanges, BestPathStream};
pub use self::core::Core;
pub use self::links::{DriverLinks, Link, Links};
pub use self::monitor::{MonitorEvent, MonitoredPeer, MonitoredRoute};
pub use self::requests::Request;
pub use self::shell::Instance;
pub use crate::driver::PeerEvent;
use crate::rib::export::NextHopMode;
use crate::rib::{RouteAttrs, Source};
use starling_wire::Prefix;

/// Per-peer policy beyond the session itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    pub rr_client: bool,
    pub next_hop: NextHopMode,
    pub allow_own_as: usize,
    /// Close with Cease/1 when the peer sends more prefixes than this.
    pub max_prefixes: Option<u32>,
    /// The AS presented to this peer, if not the instance's.
    pub local_as: Option<u32>,
    /// The address to announce as next hop when setting it to ourselves,
    /// if not the session's local address (BIRD's `next hop address`).
    pub next_hop_address: Option<IpAddr>,
    /// This node's own addresses, for next hop self in a family the
    /// session's addresses are not of: IPv6 routes over an IPv4 session
    /// (MP-BGP) get the IPv6 one.
    pub own_addresses: OwnAddresses,
    /// The subnet the session runs over (network, prefix length), for
    /// third-party next hops towards eBGP peers on it.
    pub shared_subnet: Option<(IpAddr, u8)>,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        Self {
            rr_client: false,
            next_hop: NextHopMode::Auto,
            allow_own_as: 0,
            max_prefixes: None,
            local_as: None,
            next_hop_address: None,
            own_addresses: OwnAddresses::default(),
            shared_subnet: None,
        }
    }
}

/// A node's own address in each family, where it has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnAddresses {
    pub v4: Option<std::net::Ipv4Addr>,
    pub v6: Option<std::net::Ipv6Addr>,
}

/// One path in the RIB, for status and CLI. The route is the RIB's own
/// (interned) copy: a dump of a full table costs a pointer per path, not
/// a copy of every AS path and community list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibPath {
    pub prefix: Prefix,
    pub route: std::sync::Arc<RouteAttrs>,
    pub source: Source,
    /// Selected: the best path or a member of its ECMP set (what the FIB
    /// gets).
    pub best: bool,
}

/// Route counts, cheap to ask for (no route is copied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Prefixes in the Loc-RIB.
    pub loc_rib: usize,
    pub peers: HashMap<IpAddr, PeerCounts>,
    /// Update groups: sets of established peers sent the same UPDATEs.
    pub update_groups: usize,
}

/// Where the instance's heap bytes are, for the memory metrics. Apart
/// from [`Counts`]: it walks the table, and counts are asked for often
/// (sessions waiting for peers to sync).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rib: crate::rib::RibMemory,
    /// Every update group's Adj-RIB-Out.
    pub adj_rib_out: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Paths the peer sent that passed import policy.
    pub accepted: usize,
    /// Paths the peer sent that import policy rejected.
    pub rejected: usize,
    /// Prefixes we advertise to the peer (its Adj-RIB-Out).
    pub advertised: usize,
    /// Route advertisements withheld from the peer because no next hop
    /// could be given (each time export decided so), ever.
    pub without_next_hop: u64,
    /// Established, and the peer has sent its whole table: End-of-RIB for
    /// every family, or [`SYNC_GRACE`] passed for a peer that sends none.
    pub synced: bool,
    /// Updates are held back: the peer reads slower than it is sent
    /// routes, and gets what changed once it has read its backlog.
    pub behind: bool,
}

/// How long after Established a peer that never sends End-of-RIB counts
/// as having sent its table.
pub const SYNC_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
