//! Starling's kernel FIB programmer.
//!
//! The caller says what the table should hold ([`Fib::apply`] with the
//! whole desired set); the programmer diffs it against what it installed
//! and writes only the difference, in batches: hundreds of route messages
//! per `sendmsg`, no per-route ACK (the kernel still reports errors), one
//! ACK at the end of a batch to know it is done. One synchronous request
//! and ACK per route — BIRD's way — caps at ~126k routes/s on this class
//! of machine; batching reaches the kernel's ~280k/s.
//!
//! Ownership: every route Starling writes carries its own `rtm_protocol`
//! ([`FibConfig::protocol`]) in its own table. On start, [`Fib::adopt`]
//! reads back the routes of that protocol, so a restart that wants the
//! same routes writes nothing (zero churn) and a route no longer wanted is
//! deleted by the next `apply`. [`Fib::resync`] repairs whatever someone
//! else changed. Routes of other protocols are never touched.
//!
//! [`Programmer`] is the loop the daemon runs around all this: a stream of
//! wanted routes in, batched writes, adoption and the sweep after a
//! restart, the route monitor's repairs and the periodic resync.

#[doc(hidden)]
pub mod fuzzing;
mod monitor;
mod netlink;
mod nexthop;
mod programmer;
mod route_map;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

pub use monitor::{KernelEvent, RouteMonitor};
use netlink::Dumped;
pub use netlink::Netlink;
pub use programmer::{Pacing, Programmer, Report, Translate};
pub use route_map::{Installed, PendingChanges, RouteMap};

/// Routes Starling writes carry this `rtm_protocol` unless configured
/// otherwise. Not RTPROT_BGP (186), which BIRD, FRR and GoBGP share, so
/// that Starling never adopts another daemon's routes.
pub const DEFAULT_PROTOCOL: u8 = 199;

/// An IP prefix, address masked to its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    addr: IpAddr,
    len: u8,
}

impl Destination {
    /// The prefix `addr/len`, host bits cleared. `None` if `len` is too
    /// long for the family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let addr = match addr {
            IpAddr::V4(a) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
            _ => return None,
        };
        Some(Destination { addr, len })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Destination {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}': no /length"))?;
        let addr: IpAddr = addr.parse().map_err(|_| format!("'{s}': bad address"))?;
        let len: u8 = len.parse().map_err(|_| format!("'{s}': bad length"))?;
        Destination::new(addr, len).ok_or_else(|| format!("'{s}': length too long"))
    }
}

/// A table's routes: destination → target. A hash map: a full table is
/// a million point lookups and inserts per burst, where a B-tree's
/// cache misses cost a third of the daemon's time (perf, `starling-bench
/// fib`).
pub type Routes = HashMap<Destination, Target, RouteHasher>;

/// The hasher of [`Routes`]: fast (SipHash was 2 % of the daemon's time
/// in a full table), seeded per process, as peers choose the keys.
pub type RouteHasher = foldhash::fast::RandomState;

/// A route's gateways: one inline (the usual case, so a full table costs
/// no allocation per route), more on the heap.
pub type Gateways = smallvec::SmallVec<[IpAddr; 1]>;

/// Where a route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Through one or more gateways (more than one: ECMP), sorted.
    Via(Gateways),
    /// Dropped: Calico originates its aggregate blocks this way.
    Blackhole,
}

impl Target {
    /// Gateways in canonical (sorted, deduplicated) order, so equal sets
    /// compare equal.
    pub fn via(gateways: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut gateways: Gateways = gateways.into_iter().collect();
        gateways.sort();
        gateways.dedup();
        Target::Via(gateways)
    }
}

/// How the programmer writes.
#[derive(Debug, Clone)]
pub struct FibConfig {
    /// The kernel table routes go into (254 is `main`).
    pub table: u32,
    /// The `rtm_protocol` that marks Starling's routes.
    pub protocol: u8,
    /// Route messages per `sendmsg`.
    pub batch: usize,
    /// Route metric (priority).
    pub metric: Option<u32>,
    /// ECMP routes name kernel nexthop groups (when the kernel has them)
    /// rather than listing their gateways inline.
    pub nexthop_objects: bool,
}

