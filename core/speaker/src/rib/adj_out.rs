//! Adj-RIB-Out: what each peer has been sent.
//!
//! Exported attribute sets live once, in a [`SetTable`] shared by every
//! peer; a peer's [`AdjRibOut`] is a set id per RIB slot. A reflector with
//! a hundred clients and a hundred thousand distinct exported sets keeps
//! each set once, not once per client.

use std::collections::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;

use super::{RouteAttrs, Slot, Source};

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
    ids: HashMap<Arc<RouteAttrs>, SetId, super::AttrHasher>,
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
    pub fn heap_bytes(&self) -> usize {
        self.sent.capacity() * size_of::<u32>()
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

    /// One more than the highest slot ever advertised: the range to walk
    /// for every entry.
    pub fn capacity(&self) -> usize {
        self.sent.len()
    }
}

/// What a peer sent every path (ADD-PATH, RFC 7911) has been sent: per
/// RIB slot, the path ids it holds and the set each went with. Kept apart
/// from [`AdjRibOut`], so peers sent one path per prefix pay nothing for
/// it.
#[derive(Debug, Default)]
pub struct AddPathOut {
    sent: HashMap<Slot, SmallVec<[(u32, SetId); 2]>>,
    advertised: usize,
}

impl AddPathOut {
    pub fn heap_bytes(&self) -> usize {
        // A hash table's slot and control byte per entry it has room for.
        self.sent.capacity() * (size_of::<(Slot, SmallVec<[(u32, SetId); 2]>)>() + 1)
    }

    /// Make `slot` advertised with exactly the (path id, set) pairs of
    /// `wanted`: appends the path ids to withdraw and the pairs to
    /// announce (new ids and ids whose set changed).
    pub fn sync(
        &mut self,
        sets: &mut SetTable,
        slot: Slot,
        wanted: &[(u32, SetId)],
        withdraw: &mut Vec<u32>,
        announce: &mut Vec<(u32, SetId)>,
    ) {
        let old = self.sent.remove(&slot).unwrap_or_default();
        for &(id, set) in wanted {
            match old.iter().find(|(old_id, _)| *old_id == id) {
                Some(&(_, old_set)) if old_set == set => {}
                Some(&(_, old_set)) => {
                    sets.retain(set);
                    sets.release(old_set);
                    announce.push((id, set));
                }
                None => {
                    sets.retain(set);
                    announce.push((id, set));
                }
            }
        }
        for &(id, set) in &old {
            if !wanted.iter().any(|(new_id, _)| *new_id == id) {
                sets.release(set);
                withdraw.push(id);
            }
        }
        self.advertised = self.advertised + wanted.len() - old.len();
        if !wanted.is_empty() {
            self.sent.insert(slot, wanted.iter().copied().collect());
        }
    }

    /// Whether anything is advertised in `slot`.
    pub fn holds(&self, slot: Slot) -> bool {
        self.sent.contains_key(&slot)
    }

    /// The (path id, set) pairs advertised in `slot`.
    pub fn get(&self, slot: Slot) -> &[(u32, SetId)] {
        self.sent.get(&slot).map_or(&[], |paths| paths.as_slice())
    }

    /// Forget everything sent (the session went down, or the whole table
    /// is about to be sent again).
    pub fn clear(&mut self, sets: &mut SetTable) {
        for (_, paths) in self.sent.drain() {
            for (_, set) in paths {
                sets.release(set);
            }
        }
        self.advertised = 0;
    }

    /// Paths advertised.
    pub fn len(&self) -> usize {
        self.advertised
    }

    pub fn is_empty(&self) -> bool {
        self.advertised == 0
    }
}

/// The path identifiers we send (RFC 7911): one per (source, path id as
/// received), the same for every prefix and every peer. A path keeps its
/// id while it lives, so a change of its attributes replaces it at the
/// peer and the other paths of the prefix are left alone.
#[derive(Debug)]
pub struct PathIds {
    ids: HashMap<(Source, u32), u32>,
    free: Vec<u32>,
    next: u32,
}

impl Default for PathIds {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            free: Vec::new(),
            // 0 is a valid id, but one peers' logs show as "no path id".
            next: 1,
        }
    }
}

impl PathIds {
    /// The id we send the path `(source, received)` with.
    pub fn get(&mut self, source: Source, received: u32) -> u32 {
        let Self { ids, free, next } = self;
        *ids.entry((source, received)).or_insert_with(|| {
            free.pop().unwrap_or_else(|| {
                *next += 1;
                *next - 1
            })
        })
    }

    /// Free the ids of `source`'s paths, which are all gone. An Adj-RIB-Out
    /// may still hold one until its withdrawal goes out; if a new path
    /// gets it first, that peer is sent the new path under the old id,
    /// which replaces the old path just as a withdrawal would.
    pub fn forget(&mut self, source: Source) {
        let free = &mut self.free;
        self.ids.retain(|(s, _), id| {
            if *s == source {
                free.push(*id);
            }
            *s != source
        });
    }

    /// Paths with an id.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
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

    /// `AddPathOut::sync` of slot 4: (path ids withdrawn, announced).
    fn sync(
        out: &mut AddPathOut,
        sets: &mut SetTable,
        wanted: &[(u32, SetId)],
    ) -> (Vec<u32>, Vec<(u32, SetId)>) {
        let (mut withdraw, mut announce) = (Vec::new(), Vec::new());
        out.sync(sets, 4, wanted, &mut withdraw, &mut announce);
        (withdraw, announce)
    }

    #[test]
    fn add_path_out_sends_only_differences_per_path_id() {
        let mut sets = SetTable::default();
        let mut out = AddPathOut::default();
        let (a, b) = (sets.intern(route(1)), sets.intern(route(2)));
        let (withdraw, announce) = sync(&mut out, &mut sets, &[(1, a), (2, b)]);
        assert_eq!(
            (withdraw.as_slice(), announce.as_slice()),
            (&[][..], &[(1, a), (2, b)][..])
        );
        assert_eq!(out.len(), 2);

        // Path 1 changes set, path 2 goes, path 3 comes.
        let (withdraw, announce) = sync(&mut out, &mut sets, &[(1, b), (3, a)]);
        assert_eq!(withdraw, [2]);
        assert_eq!(announce, [(1, b), (3, a)]);

        // Nothing changed: nothing to send.
        let (withdraw, announce) = sync(&mut out, &mut sets, &[(3, a), (1, b)]);
        assert!(withdraw.is_empty() && announce.is_empty());

        // Every path gone.
        let (withdraw, _) = sync(&mut out, &mut sets, &[]);
        assert_eq!(withdraw, [3, 1], "in the order last sent");
        assert!(!out.holds(4) && out.is_empty());
        sets.collect_unused();
        assert!(sets.is_empty(), "every set released");
    }

    #[test]
    fn path_ids_are_stable_per_path_and_reused_once_their_source_is_gone() {
        let a = Source::Peer("192.0.2.1".parse().expect("address"));
        let b = Source::Peer("192.0.2.2".parse().expect("address"));
        let mut ids = PathIds::default();
        let (a0, a7, b0) = (ids.get(a, 0), ids.get(a, 7), ids.get(b, 0));
        assert_eq!((a0, a7, b0), (1, 2, 3));
        assert_eq!(ids.get(a, 7), a7, "the same path, the same id");
        assert_eq!(ids.get(Source::Local, 0), 4);
        ids.forget(a);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids.get(b, 0), b0, "other sources keep theirs");
        let reused = ids.get(b, 1);
        assert!(
            reused == a0 || reused == a7,
            "a freed id is reused: {reused}"
        );
    }
}
