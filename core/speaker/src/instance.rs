//! One BGP instance: peers, the RIB and the Adj-RIB-Out, run as a single
//! event loop (holo's model). Peer tasks feed it events; it decides, and
//! hands each peer the encoded UPDATEs it must send.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use starling_wire::notification::code;
use starling_wire::{
    Afi, Family, MessageType, NextHop, Nlri, Notification, ParsedUpdate, PathAttributes, PerFamily,
    Prefix, RouteRefresh, encode_end_of_rib,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::config::PeerConfig;
use crate::driver::{PeerEvent, PeerHandle, PeerStatus, Speaker, accept_loop};
use crate::groups::{Audience, GroupKey, Member, Members, Outgoing, UpdateGroup};
use crate::policy::{Candidate, Direction, RoutePolicy, Verdict as PolicyVerdict};
use crate::rib::adj_out::{PathIds, SetId, SetTable};
use crate::rib::export::{ExportTarget, NextHopMode, export};
use crate::rib::{BestChange, Path, PeerInfo, Rib, RibConfig, RouteAttrs, Slot, Source, SourceRef};
use crate::session::Negotiated;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

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

/// Whether a new route policy's exports must be re-evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reexport {
    All,
    /// The caller knows they are unchanged.
    None,
}

enum Command {
    /// A peer's restart (or stale-path) timer fired.
    RestartTimer(IpAddr, u64),
    /// Export to this peer failed earlier: evaluate everything again.
    RetryExport(IpAddr),
    /// Import from this peer failed earlier: ask for its routes again.
    RetryImport(IpAddr),
    /// A peer that fell behind has read most of its backlog.
    CaughtUp(IpAddr),
    AddPeer(Box<PeerConfig>, PeerPolicy),
    RemovePeer(IpAddr, Option<Notification>),
    Originate(Prefix, Box<PathAttributes>),
    Withdraw(Prefix),
    SetRoutePolicy(Option<Arc<dyn RoutePolicy>>, Vec<IpAddr>, Reexport),
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
    /// Update groups: sets of established peers sent the same UPDATEs.
    pub update_groups: usize,
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
    /// Updates are held back: the peer reads slower than it is sent
    /// routes, and gets what changed once it has read its backlog.
    pub behind: bool,
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
            exported: SetTable::default(),
            groups: FxHashMap::default(),
            next_group: 0,
            members: Members::default(),
            exports: ExportCache::default(),
            path_ids: PathIds::default(),
            pending: Vec::new(),
            pending_merged: false,
            leaving: Vec::new(),
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
        let _ = self
            .tx
            .send(Command::SetRoutePolicy(policy, refresh, Reexport::All));
    }

    /// [`Instance::set_route_policy`] for a policy whose export verdicts
    /// are the current one's (only import rules changed, or nothing the
    /// policy reads): what peers were sent stands, and nothing is
    /// re-evaluated for export but what the refreshed imports change. A
    /// full table times a few update groups is seconds of plugin calls
    /// that the session loop would spend re-deriving what peers have.
    pub fn set_route_policy_keeping_exports(
        &self,
        policy: Option<Arc<dyn RoutePolicy>>,
        refresh: Vec<IpAddr>,
    ) {
        let _ = self
            .tx
            .send(Command::SetRoutePolicy(policy, refresh, Reexport::None));
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
    /// The update group it is in while established (what it was sent is
    /// the group's Adj-RIB-Out).
    group: Option<GroupId>,
    /// How the groups' Adj-RIB-Outs name this peer as a route's source.
    member: Member,
    /// Families whose End-of-RIB this session has not yet received, and
    /// when the session came up.
    initial_eor: Vec<Family>,
    established_at: Option<std::time::Instant>,
    /// The peer reads slower than it is sent routes: nothing more is
    /// encoded for it until it has read most of its backlog; then it gets
    /// what changed meanwhile (see [`State::catch_up`]).
    behind: Option<Behind>,
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
    /// Exported attribute sets, one copy of each for every group's
    /// Adj-RIB-Out.
    exported: SetTable,
    /// Established peers, by what they are sent (see [`crate::groups`]).
    groups: FxHashMap<GroupId, UpdateGroup>,
    next_group: GroupId,
    members: Members,
    exports: ExportCache,
    /// The path ids of ADD-PATH peers' Adj-RIB-Outs.
    path_ids: PathIds,
    /// Best-path changes not yet sent (see [`State::flush`]).
    pending: Vec<BestChange>,
    /// `pending` holds more than one call's changes, so a slot may
    /// appear more than once.
    pending_merged: bool,
    /// Peers whose routes go at the end of this batch of events (see
    /// [`State::remove_leaving`]).
    leaving: Vec<IpAddr>,
}

