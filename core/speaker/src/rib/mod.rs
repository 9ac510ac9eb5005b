//! Adj-RIB-In and Loc-RIB: every candidate path per prefix, the best path
//! (and ECMP set) per prefix, and the changes the FIB and Adj-RIB-Out need.
//!
//! Attribute sets are interned: a million routes that share a few thousand
//! sets hold a few thousand `Arc`s of attributes, not a million copies.

pub mod adj_out;
pub mod decision;
mod departures;
mod memory;
pub use departures::Departure;
pub use memory::RibMemory;
pub mod export;
mod index;
mod path;
mod peers;

use std::collections::{HashMap, HashSet};

use smallvec::SmallVec;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use starling_wire::{NextHop, Nlri, ParsedUpdate, PathAttributes, Prefix, Verdict};

use decision::{Candidate, DecisionOptions};
use index::PrefixIndex;
pub use path::{Path, Source, SourceRef};
use peers::PeerTable;
pub use peers::{PeerInfo, PeerTableFull};

use crate::policy::{
    Candidate as PolicyCandidate, Direction, RoutePolicy, Verdict as PolicyVerdict,
};

/// Attributes and next hop of a path: the unit that is interned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    pub attrs: PathAttributes,
    pub next_hop: NextHop,
}

/// Distinct attribute sets shared by `Arc`: the Loc-RIB interns what
/// peers send, each Adj-RIB-Out what it exports.
///
/// Hashed with foldhash, seeded per process: SipHash made interning a
/// tenth of the work of taking in eight full tables, and what a peer
/// sends cannot aim at a seed it does not know.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<RouteAttrs>, AttrHasher>);

/// The hasher for attribute sets (see [`Interner`]).
pub type AttrHasher = foldhash::fast::RandomState;

impl Interner {
    /// The shared copy of `route`, created if it is new.
    pub fn intern(&mut self, route: RouteAttrs) -> Arc<RouteAttrs> {
        if let Some(existing) = self.0.get(&route) {
            return existing.clone();
        }
        let arc = Arc::new(route);
        self.0.insert(arc.clone());
        arc
    }

    /// Forget sets nobody else holds any more.
    pub fn collect_garbage(&mut self) {
        self.0.retain(|a| Arc::strong_count(a) > 1);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// RIB-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Route-reflector cluster id; defaults to the router id when we have
    /// clients.
    pub cluster_id: Option<Ipv4Addr>,
    pub decision: DecisionOptions,
    /// LOCAL_PREF given to routes without one (eBGP-learned, local).
    pub default_local_pref: u32,
}

impl RibConfig {
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> Self {
        Self {
            local_as,
            router_id,
            cluster_id: None,
            decision: DecisionOptions::default(),
            default_local_pref: 100,
        }
    }

    pub fn cluster_id(&self) -> Ipv4Addr {
        self.cluster_id.unwrap_or(self.router_id)
    }
}

/// A destination's place in the RIB: stable while its prefix has paths,
/// reused once the prefix is gone and every Adj-RIB-Out has seen the
/// change (see [`Rib::recycle`]). Adj-RIB-Outs are indexed by it, so an
/// advertised route costs each peer 4 bytes and no second search.
pub type Slot = u32;

/// A change of the best path(s) for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestChange {
    pub prefix: Prefix,
    pub slot: Slot,
    /// The new best path first, then the rest of the ECMP set; empty when
    /// the prefix became unreachable.
    pub best: SmallVec<[Path; 1]>,
    /// The selection changed. `false` only while the RIB reports every
    /// path change (see [`Rib::set_track_all_paths`]): then a path that
    /// is not selected came, went or changed, which matters to peers sent
    /// every path (ADD-PATH) and to nobody else.
    pub best_changed: bool,
}

#[derive(Debug, Default)]
struct Destination {
    /// Every candidate path, the selected ones first: the best path, then
    /// the rest of the ECMP set. Nearly every prefix has one path: it is
    /// kept inline, no allocation.
    paths: SmallVec<[Path; 1]>,
}

impl Destination {
    fn selected(&self) -> &[Path] {
        let selected = self.paths.iter().take_while(|p| p.selected()).count();
        &self.paths[..selected]
    }

    fn best_paths(&self) -> SmallVec<[Path; 1]> {
        self.selected().iter().cloned().collect()
    }

