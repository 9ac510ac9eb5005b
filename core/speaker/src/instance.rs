//! One BGP instance: peers, the RIB and the Adj-RIB-Out, run as a single
//! event loop (holo's model). Peer tasks feed it events; it decides, and
//! hands each peer the encoded UPDATEs it must send.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use starling_wire::notification::code;
use starling_wire::{
    Afi, Context, Family, MessageType, NextHop, Nlri, Notification, ParsedUpdate, PathAttributes,
    Prefix, ReachEncoder, RouteRefresh, encode_end_of_rib, encode_withdrawals,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::config::PeerConfig;
use crate::driver::{PeerEvent, PeerHandle, PeerStatus, Speaker, accept_loop};
use crate::policy::{Candidate, Direction, RoutePolicy, Verdict as PolicyVerdict};
use crate::rib::adj_out::{AdjRibOut, SetId};
use crate::rib::export::{ExportTarget, NextHopMode, export};
use crate::rib::{BestChange, PeerInfo, Rib, RibConfig, RouteAttrs, Source};
use crate::session::Negotiated;

/// Per-peer policy beyond the session itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    pub rr_client: bool,
    pub next_hop: NextHopMode,
    pub allow_own_as: usize,
    /// Close with Cease/1 when the peer sends more prefixes than this.
    pub max_prefixes: Option<u32>,
    /// The AS presented to this peer, if not the instance's.
    pub local_as: Option<u32>,
    /// The address to announce as next hop when setting it to ourselves,
    /// if not the session's local address (BIRD's `next hop address`).
    pub next_hop_address: Option<IpAddr>,
    /// The subnet the session runs over (network, prefix length), for
    /// third-party next hops towards eBGP peers on it.
    pub shared_subnet: Option<(IpAddr, u8)>,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        Self {
            rr_client: false,
            next_hop: NextHopMode::Auto,
            allow_own_as: 0,
            max_prefixes: None,
            local_as: None,
            next_hop_address: None,
            shared_subnet: None,
        }
    }
}

/// A change of best paths, for the FIB programmer.
pub type BestPathStream = mpsc::UnboundedReceiver<Vec<BestChange>>;

enum Command {
    /// A peer's restart (or stale-path) timer fired.
    RestartTimer(IpAddr, u64),
    /// Export to this peer failed earlier: evaluate everything again.
    RetryExport(IpAddr),
    /// Import from this peer failed earlier: ask for its routes again.
    RetryImport(IpAddr),
    AddPeer(Box<PeerConfig>, PeerPolicy),
    RemovePeer(IpAddr, Option<Notification>),
    Originate(Prefix, Box<PathAttributes>),
    Withdraw(Prefix),
    SetRoutePolicy(Option<Arc<dyn RoutePolicy>>, Vec<IpAddr>),
    UpdatePeerPolicy(IpAddr, PeerPolicy),
    SetPassive(IpAddr, bool),
    Reconfigure(RibConfig),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    Routes(oneshot::Sender<Vec<(Prefix, RouteAttrs, Source)>>),
    Counts(oneshot::Sender<Counts>),
    Paths(oneshot::Sender<Vec<RibPath>>),
    SolePaths(HashSet<IpAddr>, oneshot::Sender<HashMap<IpAddr, usize>>),
    Recover(std::time::Duration),
    CheckRecovery,
}

/// One path in the RIB, for status and CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibPath {
    pub prefix: Prefix,
    pub route: RouteAttrs,
    pub source: Source,
    /// Selected: the best path or a member of its ECMP set (what the FIB
    /// gets).
    pub best: bool,
}

/// Route counts, cheap to ask for (no route is copied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Prefixes in the Loc-RIB.
    pub loc_rib: usize,
    pub peers: HashMap<IpAddr, PeerCounts>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Paths the peer sent that passed import policy.
    pub accepted: usize,
    /// Paths the peer sent that import policy rejected.
    pub rejected: usize,
    /// Prefixes we advertise to the peer (its Adj-RIB-Out).
    pub advertised: usize,
    /// Established, and the peer has sent its whole table: End-of-RIB for
    /// every family, or [`SYNC_GRACE`] passed for a peer that sends none.
    pub synced: bool,
}

/// How long after Established a peer that never sends End-of-RIB counts
/// as having sent its table.
pub const SYNC_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Handle to a running instance.
#[derive(Clone)]
pub struct Instance {
    tx: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Instance")
    }
}

