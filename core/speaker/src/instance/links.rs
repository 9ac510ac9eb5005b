//! The instance's only way to the outside: starting, stopping and writing
//! to peer sessions. The shell gives it the real peer tasks
//! ([`DriverLinks`]); tests give it recorders.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use starling_wire::{MessageType, Notification};
use tokio::sync::mpsc;

use crate::config::PeerConfig;
use crate::driver::{PeerEvent, PeerHandle, PeerRegistry, PeerStatus};

/// The sessions an instance runs.
pub trait Links {
    type Link: Link;
    /// Start a session with this peer, replacing any earlier one. Its
    /// events reach the instance as [`PeerEvent`]s.
    fn start(&mut self, cfg: &PeerConfig) -> Self::Link;
    /// End the peer's session for good (Cease / Peer De-configured, or
    /// `notification`).
    fn stop(&mut self, address: IpAddr, notification: Option<Notification>);
}

/// One peer's session, as the instance uses it.
pub trait Link: Clone {
    /// Queue encoded messages for the peer.
    fn send(&self, bytes: Bytes, kind: MessageType);
    /// Close the session with this NOTIFICATION; it restarts after its
    /// idle-hold backoff.
    fn close(&self, notification: Notification);
    /// Start or stop connecting out; the session is not touched.
    fn set_passive(&self, passive: bool);
    /// Set or clear the R bit of the next OPEN.
    fn set_restarting(&self, restarting: bool);
    /// Octets queued for the peer and not yet written.
    fn backlog(&self) -> usize;
    /// The session is gone (the peer was removed).
    fn is_closed(&self) -> bool;
    fn status(&self) -> PeerStatus;
}

/// The real sessions: one tokio task per peer ([`crate::driver`]).
#[derive(Debug)]
pub struct DriverLinks {
    registry: Arc<Mutex<PeerRegistry>>,
    events: mpsc::UnboundedSender<(IpAddr, PeerEvent)>,
}

impl DriverLinks {
    pub fn new(
        registry: Arc<Mutex<PeerRegistry>>,
        events: mpsc::UnboundedSender<(IpAddr, PeerEvent)>,
    ) -> Self {
        Self { registry, events }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, PeerRegistry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Links for DriverLinks {
    type Link = PeerHandle;

    fn start(&mut self, cfg: &PeerConfig) -> PeerHandle {
        let events = self.events.clone();
        self.registry().add_peer(cfg.clone(), events)
    }

    fn stop(&mut self, address: IpAddr, notification: Option<Notification>) {
        self.registry().remove_peer_with(address, notification);
    }
}

impl Link for PeerHandle {
    fn send(&self, bytes: Bytes, kind: MessageType) {
        PeerHandle::send(self, bytes, kind);
    }
    fn close(&self, notification: Notification) {
        PeerHandle::close(self, notification);
    }
    fn set_passive(&self, passive: bool) {
        PeerHandle::set_passive(self, passive);
    }
    fn set_restarting(&self, restarting: bool) {
        PeerHandle::set_restarting(self, restarting);
    }
    fn backlog(&self) -> usize {
        PeerHandle::backlog(self)
    }
    fn is_closed(&self) -> bool {
        PeerHandle::is_closed(self)
    }
    fn status(&self) -> PeerStatus {
        PeerHandle::status(self)
    }
}
