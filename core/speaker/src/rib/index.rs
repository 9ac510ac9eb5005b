//! Prefix → slot: where each destination lives in the RIB's table.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry as TreeEntry;
use std::net::Ipv4Addr;

use starling_wire::{Ipv4Prefix, Ipv6Prefix, Prefix};

use super::Slot;

/// One index per family. IPv4 is the one that holds a full table, so it
/// gets a structure of its own ([`Ipv4Index`]); IPv6 tables are a tenth of
/// that size and live in a B-tree.
#[derive(Debug, Default)]
pub(super) struct PrefixIndex {
    v4: Ipv4Index,
    v6: BTreeMap<Ipv6Prefix, Slot>,
}

impl PrefixIndex {
    pub(super) fn get(&self, prefix: &Prefix) -> Option<Slot> {
        match prefix {
            Prefix::V4(p) => self.v4.get(*p),
            Prefix::V6(p) => self.v6.get(p).copied(),
        }
    }

    /// The slot of `prefix`, taking a new one from `allocate` if it has
    /// none; `true` with a new slot.
    pub(super) fn get_or_insert_with(
        &mut self,
        prefix: Prefix,
        allocate: impl FnOnce() -> Slot,
    ) -> (Slot, bool) {
        match prefix {
            Prefix::V4(p) => self.v4.get_or_insert_with(p, allocate),
            Prefix::V6(p) => match self.v6.entry(p) {
                TreeEntry::Occupied(o) => (*o.get(), false),
                TreeEntry::Vacant(v) => (*v.insert(allocate()), true),
            },
        }
    }

    /// Start loading what looking up `prefixes` will read, so that the
    /// lookups that follow overlap their cache misses instead of waiting
    /// for each in turn. An UPDATE carries a few hundred prefixes in no
    /// useful order; this roughly halves the cost of indexing them.
    pub(super) fn prefetch(&self, prefixes: &[Prefix]) {
        for prefix in prefixes {
            if let Prefix::V4(p) = prefix
                && let Some(bucket) = self.v4.bucket(Ipv4Index::split(*p).0)
            {
                prefetch(bucket);
            }
        }
        for prefix in prefixes {
            if let Prefix::V4(p) = prefix
                && let Some(Bucket::Sorted(entries)) = self.v4.bucket(Ipv4Index::split(*p).0)
                && let Some(middle) = entries.get(entries.len() / 2)
            {
                prefetch(middle);
            }
        }
    }

    pub(super) fn remove(&mut self, prefix: &Prefix) -> Option<Slot> {
        match prefix {
            Prefix::V4(p) => self.v4.remove(*p),
            Prefix::V6(p) => self.v6.remove(p),
        }
    }

    /// Keep only the prefixes whose slot `keep` accepts: one pass, where
    /// removing a whole table prefix by prefix would search for each.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(Slot) -> bool) {
        self.v4.retain(&mut keep);
        self.v6.retain(|_, slot| keep(*slot));
    }

    /// Every prefix and its slot: IPv4 then IPv6, each in address order
    /// (then length).
    pub(super) fn iter(&self) -> impl Iterator<Item = (Prefix, Slot)> + '_ {
        let v4 = self.v4.iter().map(|(p, s)| (Prefix::V4(p), s));
        let v6 = self.v6.iter().map(|(p, s)| (Prefix::V6(*p), *s));
        v4.chain(v6)
    }

    pub(super) fn len(&self) -> usize {
        self.v4.len + self.v6.len()
    }

    /// Heap bytes, near enough for a metric: the IPv4 buckets as
    /// allocated; B-trees (IPv6, and crowded IPv4 buckets) at their
    /// entries' size and a half, which is what their nodes average.
    pub(super) fn heap_bytes(&self) -> usize {
        let tree = |entries: usize, entry: usize| entries * entry * 3 / 2;
        let buckets: usize = self
            .v4
            .chunks
            .iter()
            .flatten()
            .flat_map(|chunk| chunk.iter())
            .map(|bucket| match bucket {
                Bucket::Sorted(entries) => entries.capacity() * size_of::<Entry>(),
                Bucket::Tree(t) => tree(t.len(), size_of::<((u16, u8), Slot)>()),
            })
            .sum();
        let chunks = self.v4.chunks.iter().flatten().count() * Ipv4Index::CHUNK;
        buckets
            + chunks * size_of::<Bucket>()
            + self.v4.chunks.capacity() * size_of::<Option<Box<[Bucket]>>>()
            + self.v4.occupied.capacity() * size_of::<u64>()
            + tree(self.v6.len(), size_of::<(Ipv6Prefix, Slot)>())
    }
}

