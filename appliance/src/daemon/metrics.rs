//! Prometheus metrics: the daemon's state rendered at each scrape (served
//! by `metrics_http`). Every metric is listed in docs/metrics.md.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use starling_plugin_host::{LATENCY_BUCKETS, Plugin};
use starling_speaker::State;
use starling_speaker::driver::PeerStatus;
use starling_speaker::instance::{Counts, PeerCounts};

use super::Shared;

/// FIB programmer counters, shared with its task.
#[derive(Debug, Clone)]
pub(crate) struct FibStats {
    pub(crate) installed: u64,
    /// Heap bytes of the installed table, after the last write.
    pub(crate) installed_bytes: u64,
    /// Heap bytes of the changes the last write took (a burst's peak).
    pub(crate) pending_bytes: u64,
    pub(crate) added: u64,
    pub(crate) replaced: u64,
    pub(crate) deleted: u64,
    pub(crate) refused: u64,
    pub(crate) write_errors: u64,
    pub(crate) writes: u64,
    pub(crate) write_seconds: f64,
    /// Routes rewritten because someone else changed or deleted them.
    pub(crate) repaired: u64,
    /// Time per batched write pass (shared: clones observe into it).
    pub(crate) write_latency: prometheus::Histogram,
}

impl Default for FibStats {
    fn default() -> Self {
        let opts = HistogramOpts::new(
            "fib_write_duration_seconds",
            "Time per batched kernel write pass",
        )
        .buckets(vec![
            0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
        ]);
        FibStats {
            installed: 0,
            installed_bytes: 0,
            pending_bytes: 0,
            added: 0,
            replaced: 0,
            deleted: 0,
            refused: 0,
            write_errors: 0,
            writes: 0,
            write_seconds: 0.0,
            repaired: 0,
            write_latency: prometheus::Histogram::with_opts(opts).expect("valid histogram options"),
        }
    }
}