impl Instance {
    /// Start an instance listening on `listen` (none: outbound only).
    /// Returns the handle and the stream of best-path changes.
    pub async fn start(
        cfg: RibConfig,
        listen: &[SocketAddr],
    ) -> std::io::Result<(Self, BestPathStream)> {
        let speaker = Arc::new(Mutex::new(Speaker::default()));
        for addr in listen {
            let listener = TcpListener::bind(addr).await?;
            tokio::spawn(accept_loop(listener, speaker.clone()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (best_tx, best_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let state = State {
            commands: tx.clone(),
            rib: Rib::new(cfg),
            speaker,
            peers: HashMap::new(),
            events_tx,
            best_tx,
            route_policy: None,
            recovery: None,
        };
        tokio::spawn(state.run(rx, events_rx));
        Ok((Self { tx }, best_rx))
    }

    pub fn add_peer(&self, cfg: PeerConfig, policy: PeerPolicy) {
        let _ = self.tx.send(Command::AddPeer(Box::new(cfg), policy));
    }

    /// We restarted with our forwarding state kept (RFC 4724 §4.1): until
    /// every peer has sent us its table (End-of-RIB), or `limit` passes,
    /// our OPENs carry the Restart State bit and peers that kept our
    /// routes as stale are sent nothing, so they never see a partial
    /// table followed by an End-of-RIB that sweeps the rest. Call it
    /// after adding the peers known at start.
    pub fn recover(&self, limit: std::time::Duration) {
        let _ = self.tx.send(Command::Recover(limit));
    }

    pub fn remove_peer(&self, address: IpAddr) {
        let _ = self.tx.send(Command::RemovePeer(address, None));
    }

    /// Administrative shutdown of every peer (RFC 8203/9003: Cease /
    /// Administrative Shutdown with `message`), all removed.
    pub fn shutdown(&self, addresses: impl IntoIterator<Item = IpAddr>, message: &str) {
        for address in addresses {
            let notification =
                Notification::cease_with_message(code::cease::ADMIN_SHUTDOWN, message);
            let _ = self
                .tx
                .send(Command::RemovePeer(address, Some(notification)));
        }
    }

    /// Originate `prefix` with `attrs` (next hop: ourselves).
    pub fn originate(&self, prefix: Prefix, attrs: PathAttributes) {
        let _ = self.tx.send(Command::Originate(prefix, Box::new(attrs)));
    }

    pub fn withdraw(&self, prefix: Prefix) {
        let _ = self.tx.send(Command::Withdraw(prefix));
    }

    /// Decide imports and exports with `policy` from now on (`None`:
    /// accept everything). What every peer has is re-evaluated at once and
    /// corrected with the difference; peers in `refresh` are asked to send
    /// their routes again (ROUTE-REFRESH), so new import rules apply to
    /// what they sent before.
    pub fn set_route_policy(&self, policy: Option<Arc<dyn RoutePolicy>>, refresh: Vec<IpAddr>) {
        let _ = self.tx.send(Command::SetRoutePolicy(policy, refresh));
    }

    pub async fn peers(&self) -> Vec<PeerStatus> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Peers(tx));
        rx.await.unwrap_or_default()
    }

    /// Change a running peer's policy without resetting its session: what
    /// every peer is sent is re-evaluated (a new client changes what is
    /// reflected to everyone). Changes that need a new OPEN
    /// (`local_as`) are the caller's to apply by replacing the peer.
    pub fn update_peer_policy(&self, address: IpAddr, policy: PeerPolicy) {
        let _ = self.tx.send(Command::UpdatePeerPolicy(address, policy));
    }

    /// Make a running peer passive or active without resetting it.
    pub fn set_passive(&self, address: IpAddr, passive: bool) {
        let _ = self.tx.send(Command::SetPassive(address, passive));
    }

    /// Change the local AS, router id or cluster id. Sessions keep running
    /// (their OPENs carry their own AS and identifier: replace those whose
    /// configuration changes); every Adj-RIB-Out is re-evaluated.
    pub fn reconfigure(&self, cfg: RibConfig) {
        let _ = self.tx.send(Command::Reconfigure(cfg));
    }

    /// Every path of every prefix, selected ones first within a prefix.
    pub async fn paths(&self) -> Vec<RibPath> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Paths(tx));
        rx.await.unwrap_or_default()
    }

    /// For each peer in `leaving`, how many prefixes only `leaving` peers
    /// give a path to (see [`Rib::sole_paths`]). It walks the table.
    pub async fn sole_paths(&self, leaving: HashSet<IpAddr>) -> HashMap<IpAddr, usize> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Command::SolePaths(leaving, tx));
        rx.await.unwrap_or_default()
    }

    /// Route counts for metrics.
    pub async fn counts(&self) -> Counts {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Counts(tx));
        rx.await.unwrap_or_default()
    }

    /// Loc-RIB: every prefix with its best path.
    pub async fn routes(&self) -> Vec<(Prefix, RouteAttrs, Source)> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Routes(tx));
        rx.await.unwrap_or_default()
    }
}

