//! The sandboxed wasmtime host for Starling's policy plugins.
//!
//! One [`Host`] (one wasmtime `Engine`) per process. A [`Plugin`] is a
//! compiled component, checked against the `starling:policy` world of
//! contract 0.3, 0.2 or 0.1 (all load; older answers are converted to the
//! newest types, see `convert.rs`).
//! Every evaluation runs in a fresh [`Evaluation`] (a new `Store`, ~20 µs),
//! so nothing leaks between snapshots and a trap poisons nothing that is
//! used again.
//!
//! The sandbox:
//! - **time**: an epoch deadline per call; a ticker thread advances the
//!   epoch every [`TICK`] while a call runs (and sleeps otherwise: an idle
//!   daemon does not wake 100 times a second for nothing);
//! - **memory**: linear memory and tables capped per store, growth beyond
//!   the cap traps;
//! - **stack**: wasm stack capped;
//! - **capabilities**: none. Besides `log`, a plugin gets a WASI with
//!   nothing behind it (no environment, files or network; stdout and
//!   stderr into its log; virtual clocks and a fixed random sequence, so a
//!   plan stays a function of its resources): see `wasi.rs`. A component
//!   that imports anything else is refused at load.
//!
//! Every call is synchronous and bounded by the deadline: callers run it on
//! a thread of their own (`spawn_blocking`), never on a task that drives a
//! BGP session. A failure is a typed [`PluginError`]; the documented
//! fallback is the caller's last known-good result (see
//! [`pipeline::Policy`]).

mod bindings;
mod convert;
pub mod mend;
mod metrics;
pub mod pipeline;
mod plugin;
mod precompile;
mod wasi;

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

pub use metrics::{ErrorKind, LATENCY_BUCKETS, MetricsSnapshot, PluginMetrics};
pub use plugin::{Evaluation, Plugin};
pub use starling_contract as contract;

/// How often the epoch advances; call deadlines are rounded up to it.
pub const TICK: Duration = Duration::from_millis(10);

/// The sandbox limits every plugin call runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock budget of one call into a plugin.
    pub call_deadline: Duration,
    /// Linear memory per evaluation, in bytes.
    pub memory: usize,
    /// Table elements per evaluation.
    pub table_elements: usize,
    /// Wasm stack, in bytes.
    pub stack: usize,
    /// Log lines one evaluation may emit; more are counted and dropped.
    pub log_lines: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_deadline: Duration::from_millis(2_000),
            memory: 256 << 20,
            table_elements: 100_000,
            stack: 1 << 20,
            log_lines: 1_000,
        }
    }
}

/// Why a plugin could not be loaded or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot set up the plugin engine: {0}")]
    Engine(String),
    #[error("plugin '{plugin}': cannot read {path}: {source}")]
    Read {
        plugin: String,
        path: String,
        source: std::io::Error,
    },
    #[error("plugin '{plugin}' is not a valid component: {message}")]
    Compile { plugin: String, message: String },
    #[error(
        "plugin '{plugin}' implements none of starling:policy@0.3.0, @0.2.0 or \
         @0.1.0 (wrong WIT version or missing export): {message}"
    )]
    Incompatible { plugin: String, message: String },
    #[error("plugin '{plugin}' does not fill the {role:?} role")]
    MissingRole {
        plugin: String,
        role: contract::Role,
    },
    #[error("plugin '{plugin}' exceeded its {deadline:?} deadline in {call}")]
    Timeout {
        plugin: String,
        call: &'static str,
        deadline: Duration,
    },
    #[error("plugin '{plugin}' ran out of memory ({limit} bytes) in {call}")]
    OutOfMemory {
        plugin: String,
        call: &'static str,
        limit: usize,
    },
    #[error("plugin '{plugin}' trapped in {call}: {message}")]
    Trap {
        plugin: String,
        call: &'static str,
        message: String,
    },
    #[error("plugin '{plugin}' refused the resources: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        plugin: String,
        problems: Vec<contract::Problem>,
    },
    #[error("plugin '{plugin}' returned an error from {call}: {message}")]
    Failed {
        plugin: String,
        call: &'static str,
        message: String,
    },
    #[error("plugin '{plugin}' gave an unusable answer from {call}: {message}")]
    BadAnswer {
        plugin: String,
        call: &'static str,
        message: String,
    },
}