/// IPv4 prefixes by their first 16 address bits: a table of 65,536
/// buckets, each a short sorted array of the rest. A lookup is two memory
/// accesses (the bucket, its array; the chunk pointers before them stay
/// in cache) where a B-tree over a full table takes six or seven, most of
/// them cache misses when prefixes arrive in random order; an entry costs
/// 8 bytes. A bucket that grows past
/// [`Ipv4Index::TREE_AT`] entries (a /16 full of host routes) becomes a
/// B-tree, so no insert costs more than a few thousand bytes of moves.
#[derive(Debug, Default)]
struct Ipv4Index {
    /// The buckets in chunks of [`Ipv4Index::CHUNK`], each allocated with
    /// its first prefix: a full table has them all (2 MiB), a mesh node's
    /// fifty blocks one or two (8 KiB each).
    chunks: Vec<Option<Box<[Bucket]>>>,
    /// One bit per bucket, set while it holds a prefix: a walk of a small
    /// table (a mesh node's fifty blocks, walked at every peer's down)
    /// visits its few buckets, not all 65,536.
    occupied: Vec<u64>,
    len: usize,
}

#[derive(Debug)]
enum Bucket {
    /// Sorted by (low address bits, length): address order, as the
    /// buckets themselves are.
    Sorted(Vec<Entry>),
    Tree(BTreeMap<(u16, u8), Slot>),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    low: u16,
    len: u8,
    slot: Slot,
}

impl Entry {
    fn key(&self) -> (u16, u8) {
        (self.low, self.len)
    }
}

impl Ipv4Index {
    const TREE_AT: usize = 1024;
    const CHUNK: usize = 256;

    fn bucket(&self, high: usize) -> Option<&Bucket> {
        self.chunks
            .get(high / Self::CHUNK)?
            .as_ref()?
            .get(high % Self::CHUNK)
    }

    fn bucket_mut(&mut self, high: usize) -> Option<&mut Bucket> {
        self.chunks
            .get_mut(high / Self::CHUNK)?
            .as_mut()?
            .get_mut(high % Self::CHUNK)
    }

    fn split(p: Ipv4Prefix) -> (usize, (u16, u8)) {
        let addr = u32::from(p.addr());
        ((addr >> 16) as usize, (addr as u16, p.prefix_len()))
    }

    fn get(&self, p: Ipv4Prefix) -> Option<Slot> {
        let (bucket, key) = Self::split(p);
        match self.bucket(bucket)? {
            Bucket::Sorted(entries) => entries
                .binary_search_by_key(&key, Entry::key)
                .ok()
                .map(|i| entries[i].slot),
            Bucket::Tree(tree) => tree.get(&key).copied(),
        }
    }

    fn get_or_insert_with(
        &mut self,
        p: Ipv4Prefix,
        allocate: impl FnOnce() -> Slot,
    ) -> (Slot, bool) {
        let (high, key) = Self::split(p);
        if self.chunks.is_empty() {
            let buckets = usize::from(u16::MAX) + 1;
            self.chunks = (0..buckets / Self::CHUNK).map(|_| None).collect();
            self.occupied = vec![0; buckets / 64];
        }
        let chunk = self.chunks[high / Self::CHUNK].get_or_insert_with(|| {
            (0..Self::CHUNK)
                .map(|_| Bucket::Sorted(Vec::new()))
                .collect()
        });
        let bucket = &mut chunk[high % Self::CHUNK];
        let slot = match bucket {
            Bucket::Sorted(entries) => match entries.binary_search_by_key(&key, Entry::key) {
                Ok(i) => return (entries[i].slot, false),
                Err(i) => {
                    let slot = allocate();
                    if entries.len() == entries.capacity() {
                        // A full table's buckets hold 15 entries on
                        // average: doubling left them a third empty (13
                        // bytes a prefix, where 8 would do).
                        entries.reserve_exact((entries.len() / 8).max(4));
                    }
                    entries.insert(
                        i,
                        Entry {
                            low: key.0,
                            len: key.1,
                            slot,
                        },
                    );
                    if entries.len() > Self::TREE_AT {
                        let tree = entries.iter().map(|e| (e.key(), e.slot)).collect();
                        *bucket = Bucket::Tree(tree);
                    }
                    slot
                }
            },
            Bucket::Tree(tree) => match tree.entry(key) {
                TreeEntry::Occupied(o) => return (*o.get(), false),
                TreeEntry::Vacant(v) => *v.insert(allocate()),
            },
        };
        self.occupied[high / 64] |= 1 << (high % 64);
        self.len += 1;
        (slot, true)
    }