struct PeerEntry {
    handle: PeerHandle,
    /// The peer's graceful restart capability from the last session: kept
    /// after it goes down to decide what to do with its routes.
    graceful: Option<starling_wire::capability::GracefulRestart>,
    graceful_notification: bool,
    /// Bumped on every restart timer start, so stale timer firings are
    /// recognised and ignored.
    restart_generation: u64,
    /// Families whose stale routes wait for End-of-RIB.
    awaiting_eor: Vec<Family>,
    cfg: PeerConfig,
    policy: PeerPolicy,
    negotiated: Option<Negotiated>,
    /// What we last advertised, per RIB slot.
    adj_out: AdjRibOut,
    /// Families whose End-of-RIB this session has not yet received, and
    /// when the session came up.
    initial_eor: Vec<Family>,
    established_at: Option<std::time::Instant>,
    /// A full re-evaluation after a failed export is scheduled.
    export_retry_pending: bool,
    /// A ROUTE-REFRESH after a failed import is scheduled.
    import_retry_pending: bool,
}

struct State {
    rib: Rib,
    speaker: Arc<Mutex<Speaker>>,
    peers: HashMap<IpAddr, PeerEntry>,
    events_tx: mpsc::UnboundedSender<(IpAddr, PeerEvent)>,
    best_tx: mpsc::UnboundedSender<Vec<BestChange>>,
    /// Our own command queue, for timers that report back.
    commands: mpsc::UnboundedSender<Command>,
    route_policy: Option<Arc<dyn RoutePolicy>>,
    recovery: Option<Recovery>,
}

/// Recovering from our own restart (see [`Instance::recover`]).
struct Recovery {
    until: std::time::Instant,
    /// Peers whose table (and End-of-RIB) waits for the end of recovery.
    deferred: HashSet<IpAddr>,
}

/// How often recovery checks whether every peer has sent its table (a
/// peer without End-of-RIB counts after [`SYNC_GRACE`]).
const RECOVERY_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

impl PeerEntry {
    fn synced(&self) -> bool {
        self.established_at
            .is_some_and(|at| self.initial_eor.is_empty() || at.elapsed() >= SYNC_GRACE)
    }

    /// The peer restarted too (the R bit in its OPEN): it waits for our
    /// table, so we must not wait for its (RFC 4724 §4.1).
    fn peer_restarting(&self) -> bool {
        self.established_at.is_some() && self.graceful.as_ref().is_some_and(|g| g.restarting)
    }

    fn set_restarting(&mut self, restarting: bool) {
        if let Some(gr) = &mut self.cfg.graceful_restart {
            gr.restarting = restarting;
        }
        self.handle.set_restarting(restarting);
    }

    /// What the RIB needs to know about this peer on this session.
    fn info(&self, address: IpAddr, n: &Negotiated) -> PeerInfo {
        PeerInfo {
            address,
            router_id: n.peer_id,
            asn: n.peer_as,
            ebgp: self.cfg.is_ebgp(),
            rr_client: self.policy.rr_client,
            allow_own_as: self.policy.allow_own_as,
        }
    }
}

/// A best path's identity for export caching: its source and its interned
/// attribute set (compared by address, never dereferenced).
type ExportKey = (Source, *const RouteAttrs);

/// How long after a failed export the peer's whole table is evaluated
/// again.
const EXPORT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long stale routes may wait for End-of-RIB once a restarting peer is
/// back (FRR's stalepath-time default).
const STALE_PATH_TIME: u64 = 360;

/// RFC 4724 §4.2 and RFC 8538: the peer's routes survive a session loss
/// without NOTIFICATION, and with the N bit any NOTIFICATION but a Cease.
fn graceful_restart_applies(entry: &PeerEntry, reason: &crate::session::DownReason) -> bool {
    use crate::session::DownReason;
    if entry.graceful.is_none() {
        return false;
    }
    match reason {
        DownReason::ConnectionLost => true,
        // Cease covers Hard Reset (RFC 8538) and deliberate shutdowns,
        // after which keeping routes would be wrong.
        DownReason::Sent(n) | DownReason::Received(n) => {
            entry.graceful_notification && n.code != code::CEASE
        }
    }
}

