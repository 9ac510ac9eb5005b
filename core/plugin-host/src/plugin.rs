//! A compiled plugin and the evaluations that run it.
//!
//! Over 800 lines on purpose: the plugin, its sandbox (store, limits,
//! log) and every role's call are one unit that three contract versions
//! share through `per_version!`; split, each half would need the other's
//! private state. The WASI world is apart, in `wasi.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use starling_contract as sdk;
use wasmtime::component::{HasSelf, Linker, ResourceAny};
use wasmtime::{ResourceLimiter, Store};

use crate::bindings::{v0_1, v0_2, v0_3};
use crate::metrics::PluginMetrics;
use crate::wasi::{self, Wasi};
use crate::{Host, PluginError, TICK, convert};
use wasmtime_wasi::{WasiCtxView, WasiView};

/// The longest log line a plugin may write; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;

/// A compiled plugin, checked against the WIT world. Cheap to share; each
/// [`Plugin::evaluate`] gets a fresh sandbox.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

struct Inner {
    host: Host,
    name: Arc<str>,
    pre: Pre,
    roles: Vec<sdk::Role>,
    metrics: Arc<PluginMetrics>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.name)
            .field("roles", &self.inner.roles)
            .finish_non_exhaustive()
    }
}

/// The component, linked against the contract version it implements.
enum Pre {
    V0_1(v0_1::PluginPre<State>),
    V0_2(v0_2::PluginPre<State>),
    V0_3(v0_3::PluginPre<State>),
}

/// One instance's exports, of its contract version.
enum Bindings {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Plugin),
    V0_3(v0_3::Plugin),
}

/// `$body` with `$b` bound to the instance's exports and `$c` to the
/// conversions of its contract version: what reads the same in every
/// version is written once. With `since_v0_2`, a 0.1 instance gets
/// `$before` instead (the call does not exist there).
macro_rules! per_version {
    ($bindings:expr, |$b:ident| $body:expr) => {
        match $bindings {
            Bindings::V0_1($b) => $body,
            Bindings::V0_2($b) => $body,
            Bindings::V0_3($b) => $body,
        }
    };
    ($bindings:expr, |$b:ident, $c:ident| $body:expr) => {
        match $bindings {
            Bindings::V0_1($b) => {
                use convert::v0_1 as $c;
                $body
            }
            Bindings::V0_2($b) => {
                use convert::v0_2 as $c;
                $body
            }
            Bindings::V0_3($b) => {
                use convert::v0_3 as $c;
                $body
            }
        }
    };
    ($bindings:expr, since_v0_2 |$b:ident, $c:ident| $body:expr, else $before:expr) => {
        match $bindings {
            Bindings::V0_1(_) => $before,
            Bindings::V0_2($b) => {
                use convert::v0_2 as $c;
                $body
            }
            Bindings::V0_3($b) => {
                use convert::v0_3 as $c;
                $body
            }
        }
    };
}

impl Pre {
    fn version(&self) -> &'static str {
        match self {
            Pre::V0_1(_) => "0.1.0",
            Pre::V0_2(_) => "0.2.0",
            Pre::V0_3(_) => "0.3.0",
        }
    }

    fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Pre::V0_1(pre) => Bindings::V0_1(pre.instantiate(store)?),
            Pre::V0_2(pre) => Bindings::V0_2(pre.instantiate(store)?),
            Pre::V0_3(pre) => Bindings::V0_3(pre.instantiate(store)?),
        })
    }
}

/// Link `component` for the newest contract version it implements.
fn link(host: &Host, component: &wasmtime::component::Component) -> Result<Pre, String> {
    macro_rules! try_version {
        ($version:ident, $variant:ident) => {
            || -> wasmtime::Result<Pre> {
                let mut linker: Linker<State> = Linker::new(host.engine());
                $version::Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
                add_every_log(&mut linker)?;
                wasi::add_to_linker(&mut linker, |s| s.wasi.virtual_time())?;
                let pre = linker.instantiate_pre(component)?;
                Ok(Pre::$variant($version::PluginPre::new(pre)?))
            }
        };
    }
    let attempts: [(&str, &dyn Fn() -> wasmtime::Result<Pre>); 3] = [
        ("0.3.0", &try_version!(v0_3, V0_3)),
        ("0.2.0", &try_version!(v0_2, V0_2)),
        ("0.1.0", &try_version!(v0_1, V0_1)),
    ];
    let mut why = Vec::new();
    for (version, attempt) in attempts {
        match attempt() {
            Ok(pre) => return Ok(pre),
            Err(e) => why.push(format!("as {version}: {e:#}")),
        }
    }
    Err(why.join("; "))
}

