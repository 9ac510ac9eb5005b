//! The FIB programmer's loop: a stream of wanted kernel routes in, the
//! kernel table kept equal to it.
//!
//! One tokio task owns the [`Fib`] and the [`RouteMonitor`]. It collects
//! changes for a moment before each write, so a full table arriving
//! becomes a few large batches; it adopts the previous run's routes and,
//! once told the routing has converged, sweeps those nobody claimed; it
//! repairs what someone else changed, as soon as the monitor says so and
//! periodically as a safety net. What it did goes to the caller as
//! [`Report`]s, for metrics.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{
    Changes, Destination, Fib, FibConfig, FibError, KernelEvent, PendingChanges, RouteMonitor,
    Target,
};

/// Changes a write pass takes out of the pending map at a time: one
/// [`Fib::apply_changes`] call. Between two, the batches that arrived
/// meanwhile are packed into the map; until then each change waits in
/// the channel as the caller's record, about 58 bytes against the map's
/// 8. A full table into the kernel (`starling-bench fib`) peaked at
/// 114 MiB with 65,536, 108 with 16,384, 99 with 4,096 and 100 with
/// 1,024, in the same time within the noise (1,024 slower by 0.1 s).
const WRITE_SLICE: usize = 4_096;

/// How the loop paces itself. The defaults are the daemon's.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Changes are collected for at most this long before a write.
    pub batch_delay: Duration,
    /// How often the kernel table is compared with what was installed, as
    /// a safety net under the route monitor.
    pub resync: Duration,
    /// How long after a sign of tampering the table is repaired: a burst
    /// of kernel events becomes one pass.
    pub repair_delay: Duration,
    /// Our own bursts overrun the route monitor (a full table is a
    /// million notifications), and an overrun hides whether anyone else
    /// changed a route meanwhile. Repairing at once would re-read the
    /// whole table in the middle of the burst, again and again; so after
    /// an overrun during our writes, the repair waits until they have
    /// been quiet this long.
    pub quiet: Duration,
    /// A write of at least this many routes pauses the route monitor (see
    /// [`RouteMonitor::pause`]): the table is compared once the writes
    /// are quiet. Each echo costs the kernel a copy per listener, in our
    /// time; for a full table, a third of the netlink floor.
    pub blind_write: usize,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            batch_delay: Duration::from_millis(50),
            resync: Duration::from_secs(300),
            repair_delay: Duration::from_millis(100),
            quiet: Duration::from_secs(1),
            blind_write: 20_000,
        }
    }
}

/// What the programmer did, for the caller's metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Report {
    /// One batched write pass.
    Write {
        duration: Duration,
        /// Routes installed after it.
        installed: usize,
        /// The heap bytes of the installed table after it, and of the
        /// pending changes before it (a burst's peak).
        installed_bytes: usize,
        pending_bytes: usize,
        added: usize,
        replaced: usize,
        deleted: usize,
        refused: usize,
        /// The whole write failed; its changes are tried again.
        failed: bool,
    },
    /// Routes rewritten because someone else changed or deleted them.
    Repaired(usize),
}

/// Calls `want` with the kernel route each entry of a batch asks for
/// (`None`: no route). The caller's own types stay on its side.
pub type Translate<B> = Box<dyn FnMut(B, &mut dyn FnMut(Destination, Option<Target>)) + Send>;

/// The running programmer.
#[derive(Debug)]
pub struct Programmer {
    adopted: usize,
    stop: oneshot::Sender<bool>,
    sweep: Option<oneshot::Sender<()>>,
    done: JoinHandle<()>,
}

impl Programmer {
    /// Open the table, adopt the previous run's routes, and start the
    /// loop on `changes`. Needs a multi-threaded tokio runtime (writes
    /// block in place).
    pub fn start<B: Send + 'static>(
        config: FibConfig,
        pacing: Pacing,
        changes: mpsc::UnboundedReceiver<B>,
        translate: Translate<B>,
        report: Box<dyn FnMut(Report) + Send>,
    ) -> Result<Self, FibError> {
        let mut fib = Fib::open(config)?;
        // Subscribed before adopting, so no change after the read is missed.
        let monitor = RouteMonitor::open()?;
        let adopted = fib.adopt()?;
        tracing::info!(adopted, "adopted kernel routes from the previous run");
        let (stop, stopped) = oneshot::channel();
        let (sweep, sweep_now) = oneshot::channel();
        let resync = tokio::time::interval_at(Instant::now() + pacing.resync, pacing.resync);
        let state = Loop {
            fib,
            monitor,
            pacing,
            translate,
            report,
            pending: PendingChanges::default(),
            claimed: BTreeSet::new(),
            // Nothing adopted, nothing to sweep: no need to track claims
            // (a full table's worth of them).
            swept: adopted == 0,
            write_at: None,
            repair_at: None,
            last_write: None,
            repair_when_quiet: false,
        };
        let done = tokio::spawn(state.run(changes, resync, sweep_now, stopped));
        Ok(Self {
            adopted,
            stop,
            sweep: Some(sweep),
            done,
        })
    }

    /// Routes of ours the kernel kept from the previous run.
    pub fn adopted(&self) -> usize {
        self.adopted
    }

    /// The routing has converged: delete routes adopted from the previous
    /// run that no change has claimed since. Only the first call counts.
    pub fn sweep(&mut self) {
        if let Some(tx) = self.sweep.take() {
            let _ = tx.send(());
        }
    }

    pub fn swept(&self) -> bool {
        self.sweep.is_none()
    }

    /// Stop; `clean` deletes Starling's routes, otherwise they stay for
    /// the next run to adopt.
    pub async fn stop(self, clean: bool) {
        let _ = self.stop.send(clean);
        let _ = self.done.await;
    }
}