impl PluginError {
    /// The metrics label of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PluginError::Engine(_) | PluginError::Read { .. } | PluginError::Compile { .. } => {
                ErrorKind::Load
            }
            PluginError::Incompatible { .. } | PluginError::MissingRole { .. } => {
                ErrorKind::Incompatible
            }
            PluginError::Timeout { .. } => ErrorKind::Timeout,
            PluginError::OutOfMemory { .. } => ErrorKind::OutOfMemory,
            PluginError::Trap { .. } => ErrorKind::Trap,
            PluginError::Invalid { .. } => ErrorKind::Invalid,
            PluginError::Failed { .. } | PluginError::BadAnswer { .. } => ErrorKind::Failed,
        }
    }
}

/// The process-wide plugin engine.
#[derive(Clone, Debug)]
pub struct Host {
    inner: Arc<HostInner>,
}

#[derive(Debug)]
struct HostInner {
    engine: wasmtime::Engine,
    ticker: Arc<Ticker>,
    limits: Limits,
    cache: Option<std::path::PathBuf>,
}

impl Host {
    /// An engine with the sandbox configuration and its epoch ticker.
    pub fn new(limits: Limits) -> Result<Self, PluginError> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(limits.stack);
        // Traps are reported by kind; a wasm backtrace of a runaway
        // recursion is thousands of lines nobody reads.
        config.wasm_backtrace_max_frames(None);
        let engine =
            wasmtime::Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let ticker = Ticker::start(&engine)
            .map_err(|e| PluginError::Engine(format!("epoch thread: {e}")))?;
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                ticker,
                limits,
                cache: None,
            }),
        })
    }

    /// Keep compiled plugins in `dir` (created if missing, root-only), so a
    /// restart loads them in milliseconds instead of compiling again.
    pub fn with_cache(self, dir: impl Into<std::path::PathBuf>) -> Self {
        let inner = HostInner {
            engine: self.inner.engine.clone(),
            ticker: self.inner.ticker.clone(),
            limits: self.inner.limits.clone(),
            cache: Some(dir.into()),
        };
        Host {
            inner: Arc::new(inner),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Compile and check a plugin from component bytes.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Plugin, PluginError> {
        Plugin::load(self.clone(), name, bytes)
    }

    /// Compile and check a plugin from a file.
    pub fn load_file(&self, name: &str, path: &std::path::Path) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            plugin: name.to_owned(),
            path: path.display().to_string(),
            source,
        })?;
        self.load(name, &bytes)
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    pub(crate) fn cache(&self) -> Option<&std::path::Path> {
        self.inner.cache.as_deref()
    }

    /// Keep the epoch advancing until the returned guard is dropped:
    /// held around everything that runs guest code under a deadline.
    pub(crate) fn running(&self) -> Running {
        self.inner.ticker.enter()
    }
}

/// Advances the engine's epoch every [`TICK`] while at least one call
/// runs guest code, so deadlines fire; between calls its thread sleeps.
#[derive(Debug, Default)]
struct Ticker {
    /// Calls running now.
    running: Mutex<usize>,
    wake: Condvar,
}

/// A call in progress (see [`Host::running`]).
pub(crate) struct Running(Arc<Ticker>);

impl Drop for Running {
    fn drop(&mut self) {
        *self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) -= 1;
    }
}

impl Ticker {
    /// How often an idle ticker checks whether its engine is gone.
    const IDLE_CHECK: Duration = Duration::from_secs(1);

    /// The ticker of `engine`, for as long as the engine lives.
    fn start(engine: &wasmtime::Engine) -> std::io::Result<Arc<Self>> {
        let ticker = Arc::new(Ticker::default());
        let weak = engine.weak();
        let shared = ticker.clone();
        std::thread::Builder::new()
            .name("plugin-epoch".to_owned())
            .spawn(move || {
                let lock = || {
                    shared
                        .running
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                };
                loop {
                    let (idle, _) = shared
                        .wake
                        .wait_timeout_while(lock(), Self::IDLE_CHECK, |n| *n == 0)
                        .unwrap_or_else(PoisonError::into_inner);
                    drop(idle);
                    let Some(engine) = weak.upgrade() else { return };
                    // A deadline counts ticks from when its call started:
                    // the first one comes a whole TICK after the wake-up.
                    while *lock() > 0 {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(ticker)
    }

    fn enter(self: &Arc<Self>) -> Running {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        *running += 1;
        if *running == 1 {
            self.wake.notify_one();
        }
        Running(self.clone())
    }
}
