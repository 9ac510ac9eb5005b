//! `starling run`: the appliance daemon.
//!
//! One loop, data flowing one way:
//!
//! ```text
//! datastore journal ──▶ plugins (blocking thread) ──▶ sessions of this node ──▶ speaker
//!                                                                                 │
//!                                   kernel FIB ◀── FIB programmer ◀── best paths ◀┘
//! ```
//!
//! A datastore change re-plans (through the plugins, off the async
//! runtime, under their deadline); a failed plan keeps the last good one,
//! so running sessions are untouched. Sessions are reconciled by name: only
//! those that changed are replaced.

pub(crate) mod admin;
mod calico_node_status;
pub(crate) mod config;
mod fib;
mod metrics;
mod origination;
mod plugins;
mod route_policy;
mod sessions;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use starling_plugin_host::contract::Family;
use starling_plugin_host::pipeline::{Outcome, Policy};
use starling_plugin_host::{Host, Limits, Plugin};
use starling_speaker::instance::Instance;
use starling_speaker::rib::RibConfig;
use starling_store::{Change, ResourceSet, to_object};

use crate::datastore::Datastore;

use config::{Config, FibMode};
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
}

pub(crate) fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(daemon(config))?;
    Ok(ExitCode::SUCCESS)
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
}

async fn daemon(config: Config) -> anyhow::Result<()> {
    let store = Datastore::open(&config.datastore)
        .await
        .with_context(|| format!("opening the {}", config.datastore))?;
    let start = store.revision().await?;
    let datastore_stats = Arc::new(Mutex::new(metrics::DatastoreStats {
        revision: start,
        ..Default::default()
    }));
    let mut changes = store.watch(start);
    let host = Host::new(Limits::default())?.with_cache(crate::plan::cache_dir());
    let mut plugin_set = plugins::PluginSet::load(&host, &config.plugins)?;
    let plugin_list = Arc::new(Mutex::new(plugin_set.all()));
    let policy = Arc::new(Mutex::new(Policy::new(
        plugin_set.roles()?,
        Some(vec![config.node_name.clone()]),
        vec![Family::Ipv4, Family::Ipv6],
    )));
    let shared = Arc::new(Mutex::new(Shared::default()));
    let admin = admin::serve(&config.admin.socket, shared.clone())?;
    let fib_stats = Arc::new(Mutex::new(metrics::FibStats::default()));
    let _metrics = if config.metrics.enabled {
        let listener = tokio::net::TcpListener::bind(&config.metrics.listen)
            .await
            .with_context(|| format!("metrics.listen {}", config.metrics.listen))?;
        Some(metrics::serve(
            listener,
            Arc::new(metrics::Sources {
                shared: shared.clone(),
                plugins: plugin_list.clone(),
                fib: fib_stats.clone(),
                datastore: datastore_stats.clone(),
            }),
        ))
    } else {
        None
    };
    tracing::info!(node = config.node_name, "starling running");

    let mut sessions = Sessions::default();
    let mut instance: Option<(Instance, RibConfig)> = None;
    let mut fib_task = None;
    // Recovering from a restart that kept our routes in the kernel: set
    // once the FIB has adopted them, acted on once the first sessions exist.
    let mut recover = false;
    let mut stale = true;
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let mut config = config;
    let mut replan = false;
    let mut reporter = calico_node_status::Reporter::default();
    let mut originated = origination::Originated::default();
    // What each session's import decisions depend on, to know which peers
    // must resend their routes when it changes.
    let mut import_inputs: HashMap<IpAddr, u64> = HashMap::new();
    // And its export decisions: when none changes, a new plan's policy
    // exports what the last one did, and the table is not exported again.
    let mut export_inputs: HashMap<IpAddr, u64> = HashMap::new();
    let mut route_plugin: Option<Plugin> = None;
    let started = std::time::Instant::now();
    loop {
        'plan: {
            if !stale && !replan {
                break 'plan;
            }
            let docs = match store.everything().await {
                Ok(docs) => docs,
                Err(e) => {
                    // The last plan keeps running; the next tick tries again.
                    tracing::warn!("reading the datastore: {e}");
                    if let Ok(mut s) = datastore_stats.lock() {
                        s.read_errors += 1;
                    }
                    break 'plan;
                }
            };
            (stale, replan) = (false, false);
            let mut secrets = ResourceSet::default();
            let objects: Vec<_> = docs
                .iter()
                .filter(|d| {
                    if d["kind"] == "Secret" {
                        let _ = secrets.add_secret(d);
                        false
                    } else {
                        true
                    }
                })
                .map(to_object)
                .collect();
            let snapshot = objects.clone();
            let planner = policy.clone();
            // Plugins run on a blocking thread, never on the tasks that
            // drive BGP sessions.
            let outcome = tokio::task::spawn_blocking(move || {
                planner
                    .lock()
                    .map(|mut p| p.update(&objects))
                    .map_err(|_| anyhow::anyhow!("plugin policy lock poisoned"))
            })
            .await??;
            let plan = match outcome {
                Outcome::Planned(plan) => {
                    if let Ok(mut s) = shared.lock() {
                        s.plan_error = None;
                    }
                    plan
                }
                Outcome::KeptLastGood { error, .. } => {
                    tracing::error!("datastore change not applied: {error}");
                    if let Ok(mut s) = shared.lock() {
                        let since = s.plan_error.take().map_or_else(unix_now, |(_, t)| t);
                        s.plan_error = Some((error.to_string(), since));
                    }
                    break 'plan;
                }
            };
            let Some(facts) = plan.facts(&config.node_name) else {
                tracing::warn!(
                    node = config.node_name,
                    "no Node resource for this node yet"
                );
                break 'plan;
            };
            let node_plans: Vec<_> = plan
                .nodes
                .values()
                .filter_map(|plans| plans.first())
                .collect();
            let router_id = config.router_id.or_else(|| {
                node_plans
                    .iter()
                    .find_map(|p| p.router_id.as_deref()?.parse().ok())
            });
            let Some(router_id) = router_id else {
                tracing::error!("no router id: the node has no IPv4 address; set router_id");
                break 'plan;
            };
            let mut rib = RibConfig::new(facts.local_as, router_id);
            rib.cluster_id = facts.cluster_id.as_deref().and_then(|c| c.parse().ok());
            match &mut instance {
                Some((running, current))
                    if (current.local_as, current.router_id, current.cluster_id)
                        != (rib.local_as, rib.router_id, rib.cluster_id) =>
                {
                    // Sessions whose OPEN changes (AS, identifier) are
                    // replaced by the reconcile below; the rest stay up.
                    tracing::info!(
                        local_as = rib.local_as,
                        router_id = %rib.router_id,
                        cluster_id = ?rib.cluster_id,
                        "local AS, router id or cluster id changed"
                    );
                    running.reconfigure(rib.clone());
                    *current = rib.clone();
                }
                Some(_) => {}
                None => {
                    let port = node_plans.iter().find_map(|p| p.listen_port).unwrap_or(179);
                    let listen = config.listen(port);
                    let started = match Instance::start(rib.clone(), &listen).await {
                        // A host without IPv6 cannot bind [::]: fall back
                        // to IPv4 when the listen addresses were defaulted.
                        Err(e)
                            if config.bgp.listen.is_none()
                                && e.kind() == std::io::ErrorKind::AddrNotAvailable =>
                        {
                            let v4 = [std::net::SocketAddr::from(([0, 0, 0, 0], port))];
                            Instance::start(rib.clone(), &v4).await
                        }
                        other => other,
                    };
                    let (started, best) =
                        started.with_context(|| format!("listening on {listen:?}"))?;
                    if config.fib.mode == FibMode::Program {
                        let task = fib::start(
                            &config.fib,
                            best,
                            fib_stats.clone(),
                            originated.blackholes(),
                        )?;
                        recover = task.adopted() > 0;
                        sessions.forwarding_preserved = recover;
                        fib_task = Some(task);
                    } else {
                        tokio::spawn(async move {
                            let mut best = best;
                            while best.recv().await.is_some() {}
                        });
                    }
                    shared
                        .lock()
                        .map_err(|_| anyhow::anyhow!("status lock poisoned"))?
                        .instance = Some(started.clone());
                    instance = Some((started, rib));
                }
            }
            if let Some((running, rib)) = &instance {
                let desired: Vec<_> = node_plans.iter().flat_map(|p| p.sessions.iter()).collect();
                let subnets = sessions::node_subnets(&config.node_name, &docs);
                let plugin = policy
                    .lock()
                    .map_err(|_| anyhow::anyhow!("plugin policy lock poisoned"))?
                    .roles()
                    .route_policy
                    .clone();
                // The policy must know every session before the speaker
                // does: a new peer can be up, and send, within a
                // millisecond of being added.
                let contexts = sessions.contexts_with(&desired);
                let replaced = route_plugin
                    .as_ref()
                    .is_none_or(|p| !Plugin::same(p, &plugin));
                let inputs = import_fingerprints(&contexts, &docs);
                let refresh: Vec<IpAddr> = inputs
                    .iter()
                    .filter(|(a, f)| {
                        import_inputs.get(a).is_some_and(|old| old != *f)
                            || (replaced && import_inputs.contains_key(a))
                    })
                    .map(|(a, _)| *a)
                    .collect();
                import_inputs = inputs;
                let exports = export_fingerprints(&contexts, &docs);
                let reexport = replaced
                    || exports
                        .iter()
                        .any(|(a, f)| export_inputs.get(a).is_some_and(|old| old != f));
                export_inputs = exports;
                route_plugin = Some(plugin.clone());
                let route_policy = Some(Arc::new(route_policy::PluginPolicy::new(
                    config.node_name.clone(),
                    plugin,
                    snapshot,
                    contexts,
                ))
                    as Arc<dyn starling_speaker::policy::RoutePolicy>);
                if reexport {
                    running.set_route_policy(route_policy, refresh);
                } else {
                    running.set_route_policy_keeping_exports(route_policy, refresh);
                }
                if std::mem::take(&mut recover) {
                    // Peers kept our routes as stale: they get our table
                    // once we have theirs (RFC 4724 §4.1), as the FIB
                    // sweeps what the previous run left once every
                    // session has synced. Before the peers are added: a
                    // session that came up first would be sent a partial
                    // table and End-of-RIB, and its peer would sweep the
                    // rest (seen under load in the lab's reflector
                    // restart).
                    running.recover(SWEEP_DEADLINE);
                }
                let nodes = sessions::node_addresses(&docs);
                sessions.reconcile(running, rib, &desired, &secrets, &subnets, &nodes);
                originated.apply(
                    running,
                    origination::desired(&config.node_name, &docs, &config.originate()),
                );
                let mut status = shared
                    .lock()
                    .map_err(|_| anyhow::anyhow!("status lock poisoned"))?;
                status.sessions = sessions.names();
            }
        }
        if let Some((running, _)) = &instance {
            // Routes adopted from the previous run and not learned again
            // go once every session has sent its table, or after the
            // graceful-restart time peers give us.
            if let Some(task) = fib_task.as_mut().filter(|t| !t.swept())
                && (started.elapsed() >= SWEEP_DEADLINE || sessions.all_synced(running).await)
            {
                task.sweep();
            }
            sessions.retire(running).await;
            if let Ok(mut status) = shared.lock() {
                status.sessions = sessions.names();
            }
        }
        let router_id = instance.as_ref().map(|(_, rib)| rib.router_id);
        if let Err(e) = reporter
            .tick(&store, &config.node_name, router_id, &shared)
            .await
        {
            tracing::warn!("CalicoNodeStatus: {e}");
        }
        match next_event(&mut shutdown, &mut hangup, &mut changes).await {
            Event::Shutdown => break,
            Event::Changed(change) => {
                // Take every change already queued: one plan for a burst.
                let mut change = Some(change);
                while let Some(c) = change.take().or_else(|| changes.try_recv().ok()) {
                    if let Ok(mut s) = datastore_stats.lock() {
                        s.record(&c);
                    }
                    // Our own CalicoNodeStatus writes change nothing to plan.
                    stale |= match &c {
                        Change::Events(events) => {
                            events.iter().any(|e| e.kind != "CalicoNodeStatus")
                        }
                        Change::Resync { .. } => true,
                    };
                }
            }
            Event::WatchEnded => anyhow::bail!("the datastore watch ended"),
            Event::Hangup => replan |= reload(&mut config, &mut plugin_set, &policy, &plugin_list),
            Event::Tick => {
                replan |= plugin_set.reload_changed() && swap(&plugin_set, &policy, &plugin_list);
            }
        }
    }
    tracing::info!("shutting down");
    // The FIB stops first: closing the sessions withdraws their routes from
    // the RIB, and those withdrawals must not reach the kernel when its
    // routes are to outlive this run.
    if let Some(task) = fib_task {
        task.stop(config.fib.clean_on_exit).await;
    }
    if let Some((running, _)) = &instance {
        // Cease / Administrative Shutdown, with a message, to every peer.
        sessions.shutdown(running, "starling is shutting down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(admin);
    let _ = std::fs::remove_file(&config.admin.socket);
    Ok(())
}

/// Per session: a digest of what its import decisions depend on (its
/// context and the BGPFilters it names).
fn import_fingerprints(
    contexts: &HashMap<IpAddr, route_policy::SessionContext>,
    docs: &[serde_json::Value],
) -> HashMap<IpAddr, u64> {
    use std::hash::{Hash, Hasher};
    contexts
        .iter()
        .map(|(address, context)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            context.hash(&mut h);
            for doc in docs.iter().filter(|d| {
                d["kind"] == "BGPFilter"
                    && d["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| context.filters.iter().any(|f| f == n))
            }) {
                // Export rules change nothing a peer must resend.
                doc["metadata"]["name"].to_string().hash(&mut h);
                doc["spec"]["importV4"].to_string().hash(&mut h);
                doc["spec"]["importV6"].to_string().hash(&mut h);
            }
            (*address, h.finish())
        })
        .collect()
}

/// What each session's export decisions depend on: its context and
/// everything the plugin sees (Secrets never reach it) but the import
/// rules of BGPFilters. A BGPFilter's resource version is left out too:
/// editing its import rules alone bumps it. So are CalicoNodeStatus
/// resources: their status is our own report, rewritten every period,
/// and like their writes (which plan nothing) it decides no route.
fn export_fingerprints(
    contexts: &HashMap<IpAddr, route_policy::SessionContext>,
    docs: &[serde_json::Value],
) -> HashMap<IpAddr, u64> {
    use std::hash::{Hash, Hasher};
    let mut snapshot = std::collections::hash_map::DefaultHasher::new();
    for doc in docs
        .iter()
        .filter(|d| d["kind"] != "Secret" && d["kind"] != "CalicoNodeStatus")
    {
        if doc["kind"] == "BGPFilter" {
            let mut exports = doc.clone();
            if let Some(metadata) = exports["metadata"].as_object_mut() {
                metadata.remove("resourceVersion");
            }
            if let Some(spec) = exports["spec"].as_object_mut() {
                spec.remove("importV4");
                spec.remove("importV6");
            }
            exports.to_string().hash(&mut snapshot);
        } else {
            doc.to_string().hash(&mut snapshot);
        }
    }
    let snapshot = snapshot.finish();
    contexts
        .iter()
        .map(|(address, context)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            snapshot.hash(&mut h);
            context.hash(&mut h);
            (*address, h.finish())
        })
        .collect()
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
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Give the policy the plugin set's current plugins.
fn swap(
    set: &plugins::PluginSet,
    policy: &Arc<Mutex<Policy>>,
    list: &Arc<Mutex<Vec<Plugin>>>,
) -> bool {
    match set.roles() {
        Ok(roles) => {
            if let Ok(mut p) = policy.lock() {
                p.set_roles(roles);
            }
            if let Ok(mut l) = list.lock() {
                *l = set.all();
            }
            true
        }
        Err(e) => {
            tracing::error!("{e}");
            false
        }
    }
}

/// SIGHUP: read the configuration again. A file that does not load
/// changes nothing; plugin changes apply at once; other changes need a
/// restart and say so. Returns whether to re-plan.
fn reload(
    config: &mut Config,
    set: &mut plugins::PluginSet,
    policy: &Arc<Mutex<Policy>>,
    list: &Arc<Mutex<Vec<Plugin>>>,
) -> bool {
    let Some(path) = config.path.clone() else {
        return false;
    };
    let fresh = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("SIGHUP: configuration not reloaded, nothing changed: {e:#}");
            return false;
        }
    };
    let new_set = match plugins::PluginSet::load(set.host(), &fresh.plugins) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("SIGHUP: plugins not reloaded, nothing changed: {e:#}");
            return false;
        }
    };
    let mut restart_needed = Vec::new();
    if fresh.node_name != config.node_name {
        restart_needed.push("node_name");
    }
    if fresh.datastore != config.datastore {
        restart_needed.push("datastore");
    }
    if fresh.router_id != config.router_id {
        restart_needed.push("router_id");
    }
    if fresh.bgp.listen != config.bgp.listen {
        restart_needed.push("bgp.listen");
    }
    if fresh.fib.mode != config.fib.mode
        || fresh.fib.table != config.fib.table
        || fresh.fib.protocol != config.fib.protocol
    {
        restart_needed.push("fib");
    }
    if fresh.admin.socket != config.admin.socket {
        restart_needed.push("admin.socket");
    }
    if fresh.metrics.listen != config.metrics.listen
        || fresh.metrics.enabled != config.metrics.enabled
    {
        restart_needed.push("metrics");
    }
    if !restart_needed.is_empty() {
        tracing::warn!(keys = ?restart_needed, "SIGHUP: these settings apply at the next restart");
    }
    *set = new_set;
    config.plugins = fresh.plugins.clone();
    config.fib.clean_on_exit = fresh.fib.clean_on_exit;
    tracing::info!("SIGHUP: configuration reloaded");
    swap(set, policy, list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(version: &str, import: &str, export: &str) -> serde_json::Value {
        serde_json::json!({
            "kind": "BGPFilter",
            "metadata": {"name": "f", "resourceVersion": version},
            "spec": {
                "importV4": [{"action": "Reject", "matchOperator": "In", "cidr": import}],
                "exportV4": [{"action": "Reject", "matchOperator": "In", "cidr": export}],
            },
        })
    }

    #[test]
    fn only_import_rules_change_import_fingerprints() {
        let contexts = contexts();
        let print = |docs: &[serde_json::Value]| import_fingerprints(&contexts, docs);
        let before = print(&[filter("1", "10.0.0.0/8", "10.1.0.0/16")]);
        assert_eq!(
            before,
            print(&[filter("2", "10.0.0.0/8", "10.2.0.0/16")]),
            "an export rule changed"
        );
        assert_ne!(
            before,
            print(&[filter("2", "172.16.0.0/12", "10.1.0.0/16")]),
            "an import rule changed"
        );
    }

    fn contexts() -> HashMap<IpAddr, route_policy::SessionContext> {
        [(
            IpAddr::from([192, 0, 2, 1]),
            route_policy::SessionContext {
                name: "tor".to_owned(),
                peer_as: 65001,
                local_as: 64512,
                filters: vec!["f".to_owned()],
            },
        )]
        .into()
    }

    #[test]
    fn only_import_rules_leave_export_fingerprints_alone() {
        let contexts = contexts();
        let pool = serde_json::json!({
            "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/16"},
        });
        let print = |docs: &[serde_json::Value]| export_fingerprints(&contexts, docs);
        let before = print(&[pool.clone(), filter("1", "10.0.0.0/8", "10.1.0.0/16")]);
        assert_eq!(
            before,
            print(&[pool.clone(), filter("2", "172.16.0.0/12", "10.1.0.0/16")]),
            "an import rule changed"
        );
        assert_ne!(
            before,
            print(&[pool.clone(), filter("2", "10.0.0.0/8", "10.2.0.0/16")]),
            "an export rule changed"
        );
        let report = |at: &str| {
            serde_json::json!({
                "kind": "CalicoNodeStatus", "metadata": {"name": "n1", "resourceVersion": at},
                "spec": {"node": "n1", "updatePeriodSeconds": 10},
                "status": {"lastUpdated": at},
            })
        };
        assert_eq!(
            print(&[
                pool.clone(),
                filter("1", "10.0.0.0/8", "10.1.0.0/16"),
                report("1")
            ]),
            print(&[
                pool.clone(),
                filter("1", "10.0.0.0/8", "10.1.0.0/16"),
                report("2")
            ]),
            "our own status report was rewritten"
        );
        let mut other_pool = pool.clone();
        other_pool["spec"]["cidr"] = "10.9.0.0/16".into();
        assert_ne!(
            before,
            print(&[other_pool, filter("1", "10.0.0.0/8", "10.1.0.0/16")]),
            "another resource changed"
        );
    }
}
