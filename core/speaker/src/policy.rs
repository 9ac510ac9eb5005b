//! Route policy: what a session may import and export, decided outside the
//! speaker (the plugin host implements it; a plain Rust policy does in
//! tests).
//!
//! Policy sees the route as it stands in the Loc-RIB (export) or as the
//! peer sent it (import), in batches, before the speaker's own protocol
//! rules (AS prepend, next hop, LOCAL_PREF stripping) apply on export — as
//! BIRD runs export filters before its BGP-specific attribute updates.

use std::net::IpAddr;

use starling_wire::{PathAttributes, Prefix};

use crate::rib::RouteAttrs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Import,
    Export,
}

/// One route's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Reject,
    Accept,
    /// Accept with these attributes (the next hop stays). Boxed: most
    /// verdicts are the two small ones.
    Replace(Box<PathAttributes>),
}

/// A route crossing a session: its prefix, attributes, and whether it was
/// learned from a BGP peer (false: originated here).
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub prefix: Prefix,
    pub route: &'a RouteAttrs,
    pub from_peer: bool,
}

/// Decides routes for sessions, in batches.
///
/// `evaluate` runs on the instance's event loop: implementations must be
/// bounded in time (the plugin host's deadline) and should move blocking
/// work off the async runtime's worker (`tokio::task::block_in_place`).
pub trait RoutePolicy: Send + Sync + std::fmt::Debug {
    /// One verdict per candidate, in order. An error means the policy
    /// could not decide: on export the instance leaves what the peer has
    /// as it was; on import it rejects the routes (as BIRD does when a
    /// filter fails) and says so in the log.
    fn evaluate(
        &self,
        peer: IpAddr,
        direction: Direction,
        routes: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, String>;

    /// A promise that every peer given the same class gets the same
    /// export verdicts for every route: such peers may share an update
    /// group, evaluated once (with any one of them as `peer`) and encoded
    /// once. `None`, the default: this peer's verdicts are its own, and it
    /// is alone in its group.
    fn export_class(&self, peer: IpAddr) -> Option<u64> {
        let _ = peer;
        None
    }
}
