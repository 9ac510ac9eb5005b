//! The instance's timers as data: deadlines it hands the shell, which
//! sleeps until the earliest and reports back. Nothing here reads the
//! clock.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// A peer's restart (or stale-path) timer, of this generation.
    Restart(IpAddr, u64),
    /// Export to this peer failed earlier: evaluate everything again.
    RetryExport(IpAddr),
    /// Import from this peer failed earlier: ask for its routes again.
    RetryImport(IpAddr),
    /// See whether a peer that fell behind has read its backlog.
    Backlog(IpAddr),
    /// See whether our own restart recovery can end.
    Recovery,
}

/// Pending timers, earliest first; ties in the order they were set.
#[derive(Debug, Default)]
pub(super) struct Timers {
    queue: BTreeMap<(Instant, u64), Timer>,
    next: u64,
}

impl Timers {
    pub(super) fn set(&mut self, at: Instant, timer: Timer) {
        self.queue.insert((at, self.next), timer);
        self.next += 1;
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// The earliest timer due at `now`, removed.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove())
    }
}
