//! The tokio shell around [`Core`]: the handle the rest of Starling holds,
//! and the one task that feeds the core its channels and its timers.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use starling_wire::notification::code;
use starling_wire::{Notification, PathAttributes, Prefix};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::best::{BestChanges, BestPathStream, BestSender};
use super::core::Core;
use super::links::DriverLinks;
use super::requests::Request;
use super::{Counts, MonitorEvent, PeerEvent, PeerPolicy, RibPath};
use crate::config::PeerConfig;
use crate::driver::{PeerRegistry, PeerStatus, accept_loop};
use crate::policy::RoutePolicy;
use crate::rib::{RibConfig, RouteAttrs, Source};

/// At most this many peer events are handled before the changes they made
/// go out.
const EVENT_BATCH: usize = 256;

/// How long a departure's step waits for the FIB to take the step
/// before last (see [`BestSender::wait_until_at_most`]).
const FIB_TAKE_LIMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// What the handle sends the task.
enum Message {
    Request(Request),
    Query(Query),
    /// A route monitor subscribes (see [`Instance::monitor`]).
    Monitor(mpsc::Sender<MonitorEvent>),
}

/// Questions answered from the core's state as it is.
enum Query {
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    Routes(oneshot::Sender<Vec<(Prefix, RouteAttrs, Source)>>),
    Counts(oneshot::Sender<Counts>),
    Memory(oneshot::Sender<super::Memory>),
    Paths(oneshot::Sender<Vec<RibPath>>),
    SolePaths(HashSet<IpAddr>, oneshot::Sender<HashMap<IpAddr, usize>>),
}

/// Handle to a running instance.
#[derive(Clone)]
pub struct Instance {
    tx: mpsc::UnboundedSender<Message>,
    listening: Arc<tokio::sync::Mutex<Listening>>,
}

/// The sockets an instance accepts connections on.
struct Listening {
    registry: Arc<Mutex<PeerRegistry>>,
    sockets: Vec<(SocketAddr, Arc<TcpListener>, tokio::task::JoinHandle<()>)>,
}

impl Listening {
    /// Listen on exactly `addresses`: new ones are bound first, so a
    /// failure changes nothing; sockets on addresses that stay are kept, so
    /// their backlog and keys are not lost. A new address that overlaps
    /// one being given up on the same port (the wildcard for a specific
    /// address, or back) can only be bound once that one is closed: then
    /// the old sockets go first, and come back if the new ones fail.
    async fn set(&mut self, addresses: &[SocketAddr]) -> std::io::Result<()> {
        let new: Vec<SocketAddr> = addresses
            .iter()
            .filter(|a| !self.sockets.iter().any(|(s, _, _)| s == *a))
            .copied()
            .collect();
        let bound = match bind_all(&new).await {
            Ok(bound) => bound,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let leaving: Vec<SocketAddr> = self
                    .sockets
                    .iter()
                    .map(|(a, _, _)| *a)
                    .filter(|a| !addresses.contains(a))
                    .collect();
                if leaving.is_empty() {
                    return Err(e);
                }
                self.close(addresses).await;
                match bind_all(&new).await {
                    Ok(bound) => bound,
                    Err(e) => {
                        match bind_all(&leaving).await {
                            Ok(back) => self.accept_on(back),
                            Err(again) => tracing::error!(
                                addresses = ?leaving,
                                "cannot listen where the instance listened before: {again}"
                            ),
                        }
                        return Err(e);
                    }
                }
            }
            Err(e) => return Err(e),
        };
        self.close(addresses).await;
        self.accept_on(bound);
        Ok(())
    }

    /// Close every socket whose address is not in `keep`, and wait until
    /// its accept task has let go of it: only then is the address free.
    async fn close(&mut self, keep: &[SocketAddr]) {
        let (kept, leaving) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|(addr, _, _)| keep.contains(addr));
        self.sockets = kept;
        for (addr, listener, task) in leaving {
            task.abort();
            let _ = task.await;
            self.registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove_listener(&listener);
            tracing::info!(%addr, "no longer listening");
        }
    }

    fn accept_on(&mut self, bound: Vec<(SocketAddr, Arc<TcpListener>)>) {
        for (addr, listener) in bound {
            let task = tokio::spawn(accept_loop(listener.clone(), self.registry.clone()));
            self.sockets.push((addr, listener, task));
        }
    }
}