/// Datastore watch counters, shared with the daemon loop.
#[derive(Debug, Clone)]
pub(crate) struct DatastoreStats {
    pub(crate) revision: u64,
    /// (kind, added|modified|deleted) → count.
    pub(crate) events: std::collections::BTreeMap<(String, &'static str), u64>,
    pub(crate) resyncs: u64,
    pub(crate) read_errors: u64,
    /// Nothing is wrong with the datastore (see `datastore_health`).
    pub(crate) healthy: bool,
    /// Times the watch lost the datastore.
    pub(crate) losses: u64,
    /// What the current plan left out of the datastore's content:
    /// (kind, remedy) → problems.
    pub(crate) skipped: std::collections::BTreeMap<(String, &'static str), u64>,
}

impl Default for DatastoreStats {
    fn default() -> Self {
        DatastoreStats {
            revision: 0,
            events: std::collections::BTreeMap::new(),
            resyncs: 0,
            read_errors: 0,
            healthy: true,
            losses: 0,
            skipped: std::collections::BTreeMap::new(),
        }
    }
}

impl DatastoreStats {
    pub(crate) fn record(&mut self, change: &starling_store::Change) {
        use starling_store::{Change, EventKind};
        match change {
            Change::Events(events) => {
                for e in events {
                    let what = match e.event {
                        EventKind::Added => "added",
                        EventKind::Modified => "modified",
                        EventKind::Deleted => "deleted",
                    };
                    *self.events.entry((e.kind.clone(), what)).or_default() += 1;
                    self.revision = self.revision.max(e.revision);
                }
            }
            Change::Resync { revision } => {
                self.resyncs += 1;
                self.revision = *revision;
            }
            Change::Lost { .. } => self.losses += 1,
            Change::Restored => {}
        }
    }
}

/// What a scrape reads.
pub(crate) struct Sources {
    pub(crate) shared: Arc<Mutex<Shared>>,
    pub(crate) plugins: Arc<Mutex<Vec<Plugin>>>,
    pub(crate) fib: Arc<Mutex<FibStats>>,
    pub(crate) datastore: Arc<Mutex<DatastoreStats>>,
}

const MESSAGE_TYPES: [(usize, &str); 5] = [
    (1, "open"),
    (2, "update"),
    (3, "notification"),
    (4, "keepalive"),
    (5, "route_refresh"),
];

pub(crate) async fn render(sources: &Sources) -> Result<String, prometheus::Error> {
    let registry = Registry::new_custom(Some("starling".to_owned()), None)?;
    let (instance, sessions) = match sources.shared.lock() {
        Ok(s) => (s.instance.clone(), s.sessions.clone()),
        Err(_) => return Err(prometheus::Error::Msg("status lock poisoned".to_owned())),
    };
    let peers = match &instance {
        Some(i) => i.peers().await,
        None => Vec::new(),
    };
    // Counts only: a scrape must not copy a million routes.
    let counts = match &instance {
        Some(i) => i.counts().await,
        None => starling_speaker::instance::Counts::default(),
    };
    let mut bgp = SessionMetrics::new()?;
    for (name, (_, address)) in &sessions {
        let peer = peers.iter().find(|p| p.remote.ip() == *address);
        let c = counts.peers.get(address).copied().unwrap_or_default();
        bgp.record(name, *address, peer, c);
    }
    bgp.register(&registry)?;
    register_rib(&registry, &counts)?;
    let memory = match &instance {
        Some(i) => i.memory().await,
        None => starling_speaker::instance::Memory::default(),
    };
    let fib = sources
        .fib
        .lock()
        .map(|f| (f.installed_bytes, f.pending_bytes))
        .unwrap_or_default();
    register_memory(&registry, &memory, fib)?;
    let plugins = sources
        .plugins
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    register_plugins(&registry, &plugins)?;
    let fib = sources.fib.lock().map(|f| f.clone()).unwrap_or_default();
    register_fib(&registry, &fib)?;
    let store = sources
        .datastore
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    register_datastore(&registry, &store)?;
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Per-session BGP series, labelled by session name and peer address.
struct SessionMetrics {
    up: IntGaugeVec,
    state: IntGaugeVec,
    uptime: GaugeVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    errors: IntCounterVec,
    established: IntCounterVec,
    prefixes: IntGaugeVec,
    accepted: IntGaugeVec,
    advertised: IntGaugeVec,
    without_next_hop: IntCounterVec,
    now: Instant,
}

impl SessionMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        let labels = ["session", "peer"];
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &labels);
        let counter = |name: &str, help: &str, extra: Option<&str>| {
            let mut l = labels.to_vec();
            l.extend(extra);
            IntCounterVec::new(Opts::new(name, help), &l)
        };
        Ok(Self {
            up: gauge("bgp_peer_up", "1 when the session is Established")?,
            state: gauge(
                "bgp_peer_state",
                "BGP FSM state: 0 Idle, 1 Connect, 2 Active, 3 OpenSent, 4 OpenConfirm, 5 Established",
            )?,
            uptime: GaugeVec::new(
                Opts::new(
                    "bgp_peer_uptime_seconds",
                    "Seconds since the session reached Established (0 when down)",
                ),
                &labels,
            )?,
            received: counter(
                "bgp_messages_received_total",
                "BGP messages received, by type",
                Some("type"),
            )?,
            sent: counter(
                "bgp_messages_sent_total",
                "BGP messages sent, by type",
                Some("type"),
            )?,
            errors: counter(
                "bgp_update_errors_total",
                "Malformed UPDATEs, by RFC 7606 action",
                Some("action"),
            )?,
            established: counter(
                "bgp_established_transitions_total",
                "Times the session reached Established",
                None,
            )?,
            prefixes: gauge(
                "bgp_prefixes_received",
                "Paths the peer has sent and not withdrawn, before import policy",
            )?,
            accepted: gauge(
                "bgp_prefixes_accepted",
                "Paths from the peer that import policy accepted",
            )?,
            advertised: gauge(
                "bgp_prefixes_advertised",
                "Prefixes advertised to the peer (its Adj-RIB-Out)",
            )?,
            without_next_hop: counter(
                "bgp_routes_without_next_hop_total",
                "Route advertisements withheld from the peer because no next hop could be given (no local address of the route's family on the session)",
                None,
            )?,
            now: Instant::now(),
        })
    }

    fn record(
        &mut self,
        name: &str,
        address: IpAddr,
        peer: Option<&PeerStatus>,
        counts: PeerCounts,
    ) {
        let address = address.to_string();
        let l = [name, address.as_str()];
        let (st, secs) = match peer {
            Some(p) => (
                p.state,
                self.now.saturating_duration_since(p.since).as_secs_f64(),
            ),
            None => (State::Idle, 0.0),
        };
        let established_now = st == State::Established;
        self.up
            .with_label_values(&l)
            .set(i64::from(established_now));
        self.state.with_label_values(&l).set(state_number(st));
        self.uptime
            .with_label_values(&l)
            .set(if established_now { secs } else { 0.0 });
        self.prefixes
            .with_label_values(&l)
            .set((counts.accepted + counts.rejected) as i64);
        self.accepted
            .with_label_values(&l)
            .set(counts.accepted as i64);
        self.advertised
            .with_label_values(&l)
            .set(counts.advertised as i64);
        self.without_next_hop
            .with_label_values(&l)
            .inc_by(counts.without_next_hop);
        let Some(p) = peer else {
            return;
        };
        for (index, kind) in MESSAGE_TYPES {
            self.received
                .with_label_values(&[l[0], l[1], kind])
                .inc_by(p.counters.messages_in[index]);
            self.sent
                .with_label_values(&[l[0], l[1], kind])
                .inc_by(p.counters.messages_out[index]);
        }
        for action in ["attr_discard", "treat_as_withdraw", "session_reset"] {
            self.errors
                .with_label_values(&[l[0], l[1], action])
                .inc_by(p.counters.update_errors(action));
        }
        self.established
            .with_label_values(&l)
            .inc_by(p.counters.established_transitions);
    }