impl Default for FibConfig {
    fn default() -> Self {
        FibConfig {
            table: 254,
            protocol: DEFAULT_PROTOCOL,
            batch: 512,
            metric: None,
            nexthop_objects: true,
        }
    }
}

/// Why the FIB could not be programmed.
#[derive(Debug, thiserror::Error)]
pub enum FibError {
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("netlink: malformed reply: {0}")]
    Decode(String),
    #[error("netlink dump interrupted too often; the table is changing under us")]
    DumpInterrupted,
}

/// A route the kernel refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub destination: Destination,
    pub error: String,
}

/// What one `apply` or `resync` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub replaced: usize,
    pub deleted: usize,
    /// Routes the kernel refused; they are left out of the installed set
    /// and retried by the next `apply`.
    pub refused: Vec<Refused>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.replaced == 0 && self.deleted == 0 && self.refused.is_empty()
    }
}

/// Changes [`Fib::apply_changes`] writes per pass.
const APPLY_SLICE: usize = 65_536;

/// The programmer of one table.
#[derive(Debug)]
pub struct Fib {
    netlink: Netlink,
    config: FibConfig,
    installed: Installed,
    /// Our nexthop objects; `None` when not used (disabled, or a kernel
    /// without them).
    nexthops: Option<nexthop::Registry>,
    /// Installed single-gateway routes per gateway: while a gateway has
    /// any, its nexthop object stays.
    single: HashMap<IpAddr, usize>,
}

/// What [`Fib::resync`] keeps of a dump: counts of the routes that match
/// and the routes that do not.
#[derive(Debug, Default)]
struct Scan {
    /// Kernel routes equal to ours, per family (IPv4, IPv6).
    matched: [usize; 2],
    /// Kernel routes of our protocol that differ from ours or that we
    /// did not install.
    differ: Vec<(Destination, Target)>,
}

impl Scan {
    fn see(&mut self, installed: &Installed, dumped: Dumped) {
        match dumped {
            Dumped::Route(dest, target) => {
                if installed.get(&dest) == Some(&target) {
                    self.matched[usize::from(dest.addr().is_ipv6())] += 1;
                } else {
                    self.differ.push((dest, target));
                }
            }
            Dumped::Restart { ipv6 } => {
                self.matched[usize::from(ipv6)] = 0;
                self.differ.retain(|(d, _)| d.addr().is_ipv6() != ipv6);
            }
        }
    }
}

/// Deletes, highest prefix first: ~4× faster here than ascending (293k/s
/// against 73k/s for 100k routes, benches/fib.rs), as the kernel's trie
/// shrinks from the end instead of being rebalanced at every step.
fn descending(mut deletes: Vec<(Op, Destination, Target)>) -> Vec<(Op, Destination, Target)> {
    deletes.sort_unstable_by_key(|(_, dest, _)| std::cmp::Reverse(*dest));
    deletes
}

fn single_gateway(target: &Target) -> Option<IpAddr> {
    match target {
        Target::Via(g) if g.len() == 1 => Some(g[0]),
        _ => None,
    }
}

fn is_ecmp(target: &Target) -> bool {
    matches!(target, Target::Via(g) if g.len() >= 2)
}

/// One write: what to send for a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Replace,
    Delete,
}

impl Fib {
    /// Open a netlink socket in the calling thread's network namespace.
    pub fn open(config: FibConfig) -> Result<Self, FibError> {
        let mut netlink = Netlink::open()?;
        let nexthops = if config.nexthop_objects {
            netlink.dump_nexthops()?.map(|objects| {
                let mut registry = nexthop::Registry::default();
                let ours: Vec<_> = objects
                    .into_iter()
                    .filter(|o| o.protocol == config.protocol)
                    .collect();
                registry.adopt(&ours);
                registry
            })
        } else {
            None
        };
        Ok(Fib {
            netlink,
            config,
            installed: Installed::default(),
            nexthops,
            single: HashMap::new(),
        })
    }

