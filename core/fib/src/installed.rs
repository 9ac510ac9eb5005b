//! The routes Starling has installed, compactly.
//!
//! A full table is a million routes over a handful of targets (a gateway
//! per peer, a few ECMP sets), so each route holds a 4-byte number of its
//! target rather than the 40-byte target: a million routes take 52 MB
//! instead of 136.

use std::collections::HashMap;

use crate::{Destination, RouteHasher, Target};

/// A target's number in [`Installed`]'s table.
type TargetId = u32;

/// Destination → target, with the targets interned and counted.
#[derive(Debug, Default)]
pub struct Installed {
    routes: HashMap<Destination, TargetId, RouteHasher>,
    /// By id: the target and how many routes use it; `None` once unused
    /// (its id is then in `free`).
    targets: Vec<Option<(Target, usize)>>,
    ids: HashMap<Target, TargetId, RouteHasher>,
    free: Vec<TargetId>,
}

impl Installed {
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn get(&self, dest: &Destination) -> Option<&Target> {
        self.routes.get(dest).and_then(|&id| self.target(id))
    }

    pub fn contains_key(&self, dest: &Destination) -> bool {
        self.routes.contains_key(dest)
    }

    pub fn keys(&self) -> impl Iterator<Item = &Destination> {
        self.routes.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Destination, &Target)> {
        self.routes
            .iter()
            .filter_map(|(dest, &id)| Some((dest, self.target(id)?)))
    }

    /// Every distinct target in use, with how many routes use it.
    pub fn targets(&self) -> impl Iterator<Item = (&Target, usize)> {
        self.targets.iter().flatten().map(|(t, n)| (t, *n))
    }

    /// Set `dest`'s target; the one it had, if any.
    pub(crate) fn insert(&mut self, dest: Destination, target: Target) -> Option<Target> {
        let id = self.acquire(target);
        let old = self.routes.insert(dest, id)?;
        self.release(old)
    }

    /// Forget `dest`; the target it had, if any.
    pub(crate) fn remove(&mut self, dest: &Destination) -> Option<Target> {
        let old = self.routes.remove(dest)?;
        self.release(old)
    }

    /// Keep only the routes whose destination `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Destination) -> bool) {
        let gone: Vec<Destination> = self.routes.keys().filter(|d| !keep(d)).copied().collect();
        for dest in gone {
            self.remove(&dest);
        }
    }

    fn target(&self, id: TargetId) -> Option<&Target> {
        self.targets
            .get(id as usize)
            .and_then(Option::as_ref)
            .map(|(t, _)| t)
    }

    fn acquire(&mut self, target: Target) -> TargetId {
        if let Some(&id) = self.ids.get(&target)
            && let Some(Some((_, uses))) = self.targets.get_mut(id as usize)
        {
            *uses += 1;
            return id;
        }
        let entry = Some((target.clone(), 1));
        let id = match self.free.pop() {
            Some(id) => {
                self.targets[id as usize] = entry;
                id
            }
            None => {
                self.targets.push(entry);
                (self.targets.len() - 1) as TargetId
            }
        };
        self.ids.insert(target, id);
        id
    }

    /// One use of `id` fewer; its target (taken out when that was the
    /// last use).
    fn release(&mut self, id: TargetId) -> Option<Target> {
        let slot = self.targets.get_mut(id as usize)?;
        let (target, uses) = slot.as_mut()?;
        *uses -= 1;
        if *uses > 0 {
            return Some(target.clone());
        }
        let (target, _) = slot.take()?;
        self.ids.remove(&target);
        self.free.push(id);
        Some(target)
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
        assert_eq!(installed.targets.len(), 2, "the free number was reused");
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