/// `log` (and its types) of every contract version: the SDK builds
/// speak several versions and import each one's `log`, whichever
/// version the host ends up linking them as.
fn add_every_log(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    macro_rules! add {
        ($($version:ident),*) => {$(
            $version::starling::policy::log::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
            $version::starling::policy::types::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
        )*};
    }
    add!(v0_1, v0_2, v0_3);
    linker.allow_shadowing(false);
    Ok(())
}

/// What one store carries: the plugin's name for logs, its limits, and
/// its (empty) WASI world.
struct State {
    plugin: Arc<str>,
    wasi: Wasi,
    limiter: Limiter,
    log_budget: u32,
    metrics: Arc<PluginMetrics>,
    /// The last error the plugin logged (its panic message, through the
    /// SDK's hook), to explain a trap that follows.
    last_error: Option<String>,
}

struct Limiter {
    memory: usize,
    table_elements: usize,
    /// A growth was refused: the trap that follows is out-of-memory.
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.refused = true;
            return Err(wasmtime::Error::msg(format!(
                "memory cap of {} bytes reached",
                self.memory
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.refused = true;
            return Err(wasmtime::Error::msg("table cap reached"));
        }
        Ok(true)
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.view()
    }
}

impl State {
    /// What the plugin printed since the last call, into its log: stdout
    /// at info, stderr at warn (an interpreter's traceback goes there).
    fn log_output(&mut self) {
        let (stdout, stderr, dropped) = self.wasi.take_output();
        for _ in 0..dropped {
            self.metrics.dropped_log_line();
        }
        for line in stdout {
            self.log(sdk::LogLevel::Info, line);
        }
        // The first line of stderr explains a trap, unless the plugin
        // logged an error itself (the SDKs log the exception).
        for line in stderr {
            if self.last_error.is_none() && !line.trim().is_empty() {
                self.last_error = Some(line.clone());
            }
            self.log(sdk::LogLevel::Warn, line);
        }
    }