    /// Run the decision process after `paths` changed; record a change
    /// when the selection differs from `old`, or in any case when every
    /// path change is tracked.
    fn decide(
        &mut self,
        old: &[Path],
        prefix: Prefix,
        slot: Slot,
        (peers, cfg, track_all_paths): (&PeerTable, &RibConfig, bool),
        changes: &mut Vec<BestChange>,
    ) {
        select_best(self, peers, cfg);
        let best_changed = self.selected() != old;
        if best_changed || track_all_paths {
            changes.push(BestChange {
                prefix,
                slot,
                best: self.best_paths(),
                best_changed,
            });
        }
    }
}

/// The routing information base.
#[derive(Debug)]
pub struct Rib {
    cfg: RibConfig,
    peers: PeerTable,
    interned: Interner,
    /// Where each prefix's destination lives in `destinations`.
    index: PrefixIndex,
    /// Destinations by slot. A table rather than the index's values: the
    /// index's nodes stay small, and Adj-RIB-Outs can name a route by its
    /// slot.
    destinations: Vec<Destination>,
    /// Slots free for new prefixes.
    free: Vec<Slot>,
    /// Slots emptied since the last [`Rib::recycle`]: their withdrawals
    /// may not have reached every Adj-RIB-Out yet.
    emptied: Vec<Slot>,
    /// Paths per peer. A peer going down scans the table instead of
    /// keeping an index per route: memory matters more than that scan.
    received: HashMap<IpAddr, usize>,
    /// Paths the import policy rejected, per peer: with `received`, what
    /// the peer sent (its Adj-RIB-In before policy).
    rejected: HashMap<IpAddr, HashSet<(Prefix, u32)>>,
    /// Report changes of paths that are not selected too.
    track_all_paths: bool,
}

impl Rib {
    pub fn new(cfg: RibConfig) -> Self {
        Self {
            cfg,
            peers: PeerTable::default(),
            interned: Interner::default(),
            index: PrefixIndex::default(),
            destinations: Vec::new(),
            free: Vec::new(),
            emptied: Vec::new(),
            received: HashMap::new(),
            rejected: HashMap::new(),
            track_all_paths: false,
        }
    }

    pub fn config(&self) -> &RibConfig {
        &self.cfg
    }

    /// Change the local AS, router id or cluster id of a running RIB.
    /// Paths already stored stay; sessions whose OPEN depends on the
    /// change are the caller's to reset.
    pub fn reconfigure(&mut self, cfg: RibConfig) {
        self.cfg = cfg;
    }

    /// Whether changes of paths that are not selected are reported too
    /// (as [`BestChange`]s with `best_changed: false`): needed while some
    /// peer is sent every path (ADD-PATH), and off otherwise, so a second
    /// full table that never wins costs no export work.
    pub fn set_track_all_paths(&mut self, on: bool) {
        self.track_all_paths = on;
    }

    /// Add a peer, or update what the RIB knows about it.
    pub fn set_peer(&mut self, info: PeerInfo) -> Result<(), PeerTableFull> {
        self.peers.set(info).map(drop)
    }

    pub fn peer(&self, address: IpAddr) -> Option<&PeerInfo> {
        self.peers.by_address(address)
    }

    /// The peer `path` came from; `None` for a local path.
    pub fn peer_of(&self, path: &Path) -> Option<&PeerInfo> {
        self.peers.by_number(path.source_ref())
    }

    /// Where `path` came from.
    pub fn source_of(&self, path: &Path) -> Source {
        self.peers.source(path.source_ref())
    }

    /// Number of prefixes with a best path.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// Paths received from `peer` (Adj-RIB-In after import checks).
    pub fn received_count(&self, peer: IpAddr) -> usize {
        self.received.get(&peer).copied().unwrap_or(0)
    }

    /// Paths from `peer` the import policy rejected (and the peer has not
    /// withdrawn).
    pub fn rejected_count(&self, peer: IpAddr) -> usize {
        self.rejected.get(&peer).map_or(0, HashSet::len)
    }

    /// Distinct interned attribute sets.
    pub fn attribute_sets(&self) -> usize {
        self.interned.len()
    }

    fn destination(&self, prefix: &Prefix) -> Option<&Destination> {
        self.index
            .get(prefix)
            .and_then(|slot| self.destinations.get(slot as usize))
    }