/// A peer with more than this many octets unread stops being sent
/// updates ...
const BACKLOG_HIGH: usize = 4 << 20;
/// ... until it is down to this many; then it gets what changed meanwhile.
/// Each peer's queue is bounded by about `BACKLOG_HIGH` plus one batch.
const BACKLOG_LOW: usize = 1 << 20;
const BACKLOG_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// At most this many peer events are handled before the changes they made
/// go out ...
const EVENT_BATCH: usize = 256;
/// ... or once this many changes wait.
const CHANGE_BATCH: usize = 65_536;

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
    /// End-of-RIB before it sends its table (RFC 4724 §4.1), so it is
    /// sent ours at once rather than deferred.
    fn peer_restarting(&self) -> bool {
        self.established_at.is_some() && self.graceful.as_ref().is_some_and(|g| g.restarting)
    }

    /// Whether the peer may be sent every path of some family.
    fn sends_every_path(&self) -> bool {
        self.cfg.add_path.iter().any(|(_, mode)| mode.can_send())
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

type GroupId = u32;

/// A best path's identity for export caching: its source and its interned
/// attribute set (compared by address, never dereferenced).
type ExportKey = (SourceRef, usize);

/// How long after a failed export the peer's whole table is evaluated
/// again.
const EXPORT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long stale routes may wait for End-of-RIB once a restarting peer is
/// back (FRR's stalepath-time default).
const STALE_PATH_TIME: u64 = 360;

/// RFC 4724 §4.2 and RFC 8538: the peer's routes survive a session loss
/// without NOTIFICATION, and with the N bit any NOTIFICATION but a Cease.
fn graceful_restart_applies(entry: &PeerEntry, reason: &crate::session::DownReason) -> bool {
    entry.graceful.is_some() && keeps_routes(entry.graceful_notification, reason)
}

/// Whether a session of a peer that offered graceful restart ended in a
/// way that keeps its routes (RFC 4724, and RFC 8538 when both sides set
/// the N bit).
fn keeps_routes(notification_bit: bool, reason: &crate::session::DownReason) -> bool {
    use crate::session::DownReason;
    match reason {
        DownReason::ConnectionLost => true,
        DownReason::Sent(n) | DownReason::Received(n) => {
            notification_bit
                && (n.code != code::CEASE
                    // A collision closes one of two connections, not the
                    // peering: when one side had already reached
                    // Established on the closed one, the routes must
                    // survive until the other comes up (seen in the lab:
                    // a restarted reflector's client dropped its stale
                    // routes, and 4 s of traffic, on a Cease/7).
                    || n.subcode == code::cease::CONNECTION_COLLISION)
        } // Other Cease subcodes cover Hard Reset (RFC 8538) and deliberate
          // shutdowns, after which keeping routes would be wrong.
    }
}

/// Whether a failed attempt to reconnect with a restarting peer leaves its
/// stale routes in place: yes, unless the peer said it is gone for good
/// (shut down, deconfigured us, or a Hard Reset).
fn retry_keeps_stale(reason: &crate::session::DownReason) -> bool {
    use crate::session::DownReason;
    match reason {
        DownReason::ConnectionLost => true,
        DownReason::Sent(n) | DownReason::Received(n) => {
            n.code != code::CEASE
                || !matches!(
                    n.subcode,
                    code::cease::ADMIN_SHUTDOWN
                        | code::cease::PEER_DECONFIGURED
                        | code::cease::HARD_RESET
                )
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
                Some((peer, event)) = events.recv() => {
                    self.event(peer, event);
                    // Whatever else peers have sent meanwhile joins this
                    // batch: many small UPDATEs (a reflector's clients,
                    // one prefix each) then cost one pass over the peers
                    // and fill whole messages, instead of a pass and a
                    // tiny message per UPDATE per peer.
                    for _ in 1..EVENT_BATCH {
                        if self.pending.len() >= CHANGE_BATCH {
                            break;
                        }
                        match events.try_recv() {
                            Ok((peer, event)) => self.event(peer, event),
                            Err(_) => break,
                        }
                    }
                    self.remove_leaving();
                }
            }
            self.flush();
            if self.exports.results.len() > 4 * (self.rib.attribute_sets() + 1024) {
                // Results for sets that left the Loc-RIB pile up.
                self.exports.clear(&mut self.exported);
            }
            // Between passes over the peers: set ids handed out during one
            // stay valid until it ends.
            self.exported.collect_unused();
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
                let member = self.members.of(address);
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
                        group: None,
                        member,
                        initial_eor: Vec::new(),
                        established_at: None,
                        behind: None,
                        export_retry_pending: false,
                        import_retry_pending: false,
                    },
                );
                self.track_all_paths_if_needed();
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
            Command::CaughtUp(address) => self.catch_up(address),
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
                if let Some(id) = entry.group {
                    let all = self.all_best();
                    self.advertise(id, &all);
                }
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
                self.leave_group(address);
                self.peers.remove(&address);
                if let Some(r) = &mut self.recovery {
                    r.deferred.remove(&address);
                }
                let changes = self.rib.peer_down(address);
                self.path_ids.forget(Source::Peer(address));
                self.propagate(changes);
                self.track_all_paths_if_needed();
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
            Command::SetRoutePolicy(policy, refresh, reexport) => {
                self.route_policy = policy;
                // Peers with a policy are each in a group of their own.
                let moved = self.regroup();
                // Asked first: the peers resend while exports are
                // re-evaluated.
                for address in refresh {
                    self.request_refresh(address);
                }
                // A peer whose export class changed is re-evaluated
                // whatever the caller said.
                if reexport == Reexport::All || moved {
                    self.readvertise_all();
                }
            }
            Command::UpdatePeerPolicy(address, policy) => {
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                entry.policy = policy;
                if let Some(n) = &entry.negotiated {
                    // Known to the RIB since it was established: this
                    // only updates what the RIB knows, which cannot fail.
                    let _ = self.rib.set_peer(entry.info(address, n));
                }
                // Routes from this peer may export differently now, and
                // routes to it may no longer export as to its group.
                self.exports.clear(&mut self.exported);
                let _ = self.regroup();
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
                self.exports.clear(&mut self.exported);
                self.readvertise_all();
            }
            Command::Paths(reply) => {
                let paths = self
                    .rib
                    .iter_paths()
                    .map(|(prefix, path, best)| RibPath {
                        prefix,
                        route: (*path.route).clone(),
                        source: self.rib.source_of(path),
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
                        let advertised = entry
                            .group
                            .and_then(|id| self.groups.get(&id))
                            .map_or(0, |g| g.advertised_to(entry.member));
                        let counts = PeerCounts {
                            accepted: self.rib.received_count(*address),
                            rejected: self.rib.rejected_count(*address),
                            advertised,
                            synced: entry.synced(),
                            behind: entry.behind.is_some(),
                        };
                        (*address, counts)
                    })
                    .collect();
                let _ = reply.send(Counts {
                    loc_rib: self.rib.len(),
                    peers,
                    update_groups: self.groups.len(),
                });
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peers.values().map(|p| p.handle.status()).collect());
            }
            Command::Routes(reply) => {
                let routes = self
                    .rib
                    .iter_best()
                    .map(|(p, _, path)| (p, (*path.route).clone(), self.rib.source_of(path)))
                    .collect();
                let _ = reply.send(routes);
            }
        }
    }

    fn event(&mut self, address: IpAddr, event: PeerEvent) {
        let from_a_session = matches!(
            event,
            PeerEvent::Established(_) | PeerEvent::Update(..) | PeerEvent::RouteRefresh(_)
        );
        if from_a_session && self.leaving.contains(&address) {
            // The peer is back within the batch: its old routes go first.
            self.remove_leaving();
        }
        match event {
            PeerEvent::Established(n) => {
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                if let Err(e) = self.rib.set_peer(entry.info(address, &n)) {
                    tracing::error!(peer = %address, "{e}: closing the session");
                    entry.handle.close(Notification::new(
                        code::CEASE,
                        code::cease::OUT_OF_RESOURCES,
                    ));
                    return;
                }
                // Its routes' export may depend on what was negotiated.
                self.exports.clear(&mut self.exported);
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
                self.leave_group(address);
                self.initial_advertisement(address);
                self.check_recovery();
            }
            // The ticket goes once the UPDATE is applied: the peer's
            // reading waits on it.
            PeerEvent::Update(parsed, _ticket) => self.update(address, &parsed),
            PeerEvent::RouteRefresh(_) => {
                // Answer by sending the whole Adj-RIB-Out again.
                self.initial_advertisement(address);
            }
            PeerEvent::Down(reason) => {
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
                let was_established = entry.negotiated.take().is_some();
                entry.established_at = None;
                self.leave_group(address);
                let Some(entry) = self.peers.get_mut(&address) else {
                    return;
                };
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
                } else if !was_established
                    && !entry.awaiting_eor.is_empty()
                    && retry_keeps_stale(&reason)
                {
                    // A reconnection attempt failed while the peer is
                    // restarting (its listener up before its peers are
                    // configured, say): its stale routes stay until the
                    // restart timer, as RFC 4724 §4.2 has it. Flushing here
                    // cost a restarted reflector's client its routes in
                    // the lab.
                    tracing::debug!(peer = %address, ?reason, "reconnection failed; keeping stale routes");
                } else if was_established || !entry.awaiting_eor.is_empty() {
                    entry.awaiting_eor.clear();
                    entry.restart_generation += 1;
                    if !self.leaving.contains(&address) {
                        self.leaving.push(address);
                    }
                }
            }
            PeerEvent::StateChanged(_) => {}
        }
    }

    /// Remove the routes of the peers that went down in this batch of
    /// events, in one walk of the table: sessions often end together (a
    /// switch restarting, a route server's members), and a walk per
    /// session cost 50 ms each with a full table.
    fn remove_leaving(&mut self) {
        if self.leaving.is_empty() {
            return;
        }
        let leaving = std::mem::take(&mut self.leaving);
        let changes = self.rib.peers_down(&leaving);
        for address in leaving {
            self.path_ids.forget(Source::Peer(address));
        }
        self.propagate(changes);
        self.rib.collect_garbage();
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
            .filter(|(_, e)| !e.synced())
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

    /// Queue best-path changes for the FIB and every established peer;
    /// the event loop sends them once it has handled what is ready.
    fn propagate(&mut self, changes: Vec<BestChange>) {
        if changes.is_empty() {
            return;
        }
        if self.pending.is_empty() {
            self.pending = changes;
        } else {
            self.pending_merged = true;
            self.pending.extend(changes);
        }
    }

    /// Tell the FIB and every established peer about the queued changes.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut changes = std::mem::take(&mut self.pending);
        if std::mem::take(&mut self.pending_merged) {
            keep_last_per_slot(&mut changes);
        }
        for id in self.group_ids() {
            self.advertise(id, &changes);
        }
        // The FIB wants the selection only.
        changes.retain(|c| c.best_changed);
        if !changes.is_empty() {
            tracing::debug!(changes = changes.len(), "best-path changes for the FIB");
            if self.best_tx.send(changes).is_err() {
                tracing::debug!("nobody takes best-path changes");
            }
        }
        // Every Adj-RIB-Out has seen the withdrawals of emptied slots now:
        // the RIB may give them to new prefixes. Each group's pass withdrew
        // them (a group advances even while members are behind); debug
        // builds check, as the check costs a cache miss per slot and
        // group (a tenth of a full table's withdrawal).
        let emptied = self.rib.recycle();
        if !cfg!(debug_assertions) {
            return;
        }
        for slot in emptied {
            for group in self.groups.values_mut() {
                if group.adj_out.withdraw(&mut self.exported, slot).is_some()
                    || group.add_path_out.holds(slot)
                {
                    let peers = &group.members;
                    tracing::error!(
                        ?peers,
                        slot,
                        "a gone prefix was still advertised; forgotten without a withdrawal"
                    );
                    debug_assert!(false, "slot {slot} still advertised to {peers:?}");
                }
            }
        }
    }

    /// The RIB reports changes of every path, not only of the selected
    /// ones, while some peer may be sent every path.
    fn track_all_paths_if_needed(&mut self) {
        let needed = self.peers.values().any(PeerEntry::sends_every_path);
        self.rib.set_track_all_paths(needed);
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
        let all = self.all_best();
        for id in self.group_ids() {
            self.advertise(id, &all);
        }
    }

    fn group_ids(&self) -> Vec<GroupId> {
        self.groups.keys().copied().collect()
    }

    /// What decides the group of an established peer, and the target its
    /// group exports to.
    fn group_key(&self, address: IpAddr) -> Option<(GroupKey, ExportTarget)> {
        let entry = self.peers.get(&address)?;
        let n = entry.negotiated.as_ref()?;
        let local = entry.policy.next_hop_address.or(entry.cfg.local_address);
        let target = ExportTarget {
            info: entry.info(address, n),
            next_hop: entry.policy.next_hop,
            local_v4: match local {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            },
            local_v6: match local {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            },
            local_as: entry.policy.local_as,
            extended_next_hop: n.codec.extended_next_hop,
            // Only an eBGP peer's automatic next hop looks at the subnet,
            // and only a peer on it can be sent a third-party next hop:
            // peers elsewhere export alike and may share a group.
            shared_subnet: entry.policy.shared_subnet.filter(|&subnet| {
                entry.cfg.is_ebgp()
                    && entry.policy.next_hop == NextHopMode::Auto
                    && crate::rib::export::within(address, subnet)
            }),
        };
        // What only decoding looks at does not split groups.
        let mut codec = n.codec.clone();
        codec.local_ipv4 = None;
        codec.add_path_receive = PerFamily::NONE;
        codec.enhanced_route_refresh = false;
        codec.peer_as = 0;
        codec.enforce_first_as = false;
        codec.mp_errors = Default::default();
        // A route policy decides per peer unless it promises otherwise; a
        // third-party next hop depends on the peer's address; ADD-PATH
        // path ids are kept per peer.
        let policy = self.route_policy.as_ref().map(|p| p.export_class(address));
        let unique = (policy.is_some_and(|class| class.is_none())
            || target.shared_subnet.is_some()
            || codec.add_path_send != PerFamily::NONE)
            .then_some(address);
        let target = match unique {
            Some(_) => target,
            // Split horizon is the group's business (see crate::groups);
            // export never looks at the peer's AS (eBGP peers in different
            // ASes are sent the same, as an exchange's members are) nor at
            // what it may import.
            None => ExportTarget {
                info: PeerInfo {
                    address: IpAddr::from([0, 0, 0, 0]),
                    router_id: Ipv4Addr::UNSPECIFIED,
                    asn: 0,
                    allow_own_as: 0,
                    ..target.info
                },
                ..target
            },
        };
        let key = GroupKey {
            target: target.clone(),
            codec,
            policy: policy.flatten(),
            unique,
        };
        Some((key, target))
    }

    /// Put an established peer into the group of the peers that export
    /// alike, and send it what the group holds.
    fn join(&mut self, address: IpAddr) {
        let Some((key, target)) = self.group_key(address) else {
            return;
        };
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        let member = entry.member;
        let existing = self
            .groups
            .iter()
            .find(|(_, g)| g.key == key)
            .map(|(id, _)| *id);
        match existing {
            None => {
                let id = self.next_group;
                self.next_group += 1;
                let mut group = UpdateGroup::new(key, target, address);
                group.members.push((address, member));
                self.groups.insert(id, group);
                entry.group = Some(id);
                tracing::debug!(peer = %address, group = id, "new update group");
                let all = self.all_best();
                self.advertise(id, &all);
            }
            Some(id) => {
                entry.group = Some(id);
                self.complete(id);
                if let Some(group) = self.groups.get_mut(&id) {
                    group.members.push((address, member));
                    tracing::debug!(peer = %address, group = id, members = group.members.len(), "joined an update group");
                }
                self.send_held(address, [], |_| true);
            }
        }
    }

    /// A group's second member is coming: export its first member's own
    /// routes, which were left out while it was alone (no message goes
    /// out: that member is not sent them).
    fn complete(&mut self, id: GroupId) {
        let State {
            rib,
            groups,
            exported,
            exports,
            members,
            ..
        } = self;
        let Some(group) = groups.get_mut(&id) else {
            return;
        };
        let Some(sole) = group.sole.take() else {
            return;
        };
        let from = members.of(sole);
        let mut exporter = Exporter {
            rib,
            class: exports.class(&group.target),
            target: &group.target,
            sets: exported,
            cache: exports,
            last: None,
        };
        let families = group.key.codec.families;
        for (prefix, slot, path) in rib.iter_best() {
            if rib.source_of(path) != Source::Peer(sole)
                || !families.get(family_of(&prefix))
                || group.adj_out.get(slot).is_some()
            {
                continue;
            }
            if let Some(set) = exporter.export(None, path, None) {
                group.adj_out.advertise(exporter.sets, slot, set, from);
            }
        }
    }

    /// The peer is no longer sent anything (its session went down, or it
    /// is about to join another group).
    fn leave_group(&mut self, address: IpAddr) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        entry.behind = None;
        let Some(id) = entry.group.take() else {
            return;
        };
        let Some(group) = self.groups.get_mut(&id) else {
            return;
        };
        group.members.retain(|(a, _)| *a != address);
        if group.members.is_empty()
            && let Some(mut group) = self.groups.remove(&id)
        {
            group.clear(&mut self.exported);
        }
    }

    /// Move every peer whose group no longer fits it (a route policy came
    /// or went, its own policy changed) into a group of its own, holding
    /// what it holds now; the pass that follows sends it the differences.
    /// Groups do not merge again until their members' sessions restart.
    /// Whether any peer changed group (its new one holds what it was
    /// sent, for a pass of exports to correct).
    fn regroup(&mut self) -> bool {
        let mut moved = false;
        let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in addresses {
            let Some((key, target)) = self.group_key(address) else {
                continue;
            };
            let Some(entry) = self.peers.get(&address) else {
                continue;
            };
            let (Some(id), member) = (entry.group, entry.member) else {
                continue;
            };
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            if group.key == key {
                continue;
            }
            tracing::debug!(peer = %address, group = id, "peer leaves its update group");
            moved = true;
            if group.members.len() == 1 {
                // Alone already: the group changes with it. Entries of its
                // own routes are withdrawn by the next pass, unheard by it.
                group.key = key;
                group.target = target;
                group.sole = Some(address);
                continue;
            }
            group.members.retain(|(a, _)| *a != address);
            let mut own = UpdateGroup::new(key, target, address);
            own.adj_out = group.adj_out.view_of(&mut self.exported, member);
            own.members.push((address, member));
            let new_id = self.next_group;
            self.next_group += 1;
            self.groups.insert(new_id, own);
            if let Some(entry) = self.peers.get_mut(&address) {
                entry.group = Some(new_id);
            }
        }
        moved
    }

    fn all_best(&self) -> Vec<BestChange> {
        self.rib
            .iter_best()
            .map(|(prefix, slot, path)| BestChange {
                prefix,
                slot,
                best: smallvec::smallvec![path.clone()],
                best_changed: true,
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
        // one that dropped them is better off with part of it now. So is a
        // peer restarting too: it sends its own table only after our
        // End-of-RIB (RFC 4724 §4.1), and the others still wait for that
        // table, so they never see an End-of-RIB without its routes.
        let defer = self
            .peers
            .get(&address)
            .is_some_and(|e| e.graceful.is_some() && !e.peer_restarting());
        if let Some(recovery) = &mut self.recovery
            && defer
        {
            recovery.deferred.insert(address);
            return;
        }
        match self.peers.get(&address).map(|e| e.group) {
            None => return,
            Some(None) => self.join(address),
            // Route refresh: the group's Adj-RIB-Out is what it was sent.
            Some(Some(_)) => self.send_held(address, [], |_| true),
        }
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

    /// A peer that was behind has read its backlog: withdraw what went
    /// meanwhile, then send the prefixes that changed, as its group holds
    /// them now.
    fn catch_up(&mut self, address: IpAddr) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        let Some(behind) = entry.behind.take() else {
            return;
        };
        tracing::debug!(peer = %address, "peer caught up; sending what changed");
        let changed = behind.changed;
        self.send_held(address, behind.withdrawn, |slot| changed.contains(slot));
    }

    /// Send one member withdrawals of `withdrawn`, then what its group
    /// holds for it in the slots `wanted` picks: for a joining member or a
    /// route refresh every slot, for one that caught up those that
    /// changed meanwhile.
    fn send_held(
        &mut self,
        address: IpAddr,
        withdrawn: impl IntoIterator<Item = Nlri>,
        wanted: impl Fn(Slot) -> bool,
    ) {
        let Some(entry) = self.peers.get(&address) else {
            return;
        };
        let Some(group) = entry.group.and_then(|id| self.groups.get(&id)) else {
            return;
        };
        let ctx = &group.key.codec;
        let mut outgoing = Outgoing::default();
        for nlri in withdrawn {
            outgoing.withdraw(family_of(&nlri.prefix), Audience::All, nlri);
        }
        // A walk over the table, as slots do not know their prefix; a peer
        // pays for it once per BACKLOG_HIGH octets it falls behind by.
        for (prefix, slot, _) in self.rib.best_of_slots(wanted) {
            let family = family_of(&prefix);
            if !ctx.families.get(family) {
                continue;
            }
            if ctx.add_path_send.get(family) {
                for &(id, set) in group.add_path_out.get(slot) {
                    let nlri = Nlri::with_path_id(prefix, id);
                    outgoing.announce(family, set, Audience::All, slot, nlri);
                }
            } else if let Some(set) = group.adj_out.visible(slot, entry.member) {
                outgoing.announce(family, set, Audience::All, slot, Nlri::new(prefix));
            }
        }
        if outgoing.is_empty() {
            return;
        }
        for bytes in outgoing
            .encode(ctx, &self.exported)
            .for_member(entry.member)
        {
            entry.handle.send(bytes, MessageType::Update);
        }
    }

    /// Send group `id` what changed for it, grouped by attribute set and
    /// encoded once: the best path per prefix, or in families with ADD-PATH
    /// send every path that may go to it. Export results are cached (see
    /// [`ExportCache`]), so groups that export alike compute each only
    /// once.
    fn advertise(&mut self, id: GroupId, changes: &[BestChange]) {
        let State {
            rib,
            peers,
            groups,
            exported,
            exports,
            members,
            path_ids,
            route_policy,
            commands,
            ..
        } = self;
        let Some(group) = groups.get_mut(&id) else {
            return;
        };
        // Members that do not read are told later what changed (see
        // State::catch_up): encoding more for them would only grow their
        // queues.
        let mut live: SmallVec<[(PeerHandle, Member); 4]> = SmallVec::new();
        let mut behind: SmallVec<[IpAddr; 4]> = SmallVec::new();
        for &(address, member) in &group.members {
            let Some(entry) = peers.get_mut(&address) else {
                continue;
            };
            if entry.behind.is_some() || entry.handle.backlog() > BACKLOG_HIGH {
                let state = entry.behind.get_or_insert_with(|| {
                    tracing::debug!(peer = %address, "peer is behind; holding its updates");
                    Behind::default()
                });
                if !std::mem::replace(&mut state.watched, true) {
                    watch_backlog(address, entry.handle.clone(), commands.clone());
                }
                behind.push(address);
            } else {
                live.push((entry.handle.clone(), member));
            }
        }
        let ctx = &group.key.codec;
        // Per change, the paths this group may be sent: with ADD-PATH all
        // of the prefix's paths as they are now; else the best path, and
        // only if the selection moved.
        let work: Vec<Work<'_>> = changes
            .iter()
            .filter_map(|change| {
                let family = family_of(&change.prefix);
                if !ctx.families.get(family) {
                    return None;
                }
                let every_path = ctx.add_path_send.get(family);
                let paths = if every_path {
                    rib.paths_at(change.slot)
                } else if change.best_changed {
                    &change.best[..change.best.len().min(1)]
                } else {
                    return None;
                };
                Some(Work {
                    change,
                    family,
                    every_path,
                    paths,
                })
            })
            .collect();
        // Policy first, on the Loc-RIB route; then the protocol's export
        // rules on what policy let through. A group with a policy has one
        // member, or members the policy promised to treat alike (see
        // State::group_key).
        let policy_peer = group.members.first().map(|(a, _)| *a);
        let verdicts = match (route_policy.as_ref(), policy_peer) {
            (Some(policy), Some(peer)) => {
                let candidates: Vec<Candidate<'_>> = work
                    .iter()
                    .flat_map(|w| w.paths.iter().map(|path| (w.change.prefix, path)))
                    .map(|(prefix, path)| Candidate {
                        prefix,
                        route: &path.route,
                        from_peer: !path.is_local(),
                    })
                    .collect();
                match policy.evaluate(peer, Direction::Export, &candidates) {
                    Ok(v) if v.len() == candidates.len() => Some(Ok(v)),
                    Ok(v) => Some(Err(format!(
                        "{} verdicts for {} routes",
                        v.len(),
                        candidates.len()
                    ))),
                    Err(e) => Some(Err(e)),
                }
            }
            _ => None,
        };
        let policy_failed = matches!(verdicts, Some(Err(_)));
        if let Some(Err(e)) = &verdicts {
            // Routes the policy would decide on stay as the peer has them;
            // prefixes that are gone are withdrawn all the same, as no
            // policy can keep them.
            tracing::warn!(peer = ?policy_peer, routes = work.len(), "export policy failed, no route changes sent; retrying in 1 s: {e}");
        }
        let mut verdicts = verdicts.and_then(Result::ok).map(Vec::into_iter);
        let mut exporter = Exporter {
            rib,
            class: exports.class(&group.target),
            target: &group.target,
            sets: exported,
            cache: exports,
            last: None,
        };
        let mut outgoing = Outgoing::tracking_slots(!behind.is_empty());
        let mut wanted: SmallVec<[(u32, SetId, Member); 4]> = SmallVec::new();
        let mut paths: SmallVec<[(u32, SetId); 4]> = SmallVec::new();
        let (mut gone, mut sent) = (Vec::new(), Vec::new());
        for w in work {
            if policy_failed && !w.paths.is_empty() {
                continue;
            }
            let prefix = w.change.prefix;
            let slot = w.change.slot;
            wanted.clear();
            for path in w.paths {
                let verdict = verdicts.as_mut().and_then(Iterator::next);
                if let Some(set) = exporter.export(group.sole, path, verdict) {
                    let source = exporter.rib.source_of(path);
                    let path_id = match w.every_path {
                        true => path_ids.get(source, path.path_id),
                        false => 0,
                    };
                    let from = match source {
                        Source::Peer(a) => members.of(a),
                        Source::Local => 0,
                    };
                    wanted.push((path_id, set, from));
                }
            }
            if w.every_path {
                // Unique groups only: the member is never a path's source.
                paths.clear();
                paths.extend(wanted.iter().map(|&(id, set, _)| (id, set)));
                group
                    .add_path_out
                    .sync(exporter.sets, slot, &paths, &mut gone, &mut sent);
                for id in gone.drain(..) {
                    outgoing.withdraw(w.family, Audience::All, Nlri::with_path_id(prefix, id));
                }
                for (id, set) in sent.drain(..) {
                    let nlri = Nlri::with_path_id(prefix, id);
                    outgoing.announce(w.family, set, Audience::All, slot, nlri);
                }
            } else if let Some(&(_, set, from)) = wanted.first() {
                let before = group.adj_out.get(slot);
                if group.adj_out.advertise(exporter.sets, slot, set, from) {
                    let audience = Audience::of_route_from(from);
                    outgoing.announce(w.family, set, audience, slot, Nlri::new(prefix));
                    if from != 0 && before.is_some_and(|(_, f)| f != from) {
                        // Its own route won over what it had: that goes.
                        outgoing.withdraw(w.family, Audience::Only(from), Nlri::new(prefix));
                    }
                }
            } else if let Some(from) = group.adj_out.withdraw(exporter.sets, slot) {
                let audience = Audience::of_route_from(from);
                outgoing.withdraw(w.family, audience, Nlri::new(prefix));
            }
        }
        if !outgoing.is_empty() {
            let encoded = outgoing.encode(ctx, exporter.sets);
            for (handle, member) in &live {
                for bytes in encoded.for_member(*member) {
                    handle.send(bytes, MessageType::Update);
                }
            }
            for address in &behind {
                let Some(entry) = peers.get_mut(address) else {
                    continue;
                };
                let member = entry.member;
                let Some(state) = &mut entry.behind else {
                    continue;
                };
                state
                    .withdrawn
                    .extend(outgoing.withdrawals_for(member).copied());
                for &(slot, audience) in &outgoing.slots {
                    if audience.includes(member) {
                        state.changed.insert(slot);
                    }
                }
            }
        }
        if policy_failed && let Some(peer) = policy_peer {
            // The peer must not keep a stale view for ever: the whole table
            // is evaluated again shortly (only differences go out).
            self.schedule(peer, Command::RetryExport(peer));
        }
    }
}

/// One change, as one peer sees it.
struct Work<'a> {
    change: &'a BestChange,
    family: Family,
    /// ADD-PATH send: every path goes, each with its id.
    every_path: bool,
    /// The paths to evaluate (none: the prefix is gone).
    paths: &'a [Path],
}