impl State {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<(IpAddr, PeerEvent)>,
    ) {
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                Some((peer, event)) = events.recv() => self.event(peer, event),
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::AddPeer(mut cfg, policy) => {
                let address = cfg.remote.ip();
                if let Some(gr) = &mut cfg.graceful_restart {
                    gr.restarting = self.recovery.is_some();
                }
                let handle = self
                    .speaker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .add_peer((*cfg).clone(), self.events_tx.clone());
                self.peers.insert(
                    address,
                    PeerEntry {
                        handle,
                        graceful: None,
                        graceful_notification: false,
                        restart_generation: 0,
                        awaiting_eor: Vec::new(),
                        cfg: *cfg,
                        policy,
                        negotiated: None,
                        adj_out: AdjRibOut::default(),
                        initial_eor: Vec::new(),
                        established_at: None,
                        export_retry_pending: false,
                        import_retry_pending: false,
                    },
                );
            }
            Command::Recover(limit) => {
                tracing::info!(
                    ?limit,
                    "recovering from a restart: tables go out once every peer has sent its own"
                );
                self.recovery = Some(Recovery {
                    until: std::time::Instant::now() + limit,
                    deferred: HashSet::new(),
                });
                for entry in self.peers.values_mut() {
                    entry.set_restarting(true);
                }
                let tx = self.commands.clone();
                tokio::spawn(async move {
                    let end = tokio::time::Instant::now() + limit;
                    while tokio::time::Instant::now() < end {
                        tokio::time::sleep(RECOVERY_CHECK).await;
                        if tx.send(Command::CheckRecovery).is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(Command::CheckRecovery);
                });
            }
            Command::CheckRecovery => self.check_recovery(),
            Command::RetryImport(address) => {
                if let Some(entry) = self.peers.get_mut(&address) {
                    entry.import_retry_pending = false;
                }
                self.request_refresh(address);
            }
            Command::RetryExport(address) => {
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                entry.export_retry_pending = false;
                let all = self.all_best();
                self.advertise(address, &all);
            }
            Command::RestartTimer(address, generation) => {
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                if entry.restart_generation != generation {
                    return;
                }
                entry.awaiting_eor.clear();
                tracing::info!(peer = %address, "graceful restart timer expired: removing stale routes");
                let changes = self.rib.sweep_stale(address, None);
                self.propagate(changes);
            }
            Command::RemovePeer(address, notification) => {
                self.speaker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove_peer_with(address, notification);
                self.peers.remove(&address);
                if let Some(r) = &mut self.recovery {
                    r.deferred.remove(&address);
                }
                let changes = self.rib.peer_down(address);
                self.propagate(changes);
                self.check_recovery();
            }
            Command::Originate(prefix, attrs) => {
                let nh = match prefix.afi() {
                    Afi::IPV6 => NextHop::V6 {
                        global: std::net::Ipv6Addr::UNSPECIFIED,
                        link_local: None,
                    },
                    _ => NextHop::V4(Ipv4Addr::UNSPECIFIED),
                };
                let changes = self.rib.originate(prefix, *attrs, nh);
                self.propagate(changes);
            }
            Command::Withdraw(prefix) => {
                let changes = self.rib.withdraw_local(prefix);
                self.propagate(changes);
            }
            Command::SetRoutePolicy(policy, refresh) => {
                self.route_policy = policy;
                self.readvertise_all();
                for address in refresh {
                    self.request_refresh(address);
                }
            }
            Command::UpdatePeerPolicy(address, policy) => {
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                entry.policy = policy;
                if let Some(n) = &entry.negotiated {
                    let info = entry.info(address, n);
                    self.rib.set_peer(info);
                }
                self.readvertise_all();
            }
            Command::SetPassive(address, passive) => {
                if let Some(entry) = self.peers.get_mut(&address) {
                    entry.cfg.passive = passive;
                    entry.handle.set_passive(passive);
                }
            }
            Command::Reconfigure(cfg) => {
                self.rib.reconfigure(cfg);
                self.readvertise_all();
            }
            Command::Paths(reply) => {
                let paths = self
                    .rib
                    .iter_paths()
                    .map(|(prefix, path, best)| RibPath {
                        prefix,
                        route: (*path.route).clone(),
                        source: path.source,
                        best,
                    })
                    .collect();
                let _ = reply.send(paths);
            }
            Command::SolePaths(leaving, reply) => {
                let _ = reply.send(self.rib.sole_paths(&leaving));
            }
            Command::Counts(reply) => {
                let peers = self
                    .peers
                    .iter()
                    .map(|(address, entry)| {
                        let counts = PeerCounts {
                            accepted: self.rib.received_count(*address),
                            rejected: self.rib.rejected_count(*address),
                            advertised: entry.adj_out.len(),
                            synced: entry.synced(),
                        };
                        (*address, counts)
                    })
                    .collect();
                let _ = reply.send(Counts {
                    loc_rib: self.rib.len(),
                    peers,
                });
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peers.values().map(|p| p.handle.status()).collect());
            }
            Command::Routes(reply) => {
                let routes = self
                    .rib
                    .iter_best()
                    .map(|(p, _, path)| (p, (*path.route).clone(), path.source))
                    .collect();
                let _ = reply.send(routes);
            }
        }
    }

    fn event(&mut self, address: IpAddr, event: PeerEvent) {
        match event {
            PeerEvent::Established(n) => {
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                self.rib.set_peer(entry.info(address, &n));
                if !entry.awaiting_eor.is_empty() {
                    // The peer is back after a graceful restart: routes of
                    // families it no longer preserves go now, the others
                    // when their End-of-RIB arrives (RFC 4724 §4.2).
                    let preserved: Vec<Family> = n
                        .peer_graceful_restart
                        .iter()
                        .flat_map(|g| &g.families)
                        .filter(|f| f.forwarding_preserved)
                        .map(|f| f.family)
                        .collect();
                    let (keep, drop): (Vec<Family>, Vec<Family>) = entry
                        .awaiting_eor
                        .iter()
                        .partition(|f| preserved.contains(f));
                    entry.awaiting_eor = keep;
                    entry.restart_generation += 1;
                    let mut changes = Vec::new();
                    for family in drop {
                        changes.extend(self.rib.sweep_stale(address, Some(family)));
                    }
                    self.start_restart_timer(
                        address,
                        std::time::Duration::from_secs(STALE_PATH_TIME),
                    );
                    self.propagate(changes);
                }
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                entry.graceful = n.peer_graceful_restart.clone();
                entry.graceful_notification = n.graceful_notification;
                entry.initial_eor = [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
                    .into_iter()
                    .filter(|f| n.codec.families.get(*f))
                    .collect();
                entry.established_at = Some(std::time::Instant::now());
                entry.negotiated = Some(*n);
                entry.adj_out.clear();
                self.initial_advertisement(address);
                // A restarting peer is not waited for.
                self.check_recovery();
            }
            PeerEvent::Update(parsed) => self.update(address, &parsed),
            PeerEvent::RouteRefresh(_) => {
                // Answer by sending the whole Adj-RIB-Out again.
                if let Some(entry) = self.peers.get_mut(&address) {
                    entry.adj_out.clear();
                }
                self.initial_advertisement(address);
            }
            PeerEvent::Down(reason) => {
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                let was_established = entry.negotiated.take().is_some();
                entry.established_at = None;
                entry.adj_out.clear();
                if was_established && graceful_restart_applies(entry, &reason) {
                    let restart_time = entry.graceful.as_ref().map_or(0, |g| g.restart_time);
                    entry.awaiting_eor = entry
                        .graceful
                        .iter()
                        .flat_map(|g| &g.families)
                        .map(|f| f.family)
                        .collect();
                    entry.restart_generation += 1;
                    tracing::info!(peer = %address, restart_time, "peer restarting gracefully: keeping its routes as stale");
                    self.rib.mark_stale(address);
                    self.start_restart_timer(
                        address,
                        std::time::Duration::from_secs(restart_time.into()),
                    );
                } else if was_established || !entry.awaiting_eor.is_empty() {
                    entry.awaiting_eor.clear();
                    entry.restart_generation += 1;
                    let changes = self.rib.peer_down(address);
                    self.propagate(changes);
                    self.rib.collect_garbage();
                }
            }
            PeerEvent::StateChanged(_) => {}
        }
    }

    fn update(&mut self, address: IpAddr, parsed: &ParsedUpdate) {
        for p in &parsed.problems {
            tracing::warn!(peer = %address, "UPDATE: {p}");
        }
        let watched = self.route_policy.as_deref().map(|inner| Watched {
            inner,
            failed: std::sync::atomic::AtomicBool::new(false),
        });
        let mut changes = self.rib.apply_update_with(
            address,
            parsed,
            watched.as_ref().map(|w| w as &dyn RoutePolicy),
        );
        if watched.is_some_and(|w| w.failed.into_inner()) {
            // The rejected routes would be lost for good: ask the peer for
            // its table again once the policy may answer.
            self.schedule(address, Command::RetryImport(address));
        }
        if let Some(family) = parsed.update.end_of_rib()
            && let Some(entry) = self.peers.get_mut(&address)
        {
            entry.initial_eor.retain(|f| *f != family);
        }
        if let Some(family) = parsed.update.end_of_rib()
            && let Some(entry) = self.peers.get_mut(&address)
            && entry.awaiting_eor.contains(&family)
        {
            entry.awaiting_eor.retain(|f| *f != family);
            if entry.awaiting_eor.is_empty() {
                entry.restart_generation += 1;
            }
            changes.extend(self.rib.sweep_stale(address, Some(family)));
        }
        if let Some(entry) = self.peers.get(&address)
            && let Some(limit) = entry.policy.max_prefixes
            && self.rib.received_count(address) > limit as usize
        {
            // RFC 4486: Cease/1 with AFI, SAFI and the limit as data.
            let family = parsed
                .update
                .mp_reach
                .as_ref()
                .map_or(Family::IPV4_UNICAST, |m| m.family);
            let mut data = family.afi.0.to_be_bytes().to_vec();
            data.push(family.safi.0);
            data.extend_from_slice(&limit.to_be_bytes());
            tracing::warn!(peer = %address, limit, "maximum prefix count exceeded");
            entry.handle.close(Notification::with_data(
                code::CEASE,
                code::cease::MAX_PREFIXES,
                data,
            ));
        }
        self.propagate(changes);
        if parsed.update.end_of_rib().is_some() {
            self.check_recovery();
        }
    }

    /// End recovery once every peer has sent its table (or the limit
    /// passed): clear the R bit and send the deferred peers everything.
    fn check_recovery(&mut self) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        let waiting: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, e)| !e.synced() && !e.peer_restarting())
            .map(|(a, _)| *a)
            .collect();
        let late = std::time::Instant::now() >= recovery.until;
        if !waiting.is_empty() && !late {
            return;
        }
        if waiting.is_empty() {
            tracing::info!("recovered from the restart: every peer has sent its table");
        } else {
            tracing::warn!(
                ?waiting,
                "restart recovery time is up; sending tables without these peers' routes"
            );
        }
        let Some(recovery) = self.recovery.take() else {
            return;
        };
        for entry in self.peers.values_mut() {
            entry.set_restarting(false);
        }
        for address in recovery.deferred {
            self.initial_advertisement(address);
        }
    }

    fn start_restart_timer(&self, address: IpAddr, after: std::time::Duration) {
        let Some(entry) = self.peers.get(&address) else {
            return;
        };
        let generation = entry.restart_generation;
        let tx = self.commands.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Command::RestartTimer(address, generation));
        });
    }

    /// Tell the FIB and every established peer about best-path changes.
    fn propagate(&mut self, changes: Vec<BestChange>) {
        if changes.is_empty() {
            return;
        }
        let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in addresses {
            self.advertise(address, &changes);
        }
        let _ = self.best_tx.send(changes);
        // Every Adj-RIB-Out has seen the withdrawals of emptied slots now:
        // the RIB may give them to new prefixes.
        for slot in self.rib.recycle() {
            for (address, entry) in &mut self.peers {
                if entry.adj_out.withdraw(slot) {
                    tracing::error!(peer = %address, slot, "a gone prefix was still advertised; forgotten without a withdrawal");
                    debug_assert!(false, "slot {slot} still advertised to {address}");
                }
            }
        }
    }

    /// Send ourselves `command` after [`EXPORT_RETRY`], once per peer and
    /// kind however many failures asked for it.
    fn schedule(&mut self, address: IpAddr, command: Command) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        let pending = match command {
            Command::RetryImport(_) => &mut entry.import_retry_pending,
            _ => &mut entry.export_retry_pending,
        };
        if std::mem::replace(pending, true) {
            return;
        }
        let tx = self.commands.clone();
        tokio::spawn(async move {
            tokio::time::sleep(EXPORT_RETRY).await;
            let _ = tx.send(command);
        });
    }

    /// Re-evaluate what every peer is sent; only differences go out.
    fn readvertise_all(&mut self) {
        let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
        let all = self.all_best();
        for address in addresses {
            self.advertise(address, &all);
        }
    }

    fn all_best(&self) -> Vec<BestChange> {
        self.rib
            .iter_best()
            .map(|(prefix, slot, path)| BestChange {
                prefix,
                slot,
                best: smallvec::smallvec![path.clone()],
            })
            .collect()
    }

    /// Ask an established peer that supports it to send everything again.
    fn request_refresh(&self, address: IpAddr) {
        let Some(entry) = self.peers.get(&address) else {
            return;
        };
        let Some(n) = entry.negotiated.as_ref().filter(|n| n.route_refresh) else {
            return;
        };
        let mut bytes = Vec::new();
        for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            if n.codec.families.get(family) {
                let message = starling_wire::Message::RouteRefresh(RouteRefresh::request(family));
                if let Err(e) = message.encode(&n.codec, &mut bytes) {
                    tracing::error!(peer = %address, "cannot encode ROUTE-REFRESH: {e}");
                    return;
                }
            }
        }
        entry.handle.send(bytes, MessageType::RouteRefresh);
    }

    fn initial_advertisement(&mut self, address: IpAddr) {
        // A peer that kept our routes as stale waits for the whole table;
        // one that dropped them is better off with part of it now.
        let holds_our_routes = self
            .peers
            .get(&address)
            .is_some_and(|e| e.graceful.is_some());
        if let Some(recovery) = &mut self.recovery
            && holds_our_routes
        {
            recovery.deferred.insert(address);
            return;
        }
        let all = self.all_best();
        self.advertise(address, &all);
        let Some(entry) = self.peers.get(&address) else {
            return;
        };
        let Some(n) = &entry.negotiated else { return };
        let mut bytes = Vec::new();
        for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            if n.codec.families.get(family) {
                encode_end_of_rib(family, &mut bytes);
            }
        }
        entry.handle.send(bytes, MessageType::Update);
    }

    /// Send `address` what changed for it, grouped by attribute set.
    fn advertise(&mut self, address: IpAddr, changes: &[BestChange]) {
        if self
            .recovery
            .as_ref()
            .is_some_and(|r| r.deferred.contains(&address))
        {
            return;
        }
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        let Some(n) = &entry.negotiated else { return };
        let target = ExportTarget {
            info: entry.info(address, n),
            next_hop: entry.policy.next_hop,
            local_v4: match entry.policy.next_hop_address.or(entry.cfg.local_address) {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            },
            local_v6: match entry.policy.next_hop_address.or(entry.cfg.local_address) {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            },
            local_as: entry.policy.local_as,
            extended_next_hop: n.codec.extended_next_hop,
            shared_subnet: entry.policy.shared_subnet,
        };
        let ctx = n.codec.clone();
        let changes: Vec<&BestChange> = changes
            .iter()
            .filter(|c| {
                ctx.families.get(match c.prefix.afi() {
                    Afi::IPV6 => Family::IPV6_UNICAST,
                    _ => Family::IPV4_UNICAST,
                })
            })
            .collect();
        // Policy first, on the Loc-RIB route; then the protocol's export
        // rules on what policy let through.
        let verdicts = match &self.route_policy {
            None => None,
            Some(policy) => {
                let candidates: Vec<Candidate<'_>> = changes
                    .iter()
                    .filter_map(|c| c.best.first().map(|p| (c.prefix, p)))
                    .map(|(prefix, path)| Candidate {
                        prefix,
                        route: &path.route,
                        from_peer: matches!(path.source, Source::Peer(_)),
                    })
                    .collect();
                match policy.evaluate(address, Direction::Export, &candidates) {
                    Ok(v) if v.len() == candidates.len() => Some(Ok(v)),
                    Ok(v) => Some(Err(format!(
                        "{} verdicts for {} routes",
                        v.len(),
                        candidates.len()
                    ))),
                    Err(e) => Some(Err(e)),
                }
            }
        };
        let policy_failed = matches!(verdicts, Some(Err(_)));
        if let Some(Err(e)) = &verdicts {
            // Routes the policy would decide on stay as the peer has them;
            // prefixes that are gone are withdrawn all the same, as no
            // policy can keep them.
            tracing::warn!(peer = %address, routes = changes.len(), "export policy failed, no route changes sent; retrying in 1 s: {e}");
        }
        let mut verdicts = verdicts.and_then(Result::ok).map(Vec::into_iter);
        let mut outgoing = Outgoing::default();
        // Export depends only on the path's source and attributes, which
        // many prefixes share: compute it once per distinct (source,
        // attribute set).
        let mut exported_cache: HashMap<ExportKey, Option<SetId>> = HashMap::new();
        let mut last_export: Option<(ExportKey, Option<SetId>)> = None;
        for change in changes {
            let family = match change.prefix.afi() {
                Afi::IPV6 => Family::IPV6_UNICAST,
                _ => Family::IPV4_UNICAST,
            };
            let exported = match change.best.first() {
                None => None,
                Some(_) if policy_failed => continue,
                Some(path) => {
                    let verdict = verdicts.as_mut().and_then(Iterator::next);
                    let source_info = || match path.source {
                        Source::Peer(a) => self.rib.peer(a),
                        Source::Local => None,
                    };
                    match verdict {
                        Some(PolicyVerdict::Reject) => None,
                        Some(PolicyVerdict::Replace(attrs)) => {
                            let changed = RouteAttrs {
                                attrs: *attrs,
                                next_hop: path.route.next_hop,
                            };
                            export(
                                self.rib.config(),
                                path.source,
                                source_info(),
                                &changed,
                                &target,
                            )
                            .map(|r| entry.adj_out.intern(r))
                        }
                        None | Some(PolicyVerdict::Accept) => {
                            let key = (path.source, Arc::as_ptr(&path.route));
                            match &last_export {
                                // Consecutive changes usually come from one UPDATE.
                                Some((k, v)) if *k == key => *v,
                                _ => {
                                    let result = *exported_cache.entry(key).or_insert_with(|| {
                                        export(
                                            self.rib.config(),
                                            path.source,
                                            source_info(),
                                            &path.route,
                                            &target,
                                        )
                                        .map(|r| entry.adj_out.intern(r))
                                    });
                                    last_export = Some((key, result));
                                    result
                                }
                            }
                        }
                    }
                }
            };
            match exported {
                Some(id) => {
                    if entry.adj_out.advertise(change.slot, id) {
                        outgoing.announce(family, id, change.prefix);
                    }
                }
                None => {
                    if entry.adj_out.withdraw(change.slot) {
                        outgoing.withdraw(family, change.prefix);
                    }
                }
            }
        }
        entry.adj_out.collect_unused();
        let bytes = outgoing.encode(&ctx, &entry.adj_out);
        if !bytes.is_empty() {
            entry.handle.send(bytes, MessageType::Update);
        }
        if policy_failed {
            // The peer must not keep a stale view for ever: the whole table
            // is evaluated again shortly (only differences go out).
            self.schedule(address, Command::RetryExport(address));
        }
    }
}