    fn register(self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.up))?;
        registry.register(Box::new(self.state))?;
        registry.register(Box::new(self.uptime))?;
        registry.register(Box::new(self.received))?;
        registry.register(Box::new(self.sent))?;
        registry.register(Box::new(self.errors))?;
        registry.register(Box::new(self.established))?;
        registry.register(Box::new(self.prefixes))?;
        registry.register(Box::new(self.accepted))?;
        registry.register(Box::new(self.advertised))?;
        registry.register(Box::new(self.without_next_hop))
    }
}

/// `starling_memory_bytes{part}`: where the daemon's heap goes, by the
/// structures that grow with routes (docs/performance.md has them per
/// route). Estimates from capacities, not allocator statistics: they sum
/// to less than the RSS.
fn register_memory(
    registry: &Registry,
    memory: &starling_speaker::instance::Memory,
    (fib_installed, fib_pending): (u64, u64),
) -> Result<(), prometheus::Error> {
    let gauge = IntGaugeVec::new(
        Opts::new(
            "memory_bytes",
            "Heap bytes of the structures that grow with routes, by part",
        ),
        &["part"],
    )?;
    let rib = memory.rib;
    for (part, bytes) in [
        ("rib_index", rib.index as u64),
        ("rib_table", rib.table as u64),
        ("rib_attributes", rib.attributes as u64),
        ("adj_rib_out", memory.adj_rib_out as u64),
        ("fib_installed", fib_installed),
        ("fib_pending", fib_pending),
    ] {
        gauge.with_label_values(&[part]).set(bytes as i64);
    }
    registry.register(Box::new(gauge))
}

fn register_rib(registry: &Registry, counts: &Counts) -> Result<(), prometheus::Error> {
    let loc_rib = IntGauge::new("bgp_loc_rib_prefixes", "Prefixes in the Loc-RIB")?;
    loc_rib.set(counts.loc_rib as i64);
    let update_groups = IntGauge::new(
        "bgp_update_groups",
        "Update groups: sets of established peers sent the same UPDATEs",
    )?;
    update_groups.set(counts.update_groups as i64);
    // Tasks that should come and go with sessions and collectors: one
    // that only grows is a leak the soak looks for.
    let tasks = IntGauge::new(
        "runtime_tasks",
        "Tasks alive in the daemon's async runtime (sessions, listeners, exporters, the HTTP server)",
    )?;
    tasks.set(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks() as i64,
    );
    registry.register(Box::new(loc_rib))?;
    registry.register(Box::new(update_groups))?;
    registry.register(Box::new(tasks))
}

fn register_plugins(registry: &Registry, plugins: &[Plugin]) -> Result<(), prometheus::Error> {
    let calls = IntCounterVec::new(
        Opts::new("plugin_calls_total", "Calls into the plugin"),
        &["plugin"],
    )?;
    let plugin_errors = IntCounterVec::new(
        Opts::new("plugin_errors_total", "Failed plugin calls, by kind"),
        &["plugin", "kind"],
    )?;
    let latency = HistogramVec::new(
        HistogramOpts::new("plugin_call_duration_seconds", "Plugin call latency")
            .buckets(LATENCY_BUCKETS.to_vec()),
        &["plugin"],
    )?;
    let mut seen: Vec<&Plugin> = Vec::new();
    for plugin in plugins {
        if seen.iter().any(|p| Plugin::same(p, plugin)) {
            continue;
        }
        seen.push(plugin);
        let m = plugin.metrics().snapshot();
        calls.with_label_values(&[plugin.name()]).inc_by(m.calls);
        for (kind, n) in &m.errors {
            plugin_errors
                .with_label_values(&[plugin.name(), kind.label()])
                .inc_by(*n);
        }
        // Rebuild the histogram from cumulative bucket counts: observe the
        // bucket's upper bound once per call that fell into it.
        let h = latency.with_label_values(&[plugin.name()]);
        let mut below = 0;
        for (bound, cumulative) in &m.latency_buckets {
            for _ in below..*cumulative {
                h.observe(*bound);
            }
            below = *cumulative;
        }
    }
    registry.register(Box::new(calls))?;
    registry.register(Box::new(plugin_errors))?;
    registry.register(Box::new(latency))
}