/// Export towards one peer for one pass: the protocol's rules on what
/// policy let through, cached per class.
struct Exporter<'a> {
    rib: &'a Rib,
    sets: &'a mut SetTable,
    cache: &'a mut ExportCache,
    target: &'a ExportTarget,
    class: u32,
    /// The last result: consecutive paths usually come from one UPDATE.
    last: Option<(ExportKey, Option<SetId>)>,
}

impl Exporter<'_> {
    /// The set `path` is exported with, or `None` if it is not; never to
    /// `split_horizon`'s own routes.
    fn export(
        &mut self,
        split_horizon: Option<IpAddr>,
        path: &Path,
        verdict: Option<PolicyVerdict>,
    ) -> Option<SetId> {
        let rib = self.rib;
        let source_info = rib.peer_of(path);
        if split_horizon.is_some_and(|peer| source_info.is_some_and(|i| i.address == peer)) {
            return None;
        }
        let source = source_info.map_or(Source::Local, |i| Source::Peer(i.address));
        match verdict {
            Some(PolicyVerdict::Reject) => None,
            Some(PolicyVerdict::Replace(attrs)) => {
                let changed = RouteAttrs {
                    attrs: *attrs,
                    next_hop: path.route.next_hop,
                };
                export(rib.config(), source, source_info, &changed, self.target)
                    .map(|r| self.sets.intern(r))
            }
            None | Some(PolicyVerdict::Accept) => {
                let key = (path.source_ref(), Arc::as_ptr(&path.route) as usize);
                if let Some((k, v)) = self.last
                    && k == key
                {
                    return v;
                }
                let target = self.target;
                let result = self.cache.get_or_insert_with(
                    (self.class, key),
                    &path.route,
                    self.sets,
                    |sets| {
                        export(rib.config(), source, source_info, &path.route, target)
                            .map(|r| sets.intern(r))
                    },
                );
                self.last = Some((key, result));
                result
            }
        }
    }
}

