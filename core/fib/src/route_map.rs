//! Destination → target maps, compactly: the routes Starling has
//! installed, and the changes waiting to be written.
//!
//! A full table is a million routes over a handful of targets (a gateway
//! per peer, a few ECMP sets), so each route holds a number of its target
//! rather than the 40-byte target; and an IPv4 route is one 64-bit word
//! (address, length and that number) in hash tables of its family. A
//! million IPv4 routes take about 15 MB (8 bytes and a control byte per
//! bucket, the tables about 60 % full at any size, see [`Shards`]), where one
//! table took 19 (half empty after it doubled) and a map of
//! `Destination` → number 52.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::{Destination, RouteHasher, Target};

/// A target's number in a [`RouteMap`]'s table.
type TargetId = u32;

/// Numbers fit in the 26 bits an IPv4 route leaves them: 67 million
/// distinct targets, each used by at least one route, is far beyond what
/// a kernel table holds.
const ID_BITS: u32 = 26;

/// The routes installed: destination → target.
pub type Installed = RouteMap<Target>;

/// Changes not written yet: destination → wanted target (`None`: no
/// route), as [`crate::Fib::apply_changes`] takes them.
pub type PendingChanges = RouteMap<Option<Target>>;

/// Destination → `T`, with the values interned and counted.
#[derive(Debug)]
pub struct RouteMap<T> {
    v4: Shards<V4Route>,
    v6: Shards<V6Route>,
    hasher: RouteHasher,
    values: Values<T>,
}

/// An IPv4 route in one word: address (32 bits), length (6), target (26).
#[derive(Debug, Clone, Copy)]
struct V4Route(u64);

impl V4Route {
    fn new(key: u64, id: TargetId) -> Self {
        debug_assert!(id < 1 << ID_BITS);
        V4Route(key << ID_BITS | u64::from(id))
    }

    /// Address and length: what the table is keyed on.
    fn key(self) -> u64 {
        self.0 >> ID_BITS
    }

    fn id(self) -> TargetId {
        (self.0 & ((1 << ID_BITS) - 1)) as TargetId
    }

    fn destination(self) -> Destination {
        let key = self.key();
        Destination {
            addr: IpAddr::V4(Ipv4Addr::from((key >> 6) as u32)),
            len: (key & 0x3f) as u8,
        }
    }
}

fn v4_key(addr: Ipv4Addr, len: u8) -> u64 {
    u64::from(u32::from(addr)) << 6 | u64::from(len)
}

/// An IPv6 route: 24 bytes.
#[derive(Debug, Clone, Copy)]
struct V6Route {
    addr: [u8; 16],
    len: u8,
    id: TargetId,
}

impl V6Route {
    fn key(&self) -> ([u8; 16], u8) {
        (self.addr, self.len)
    }

    fn destination(&self) -> Destination {
        Destination {
            addr: IpAddr::V6(Ipv6Addr::from(self.addr)),
            len: self.len,
        }
    }
}

/// Shards a family's table is split into.
const SHARDS: usize = 16;

/// Each shard's share of the routes, as 2^(i/16) × 1,000: one octave
/// from the smallest to the largest.
const SHARE: [u32; SHARDS] = [
    1000, 1044, 1091, 1139, 1189, 1242, 1297, 1354, 1414, 1477, 1542, 1610, 1682, 1756, 1834, 1915,
];

/// The shares' sum.
const SHARE_TOTAL: u32 = {
    let (mut total, mut i) = (0, 0);
    while i < SHARDS {
        total += SHARE[i];
        i += 1;
    }
    total
};

/// Which shard a route goes to, by one byte of its hash: each shard gets
/// bytes in proportion to its [`SHARE`].
const SHARD_OF: [u8; 256] = {
    let total = SHARE_TOTAL;
    let mut of = [0u8; 256];
    let (mut byte, mut shard, mut upto) = (0, 0, SHARE[0]);
    while byte < 256 {
        // The byte's middle, on the scale of `total`.
        while (2 * byte as u32 + 1) * total > upto * 512 && shard + 1 < SHARDS {
            shard += 1;
            upto += SHARE[shard];
        }
        of[byte] = shard as u8;
        byte += 1;
    }
    of
};