    /// The best path and ECMP set of `prefix`.
    pub fn best(&self, prefix: &Prefix) -> &[Path] {
        self.destination(prefix).map_or(&[], Destination::selected)
    }

    /// Every candidate path of `prefix`.
    pub fn paths(&self, prefix: &Prefix) -> &[Path] {
        self.destination(prefix).map_or(&[], |d| d.paths.as_slice())
    }

    /// Every candidate path in `slot`, the selected ones first; empty for
    /// a slot emptied since the last [`Rib::recycle`].
    pub fn paths_at(&self, slot: Slot) -> &[Path] {
        self.destinations
            .get(slot as usize)
            .map_or(&[], |d| d.paths.as_slice())
    }

    /// Every prefix with its slot and best path, IPv4 then IPv6, in
    /// address order.
    pub fn iter_best(&self) -> impl Iterator<Item = (Prefix, Slot, &Path)> {
        self.iter_destinations()
            .filter_map(|(p, slot, d)| d.selected().first().map(|path| (p, slot, path)))
    }

    /// Every path of every prefix, selected (best and ECMP) paths first,
    /// with whether each is selected.
    pub fn iter_paths(&self) -> impl Iterator<Item = (Prefix, &Path, bool)> {
        self.iter_destinations()
            .flat_map(|(p, _, d)| d.paths.iter().map(move |path| (p, path, path.selected())))
    }

    /// The best path of every slot `wanted` selects, with its prefix, in
    /// address order. The slot is tested before its destination is
    /// touched: a walk for a few changed slots reads the index, not the
    /// whole table.
    pub fn best_of_slots(
        &self,
        wanted: impl Fn(Slot) -> bool,
    ) -> impl Iterator<Item = (Prefix, Slot, &Path)> {
        self.index
            .iter()
            .filter(move |&(_, slot)| wanted(slot))
            .filter_map(|(p, slot)| {
                let best = self.destinations.get(slot as usize)?.selected().first()?;
                Some((p, slot, best))
            })
    }

    fn iter_destinations(&self) -> impl Iterator<Item = (Prefix, Slot, &Destination)> {
        self.index
            .iter()
            .filter_map(|(p, slot)| self.destinations.get(slot as usize).map(|d| (p, slot, d)))
    }

    fn intern(&mut self, route: RouteAttrs) -> Arc<RouteAttrs> {
        self.interned.intern(route)
    }

    /// Drop interned sets nobody uses any more.
    pub fn collect_garbage(&mut self) {
        self.interned.collect_garbage();
    }

    /// Apply an UPDATE received from `peer` with its RFC 7606 verdict.
    pub fn apply_update(&mut self, peer: IpAddr, parsed: &ParsedUpdate) -> Vec<BestChange> {
        self.apply_update_with(peer, parsed, None)
    }

    /// [`Rib::apply_update`] through an import policy: rejected routes are
    /// treated as withdrawn, replaced ones stored with the new attributes.
    pub fn apply_update_with(
        &mut self,
        peer: IpAddr,
        parsed: &ParsedUpdate,
        import: Option<&dyn RoutePolicy>,
    ) -> Vec<BestChange> {
        let mut changes = Vec::new();
        let mut tally = Tally::default();
        let update = &parsed.update;
        // A peer the RIB does not know has no paths to withdraw, and its
        // announcements are dropped (see `apply_reachable`).
        let source = self.peers.number(peer);
        let treat_as_withdraw = parsed.verdict == Verdict::TreatAsWithdraw;
        // Most peers have no rejected routes: skip the per-prefix lookup.
        let any_rejected = self.rejected.get(&peer).is_some_and(|s| !s.is_empty());
        let withdrawn: Vec<Prefix> = update
            .withdrawals(treat_as_withdraw)
            .map(|n| n.prefix)
            .collect();
        self.index.prefetch(&withdrawn);
        for nlri in update.withdrawals(treat_as_withdraw) {
            let path_id = nlri.path_id.unwrap_or(0);
            if any_rejected {
                self.unreject(peer, nlri.prefix, path_id);
            }
            if let Some(source) = source {
                tally.removed +=
                    usize::from(self.remove_path(source, nlri.prefix, path_id, &mut changes));
            }
        }
        if !treat_as_withdraw {
            self.apply_reachable(peer, update, import, any_rejected, &mut tally, &mut changes);
        }
        if tally.added != tally.removed {
            let count = self.received.entry(peer).or_default();
            *count = (*count + tally.added).saturating_sub(tally.removed);
        }
        changes
    }

