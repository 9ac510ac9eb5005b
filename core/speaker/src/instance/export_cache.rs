//! Export results kept across passes, and the export of one path towards
//! one group.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::policy::Verdict as PolicyVerdict;
use crate::rib::adj_out::{SetId, SetTable};
use crate::rib::export::{ExportTarget, Withheld, export};
use crate::rib::{Path, Rib, RouteAttrs, Source, SourceRef};

/// A best path's identity for export caching: its source and its interned
/// attribute set (compared by address, never dereferenced).
type ExportKey = (SourceRef, usize);

/// What export made of a path: the set it goes out with, or why not.
type Exported = Result<SetId, Withheld>;

/// Export towards one peer for one pass: the protocol's rules on what
/// policy let through, cached per class.
pub(super) struct Exporter<'a> {
    pub(super) rib: &'a Rib,
    pub(super) sets: &'a mut SetTable,
    pub(super) cache: &'a mut ExportCache,
    pub(super) target: &'a ExportTarget,
    pub(super) class: u32,
    /// The last result: consecutive paths usually come from one UPDATE.
    pub(super) last: Option<(ExportKey, Exported)>,
    /// Routes withheld in this pass for want of a next hop.
    pub(super) no_next_hop: u64,
}

impl Exporter<'_> {
    /// The set `path` is exported with, or `None` if it is not; never to
    /// `split_horizon`'s own routes.
    pub(super) fn export(
        &mut self,
        split_horizon: Option<IpAddr>,
        path: &Path,
        verdict: Option<PolicyVerdict>,
    ) -> Option<SetId> {
        let result = self.decide(split_horizon, path, verdict);
        if result == Err(Withheld::NoNextHop) {
            self.no_next_hop += 1;
        }
        result.ok()
    }

    fn decide(
        &mut self,
        split_horizon: Option<IpAddr>,
        path: &Path,
        verdict: Option<PolicyVerdict>,
    ) -> Exported {
        let rib = self.rib;
        let source_info = rib.peer_of(path);
        if split_horizon.is_some_and(|peer| source_info.is_some_and(|i| i.address == peer)) {
            return Err(Withheld::Rules);
        }
        let source = source_info.map_or(Source::Local, |i| Source::Peer(i.address));
        match verdict {
            Some(PolicyVerdict::Reject) => Err(Withheld::Rules),
            Some(PolicyVerdict::Replace(attrs)) => {
                let changed = RouteAttrs {
                    attrs: *attrs,
                    next_hop: path.route.next_hop,
                };
                export(rib.config(), source, source_info, &changed, self.target)
                    .map(|r| self.sets.intern(r))
            }
            None | Some(PolicyVerdict::Accept) => {
                let key = (path.source_ref(), Arc::as_ptr(&path.route) as usize);
                if let Some((k, v)) = self.last
                    && k == key
                {
                    return v;
                }
                let target = self.target;
                let result = self.cache.get_or_insert_with(
                    (self.class, key),
                    &path.route,
                    self.sets,
                    |sets| {
                        export(rib.config(), source, source_info, &path.route, target)
                            .map(|r| sets.intern(r))
                    },
                );
                self.last = Some((key, result));
                result
            }
        }
    }
}

/// Export results by (class, source, Loc-RIB attribute set), kept across
/// passes: a reflector's clients ask for the same ones over and over, and
/// a peer that catches up asks again for what others already got. Peers
/// whose export target differs only in address and router id are in one
/// class (split horizon, the only rule that looks at the address, is
/// checked before the cache). Cleared whenever an input of export
/// changes (policy, configuration, a peer's session parameters), and when
/// it outgrows the Loc-RIB's attribute sets.
#[derive(Default)]
pub(super) struct ExportCache {
    classes: HashMap<ExportTarget, u32>,
    /// Each entry holds the Loc-RIB set, so its address (the key) cannot
    /// be reused while cached, and retains its exported set in the
    /// [`SetTable`], so the id cannot be dropped either.
    /// Keyed by class, source and an address: nothing a peer chooses, so
    /// a fast hash without flooding resistance will do.
    results: FxHashMap<(u32, ExportKey), (Arc<RouteAttrs>, Exported)>,
}

impl ExportCache {
    pub(super) fn class(&mut self, target: &ExportTarget) -> u32 {
        let mut key = target.clone();
        // A third-party next hop depends on the peer's address.
        if key.shared_subnet.is_none() {
            key.info.address = IpAddr::from([0, 0, 0, 0]);
        }
        key.info.router_id = Ipv4Addr::UNSPECIFIED;
        let next = self.classes.len() as u32;
        *self.classes.entry(key).or_insert(next)
    }

    fn get_or_insert_with(
        &mut self,
        key: (u32, ExportKey),
        route: &Arc<RouteAttrs>,
        sets: &mut SetTable,
        export: impl FnOnce(&mut SetTable) -> Exported,
    ) -> Exported {
        if let Some((_, id)) = self.results.get(&key) {
            return *id;
        }
        let id = export(sets);
        if let Ok(id) = id {
            sets.retain(id);
        }
        self.results.insert(key, (route.clone(), id));
        id
    }

    /// How many results are kept.
    pub(super) fn len(&self) -> usize {
        self.results.len()
    }

    /// Forget everything (an input of export changed).
    pub(super) fn clear(&mut self, sets: &mut SetTable) {
        for (_, (_, id)) in self.results.drain() {
            if let Ok(id) = id {
                sets.release(id);
            }
        }
        self.classes.clear();
    }
}
