//! Graceful restart (RFC 4724, RFC 8538): ours — recovering from our own
//! restart with the forwarding state kept — and our peers', as helper.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use starling_wire::Family;
use starling_wire::notification::code;

use super::core::Core;
use super::links::Links;
use super::peer::PeerEntry;
use super::timers::Timer;
use crate::session::{DownReason, Negotiated};

/// Recovering from our own restart (see [`super::Instance::recover`]).
#[derive(Debug)]
pub(super) struct Recovery {
    pub(super) until: Instant,
    /// Peers whose table (and End-of-RIB) waits for the end of recovery.
    pub(super) deferred: HashSet<IpAddr>,
}

/// How often recovery checks whether every peer has sent its table (a
/// peer without End-of-RIB counts after [`super::SYNC_GRACE`]).
pub(super) const RECOVERY_CHECK: Duration = Duration::from_millis(500);

/// How long stale routes may wait for End-of-RIB once a restarting peer is
/// back (FRR's stalepath-time default).
pub(super) const STALE_PATH_TIME: Duration = Duration::from_secs(360);

impl<L: Links> Core<L> {
    /// Until every peer has sent its table, or `limit` passes, our OPENs
    /// carry the Restart State bit and peers that kept our routes are sent
    /// nothing.
    pub(super) fn start_recovery(&mut self, limit: Duration) {
        tracing::info!(
            ?limit,
            "recovering from a restart: tables go out once every peer has sent its own"
        );
        self.recovery = Some(Recovery {
            until: self.now + limit,
            deferred: HashSet::new(),
        });
        for entry in self.peers.values_mut() {
            entry.set_restarting(true);
        }
        self.timers
            .set(self.now + RECOVERY_CHECK.min(limit), Timer::Recovery);
    }

    /// The periodic check while recovering.
    pub(super) fn recovery_tick(&mut self) {
        self.check_recovery();
        if let Some(recovery) = &self.recovery {
            let next = (self.now + RECOVERY_CHECK).min(recovery.until);
            self.timers.set(next, Timer::Recovery);
        }
    }

