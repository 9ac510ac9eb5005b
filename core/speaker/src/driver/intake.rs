//! A peer's UPDATEs between its connection and the RIB: bounded, so a
//! peer that sends faster than the RIB takes routes waits in TCP.

use std::sync::Arc;

use starling_wire::ParsedUpdate;

/// Prefixes a peer has sent that have not been applied yet: past this
/// many its connection is not read (TCP holds the rest, and the peer
/// waits), so a peer that sends faster than the RIB takes routes costs
/// socket buffers, not a growing queue of decoded UPDATEs.
pub(super) const INTAKE_HIGH: usize = 65_536;

/// A peer's UPDATEs between its connection and the RIB.
#[derive(Debug, Default)]
pub(super) struct Intake {
    pub(super) prefixes: std::sync::atomic::AtomicUsize,
    pub(super) drained: tokio::sync::Notify,
}

/// One UPDATE's share of its peer's intake, given back when dropped.
#[derive(Debug, Clone)]
pub struct InputTicket {
    /// Held only to be dropped.
    pub(super) _share: Arc<TicketInner>,
}

#[derive(Debug)]
pub(super) struct TicketInner {
    pub(super) intake: Arc<Intake>,
    pub(super) prefixes: usize,
}

impl Drop for TicketInner {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let before = self
            .intake
            .prefixes
            .fetch_sub(self.prefixes, Ordering::Relaxed);
        if before > INTAKE_HIGH && before - self.prefixes <= INTAKE_HIGH {
            self.intake.drained.notify_one();
        }
    }
}

impl InputTicket {
    /// A ticket of no intake, for driving the instance without peer tasks
    /// (tests, fuzzing).
    pub(crate) fn detached(update: &ParsedUpdate) -> Self {
        Arc::new(Intake::default()).admit(update)
    }
}

impl Intake {
    /// A ticket for `update`, counted in.
    pub(super) fn admit(self: &Arc<Self>, update: &ParsedUpdate) -> InputTicket {
        let u = &update.update;
        let prefixes = 1
            + u.nlri.len()
            + u.withdrawn.len()
            + u.mp_reach.as_ref().map_or(0, |m| m.nlri.len())
            + u.mp_unreach.as_ref().map_or(0, |m| m.nlri.len());
        self.prefixes
            .fetch_add(prefixes, std::sync::atomic::Ordering::Relaxed);
        InputTicket {
            _share: Arc::new(TicketInner {
                intake: self.clone(),
                prefixes,
            }),
        }
    }

    /// Wait until the RIB has taken in enough of what was read.
    pub(super) async fn room(&self) {
        while self.prefixes.load(std::sync::atomic::Ordering::Relaxed) > INTAKE_HIGH {
            self.drained.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use starling_wire::{Nlri, Prefix, Update};

    use super::*;

    /// An UPDATE announcing `n` prefixes.
    fn update(n: usize) -> ParsedUpdate {
        let nlri = (0..n)
            .map(|i| {
                let addr = IpAddr::from((0x0a00_0000 + i as u32).to_be_bytes());
                Nlri::new(Prefix::new(addr, 32).expect("prefix"))
            })
            .collect();
        ParsedUpdate::from(Update {
            nlri,
            ..Update::default()
        })
    }

    #[tokio::test]
    pub(super) async fn reading_waits_while_the_rib_holds_too_many_of_a_peers_prefixes() {
        let intake = Arc::new(Intake::default());
        let first = intake.admit(&update(INTAKE_HIGH / 2));
        let room = || tokio::time::timeout(Duration::from_millis(50), intake.room());
        assert!(room().await.is_ok(), "half full: reading goes on");
        let second = intake.admit(&update(INTAKE_HIGH / 2));
        let copy = second.clone();
        assert!(room().await.is_err(), "over the limit: reading waits");
        drop(second);
        assert!(room().await.is_err(), "a clone still holds its share");
        drop(copy);
        assert!(room().await.is_ok(), "applied: reading goes on");
        drop(first);
        assert_eq!(
            intake.prefixes.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}