    /// The announced half of an UPDATE: one attribute set (per next hop),
    /// checked and interned once, then each prefix.
    fn apply_reachable(
        &mut self,
        peer: IpAddr,
        update: &starling_wire::Update,
        import: Option<&dyn RoutePolicy>,
        any_rejected: bool,
        tally: &mut Tally,
        changes: &mut Vec<BestChange>,
    ) {
        let reachable: Vec<(&Nlri, NextHop)> = update
            .nlri
            .iter()
            .filter_map(|n| update.attributes.next_hop.map(|nh| (n, NextHop::V4(nh))))
            .chain(
                update
                    .mp_reach
                    .iter()
                    .flat_map(|m| m.nlri.iter().map(move |n| (n, m.next_hop))),
            )
            .collect();
        if reachable.is_empty() {
            return;
        }
        let Some(source) = self.peers.number(peer) else {
            return;
        };
        let Some(info) = self.peers.by_number(source).cloned() else {
            return;
        };
        let mut attrs = update.attributes.clone();
        attrs.canonicalize();
        attrs.next_hop = None;
        if !self.eligible(&info, &attrs) {
            // A looped route is withdrawn silently (RFC 4271 §9.1.2).
            for (nlri, _) in reachable {
                let path_id = nlri.path_id.unwrap_or(0);
                tally.removed +=
                    usize::from(self.remove_path(source, nlri.prefix, path_id, changes));
            }
            return;
        }
        if info.ebgp && attrs.local_pref.is_none() {
            attrs.local_pref = Some(self.cfg.default_local_pref);
        }
        // Interned per next hop: usually one per UPDATE.
        let mut last: Option<(NextHop, Arc<RouteAttrs>)> = None;
        let routes: Vec<(&Nlri, Arc<RouteAttrs>)> = reachable
            .into_iter()
            .map(|(nlri, next_hop)| {
                let route = match &last {
                    Some((nh, r)) if *nh == next_hop => r.clone(),
                    _ => {
                        let r = self.intern(RouteAttrs {
                            attrs: attrs.clone(),
                            next_hop,
                        });
                        last = Some((next_hop, r.clone()));
                        r
                    }
                };
                (nlri, route)
            })
            .collect();
        let verdicts = import.map(|policy| {
            let candidates: Vec<PolicyCandidate<'_>> = routes
                .iter()
                .map(|(nlri, route)| PolicyCandidate {
                    prefix: nlri.prefix,
                    route,
                    from_peer: true,
                })
                .collect();
            policy
                .evaluate(peer, Direction::Import, &candidates)
                .unwrap_or_else(|e| {
                    tracing::warn!(%peer, routes = candidates.len(), "import policy failed, routes rejected: {e}");
                    vec![PolicyVerdict::Reject; candidates.len()]
                })
        });
        let prefixes: Vec<Prefix> = routes.iter().map(|(nlri, _)| nlri.prefix).collect();
        self.index.prefetch(&prefixes);
        for (i, (nlri, route)) in routes.into_iter().enumerate() {
            let path_id = nlri.path_id.unwrap_or(0);
            let route = match verdicts.as_ref().and_then(|v| v.get(i)) {
                None | Some(PolicyVerdict::Accept) => route,
                Some(PolicyVerdict::Reject) => {
                    self.rejected
                        .entry(peer)
                        .or_default()
                        .insert((nlri.prefix, path_id));
                    tally.removed +=
                        usize::from(self.remove_path(source, nlri.prefix, path_id, changes));
                    continue;
                }
                Some(PolicyVerdict::Replace(new)) => {
                    let mut new = (**new).clone();
                    new.canonicalize();
                    new.next_hop = None;
                    self.intern(RouteAttrs {
                        attrs: new,
                        next_hop: route.next_hop,
                    })
                }
            };
            if any_rejected || verdicts.is_some() {
                self.unreject(peer, nlri.prefix, path_id);
            }
            let path = Path::new(source, path_id, route);
            tally.added += usize::from(self.insert_path(nlri.prefix, path, changes));
        }
    }

