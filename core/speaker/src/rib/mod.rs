//! Adj-RIB-In and Loc-RIB: every candidate path per prefix, the best path
//! (and ECMP set) per prefix, and the changes the FIB and Adj-RIB-Out need.
//!
//! Attribute sets are interned: a million routes that share a few thousand
//! sets hold a few thousand `Arc`s of attributes, not a million copies.

pub mod decision;
pub mod export;

use std::collections::{BTreeMap, HashMap, HashSet};

use smallvec::SmallVec;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use starling_wire::{NextHop, Nlri, ParsedUpdate, PathAttributes, Prefix, Verdict};

use decision::{Candidate, DecisionOptions};

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
#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<RouteAttrs>>);

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

/// Where a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Local,
    Peer(IpAddr),
}

/// One candidate path for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub source: Source,
    /// ADD-PATH path identifier as received (0 without ADD-PATH).
    pub path_id: u32,
    pub route: Arc<RouteAttrs>,
    /// Kept through a graceful restart until the peer refreshes it.
    pub stale: bool,
}

/// What the RIB needs to know about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub address: IpAddr,
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub ebgp: bool,
    /// The peer is our route-reflector client.
    pub rr_client: bool,
    /// How often our own AS may appear in a received AS_PATH.
    pub allow_own_as: usize,
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

/// A change of the best path(s) for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestChange {
    pub prefix: Prefix,
    /// The new best path first, then the rest of the ECMP set; empty when
    /// the prefix became unreachable.
    pub best: Vec<Path>,
}

#[derive(Debug, Default)]
struct Destination {
    /// Nearly every prefix has one path: keep it inline, no allocation.
    paths: SmallVec<[Path; 1]>,
    /// Index into `paths` of the best path; valid only until `paths`
    /// changes, so callers take `best_paths()` first.
    best: Option<u32>,
    /// The rest of the ECMP set (empty, and unallocated, without multipath).
    ecmp: Box<[u32]>,
}

impl Destination {
    fn best_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.best.iter().chain(&self.ecmp).map(|&i| i as usize)
    }

    fn best_paths(&self) -> Vec<Path> {
        self.best_indices()
            .filter_map(|i| self.paths.get(i).cloned())
            .collect()
    }
}

/// The routing information base.
#[derive(Debug)]
pub struct Rib {
    cfg: RibConfig,
    peers: HashMap<IpAddr, PeerInfo>,
    interned: Interner,
    /// A B-tree rather than a hash table: no doubling spike when a full
    /// table grows it, less slack per entry, and ordered output for free.
    destinations: BTreeMap<Prefix, Destination>,
    /// Paths per peer. A peer going down scans the table instead of
    /// keeping an index per route: memory matters more than that scan.
    received: HashMap<IpAddr, usize>,
    /// Paths the import policy rejected, per peer: with `received`, what
    /// the peer sent (its Adj-RIB-In before policy).
    rejected: HashMap<IpAddr, HashSet<(Prefix, u32)>>,
}

