//! Adj-RIB-Out: what each peer has been sent.
//!
//! Exported attribute sets live once, in a [`SetTable`] shared by every
//! peer; a peer's [`AdjRibOut`] is a set id per RIB slot. A reflector with
//! a hundred clients and a hundred thousand distinct exported sets keeps
//! each set once, not once per client.

use std::collections::HashMap;
use std::sync::Arc;

use super::{RouteAttrs, Slot};

/// An exported attribute set, by number within a [`SetTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetId(u32);

#[derive(Debug)]
struct OutSet {
    attrs: Arc<RouteAttrs>,
    /// (peer, slot) pairs advertised with this set.
    users: u32,
}

/// Every exported attribute set in use, counted by the Adj-RIB-Outs that
/// use it. A set nobody uses is dropped by [`SetTable::collect_unused`],
/// never during a pass over the peers: ids handed out in a pass stay
/// valid (and mean the same set) until it ends.
#[derive(Debug, Default)]
pub struct SetTable {
    /// Indexed by `SetId`; `None` once dropped.
    sets: Vec<Option<OutSet>>,
    ids: HashMap<Arc<RouteAttrs>, SetId>,
    free: Vec<SetId>,
    /// Sets that may have no user: interned and not (yet) advertised, or
    /// whose last user went.
    unused: Vec<SetId>,
}

impl SetTable {
    /// The id of `route`, added if new.
    pub fn intern(&mut self, route: RouteAttrs) -> SetId {
        if let Some(id) = self.ids.get(&route) {
            return *id;
        }
        let attrs = Arc::new(route);
        let set = Some(OutSet {
            attrs: attrs.clone(),
            users: 0,
        });
        let id = match self.free.pop() {
            Some(id) => {
                self.sets[id.0 as usize] = set;
                id
            }
            None => {
                self.sets.push(set);
                SetId((self.sets.len() - 1) as u32)
            }
        };
        self.ids.insert(attrs, id);
        self.unused.push(id);
        id
    }

    /// The attributes of a set in use.
    ///
    /// # Panics
    /// If `id` was dropped: ids are valid from [`SetTable::intern`] until
    /// the next [`SetTable::collect_unused`] that finds them unused.
    pub fn attrs(&self, id: SetId) -> &Arc<RouteAttrs> {
        &self.sets[id.0 as usize]
            .as_ref()
            .expect("an exported set in use")
            .attrs
    }

    /// Count one more user of `id` (an Adj-RIB-Out entry, a cache).
    pub fn retain(&mut self, id: SetId) {
        if let Some(set) = &mut self.sets[id.0 as usize] {
            set.users += 1;
        }
    }

    /// Count one user of `id` fewer.
    pub fn release(&mut self, id: SetId) {
        if let Some(set) = &mut self.sets[id.0 as usize] {
            set.users = set.users.saturating_sub(1);
            if set.users == 0 {
                self.unused.push(id);
            }
        }
    }

    /// Drop the sets nobody uses. Call between passes over the peers.
    pub fn collect_unused(&mut self) {
        for id in std::mem::take(&mut self.unused) {
            let slot = &mut self.sets[id.0 as usize];
            if slot.as_ref().is_some_and(|s| s.users == 0)
                && let Some(set) = slot.take()
            {
                self.ids.remove(&set.attrs);
                self.free.push(id);
            }
        }
    }

    /// Distinct exported sets held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// What one peer has been sent: per RIB slot, the exported set the prefix
/// went with. 4 bytes per route and peer.
#[derive(Debug, Default)]
pub struct AdjRibOut {
    /// Indexed by slot: 0 when nothing is advertised, else the set's
    /// number + 1. Grows only when a slot is first advertised.
    sent: Vec<u32>,
    advertised: usize,
}

impl AdjRibOut {
    /// The set `slot` was sent with, if it was.
    pub fn get(&self, slot: Slot) -> Option<SetId> {
        match self.sent.get(slot as usize) {
            None | Some(0) => None,
            Some(n) => Some(SetId(n - 1)),
        }
    }

    /// Record `slot` as sent with `id`; `false` when it already was, so
    /// there is nothing to send.
    pub fn advertise(&mut self, sets: &mut SetTable, slot: Slot, id: SetId) -> bool {
        let i = slot as usize;
        if i >= self.sent.len() {
            self.sent.resize(i + 1, 0);
        }
        let previous = std::mem::replace(&mut self.sent[i], id.0 + 1);
        if previous == id.0 + 1 {
            return false;
        }
        sets.retain(id);
        match previous {
            0 => self.advertised += 1,
            n => sets.release(SetId(n - 1)),
        }
        true
    }

    /// Record `slot` as withdrawn; `false` when it was not advertised, so
    /// there is nothing to send.
    pub fn withdraw(&mut self, sets: &mut SetTable, slot: Slot) -> bool {
        let Some(entry) = self.sent.get_mut(slot as usize) else {
            return false;
        };
        let previous = std::mem::take(entry);
        if previous == 0 {
            return false;
        }
        self.advertised -= 1;
        sets.release(SetId(previous - 1));
        true
    }

    /// Forget everything sent (the session went down, or the whole table
    /// is about to be sent again).
    pub fn clear(&mut self, sets: &mut SetTable) {
        for n in std::mem::take(&mut self.sent) {
            if n != 0 {
                sets.release(SetId(n - 1));
            }
        }
        self.advertised = 0;
    }

    /// Prefixes advertised.
    pub fn len(&self) -> usize {
        self.advertised
    }

    pub fn is_empty(&self) -> bool {
        self.advertised == 0
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use starling_wire::{NextHop, PathAttributes};

    use super::*;

    fn route(med: u32) -> RouteAttrs {
        RouteAttrs {
            attrs: PathAttributes {
                med: Some(med),
                ..PathAttributes::default()
            },
            next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
        }
    }

    #[test]
    fn sets_are_shared_by_peers_counted_and_dropped_between_passes() {
        let mut sets = SetTable::default();
        let (mut x, mut y) = (AdjRibOut::default(), AdjRibOut::default());
        let a = sets.intern(route(1));
        assert_eq!(sets.intern(route(1)), a, "interned once");
        assert!(x.advertise(&mut sets, 7, a));
        assert!(x.advertise(&mut sets, 3, a));
        assert!(y.advertise(&mut sets, 3, a), "another peer, the same set");
        assert!(!x.advertise(&mut sets, 3, a), "unchanged: nothing to send");
        assert_eq!((x.len(), y.len(), sets.len()), (2, 1, 1));
        assert_eq!(x.get(7), Some(a));
        assert_eq!(x.get(5), None);
        assert_eq!(x.get(1000), None);

        let b = sets.intern(route(2));
        assert!(x.advertise(&mut sets, 7, b), "replaced");
        assert!(x.withdraw(&mut sets, 3));
        assert!(!x.withdraw(&mut sets, 3), "already withdrawn");
        sets.collect_unused();
        assert_eq!(sets.len(), 2, "y still uses a");
        y.clear(&mut sets);
        assert!(y.is_empty());
        // Unused now, but ids stay valid until the pass ends.
        assert_eq!(sets.attrs(a).attrs.med, Some(1));
        sets.collect_unused();
        assert_eq!(sets.len(), 1, "a dropped");
        assert_eq!(sets.attrs(b).attrs.med, Some(2));

        // A set's number is reused once it is free; one never advertised
        // goes at the next collection.
        let c = sets.intern(route(3));
        assert_eq!(c, a);
        sets.collect_unused();
        assert_eq!(sets.len(), 1);
    }
}
