//! What the instance shows a route monitor (BMP, RFC 7854 and RFC 9069):
//! peers coming up and going down, what each peer sent before and after
//! import policy, and the Loc-RIB.
//!
//! The core queues these only while someone watches ([`Core::start_monitoring`]),
//! so an instance without a monitor pays nothing. A new watcher first gets
//! a snapshot ([`Core::monitor_snapshot`]): its peers' post-policy
//! Adj-RIB-Ins and the Loc-RIB as they are, with a ROUTE-REFRESH asked of
//! every peer that supports it, so that what they send again shows the
//! pre-policy view too (the RIB keeps what import policy accepted, not
//! what it was offered).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use starling_wire::{ParsedUpdate, Prefix, Update};

use super::core::Core;
use super::links::Links;
use crate::rib::{BestChange, RouteAttrs, Source};
use crate::session::{DownReason, Negotiated};

/// A peer as a monitor names it (BMP's per-peer header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitoredPeer {
    pub address: IpAddr,
    pub asn: u32,
    pub bgp_id: Ipv4Addr,
}

/// One route, or its withdrawal (`route: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoredRoute {
    pub prefix: Prefix,
    pub route: Option<Arc<RouteAttrs>>,
}

/// One thing a monitor is told.
#[derive(Debug, Clone)]
pub enum MonitorEvent {
    PeerUp {
        peer: MonitoredPeer,
        negotiated: Box<Negotiated>,
    },
    /// `reason` is `None` when the peer was removed from the configuration.
    PeerDown {
        peer: MonitoredPeer,
        reason: Option<DownReason>,
    },
    /// An UPDATE as the peer sent it (after RFC 7606 handling).
    PrePolicy {
        peer: MonitoredPeer,
        update: Arc<Update>,
    },
    /// What import policy made of it: the routes as stored, rejected
    /// ones as withdrawals.
    PostPolicy {
        peer: MonitoredPeer,
        routes: Vec<MonitoredRoute>,
    },
    /// Best-path changes: a prefix's new best path, or its withdrawal.
    LocRib { routes: Vec<MonitoredRoute> },
}

/// At most this many routes per snapshot event, so a full table is sent
/// as a stream of bounded messages.
const SNAPSHOT_CHUNK: usize = 1024;

impl<L: Links> Core<L> {
    /// Queue monitor events from now on (see [`Core::poll_monitor`]).
    pub fn start_monitoring(&mut self) {
        self.monitor.get_or_insert_with(Vec::new);
    }

    /// Stop queueing monitor events and drop those not taken.
    pub fn stop_monitoring(&mut self) {
        self.monitor = None;
    }