struct Loop<B> {
    fib: Fib,
    monitor: RouteMonitor,
    pacing: Pacing,
    translate: Translate<B>,
    report: Box<dyn FnMut(Report) + Send>,
    /// What is wanted that the kernel does not have yet: destination →
    /// target (`None`: no route). What the programmer wants is what was
    /// installed plus these, so it keeps no copy of the table. Routes the
    /// kernel refused stay, retried with the next write.
    pending: PendingChanges,
    /// Adopted routes stay (forwarding continues through the restart)
    /// until the sweep; those not claimed by then are stale.
    claimed: BTreeSet<Destination>,
    swept: bool,
    write_at: Option<Instant>,
    /// When the kernel says someone touched our routes (or that it lost
    /// notifications), repair shortly after.
    repair_at: Option<Instant>,
    last_write: Option<Instant>,
    /// An overrun during our writes: repair once they are quiet.
    repair_when_quiet: bool,
}

impl<B> Loop<B> {
    async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<B>,
        mut resync: tokio::time::Interval,
        mut sweep_now: oneshot::Receiver<()>,
        mut stopped: oneshot::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                events = self.monitor.next() => self.kernel_events(events).await,
                () = sleep_until(self.repair_at), if self.repair_at.is_some() => {
                    self.repair_at = None;
                    self.repair_when_quiet = false;
                    self.repair("repaired kernel routes changed behind our back");
                }
                _ = resync.tick() => {
                    self.repair("periodic check repaired kernel routes the monitor missed");
                }
                Ok(()) = &mut sweep_now, if !self.swept => {
                    // Changes already sent claim their routes first:
                    // `select!` may pick the sweep before a waiting batch,
                    // which would delete a route the batch re-learned and
                    // write it again (a lost packet).
                    let mut learned = false;
                    while let Ok(batch) = changes.try_recv() {
                        self.want(batch);
                        learned = true;
                    }
                    self.sweep(learned);
                }
                clean = &mut stopped => {
                    if clean.unwrap_or(false) {
                        let _ = tokio::task::block_in_place(|| self.fib.clear());
                    }
                    return;
                }
                batch = changes.recv() => {
                    let Some(batch) = batch else { return };
                    self.want(batch);
                    let delay = self.pacing.batch_delay;
                    self.write_at.get_or_insert_with(|| Instant::now() + delay);
                }
                () = sleep_until(self.write_at), if self.write_at.is_some() => {
                    self.write_at = None;
                    self.write(&mut changes);
                }
            }
        }
    }

    /// Record what `batch` wants, and before the sweep mark it claimed.
    fn want(&mut self, batch: B) {
        let Self {
            translate,
            pending,
            claimed,
            swept,
            ..
        } = self;
        translate(batch, &mut |dest, target| {
            if !*swept {
                claimed.insert(dest);
            }
            pending.insert(dest, target);
        });
    }

    async fn kernel_events(&mut self, events: Result<Vec<KernelEvent>, FibError>) {
        let events = match events {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!("route monitor: {e}; relying on the periodic check");
                match RouteMonitor::open() {
                    Ok(monitor) => self.monitor = monitor,
                    Err(e) => {
                        tracing::error!("route monitor: {e}");
                        tokio::time::sleep(self.pacing.resync).await;
                        return;
                    }
                }
                self.repair_at.get_or_insert_with(Instant::now);
                return;
            }
        };
        let Some(event) = events.iter().find(|e| self.fib.disagrees(e)) else {
            return;
        };
        let now = Instant::now();
        let quiet = self.pacing.quiet;
        let writing = self.last_write.is_some_and(|t| now - t < quiet);
        if writing && *event == KernelEvent::Overrun {
            self.repair_when_quiet = true;
            self.repair_at = Some(self.repair_at.map_or(now + quiet, |at| at.max(now + quiet)));
        } else {
            tracing::debug!(?event, "kernel routes differ from ours");
            self.repair_at.get_or_insert(now + self.pacing.repair_delay);
        }
    }

    /// Compare the kernel's table with ours and put back what differs.
    fn repair(&mut self, what: &str) {
        match tokio::task::block_in_place(|| self.fib.resync()) {
            Ok(c) if c.added + c.replaced + c.deleted > 0 => {
                tracing::warn!(
                    added = c.added,
                    replaced = c.replaced,
                    deleted = c.deleted,
                    "{what}"
                );
                (self.report)(Report::Repaired(c.added + c.replaced + c.deleted));
            }
            Ok(_) => {}
            Err(e) => tracing::error!("FIB resync failed: {e}"),
        }
    }

    /// Delete the adopted routes nobody claimed.
    fn sweep(&mut self, learned: bool) {
        self.swept = true;
        let mut stale = 0;
        for dest in self.fib.installed().keys() {
            if !self.claimed.contains(&dest) && !self.pending.contains_key(&dest) {
                self.pending.insert(dest, None);
                stale += 1;
            }
        }
        self.claimed = BTreeSet::new();
        if stale > 0 {
            tracing::info!(stale, "sweeping routes of the previous run");
        }
        if learned || stale > 0 {
            self.write_at.get_or_insert_with(Instant::now);
        }
    }

    /// Write what is pending, in slices taken out of the pending map.
    /// Between slices, batches that arrived meanwhile are translated into
    /// it: a full table arrives ten times faster than the kernel takes it,
    /// and left in the channel each change is the caller's record (a best
    /// path and its attributes) instead of a packed word here.
    fn write(&mut self, changes: &mut mpsc::UnboundedReceiver<B>) {
        let started = std::time::Instant::now();
        let pending_bytes = self.pending.heap_bytes();
        let blind = self.pending.len() >= self.pacing.blind_write && self.monitor.pause().is_ok();
        // A pass writes at most what was pending when it began (in
        // slices): steady churn must not keep it from the loop's other
        // work. What came meanwhile goes in the next pass.
        let mut slices = self.pending.len().div_ceil(WRITE_SLICE);
        let (mut done, mut retry) = (Changes::default(), Vec::new());
        let mut failed = false;
        while slices > 0 {
            slices -= 1;
            let slice = self.pending.take(WRITE_SLICE);
            let result = tokio::task::block_in_place(|| {
                self.fib
                    .apply_changes(slice.iter().map(|(dest, want)| (*dest, want)))
            });
            match result {
                Ok(c) => {
                    let refused: HashSet<Destination> =
                        c.refused.iter().map(|r| r.destination).collect();
                    retry.extend(slice.into_iter().filter(|(d, _)| refused.contains(d)));
                    done.added += c.added;
                    done.replaced += c.replaced;
                    done.deleted += c.deleted;
                    done.refused.extend(c.refused);
                }
                Err(e) => {
                    tracing::error!("FIB write failed: {e}");
                    retry.extend(slice);
                    failed = true;
                    break;
                }
            }
            while let Ok(batch) = changes.try_recv() {
                self.want(batch);
            }
        }
        // Changes that came during the pass (or that its bound left) get
        // a pass of their own, as a batch would.
        if !failed && !self.pending.is_empty() {
            self.write_at
                .get_or_insert_with(|| Instant::now() + self.pacing.batch_delay);
        }
        // Refused routes, and a failed write's, are tried again with the
        // next pass (not by themselves: a route the kernel refuses would
        // be refused every 50 ms), unless a newer change replaced them.
        for (dest, want) in retry {
            if !self.pending.contains_key(&dest) {
                self.pending.insert(dest, want);
            }
        }
        // Give back what a full table's burst took.
        self.pending.shrink_to(1024);
        if blind {
            if let Err(e) = self.monitor.resume() {
                tracing::warn!("route monitor: {e}; relying on the periodic check");
            }
            self.repair_when_quiet = true;
        }
        let now = Instant::now();
        self.last_write = Some(now);
        if self.repair_when_quiet {
            self.repair_at = Some(now + self.pacing.quiet);
        }
        if !done.refused.is_empty() {
            tracing::warn!(refused = done.refused.len(), first = ?done.refused.first(), "kernel refused routes");
        }
        let report = Report::Write {
            duration: started.elapsed(),
            installed: self.fib.installed().len(),
            installed_bytes: self.fib.installed().heap_bytes(),
            pending_bytes,
            added: done.added,
            replaced: done.replaced,
            deleted: done.deleted,
            refused: done.refused.len(),
            failed,
        };
        (self.report)(report);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
