//! The set of peer tasks, and the listeners that hand them connections.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::handle::*;
use super::*;
use crate::config::PeerConfig;
use crate::sockopt;

/// The set of peers and the listeners that feed them.
#[derive(Debug, Default)]
pub struct PeerRegistry {
    pub(super) peers: HashMap<IpAddr, (PeerHandle, JoinHandle<()>)>,
    /// Listening sockets, which need each peer's TCP-MD5 key before the
    /// peer's SYN arrives.
    pub(super) listeners: Vec<Arc<TcpListener>>,
}

impl PeerRegistry {
    /// Register a listener; existing peers' keys are installed on it.
    pub fn add_listener(&mut self, listener: Arc<TcpListener>) -> io::Result<()> {
        let v6 = listener.local_addr()?.is_ipv6();
        sockopt::save_syn(listener.as_ref())?;
        for (handle, _) in self.peers.values() {
            if let Some(key) = &handle.password {
                let peer = handle.status().remote.ip();
                sockopt::set_md5_key(listener.as_ref(), peer, Some(key.expose().as_bytes()), v6)?;
            }
        }
        self.listeners.push(listener);
        Ok(())
    }

    /// Forget a listener (it is being closed).
    pub fn remove_listener(&mut self, listener: &Arc<TcpListener>) {
        self.listeners.retain(|l| !Arc::ptr_eq(l, listener));
    }

    /// Add (and start) a peer.
    pub fn add_peer(
        &mut self,
        cfg: PeerConfig,
        events: mpsc::UnboundedSender<(IpAddr, PeerEvent)>,
    ) -> PeerHandle {
        let ip = cfg.remote.ip();
        // A peer without a password needs no key; removing a key that was
        // never installed would only fail with ENOENT.
        let key = cfg.password.as_ref().map(|p| p.expose().as_bytes());
        let replaced_had_key = self
            .peers
            .get(&ip)
            .is_some_and(|(h, _)| h.password.is_some());
        for listener in self
            .listeners
            .iter()
            .filter(|_| key.is_some() || replaced_had_key)
        {
            let v6 = listener.local_addr().is_ok_and(|a| a.is_ipv6());
            if let Err(e) = sockopt::set_md5_key(listener.as_ref(), ip, key, v6) {
                tracing::error!(peer = %ip, "cannot install the TCP-MD5 key on a listener: {e}");
            }
        }
        if let Some((old, join)) = self.peers.remove(&ip) {
            let _ = old.tx.send(PeerCommand::Shutdown(None));
            join.abort();
        }
        let (handle, join) = spawn_peer(cfg, events);
        handle.start();
        self.peers.insert(ip, (handle.clone(), join));
        handle
    }

    /// Remove a peer: it closes with Cease.
    pub fn remove_peer(&mut self, ip: IpAddr) {
        self.remove_peer_with(ip, None);
    }

    /// Remove a peer, closing its session with `notification`.
    pub fn remove_peer_with(
        &mut self,
        ip: IpAddr,
        notification: Option<starling_wire::Notification>,
    ) {
        if let Some((handle, _join)) = self.peers.remove(&ip) {
            let _ = handle.tx.send(PeerCommand::Shutdown(notification));
            if handle.password.is_some() {
                for listener in &self.listeners {
                    let v6 = listener.local_addr().is_ok_and(|a| a.is_ipv6());
                    let _ = sockopt::set_md5_key(listener.as_ref(), ip, None, v6);
                }
            }
        }
    }

    pub fn peer(&self, ip: IpAddr) -> Option<&PeerHandle> {
        self.peers.get(&ip).map(|(h, _)| h)
    }

    /// Hand an accepted connection to its peer; unknown sources are closed.
    pub fn dispatch(&self, stream: TcpStream, from: SocketAddr) {
        // A dual-stack listener ([::], the appliance's default) sees an
        // IPv4 peer as ::ffff:a.b.c.d; peers are keyed by their IPv4
        // address.
        match self.peers.get(&from.ip().to_canonical()) {
            Some((h, _)) => {
                let _ = h.tx.send(PeerCommand::Incoming(stream));
            }
            None => tracing::info!(%from, "connection from an unconfigured address refused"),
        }
    }
}

/// Register `listener` and accept connections on it until the task is
/// aborted, dispatching them to peers.
pub async fn accept_loop(listener: Arc<TcpListener>, speaker: Arc<Mutex<PeerRegistry>>) {
    let registered = speaker
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .add_listener(listener.clone());
    if let Err(e) = registered {
        tracing::error!("cannot install TCP-MD5 keys on a listener: {e}");
    }
    loop {
        match listener.accept().await {
            Ok((stream, from)) => speaker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .dispatch(stream, from),
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
