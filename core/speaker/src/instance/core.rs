//! The instance's state, and the entry points that drive it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::export_cache::ExportCache;
use super::links::{Link, Links};
use super::monitor::MonitorEvent;
use super::peer::{GroupId, PeerEntry};
use super::recovery::Recovery;
use super::requests::Request;
use super::timers::{Timer, Timers};
use super::{Counts, PeerCounts, PeerEvent, RibPath};
use crate::driver::PeerStatus;
use crate::groups::{Members, UpdateGroup};
use crate::policy::RoutePolicy;
use crate::rib::adj_out::{PathIds, SetTable};
use crate::rib::{BestChange, Departure, Rib, RibConfig, RouteAttrs, Source};
use starling_wire::Prefix;

/// At most this many changes wait before a batch of peer events ends
/// (see [`Core::batch_full`]).
const CHANGE_BATCH: usize = 65_536;

/// One BGP instance, sans I/O: see the [module](super) documentation.
pub struct Core<L: Links> {
    pub(super) links: L,
    pub(super) rib: Rib,
    pub(super) peers: HashMap<IpAddr, PeerEntry<L::Link>>,
    pub(super) route_policy: Option<Arc<dyn RoutePolicy>>,
    pub(super) recovery: Option<Recovery>,
    pub(super) timers: Timers,
    /// Exported attribute sets, one copy of each for every group's
    /// Adj-RIB-Out.
    pub(super) exported: SetTable,
    /// Established peers, by what they are sent (see [`crate::groups`]).
    pub(super) groups: FxHashMap<GroupId, UpdateGroup>,
    pub(super) next_group: GroupId,
    pub(super) members: Members,
    pub(super) exports: ExportCache,
    /// The path ids of ADD-PATH peers' Adj-RIB-Outs.
    pub(super) path_ids: PathIds,
    /// Best-path changes not yet sent (see [`Core::flush`]).
    pub(super) pending: Vec<BestChange>,
    /// `pending` holds more than one call's changes, so a slot may
    /// appear more than once.
    pub(super) pending_merged: bool,
    /// Peers whose routes go at the end of this batch of events (see
    /// [`Core::remove_leaving`]).
    pub(super) leaving: Vec<IpAddr>,
    /// The walk removing `leaving` peers' routes, while it takes more
    /// than one step (see [`Core::step_batch`]).
    pub(super) departure: Option<Departure>,
    /// Selection changes for the FIB, oldest first.
    best_out: VecDeque<Vec<BestChange>>,
    /// Events for a route monitor, queued only while one watches (see
    /// `monitor.rs`).
    pub(super) monitor: Option<Vec<MonitorEvent>>,
    /// The time of the input being handled: the core never reads the
    /// clock, it is told.
    pub(super) now: Instant,
}

