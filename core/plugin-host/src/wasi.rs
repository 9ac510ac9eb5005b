//! The capability-free WASI every plugin gets.
//!
//! Components import WASI even when they never touch the outside world:
//! Rust's wasip2 standard library declares `wasi:cli`, `wasi:io`,
//! `wasi:clocks`, `wasi:filesystem` and `wasi:sockets`; an interpreter
//! built by componentize-py or componentize-js calls some of them at
//! start. Each plugin instance gets all of those, with nothing behind them:
//!
//! - **environment**: no variables, no arguments, no working directory;
//! - **filesystem**: no preopened directory, so no file can be named;
//! - **sockets**: every address refused, no name lookups;
//! - **stdin** empty; **stdout and stderr** go to the plugin's log (stdout
//!   at info, stderr at warn), under the same line budget as `log`;
//! - **clocks**: virtual. Both start at the Unix epoch's zero and move
//!   1 µs per reading; a sleep ends at once, having moved them by its
//!   length. A plan must be a function of the resources: a plugin that
//!   decided by the time of day would give two nodes, or two runs, two
//!   answers. And no call may wait on a real timer: the epoch deadline
//!   interrupts wasm, not a host call that sleeps;
//! - **random**: the same fixed pseudo-random sequence in every instance,
//!   for the same reason.
//!
//! Anything else a component imports (`wasi:http`, an interface of its
//! own) is refused at load, with its name.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::component::{Component, HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult, subscribe};
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView,
    WasiView,
};

/// The contract's imports a plugin may have: `log` and the types it
/// shares.
const CONTRACT: &[&str] = &["starling:policy/log@", "starling:policy/types@"];

/// The WASI interfaces a plugin may import, by name prefix.
const WASI: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// Bytes of stdout or stderr kept per call; more is dropped and counted
/// as dropped log lines.
const PIPE_CAPACITY: usize = 64 * 1024;

/// How far the virtual clocks move at each reading.
const NANOS_PER_READING: u64 = 1_000;

/// Why `component` is refused: the first import no plugin is given, named.
pub(crate) fn refused_import(engine: &wasmtime::Engine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    let import = ty.imports(engine).map(|(name, _)| name).find(|name| {
        !CONTRACT
            .iter()
            .chain(WASI)
            .any(|given| name.starts_with(given))
    })?;
    let wasi: Vec<&str> = WASI.iter().map(|w| w.trim_end_matches('/')).collect();
    Some(format!(
        "it imports `{import}`, which no plugin is given (plugins may import \
         starling:policy and a WASI without capabilities: {})",
        wasi.join(", ")
    ))
}

/// Link the WASI interfaces, the monotonic clock replaced by the virtual
/// one.
pub(crate) fn add_to_linker<T: WasiView + 'static>(
    linker: &mut Linker<T>,
    virtual_time: fn(&mut T) -> VirtualTimeView<'_>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<T, VirtualTime>(linker, virtual_time)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// One instance's WASI state.
pub(crate) struct Wasi {
    ctx: WasiCtx,
    table: ResourceTable,
    clock: VirtualClock,
    stdout: LogPipe,
    stderr: LogPipe,
}

impl Wasi {
    pub(crate) fn new() -> Self {
        let clock = VirtualClock::default();
        let (stdout, stderr) = (LogPipe::default(), LogPipe::default());
        let ctx = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .secure_random(Deterministic::new(random_bytes().to_vec()))
            .insecure_random(Deterministic::new(random_bytes().to_vec()))
            .insecure_random_seed(u128::from_le_bytes(
                random_bytes()[..16].try_into().unwrap_or_default(),
            ))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Wasi {
            ctx,
            table: ResourceTable::new(),
            clock,
            stdout,
            stderr,
        }
    }

    pub(crate) fn view(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }

    pub(crate) fn virtual_time(&mut self) -> VirtualTimeView<'_> {
        VirtualTimeView {
            clock: &self.clock,
            table: &mut self.table,
        }
    }

    /// What the plugin wrote since the last call: stdout's lines, stderr's
    /// lines, and how many writes were dropped for want of room.
    pub(crate) fn take_output(&self) -> (Vec<String>, Vec<String>, usize) {
        let (out, out_dropped) = self.stdout.take_lines();
        let (err, err_dropped) = self.stderr.take_lines();
        (out, err, out_dropped + err_dropped)
    }
}

