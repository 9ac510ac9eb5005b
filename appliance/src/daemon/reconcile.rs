//! Planned sessions → speaker peers, and best paths → kernel FIB.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use starling_fib::{Destination, Fib, FibConfig, Target};
use starling_plugin_host::contract::{Family, NextHopMode, Session};
use starling_speaker::config::{GracefulRestartConfig, PeerConfig, Secret};
use starling_speaker::instance::{BestPathStream, Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_store::ResourceSet;
use starling_wire::NextHop;

use super::route_policy::SessionContext;

/// The running sessions, by peer address (the speaker's key).
///
/// Changes are **make-before-break**: a session the plan drops keeps
/// running ("retiring") until every session the same change added is
/// Established and has sent its table, or [`REPLACEMENT_DEADLINE`] passes.
/// A retiring session to another node of the cluster also waits until no
/// prefix depends on it alone: changes between nodes come in steps (a node
/// is made a reflector, then its BGPPeer appears, then the mesh goes), and
/// the traffic between the nodes must not notice the steps between.
/// a session whose name or policy changed but whose OPEN would not is
/// updated in place, without a reset (a mesh peer becoming a route
/// reflector's client, a BGPPeer taking over from the mesh). Only a change
/// the peer must see in an OPEN (ASes, identifier, timers, password, ...)
/// replaces the session.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    running: BTreeMap<IpAddr, Running>,
    /// Sessions added by recent changes, not yet known to be synced.
    fresh: BTreeMap<IpAddr, Instant>,
    /// The kernel kept our routes from the previous run: every session's
    /// graceful restart capability says so (the F bit), and peers keep
    /// our routes through our restart.
    pub(super) forwarding_preserved: bool,
}

#[derive(Debug)]
struct Running {
    name: String,
    family: Family,
    config: PeerConfig,
    policy: PeerPolicy,
    context: SessionContext,
    /// No longer planned since then: waiting for its replacements.
    retiring: Option<Instant>,
    /// The peer is a node of the cluster (a Node still has its address).
    to_node: bool,
}

/// How long after a failed connection attempt the next one starts.
const CONNECT_RETRY: Duration = Duration::from_secs(5);

/// How long retiring sessions wait for their replacements to sync.
const REPLACEMENT_DEADLINE: Duration = Duration::from_secs(30);

impl Sessions {
    /// Make the speaker run `desired`, make-before-break.
    pub(super) fn reconcile(
        &mut self,
        instance: &Instance,
        rib: &RibConfig,
        desired: &[&Session],
        secrets: &ResourceSet,
        subnets: &[(IpAddr, u8)],
        nodes: &HashSet<IpAddr>,
    ) {
        let mut wanted: BTreeMap<IpAddr, Running> = BTreeMap::new();
        for s in desired {
            let Some(r) = peer(s, rib, secrets, subnets, self.forwarding_preserved) else {
                tracing::warn!(session = s.name, "unusable session in the plan; skipped");
                continue;
            };
            let address = r.config.remote.ip();
            // The speaker keys peers by address: one session per address.
            if let Some(first) = wanted.get(&address) {
                tracing::warn!(
                    session = s.name,
                    "same peer address as {}; only {} is run",
                    first.name,
                    first.name
                );
                continue;
            }
            wanted.insert(address, r);
        }
        for (address, r) in &mut self.running {
            r.to_node = nodes.contains(address);
            if !wanted.contains_key(address) && r.retiring.is_none() {
                tracing::info!(session = r.name, peer = %address, "session retiring: removed once its replacements are up");
                r.retiring = Some(Instant::now());
            }
        }
        for (address, want) in wanted {
            match self.running.get_mut(&address) {
                Some(r) if same_but_passive(&r.config, &want.config) => {
                    if r.config.passive != want.config.passive {
                        // Who connects is ours alone to decide: no reset.
                        tracing::info!(session = want.name, peer = %address, passive = want.config.passive, "session passive mode changed in place");
                        instance.set_passive(address, want.config.passive);
                    }
                    if r.policy != want.policy {
                        tracing::info!(session = want.name, peer = %address, "session policy updated in place");
                        instance.update_peer_policy(address, want.policy.clone());
                    }
                    if r.name != want.name {
                        tracing::info!(from = r.name, to = want.name, peer = %address, "session renamed");
                    }
                    *r = want;
                }
                Some(r) => {
                    tracing::info!(session = want.name, peer = %address, "session settings changed: replacing it");
                    instance.remove_peer(address);
                    instance.add_peer(want.config.clone(), want.policy.clone());
                    *r = want;
                    self.fresh.insert(address, Instant::now());
                }
                None => {
                    tracing::info!(session = want.name, peer = %address, "adding session");
                    instance.add_peer(want.config.clone(), want.policy.clone());
                    self.running.insert(address, want);
                    self.fresh.insert(address, Instant::now());
                }
            }
        }
    }