    fn log(&mut self, level: sdk::LogLevel, mut message: String) {
        if self.log_budget == 0 {
            self.metrics.dropped_log_line();
            return;
        }
        self.log_budget -= 1;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        if level == sdk::LogLevel::Error {
            self.last_error = Some(message.clone());
        }
        let plugin = &*self.plugin;
        match level {
            sdk::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            sdk::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            sdk::LogLevel::Info => tracing::info!(plugin, "{message}"),
            sdk::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            sdk::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// The `log` import of one contract version.
macro_rules! log_host {
    ($version:ident) => {
        impl $version::starling::policy::log::Host for State {
            fn log(&mut self, level: $version::starling::policy::log::Level, message: String) {
                use $version::starling::policy::log::Level;
                let level = match level {
                    Level::Trace => sdk::LogLevel::Trace,
                    Level::Debug => sdk::LogLevel::Debug,
                    Level::Info => sdk::LogLevel::Info,
                    Level::Warn => sdk::LogLevel::Warn,
                    Level::Error => sdk::LogLevel::Error,
                };
                State::log(self, level, message);
            }
        }

        impl $version::starling::policy::types::Host for State {}
    };
}

log_host!(v0_1);
log_host!(v0_2);
log_host!(v0_3);

impl Plugin {
    pub(crate) fn load(host: Host, name: &str, bytes: &[u8]) -> Result<Self, PluginError> {
        let component = crate::precompile::compile(&host, name, bytes)?;
        if let Some(message) = wasi::refused_import(host.engine(), &component) {
            return Err(PluginError::Incompatible {
                plugin: name.to_owned(),
                message,
            });
        }
        let pre = link(&host, &component).map_err(|message| PluginError::Incompatible {
            plugin: name.to_owned(),
            message,
        })?;
        let mut plugin = Plugin {
            inner: Arc::new(Inner {
                host,
                name: Arc::from(name),
                pre,
                roles: Vec::new(),
                metrics: Arc::default(),
            }),
        };
        // Self-test before the plugin is accepted: it must instantiate and
        // say which roles it fills.
        let roles = plugin.probe_roles()?;
        if let Some(inner) = Arc::get_mut(&mut plugin.inner) {
            inner.roles = roles;
        }
        Ok(plugin)
    }

    fn probe_roles(&self) -> Result<Vec<sdk::Role>, PluginError> {
        let mut sandbox = Sandbox::new(self)?;
        let mut roles = sandbox.call("roles", |store, b| {
            per_version!(b, |b, c| Ok(b
                .starling_policy_snapshot()
                .call_roles(store)?
                .into_iter()
                .map(c::role)
                .collect::<Vec<_>>()))
        })?;
        roles.sort();
        roles.dedup();
        Ok(roles)
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The contract version the component implements, e.g. `0.2.0`.
    pub fn contract_version(&self) -> &'static str {
        self.inner.pre.version()
    }

    /// Whether two handles are the same loaded plugin.
    pub fn same(a: &Plugin, b: &Plugin) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    /// The roles this plugin fills, as it declared them.
    pub fn roles(&self) -> &[sdk::Role] {
        &self.inner.roles
    }

    pub fn fills(&self, role: sdk::Role) -> bool {
        self.inner.roles.contains(&role)
    }

    pub fn metrics(&self) -> &PluginMetrics {
        &self.inner.metrics
    }

    /// Load `objects` into a fresh sandbox. Problems the plugin finds in
    /// the resources are [`PluginError::Invalid`].
    pub fn evaluate(&self, objects: &[sdk::Object]) -> Result<Evaluation, PluginError> {
        let mut sandbox = Sandbox::new(self)?;
        let loaded = sandbox.call("load", |store, b| {
            per_version!(b, |b, c| {
                let objects: Vec<_> = objects.iter().map(c::object).collect();
                let loaded = b
                    .starling_policy_snapshot()
                    .model()
                    .call_load(store, &objects)?;
                Ok(loaded.map_err(|p| p.into_iter().map(c::problem).collect()))
            })
        })?;
        match loaded {
            Ok(model) => Ok(Evaluation {
                sandbox,
                model,
                facts: None,
            }),
            Err(problems) => {
                let e = PluginError::Invalid {
                    plugin: self.name().to_owned(),
                    problems,
                };
                self.inner.metrics.error(e.kind());
                Err(e)
            }
        }
    }
}

/// One store and instance, used for one snapshot.
struct Sandbox {
    plugin: Plugin,
    store: Store<State>,
    bindings: Bindings,
    /// A call failed: the instance may be half-way through anything and is
    /// never entered again.
    poisoned: bool,
}

impl Sandbox {
    fn new(plugin: &Plugin) -> Result<Self, PluginError> {
        let limits = plugin.inner.host.limits();
        let state = State {
            plugin: plugin.inner.name.clone(),
            wasi: Wasi::new(),
            limiter: Limiter {
                memory: limits.memory,
                table_elements: limits.table_elements,
                refused: false,
            },
            log_budget: limits.log_lines,
            metrics: plugin.inner.metrics.clone(),
            last_error: None,
        };
        let mut store = Store::new(plugin.inner.host.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(deadline_ticks(limits.call_deadline));
        let running = plugin.inner.host.running();
        let instantiated = plugin.inner.pre.instantiate(&mut store);
        drop(running);
        store.data_mut().log_output();
        let bindings = match instantiated {
            Ok(b) => b,
            Err(e) => {
                let e = classify(plugin, &store, "instantiate", e);
                plugin.inner.metrics.error(e.kind());
                return Err(e);
            }
        };
        Ok(Sandbox {
            plugin: plugin.clone(),
            store,
            bindings,
            poisoned: false,
        })
    }

    /// Run one export under the deadline, timing it and classifying any
    /// failure.
    fn call<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Store<State>, &Bindings) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let plugin = &self.plugin;
        if self.poisoned {
            let e = PluginError::Trap {
                plugin: plugin.name().to_owned(),
                call: name,
                message: "an earlier call of this evaluation failed".to_owned(),
            };
            plugin.inner.metrics.error(e.kind());
            return Err(e);
        }
        let deadline = plugin.inner.host.limits().call_deadline;
        self.store.set_epoch_deadline(deadline_ticks(deadline));
        self.store.data_mut().log_budget = plugin.inner.host.limits().log_lines;
        let started = Instant::now();
        let running = plugin.inner.host.running();
        let result = f(&mut self.store, &self.bindings);
        drop(running);
        self.store.data_mut().log_output();
        plugin.inner.metrics.call(started.elapsed());
        result.map_err(|e| {
            self.poisoned = true;
            let e = classify(plugin, &self.store, name, e);
            plugin.inner.metrics.error(e.kind());
            tracing::warn!(plugin = plugin.name(), "{e}");
            e
        })
    }
}

fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_nanos() / TICK.as_nanos()) as u64 + 1
}

fn classify(
    plugin: &Plugin,
    store: &Store<State>,
    call: &'static str,
    e: wasmtime::Error,
) -> PluginError {
    let name = plugin.name().to_owned();
    let limits = plugin.inner.host.limits();
    if store.data().limiter.refused {
        return PluginError::OutOfMemory {
            plugin: name,
            call,
            limit: limits.memory,
        };
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => PluginError::Timeout {
            plugin: name,
            call,
            deadline: limits.call_deadline,
        },
        Some(trap) => PluginError::Trap {
            plugin: name,
            call,
            message: match &store.data().last_error {
                Some(logged) => format!("{trap} ({logged})"),
                None => trap.to_string(),
            },
        },
        None => PluginError::Trap {
            plugin: name,
            call,
            message: e.root_cause().to_string(),
        },
    }
}

/// A snapshot loaded into a plugin's sandbox, ready for questions. Drop it
/// when the snapshot changes; a failed call poisons it.
pub struct Evaluation {
    sandbox: Sandbox,
    model: ResourceAny,
    /// The facts last sent to the plugin: planning node after node with
    /// the same facts sends them once.
    facts: Option<(Vec<sdk::NodeFacts>, ResourceAny)>,
}

impl std::fmt::Debug for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluation")
            .field("plugin", &self.sandbox.plugin.name())
            .field("poisoned", &self.sandbox.poisoned)
            .finish_non_exhaustive()
    }
}