/// A fixed pseudo-random sequence (SplitMix64 from a constant seed): what
/// `wasi:random` returns, cycled.
fn random_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut state = 0x5354_4152_4c49_4e47_u64; // "STARLING"
        (0..512)
            .flat_map(|_| {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)).to_le_bytes()
            })
            .collect()
    })
}

/// Both clocks of one instance, in nanoseconds since the epoch's zero.
#[derive(Debug, Clone, Default)]
pub(crate) struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    fn read(&self) -> u64 {
        self.advance(NANOS_PER_READING)
    }

    fn advance(&self, nanos: u64) -> u64 {
        let before = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(nanos))
            })
            .unwrap_or_default();
        before.saturating_add(nanos)
    }

    fn advance_to(&self, instant: u64) {
        let _ = self.0.fetch_max(instant, Ordering::Relaxed);
    }
}

impl HostWallClock for VirtualClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(NANOS_PER_READING)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.read())
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        NANOS_PER_READING
    }

    fn now(&self) -> u64 {
        self.read()
    }
}

/// `wasi:clocks/monotonic-clock` on the virtual clock: what a guest
/// subscribes to has already happened.
pub(crate) struct VirtualTime;

impl HasData for VirtualTime {
    type Data<'a> = VirtualTimeView<'a>;
}

pub(crate) struct VirtualTimeView<'a> {
    clock: &'a VirtualClock,
    table: &'a mut ResourceTable,
}

impl VirtualTimeView<'_> {
    fn elapsed(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let elapsed = self.table.push(Elapsed)?;
        subscribe(self.table, elapsed)
    }
}

impl monotonic_clock::Host for VirtualTimeView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.clock.read())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(NANOS_PER_READING)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.clock.advance_to(when);
        self.elapsed()
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.clock.advance(duration);
        self.elapsed()
    }
}

/// A pollable that is always ready.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}

/// stdout or stderr: bytes kept until the host takes them as log lines.
#[derive(Debug, Clone, Default)]
struct LogPipe(Arc<Mutex<Piped>>);

#[derive(Debug, Default)]
struct Piped {
    bytes: Vec<u8>,
    dropped: usize,
}

impl LogPipe {
    fn push(&self, bytes: &[u8]) {
        let mut piped = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if piped.bytes.len() + bytes.len() > PIPE_CAPACITY {
            piped.dropped += 1;
        } else {
            piped.bytes.extend_from_slice(bytes);
        }
    }

    fn take_lines(&self) -> (Vec<String>, usize) {
        let mut piped = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = std::mem::take(&mut piped.bytes);
        let dropped = std::mem::take(&mut piped.dropped);
        let lines = String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect();
        (lines, dropped)
    }
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always room: what does not fit is dropped, not waited for.
        Ok(PIPE_CAPACITY)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(bytes);
        std::task::Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clocks_move_only_when_read_or_slept_on() {
        let clock = VirtualClock::default();
        assert_eq!(HostMonotonicClock::now(&clock), 1_000);
        assert_eq!(HostMonotonicClock::now(&clock), 2_000);
        clock.advance(5_000_000_000);
        assert_eq!(
            HostWallClock::now(&clock),
            Duration::from_nanos(5_000_003_000)
        );
        clock.advance_to(1);
        assert_eq!(HostMonotonicClock::now(&clock), 5_000_004_000);
    }

    #[test]
    fn output_becomes_lines_and_what_does_not_fit_is_counted() {
        let pipe = LogPipe::default();
        pipe.push(b"one\ntwo");
        pipe.push(b" halves\n");
        pipe.push(&vec![b'x'; PIPE_CAPACITY]);
        assert_eq!(
            pipe.take_lines(),
            (vec!["one".to_owned(), "two halves".to_owned()], 1)
        );
        assert_eq!(pipe.take_lines(), (Vec::new(), 0));
    }

    #[test]
    fn random_is_the_same_sequence_everywhere() {
        assert_eq!(random_bytes().len(), 4096);
        assert_eq!(random_bytes(), random_bytes());
        assert_ne!(&random_bytes()[..8], &random_bytes()[8..16]);
    }
}