    /// Retire what waited for replacements that are now synced (or late).
    /// Cheap when nothing is retiring; call it every tick.
    pub(super) async fn retire(&mut self, instance: &Instance) {
        let leaving: HashSet<IpAddr> = self
            .running
            .iter()
            .filter(|(_, r)| r.retiring.is_some())
            .map(|(a, _)| *a)
            .collect();
        if leaving.is_empty() {
            self.fresh.clear();
            return;
        }
        let counts = instance.counts().await;
        self.fresh.retain(|address, added| {
            added.elapsed() < REPLACEMENT_DEADLINE
                && !counts.peers.get(address).is_some_and(|c| c.synced)
        });
        let replacements_up = self.fresh.is_empty();
        let to_nodes = leaving.iter().any(|a| self.running[a].to_node);
        let sole = if replacements_up && to_nodes {
            instance.sole_paths(leaving.clone()).await
        } else {
            HashMap::new()
        };
        let gone: Vec<IpAddr> = leaving
            .into_iter()
            .filter(|address| {
                let r = &self.running[address];
                let late = r
                    .retiring
                    .is_some_and(|since| since.elapsed() >= REPLACEMENT_DEADLINE);
                let needed = r.to_node && sole.get(address).is_some_and(|n| *n > 0);
                late || (replacements_up && !needed)
            })
            .collect();
        for address in gone {
            if let Some(r) = self.running.remove(&address) {
                tracing::info!(session = r.name, peer = %address, "removing session");
                instance.remove_peer(address);
            }
        }
    }

    /// Every session is synced (or there are none): the routing has
    /// converged as far as this node can tell.
    pub(super) async fn all_synced(&self, instance: &Instance) -> bool {
        let counts = instance.counts().await;
        self.running
            .keys()
            .all(|a| counts.peers.get(a).is_some_and(|c| c.synced))
    }

    /// Every running session (retiring ones too): name → (family, address).
    pub(super) fn names(&self) -> BTreeMap<String, (Family, IpAddr)> {
        self.running
            .iter()
            .map(|(a, r)| (r.name.clone(), (r.family, *a)))
            .collect()
    }

    /// What the route-policy plugin is told about each running session
    /// and each session `desired` will add (the first per address, as
    /// `reconcile` takes them).
    pub(super) fn contexts_with(&self, desired: &[&Session]) -> HashMap<IpAddr, SessionContext> {
        let mut contexts = self.contexts();
        let mut seen = HashSet::new();
        for s in desired {
            let Ok(address) = s.peer_ip.parse::<IpAddr>() else {
                continue;
            };
            if seen.insert(address) {
                contexts.insert(address, SessionContext::of(s));
            }
        }
        contexts
    }

    /// What the route-policy plugin is told about each running session.
    pub(super) fn contexts(&self) -> HashMap<IpAddr, SessionContext> {
        self.running
            .iter()
            .map(|(a, r)| (*a, r.context.clone()))
            .collect()
    }