/// One family's routes in [`SHARDS`] hash tables of unequal sizes.
///
/// A hash table doubles when it is 7/8 full, so one table holding a
/// million routes is anywhere from 44 % to 88 % full depending on where
/// that million falls (a million IPv4 routes: 48 %, 19 MB), and it holds
/// the old and the new table at once while it doubles (28 MB for a
/// moment, near the end of a full table). Tables whose sizes span one
/// octave are each at a different point of their doubling: about 60 %
/// full at any size (15 MB for a million IPv4 routes), and each doubles
/// on its own (the largest holds a twelfth of the routes).
#[derive(Debug)]
struct Shards<R> {
    tables: [HashTable<R>; SHARDS],
}

impl<R> Default for Shards<R> {
    fn default() -> Self {
        Self {
            tables: std::array::from_fn(|_| HashTable::new()),
        }
    }
}

impl<R> Shards<R> {
    /// The shard of a route with this hash: chosen by bits the tables'
    /// own bucket choice (the low bits) and control bytes (the top seven)
    /// do not use.
    fn shard(hash: u64) -> usize {
        usize::from(SHARD_OF[usize::from((hash >> 40) as u8)])
    }

    fn of(&self, hash: u64) -> &HashTable<R> {
        &self.tables[Self::shard(hash)]
    }

    fn of_mut(&mut self, hash: u64) -> &mut HashTable<R> {
        &mut self.tables[Self::shard(hash)]
    }

    fn len(&self) -> usize {
        self.tables.iter().map(HashTable::len).sum()
    }

    fn iter(&self) -> impl Iterator<Item = &R> {
        self.tables.iter().flat_map(HashTable::iter)
    }

    fn retain(&mut self, mut keep: impl FnMut(&mut R) -> bool) {
        for table in &mut self.tables {
            table.retain(&mut keep);
        }
    }

    /// Give back what the tables do not need for `min` routes between
    /// them.
    fn shrink_to(&mut self, min: usize, hash: impl Fn(&R) -> u64) {
        for (table, share) in self.tables.iter_mut().zip(SHARE) {
            table.shrink_to(min * share as usize / SHARE_TOTAL as usize + 1, &hash);
        }
    }

    /// Move routes out, as `each` makes them, until `into` holds `n`.
    fn take_into<T>(&mut self, n: usize, into: &mut Vec<T>, each: impl Fn(&R) -> T) {
        for table in &mut self.tables {
            let more = n.saturating_sub(into.len());
            if more == 0 {
                return;
            }
            into.extend(table.extract_if(|_| true).take(more).map(|r| each(&r)));
        }
    }

    fn allocation_size(&self) -> usize {
        self.tables.iter().map(HashTable::allocation_size).sum()
    }
}

/// The distinct values of a [`RouteMap`], numbered and counted.
#[derive(Debug)]
struct Values<T> {
    /// By id: the value and how many routes use it; `None` once unused
    /// (its id is then in `free`).
    by_id: Vec<Option<(T, usize)>>,
    ids: HashMap<T, TargetId, RouteHasher>,
    free: Vec<TargetId>,
}

impl<T> Default for RouteMap<T> {
    fn default() -> Self {
        Self {
            v4: Shards::default(),
            v6: Shards::default(),
            hasher: RouteHasher::default(),
            values: Values {
                by_id: Vec::new(),
                ids: HashMap::default(),
                free: Vec::new(),
            },
        }
    }
}