impl Evaluation {
    fn require(&self, role: sdk::Role) -> Result<(), PluginError> {
        let plugin = &self.sandbox.plugin;
        if plugin.fills(role) {
            Ok(())
        } else {
            let e = PluginError::MissingRole {
                plugin: plugin.name().to_owned(),
                role,
            };
            plugin.inner.metrics.error(e.kind());
            Err(e)
        }
    }

    pub fn plugin(&self) -> &Plugin {
        &self.sandbox.plugin
    }

    pub fn nodes(&mut self) -> Result<Vec<String>, PluginError> {
        let model = self.model;
        self.sandbox.call("nodes", |store, b| {
            per_version!(b, |b| b
                .starling_policy_snapshot()
                .model()
                .call_nodes(store, model))
        })
    }

    /// The AS of every node.
    pub fn assign(&mut self) -> Result<Vec<(String, u32)>, PluginError> {
        self.require(sdk::Role::AsAssignment)?;
        let model = self.model;
        self.sandbox.call("assign", |store, b| {
            per_version!(b, |b| b
                .starling_policy_as_assignment()
                .call_assign(store, model))
        })
    }

    /// The cluster id of every reflector.
    pub fn reflectors(&mut self) -> Result<Vec<(String, String)>, PluginError> {
        self.require(sdk::Role::RouteReflection)?;
        let model = self.model;
        self.sandbox.call("reflectors", |store, b| {
            per_version!(b, |b| b
                .starling_policy_route_reflection()
                .call_reflectors(store, model))
        })
    }