/// Export results by (class, source, Loc-RIB attribute set), kept across
/// passes: a reflector's clients ask for the same ones over and over, and
/// a peer that catches up asks again for what others already got. Peers
/// whose export target differs only in address and router id are in one
/// class (split horizon, the only rule that looks at the address, is
/// checked before the cache). Cleared whenever an input of export
/// changes (policy, configuration, a peer's session parameters), and when
/// it outgrows the Loc-RIB's attribute sets.
#[derive(Default)]
struct ExportCache {
    classes: HashMap<ExportTarget, u32>,
    /// Each entry holds the Loc-RIB set, so its address (the key) cannot
    /// be reused while cached, and retains its exported set in the
    /// [`SetTable`], so the id cannot be dropped either.
    /// Keyed by class, source and an address: nothing a peer chooses, so
    /// a fast hash without flooding resistance will do.
    results: FxHashMap<(u32, ExportKey), (Arc<RouteAttrs>, Option<SetId>)>,
}

impl ExportCache {
    fn class(&mut self, target: &ExportTarget) -> u32 {
        let mut key = target.clone();
        // A third-party next hop depends on the peer's address.
        if key.shared_subnet.is_none() {
            key.info.address = IpAddr::from([0, 0, 0, 0]);
        }
        key.info.router_id = Ipv4Addr::UNSPECIFIED;
        let next = self.classes.len() as u32;
        *self.classes.entry(key).or_insert(next)
    }

