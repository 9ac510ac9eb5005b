//! The tokio shell around `Session`: sockets, timers, one task per peer.
//!
//! Each peer task owns its `Session` and its connection; nothing else
//! mutates them, so no locks. A task never waits on another peer: writes go
//! through the peer's own writer task, so a slow peer cannot stall anyone
//! else's keepalives.

mod handle;
mod intake;
mod registry;
mod task;

use std::net::SocketAddr;
use std::time::Instant;

use starling_wire::{ParsedUpdate, RouteRefresh};

use crate::session::{DownReason, Negotiated, State};

pub use handle::{PeerHandle, spawn_peer};
pub use intake::InputTicket;
pub use registry::{PeerRegistry, accept_loop};

/// Something a peer did, for the RIB and for status.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    StateChanged(State),
    Established(Box<Negotiated>),
    /// An UPDATE, and its place in the peer's intake: drop the ticket
    /// once the UPDATE is applied.
    Update(Box<ParsedUpdate>, InputTicket),
    RouteRefresh(RouteRefresh),
    Down(DownReason),
}

/// A snapshot of one session for status output.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub remote: SocketAddr,
    pub state: State,
    pub since: Instant,
    pub last_error: Option<DownReason>,
    pub negotiated: Option<Negotiated>,
    pub updates_received: u64,
    pub updates_sent: u64,
    /// Message and RFC 7606 counters of the session.
    pub counters: crate::session::Counters,
    /// Connection collisions resolved in favour of the inbound connection.
    pub collisions: u64,
}

impl PeerStatus {
    /// A session with `remote` that has not done anything yet.
    pub fn idle(remote: SocketAddr) -> Self {
        PeerStatus {
            remote,
            state: State::Idle,
            since: Instant::now(),
            last_error: None,
            negotiated: None,
            updates_received: 0,
            updates_sent: 0,
            counters: crate::session::Counters::default(),
            collisions: 0,
        }
    }
}