    /// The buckets that hold prefixes, in order.
    fn occupied_buckets(&self) -> impl Iterator<Item = usize> + '_ {
        self.occupied
            .iter()
            .enumerate()
            .flat_map(|(word, &bits)| set_bits(word, bits))
    }

    /// Clear bucket `high`'s bit if it holds nothing now.
    fn note_if_empty(&mut self, high: usize) {
        let empty = match self.bucket(high) {
            None => true,
            Some(Bucket::Sorted(entries)) => entries.is_empty(),
            Some(Bucket::Tree(tree)) => tree.is_empty(),
        };
        if empty {
            self.occupied[high / 64] &= !(1 << (high % 64));
        }
    }

    fn remove(&mut self, p: Ipv4Prefix) -> Option<Slot> {
        let (high, key) = Self::split(p);
        let slot = match self.bucket_mut(high)? {
            Bucket::Sorted(entries) => {
                let i = entries.binary_search_by_key(&key, Entry::key).ok()?;
                let slot = entries.remove(i).slot;
                if entries.is_empty() {
                    // A withdrawn full table gives its memory back.
                    *entries = Vec::new();
                }
                slot
            }
            Bucket::Tree(tree) => tree.remove(&key)?,
        };
        self.note_if_empty(high);
        self.len -= 1;
        Some(slot)
    }

    fn retain(&mut self, keep: &mut impl FnMut(Slot) -> bool) {
        let mut len = 0;
        // Word by word: `retain_in` clears bits as buckets empty.
        for word in 0..self.occupied.len() {
            for high in set_bits(word, self.occupied[word]) {
                len += self.retain_in(high, keep);
            }
        }
        self.len = len;
    }

    /// `retain` in bucket `high`; how many prefixes it keeps.
    fn retain_in(&mut self, high: usize, keep: &mut impl FnMut(Slot) -> bool) -> usize {
        let Some(bucket) = self.bucket_mut(high) else {
            return 0;
        };
        let kept = match bucket {
            Bucket::Sorted(entries) => {
                entries.retain(|e| keep(e.slot));
                if entries.is_empty() {
                    *entries = Vec::new();
                }
                entries.len()
            }
            Bucket::Tree(tree) => {
                tree.retain(|_, slot| keep(*slot));
                tree.len()
            }
        };
        if kept == 0 {
            self.occupied[high / 64] &= !(1 << (high % 64));
        }
        kept
    }

    fn iter(&self) -> impl Iterator<Item = (Ipv4Prefix, Slot)> + '_ {
        self.occupied_buckets().flat_map(|high| {
            let bucket = self.bucket(high).expect("an occupied bucket exists");
            let prefix = move |(low, len): (u16, u8)| {
                let addr = Ipv4Addr::from(((high as u32) << 16) | u32::from(low));
                Ipv4Prefix::new(addr, len)
            };
            let (sorted, tree) = match bucket {
                Bucket::Sorted(entries) => (entries.as_slice(), None),
                Bucket::Tree(tree) => (&[][..], Some(tree)),
            };
            let entries = sorted.iter().map(|e| (e.key(), e.slot)).chain(
                tree.into_iter()
                    .flat_map(|t| t.iter().map(|(k, s)| (*k, *s))),
            );
            entries.filter_map(move |(key, slot)| prefix(key).map(|p| (p, slot)))
        })
    }
}

/// The bucket numbers of the set bits of `bits`, word `word` of a bitmap.
fn set_bits(word: usize, mut bits: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (bits != 0).then(|| {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            word * 64 + bit
        })
    })
}

