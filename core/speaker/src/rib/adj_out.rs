//! Adj-RIB-Out: what one peer has been sent.

use std::collections::HashMap;
use std::sync::Arc;

use super::{RouteAttrs, Slot};

/// An exported attribute set, by number within one [`AdjRibOut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetId(u32);

#[derive(Debug)]
struct OutSet {
    attrs: Arc<RouteAttrs>,
    /// Slots advertised with this set.
    users: u32,
}

/// Per RIB slot, the attribute set the prefix was sent with: 4 bytes per
/// route and peer, where a map from prefix to attributes costs ten times
/// that. The sets are interned, so a full table over a few thousand sets
/// holds a few thousand of them.
#[derive(Debug, Default)]
pub struct AdjRibOut {
    /// Indexed by slot: 0 when nothing is advertised, else the set's
    /// number + 1. Grows only when a slot is first advertised.
    sent: Vec<u32>,
    /// Indexed by `SetId`; `None` once no slot uses the set.
    sets: Vec<Option<OutSet>>,
    ids: HashMap<Arc<RouteAttrs>, SetId>,
    free_ids: Vec<SetId>,
    /// Sets interned since the last [`AdjRibOut::collect_unused`] whose
    /// slot may never have taken them (the announcement was a no-op).
    fresh: Vec<SetId>,
    advertised: usize,
}

impl AdjRibOut {
    /// The id of `route`, interned if new. Until a slot is advertised with
    /// it, [`AdjRibOut::collect_unused`] may drop it again.
    pub fn intern(&mut self, route: RouteAttrs) -> SetId {
        if let Some(id) = self.ids.get(&route) {
            return *id;
        }
        let attrs = Arc::new(route);
        let set = Some(OutSet {
            attrs: attrs.clone(),
            users: 0,
        });
        let id = match self.free_ids.pop() {
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
        self.fresh.push(id);
        id
    }

    /// The attributes of an interned set.
    ///
    /// # Panics
    /// If `id` was not returned by [`AdjRibOut::intern`] since the set was
    /// last collected.
    pub fn attrs(&self, id: SetId) -> &Arc<RouteAttrs> {
        &self.sets[id.0 as usize]
            .as_ref()
            .expect("an interned set in use")
            .attrs
    }

    /// The set `slot` was sent with, if it was.
    pub fn get(&self, slot: Slot) -> Option<SetId> {
        match self.sent.get(slot as usize) {
            None | Some(0) => None,
            Some(n) => Some(SetId(n - 1)),
        }
    }

    /// Record `slot` as sent with `id`; `false` when it already was, so
    /// there is nothing to send.
    pub fn advertise(&mut self, slot: Slot, id: SetId) -> bool {
        let i = slot as usize;
        if i >= self.sent.len() {
            self.sent.resize(i + 1, 0);
        }
        let previous = std::mem::replace(&mut self.sent[i], id.0 + 1);
        if previous == id.0 + 1 {
            return false;
        }
        if let Some(set) = &mut self.sets[id.0 as usize] {
            set.users += 1;
        }
        match previous {
            0 => self.advertised += 1,
            n => self.release(SetId(n - 1)),
        }
        true
    }

    /// Record `slot` as withdrawn; `false` when it was not advertised, so
    /// there is nothing to send.
    pub fn withdraw(&mut self, slot: Slot) -> bool {
        let Some(entry) = self.sent.get_mut(slot as usize) else {
            return false;
        };
        let previous = std::mem::take(entry);
        if previous == 0 {
            return false;
        }
        self.advertised -= 1;
        self.release(SetId(previous - 1));
        true
    }

    fn release(&mut self, id: SetId) {
        let set = &mut self.sets[id.0 as usize];
        if let Some(s) = set {
            s.users = s.users.saturating_sub(1);
            if s.users == 0 {
                self.drop_set(id);
            }
        }
    }

    fn drop_set(&mut self, id: SetId) {
        if let Some(set) = self.sets[id.0 as usize].take() {
            self.ids.remove(&set.attrs);
            self.free_ids.push(id);
        }
    }

    /// Drop sets interned but never advertised.
    pub fn collect_unused(&mut self) {
        for id in std::mem::take(&mut self.fresh) {
            if self.sets[id.0 as usize]
                .as_ref()
                .is_some_and(|s| s.users == 0)
            {
                self.drop_set(id);
            }
        }
    }

    /// Forget everything sent (the session went down, or the whole table
    /// is about to be sent again).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Prefixes advertised.
    pub fn len(&self) -> usize {
        self.advertised
    }

    pub fn is_empty(&self) -> bool {
        self.advertised == 0
    }

    /// Distinct attribute sets in use.
    pub fn attribute_sets(&self) -> usize {
        self.ids.len()
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
    fn sets_are_shared_counted_and_dropped_with_their_last_slot() {
        let mut out = AdjRibOut::default();
        let a = out.intern(route(1));
        assert_eq!(out.intern(route(1)), a, "interned once");
        assert!(out.advertise(7, a));
        assert!(out.advertise(3, a));
        assert!(!out.advertise(3, a), "unchanged: nothing to send");
        assert_eq!((out.len(), out.attribute_sets()), (2, 1));
        assert_eq!(out.get(7), Some(a));
        assert_eq!(out.get(5), None);
        assert_eq!(out.get(1000), None);

        let b = out.intern(route(2));
        assert!(out.advertise(7, b), "replaced");
        assert_eq!((out.len(), out.attribute_sets()), (2, 2));
        assert!(out.withdraw(3));
        assert!(!out.withdraw(3), "already withdrawn");
        assert_eq!((out.len(), out.attribute_sets()), (1, 1), "a dropped");
        assert_eq!(out.attrs(b).attrs.med, Some(2));

        // A set's number is reused once it is free.
        let c = out.intern(route(3));
        assert_eq!(c, a);
        out.collect_unused();
        assert_eq!(out.attribute_sets(), 1, "c was never advertised");
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.get(7), None);
    }
}