/// Bind every address, or none: a failure drops what was bound.
async fn bind_all(
    addresses: &[SocketAddr],
) -> std::io::Result<Vec<(SocketAddr, Arc<TcpListener>)>> {
    let mut bound = Vec::new();
    for addr in addresses {
        bound.push((*addr, Arc::new(TcpListener::bind(addr).await?)));
    }
    Ok(bound)
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
        let registry = Arc::new(Mutex::new(PeerRegistry::default()));
        let mut listening = Listening {
            registry: registry.clone(),
            sockets: Vec::new(),
        };
        listening.set(listen).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (best_tx, best_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let core = Core::new(cfg, DriverLinks::new(registry, events_tx), Instant::now());
        tokio::spawn(run(core, rx, events_rx, best_tx));
        let listening = Arc::new(tokio::sync::Mutex::new(listening));
        Ok((Self { tx, listening }, best_rx))
    }

    /// Accept connections on exactly `addresses` from now on (a listen
    /// port or address change): running sessions are not touched. On an
    /// error (an address that cannot be bound), nothing changes.
    pub async fn listen(&self, addresses: &[SocketAddr]) -> std::io::Result<()> {
        self.listening.lock().await.set(addresses).await
    }

    fn request(&self, request: Request) {
        let _ = self.tx.send(Message::Request(request));
    }

    async fn query<T: Default>(&self, ask: impl FnOnce(oneshot::Sender<T>) -> Query) -> T {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Message::Query(ask(tx)));
        rx.await.unwrap_or_default()
    }

    pub fn add_peer(&self, cfg: PeerConfig, policy: PeerPolicy) {
        self.request(Request::AddPeer(Box::new(cfg), policy));
    }

    /// We restarted with our forwarding state kept (RFC 4724 §4.1): until
    /// every peer has sent us its table (End-of-RIB), or `limit` passes,
    /// our OPENs carry the Restart State bit and peers that kept our
    /// routes as stale are sent nothing, so they never see a partial
    /// table followed by an End-of-RIB that sweeps the rest. Call it
    /// after adding the peers known at start.
    pub fn recover(&self, limit: std::time::Duration) {
        self.request(Request::Recover(limit));
    }

    pub fn remove_peer(&self, address: IpAddr) {
        self.request(Request::RemovePeer(address, None));
    }

    /// Administrative shutdown of every peer (RFC 8203/9003: Cease /
    /// Administrative Shutdown with `message`), all removed.
    pub fn shutdown(&self, addresses: impl IntoIterator<Item = IpAddr>, message: &str) {
        for address in addresses {
            let notification =
                Notification::cease_with_message(code::cease::ADMIN_SHUTDOWN, message);
            self.request(Request::RemovePeer(address, Some(notification)));
        }
    }

    /// Originate `prefix` with `attrs` (next hop: ourselves).
    pub fn originate(&self, prefix: Prefix, attrs: PathAttributes) {
        self.request(Request::Originate(prefix, Box::new(attrs)));
    }

    pub fn withdraw(&self, prefix: Prefix) {
        self.request(Request::Withdraw(prefix));
    }

    /// Decide imports and exports with `policy` from now on (`None`:
    /// accept everything). What every peer has is re-evaluated at once and
    /// corrected with the difference; peers in `refresh` are asked to send
    /// their routes again (ROUTE-REFRESH), so new import rules apply to
    /// what they sent before.
    pub fn set_route_policy(&self, policy: Option<Arc<dyn RoutePolicy>>, refresh: Vec<IpAddr>) {
        self.request(Request::SetRoutePolicy {
            policy,
            refresh,
            keep_exports: false,
        });
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
        self.request(Request::SetRoutePolicy {
            policy,
            refresh,
            keep_exports: true,
        });
    }

    pub async fn peers(&self) -> Vec<PeerStatus> {
        self.query(Query::Peers).await
    }

    /// Change a running peer's policy without resetting its session: what
    /// every peer is sent is re-evaluated (a new client changes what is
    /// reflected to everyone). Changes that need a new OPEN
    /// (`local_as`) are the caller's to apply by replacing the peer.
    pub fn update_peer_policy(&self, address: IpAddr, policy: PeerPolicy) {
        self.request(Request::UpdatePeerPolicy(address, policy));
    }

    /// Make a running peer passive or active without resetting it.
    pub fn set_passive(&self, address: IpAddr, passive: bool) {
        self.request(Request::SetPassive(address, passive));
    }

    /// Change the local AS, router id or cluster id. Sessions keep running
    /// (their OPENs carry their own AS and identifier: replace those whose
    /// configuration changes); every Adj-RIB-Out is re-evaluated.
    pub fn reconfigure(&self, cfg: RibConfig) {
        self.request(Request::Reconfigure(cfg));
    }

    /// Every path of every prefix, selected ones first within a prefix.
    pub async fn paths(&self) -> Vec<RibPath> {
        self.query(Query::Paths).await
    }

    /// For each peer in `leaving`, how many prefixes only `leaving` peers
    /// give a path to (see [`crate::rib::Rib::sole_paths`]). It walks the
    /// table.
    pub async fn sole_paths(&self, leaving: HashSet<IpAddr>) -> HashMap<IpAddr, usize> {
        self.query(|tx| Query::SolePaths(leaving, tx)).await
    }

    /// Route counts for metrics.
    pub async fn counts(&self) -> Counts {
        self.query(Query::Counts).await
    }

    /// Where the heap bytes are: walks the table (a millisecond per
    /// million prefixes), so for a scrape, not a poll.
    pub async fn memory(&self) -> super::Memory {
        self.query(Query::Memory).await
    }

    /// Loc-RIB: every prefix with its best path.
    pub async fn routes(&self) -> Vec<(Prefix, RouteAttrs, Source)> {
        self.query(Query::Routes).await
    }

    /// Watch the instance as a route monitor (BMP) does: first a snapshot
    /// of the established peers and the routes, then every change as it
    /// happens. A watcher that falls more than `capacity` events behind is
    /// dropped (its receiver closes) rather than let events pile up in
    /// memory; it subscribes again for a fresh snapshot.
    pub fn monitor(&self, capacity: usize) -> mpsc::Receiver<MonitorEvent> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let _ = self.tx.send(Message::Monitor(tx));
        rx
    }
}