impl Rib {
    pub fn new(cfg: RibConfig) -> Self {
        Self {
            cfg,
            peers: HashMap::new(),
            interned: Interner::default(),
            destinations: BTreeMap::new(),
            received: HashMap::new(),
            rejected: HashMap::new(),
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

    pub fn set_peer(&mut self, info: PeerInfo) {
        self.peers.insert(info.address, info);
    }

    pub fn peer(&self, address: IpAddr) -> Option<&PeerInfo> {
        self.peers.get(&address)
    }

    /// Number of prefixes with a best path.
    pub fn len(&self) -> usize {
        self.destinations
            .values()
            .filter(|d| d.best.is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Forget a rejected path: the peer withdrew or replaced it.
    fn unreject(&mut self, peer: IpAddr, prefix: Prefix, path_id: u32) {
        if let Some(set) = self.rejected.get_mut(&peer) {
            set.remove(&(prefix, path_id));
        }
    }

    /// Distinct interned attribute sets.
    pub fn attribute_sets(&self) -> usize {
        self.interned.len()
    }

    /// The best path and ECMP set of `prefix`.
    pub fn best(&self, prefix: &Prefix) -> Vec<&Path> {
        self.destinations
            .get(prefix)
            .map(|d| d.best_indices().filter_map(|i| d.paths.get(i)).collect())
            .unwrap_or_default()
    }

    /// Every candidate path of `prefix`.
    pub fn paths(&self, prefix: &Prefix) -> &[Path] {
        self.destinations
            .get(prefix)
            .map_or(&[], |d| d.paths.as_slice())
    }

    /// Every prefix with its best path, in no particular order.
    pub fn iter_best(&self) -> impl Iterator<Item = (&Prefix, &Path)> {
        self.destinations.iter().filter_map(|(p, d)| {
            d.best
                .and_then(|i| d.paths.get(i as usize))
                .map(|path| (p, path))
        })
    }

    /// Every path of every prefix, best (and ECMP) paths first, with
    /// whether each is selected.
    pub fn iter_paths(&self) -> impl Iterator<Item = (&Prefix, &Path, bool)> {
        self.destinations.iter().flat_map(|(p, d)| {
            let selected: SmallVec<[usize; 2]> = d.best_indices().collect();
            let rest = (0..d.paths.len()).filter(move |i| !d.best_indices().any(|b| b == *i));
            selected
                .into_iter()
                .map(|i| (i, true))
                .chain(rest.map(|i| (i, false)))
                .filter_map(move |(i, best)| d.paths.get(i).map(|path| (p, path, best)))
        })
    }

    /// For each peer in `leaving`, how many prefixes have paths only from
    /// `leaving` peers: what closing all of them now would make
    /// unreachable. Sessions being replaced wait for this to reach zero
    /// (make-before-break), so it walks the table: only call it while
    /// sessions are leaving.
    pub fn sole_paths(&self, leaving: &HashSet<IpAddr>) -> HashMap<IpAddr, usize> {
        let from_leaving = |p: &Path| matches!(p.source, Source::Peer(a) if leaving.contains(&a));
        let mut counts: HashMap<IpAddr, usize> = leaving.iter().map(|a| (*a, 0)).collect();
        for d in self.destinations.values() {
            if d.paths.is_empty() || !d.paths.iter().all(from_leaving) {
                continue;
            }
            let mut seen: SmallVec<[IpAddr; 2]> = SmallVec::new();
            for p in &d.paths {
                if let Source::Peer(a) = p.source
                    && !seen.contains(&a)
                {
                    seen.push(a);
                    *counts.entry(a).or_default() += 1;
                }
            }
        }
        counts
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
        let update = &parsed.update;
        let treat_as_withdraw = parsed.verdict == Verdict::TreatAsWithdraw;
        for nlri in update.withdrawals(treat_as_withdraw) {
            self.unreject(peer, nlri.prefix, nlri.path_id.unwrap_or(0));
            self.remove_path(Source::Peer(peer), nlri, &mut changes);
        }
        if treat_as_withdraw {
            return changes;
        }
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
            return changes;
        }
        let Some(info) = self.peers.get(&peer).cloned() else {
            return changes;
        };
        let mut attrs = update.attributes.clone();
        attrs.canonicalize();
        attrs.next_hop = None;
        if !self.eligible(&info, &attrs) {
            // A looped route is withdrawn silently (RFC 4271 §9.1.2).
            for (nlri, _) in reachable {
                self.remove_path(Source::Peer(peer), nlri, &mut changes);
            }
            return changes;
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
        for (i, (nlri, route)) in routes.into_iter().enumerate() {
            let path_id = nlri.path_id.unwrap_or(0);
            let route = match verdicts.as_ref().and_then(|v| v.get(i)) {
                None | Some(PolicyVerdict::Accept) => route,
                Some(PolicyVerdict::Reject) => {
                    self.rejected
                        .entry(peer)
                        .or_default()
                        .insert((nlri.prefix, path_id));
                    self.remove_path(Source::Peer(peer), nlri, &mut changes);
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
            self.unreject(peer, nlri.prefix, path_id);
            let path = Path {
                source: Source::Peer(peer),
                path_id,
                route,
                stale: false,
            };
            self.insert_path(nlri.prefix, path, &mut changes);
        }
        changes
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
        self.insert_path(
            prefix,
            Path {
                source: Source::Local,
                path_id: 0,
                route,
                stale: false,
            },
            &mut changes,
        );
        changes
    }

    /// Stop originating `prefix`.
    pub fn withdraw_local(&mut self, prefix: Prefix) -> Vec<BestChange> {
        let mut changes = Vec::new();
        self.remove_path(Source::Local, &Nlri::new(prefix), &mut changes);
        changes
    }

    /// Remove everything `peer` sent (session down without graceful restart).
    pub fn peer_down(&mut self, peer: IpAddr) -> Vec<BestChange> {
        let mut changes = Vec::new();
        for (prefix, path_id) in self.keys_of(peer, |_| true) {
            self.remove_keyed(Source::Peer(peer), prefix, path_id, &mut changes);
        }
        self.received.remove(&peer);
        self.rejected.remove(&peer);
        changes
    }

    /// Graceful restart helper (RFC 4724 §4.2): keep the peer's paths but
    /// mark them stale.
    pub fn mark_stale(&mut self, peer: IpAddr) {
        for d in self.destinations.values_mut() {
            for p in d
                .paths
                .iter_mut()
                .filter(|p| p.source == Source::Peer(peer))
            {
                p.stale = true;
            }
        }
    }

    /// End-of-RIB or restart timer expiry: remove paths still stale, of
    /// one family or of all.
    pub fn sweep_stale(
        &mut self,
        peer: IpAddr,
        family: Option<starling_wire::Family>,
    ) -> Vec<BestChange> {
        let mut changes = Vec::new();
        let stale = self.keys_of(peer, |(prefix, path)| {
            path.stale && family.is_none_or(|f| f.afi == prefix.afi())
        });
        for (prefix, id) in stale {
            self.remove_path(
                Source::Peer(peer),
                &Nlri {
                    prefix,
                    path_id: Some(id),
                },
                &mut changes,
            );
        }
        changes
    }

    /// (prefix, path id) of every path from `peer` that `keep` selects.
    fn keys_of(&self, peer: IpAddr, keep: impl Fn((&Prefix, &Path)) -> bool) -> Vec<(Prefix, u32)> {
        self.destinations
            .iter()
            .flat_map(|(prefix, d)| d.paths.iter().map(move |p| (prefix, p)))
            .filter(|(_, p)| p.source == Source::Peer(peer))
            .filter(|&(prefix, p)| keep((prefix, p)))
            .map(|(prefix, p)| (*prefix, p.path_id))
            .collect()
    }

    fn insert_path(&mut self, prefix: Prefix, path: Path, changes: &mut Vec<BestChange>) {
        let d = self.destinations.entry(prefix).or_default();
        let old = d.best_paths();
        match d
            .paths
            .iter_mut()
            .find(|p| p.source == path.source && p.path_id == path.path_id)
        {
            Some(existing) if *existing == path => return,
            Some(existing) => *existing = path,
            None => {
                if let Source::Peer(peer) = path.source {
                    *self.received.entry(peer).or_default() += 1;
                }
                d.paths.push(path);
            }
        }
        // A path was added or replaced: the destination cannot be empty,
        // so no second lookup is needed.
        select_best(d, &self.peers, &self.cfg);
        let new = d.best_paths();
        if old != new {
            changes.push(BestChange { prefix, best: new });
        }
    }

    fn remove_path(&mut self, source: Source, nlri: &Nlri, changes: &mut Vec<BestChange>) {
        self.remove_keyed(source, nlri.prefix, nlri.path_id.unwrap_or(0), changes);
    }

    fn remove_keyed(
        &mut self,
        source: Source,
        prefix: Prefix,
        path_id: u32,
        changes: &mut Vec<BestChange>,
    ) {
        let Some(d) = self.destinations.get_mut(&prefix) else {
            return;
        };
        let old = d.best_paths();
        let before = d.paths.len();
        d.paths
            .retain(|p| !(p.source == source && p.path_id == path_id));
        if d.paths.len() != before {
            if let Source::Peer(peer) = source
                && let Some(n) = self.received.get_mut(&peer)
            {
                *n = n.saturating_sub(1);
            }
            self.decide(prefix, old, changes);
        }
    }

    /// Re-run the decision process for `prefix` after its paths changed;
    /// record a change if the best path or ECMP set differs from `old`.
    fn decide(&mut self, prefix: Prefix, old: Vec<Path>, changes: &mut Vec<BestChange>) {
        let Some(d) = self.destinations.get_mut(&prefix) else {
            return;
        };
        let now_empty = select_best(d, &self.peers, &self.cfg);
        let new = d.best_paths();
        if now_empty {
            self.destinations.remove(&prefix);
        }
        if old != new {
            changes.push(BestChange { prefix, best: new });
        }
    }
}

/// Run the decision process over one destination's paths; returns whether
/// it has none left. A free function so callers holding `&mut Destination`
/// need no second lookup.
fn select_best(d: &mut Destination, peers: &HashMap<IpAddr, PeerInfo>, cfg: &RibConfig) -> bool {
    if d.paths.len() <= 1 {
        // The common case needs no decision process.
        d.best = (!d.paths.is_empty()).then_some(0);
        d.ecmp = Box::default();
        return d.paths.is_empty();
    }
    let candidates: Vec<Candidate<'_>> = d
        .paths
        .iter()
        .map(|p| {
            let peer = match p.source {
                Source::Peer(a) => peers.get(&a),
                Source::Local => None,
            };
            Candidate {
                attrs: &p.route.attrs,
                local_pref: p.route.attrs.local_pref.unwrap_or(cfg.default_local_pref),
                ebgp: peer.is_some_and(|i| i.ebgp),
                peer_id: peer.map_or(cfg.router_id, |i| i.router_id),
                peer_address: peer.map_or(IpAddr::from([0, 0, 0, 0]), |i| i.address),
                local: p.source == Source::Local,
            }
        })
        .collect();
    let selected = decision::select(&candidates, cfg.decision);
    d.best = selected.first().map(|&i| i as u32);
    d.ecmp = selected.iter().skip(1).map(|&i| i as u32).collect();
    false
}
