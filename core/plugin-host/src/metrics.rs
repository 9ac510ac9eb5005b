//! Per-plugin call metrics: calls, errors by kind, latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What went wrong, as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    Load,
    Incompatible,
    Timeout,
    OutOfMemory,
    Trap,
    Invalid,
    Failed,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Load,
        ErrorKind::Incompatible,
        ErrorKind::Timeout,
        ErrorKind::OutOfMemory,
        ErrorKind::Trap,
        ErrorKind::Invalid,
        ErrorKind::Failed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Load => "load",
            ErrorKind::Incompatible => "incompatible",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::Trap => "trap",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Failed => "failed",
        }
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [
    0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
];

/// Counters of one plugin, shared by every evaluation of it.
#[derive(Debug, Default)]
pub struct PluginMetrics {
    calls: AtomicU64,
    errors: [AtomicU64; 7],
    latency_buckets: [AtomicU64; 10],
    latency_sum_nanos: AtomicU64,
    dropped_log_lines: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    pub calls: u64,
    pub errors: Vec<(ErrorKind, u64)>,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`].
    pub latency_buckets: Vec<(f64, u64)>,
    pub latency_sum: Duration,
    pub dropped_log_lines: u64,
}

impl MetricsSnapshot {
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }
}

impl PluginMetrics {
    pub(crate) fn call(&self, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_nanos.fetch_add(
            took.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    pub(crate) fn error(&self, kind: ErrorKind) {
        let i = ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped_log_line(&self) {
        self.dropped_log_lines.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            errors: ErrorKind::ALL
                .iter()
                .zip(&self.errors)
                .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
                .collect(),
            latency_buckets: LATENCY_BUCKETS
                .iter()
                .zip(&self.latency_buckets)
                .map(|(b, n)| (*b, n.load(Ordering::Relaxed)))
                .collect(),
            latency_sum: Duration::from_nanos(self.latency_sum_nanos.load(Ordering::Relaxed)),
            dropped_log_lines: self.dropped_log_lines.load(Ordering::Relaxed),
        }
    }
}