impl<L: Links> std::fmt::Debug for Core<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("peers", &self.peers.len())
            .field("loc_rib", &self.rib.len())
            .field("update_groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl<L: Links> Core<L> {
    /// An instance with no peers, as of `now`.
    pub fn new(cfg: RibConfig, links: L, now: Instant) -> Self {
        Self {
            links,
            rib: Rib::new(cfg),
            peers: HashMap::new(),
            route_policy: None,
            recovery: None,
            timers: Timers::default(),
            exported: SetTable::default(),
            groups: FxHashMap::default(),
            next_group: 0,
            members: Members::default(),
            exports: ExportCache::default(),
            path_ids: PathIds::default(),
            pending: Vec::new(),
            pending_merged: false,
            leaving: Vec::new(),
            departure: None,
            best_out: VecDeque::new(),
            monitor: None,
            now,
        }
    }

    /// Carry out a request; what it changes goes out at once, except the
    /// routes of a removed peer, which leave a step at a time (see
    /// [`Core::step_batch`]).
    pub fn handle_request(&mut self, request: Request, now: Instant) {
        self.finish_departure();
        self.now = now;
        self.process_request(request);
        self.step_batch();
    }

    /// Take in one event of a peer's session. Events come in batches:
    /// call [`Core::step_batch`] or [`Core::finish_batch`] once the ready
    /// ones are in (or [`Core::batch_full`] says so), so that many small
    /// UPDATEs cost one pass over the peers and fill whole messages.
    pub fn handle_event(&mut self, address: IpAddr, event: PeerEvent, now: Instant) {
        self.finish_departure();
        self.now = now;
        self.process_event(address, event);
    }

    /// Enough changes wait that the batch should end now.
    pub fn batch_full(&self) -> bool {
        self.pending.len() >= CHANGE_BATCH
    }

    /// End a batch at once: the routes of sessions that ended go in one
    /// walk of the table, then every change goes to the peers and the
    /// FIB.
    pub fn finish_batch(&mut self) {
        while self.step_batch() {}
    }

    /// End a batch a step at a time: returns `true` while the routes of
    /// sessions that ended are still leaving. Between steps, take the
    /// best-path changes ([`Core::poll_best_changes`]) and let the peers'
    /// writers run: a full table leaving is a million changes, which then
    /// pass through a slice at a time instead of being held at once
    /// (60 MB). Any other input first completes the walk.
    pub fn step_batch(&mut self) -> bool {
        if self.departure.is_none() {
            self.start_departure();
        }
        if self.departure.is_some() {
            self.departure_step();
            if self.departure.is_some() {
                return true;
            }
        }
        self.flush();
        if self.exports.len() > 4 * (self.rib.attribute_sets() + 1024) {
            // Results for sets that left the Loc-RIB pile up.
            self.exports.clear(&mut self.exported);
        }
        // Between passes over the peers: set ids handed out during one
        // stay valid until it ends.
        self.exported.collect_unused();
        false
    }

    /// A departure is under way: [`Core::step_batch`] has more to do.
    pub fn busy(&self) -> bool {
        self.departure.is_some()
    }

    /// When [`Core::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.finish_departure();
        self.now = now;
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Restart(address, generation) => {
                    self.restart_timer_expired(address, generation);
                }
                Timer::RetryExport(address) => self.retry_export(address),
                Timer::RetryImport(address) => self.retry_import(address),
                Timer::Backlog(address) => self.check_backlog(address),
                Timer::Recovery => self.recovery_tick(),
            }
        }
        self.step_batch();
    }

    /// The next batch of selection changes for the FIB, oldest first.
    pub fn poll_best_changes(&mut self) -> Option<Vec<BestChange>> {
        self.best_out.pop_front()
    }

    /// Every peer's session status.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.peers.values().map(|p| p.link.status()).collect()
    }

    /// Loc-RIB: every prefix with its best path.
    pub fn routes(&self) -> Vec<(Prefix, RouteAttrs, Source)> {
        self.rib
            .iter_best()
            .map(|(p, _, path)| (p, (*path.route).clone(), self.rib.source_of(path)))
            .collect()
    }

    /// Every path of every prefix, selected ones first within a prefix.
    pub fn paths(&self) -> Vec<RibPath> {
        self.rib
            .iter_paths()
            .map(|(prefix, path, best)| RibPath {
                prefix,
                route: path.route.clone(),
                source: self.rib.source_of(path),
                best,
            })
            .collect()
    }

    /// See [`Rib::sole_paths`].
    pub fn sole_paths(&self, leaving: &HashSet<IpAddr>) -> HashMap<IpAddr, usize> {
        self.rib.sole_paths(leaving)
    }

    /// Route counts as of `now`.
    pub fn counts(&self, now: Instant) -> Counts {
        let peers = self
            .peers
            .iter()
            .map(|(address, entry)| {
                let advertised = entry
                    .group
                    .and_then(|id| self.groups.get(&id))
                    .map_or(0, |g| g.advertised_to(entry.member));
                let counts = PeerCounts {
                    accepted: self.rib.received_count(*address),
                    rejected: self.rib.rejected_count(*address),
                    advertised,
                    without_next_hop: entry.no_next_hop,
                    synced: entry.synced(now),
                    behind: entry.behind.is_some(),
                };
                (*address, counts)
            })
            .collect();
        Counts {
            loc_rib: self.rib.len(),
            peers,
            update_groups: self.groups.len(),
        }
    }

    pub fn memory(&self) -> super::Memory {
        super::Memory {
            rib: self.rib.memory(),
            adj_rib_out: self.groups.values().map(UpdateGroup::heap_bytes).sum(),
        }
    }

    /// Queue best-path changes for the FIB and every established peer;
    /// they go out when the batch ends.
    pub(super) fn propagate(&mut self, changes: Vec<BestChange>) {
        if changes.is_empty() {
            return;
        }
        if self.pending.is_empty() {
            self.pending = changes;
        } else {
            self.pending_merged = true;
            self.pending.extend(changes);
        }
    }

    /// Tell the FIB and every established peer about the queued changes.
    pub(super) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut changes = std::mem::take(&mut self.pending);
        if std::mem::take(&mut self.pending_merged) {
            keep_last_per_slot(&mut changes);
        }
        for id in self.group_ids() {
            self.advertise(id, &changes);
        }
        // The FIB wants the selection only.
        changes.retain(|c| c.best_changed);
        self.monitor_best(&changes);
        if !changes.is_empty() {
            tracing::debug!(changes = changes.len(), "best-path changes for the FIB");
            self.best_out.push_back(changes);
        }
        // Every Adj-RIB-Out has seen the withdrawals of emptied slots now:
        // the RIB may give them to new prefixes. Each group's pass withdrew
        // them (a group advances even while members are behind); debug
        // builds check, as the check costs a cache miss per slot and
        // group (a tenth of a full table's withdrawal).
        let emptied = self.rib.recycle();
        if !cfg!(debug_assertions) {
            return;
        }
        for slot in emptied {
            for group in self.groups.values_mut() {
                if group.adj_out.withdraw(&mut self.exported, slot).is_some()
                    || group.add_path_out.holds(slot)
                {
                    let peers = &group.members;
                    tracing::error!(
                        ?peers,
                        slot,
                        "a gone prefix was still advertised; forgotten without a withdrawal"
                    );
                    debug_assert!(false, "slot {slot} still advertised to {peers:?}");
                }
            }
        }
    }

    /// The RIB reports changes of every path, not only of the selected
    /// ones, while some peer may be sent every path.
    pub(super) fn track_all_paths_if_needed(&mut self) {
        let needed = self.peers.values().any(PeerEntry::sends_every_path);
        self.rib.set_track_all_paths(needed);
    }
}

/// Drop every change superseded by a later one for the same slot,
/// keeping the order of the rest: a slot's last change carries its whole
/// current state. A prefix that went and came back within the batch has
/// two slots (one emptied, one new), so its withdrawal still goes out
/// before its new announcement.
pub(super) fn keep_last_per_slot(changes: &mut Vec<BestChange>) {
    // Slot -> where its last change is in `kept`: a dropped change that
    // moved the selection passes that on, or the FIB would miss it.
    let mut last: FxHashMap<crate::rib::Slot, usize> = FxHashMap::default();
    last.reserve(changes.len());
    let mut kept: Vec<BestChange> = Vec::with_capacity(changes.len());
    for change in changes.drain(..).rev() {
        match last.get(&change.slot) {
            Some(&i) => kept[i].best_changed |= change.best_changed,
            None => {
                last.insert(change.slot, kept.len());
                kept.push(change);
            }
        }
    }
    kept.reverse();
    *changes = kept;
}
