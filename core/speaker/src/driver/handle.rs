//! The handle to a peer's task, and starting one.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use starling_wire::MessageType;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::task::*;
use super::*;
use crate::config::PeerConfig;
use crate::session::Session;

pub(super) enum PeerCommand {
    Start,
    Stop,
    Close(starling_wire::Notification),
    Incoming(TcpStream),
    Send(Bytes, MessageType),
    SetPassive(bool),
    SetRestarting(bool),
    /// Close for good, with this NOTIFICATION (default: Cease / Peer
    /// De-configured).
    Shutdown(Option<starling_wire::Notification>),
}

/// Handle to a running peer task.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    pub(super) tx: mpsc::UnboundedSender<PeerCommand>,
    pub(super) status: Arc<Mutex<PeerStatus>>,
    /// The current connection's writer, for [`PeerHandle::backlog`].
    pub(super) writer: Arc<Mutex<Option<Arc<WriteProgress>>>>,
    /// Octets sent to the peer task and not yet handed to a connection.
    pub(super) unforwarded: Arc<std::sync::atomic::AtomicUsize>,
    pub(super) password: Option<crate::config::Secret>,
}

impl std::fmt::Debug for PeerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Start => "Start",
            Self::Stop => "Stop",
            Self::Close(_) => "Close",
            Self::Incoming(_) => "Incoming",
            Self::Send(..) => "Send",
            Self::SetPassive(_) => "SetPassive",
            Self::SetRestarting(_) => "SetRestarting",
            Self::Shutdown(_) => "Shutdown",
        })
    }
}

impl PeerHandle {
    pub fn start(&self) {
        let _ = self.tx.send(PeerCommand::Start);
    }

    pub fn stop(&self) {
        let _ = self.tx.send(PeerCommand::Stop);
    }

    /// Start or stop connecting out; the session is not touched.
    pub fn set_passive(&self, passive: bool) {
        let _ = self.tx.send(PeerCommand::SetPassive(passive));
    }

    /// Set or clear the R bit of the next OPEN (we are recovering from a
    /// restart).
    pub fn set_restarting(&self, restarting: bool) {
        let _ = self.tx.send(PeerCommand::SetRestarting(restarting));
    }

    /// Close the session with this NOTIFICATION; it restarts after the
    /// idle-hold backoff.
    pub fn close(&self, notification: starling_wire::Notification) {
        let _ = self.tx.send(PeerCommand::Close(notification));
    }

    /// Octets queued on the session's connection and not yet written: how
    /// far the peer is behind in reading what it is sent.
    pub fn backlog(&self) -> usize {
        use std::sync::atomic::Ordering;
        let writing = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |w| w.pending.load(Ordering::Relaxed));
        writing + self.unforwarded.load(Ordering::Relaxed)
    }

    /// The peer's task has ended (the peer was removed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Queue encoded UPDATEs (or any message) for the peer.
    pub fn send(&self, bytes: impl Into<Bytes>, kind: MessageType) {
        use std::sync::atomic::Ordering;
        let bytes = bytes.into();
        let len = bytes.len();
        self.unforwarded.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(PeerCommand::Send(bytes, kind)).is_err() {
            self.unforwarded.fetch_sub(len, Ordering::Relaxed);
        }
    }

    pub fn status(&self) -> PeerStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Spawn the task for one peer. Events go to `events` tagged with the
/// peer's address.
pub fn spawn_peer(
    cfg: PeerConfig,
    events: mpsc::UnboundedSender<(IpAddr, PeerEvent)>,
) -> (PeerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let password = cfg.password.clone();
    let status = Arc::new(Mutex::new(PeerStatus::idle(cfg.remote)));
    let writer = Arc::new(Mutex::new(None));
    let unforwarded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let task = PeerTask {
        writer: writer.clone(),
        unforwarded: unforwarded.clone(),
        session: Session::new(cfg),
        events,
        status: status.clone(),
        conn: None,
        outbound: false,
        connecting: None,
        contender: None,
        held_since: None,
        intake: Arc::default(),
    };
    let join = tokio::spawn(task.run(rx));
    (
        PeerHandle {
            tx,
            status,
            writer,
            unforwarded,
            password,
        },
        join,
    )
}