    fn get_or_insert_with(
        &mut self,
        key: (u32, ExportKey),
        route: &Arc<RouteAttrs>,
        sets: &mut SetTable,
        export: impl FnOnce(&mut SetTable) -> Option<SetId>,
    ) -> Option<SetId> {
        if let Some((_, id)) = self.results.get(&key) {
            return *id;
        }
        let id = export(sets);
        if let Some(id) = id {
            sets.retain(id);
        }
        self.results.insert(key, (route.clone(), id));
        id
    }

    /// Forget everything (an input of export changed).
    fn clear(&mut self, sets: &mut SetTable) {
        for (_, (_, id)) in self.results.drain() {
            if let Some(id) = id {
                sets.release(id);
            }
        }
        self.classes.clear();
    }
}

/// Drop every change superseded by a later one for the same slot,
/// keeping the order of the rest: a slot's last change carries its whole
/// current state. A prefix that went and came back within the batch has
/// two slots (one emptied, one new), so its withdrawal still goes out
/// before its new announcement.
fn keep_last_per_slot(changes: &mut Vec<BestChange>) {
    // Slot -> where its last change is in `kept`: a dropped change that
    // moved the selection passes that on, or the FIB would miss it.
    let mut last: FxHashMap<Slot, usize> = FxHashMap::default();
    last.reserve(changes.len());
    let mut kept: Vec<BestChange> = Vec::with_capacity(changes.len());
    for change in changes.drain(..).rev() {
        match last.get(&change.slot) {
            Some(&i) => kept[i].best_changed |= change.best_changed,
            None => {
                last.insert(change.slot, kept.len());
                kept.push(change);
            }
        }
    }
    kept.reverse();
    *changes = kept;
}

