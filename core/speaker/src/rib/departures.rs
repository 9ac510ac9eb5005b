//! When sessions end: everything a peer sent removed at once (many peers
//! in one walk), kept as stale for a graceful restart and swept later, and
//! what closing a set of sessions would leave unreachable.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use smallvec::SmallVec;

use super::{BestChange, Path, Rib, SourceRef};

/// Peers' paths being removed, a step at a time (see
/// [`Rib::begin_departure`]).
#[derive(Debug)]
pub struct Departure {
    leaving: SmallVec<[SourceRef; 4]>,
    /// Index entries walked so far.
    visited: usize,
    /// Some destination lost its last path: the walk's end drops those
    /// from the index. (Not a count of `Rib::emptied`: the caller may
    /// recycle the emptied slots between steps.)
    emptied_any: bool,
    done: bool,
}

impl Departure {
    /// The walk is over: every leaving path is gone.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Rib {
    /// For each peer in `leaving`, how many prefixes have paths only from
    /// `leaving` peers: what closing all of them now would make
    /// unreachable. Sessions being replaced wait for this to reach zero
    /// (make-before-break), so it walks the table: only call it while
    /// sessions are leaving.
    pub fn sole_paths(&self, leaving: &HashSet<IpAddr>) -> HashMap<IpAddr, usize> {
        let numbers: HashMap<SourceRef, IpAddr> = leaving
            .iter()
            .filter_map(|&a| Some((self.peers.number(a)?, a)))
            .collect();
        let from_leaving = |p: &Path| numbers.contains_key(&p.source_ref());
        let mut counts: HashMap<IpAddr, usize> = leaving.iter().map(|a| (*a, 0)).collect();
        for d in &self.destinations {
            if d.paths.is_empty() || !d.paths.iter().all(from_leaving) {
                continue;
            }
            let mut seen: SmallVec<[SourceRef; 2]> = SmallVec::new();
            for p in &d.paths {
                let number = p.source_ref();
                if !seen.contains(&number)
                    && let Some(&address) = numbers.get(&number)
                {
                    seen.push(number);
                    *counts.entry(address).or_default() += 1;
                }
            }
        }
        counts
    }

    /// Remove everything `peer` sent (session down without graceful restart).
    pub fn peer_down(&mut self, peer: IpAddr) -> Vec<BestChange> {
        self.peers_down(&[peer])
    }

    /// Remove everything `peers` sent, in one walk of the table: a
    /// hundred sessions ending together cost one walk, not a hundred.
    pub fn peers_down(&mut self, peers: &[IpAddr]) -> Vec<BestChange> {
        let mut departure = self.begin_departure(peers);
        let mut changes = Vec::new();
        while !departure.is_done() {
            changes.extend(self.continue_departure(&mut departure, usize::MAX));
        }
        changes
    }

    /// Start removing everything `peers` sent, to be walked in steps by
    /// [`Rib::continue_departure`]: a full table leaving at once is a
    /// million changes, which the caller can pass on a slice at a time
    /// instead of holding them all (60 MB).
    pub fn begin_departure(&mut self, peers: &[IpAddr]) -> Departure {
        for peer in peers {
            self.received.remove(peer);
            self.rejected.remove(peer);
        }
        let mut leaving: SmallVec<[SourceRef; 4]> =
            peers.iter().filter_map(|&a| self.peers.number(a)).collect();
        leaving.sort_unstable();
        leaving.dedup();
        Departure {
            done: leaving.is_empty(),
            leaving,
            visited: 0,
            emptied_any: false,
        }
    }

    /// The next step of `departure`: walk the table on from where the last
    /// step stopped, removing the leaving peers' paths as it goes (no list
    /// of them first, no second lookup), until `max_changes` best-path
    /// changes are made or the table ends. Between steps the RIB is
    /// consistent (the prefixes not walked yet still have their leaving
    /// paths); the caller must finish the walk before anything else
    /// changes the table.
    pub fn continue_departure(
        &mut self,
        departure: &mut Departure,
        max_changes: usize,
    ) -> Vec<BestChange> {
        if departure.done {
            return Vec::new();
        }
        // Sized once: a step's changes grown by doubling left blocks of
        // every size behind them in a full table's departure.
        let mut changes = Vec::with_capacity(max_changes.min(self.index.len()).min(1 << 16));
        let leaving = &departure.leaving;
        let from_leaving = |p: &Path| leaving.binary_search(&p.source_ref()).is_ok();
        let Self {
            index,
            destinations,
            emptied,
            peers,
            cfg,
            track_all_paths,
            ..
        } = self;
        let inputs = (&*peers, &*cfg, *track_all_paths);
        // The index is not changed until the walk ends, so a position in
        // it stays valid between steps; skipping to it costs a few
        // nanoseconds an entry.
        departure.done = true;
        for (prefix, slot) in index.iter().skip(departure.visited) {
            departure.visited += 1;
            let Some(d) = destinations.get_mut(slot as usize) else {
                continue;
            };
            if !d.paths.iter().any(from_leaving) {
                continue;
            }
            let old = d.best_paths();
            d.paths.retain(|p| !from_leaving(p));
            if d.paths.len() <= 1 && d.paths.spilled() {
                d.paths.shrink_to_fit();
            }
            d.decide(&old, prefix, slot, inputs, &mut changes);
            if d.paths.is_empty() {
                emptied.push(slot);
                departure.emptied_any = true;
            }
            if changes.len() >= max_changes {
                departure.done = false;
                break;
            }
        }
        if departure.done && departure.emptied_any {
            index.retain(|slot| {
                destinations
                    .get(slot as usize)
                    .is_some_and(|d| !d.paths.is_empty())
            });
        }
        changes
    }

    /// Graceful restart helper (RFC 4724 §4.2): keep the peer's paths but
    /// mark them stale.
    pub fn mark_stale(&mut self, peer: IpAddr) {
        let Some(source) = self.peers.number(peer) else {
            return;
        };
        for d in &mut self.destinations {
            for p in d.paths.iter_mut().filter(|p| p.source_ref() == source) {
                p.set_stale();
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
        let Some(source) = self.peers.number(peer) else {
            return changes;
        };
        let stale = self.keys_of(source, |(prefix, path)| {
            path.stale() && family.is_none_or(|f| f.afi == prefix.afi())
        });
        let mut removed = 0;
        for (prefix, slot, path_id) in stale {
            removed += usize::from(self.remove_at(source, prefix, slot, path_id, &mut changes));
        }
        if let Some(n) = self.received.get_mut(&peer) {
            *n = n.saturating_sub(removed);
        }
        changes
    }
}