fn register_fib(registry: &Registry, fib: &FibStats) -> Result<(), prometheus::Error> {
    let fib_routes = IntGauge::new("fib_routes", "Routes Starling has installed in the kernel")?;
    fib_routes.set(fib.installed as i64);
    let fib_ops = IntCounterVec::new(
        Opts::new("fib_operations_total", "Kernel route writes, by operation"),
        &["op"],
    )?;
    fib_ops.with_label_values(&["add"]).inc_by(fib.added);
    fib_ops.with_label_values(&["replace"]).inc_by(fib.replaced);
    fib_ops.with_label_values(&["delete"]).inc_by(fib.deleted);
    let fib_refused = IntCounterVec::new(
        Opts::new("fib_errors_total", "Kernel route writes that failed"),
        &["reason"],
    )?;
    fib_refused
        .with_label_values(&["refused"])
        .inc_by(fib.refused);
    fib_refused
        .with_label_values(&["netlink"])
        .inc_by(fib.write_errors);
    let fib_repaired = prometheus::IntCounter::new(
        "fib_repairs_total",
        "Kernel routes of ours rewritten after someone else changed or deleted them",
    )?;
    fib_repaired.inc_by(fib.repaired);
    let fib_seconds = prometheus::Counter::new(
        "fib_write_seconds_total",
        "Time spent writing to the kernel",
    )?;
    fib_seconds.inc_by(fib.write_seconds);
    let fib_writes = prometheus::IntCounter::new("fib_writes_total", "Batched FIB write passes")?;
    fib_writes.inc_by(fib.writes);
    registry.register(Box::new(fib_routes))?;
    registry.register(Box::new(fib_ops))?;
    registry.register(Box::new(fib_refused))?;
    registry.register(Box::new(fib_seconds))?;
    registry.register(Box::new(fib_writes))?;
    registry.register(Box::new(fib_repaired))?;
    registry.register(Box::new(fib.write_latency.clone()))
}

fn register_datastore(
    registry: &Registry,
    store: &DatastoreStats,
) -> Result<(), prometheus::Error> {
    let revision = IntGauge::new(
        "datastore_revision",
        "The latest datastore revision the daemon has seen",
    )?;
    revision.set(store.revision as i64);
    let store_events = IntCounterVec::new(
        Opts::new(
            "datastore_events_total",
            "Datastore changes the daemon has seen, by kind and event",
        ),
        &["kind", "event"],
    )?;
    // Calico's kinds start at zero, so dashboards have series before the
    // first change.
    for kind in starling_store::CALICO_KINDS {
        for event in ["added", "modified", "deleted"] {
            store_events.with_label_values(&[kind, event]);
        }
    }
    for ((kind, event), n) in &store.events {
        store_events
            .with_label_values(&[kind.as_str(), event])
            .inc_by(*n);
    }
    let store_resyncs = prometheus::IntCounter::new(
        "datastore_resyncs_total",
        "Times the datastore watch lost its history and everything was re-read",
    )?;
    store_resyncs.inc_by(store.resyncs);
    let store_errors = prometheus::IntCounter::new(
        "datastore_read_errors_total",
        "Failed reads of the datastore (the last good plan keeps running)",
    )?;
    store_errors.inc_by(store.read_errors);
    let healthy = IntGauge::new(
        "datastore_up",
        "1 while the datastore answers the daemon's watch, reads and writes; 0 while any of them \
         fails (node status says why; the running plan stays)",
    )?;
    healthy.set(i64::from(store.healthy));
    let losses = prometheus::IntCounter::new(
        "datastore_watch_losses_total",
        "Times the datastore watch lost the datastore (unreachable, not answering, unreadable)",
    )?;
    losses.inc_by(store.losses);
    let skipped = IntGaugeVec::new(
        Opts::new(
            "datastore_skipped",
            "Problems in the datastore's content the current plan went around, by kind and remedy \
             (element skipped, last good version used, resource skipped); see node status",
        ),
        &["kind", "remedy"],
    )?;
    for ((kind, remedy), n) in &store.skipped {
        skipped
            .with_label_values(&[kind.as_str(), remedy])
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(Box::new(revision))?;
    registry.register(Box::new(store_events))?;
    registry.register(Box::new(store_resyncs))?;
    registry.register(Box::new(store_errors))?;
    registry.register(Box::new(healthy))?;
    registry.register(Box::new(losses))?;
    registry.register(Box::new(skipped))
}

fn state_number(s: State) -> i64 {
    match s {
        State::Idle => 0,
        State::Connect => 1,
        State::Active => 2,
        State::OpenSent => 3,
        State::OpenConfirm => 4,
        State::Established => 5,
    }
}