    /// Whether ECMP routes use kernel nexthop groups.
    pub fn uses_nexthop_objects(&self) -> bool {
        self.nexthops.is_some()
    }

    /// Group id → gateways, for reading routes that name a group.
    fn group_gateways(&self) -> BTreeMap<u32, Vec<IpAddr>> {
        self.nexthops
            .iter()
            .flat_map(|r| {
                let groups = r.groups.iter().map(|(set, id)| (*id, set.clone()));
                let gateways = r.gateways.iter().map(|(gw, id)| (*id, vec![*gw]));
                groups.chain(gateways)
            })
            .collect()
    }

    /// The nexthop object a route names, created when missing: its
    /// gateway's object, or for ECMP the group of its gateways. A route
    /// naming an object costs the kernel about a third less than one
    /// listing its gateway (no nexthop to build and resolve per route:
    /// the floor, `starling-bench fib`). `None`: a blackhole, no nexthop
    /// objects, or the kernel refused one (the route then lists its
    /// gateways inline, and the kernel's answer to that is the refusal
    /// the caller sees).
    fn group_for(&mut self, target: &Target) -> Result<Option<u32>, FibError> {
        let (Some(registry), Target::Via(gateways)) = (self.nexthops.as_mut(), target) else {
            return Ok(None);
        };
        if gateways.is_empty() {
            return Ok(None);
        }
        if let [gateway] = gateways.as_slice() {
            if let Some(id) = registry.gateways.get(gateway) {
                return Ok(Some(*id));
            }
        } else if gateways.len() < 2 {
            return Ok(None);
        }
        let mut set = gateways.to_vec();
        set.sort_unstable();
        if let Some(id) = registry.groups.get(&set) {
            return Ok(Some(*id));
        }
        let mut members = Vec::with_capacity(set.len());
        for gateway in &set {
            if let Some(id) = registry.gateways.get(gateway) {
                members.push(*id);
                continue;
            }
            let Some(oif) = self.netlink.output_interface(*gateway)? else {
                return Ok(None);
            };
            let id = registry.allocate();
            let body = nexthop::new_gateway(id, self.config.protocol, *gateway, oif);
            let flags = netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_REPLACE;
            if let Some(error) = self
                .netlink
                .request_raw(&[(nexthop::RTM_NEWNEXTHOP, flags, body)])?
                .remove(0)
            {
                tracing::debug!(%gateway, "nexthop object refused: {error}");
                return Ok(None);
            }
            registry.gateways.insert(*gateway, id);
            members.push(id);
        }
        if let [id] = members.as_slice() {
            return Ok(Some(*id));
        }
        let id = registry.allocate();
        let body = nexthop::new_group(id, self.config.protocol, &members);
        let flags = netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_REPLACE;
        if let Some(error) = self
            .netlink
            .request_raw(&[(nexthop::RTM_NEWNEXTHOP, flags, body)])?
            .remove(0)
        {
            tracing::debug!(?set, "nexthop group refused: {error}");
            return Ok(None);
        }
        registry.groups.insert(set, id);
        Ok(Some(id))
    }