    /// Forget a rejected path: the peer withdrew or replaced it.
    fn unreject(&mut self, peer: IpAddr, prefix: Prefix, path_id: u32) {
        if let Some(set) = self.rejected.get_mut(&peer) {
            set.remove(&(prefix, path_id));
        }
    }

    /// Loop checks of RFC 4271 §9.1.2 and RFC 4456 §8.
    fn eligible(&self, peer: &PeerInfo, attrs: &PathAttributes) -> bool {
        let own_as = attrs
            .as_path
            .as_ref()
            .map_or(0, |p| p.count(self.cfg.local_as));
        if own_as > peer.allow_own_as {
            return false;
        }
        if attrs.originator_id == Some(self.cfg.router_id) {
            return false;
        }
        !attrs.cluster_list.contains(&self.cfg.cluster_id())
    }

    /// Originate `prefix` locally.
    pub fn originate(
        &mut self,
        prefix: Prefix,
        mut attrs: PathAttributes,
        next_hop: NextHop,
    ) -> Vec<BestChange> {
        attrs.canonicalize();
        attrs.local_pref.get_or_insert(self.cfg.default_local_pref);
        let route = self.intern(RouteAttrs { attrs, next_hop });
        let mut changes = Vec::new();
        self.insert_path(prefix, Path::new(SourceRef::LOCAL, 0, route), &mut changes);
        changes
    }

    /// Stop originating `prefix`.
    pub fn withdraw_local(&mut self, prefix: Prefix) -> Vec<BestChange> {
        let mut changes = Vec::new();
        self.remove_path(SourceRef::LOCAL, prefix, 0, &mut changes);
        changes
    }

    /// Slots emptied since the last call, now free for new prefixes. Call
    /// it once every Adj-RIB-Out has seen the changes so far (the emptied
    /// slots' withdrawals); the caller may use the list to check that.
    pub fn recycle(&mut self) -> Vec<Slot> {
        let emptied = std::mem::take(&mut self.emptied);
        self.free.extend_from_slice(&emptied);
        emptied
    }

    /// (prefix, slot, path id) of every path from `peer` that `keep`
    /// selects.
    fn keys_of(
        &self,
        source: SourceRef,
        keep: impl Fn((Prefix, &Path)) -> bool,
    ) -> Vec<(Prefix, Slot, u32)> {
        self.iter_destinations()
            .flat_map(|(prefix, slot, d)| d.paths.iter().map(move |p| (prefix, slot, p)))
            .filter(|(_, _, p)| p.source_ref() == source)
            .filter(|&(prefix, _, p)| keep((prefix, p)))
            .map(|(prefix, slot, p)| (prefix, slot, p.path_id))
            .collect()
    }

    /// Add or replace `path` for `prefix`; `true` when it is a new path.
    fn insert_path(&mut self, prefix: Prefix, path: Path, changes: &mut Vec<BestChange>) -> bool {
        let Self {
            index,
            destinations,
            free,
            ..
        } = self;
        let (slot, _) = index.get_or_insert_with(prefix, || {
            free.pop().unwrap_or_else(|| {
                destinations.push(Destination::default());
                (destinations.len() - 1) as Slot
            })
        });
        let d = &mut self.destinations[slot as usize];
        let at = d
            .paths
            .iter()
            .position(|p| p.same_key(path.source_ref(), path.path_id));
        if let Some(i) = at
            && d.paths[i] == path
        {
            return false;
        }
        let added = at.is_none();
        if self.cfg.decision.max_paths <= 1
            && at != Some(0)
            && d.paths.first().is_some_and(Path::selected)
        {
            // One best path, and it stays in place: the new path needs
            // comparing with it alone, unless they tie before MED. With a
            // table from each of N peers this saves N decisions over up
            // to N paths per prefix.
            let best = rank_of(&d.paths[0], &self.cfg);
            let new = rank_of(&path, &self.cfg);
            if new != best {
                let wins = new > best;
                let mut path = path;
                path.set_selected(wins);
                match at {
                    Some(i) if wins => {
                        d.paths.remove(i);
                        d.paths.insert(0, path);
                    }
                    Some(i) => d.paths[i] = path,
                    None if wins => d.paths.insert(0, path),
                    None => d.paths.push(path),
                }
                if wins {
                    d.paths[1].set_selected(false);
                }
                if wins || self.track_all_paths {
                    changes.push(BestChange {
                        prefix,
                        slot,
                        best: d.best_paths(),
                        best_changed: wins,
                    });
                }
                return added;
            }
        }
        let old = d.best_paths();
        match at {
            Some(i) => d.paths[i] = path,
            None => d.paths.push(path),
        }
        let inputs = (&self.peers, &self.cfg, self.track_all_paths);
        d.decide(&old, prefix, slot, inputs, changes);
        added
    }

