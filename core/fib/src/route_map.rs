//! Destination → target maps, compactly: the routes Starling has
//! installed, and the changes waiting to be written.
//!
//! A full table is a million routes over a handful of targets (a gateway
//! per peer, a few ECMP sets), so each route holds a 4-byte number of its
//! target rather than the 40-byte target: a million routes take 52 MB
//! instead of 136.

use std::collections::HashMap;
use std::hash::Hash;

use crate::{Destination, RouteHasher, Target};

/// A target's number in a [`RouteMap`]'s table.
type TargetId = u32;

/// The routes installed: destination → target.
pub type Installed = RouteMap<Target>;

/// Changes not written yet: destination → wanted target (`None`: no
/// route), as [`crate::Fib::apply_changes`] takes them.
pub type PendingChanges = RouteMap<Option<Target>>;

/// Destination → `T`, with the values interned and counted.
#[derive(Debug)]
pub struct RouteMap<T> {
    routes: HashMap<Destination, TargetId, RouteHasher>,
    values: Values<T>,
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
            routes: HashMap::default(),
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
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn get(&self, dest: &Destination) -> Option<&T> {
        self.routes.get(dest).and_then(|&id| self.values.get(id))
    }

    pub fn contains_key(&self, dest: &Destination) -> bool {
        self.routes.contains_key(dest)
    }

    pub fn keys(&self) -> impl Iterator<Item = &Destination> {
        self.routes.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Destination, &T)> {
        self.routes
            .iter()
            .filter_map(|(dest, &id)| Some((dest, self.values.get(id)?)))
    }

    /// Every distinct value in use, with how many routes have it.
    pub fn targets(&self) -> impl Iterator<Item = (&T, usize)> {
        self.values.by_id.iter().flatten().map(|(t, n)| (t, *n))
    }

    /// Set `dest`'s value; the one it had, if any.
    pub fn insert(&mut self, dest: Destination, value: T) -> Option<T> {
        let id = self.values.acquire(value);
        let old = self.routes.insert(dest, id)?;
        self.values.release(old)
    }

    /// Forget `dest`; the value it had, if any.
    pub fn remove(&mut self, dest: &Destination) -> Option<T> {
        let old = self.routes.remove(dest)?;
        self.values.release(old)
    }

    /// Keep only the routes whose destination `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&Destination) -> bool) {
        let Self { routes, values } = self;
        routes.retain(|dest, id| {
            keep(dest) || {
                values.release(*id);
                false
            }
        });
    }

    /// Give back memory a burst took, keeping room for `min` routes.
    pub fn shrink_to(&mut self, min: usize) {
        self.routes.shrink_to(min);
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
                self.by_id.push(entry);
                (self.by_id.len() - 1) as TargetId
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
        installed.insert(d("2001:db8::/48"), via(1));
        installed.retain(|dest| dest.addr().is_ipv6());
        assert_eq!(installed.len(), 1);
        assert_eq!(installed.targets().collect::<Vec<_>>(), vec![(&via(1), 1)]);
    }

    #[test]
    fn a_route_costs_the_map_a_destination_and_a_number() {
        assert_eq!(std::mem::size_of::<(Destination, TargetId)>(), 24);
    }
}