    /// Every node's router id and addresses (0.2).
    pub fn identify(&mut self) -> Result<Vec<sdk::Identity>, PluginError> {
        self.require(sdk::Role::NodeIdentity)?;
        let model = self.model;
        let answer = self.sandbox.call("identify", |store, b| {
            per_version!(b, since_v0_2 |b, c| Ok(b
                .starling_policy_node_identity()
                .call_identify(store, model)?
                .into_iter()
                .map(c::identity)
                .collect::<Result<Vec<_>, _>>()), else Ok(Ok(Vec::new())))
        })?;
        answer.map_err(|message| self.bad_answer("identify", message))
    }

    /// The prefixes `node` originates (0.2).
    pub fn originate(&mut self, node: &str) -> Result<Vec<sdk::Originated>, PluginError> {
        self.require(sdk::Role::Origination)?;
        let model = self.model;
        let answer = self.sandbox.call("originate", |store, b| {
            per_version!(b, since_v0_2 |b, c| Ok(b
                .starling_policy_origination()
                .call_originate(store, model, node)?
                .map(|o| o.into_iter().map(c::originated).collect::<Result<Vec<_>, _>>())),
                else Ok(Ok(Ok(Vec::new()))))
        })?;
        let answer = answer.map_err(|message| self.failed("originate", message))?;
        answer.map_err(|message| self.bad_answer("originate", message))
    }

    /// The sessions of `nodes`, both families: one plan per node, in the
    /// order given. A 0.1 plugin is asked once per family and its answers
    /// joined.
    pub fn plan(
        &mut self,
        facts: &[sdk::NodeFacts],
        nodes: &[String],
    ) -> Result<Vec<sdk::NodePlan>, PluginError> {
        self.require(sdk::Role::PeerSelection)?;
        let model = self.model;
        let facts = self.facts_handle(facts)?;
        let v0_1 = matches!(self.sandbox.bindings, Bindings::V0_1(_));
        let plans = match v0_1 {
            true => {
                let mut joined: Vec<sdk::NodePlan> = Vec::new();
                for family in [sdk::Family::Ipv4, sdk::Family::Ipv6] {
                    let wit_family = convert::v0_1::family(family);
                    let result = self.sandbox.call("plan", |store, b| match b {
                        Bindings::V0_1(b) => b
                            .starling_policy_peer_selection()
                            .call_plan(store, model, facts, nodes, wit_family),
                        Bindings::V0_2(_) | Bindings::V0_3(_) => unreachable!("a 0.1 sandbox"),
                    })?;
                    let plans = result.map_err(|message| self.failed("plan", message))?;
                    self.check_count(plans.len(), nodes.len())?;
                    let plans = plans.into_iter().map(convert::v0_1::node_plan);
                    if joined.is_empty() {
                        joined = plans.collect();
                    } else {
                        joined
                            .iter_mut()
                            .zip(plans)
                            .for_each(|(all, more)| join(all, more));
                    }
                }
                joined
            }
            false => {
                let result = self.sandbox.call("plan", |store, b| {
                    per_version!(b, since_v0_2 |b, c| Ok(b
                        .starling_policy_peer_selection()
                        .call_plan(store, model, facts, nodes)?
                        .map(|plans| (
                            plans.len(),
                            plans.into_iter().map(c::node_plan).collect::<Result<Vec<_>, _>>(),
                        ))), else unreachable!("a 0.1 sandbox"))
                })?;
                let (count, plans) = result.map_err(|message| self.failed("plan", message))?;
                self.check_count(count, nodes.len())?;
                plans.map_err(|message| self.bad_answer("plan", message))?
            }
        };
        Ok(plans)
    }

    fn check_count(&self, plans: usize, nodes: usize) -> Result<(), PluginError> {
        if plans == nodes {
            return Ok(());
        }
        Err(self.bad_answer("plan", format!("{plans} plans for {nodes} nodes")))
    }

