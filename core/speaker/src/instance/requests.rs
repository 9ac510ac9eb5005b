//! What the rest of Starling asks of the instance: one `process_*` each.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use starling_wire::{Afi, NextHop, Notification, PathAttributes, Prefix};

use super::PeerPolicy;
use super::core::Core;
use super::links::{Link, Links};
use super::peer::PeerEntry;
use crate::config::PeerConfig;
use crate::policy::RoutePolicy;
use crate::rib::{RibConfig, Source};

/// A change the rest of Starling asks for.
pub enum Request {
    AddPeer(Box<PeerConfig>, PeerPolicy),
    /// Remove a peer, closing its session with this NOTIFICATION (default
    /// Cease / Peer De-configured).
    RemovePeer(IpAddr, Option<Notification>),
    /// Originate a prefix (next hop: ourselves).
    Originate(Prefix, Box<PathAttributes>),
    Withdraw(Prefix),
    /// Decide imports and exports with this policy (`None`: accept
    /// everything); ask `refresh` for their routes again.
    SetRoutePolicy {
        policy: Option<Arc<dyn RoutePolicy>>,
        refresh: Vec<IpAddr>,
        /// The caller knows the export verdicts are unchanged.
        keep_exports: bool,
    },
    UpdatePeerPolicy(IpAddr, PeerPolicy),
    SetPassive(IpAddr, bool),
    Reconfigure(RibConfig),
    /// We restarted with our forwarding state kept: see
    /// [`super::Instance::recover`].
    Recover(Duration),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AddPeer(cfg, _) => write!(f, "AddPeer({})", cfg.remote),
            Self::RemovePeer(a, _) => write!(f, "RemovePeer({a})"),
            Self::Originate(p, _) => write!(f, "Originate({p})"),
            Self::Withdraw(p) => write!(f, "Withdraw({p})"),
            Self::SetRoutePolicy { policy, .. } => {
                write!(f, "SetRoutePolicy({})", policy.is_some())
            }
            Self::UpdatePeerPolicy(a, _) => write!(f, "UpdatePeerPolicy({a})"),
            Self::SetPassive(a, p) => write!(f, "SetPassive({a}, {p})"),
            Self::Reconfigure(_) => f.write_str("Reconfigure"),
            Self::Recover(limit) => write!(f, "Recover({limit:?})"),
        }
    }
}

impl<L: Links> Core<L> {
    pub(super) fn process_request(&mut self, request: Request) {
        match request {
            Request::AddPeer(cfg, policy) => self.process_add_peer(*cfg, policy),
            Request::RemovePeer(address, notification) => {
                self.process_remove_peer(address, notification);
            }
            Request::Originate(prefix, attrs) => self.process_originate(prefix, *attrs),
            Request::Withdraw(prefix) => {
                let changes = self.rib.withdraw_local(prefix);
                self.propagate(changes);
            }
            Request::SetRoutePolicy {
                policy,
                refresh,
                keep_exports,
            } => self.process_set_route_policy(policy, refresh, keep_exports),
            Request::UpdatePeerPolicy(address, policy) => {
                self.process_update_peer_policy(address, policy);
            }
            Request::SetPassive(address, passive) => {
                if let Some(entry) = self.peers.get_mut(&address) {
                    entry.cfg.passive = passive;
                    entry.link.set_passive(passive);
                }
            }
            Request::Reconfigure(cfg) => {
                self.rib.reconfigure(cfg);
                self.exports.clear(&mut self.exported);
                self.readvertise_all();
            }
            Request::Recover(limit) => self.start_recovery(limit),
        }
    }

    fn process_add_peer(&mut self, mut cfg: PeerConfig, policy: PeerPolicy) {
        let address = cfg.remote.ip();
        if let Some(gr) = &mut cfg.graceful_restart {
            gr.restarting = self.recovery.is_some();
        }
        let link = self.links.start(&cfg);
        let member = self.members.of(address);
        self.peers
            .insert(address, PeerEntry::new(link, cfg, policy, member));
        self.track_all_paths_if_needed();
    }

    fn process_remove_peer(&mut self, address: IpAddr, notification: Option<Notification>) {
        self.links.stop(address, notification);
        self.leave_group(address);
        if let Some(n) = self.peers.remove(&address).and_then(|e| e.negotiated) {
            self.monitor_peer_down(address, &n, None);
        }
        if let Some(r) = &mut self.recovery {
            r.deferred.remove(&address);
        }
        let changes = self.rib.peer_down(address);
        self.path_ids.forget(Source::Peer(address));
        self.propagate(changes);
        self.track_all_paths_if_needed();
        self.check_recovery();
    }

    fn process_originate(&mut self, prefix: Prefix, attrs: PathAttributes) {
        let next_hop = match prefix.afi() {
            Afi::IPV6 => NextHop::V6 {
                global: Ipv6Addr::UNSPECIFIED,
                link_local: None,
            },
            _ => NextHop::V4(Ipv4Addr::UNSPECIFIED),
        };
        let changes = self.rib.originate(prefix, attrs, next_hop);
        self.propagate(changes);
    }

    fn process_set_route_policy(
        &mut self,
        policy: Option<Arc<dyn RoutePolicy>>,
        refresh: Vec<IpAddr>,
        keep_exports: bool,
    ) {
        self.route_policy = policy;
        // Peers with a policy are each in a group of their own.
        let moved = self.regroup();
        // Asked first: the peers resend while exports are re-evaluated.
        for address in refresh {
            self.request_refresh(address);
        }
        // A peer whose export class changed is re-evaluated whatever the
        // caller said.
        if !keep_exports || moved {
            self.readvertise_all();
        }
    }

    fn process_update_peer_policy(&mut self, address: IpAddr, policy: PeerPolicy) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        entry.policy = policy;
        if let Some(n) = &entry.negotiated {
            // Known to the RIB since it was established: this only updates
            // what the RIB knows, which cannot fail.
            let _ = self.rib.set_peer(entry.info(address, n));
        }
        // Routes from this peer may export differently now, and routes to
        // it may no longer export as to its group.
        self.exports.clear(&mut self.exported);
        let _ = self.regroup();
        self.readvertise_all();
    }
}