    /// Close every session with Cease / Administrative Shutdown and
    /// `message` (what BIRD and FRR show their operators).
    pub(super) fn shutdown(&mut self, instance: &Instance, message: &str) {
        instance.shutdown(std::mem::take(&mut self.running).into_keys(), message);
        self.fresh.clear();
    }
}

/// A planned session as the speaker's peer configuration.
/// Equal but for `passive`, which never reaches the peer.
fn same_but_passive(a: &PeerConfig, b: &PeerConfig) -> bool {
    let mut b = b.clone();
    b.passive = a.passive;
    *a == b
}

/// The node's own subnets (Node `spec.bgp.ipv4Address`/`ipv6Address`, the
/// CIDR Calico records), for third-party next hops on them.
pub(super) fn node_subnets(node: &str, docs: &[serde_json::Value]) -> Vec<(IpAddr, u8)> {
    docs.iter()
        .filter(|d| d["kind"] == "Node" && d["metadata"]["name"] == node)
        .flat_map(bgp_addresses)
        .collect()
}

/// The BGP addresses of every node of the cluster.
pub(super) fn node_addresses(docs: &[serde_json::Value]) -> HashSet<IpAddr> {
    docs.iter()
        .filter(|d| d["kind"] == "Node")
        .flat_map(bgp_addresses)
        .map(|(ip, _)| ip)
        .collect()
}

/// A Node's `spec.bgp.ipv4Address` and `ipv6Address`, as address and
/// prefix length.
fn bgp_addresses(node: &serde_json::Value) -> impl Iterator<Item = (IpAddr, u8)> + '_ {
    ["ipv4Address", "ipv6Address"]
        .into_iter()
        .filter_map(|k| node["spec"]["bgp"][k].as_str())
        .filter_map(|cidr| {
            let (ip, len) = cidr.split_once('/').unwrap_or((cidr, ""));
            let ip: IpAddr = ip.parse().ok()?;
            let full = if ip.is_ipv4() { 32 } else { 128 };
            Some((
                ip,
                if len.is_empty() {
                    full
                } else {
                    len.parse().ok()?
                },
            ))
        })
}

fn peer(
    s: &Session,
    rib: &RibConfig,
    secrets: &ResourceSet,
    subnets: &[(IpAddr, u8)],
    forwarding_preserved: bool,
) -> Option<Running> {
    let address: IpAddr = s.peer_ip.parse().ok()?;
    let mut config = PeerConfig::new(
        SocketAddr::new(address, s.peer_port.unwrap_or(179)),
        s.local_as,
        s.peer_as,
        rib.router_id,
    );
    config.local_address = s.source_address.as_deref().and_then(|a| a.parse().ok());
    // RFC 4271's 120 s ConnectRetry means a peer that was not listening
    // yet (nodes booting together) is tried again only two minutes later;
    // an appliance on a fabric retries in seconds, as FRR's datacenter
    // profile does.
    config.connect_retry = CONNECT_RETRY;
    config.passive = s.passive;
    config.families = vec![match s.family {
        Family::Ipv4 => starling_wire::Family::IPV4_UNICAST,
        Family::Ipv6 => starling_wire::Family::IPV6_UNICAST,
    }];
    config.ttl_security = s.ttl_security;
    if let Some(keepalive) = s.keepalive_time {
        // BGP negotiates hold time; keepalive is a third of it.
        config.hold_time = u16::try_from(keepalive.saturating_mul(3)).unwrap_or(u16::MAX);
    }
    config.password = s.password.as_ref().and_then(|r| match secrets.secret(r) {
        Ok(key) => Some(Secret::new(key)),
        Err(why) => {
            tracing::warn!(session = s.name, "{why}; no password");
            None
        }
    });
    // Calico's sessions have graceful restart on, 120 s unless configured.
    config.graceful_restart = Some(GracefulRestartConfig {
        restart_time: u16::try_from(s.graceful_restart_time.unwrap_or(120).min(4095)).ok()?,
        forwarding_preserved,
        ..GracefulRestartConfig::default()
    });
    let policy = PeerPolicy {
        rr_client: s.rr_client,
        next_hop: match s.next_hop {
            NextHopMode::Auto => starling_speaker::rib::export::NextHopMode::Auto,
            NextHopMode::SetSelf => starling_speaker::rib::export::NextHopMode::SelfAddress,
            NextHopMode::Keep => starling_speaker::rib::export::NextHopMode::Keep,
        },
        allow_own_as: s.allow_local_as.unwrap_or(0) as usize,
        local_as: (s.local_as != rib.local_as).then_some(s.local_as),
        shared_subnet: subnets
            .iter()
            .find(|(net, _)| net.is_ipv4() == address.is_ipv4())
            .copied(),
        ..PeerPolicy::default()
    };
    Some(Running {
        name: s.name.clone(),
        family: s.family,
        config,
        policy,
        context: SessionContext::of(s),
        retiring: None,
        to_node: false,
    })
}