fn family_of(prefix: &Prefix) -> Family {
    match prefix.afi() {
        Afi::IPV6 => Family::IPV6_UNICAST,
        _ => Family::IPV4_UNICAST,
    }
}

/// What a peer that fell behind must still be told.
#[derive(Debug, Default)]
struct Behind {
    /// Prefixes (with ADD-PATH, paths) it was sent that it must no longer
    /// hold: each once, so the set is bounded by the table.
    withdrawn: HashSet<Nlri>,
    /// Slots whose best path changed since: a bit per slot, so a peer
    /// that is behind by a whole table costs an eighth of a byte per
    /// route.
    changed: SlotSet,
    /// A task watches its backlog.
    watched: bool,
}

/// A set of RIB slots.
#[derive(Debug, Default)]
struct SlotSet(Vec<u64>);

impl SlotSet {
    fn insert(&mut self, slot: Slot) {
        let (word, bit) = (slot as usize / 64, slot % 64);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn contains(&self, slot: Slot) -> bool {
        self.0
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }
}

/// Tell the instance once `handle`'s backlog is down to
/// [`BACKLOG_LOW`] (or the peer or the instance is gone).
fn watch_backlog(address: IpAddr, handle: PeerHandle, commands: mpsc::UnboundedSender<Command>) {
    tokio::spawn(async move {
        while handle.backlog() > BACKLOG_LOW && !commands.is_closed() && !handle.is_closed() {
            tokio::time::sleep(BACKLOG_POLL).await;
        }
        let _ = commands.send(Command::CaughtUp(address));
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn change(prefix: &str, slot: Slot, paths: usize) -> BestChange {
        let route = Arc::new(RouteAttrs {
            attrs: PathAttributes::default(),
            next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
        });
        let mut rib = Rib::new(RibConfig::new(64512, Ipv4Addr::new(192, 0, 2, 254)));
        let prefix: Prefix = prefix.parse().expect("prefix");
        let best = if paths == 0 {
            SmallVec::new()
        } else {
            rib.originate(prefix, route.attrs.clone(), route.next_hop)
                .remove(0)
                .best
        };
        BestChange {
            prefix,
            slot,
            best,
            best_changed: true,
        }
    }

    use smallvec::SmallVec;

    #[test]
    fn a_batch_keeps_each_slots_last_change_in_order() {
        let mut changes = vec![
            change("10.0.0.0/8", 1, 1),
            change("10.1.0.0/16", 2, 1),
            change("10.0.0.0/8", 1, 0),
            // The prefix came back under a new slot: its withdrawal (slot
            // 1) must still go out first.
            change("10.0.0.0/8", 3, 1),
            change("10.1.0.0/16", 2, 0),
        ];
        keep_last_per_slot(&mut changes);
        let kept: Vec<(Slot, usize)> = changes.iter().map(|c| (c.slot, c.best.len())).collect();
        assert_eq!(kept, [(1, 0), (3, 1), (2, 0)]);
    }

    #[test]
    fn a_kept_change_inherits_a_dropped_selection_change() {
        // The best path moved, then (ADD-PATH tracking) a path that is not
        // selected changed: the FIB must still hear of the first.
        let mut later = change("10.0.0.0/8", 1, 1);
        later.best_changed = false;
        let mut changes = vec![change("10.0.0.0/8", 1, 1), later];
        keep_last_per_slot(&mut changes);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].best_changed);
    }

    #[test]
    fn which_session_ends_keep_a_graceful_peers_routes() {
        use crate::session::DownReason;
        let cease = |subcode| Notification::new(code::CEASE, subcode);
        let lost = DownReason::ConnectionLost;
        assert!(keeps_routes(false, &lost));
        let collision = DownReason::Received(cease(code::cease::CONNECTION_COLLISION));
        assert!(keeps_routes(true, &collision));
        assert!(
            !keeps_routes(false, &collision),
            "no N bit: any NOTIFICATION ends it"
        );
        let hard = DownReason::Received(cease(code::cease::HARD_RESET));
        assert!(!keeps_routes(true, &hard));
        let deconfigured = DownReason::Sent(cease(code::cease::PEER_DECONFIGURED));
        assert!(!keeps_routes(true, &deconfigured));
        let hold = DownReason::Received(Notification::new(code::HOLD_TIMER_EXPIRED, 0));
        assert!(keeps_routes(true, &hold));
    }

    #[test]
    fn which_failed_reconnections_keep_a_restarting_peers_routes() {
        use crate::session::DownReason;
        let cease = |subcode| DownReason::Received(Notification::new(code::CEASE, subcode));
        assert!(retry_keeps_stale(&DownReason::ConnectionLost));
        assert!(retry_keeps_stale(&cease(code::cease::CONNECTION_REJECTED)));
        let open_error = Notification::new(code::OPEN_MESSAGE, code::open::BAD_PEER_AS);
        assert!(retry_keeps_stale(&DownReason::Sent(open_error)));
        for gone in [
            code::cease::ADMIN_SHUTDOWN,
            code::cease::PEER_DECONFIGURED,
            code::cease::HARD_RESET,
        ] {
            assert!(!retry_keeps_stale(&cease(gone)), "Cease/{gone}");
        }
    }

    #[test]
    fn slot_sets() {
        let mut set = SlotSet::default();
        assert!(!set.contains(5));
        set.insert(5);
        set.insert(200);
        assert!(set.contains(5) && set.contains(200));
        assert!(!set.contains(6) && !set.contains(64) && !set.contains(100_000));
    }

    #[test]
    fn peers_that_export_alike_share_a_class() {
        let info = |n: u8| PeerInfo {
            address: IpAddr::from([192, 0, 2, n]),
            router_id: Ipv4Addr::new(198, 51, 100, n),
            asn: 64512,
            ebgp: false,
            rr_client: true,
            allow_own_as: 0,
        };
        let target = |n: u8| ExportTarget {
            info: info(n),
            next_hop: NextHopMode::Auto,
            local_v4: Some(Ipv4Addr::new(192, 0, 2, 254)),
            local_v6: None,
            local_as: None,
            extended_next_hop: false,
            shared_subnet: None,
        };
        let mut cache = ExportCache::default();
        assert_eq!(cache.class(&target(1)), cache.class(&target(2)));
        let mut non_client = target(3);
        non_client.info.rr_client = false;
        assert_ne!(cache.class(&target(1)), cache.class(&non_client));
        // A third-party next hop depends on the peer's own address.
        let mut on_subnet = |n| {
            let mut t = target(n);
            t.shared_subnet = Some((IpAddr::from([192, 0, 2, 0]), 24));
            cache.class(&t)
        };
        assert_ne!(on_subnet(1), on_subnet(2));
    }
}