    /// Delete our groups no installed route uses, then gateways no group
    /// uses. (Deleting a nexthop deletes the routes using it: only unused
    /// ones go.)
    fn collect_nexthops(&mut self) -> Result<(), FibError> {
        let Some(registry) = self.nexthops.as_mut() else {
            return Ok(());
        };
        let used: std::collections::BTreeSet<Vec<IpAddr>> = self
            .installed
            .targets()
            .filter_map(|(t, _)| match t {
                Target::Via(g) if g.len() >= 2 => {
                    let mut set = g.to_vec();
                    set.sort_unstable();
                    Some(set)
                }
                _ => None,
            })
            .collect();
        let unused_groups: Vec<(Vec<IpAddr>, u32)> = registry
            .groups
            .iter()
            .filter(|(set, _)| !used.contains(*set))
            .map(|(set, id)| (set.clone(), *id))
            .collect();
        let mut still: std::collections::BTreeSet<IpAddr> = registry
            .groups
            .keys()
            .filter(|set| used.contains(*set))
            .flatten()
            .copied()
            .collect();
        still.extend(self.single.keys().copied());
        let unused_gateways: Vec<(IpAddr, u32)> = registry
            .gateways
            .iter()
            .filter(|(gw, _)| !still.contains(*gw))
            .map(|(gw, id)| (*gw, *id))
            .collect();
        if unused_groups.is_empty() && unused_gateways.is_empty() {
            return Ok(());
        }
        let groups: Vec<_> = unused_groups
            .iter()
            .map(|(_, id)| (nexthop::RTM_DELNEXTHOP, 0, nexthop::delete(*id)))
            .collect();
        self.netlink.request_raw(&groups)?;
        let gateways: Vec<_> = unused_gateways
            .iter()
            .map(|(_, id)| (nexthop::RTM_DELNEXTHOP, 0, nexthop::delete(*id)))
            .collect();
        self.netlink.request_raw(&gateways)?;
        for (set, _) in unused_groups {
            registry.groups.remove(&set);
        }
        for (gw, _) in unused_gateways {
            registry.gateways.remove(&gw);
        }
        Ok(())
    }

    pub fn config(&self) -> &FibConfig {
        &self.config
    }

    /// What Starling believes it has installed.
    pub fn installed(&self) -> &Installed {
        &self.installed
    }

    /// Whether a kernel notification shows the table differing from what
    /// we installed: a route of ours changed or deleted by someone else, a
    /// foreign route over one of ours, or lost notifications. Echoes of our
    /// own writes agree.
    pub fn disagrees(&self, event: &KernelEvent) -> bool {
        match event {
            KernelEvent::Overrun => true,
            KernelEvent::Added {
                table,
                protocol,
                dest,
                target,
            } if *table == self.config.table => {
                if *protocol == self.config.protocol {
                    self.installed.get(dest) != target.as_ref()
                } else {
                    self.installed.contains_key(dest)
                }
            }
            KernelEvent::Deleted {
                table,
                protocol,
                dest,
            } => {
                *table == self.config.table
                    && *protocol == self.config.protocol
                    && self.installed.contains_key(dest)
            }
            KernelEvent::Added { .. } => false,
        }
    }

    /// Take over the routes of our protocol already in the table (left by a
    /// previous run). Returns how many.
    pub fn adopt(&mut self) -> Result<usize, FibError> {
        let groups = self.group_gateways();
        let mut adopted = Installed::default();
        self.netlink
            .dump_each(&self.config, &groups, |dumped| match dumped {
                Dumped::Route(dest, target) => {
                    adopted.insert(dest, target);
                }
                Dumped::Restart { ipv6 } => adopted.retain(|d| d.addr().is_ipv6() != ipv6),
            })?;
        self.installed = adopted;
        self.count_single();
        Ok(self.installed.len())
    }

    /// Make the table hold exactly `desired` (among routes of our
    /// protocol): add what is missing, replace what differs, delete what is
    /// no longer wanted.
    pub fn apply(&mut self, desired: &Routes) -> Result<Changes, FibError> {
        let mut ops: Vec<(Op, Destination, Target)> = Vec::new();
        for (dest, target) in desired {
            match self.installed.get(dest) {
                None => ops.push((Op::Add, *dest, target.clone())),
                Some(have) if have != target => ops.push((Op::Replace, *dest, target.clone())),
                Some(_) => {}
            }
        }
        let deletes = self
            .installed
            .iter()
            .filter(|(dest, _)| !desired.contains_key(dest))
            .map(|(dest, target)| (Op::Delete, dest, target.clone()))
            .collect();
        ops.extend(descending(deletes));
        self.write(ops)
    }