    /// Remove one path; `true` when there was one.
    fn remove_path(
        &mut self,
        source: SourceRef,
        prefix: Prefix,
        path_id: u32,
        changes: &mut Vec<BestChange>,
    ) -> bool {
        match self.index.get(&prefix) {
            Some(slot) => self.remove_at(source, prefix, slot, path_id, changes),
            None => false,
        }
    }

    fn remove_at(
        &mut self,
        source: SourceRef,
        prefix: Prefix,
        slot: Slot,
        path_id: u32,
        changes: &mut Vec<BestChange>,
    ) -> bool {
        let Some(d) = self.destinations.get_mut(slot as usize) else {
            return false;
        };
        let Some(i) = d.paths.iter().position(|p| p.same_key(source, path_id)) else {
            return false;
        };
        let old = d.best_paths();
        d.paths.remove(i);
        if d.paths.len() <= 1 && d.paths.spilled() {
            // Back inline: a table that once had a second path for many
            // prefixes does not keep their heap blocks.
            d.paths.shrink_to_fit();
        }
        let inputs = (&self.peers, &self.cfg, self.track_all_paths);
        d.decide(&old, prefix, slot, inputs, changes);
        if d.paths.is_empty() {
            self.index.remove(&prefix);
            self.emptied.push(slot);
        }
        true
    }
}

/// Paths added and removed by one call, for the per-peer counts.
#[derive(Debug, Default)]
struct Tally {
    added: usize,
    removed: usize,
}

/// Run the decision process over one destination's paths and move the
/// selected ones to the front. A free function so callers holding
/// `&mut Destination` need no second lookup.
/// `path`'s place before MED (see [`decision::rank`]).
fn rank_of(path: &Path, cfg: &RibConfig) -> decision::Rank {
    let attrs = &path.route.attrs;
    decision::rank(
        path.is_local(),
        attrs.local_pref.unwrap_or(cfg.default_local_pref),
        attrs,
    )
}

fn select_best(d: &mut Destination, peers: &PeerTable, cfg: &RibConfig) {
    if d.paths.len() <= 1 {
        // The common case needs no decision process.
        if let Some(only) = d.paths.first_mut() {
            only.set_selected(true);
        }
        return;
    }
    let candidates: Vec<Candidate<'_>> = d
        .paths
        .iter()
        .map(|p| {
            let peer = peers.by_number(p.source_ref());
            Candidate {
                attrs: &p.route.attrs,
                local_pref: p.route.attrs.local_pref.unwrap_or(cfg.default_local_pref),
                ebgp: peer.is_some_and(|i| i.ebgp),
                peer_id: peer.map_or(cfg.router_id, |i| i.router_id),
                peer_address: peer.map_or(IpAddr::from([0, 0, 0, 0]), |i| i.address),
                local: p.is_local(),
            }
        })
        .collect();
    let selected = decision::select(&candidates, cfg.decision);
    drop(candidates);
    let mut unsorted: SmallVec<[Option<Path>; 4]> = d.paths.drain(..).map(Some).collect();
    for &i in &selected {
        if let Some(path) = unsorted.get_mut(i).and_then(Option::take) {
            d.paths.push(path);
        }
    }
    for path in &mut d.paths {
        path.set_selected(true);
    }
    d.paths
        .extend(unsorted.into_iter().flatten().map(|mut path| {
            path.set_selected(false);
            path
        }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_with_one_path_holds_it_inline_in_24_bytes() {
        assert_eq!(std::mem::size_of::<Destination>(), 24);
        let d = Destination {
            paths: smallvec::smallvec![Path::new(
                SourceRef::LOCAL,
                0,
                Arc::new(RouteAttrs {
                    attrs: PathAttributes::default(),
                    next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
                }),
            )],
        };
        assert!(!d.paths.spilled());
    }
}