/// How often the kernel table is compared with what was installed, as a
/// safety net under the route monitor.
const RESYNC: Duration = Duration::from_secs(300);

/// How long after a sign of tampering the table is repaired.
const REPAIR_DELAY: Duration = Duration::from_millis(100);

/// Our own bursts overrun the route monitor (a full table is a million
/// notifications), and an overrun hides whether anyone else changed a
/// route meanwhile. Repairing at once would re-read the whole table in
/// the middle of the burst, again and again; so after an overrun during
/// our writes, the repair waits until they have been quiet this long.
const QUIET: Duration = Duration::from_secs(1);

/// A write of at least this many routes pauses the route monitor (see
/// `RouteMonitor::pause`): the table is compared once the writes are
/// quiet. Each echo costs the kernel a copy per listener, in our time;
/// for a full table, a third of the netlink floor.
const BLIND_WRITE: usize = 20_000;

/// The FIB programmer's task: best paths in, kernel writes out, batched
/// by collecting changes for a moment before each write.
pub(super) struct FibTask {
    /// Routes of ours the kernel kept from the previous run.
    pub(super) adopted: usize,
    stop: tokio::sync::oneshot::Sender<bool>,
    sweep: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl FibTask {
    /// The routing has converged: delete routes adopted from the previous
    /// run that no best path has claimed since. Only the first call counts.
    pub(super) fn sweep(&mut self) {
        if let Some(tx) = self.sweep.take() {
            let _ = tx.send(());
        }
    }

    pub(super) fn swept(&self) -> bool {
        self.sweep.is_none()
    }

    /// Stop; `clean` deletes Starling's routes, otherwise they stay for
    /// the next run to adopt.
    pub(super) async fn stop(self, clean: bool) {
        let _ = self.stop.send(clean);
        let _ = self.done.await;
    }
}

pub(super) fn spawn_fib(
    config: &super::config::Fib,
    mut best: BestPathStream,
    stats: std::sync::Arc<std::sync::Mutex<super::metrics::FibStats>>,
    blackholes: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<starling_wire::Prefix>>>,
) -> anyhow::Result<FibTask> {
    let fib_config = FibConfig {
        table: config.table,
        protocol: config.protocol,
        ..FibConfig::default()
    };
    let mut fib = Fib::open(fib_config)?;
    // Subscribed before adopting, so no change after the read is missed.
    let mut monitor = starling_fib::RouteMonitor::open()?;
    let adopted = fib.adopt()?;
    tracing::info!(adopted, "adopted kernel routes from the previous run");
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let (sweep, mut sweep_now) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        // What the best paths want that the kernel does not have yet:
        // destination → target (`None`: no route). What the FIB task wants
        // is what was installed plus these, so it keeps no copy of the
        // table. Routes the kernel refused stay, retried with the next
        // write.
        let mut pending = Pending::default();
        // Adopted routes stay (forwarding continues through the restart)
        // until the sweep; those no best path claimed by then are stale.
        let mut claimed: std::collections::BTreeSet<Destination> = Default::default();
        // Nothing adopted, nothing to sweep: no need to track claims (a
        // full table's worth of them).
        let mut swept = adopted == 0;
        // Changes are collected for at most this long before a write, so a
        // burst (a full table arriving) becomes a few large batches.
        let mut write_at: Option<tokio::time::Instant> = None;
        // Someone else may change or delete our routes; compare with the
        // kernel now and then and repair.
        let mut resync = tokio::time::interval(RESYNC);
        resync.tick().await;
        // When the kernel says someone touched our routes (or that it lost
        // notifications), repair shortly after: a burst becomes one pass.
        let mut repair_at: Option<tokio::time::Instant> = None;
        let mut last_write: Option<tokio::time::Instant> = None;
        // An overrun during our writes: repair once they are quiet.
        let mut repair_when_quiet = false;
        loop {
            tokio::select! {
                events = monitor.next() => match events {
                    Ok(events) => {
                        if let Some(event) = events.iter().find(|e| fib.disagrees(e)) {
                            let now = tokio::time::Instant::now();
                            let writing = last_write.is_some_and(|t| now - t < QUIET);
                            if writing && *event == starling_fib::KernelEvent::Overrun {
                                repair_when_quiet = true;
                                repair_at = Some(repair_at.map_or(now + QUIET, |at| at.max(now + QUIET)));
                            } else {
                                tracing::debug!(?event, "kernel routes differ from ours");
                                repair_at.get_or_insert(now + REPAIR_DELAY);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!("route monitor: {e}; relying on the periodic check");
                        monitor = match starling_fib::RouteMonitor::open() {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::error!("route monitor: {e}");
                                tokio::time::sleep(RESYNC).await;
                                continue;
                            }
                        };
                        repair_at.get_or_insert_with(tokio::time::Instant::now);
                    }
                },
                () = sleep_until(repair_at), if repair_at.is_some() => {
                    repair_at = None;
                    repair_when_quiet = false;
                    match tokio::task::block_in_place(|| fib.resync()) {
                        Ok(c) if c.added + c.replaced + c.deleted > 0 => {
                            tracing::warn!(added = c.added, replaced = c.replaced, deleted = c.deleted, "repaired kernel routes changed behind our back");
                            let mut s = stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            s.repaired += (c.added + c.replaced + c.deleted) as u64;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!("FIB resync failed: {e}"),
                    }
                }
                _ = resync.tick() => {
                    match tokio::task::block_in_place(|| fib.resync()) {
                        Ok(c) if c.added + c.replaced + c.deleted > 0 => {
                            tracing::warn!(added = c.added, replaced = c.replaced, deleted = c.deleted, "periodic check repaired kernel routes the monitor missed");
                            let mut s = stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            s.repaired += (c.added + c.replaced + c.deleted) as u64;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!("FIB resync failed: {e}"),
                    }
                }
                Ok(()) = &mut sweep_now, if !swept => {
                    // Changes already sent claim their routes first:
                    // `select!` may pick the sweep before a waiting
                    // batch, which would delete a route the batch
                    // re-learned and write it again (a lost packet).
                    let mut learned = false;
                    while let Ok(changes) = best.try_recv() {
                        want(&mut pending, Some(&mut claimed), &blackholes, changes);
                        learned = true;
                    }
                    swept = true;
                    let mut stale = 0;
                    for dest in fib.installed().keys() {
                        if !claimed.contains(dest) && !pending.contains_key(dest) {
                            pending.insert(*dest, None);
                            stale += 1;
                        }
                    }
                    claimed = Default::default();
                    if stale > 0 {
                        tracing::info!(stale, "sweeping routes of the previous run");
                    }
                    if learned || stale > 0 {
                        write_at.get_or_insert_with(tokio::time::Instant::now);
                    }
                }
                clean = &mut stopped => {
                    if clean.unwrap_or(false) {
                        let _ = tokio::task::block_in_place(|| fib.clear());
                    }
                    return;
                }
                changes = best.recv() => {
                    let Some(changes) = changes else { return };
                    tracing::debug!(changes = changes.len(), swept, "best-path changes");
                    want(&mut pending, (!swept).then_some(&mut claimed), &blackholes, changes);
                    write_at.get_or_insert_with(|| {
                        tokio::time::Instant::now() + Duration::from_millis(50)
                    });
                }
                () = sleep_until(write_at), if write_at.is_some() => {
                    write_at = None;
                    let started = std::time::Instant::now();
                    let blind = pending.len() >= BLIND_WRITE && monitor.pause().is_ok();
                    let result = tokio::task::block_in_place(|| fib.apply_changes(pending.iter()));
                    if blind {
                        if let Err(e) = monitor.resume() {
                            tracing::warn!("route monitor: {e}; relying on the periodic check");
                        }
                        repair_when_quiet = true;
                    }
                    let now = tokio::time::Instant::now();
                    last_write = Some(now);
                    if repair_when_quiet {
                        repair_at = Some(now + QUIET);
                    }
                    let mut s = stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    s.writes += 1;
                    s.write_seconds += started.elapsed().as_secs_f64();
                    s.write_latency.observe(started.elapsed().as_secs_f64());
                    s.installed = fib.installed().len() as u64;
                    match result {
                        Ok(c) => {
                            s.added += c.added as u64;
                            s.replaced += c.replaced as u64;
                            s.deleted += c.deleted as u64;
                            s.refused += c.refused.len() as u64;
                            let refused: HashSet<Destination> =
                                c.refused.iter().map(|r| r.destination).collect();
                            pending.retain(|d| refused.contains(d));
                            // Give back what a full table's burst took.
                            pending.shrink_to(1024);
                            if !c.refused.is_empty() {
                                tracing::warn!(refused = c.refused.len(), first = ?c.refused.first(), "kernel refused routes");
                            }
                        }
                        Err(e) => {
                            // `pending` stays: the next write tries again.
                            s.write_errors += 1;
                            tracing::error!("FIB write failed: {e}");
                        }
                    }
                }
            }
        }
    });
    Ok(FibTask {
        adopted,
        stop,
        sweep: Some(sweep),
        done,
    })
}

/// Kernel changes not written yet: destination → target (`None`: delete).
/// Up to a full table while it arrives: the targets are interned.
type Pending = starling_fib::PendingChanges;

/// Record in `pending` the kernel routes `changes` ask for, and before the
/// sweep mark them `claimed` (learned again since the restart).
fn want(
    pending: &mut Pending,
    mut claimed: Option<&mut std::collections::BTreeSet<Destination>>,
    blackholes: &std::sync::Mutex<std::collections::BTreeSet<starling_wire::Prefix>>,
    changes: Vec<starling_speaker::rib::BestChange>,
) {
    for change in changes {
        let Some(dest) = Destination::new(change.prefix.addr(), change.prefix.prefix_len()) else {
            continue;
        };
        if let Some(claimed) = claimed.as_deref_mut() {
            claimed.insert(dest);
        }
        let gateways: starling_fib::Gateways = change
            .best
            .iter()
            .filter(|p| !p.is_local())
            .map(|p| match p.route.next_hop {
                NextHop::V4(a) => IpAddr::V4(a),
                NextHop::V6 { global, .. } => IpAddr::V6(global),
            })
            .collect();
        // A locally originated block is a blackhole, as Calico's; other
        // local routes stay out of the kernel.
        let local_blackhole = gateways.is_empty()
            && change.best.first().is_some_and(|p| p.is_local())
            && blackholes.lock().is_ok_and(|b| b.contains(&change.prefix));
        let target = if local_blackhole {
            Some(Target::Blackhole)
        } else if gateways.is_empty() {
            None
        } else {
            Some(Target::via(gateways))
        };
        pending.insert(dest, target);
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