    /// Apply changes: each destination named to its wanted target, `None`
    /// for no route. Only these destinations are looked at, so a full
    /// table arriving in many bursts costs no walk of the whole table per
    /// burst, and the caller keeps no copy of the table: what it wants
    /// is what was installed, plus these changes.
    ///
    /// Adds and replaces go in the order given. The order routes arrived
    /// in, scattered over the address space (as a hash map's order is),
    /// is the kernel's fastest; ascending order costs it ~20 % more for a
    /// full table (the FIB floor, `starling-bench fib`). Deletes follow,
    /// descending, per slice of 65,536 changes.
    pub fn apply_changes<'a>(
        &mut self,
        changes: impl IntoIterator<Item = (Destination, &'a Option<Target>)>,
    ) -> Result<Changes, FibError> {
        // In slices, so a full table's ops (each with its target) are
        // never all held at once.
        let mut total = Changes::default();
        let mut changes = changes.into_iter().peekable();
        while changes.peek().is_some() {
            let mut ops: Vec<(Op, Destination, Target)> = Vec::new();
            let mut deletes = Vec::new();
            for (dest, want) in changes.by_ref().take(APPLY_SLICE) {
                match (want, self.installed.get(&dest)) {
                    (Some(want), None) => ops.push((Op::Add, dest, want.clone())),
                    (Some(want), Some(have)) if have != want => {
                        ops.push((Op::Replace, dest, want.clone()));
                    }
                    (None, Some(have)) => deletes.push((Op::Delete, dest, have.clone())),
                    _ => {}
                }
            }
            ops.extend(descending(deletes));
            let done = self.write(ops)?;
            total.added += done.added;
            total.replaced += done.replaced;
            total.deleted += done.deleted;
            total.refused.extend(done.refused);
        }
        Ok(total)
    }

    /// Compare the kernel's table with what we installed and repair the
    /// difference: routes of ours someone deleted or changed are written
    /// again, routes of our protocol we did not write are deleted.
    ///
    /// The kernel's routes are compared as the dump streams in, and only
    /// the differences are kept: a full table that matches costs no copy
    /// of it (a copy is 136 MB per million routes).
    pub fn resync(&mut self) -> Result<Changes, FibError> {
        let groups = self.group_gateways();
        let mut scan = Scan::default();
        let installed = &self.installed;
        self.netlink
            .dump_each(&self.config, &groups, |dumped| scan.see(installed, dumped))?;
        let present = scan.matched.iter().sum::<usize>()
            + scan
                .differ
                .iter()
                .filter(|(dest, _)| installed.contains_key(dest))
                .count();
        let missing: Vec<Destination> = if present == installed.len() {
            Vec::new()
        } else {
            // Some of ours are gone: which takes the kernel's keys (a
            // second dump; a change between the two is the monitor's).
            let mut kernel = HashSet::new();
            self.netlink
                .dump_each(&self.config, &groups, |dumped| match dumped {
                    Dumped::Route(dest, _) => {
                        kernel.insert(dest);
                    }
                    Dumped::Restart { ipv6 } => kernel.retain(|d| d.addr().is_ipv6() != ipv6),
                })?;
            installed
                .keys()
                .filter(|dest| !kernel.contains(dest))
                .collect()
        };
        // The repair writes are relative to the kernel's state, so the
        // bookkeeping starts from it; what we want is kept for the retry.
        let (mut ops, mut deletes, mut wanted) = (Vec::new(), Vec::new(), Vec::new());
        let mut released = false;
        for (dest, theirs) in scan.differ {
            match self.installed.get(&dest) {
                Some(ours) => {
                    ops.push((Op::Replace, dest, ours.clone()));
                    wanted.push((dest, Some(ours.clone())));
                }
                None => {
                    deletes.push((Op::Delete, dest, theirs.clone()));
                    wanted.push((dest, None));
                }
            }
            released |= self.install(dest, theirs);
        }
        for dest in missing {
            if let Some(ours) = self.installed.get(&dest).cloned() {
                ops.push((Op::Add, dest, ours.clone()));
                wanted.push((dest, Some(ours)));
                released |= self.uninstall(&dest);
            }
        }
        ops.extend(descending(deletes));
        let mut changes = self.write(ops)?;
        if released {
            self.collect_nexthops()?;
        }
        // Anything the kernel refused stays out; retry through
        // apply_changes.
        let retry = self.apply_changes(wanted.iter().map(|(dest, target)| (*dest, target)))?;
        changes.added += retry.added;
        changes.replaced += retry.replaced;
        changes.deleted += retry.deleted;
        changes.refused = retry.refused;
        Ok(changes)
    }

