//! The best-path changes the instance hands the FIB, and how it learns
//! that the FIB took them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::rib::BestChange;

/// The instance's best-path changes, a batch at a time, for the FIB
/// programmer.
pub type BestPathStream = mpsc::UnboundedReceiver<BestChanges>;

/// One batch of selection changes, oldest first. Dropping it tells the
/// instance that the FIB has taken it: between the steps of a full
/// table's departure the instance waits for that, so that the steps
/// pass through one or two at a time instead of piling up in the
/// channel (a million changes are 60 MB).
#[derive(Debug)]
pub struct BestChanges {
    changes: Vec<BestChange>,
    _taken: Taken,
}

impl std::ops::Deref for BestChanges {
    type Target = [BestChange];

    fn deref(&self) -> &[BestChange] {
        &self.changes
    }
}

impl<'a> IntoIterator for &'a BestChanges {
    type Item = &'a BestChange;
    type IntoIter = std::slice::Iter<'a, BestChange>;

    fn into_iter(self) -> Self::IntoIter {
        self.changes.iter()
    }
}

/// The instance's end of the stream: sends batches and counts those not
/// yet taken.
#[derive(Debug)]
pub(super) struct BestSender {
    tx: mpsc::UnboundedSender<BestChanges>,
    in_flight: Arc<InFlight>,
}

impl BestSender {
    pub(super) fn new(tx: mpsc::UnboundedSender<BestChanges>) -> Self {
        Self {
            tx,
            in_flight: Arc::default(),
        }
    }

    pub(super) fn send(&self, changes: Vec<BestChange>) {
        if self.tx.send(self.in_flight.batch(changes)).is_err() {
            tracing::debug!("nobody takes best-path changes");
        }
    }

    /// See [`InFlight::wait_until_at_most`].
    pub(super) async fn wait_until_at_most(&self, most: usize, limit: Duration) {
        self.in_flight.wait_until_at_most(most, limit).await;
    }
}

/// Batches sent and not yet dropped.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    taken: Notify,
}

#[derive(Debug)]
struct Taken(Arc<InFlight>);

impl Drop for Taken {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.taken.notify_waiters();
    }
}

impl InFlight {
    /// `changes` as a batch this counter follows.
    fn batch(self: &Arc<Self>, changes: Vec<BestChange>) -> BestChanges {
        self.count.fetch_add(1, Ordering::AcqRel);
        BestChanges {
            changes,
            _taken: Taken(Arc::clone(self)),
        }
    }

    /// Wait until at most `most` batches are untaken, or `limit` has
    /// passed: a FIB that is stuck, or a receiver nobody reads, slows a
    /// departure down but never stops it.
    async fn wait_until_at_most(&self, most: usize, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let taken = self.taken.notified();
            tokio::pin!(taken);
            // Registered before the count is read: a drop in between
            // still wakes us.
            taken.as_mut().enable();
            if self.count.load(Ordering::Acquire) <= most {
                return;
            }
            if tokio::time::timeout_at(deadline, taken).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_counts_until_it_is_dropped() {
        let in_flight = Arc::new(InFlight::default());
        let first = in_flight.batch(Vec::new());
        let second = in_flight.batch(Vec::new());
        let waiting = {
            let in_flight = Arc::clone(&in_flight);
            tokio::spawn(async move {
                in_flight
                    .wait_until_at_most(1, Duration::from_secs(60))
                    .await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "two batches are out");
        drop(first);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("woken when one was taken")
            .expect("task");
        drop(second);
        assert_eq!(in_flight.count.load(Ordering::Acquire), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn nobody_taking_batches_delays_a_waiter_no_longer_than_its_limit() {
        let in_flight = Arc::new(InFlight::default());
        let _kept = in_flight.batch(Vec::new());
        let started = tokio::time::Instant::now();
        in_flight
            .wait_until_at_most(0, Duration::from_millis(100))
            .await;
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }
}