impl<T: Clone + Eq + Hash> RouteMap<T> {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, dest: &Destination) -> Option<&T> {
        self.id(dest).and_then(|id| self.values.get(id))
    }

    pub fn contains_key(&self, dest: &Destination) -> bool {
        self.id(dest).is_some()
    }

    fn id(&self, dest: &Destination) -> Option<TargetId> {
        match dest.addr {
            IpAddr::V4(addr) => {
                let key = v4_key(addr, dest.len);
                let hash = self.hasher.hash_one(key);
                self.v4
                    .of(hash)
                    .find(hash, |r| r.key() == key)
                    .map(|r| r.id())
            }
            IpAddr::V6(addr) => {
                let key = (addr.octets(), dest.len);
                let hash = self.hasher.hash_one(key);
                self.v6
                    .of(hash)
                    .find(hash, |r| r.key() == key)
                    .map(|r| r.id)
            }
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = Destination> + '_ {
        (self.v4.iter().map(|r| r.destination())).chain(self.v6.iter().map(V6Route::destination))
    }

    pub fn iter(&self) -> impl Iterator<Item = (Destination, &T)> {
        let v4 = self.v4.iter().map(|r| (r.destination(), r.id()));
        let v6 = self.v6.iter().map(|r| (r.destination(), r.id));
        v4.chain(v6)
            .filter_map(|(dest, id)| Some((dest, self.values.get(id)?)))
    }

    /// Every distinct value in use, with how many routes have it.
    pub fn targets(&self) -> impl Iterator<Item = (&T, usize)> {
        self.values.by_id.iter().flatten().map(|(t, n)| (t, *n))
    }

    /// Set `dest`'s value; the one it had, if any.
    pub fn insert(&mut self, dest: Destination, value: T) -> Option<T> {
        let id = self.values.acquire(value);
        let Self { v4, v6, hasher, .. } = self;
        let old = match dest.addr {
            IpAddr::V4(addr) => {
                let key = v4_key(addr, dest.len);
                let route = V4Route::new(key, id);
                let hash = hasher.hash_one(key);
                match v4
                    .of_mut(hash)
                    .entry(hash, |r| r.key() == key, |r| hasher.hash_one(r.key()))
                {
                    Entry::Occupied(mut slot) => {
                        Some(std::mem::replace(slot.get_mut(), route).id())
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(route);
                        None
                    }
                }
            }
            IpAddr::V6(addr) => {
                let route = V6Route {
                    addr: addr.octets(),
                    len: dest.len,
                    id,
                };
                let key = route.key();
                let hash = hasher.hash_one(key);
                match v6
                    .of_mut(hash)
                    .entry(hash, |r| r.key() == key, |r| hasher.hash_one(r.key()))
                {
                    Entry::Occupied(mut slot) => Some(std::mem::replace(slot.get_mut(), route).id),
                    Entry::Vacant(slot) => {
                        slot.insert(route);
                        None
                    }
                }
            }
        };
        self.values.release(old?)
    }

    /// Forget `dest`; the value it had, if any.
    pub fn remove(&mut self, dest: &Destination) -> Option<T> {
        let old = match dest.addr {
            IpAddr::V4(addr) => {
                let key = v4_key(addr, dest.len);
                let hash = self.hasher.hash_one(key);
                let slot = self
                    .v4
                    .of_mut(hash)
                    .find_entry(hash, |r| r.key() == key)
                    .ok()?;
                slot.remove().0.id()
            }
            IpAddr::V6(addr) => {
                let key = (addr.octets(), dest.len);
                let hash = self.hasher.hash_one(key);
                let slot = self
                    .v6
                    .of_mut(hash)
                    .find_entry(hash, |r| r.key() == key)
                    .ok()?;
                slot.remove().0.id
            }
        };
        self.values.release(old)
    }

    /// Keep only the routes whose destination `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&Destination) -> bool) {
        let Self { v4, v6, values, .. } = self;
        v4.retain(|r| {
            keep(&r.destination()) || {
                values.release(r.id());
                false
            }
        });
        v6.retain(|r| {
            keep(&r.destination()) || {
                values.release(r.id);
                false
            }
        });
    }

    /// Take up to `n` routes out (whichever come first).
    pub fn take(&mut self, n: usize) -> Vec<(Destination, T)> {
        let Self { v4, v6, values, .. } = self;
        let mut taken: Vec<(Destination, TargetId)> =
            Vec::with_capacity(n.min(v4.len() + v6.len()));
        v4.take_into(n, &mut taken, |r| (r.destination(), r.id()));
        v6.take_into(n, &mut taken, |r| (r.destination(), r.id));
        taken
            .into_iter()
            .filter_map(|(dest, id)| Some((dest, values.release(id)?)))
            .collect()
    }

    /// Give back memory a burst took, keeping room for `min` routes.
    pub fn shrink_to(&mut self, min: usize) {
        let hasher = &self.hasher;
        self.v4.shrink_to(min, |r| hasher.hash_one(r.key()));
        self.v6.shrink_to(min, |r| hasher.hash_one(r.key()));
    }

    /// The bytes this map holds on the heap: its tables, and the values'
    /// own slots (not what a value may own beyond them: a target with
    /// more than one gateway, rare, has a heap list of its own).
    pub fn heap_bytes(&self) -> usize {
        let values = &self.values;
        self.v4.allocation_size()
            + self.v6.allocation_size()
            + values.by_id.capacity() * std::mem::size_of::<Option<(T, usize)>>()
            + values.ids.capacity() * (std::mem::size_of::<(T, TargetId)>() + 1)
            + values.free.capacity() * std::mem::size_of::<TargetId>()
    }
}

