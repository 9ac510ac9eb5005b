//! `starling run`: the appliance daemon.
//!
//! Named parts, data flowing one way, wired by [`daemon`]:
//!
//! ```text
//! datastore ──▶ planner ──▶ route policy updates ──▶ speaker ──▶ best paths ──▶ fib (Programmer) ──▶ kernel
//! (watch)      (plugins,    session reconciler ───▶   │
//!               blocking)   originator ───────────▶   └──▶ status reporter (node status, status resources, metrics)
//! ```
//!
//! | module | part |
//! |---|---|
//! | `planner.rs` | datastore snapshot → this node's plan; a refused snapshot keeps the last good plan |
//! | `policy_updates.rs` | plan → the speaker's route policy; which peers resend, whether to re-export |
//! | `sessions.rs` | plan → the speaker's peers, make-before-break |
//! | `origination.rs` | plan → the prefixes this node originates |
//! | `fib.rs` | best paths → kernel routes, through `starling_fib::Programmer` |
//! | `admin.rs`, `metrics.rs`, and Calico's status writer (`crate::calico`) | status out |
//! | `reload.rs` | plugin files and SIGHUP |
//!
//! A datastore change re-plans (through the plugins, off the async
//! runtime, under their deadline); a failed plan keeps the last good one,
//! so running sessions are untouched. Sessions are reconciled by name:
//! only those that changed are replaced.

pub(crate) mod admin;
mod bmp;
pub(crate) mod config;
mod datastore_health;
mod fib;
mod listen;
mod metrics;
mod metrics_http;
mod origination;
mod planner;
mod plugins;
mod policy_updates;
mod reload;
mod route_policy;
mod sessions;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use starling_fib::Programmer;
use starling_plugin_host::contract::{Family, Session};
use starling_plugin_host::{Host, Limits, Plugin};
use starling_speaker::instance::Instance;
use starling_speaker::rib::RibConfig;
use starling_store::Change;

use crate::datastore::Datastore;

use crate::calico::status_writer::Tick;
use config::{Config, FibMode};
use datastore_health as health;
use listen::{listen_addresses, relisten};
use planner::{NoPlan, Planned, Planner};
use policy_updates::RoutePolicyUpdates;
use sessions::Sessions;

/// How often the datastore journal is checked for changes.
const POLL: Duration = Duration::from_millis(200);
/// The longest adopted kernel routes wait for their sessions to come back
/// before stale ones are swept: the graceful-restart time Calico gives.
const SWEEP_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The configuration file.
    #[arg(short, long, default_value = "/etc/starling/starling.toml")]
    config: PathBuf,
    /// How to write the log (overrides `[log] format`).
    #[arg(long, value_enum)]
    log_format: Option<config::LogFormat>,
}

pub(crate) fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    init_logging(args.log_format.unwrap_or(config.log.format));
    tune_malloc();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(daemon(config))?;
    Ok(ExitCode::SUCCESS)
}