    /// The monitor events queued since the last call.
    pub fn poll_monitor(&mut self) -> Vec<MonitorEvent> {
        self.monitor
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// What a new monitor is told first: each established peer's Peer Up
    /// and post-policy routes, then the Loc-RIB. Asks each peer that
    /// supports it to send its routes again, for the pre-policy view.
    pub fn monitor_snapshot(&mut self) -> Vec<MonitorEvent> {
        let mut events = Vec::new();
        let mut established: Vec<(IpAddr, &Negotiated)> = self
            .peers
            .iter()
            .filter_map(|(a, e)| Some((*a, e.negotiated.as_ref()?)))
            .collect();
        established.sort_by_key(|(a, _)| *a);
        // Every peer's routes in one walk of the RIB, not one per peer.
        let mut adj_in: HashMap<IpAddr, Vec<MonitoredRoute>> =
            established.iter().map(|(a, _)| (*a, Vec::new())).collect();
        for (prefix, path, _) in self.rib.iter_paths() {
            if let Source::Peer(address) = self.rib.source_of(path)
                && let Some(routes) = adj_in.get_mut(&address)
            {
                routes.push(MonitoredRoute {
                    prefix,
                    route: Some(path.route.clone()),
                });
            }
        }
        for (address, n) in &established {
            let peer = monitored(*address, n);
            events.push(MonitorEvent::PeerUp {
                peer,
                negotiated: Box::new((*n).clone()),
            });
            let routes = adj_in.remove(address).unwrap_or_default();
            for chunk in routes.chunks(SNAPSHOT_CHUNK) {
                events.push(MonitorEvent::PostPolicy {
                    peer,
                    routes: chunk.to_vec(),
                });
            }
        }
        let best: Vec<MonitoredRoute> = self
            .rib
            .iter_best()
            .map(|(prefix, _, path)| MonitoredRoute {
                prefix,
                route: Some(path.route.clone()),
            })
            .collect();
        for chunk in best.chunks(SNAPSHOT_CHUNK) {
            events.push(MonitorEvent::LocRib {
                routes: chunk.to_vec(),
            });
        }
        let addresses: Vec<IpAddr> = established.iter().map(|(a, _)| *a).collect();
        for address in addresses {
            self.request_refresh(address);
        }
        events
    }

    fn monitoring(&self) -> bool {
        self.monitor.is_some()
    }

    fn push_monitor(&mut self, event: MonitorEvent) {
        if let Some(queue) = &mut self.monitor {
            queue.push(event);
        }
    }

    fn monitored_peer(&self, address: IpAddr) -> Option<MonitoredPeer> {
        let n = self.peers.get(&address)?.negotiated.as_ref()?;
        Some(monitored(address, n))
    }

    pub(super) fn monitor_peer_up(&mut self, address: IpAddr) {
        if !self.monitoring() {
            return;
        }
        let Some(n) = self.peers.get(&address).and_then(|e| e.negotiated.clone()) else {
            return;
        };
        self.push_monitor(MonitorEvent::PeerUp {
            peer: monitored(address, &n),
            negotiated: Box::new(n),
        });
    }

    /// Call with the peer's negotiated parameters before they are dropped.
    pub(super) fn monitor_peer_down(
        &mut self,
        address: IpAddr,
        n: &Negotiated,
        reason: Option<DownReason>,
    ) {
        self.push_monitor(MonitorEvent::PeerDown {
            peer: monitored(address, n),
            reason,
        });
    }

    /// The UPDATE as received, and, once the RIB has applied it, what
    /// import policy kept of each of its routes.
    pub(super) fn monitor_update(&mut self, address: IpAddr, parsed: &ParsedUpdate) {
        if !self.monitoring() {
            return;
        }
        let Some(peer) = self.monitored_peer(address) else {
            return;
        };
        let update = &parsed.update;
        let treat_as_withdraw = parsed.verdict == starling_wire::Verdict::TreatAsWithdraw;
        let mut routes: Vec<MonitoredRoute> = update
            .withdrawals(treat_as_withdraw)
            .map(|n| MonitoredRoute {
                prefix: n.prefix,
                route: None,
            })
            .collect();
        if !treat_as_withdraw {
            let mine = Source::Peer(address);
            let announced = update
                .nlri
                .iter()
                .chain(update.mp_reach.iter().flat_map(|m| m.nlri.iter()));
            for nlri in announced {
                let path_id = nlri.path_id.unwrap_or(0);
                let route = self
                    .rib
                    .paths(&nlri.prefix)
                    .iter()
                    .find(|p| p.path_id == path_id && self.rib.source_of(p) == mine)
                    .map(|p| p.route.clone());
                routes.push(MonitoredRoute {
                    prefix: nlri.prefix,
                    route,
                });
            }
        }
        self.push_monitor(MonitorEvent::PrePolicy {
            peer,
            update: Arc::new(update.clone()),
        });
        if !routes.is_empty() {
            self.push_monitor(MonitorEvent::PostPolicy { peer, routes });
        }
    }

    /// Selection changes, as the FIB is told them.
    pub(super) fn monitor_best(&mut self, changes: &[BestChange]) {
        if !self.monitoring() || changes.is_empty() {
            return;
        }
        let routes = changes
            .iter()
            .map(|c| MonitoredRoute {
                prefix: c.prefix,
                route: c.best.first().map(|p| p.route.clone()),
            })
            .collect();
        self.push_monitor(MonitorEvent::LocRib { routes });
    }
}

fn monitored(address: IpAddr, n: &Negotiated) -> MonitoredPeer {
    MonitoredPeer {
        address,
        asn: n.peer_as,
        bgp_id: n.peer_id,
    }
}