    /// Delete every route of ours (a clean shutdown that leaves nothing).
    pub fn clear(&mut self) -> Result<Changes, FibError> {
        self.apply(&Routes::default())
    }

    fn write(&mut self, ops: Vec<(Op, Destination, Target)>) -> Result<Changes, FibError> {
        let mut changes = Changes::default();
        if ops.is_empty() {
            return Ok(changes);
        }
        // The nexthop object each op's route names, if any (in order).
        let mut groups = Vec::with_capacity(ops.len());
        for (op, _, target) in &ops {
            groups.push(match op {
                Op::Delete => None,
                _ => self.group_for(target)?,
            });
        }
        // Whether any ECMP route comes or goes: only then can a nexthop
        // group fall out of use (checked before `installed` changes).
        let ecmp_touched = self.nexthops.is_some()
            && ops.iter().any(|(_, dest, target)| {
                is_ecmp(target) || self.installed.get(dest).is_some_and(is_ecmp)
            });
        let refused = self.netlink.write(&self.config, &ops, &groups)?;
        let refused: BTreeMap<Destination, String> = refused.into_iter().collect();
        let mut released = false;
        for (op, dest, target) in ops {
            if let Some(error) = refused.get(&dest) {
                // A delete of a route already gone is done, not refused.
                if op == Op::Delete && error.contains("No such process") {
                    released |= self.uninstall(&dest);
                    changes.deleted += 1;
                    continue;
                }
                if op != Op::Delete {
                    released |= self.uninstall(&dest);
                }
                changes.refused.push(Refused {
                    destination: dest,
                    error: error.clone(),
                });
                continue;
            }
            match op {
                Op::Add => {
                    changes.added += 1;
                    released |= self.install(dest, target);
                }
                Op::Replace => {
                    changes.replaced += 1;
                    released |= self.install(dest, target);
                }
                Op::Delete => {
                    changes.deleted += 1;
                    released |= self.uninstall(&dest);
                }
            }
        }
        if ecmp_touched || released {
            self.collect_nexthops()?;
        }
        Ok(changes)
    }

    /// Record `dest` as installed with `target`; whether a gateway lost
    /// its last single-gateway route.
    fn install(&mut self, dest: Destination, target: Target) -> bool {
        let new = single_gateway(&target);
        let old = self.installed.insert(dest, target);
        self.recount(old.as_ref().and_then(single_gateway), new)
    }

    /// Record `dest` as gone; whether a gateway lost its last
    /// single-gateway route.
    fn uninstall(&mut self, dest: &Destination) -> bool {
        let old = self.installed.remove(dest);
        self.recount(old.as_ref().and_then(single_gateway), None)
    }

    fn recount(&mut self, old: Option<IpAddr>, new: Option<IpAddr>) -> bool {
        if self.nexthops.is_none() || old == new {
            return false;
        }
        if let Some(gw) = new {
            *self.single.entry(gw).or_default() += 1;
        }
        let Some(gw) = old else { return false };
        match self.single.get_mut(&gw) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.single.remove(&gw);
                true
            }
        }
    }

    /// Count single-gateway routes per gateway afresh (the installed set
    /// was replaced wholesale).
    fn count_single(&mut self) {
        self.single.clear();
        if self.nexthops.is_none() {
            return;
        }
        for (target, uses) in self.installed.targets() {
            if let Some(gw) = single_gateway(target) {
                *self.single.entry(gw).or_default() += uses;
            }
        }
    }
}

#[cfg(test)]
mod tests;