/// How the daemon asks glibc's malloc to behave; each setting yields to
/// its `MALLOC_*` environment variable. Must run before any thread
/// starts.
///
/// - **Two arenas** (`MALLOC_ARENA_MAX`). glibc gives threads that
///   allocate at once arenas of their own (up to eight per core) and
///   never hands memory freed in one to another: under the soak's churn
///   (plugin calls on blocking threads, sessions on the workers, a filter
///   edit every ten seconds) the daemon's RSS climbed from 64 to 185 MiB
///   in three minutes with no more than 86 MiB of heap in use, and kept
///   climbing; with two arenas it stays at 78 MiB (docs/performance.md,
///   "Soak").
/// - **Large blocks mapped, at a fixed 256 KiB** (`MALLOC_MMAP_THRESHOLD_`).
///   glibc raises its threshold each time a mapped block is freed, up to
///   32 MiB; after that, the tables a full table grows (the RIB's, the
///   FIB's maps, each batch's changes) come from the heap, where the
///   block left behind by each doubling stays in RSS. Fixed, each goes
///   back to the kernel when freed: a million routes into the kernel
///   peaked at 143 MiB before, 114 after, in the same time
///   (docs/performance.md, "Where the bytes are").
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only sets a parameter of the allocator; called
        // before the runtime's threads exist.
        #[allow(unsafe_code)]
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
            }
        }
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`); colour
/// codes only when standard error is a terminal, so a file under systemd
/// or a redirect stays plain text.
fn init_logging(format: config::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        config::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        config::LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// What `starling node status` asks the daemon about.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) instance: Option<Instance>,
    /// Session name → (family, peer address).
    pub(crate) sessions: BTreeMap<String, (Family, IpAddr)>,
    /// Why the plugins refused the datastore's current state, and since
    /// when (Unix seconds): the last plan they accepted is still running.
    pub(crate) plan_error: Option<(String, u64)>,
    /// What is wrong with the datastore, and since when (Unix seconds):
    /// the running plan is what was last read from it.
    pub(crate) datastore_error: Option<(String, u64)>,
    /// The running plan's warnings: what it left out of the datastore,
    /// and what the plugins said about this node's sessions.
    pub(crate) plan_warnings: Vec<String>,
    /// This node's route-reflector cluster id, when it reflects.
    pub(crate) cluster_id: Option<std::net::Ipv4Addr>,
    /// Sessions whose peers are its route-reflector clients.
    pub(crate) reflector_clients: std::collections::BTreeSet<String>,
}

async fn daemon(config: Config) -> anyhow::Result<()> {
    let mut daemon = Daemon::open(config).await?;
    let mut changes = daemon.store.watch(daemon.revision);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    // The datastore changed since the last plan (`stale`), or the plugins
    // did (`replan`).
    let (mut stale, mut replan) = (true, false);
    loop {
        if (stale || replan) && daemon.replan().await? {
            (stale, replan) = (false, false);
        }
        daemon.converge().await;
        daemon.report().await;
        match next_event(&mut shutdown, &mut hangup, &mut changes).await {
            Event::Shutdown => break,
            Event::Changed(change) => stale |= daemon.take_changes(change, &mut changes),
            Event::WatchEnded => anyhow::bail!("the datastore watch ended"),
            Event::Hangup => replan |= daemon.reload_configuration(),
            Event::Tick => replan |= daemon.reload_changed_plugins(),
        }
    }
    daemon.stop().await;
    Ok(())
}

/// The speaker and what hangs off it, once the first plan has given the
/// node its AS and router id.
struct Running {
    instance: Instance,
    rib: RibConfig,
    /// The addresses listened on.
    listening: Vec<SocketAddr>,
    /// The wildcard address that could be bound at start (`[::]`, or
    /// `0.0.0.0` on a host without IPv6).
    wildcard: IpAddr,
    /// The kernel FIB programmer, unless the FIB is left alone.
    fib: Option<Programmer>,
    /// One per BMP collector.
    bmp: Vec<starling_bmp::Exporter>,
}

/// The daemon's parts, each with one job; [`daemon`] wires them.
///
/// - the planner: a datastore snapshot → this node's plan (last good kept);
/// - the route policy updates: plan → the speaker's route policy;
/// - the session reconciler ([`Sessions`]): plan → the speaker's peers;
/// - the originator ([`origination::Originated`]): plan → our prefixes;
/// - the status reporter: `starling node status` (through [`Shared`]),
///   the status resources Calico users read, and metrics.
struct Daemon {
    config: Config,
    store: Datastore,
    /// The datastore revision the watch starts from.
    revision: u64,
    planner: Planner,
    plugin_set: plugins::PluginSet,
    running: Option<Running>,
    sessions: Sessions,
    route_policy: RoutePolicyUpdates,
    originated: origination::Originated,
    reporter: crate::calico::status_writer::Reporter,
    /// What the admin socket and the metrics endpoint read.
    shared: Arc<Mutex<Shared>>,
    plugin_list: Arc<Mutex<Vec<Plugin>>>,
    fib_stats: Arc<Mutex<metrics::FibStats>>,
    datastore_stats: Arc<Mutex<metrics::DatastoreStats>>,
    /// Whether the datastore answers, as its watch, reads and writes say.
    health: health::DatastoreHealth,
    /// Recovering from a restart that kept our routes in the kernel: set
    /// once the FIB has adopted them, acted on once the first sessions
    /// exist.
    recover: bool,
    started: Instant,
    /// The last plan's size, to say when a change empties it: this node's
    /// sessions, and the cluster's route reflectors.
    last_shape: Option<(usize, usize)>,
    /// The admin socket's server task.
    admin_task: tokio::task::JoinHandle<()>,
    /// The metrics endpoint's server task, when enabled.
    metrics_task: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    async fn open(config: Config) -> anyhow::Result<Self> {
        let error_wait = config.bgp.error_wait();
        let store = Datastore::open(&config.datastore)
            .await
            .with_context(|| format!("opening the {}", config.datastore))?;
        let revision = store.revision().await?;
        let datastore_stats = Arc::new(Mutex::new(metrics::DatastoreStats {
            revision,
            ..Default::default()
        }));
        let host = Host::new(Limits::default())?.with_cache(crate::plan::cache_dir());
        let plugin_set = plugins::PluginSet::load(&host, &config.plugins)?;
        tracing::info!(roles = %plugin_set.describe(), "plugins serving their roles");
        let plugin_list = Arc::new(Mutex::new(plugin_set.all()));
        let planner = Planner::new(
            plugin_set.roles()?,
            config.node_name.clone(),
            config.router_id,
        );
        let shared = Arc::new(Mutex::new(Shared::default()));
        let admin = admin::serve(&config.admin.socket, shared.clone())?;
        let fib_stats = Arc::new(Mutex::new(metrics::FibStats::default()));
        let metrics = if config.metrics.enabled {
            let listener = tokio::net::TcpListener::bind(&config.metrics.listen)
                .await
                .with_context(|| format!("metrics.listen {}", config.metrics.listen))?;
            let sources = metrics::Sources {
                shared: shared.clone(),
                plugins: plugin_list.clone(),
                fib: fib_stats.clone(),
                datastore: datastore_stats.clone(),
            };
            Some(metrics_http::serve(listener, Arc::new(sources)))
        } else {
            None
        };
        tracing::info!(node = config.node_name, "starling running");
        Ok(Self {
            config,
            store,
            revision,
            planner,
            plugin_set,
            running: None,
            sessions: Sessions::new(error_wait),
            route_policy: RoutePolicyUpdates::default(),
            originated: origination::Originated::default(),
            reporter: crate::calico::status_writer::Reporter::default(),
            shared,
            plugin_list,
            fib_stats,
            datastore_stats,
            health: health::DatastoreHealth::default(),
            recover: false,
            started: Instant::now(),
            last_shape: None,
            admin_task: admin,
            metrics_task: metrics,
        })
    }

    /// Plan the datastore's current content and apply the plan. Whether
    /// the datastore could be read (if not, the last plan keeps running
    /// and the next tick tries again).
    async fn replan(&mut self) -> anyhow::Result<bool> {
        let (docs, unreadable) = match self.store.snapshot().await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                if let Ok(mut s) = self.datastore_stats.lock() {
                    s.read_errors += 1;
                }
                self.datastore_health(health::Source::Read, Some(format!("reading: {e}")));
                return Ok(false);
            }
        };
        self.datastore_health(health::Source::Read, None);
        match self.planner.plan(&docs, unreadable).await? {
            Ok(planned) => {
                self.report_warnings(&planned)?;
                self.apply(planned).await?;
            }
            Err(NoPlan::Refused(error)) => {
                tracing::error!("datastore change not applied: {error}");
                let mut status = self.status()?;
                let since = status.plan_error.take().map_or_else(unix_now, |(_, t)| t);
                status.plan_error = Some((error, since));
            }
            Err(NoPlan::UnknownNode) => {
                tracing::warn!(
                    node = self.config.node_name,
                    "no Node resource for this node yet"
                );
            }
            Err(NoPlan::NoRouterId) => {
                tracing::error!("no router id: the node has no IPv4 address; set router_id");
            }
        }
        Ok(true)
    }

    /// Say what the plan warns of: in the log when it changes, in node
    /// status and in the metrics while it lasts.
    fn report_warnings(&mut self, planned: &Planned) -> anyhow::Result<()> {
        if let Ok(mut stats) = self.datastore_stats.lock() {
            stats.skipped.clear();
            for s in &planned.skipped {
                *stats
                    .skipped
                    .entry((s.problem.kind.clone(), s.remedy.as_str()))
                    .or_default() += 1;
            }
        }
        // A change that empties the plan is more often a mistake (a
        // selector that matches nothing now, a plugin that lost a role's
        // logic) than a wish: say so loudly, once.
        let shape = (planned.sessions.len(), planned.reflectors);
        if let Some((sessions, reflectors)) = self.last_shape.replace(shape) {
            if sessions > 0 && shape.0 == 0 {
                tracing::warn!(
                    before = sessions,
                    "the new plan leaves this node without sessions: check the last resource or plugin change"
                );
            }
            if reflectors > 0 && shape.1 == 0 {
                tracing::warn!(
                    before = reflectors,
                    "the new plan has no route reflector left: check the last resource or plugin change"
                );
            }
        }
        let mut status = self.status()?;
        status.plan_error = None;
        if status.plan_warnings != planned.warnings {
            for w in planned
                .warnings
                .iter()
                .filter(|w| !status.plan_warnings.contains(w))
            {
                tracing::warn!("plan: {w}");
            }
            if planned.warnings.is_empty() {
                tracing::info!("the plan has no more warnings");
            }
            status.plan_warnings = planned.warnings.clone();
        }
        Ok(())
    }

    /// Make the speaker what `planned` says: its identity, route policy,
    /// sessions and originated prefixes.
    async fn apply(&mut self, planned: Planned) -> anyhow::Result<()> {
        let running = match &mut self.running {
            Some(running) => {
                let (now, next) = (&running.rib, &planned.rib);
                if (now.local_as, now.router_id, now.cluster_id)
                    != (next.local_as, next.router_id, next.cluster_id)
                {
                    // Sessions whose OPEN changes (AS, identifier) are
                    // replaced by the reconcile below; the rest stay up.
                    tracing::info!(
                        local_as = next.local_as,
                        router_id = %next.router_id,
                        cluster_id = ?next.cluster_id,
                        "local AS, router id or cluster id changed"
                    );
                    running.instance.reconfigure(next.clone());
                    running.rib = next.clone();
                    // The collectors' Loc-RIB is named by AS and router id.
                    for exporter in running.bmp.drain(..) {
                        exporter.stop().await;
                    }
                    running.bmp = bmp::start(&self.config, &running.instance, &running.rib);
                }
                let addresses = listen_addresses(&self.config, &planned.listen, running.wildcard);
                if running.listening != addresses {
                    relisten(running, addresses).await;
                }
                running
            }
            None => {
                let running = self.start_speaker(&planned).await?;
                self.status()?.instance = Some(running.instance.clone());
                self.running.insert(running)
            }
        };
        let node = &self.config.node_name;
        let desired: Vec<&Session> = planned.sessions.iter().collect();
        // The policy must know every session before the speaker does: a
        // new peer can be up, and send, within a millisecond of being
        // added.
        let contexts = self.sessions.contexts_with(&desired);
        self.route_policy.apply(
            &running.instance,
            node,
            planned.route_plugin,
            planned.objects,
            contexts,
            &planned.policy_inputs,
        );
        if std::mem::take(&mut self.recover) {
            // Peers kept our routes as stale: they get our table once we
            // have theirs (RFC 4724 §4.1), as the FIB sweeps what the
            // previous run left once every session has synced. Before the
            // peers are added: a session that came up first would be sent
            // a partial table and End-of-RIB, and its peer would sweep the
            // rest (seen under load in the lab's reflector restart).
            running.instance.recover(SWEEP_DEADLINE);
        }
        self.sessions.reconcile(
            &running.instance,
            &running.rib,
            &desired,
            &planned.secrets,
            &planned.subnets,
            &planned.node_addresses,
        );
        let originate = origination::desired(
            &planned.originated,
            &self.config.originate(),
            &planned.sessions,
        );
        self.originated.apply(&running.instance, originate);
        let mut status = self.status()?;
        status.sessions = self.sessions.names();
        status.cluster_id = planned.rib.cluster_id;
        status.reflector_clients = self.sessions.reflector_clients();
        Ok(())
    }

    /// Start the speaker on the first plan, and the FIB programmer on its
    /// best paths.
    async fn start_speaker(&mut self, planned: &Planned) -> anyhow::Result<Running> {
        let rib = planned.rib.clone();
        let mut wildcard = IpAddr::from(Ipv6Addr::UNSPECIFIED);
        let listen = listen_addresses(&self.config, &planned.listen, wildcard);
        let started = match Instance::start(rib.clone(), &listen).await {
            Ok((instance, best)) => Ok((instance, best, listen.clone())),
            Err(e) if self.config.bgp.listen.is_some() => Err(e),
            // The plan's own addresses (bindMode: NodeIP) are not on this
            // host (yet): connect out only, and bind when a plan comes.
            Err(e) if !planned.listen.addresses.is_empty() => {
                tracing::error!(
                    addresses = ?listen,
                    "cannot listen for BGP on the node's addresses, connecting out only: {e}"
                );
                Instance::start(rib.clone(), &[])
                    .await
                    .map(|(instance, best)| (instance, best, Vec::new()))
            }
            // A host without IPv6 cannot bind [::]: fall back to IPv4.
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                wildcard = IpAddr::from(Ipv4Addr::UNSPECIFIED);
                let v4 = listen_addresses(&self.config, &planned.listen, wildcard);
                Instance::start(rib.clone(), &v4)
                    .await
                    .map(|(instance, best)| (instance, best, v4))
            }
            Err(e) => Err(e),
        };
        let (instance, best, listening) = match started {
            Ok((instance, best, listening)) => (instance, best, listening),
            Err(e) => return Err(e).with_context(|| format!("listening on {listen:?}")),
        };
        let fib = if self.config.fib.mode == FibMode::Program {
            let programmer = fib::start(
                &self.config.fib,
                best,
                self.fib_stats.clone(),
                self.originated.kernel_routes(),
            )?;
            self.recover = programmer.adopted() > 0;
            self.sessions.forwarding_preserved = self.recover;
            Some(programmer)
        } else {
            tokio::spawn(async move {
                let mut best = best;
                while best.recv().await.is_some() {}
            });
            None
        };
        let bmp = bmp::start(&self.config, &instance, &rib);
        Ok(Running {
            instance,
            rib,
            listening,
            wildcard,
            fib,
            bmp,
        })
    }

    /// Between plans: sweep the previous run's routes once the routing
    /// has converged, and retire replaced sessions once their successors
    /// are ready.
    async fn converge(&mut self) {
        let Some(running) = &mut self.running else {
            return;
        };
        // Routes adopted from the previous run and not learned again go
        // once every session has sent its table, or after the
        // graceful-restart time peers give us.
        if let Some(fib) = running.fib.as_mut().filter(|f| !f.swept())
            && (self.started.elapsed() >= SWEEP_DEADLINE
                || self.sessions.all_synced(&running.instance).await)
        {
            fib.sweep();
        }
        self.sessions.retire(&running.instance).await;
        if let Ok(mut status) = self.shared.lock() {
            status.sessions = self.sessions.names();
        }
    }

    /// Write this node's status resources when their period is due.
    async fn report(&mut self) {
        // While the watch has lost the datastore, a status write would
        // only wait out the client's timeout in this loop, once a second.
        if self.health.watch_lost() {
            return;
        }
        let router_id = self.running.as_ref().map(|r| r.rib.router_id);
        let node = &self.config.node_name;
        let tick = self
            .reporter
            .tick(&self.store, node, router_id, &self.shared)
            .await;
        let trouble = match tick {
            Ok(Tick::Skipped) => return,
            Ok(Tick::Idle | Tick::Written) => None,
            Ok(Tick::Failed(why)) => Some(why),
            Err(e) => Some(format!("status resources: {e}")),
        };
        self.datastore_health(health::Source::Write, trouble);
    }

    /// What one part of the daemon just learnt about the datastore: in
    /// node status and the metrics while it lasts, in the log when the
    /// joined answer changes.
    fn datastore_health(&mut self, source: health::Source, trouble: Option<String>) {
        match self.health.report(source, trouble, unix_now()) {
            Some(health::Transition::Failing(why)) => tracing::warn!(
                datastore = %self.config.datastore,
                "datastore trouble, running on what was last read: {why}"
            ),
            Some(health::Transition::Healthy { after_seconds }) => tracing::info!(
                datastore = %self.config.datastore,
                after_seconds,
                "datastore healthy again"
            ),
            None => return,
        }
        let error = self.health.status();
        if let Ok(mut stats) = self.datastore_stats.lock() {
            stats.healthy = error.is_none();
        }
        if let Ok(mut status) = self.status() {
            status.datastore_error = error;
        }
    }

    /// Count `change` and every change already queued behind it (one plan
    /// for a burst). Whether any of them calls for a new plan: our own
    /// status writes do not.
    fn take_changes(
        &mut self,
        change: Change,
        queued: &mut tokio::sync::mpsc::Receiver<Change>,
    ) -> bool {
        let mut stale = false;
        let mut change = Some(change);
        while let Some(c) = change.take().or_else(|| queued.try_recv().ok()) {
            if let Ok(mut s) = self.datastore_stats.lock() {
                s.record(&c);
            }
            stale |= match c {
                Change::Events(events) => {
                    events.iter().any(|e| e.kind != crate::calico::STATUS_KIND)
                }
                Change::Resync { .. } => true,
                // What changed meanwhile comes through the resumed watch
                // (or as a resync): nothing to plan yet.
                Change::Lost { reason } => {
                    self.datastore_health(health::Source::Watch, Some(reason));
                    false
                }
                Change::Restored => {
                    self.datastore_health(health::Source::Watch, None);
                    false
                }
            };
        }
        stale
    }

    /// SIGHUP. Whether to plan again.
    fn reload_configuration(&mut self) -> bool {
        let Self {
            config,
            plugin_set,
            planner,
            plugin_list,
            ..
        } = self;
        reload::reload(config, plugin_set, planner, plugin_list)
    }

    /// Plugin files that changed on disk. Whether to plan again.
    fn reload_changed_plugins(&mut self) -> bool {
        self.plugin_set.reload_changed()
            && reload::swap(&self.plugin_set, &mut self.planner, &self.plugin_list)
    }

    fn status(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Shared>> {
        self.shared
            .lock()
            .map_err(|_| anyhow::anyhow!("status lock poisoned"))
    }

    async fn stop(self) {
        tracing::info!("shutting down");
        if let Some(mut running) = self.running {
            // The FIB stops first: closing the sessions withdraws their
            // routes from the RIB, and those withdrawals must not reach the
            // kernel when its routes are to outlive this run.
            if let Some(fib) = running.fib.take() {
                fib.stop(self.config.fib.clean_on_exit).await;
            }
            // Collectors hear the sessions go down, then a Termination.
            let exporters = std::mem::take(&mut running.bmp);
            // Cease / Administrative Shutdown, with a message, to every peer.
            let mut sessions = self.sessions;
            sessions.shutdown(&running.instance, "starling is shutting down");
            tokio::time::sleep(Duration::from_millis(200)).await;
            for exporter in exporters {
                exporter.stop().await;
            }
        }
        self.admin_task.abort();
        if let Some(metrics) = self.metrics_task {
            metrics.abort();
        }
        let _ = std::fs::remove_file(&self.config.admin.socket);
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

enum Event {
    Tick,
    Changed(Change),
    WatchEnded,
    Shutdown,
    Hangup,
}

/// Sleep one poll interval, unless a signal or a datastore change comes
/// first.
async fn next_event(
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    hangup: &mut tokio::signal::unix::Signal,
    changes: &mut tokio::sync::mpsc::Receiver<Change>,
) -> Event {
    tokio::select! {
        () = shutdown.as_mut() => Event::Shutdown,
        _ = hangup.recv() => Event::Hangup,
        change = changes.recv() => change.map_or(Event::WatchEnded, Event::Changed),
        () = tokio::time::sleep(POLL) => Event::Tick,
    }
}

/// Wall-clock time in Unix seconds (what status answers carry).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