impl<T: Clone + Eq + Hash> Values<T> {
    fn get(&self, id: TargetId) -> Option<&T> {
        self.by_id
            .get(id as usize)
            .and_then(Option::as_ref)
            .map(|(t, _)| t)
    }

    fn acquire(&mut self, value: T) -> TargetId {
        if let Some(&id) = self.ids.get(&value)
            && let Some(Some((_, uses))) = self.by_id.get_mut(id as usize)
        {
            *uses += 1;
            return id;
        }
        let entry = Some((value.clone(), 1));
        let id = match self.free.pop() {
            Some(id) => {
                self.by_id[id as usize] = entry;
                id
            }
            None => {
                let id = self.by_id.len() as TargetId;
                assert!(
                    id < 1 << ID_BITS,
                    "more than 2^{ID_BITS} distinct route targets"
                );
                self.by_id.push(entry);
                id
            }
        };
        self.ids.insert(value, id);
        id
    }

    /// One use of `id` fewer; its value (taken out when that was the last
    /// use).
    fn release(&mut self, id: TargetId) -> Option<T> {
        let slot = self.by_id.get_mut(id as usize)?;
        let (value, uses) = slot.as_mut()?;
        *uses -= 1;
        if *uses > 0 {
            return Some(value.clone());
        }
        let (value, _) = slot.take()?;
        self.ids.remove(&value);
        self.free.push(id);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn d(s: &str) -> Destination {
        s.parse().expect("destination")
    }

    fn via(last: u8) -> Target {
        Target::via([IpAddr::from([192, 0, 2, last])])
    }

    #[test]
    fn targets_are_shared_counted_and_reused_once_unused() {
        let mut installed = Installed::default();
        assert_eq!(installed.insert(d("10.0.0.0/24"), via(1)), None);
        assert_eq!(installed.insert(d("10.0.1.0/24"), via(1)), None);
        assert_eq!(installed.targets().collect::<Vec<_>>(), vec![(&via(1), 2)]);
        assert_eq!(installed.insert(d("10.0.1.0/24"), via(2)), Some(via(1)));
        assert_eq!(installed.get(&d("10.0.1.0/24")), Some(&via(2)));
        assert_eq!(installed.remove(&d("10.0.0.0/24")), Some(via(1)));
        // via(1) is unused: its number goes to the next new target.
        assert_eq!(installed.targets().count(), 1);
        installed.insert(d("10.0.2.0/24"), Target::Blackhole);
        assert_eq!(
            installed.values.by_id.len(),
            2,
            "the free number was reused"
        );
        assert_eq!(installed.len(), 2);
        let mut all: Vec<(String, Target)> = installed
            .iter()
            .map(|(dest, t)| (dest.to_string(), t.clone()))
            .collect();
        all.sort();
        assert_eq!(
            all,
            vec![
                ("10.0.1.0/24".to_owned(), via(2)),
                ("10.0.2.0/24".to_owned(), Target::Blackhole)
            ]
        );
        assert_eq!(installed.remove(&d("10.0.9.0/24")), None);
        installed.insert(d("2001:db8:1::/48"), via(3));
        let mut taken = installed.take(2);
        taken.sort();
        assert_eq!(taken.len(), 2);
        assert_eq!(installed.len(), 1);
        let left: Vec<_> = installed.iter().map(|(d, t)| (d, t.clone())).collect();
        let mut all = [taken, left].concat();
        all.sort();
        assert_eq!(
            all,
            vec![
                (d("10.0.1.0/24"), via(2)),
                (d("10.0.2.0/24"), Target::Blackhole),
                (d("2001:db8:1::/48"), via(3)),
            ]
        );
        for (dest, target) in all {
            installed.insert(dest, target);
        }
        assert_eq!(installed.take(10).len(), 3);
        assert!(installed.is_empty() && installed.targets().count() == 0);
        installed.insert(d("2001:db8::/48"), via(1));
        installed.retain(|dest| dest.addr().is_ipv6());
        assert_eq!(installed.len(), 1);
        assert_eq!(installed.targets().collect::<Vec<_>>(), vec![(&via(1), 1)]);
    }

    #[test]
    fn a_route_costs_the_map_one_word_for_ipv4_and_24_bytes_for_ipv6() {
        assert_eq!(std::mem::size_of::<V4Route>(), 8);
        assert_eq!(std::mem::size_of::<V6Route>(), 24);
    }

    #[test]
    fn an_ipv4_route_keeps_its_address_length_and_target_in_one_word() {
        for text in [
            "0.0.0.0/0",
            "255.255.255.255/32",
            "10.1.2.0/24",
            "128.0.0.0/1",
        ] {
            let dest = d(text);
            let IpAddr::V4(addr) = dest.addr() else {
                unreachable!()
            };
            for id in [0, 1, (1 << ID_BITS) - 1] {
                let route = V4Route::new(v4_key(addr, dest.len()), id);
                assert_eq!((route.destination(), route.id()), (dest, id), "{text} {id}");
            }
        }
    }

    #[test]
    fn each_shard_takes_its_share_of_the_hash() {
        let mut bytes = [0usize; SHARDS];
        for shard in SHARD_OF {
            bytes[usize::from(shard)] += 1;
        }
        for (got, share) in bytes.iter().zip(SHARE) {
            let wanted = 256.0 * f64::from(share) / f64::from(SHARE_TOTAL);
            assert!((*got as f64 - wanted).abs() <= 1.0, "{bytes:?}");
        }
    }

    /// Tables of routes, each size at another point of the tables'
    /// doubling: the map's bytes per route stay near 15 (9 bytes a bucket,
    /// 60 % full), where one table ranged from 10 to 21.
    #[test]
    fn ipv4_routes_cost_about_fifteen_bytes_at_any_table_size() {
        let mut installed = Installed::default();
        let mut next = 0u32;
        for size in [100_000, 300_000, 450_000, 600_000, 800_000, 1_000_000] {
            while next < size {
                let dest =
                    Destination::new(IpAddr::from((next << 8).to_be_bytes()), 24).expect("dest");
                installed.insert(dest, via((next % 8) as u8));
                next += 1;
            }
            let per_route = installed.heap_bytes() as f64 / f64::from(size);
            assert!(per_route <= 16.5, "{per_route:.1} bytes a route at {size}");
        }
    }

    #[test]
    fn a_million_ipv4_routes_fit_in_16_megabytes() {
        let mut installed = Installed::default();
        for i in 0..1_000_000u32 {
            let dest = Destination::new(IpAddr::from((i << 8).to_be_bytes()), 24).expect("dest");
            installed.insert(dest, via((i % 8) as u8));
        }
        assert_eq!(installed.len(), 1_000_000);
        let bytes = installed.heap_bytes();
        assert!(bytes <= 16_000_000, "{bytes} bytes for a million routes");
        installed.retain(|dest| matches!(dest.addr(), IpAddr::V4(a) if a.octets()[0] == 10));
        assert_eq!(installed.len(), 1 << 16);
        assert!(installed.targets().all(|(_, uses)| uses == 8192));
    }
}