/// The instance's task: requests, batches of peer events and timers in;
/// best-path changes out. It ends when every handle is gone.
async fn run(
    mut core: Core<DriverLinks>,
    mut messages: mpsc::UnboundedReceiver<Message>,
    mut events: mpsc::UnboundedReceiver<(IpAddr, PeerEvent)>,
    best: mpsc::UnboundedSender<BestChanges>,
) {
    let best = BestSender::new(best);
    let mut monitors: Vec<mpsc::Sender<MonitorEvent>> = Vec::new();
    loop {
        let deadline = core.poll_timeout();
        tokio::select! {
            message = messages.recv() => match message {
                Some(Message::Request(request)) => core.handle_request(request, Instant::now()),
                Some(Message::Query(query)) => answer(&core, query),
                Some(Message::Monitor(watcher)) => {
                    let snapshot = core.monitor_snapshot();
                    if snapshot.into_iter().all(|e| watcher.try_send(e).is_ok()) {
                        core.start_monitoring();
                        monitors.push(watcher);
                    } else {
                        tracing::warn!("a route monitor cannot take the snapshot: dropped");
                    }
                }
                None => return,
            },
            Some((peer, event)) = events.recv() => {
                core.handle_event(peer, event, Instant::now());
                // Whatever else peers have sent meanwhile joins this
                // batch: many small UPDATEs (a reflector's clients, one
                // prefix each) then cost one pass over the peers and fill
                // whole messages, instead of a pass and a tiny message per
                // UPDATE per peer.
                for _ in 1..EVENT_BATCH {
                    if core.batch_full() {
                        break;
                    }
                    match events.try_recv() {
                        Ok((peer, event)) => core.handle_event(peer, event, Instant::now()),
                        Err(_) => break,
                    }
                }
                core.step_batch();
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                core.handle_timeout(Instant::now());
            }
        }
        pass_on(&mut core, &best, &mut monitors);
        // Peers' routes leaving: a step, its changes passed on, and the
        // next step only once the FIB has taken the one before (or a
        // limit passed), with the peers' tasks given their turn, so that a
        // full table leaving is never held all at once.
        while core.busy() {
            best.wait_until_at_most(1, FIB_TAKE_LIMIT).await;
            tokio::task::yield_now().await;
            core.step_batch();
            pass_on(&mut core, &best, &mut monitors);
        }
    }
}

/// Hand what the core produced to the FIB and the route monitors.
fn pass_on(
    core: &mut Core<DriverLinks>,
    best: &BestSender,
    monitors: &mut Vec<mpsc::Sender<MonitorEvent>>,
) {
    while let Some(changes) = core.poll_best_changes() {
        best.send(changes);
    }
    if !monitors.is_empty() {
        feed_monitors(core, monitors);
    }
}

/// Hand the queued monitor events to every watcher; a watcher that is
/// gone or too far behind is dropped, and with the last one the core
/// stops queueing.
fn feed_monitors(core: &mut Core<DriverLinks>, monitors: &mut Vec<mpsc::Sender<MonitorEvent>>) {
    let events = core.poll_monitor();
    monitors.retain(|watcher| {
        let kept = events.iter().all(|e| watcher.try_send(e.clone()).is_ok());
        if !kept && !watcher.is_closed() {
            tracing::warn!("a route monitor fell behind: dropped until it subscribes again");
        }
        kept
    });
    if monitors.is_empty() {
        core.stop_monitoring();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(at) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

fn answer(core: &Core<DriverLinks>, query: Query) {
    match query {
        Query::Peers(reply) => {
            let _ = reply.send(core.peers());
        }
        Query::Routes(reply) => {
            let _ = reply.send(core.routes());
        }
        Query::Counts(reply) => {
            let _ = reply.send(core.counts(Instant::now()));
        }
        Query::Memory(reply) => {
            let _ = reply.send(core.memory());
        }
        Query::Paths(reply) => {
            let _ = reply.send(core.paths());
        }
        Query::SolePaths(leaving, reply) => {
            let _ = reply.send(core.sole_paths(&leaving));
        }
    }
}