    /// The plugin's handle for `facts`, sending them only when they differ
    /// from the last ones sent.
    fn facts_handle(&mut self, facts: &[sdk::NodeFacts]) -> Result<ResourceAny, PluginError> {
        if let Some((seen, handle)) = &self.facts
            && seen.as_slice() == facts
        {
            return Ok(*handle);
        }
        let handle = self.sandbox.call("facts", |store, b| {
            per_version!(b, |b, c| {
                let lowered: Vec<_> = facts.iter().map(c::facts).collect();
                b.starling_policy_peer_selection()
                    .facts()
                    .call_constructor(store, &lowered)
            })
        })?;
        if let Some((_, old)) = self.facts.replace((facts.to_vec(), handle)) {
            // Dropping the old handle frees the plugin's copy; failing to is
            // harmless (the store goes with the evaluation).
            let _ = old.resource_drop(&mut self.sandbox.store);
        }
        Ok(handle)
    }

    /// Verdicts for a batch of routes crossing one session.
    pub fn route_policy(
        &mut self,
        context: &sdk::RouteContext,
        sets: &[sdk::Attributes],
        routes: &[sdk::Route],
    ) -> Result<sdk::Verdicts, PluginError> {
        self.require(sdk::Role::RoutePolicy)?;
        let model = self.model;
        let (outcome, changed) = self.sandbox.call("evaluate", |store, b| {
            per_version!(b, |b, c| {
                let sets: Vec<_> = sets.iter().map(c::attributes).collect();
                let routes: Vec<_> = routes.iter().map(c::route).collect();
                let v = b.starling_policy_route_policy().call_evaluate(
                    store,
                    model,
                    &c::context(context),
                    &sets,
                    &routes,
                )?;
                let changed: Vec<_> = v.changed.into_iter().map(c::sdk_attributes).collect();
                Ok((v.outcome, changed))
            })
        })?;
        let max = changed.len() as u64 + 2;
        if outcome.len() != routes.len() || outcome.iter().any(|o| u64::from(*o) >= max) {
            return Err(self.bad_answer(
                "evaluate",
                format!(
                    "{} verdicts for {} routes, or a verdict naming a missing attribute set",
                    outcome.len(),
                    routes.len()
                ),
            ));
        }
        Ok(sdk::Verdicts { outcome, changed })
    }

    /// Per context, digests of what its import and export verdicts depend
    /// on (0.2). `None` from a 0.1 plugin, which cannot say: the caller
    /// must assume anything may have changed.
    pub fn inputs(
        &mut self,
        contexts: &[sdk::RouteContext],
    ) -> Result<Option<Vec<(u64, u64)>>, PluginError> {
        self.require(sdk::Role::RoutePolicy)?;
        let model = self.model;
        let digests = self.sandbox.call("inputs", |store, b| {
            per_version!(b, since_v0_2 |b, c| {
                let lowered: Vec<_> = contexts.iter().map(c::context).collect();
                b.starling_policy_route_policy()
                    .call_inputs(store, model, &lowered)
                    .map(Some)
            }, else Ok(None))
        })?;
        if let Some(d) = &digests
            && d.len() != contexts.len()
        {
            let message = format!("{} digests for {} sessions", d.len(), contexts.len());
            return Err(self.bad_answer("inputs", message));
        }
        Ok(digests)
    }

    fn failed(&self, call: &'static str, message: String) -> PluginError {
        let e = PluginError::Failed {
            plugin: self.sandbox.plugin.name().to_owned(),
            call,
            message,
        };
        self.sandbox.plugin.inner.metrics.error(e.kind());
        e
    }

    fn bad_answer(&self, call: &'static str, message: String) -> PluginError {
        let e = PluginError::BadAnswer {
            plugin: self.sandbox.plugin.name().to_owned(),
            call,
            message,
        };
        self.sandbox.plugin.inner.metrics.error(e.kind());
        e
    }
}

/// Add a 0.1 plugin's plan for another family to a node's plan.
fn join(all: &mut sdk::NodePlan, more: sdk::NodePlan) {
    all.router_id = all.router_id.take().or(more.router_id);
    all.listen_port = all.listen_port.or(more.listen_port);
    all.listen_addresses.extend(more.listen_addresses);
    all.sessions.extend(more.sessions);
    all.warnings.extend(more.warnings);
}
