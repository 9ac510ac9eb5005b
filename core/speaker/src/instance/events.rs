//! What peers' sessions report: one `process_*` per event.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use starling_wire::notification::code;
use starling_wire::{Family, Notification, ParsedUpdate};

use super::PeerEvent;
use super::core::Core;
use super::links::{Link, Links};
use super::timers::Timer;
use crate::policy::{Candidate, Direction, RoutePolicy, Verdict};
use crate::rib::Source;
use crate::session::{DownReason, Negotiated};

/// Best-path changes a departure makes before they are passed on.
pub(super) const DEPARTURE_SLICE: usize = 65_536;

/// How long after a failed import or export the peer's routes are asked
/// for, or evaluated, again.
pub(super) const POLICY_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl<L: Links> Core<L> {
    pub(super) fn process_event(&mut self, address: IpAddr, event: PeerEvent) {
        let from_a_session = matches!(
            event,
            PeerEvent::Established(_) | PeerEvent::Update(..) | PeerEvent::RouteRefresh(_)
        );
        if from_a_session && self.leaving.contains(&address) {
            // The peer is back within the batch: its old routes go first.
            self.remove_leaving();
        }
        match event {
            PeerEvent::Established(n) => self.process_established(address, *n),
            // The ticket goes once the UPDATE is applied: the peer's
            // reading waits on it.
            PeerEvent::Update(parsed, _ticket) => self.process_update(address, &parsed),
            // Answer by sending the whole Adj-RIB-Out again.
            PeerEvent::RouteRefresh(_) => self.initial_advertisement(address),
            PeerEvent::Down(reason) => self.process_down(address, &reason),
            PeerEvent::StateChanged(_) => {}
        }
    }

    fn process_established(&mut self, address: IpAddr, n: Negotiated) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        if let Err(e) = self.rib.set_peer(entry.info(address, &n)) {
            tracing::error!(peer = %address, "{e}: closing the session");
            entry.link.close(Notification::new(
                code::CEASE,
                code::cease::OUT_OF_RESOURCES,
            ));
            return;
        }
        // Its routes' export may depend on what was negotiated.
        self.exports.clear(&mut self.exported);
        self.peer_back_from_restart(address, &n);
        let now = self.now;
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        entry.graceful = n.peer_graceful_restart.clone();
        entry.graceful_notification = n.graceful_notification;
        entry.initial_eor = [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
            .into_iter()
            .filter(|f| n.codec.families.get(*f))
            .collect();
        entry.established_at = Some(now);
        entry.no_next_hop_warned = false;
        entry.negotiated = Some(n);
        self.leave_group(address);
        self.initial_advertisement(address);
        self.check_recovery();
        self.monitor_peer_up(address);
    }

    fn process_update(&mut self, address: IpAddr, parsed: &ParsedUpdate) {
        for p in &parsed.problems {
            tracing::warn!(peer = %address, "UPDATE: {p}");
        }
        let watched = self.route_policy.as_deref().map(|inner| Watched {
            inner,
            failed: AtomicBool::new(false),
        });
        let mut changes = self.rib.apply_update_with(
            address,
            parsed,
            watched.as_ref().map(|w| w as &dyn RoutePolicy),
        );
        if watched.is_some_and(|w| w.failed.into_inner()) {
            // The rejected routes would be lost for good: ask the peer for
            // its table again once the policy may answer.
            self.schedule_retry(Timer::RetryImport(address));
        }
        self.monitor_update(address, parsed);
        let end_of_rib = parsed.update.end_of_rib();
        if let Some(family) = end_of_rib {
            changes.extend(self.end_of_rib(address, family));
        }
        self.enforce_max_prefixes(address, parsed);
        self.propagate(changes);
        if end_of_rib.is_some() {
            self.check_recovery();
        }
    }

    /// RFC 4486: past its limit a peer is closed with Cease/1, with AFI,
    /// SAFI and the limit as data.
    fn enforce_max_prefixes(&self, address: IpAddr, parsed: &ParsedUpdate) {
        let Some(entry) = self.peers.get(&address) else {
            return;
        };
        let Some(limit) = entry.policy.max_prefixes else {
            return;
        };
        if self.rib.received_count(address) <= limit as usize {
            return;
        }
        let family = parsed
            .update
            .mp_reach
            .as_ref()
            .map_or(Family::IPV4_UNICAST, |m| m.family);
        let mut data = family.afi.0.to_be_bytes().to_vec();
        data.push(family.safi.0);
        data.extend_from_slice(&limit.to_be_bytes());
        tracing::warn!(peer = %address, limit, "maximum prefix count exceeded");
        entry.link.close(Notification::with_data(
            code::CEASE,
            code::cease::MAX_PREFIXES,
            data,
        ));
    }

    fn process_down(&mut self, address: IpAddr, reason: &DownReason) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        let negotiated = entry.negotiated.take();
        let was_established = negotiated.is_some();
        entry.established_at = None;
        if let Some(n) = &negotiated {
            self.monitor_peer_down(address, n, Some(reason.clone()));
        }
        self.leave_group(address);
        self.peer_session_lost(address, was_established, reason);
    }

    /// Remove the routes of the peers that went down in this batch of
    /// events, at once.
    pub(super) fn remove_leaving(&mut self) {
        self.start_departure();
        self.finish_departure();
    }

    /// Begin removing the routes of the peers that went down in this
    /// batch of events, in one walk of the table: sessions often end
    /// together (a switch restarting, a route server's members), and a
    /// walk per session cost 50 ms each with a full table.
    pub(super) fn start_departure(&mut self) {
        // Every input walks a departure under way to its end first.
        debug_assert!(self.departure.is_none(), "a departure under way");
        if self.leaving.is_empty() {
            return;
        }
        let leaving = std::mem::take(&mut self.leaving);
        let departure = self.rib.begin_departure(&leaving);
        for address in leaving {
            self.path_ids.forget(Source::Peer(address));
        }
        self.departure = Some(departure);
    }

    /// Walk the departure under way to its end.
    pub(super) fn finish_departure(&mut self) {
        while self.departure.is_some() {
            self.departure_step();
        }
    }

    /// One slice of the departure under way, sent to the peers and the
    /// FIB at once: a full table leaving is a million best-path changes
    /// (60 MB, and as much again to merge them with the batch's others).
    /// Slots emptied so far may be recycled between steps: nothing
    /// inserts until the walk is over (any input finishes it first), and
    /// its end drops them from the index.
    pub(super) fn departure_step(&mut self) {
        let Some(departure) = &mut self.departure else {
            return;
        };
        let changes = self.rib.continue_departure(departure, DEPARTURE_SLICE);
        let done = departure.is_done();
        self.propagate(changes);
        self.flush();
        if done {
            self.departure = None;
            self.rib.collect_garbage();
        }
    }

    /// Set a retry timer after [`POLICY_RETRY`], once per peer and kind
    /// however many failures asked for it.
    pub(super) fn schedule_retry(&mut self, timer: Timer) {
        let (Timer::RetryImport(address) | Timer::RetryExport(address)) = timer else {
            return;
        };
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        let pending = match timer {
            Timer::RetryImport(_) => &mut entry.import_retry_pending,
            _ => &mut entry.export_retry_pending,
        };
        if std::mem::replace(pending, true) {
            return;
        }
        self.timers.set(self.now + POLICY_RETRY, timer);
    }

    pub(super) fn retry_import(&mut self, address: IpAddr) {
        if let Some(entry) = self.peers.get_mut(&address) {
            entry.import_retry_pending = false;
        }
        self.request_refresh(address);
    }
}

/// A policy that remembers whether it failed.
#[derive(Debug)]
struct Watched<'a> {
    inner: &'a dyn RoutePolicy,
    failed: AtomicBool,
}

impl RoutePolicy for Watched<'_> {
    fn evaluate(
        &self,
        peer: IpAddr,
        direction: Direction,
        routes: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, String> {
        let result = self.inner.evaluate(peer, direction, routes);
        if result.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        result
    }
}