    /// End recovery once every peer has sent its table (or the limit
    /// passed): clear the R bit and send the deferred peers everything.
    pub(super) fn check_recovery(&mut self) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        let now = self.now;
        let waiting: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, e)| !e.synced(now))
            .map(|(a, _)| *a)
            .collect();
        let late = now >= recovery.until;
        if !waiting.is_empty() && !late {
            return;
        }
        if waiting.is_empty() {
            tracing::info!("recovered from the restart: every peer has sent its table");
        } else {
            tracing::warn!(
                ?waiting,
                "restart recovery time is up; sending tables without these peers' routes"
            );
        }
        let Some(recovery) = self.recovery.take() else {
            return;
        };
        for entry in self.peers.values_mut() {
            entry.set_restarting(false);
        }
        for address in recovery.deferred {
            self.initial_advertisement(address);
        }
    }

    /// A peer that restarted is back: routes of families it no longer
    /// preserves go now, the others when their End-of-RIB arrives (RFC
    /// 4724 §4.2), or when the stale-path time runs out.
    pub(super) fn peer_back_from_restart(&mut self, address: IpAddr, n: &Negotiated) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        if entry.awaiting_eor.is_empty() {
            return;
        }
        let preserved: Vec<Family> = n
            .peer_graceful_restart
            .iter()
            .flat_map(|g| &g.families)
            .filter(|f| f.forwarding_preserved)
            .map(|f| f.family)
            .collect();
        let (keep, drop): (Vec<Family>, Vec<Family>) = entry
            .awaiting_eor
            .iter()
            .partition(|f| preserved.contains(f));
        entry.awaiting_eor = keep;
        let mut changes = Vec::new();
        for family in drop {
            changes.extend(self.rib.sweep_stale(address, Some(family)));
        }
        self.start_restart_timer(address, STALE_PATH_TIME);
        self.propagate(changes);
    }

    /// A session ended: keep the peer's routes as stale if graceful
    /// restart applies; otherwise they go at the end of the batch.
    pub(super) fn peer_session_lost(
        &mut self,
        address: IpAddr,
        was_established: bool,
        reason: &DownReason,
    ) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        if was_established && graceful_restart_applies(entry, reason) {
            let restart_time = entry.graceful.as_ref().map_or(0, |g| g.restart_time);
            entry.awaiting_eor = entry
                .graceful
                .iter()
                .flat_map(|g| &g.families)
                .map(|f| f.family)
                .collect();
            tracing::info!(peer = %address, restart_time, "peer restarting gracefully: keeping its routes as stale");
            self.rib.mark_stale(address);
            self.start_restart_timer(address, Duration::from_secs(restart_time.into()));
        } else if !was_established && !entry.awaiting_eor.is_empty() && retry_keeps_stale(reason) {
            // A reconnection attempt failed while the peer is restarting
            // (its listener up before its peers are configured, say): its
            // stale routes stay until the restart timer, as RFC 4724 §4.2
            // has it. Flushing here cost a restarted reflector's client its
            // routes in the lab.
            tracing::debug!(peer = %address, ?reason, "reconnection failed; keeping stale routes");
        } else if was_established || !entry.awaiting_eor.is_empty() {
            entry.awaiting_eor.clear();
            entry.restart_generation += 1;
            if !self.leaving.contains(&address) {
                self.leaving.push(address);
            }
        }
    }

    /// An End-of-RIB arrived for `family`: stale routes of that family
    /// that were not sent again go. Returns the changes.
    pub(super) fn end_of_rib(
        &mut self,
        address: IpAddr,
        family: Family,
    ) -> Vec<crate::rib::BestChange> {
        let Some(entry) = self.peers.get_mut(&address) else {
            return Vec::new();
        };
        entry.initial_eor.retain(|f| *f != family);
        if !entry.awaiting_eor.contains(&family) {
            return Vec::new();
        }
        entry.awaiting_eor.retain(|f| *f != family);
        if entry.awaiting_eor.is_empty() {
            entry.restart_generation += 1;
        }
        self.rib.sweep_stale(address, Some(family))
    }

    /// (Re)start the peer's restart timer: firings of earlier ones are
    /// ignored.
    fn start_restart_timer(&mut self, address: IpAddr, after: Duration) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        entry.restart_generation += 1;
        let timer = Timer::Restart(address, entry.restart_generation);
        self.timers.set(self.now + after, timer);
    }

    pub(super) fn restart_timer_expired(&mut self, address: IpAddr, generation: u64) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        if entry.restart_generation != generation {
            return;
        }
        entry.awaiting_eor.clear();
        tracing::info!(peer = %address, "graceful restart timer expired: removing stale routes");
        let changes = self.rib.sweep_stale(address, None);
        self.propagate(changes);
    }
}

/// RFC 4724 §4.2 and RFC 8538: the peer's routes survive a session loss
/// without NOTIFICATION, and with the N bit any NOTIFICATION but a Cease.
fn graceful_restart_applies<L>(entry: &PeerEntry<L>, reason: &DownReason) -> bool {
    entry.graceful.is_some() && keeps_routes(entry.graceful_notification, reason)
}

/// Whether a session of a peer that offered graceful restart ended in a
/// way that keeps its routes (RFC 4724, and RFC 8538 when both sides set
/// the N bit).
pub(super) fn keeps_routes(notification_bit: bool, reason: &DownReason) -> bool {
    match reason {
        DownReason::ConnectionLost => true,
        DownReason::Sent(n) | DownReason::Received(n) => {
            notification_bit
                && (n.code != code::CEASE
                    // A collision closes one of two connections, not the
                    // peering: when one side had already reached
                    // Established on the closed one, the routes must
                    // survive until the other comes up (seen in the lab:
                    // a restarted reflector's client dropped its stale
                    // routes, and 4 s of traffic, on a Cease/7).
                    || n.subcode == code::cease::CONNECTION_COLLISION)
        } // Other Cease subcodes cover Hard Reset (RFC 8538) and deliberate
          // shutdowns, after which keeping routes would be wrong.
    }
}

/// Whether a failed attempt to reconnect with a restarting peer leaves its
/// stale routes in place: yes, unless the peer said it is gone for good
/// (shut down, deconfigured us, or a Hard Reset).
pub(super) fn retry_keeps_stale(reason: &DownReason) -> bool {
    match reason {
        DownReason::ConnectionLost => true,
        DownReason::Sent(n) | DownReason::Received(n) => {
            n.code != code::CEASE
                || !matches!(
                    n.subcode,
                    code::cease::ADMIN_SHUTDOWN
                        | code::cease::PEER_DECONFIGURED
                        | code::cease::HARD_RESET
                )
        }
    }
}