/// One peer's UPDATE contents, grouped: withdrawals per family,
/// announcements per (family, attribute set).
#[derive(Debug, Default)]
struct Outgoing {
    withdraw: Vec<(Family, Vec<Nlri>)>,
    announce: Vec<((Family, SetId), Vec<Nlri>)>,
    /// Where each (family, set) is in `announce`.
    groups: HashMap<(Family, SetId), usize>,
    /// The group used last: consecutive prefixes usually share it.
    last: Option<((Family, SetId), usize)>,
}

impl Outgoing {
    fn withdraw(&mut self, family: Family, prefix: Prefix) {
        match self.withdraw.iter_mut().find(|(f, _)| *f == family) {
            Some((_, nlri)) => nlri.push(Nlri::new(prefix)),
            None => self.withdraw.push((family, vec![Nlri::new(prefix)])),
        }
    }

    fn announce(&mut self, family: Family, set: SetId, prefix: Prefix) {
        let key = (family, set);
        let group = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let next = self.announce.len();
                let i = *self.groups.entry(key).or_insert(next);
                if i == next {
                    self.announce.push((key, Vec::new()));
                }
                self.last = Some((key, i));
                i
            }
        };
        self.announce[group].1.push(Nlri::new(prefix));
    }

    /// Withdrawals first, then announcements in the order their sets were
    /// first used.
    fn encode(&self, ctx: &Context, adj_out: &AdjRibOut) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (family, nlri) in &self.withdraw {
            encode_withdrawals(*family, nlri, ctx, &mut bytes);
        }
        for ((family, set), nlri) in &self.announce {
            encode_reach(ctx, *family, adj_out.attrs(*set), nlri, &mut bytes);
        }
        bytes
    }
}

/// A policy that remembers whether it failed.
#[derive(Debug)]
struct Watched<'a> {
    inner: &'a dyn RoutePolicy,
    failed: std::sync::atomic::AtomicBool,
}

impl RoutePolicy for Watched<'_> {
    fn evaluate(
        &self,
        peer: IpAddr,
        direction: Direction,
        routes: &[Candidate<'_>],
    ) -> Result<Vec<PolicyVerdict>, String> {
        let result = self.inner.evaluate(peer, direction, routes);
        if result.is_err() {
            self.failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }
}

fn encode_reach(
    ctx: &Context,
    family: Family,
    route: &RouteAttrs,
    nlri: &[Nlri],
    out: &mut Vec<u8>,
) {
    match ReachEncoder::new(&route.attrs, family, route.next_hop, ctx) {
        Ok(encoder) => {
            encoder.encode(nlri, out);
        }
        Err(e) => tracing::error!(%family, "cannot encode {} prefixes: {e}", nlri.len()),
    }
}
