//! Prefix → slot: where each destination lives in the RIB's table.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use starling_wire::{Ipv4Prefix, Ipv6Prefix, Prefix};

use super::Slot;

/// One ordered map per family. A full IPv4 table is the large one, and its
/// 8-byte keys with 4-byte values keep the B-tree's nodes small: a search
/// touches fewer cache lines than with 20-byte `Prefix` keys and whole
/// destinations as values, and an insert moves less memory.
#[derive(Debug, Default)]
pub(super) struct PrefixIndex {
    v4: BTreeMap<Ipv4Prefix, Slot>,
    v6: BTreeMap<Ipv6Prefix, Slot>,
}

impl PrefixIndex {
    pub(super) fn get(&self, prefix: &Prefix) -> Option<Slot> {
        match prefix {
            Prefix::V4(p) => self.v4.get(p).copied(),
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
        fn slot_of<K: Ord>(
            entry: Entry<'_, K, Slot>,
            allocate: impl FnOnce() -> Slot,
        ) -> (Slot, bool) {
            match entry {
                Entry::Occupied(o) => (*o.get(), false),
                Entry::Vacant(v) => (*v.insert(allocate()), true),
            }
        }
        match prefix {
            Prefix::V4(p) => slot_of(self.v4.entry(p), allocate),
            Prefix::V6(p) => slot_of(self.v6.entry(p), allocate),
        }
    }

    pub(super) fn remove(&mut self, prefix: &Prefix) -> Option<Slot> {
        match prefix {
            Prefix::V4(p) => self.v4.remove(p),
            Prefix::V6(p) => self.v6.remove(p),
        }
    }

    /// Every prefix and its slot: IPv4 then IPv6, each in address order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Prefix, Slot)> + '_ {
        let v4 = self.v4.iter().map(|(p, s)| (Prefix::V4(*p), *s));
        let v6 = self.v6.iter().map(|(p, s)| (Prefix::V6(*p), *s));
        v4.chain(v6)
    }

    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
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
}