/// A hint to load `value`'s cache line.
#[allow(unsafe_code)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault, and SSE is part of
    // the x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().expect("prefix")
    }

    #[test]
    fn both_families_in_order_with_stable_slots() {
        let mut index = PrefixIndex::default();
        let mut next = 0;
        let mut allocate = || {
            next += 1;
            next
        };
        assert_eq!(
            index.get_or_insert_with(p("2001:db8::/32"), &mut allocate),
            (1, true)
        );
        assert_eq!(
            index.get_or_insert_with(p("198.51.100.0/24"), &mut allocate),
            (2, true)
        );
        assert_eq!(
            index.get_or_insert_with(p("192.0.2.0/24"), &mut allocate),
            (3, true)
        );
        assert_eq!(
            index.get_or_insert_with(p("198.51.100.0/24"), &mut allocate),
            (2, false)
        );
        assert_eq!(index.get(&p("192.0.2.0/25")), None);
        let order: Vec<(Prefix, Slot)> = index.iter().collect();
        assert_eq!(
            order,
            vec![
                (p("192.0.2.0/24"), 3),
                (p("198.51.100.0/24"), 2),
                (p("2001:db8::/32"), 1)
            ]
        );
        assert_eq!(index.remove(&p("2001:db8::/32")), Some(1));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn retain_keeps_the_slots_asked_for_in_both_families() {
        let mut index = PrefixIndex::default();
        let prefixes = ["10.0.0.0/8", "10.0.0.0/24", "192.0.2.0/24", "2001:db8::/32"];
        for (n, s) in prefixes.iter().enumerate() {
            index.get_or_insert_with(p(s), || n as Slot);
        }
        index.retain(|slot| slot % 2 == 1);
        let left: Vec<(Prefix, Slot)> = index.iter().collect();
        assert_eq!(left, vec![(p("10.0.0.0/24"), 1), (p("2001:db8::/32"), 3)]);
        assert_eq!(index.len(), 2);
        assert_eq!(index.get(&p("10.0.0.0/8")), None);
    }

    #[test]
    fn walks_see_exactly_the_buckets_that_hold_prefixes() {
        let mut index = PrefixIndex::default();
        let prefixes = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.0.1.0/24",
            "255.255.255.255/32",
        ];
        for (n, s) in prefixes.iter().enumerate() {
            index.get_or_insert_with(p(s), || n as Slot);
        }
        let buckets = |index: &PrefixIndex| index.v4.occupied_buckets().collect::<Vec<_>>();
        assert_eq!(buckets(&index), vec![0, 10 << 8, 0xffff]);
        // Only the chunks these buckets are in were allocated.
        assert_eq!(index.v4.chunks.iter().flatten().count(), 3);
        // The bucket keeps its bit while one of its prefixes is left.
        index.remove(&p("10.0.0.0/8"));
        assert_eq!(buckets(&index), vec![0, 10 << 8, 0xffff]);
        index.remove(&p("10.0.1.0/24"));
        assert_eq!(buckets(&index), vec![0, 0xffff]);
        index.retain(|slot| slot != 3);
        assert_eq!(buckets(&index), vec![0]);
        let left: Vec<(Prefix, Slot)> = index.iter().collect();
        assert_eq!(left, vec![(p("0.0.0.0/0"), 0)]);
        // Refilled after emptying: walked again.
        index.get_or_insert_with(p("255.255.0.0/16"), || 9);
        assert_eq!(index.iter().count(), 2);
    }

    #[test]
    fn a_crowded_ipv4_bucket_becomes_a_tree_and_stays_ordered() {
        let mut index = PrefixIndex::default();
        // 2,000 host routes in 198.51.0.0/16, inserted backwards, and the
        // /16 itself: one bucket, past the tree threshold.
        let host = |i: u32| {
            Prefix::new(
                std::net::IpAddr::from((198u32 << 24 | 51 << 16 | i).to_be_bytes()),
                32,
            )
            .expect("prefix")
        };
        for i in (0..2_000).rev() {
            assert_eq!(index.get_or_insert_with(host(i), || i), (i, true));
        }
        index.get_or_insert_with(p("198.51.0.0/16"), || 9_999);
        index.get_or_insert_with(p("10.0.0.0/8"), || 10_000);
        assert!(matches!(
            index.v4.bucket(198 << 8 | 51),
            Some(Bucket::Tree(_))
        ));
        assert_eq!(index.len(), 2_002);
        assert_eq!(index.get(&host(1_234)), Some(1_234));
        assert_eq!(index.get_or_insert_with(host(7), || 0), (7, false));
        let order: Vec<Prefix> = index.iter().map(|(p, _)| p).collect();
        assert_eq!(order[0], p("10.0.0.0/8"));
        assert_eq!(
            order[1],
            p("198.51.0.0/16"),
            "shorter first at the same address"
        );
        assert_eq!(order[2], host(0));
        assert!(order.windows(2).all(|w| w[0] < w[1]), "address order");
        assert_eq!(index.remove(&host(1_234)), Some(1_234));
        assert_eq!(index.get(&host(1_234)), None);
        assert_eq!(index.remove(&p("10.0.0.0/8")), Some(10_000));
        assert_eq!(index.remove(&p("10.0.0.0/8")), None);
        assert_eq!(index.len(), 2_000);
    }
}
