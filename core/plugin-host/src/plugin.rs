//! A compiled plugin and the evaluations that run it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use starling_contract as sdk;
use wasmtime::component::{HasSelf, Linker, ResourceAny};
use wasmtime::{ResourceLimiter, Store};

use crate::bindings::starling::policy::log;
use crate::bindings::{Plugin as Bindings, PluginPre};
use crate::metrics::PluginMetrics;
use crate::{Host, PluginError, TICK, convert};

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
    pre: PluginPre<State>,
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

/// What one store carries: the plugin's name for logs, and its limits.
struct State {
    plugin: Arc<str>,
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

impl log::Host for State {
    fn log(&mut self, level: log::Level, mut message: String) {
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
        if level == log::Level::Error {
            self.last_error = Some(message.clone());
        }
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl crate::bindings::starling::policy::types::Host for State {}

impl Plugin {
    pub(crate) fn load(host: Host, name: &str, bytes: &[u8]) -> Result<Self, PluginError> {
        let component = crate::precompile::compile(&host, name, bytes)?;
        let incompatible = |e: wasmtime::Error| PluginError::Incompatible {
            plugin: name.to_owned(),
            message: format!("{e:#}"),
        };
        let mut linker: Linker<State> = Linker::new(host.engine());
        Bindings::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(incompatible)?;
        // No ambient capabilities: whatever else the component imports
        // (wasi:cli, wasi:io from Rust's std) traps when called.
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(incompatible)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(incompatible)?;
        let pre = PluginPre::new(instance_pre).map_err(incompatible)?;
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
        let roles = sandbox.call("roles", |store, b| {
            b.starling_policy_snapshot().call_roles(store)
        })?;
        let mut roles: Vec<sdk::Role> = roles.into_iter().map(convert::role).collect();
        roles.sort();
        roles.dedup();
        Ok(roles)
    }

    pub fn name(&self) -> &str {
        &self.inner.name
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
        let objects: Vec<_> = objects.iter().map(convert::object).collect();
        let loaded = sandbox.call("load", |store, b| {
            b.starling_policy_snapshot()
                .model()
                .call_load(store, &objects)
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
                    problems: problems.into_iter().map(convert::problem).collect(),
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
            b.starling_policy_snapshot()
                .model()
                .call_nodes(store, model)
        })
    }

    /// The AS of every node.
    pub fn assign(&mut self) -> Result<Vec<(String, u32)>, PluginError> {
        self.require(sdk::Role::AsAssignment)?;
        let model = self.model;
        self.sandbox.call("assign", |store, b| {
            b.starling_policy_as_assignment().call_assign(store, model)
        })
    }

    /// The cluster id of every reflector.
    pub fn reflectors(&mut self) -> Result<Vec<(String, String)>, PluginError> {
        self.require(sdk::Role::RouteReflection)?;
        let model = self.model;
        self.sandbox.call("reflectors", |store, b| {
            b.starling_policy_route_reflection()
                .call_reflectors(store, model)
        })
    }

    /// The sessions of `nodes` in `family`.
    pub fn plan(
        &mut self,
        facts: &[sdk::NodeFacts],
        nodes: &[String],
        family: sdk::Family,
    ) -> Result<Vec<sdk::NodePlan>, PluginError> {
        self.require(sdk::Role::PeerSelection)?;
        let model = self.model;
        let facts = self.facts_handle(facts)?;
        let result = self.sandbox.call("plan", |store, b| {
            b.starling_policy_peer_selection().call_plan(
                store,
                model,
                facts,
                nodes,
                convert::family(family),
            )
        })?;
        let plans = result.map_err(|message| self.failed("plan", message))?;
        if plans.len() != nodes.len() {
            return Err(self.bad_answer(
                "plan",
                format!("{} plans for {} nodes", plans.len(), nodes.len()),
            ));
        }
        Ok(plans.into_iter().map(convert::node_plan).collect())
    }

    /// The plugin's handle for `facts`, sending them only when they differ
    /// from the last ones sent.
    fn facts_handle(&mut self, facts: &[sdk::NodeFacts]) -> Result<ResourceAny, PluginError> {
        if let Some((seen, handle)) = &self.facts
            && seen.as_slice() == facts
        {
            return Ok(*handle);
        }
        let lowered: Vec<_> = facts.iter().map(convert::facts).collect();
        let handle = self.sandbox.call("facts", |store, b| {
            b.starling_policy_peer_selection()
                .facts()
                .call_constructor(store, &lowered)
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
        let context = convert::context(context);
        let sets: Vec<_> = sets.iter().map(convert::attributes).collect();
        let routes: Vec<_> = routes.iter().map(convert::route).collect();
        let v = self.sandbox.call("evaluate", |store, b| {
            b.starling_policy_route_policy()
                .call_evaluate(store, model, &context, &sets, &routes)
        })?;
        let changed = v.changed.len() as u64;
        if v.outcome.len() != routes.len() || v.outcome.iter().any(|o| u64::from(*o) >= changed + 2)
        {
            return Err(self.bad_answer(
                "evaluate",
                format!(
                    "{} verdicts for {} routes, or a verdict naming a missing attribute set",
                    v.outcome.len(),
                    routes.len()
                ),
            ));
        }
        Ok(sdk::Verdicts {
            outcome: v.outcome,
            changed: v.changed.into_iter().map(convert::sdk_attributes).collect(),
        })
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
