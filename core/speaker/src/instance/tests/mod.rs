//! The instance driven without a runtime: simulated time, recording
//! links, no sockets. Each test runs in milliseconds whatever the timers
//! it walks through.

mod sim;
mod units;

use std::time::Duration;

use sim::{Sim, prefix};

use crate::instance::Request;
use crate::instance::advertise::{BACKLOG_HIGH, BACKLOG_POLL};
use crate::session::DownReason;

/// We restarted with our forwarding state kept: peers that kept our
/// routes hear nothing — not even End-of-RIB — until every peer has sent
/// us its table, then they get all of it at once (RFC 4724 §4.1).
#[test]
fn a_restarting_speaker_defers_its_table_until_every_peer_sent_its_own() {
    let mut sim = Sim::new();
    sim.add_peer(1, 65001, true);
    sim.add_peer(2, 65002, true);
    sim.request(Request::Recover(Duration::from_secs(60)));
    assert!(sim.link(1).log.borrow().restarting, "OPENs carry the R bit");

    sim.establish(1, 120, false);
    sim.announce(1, &["203.0.113.0/24"]);
    sim.end_of_rib(1);
    sim.finish();
    assert_eq!(
        sim.take_received(1),
        Default::default(),
        "peer 1 kept our routes: it waits for the whole table"
    );

    sim.advance(Duration::from_secs(2));
    sim.establish(2, 120, false);
    sim.announce(2, &["198.51.100.0/24"]);
    sim.finish();
    assert_eq!(sim.take_received(2), Default::default());
    assert_eq!(sim.take_received(1), Default::default(), "peer 2 not done");

    sim.end_of_rib(2);
    sim.finish();
    let to_1 = sim.take_received(1);
    assert_eq!(to_1.announced, [prefix("198.51.100.0/24")]);
    assert_eq!(to_1.end_of_rib, 1);
    let to_2 = sim.take_received(2);
    assert_eq!(to_2.announced, [prefix("203.0.113.0/24")]);
    assert_eq!(to_2.end_of_rib, 1);
    assert!(!sim.link(1).log.borrow().restarting, "the R bit is cleared");
}

/// A peer that never sends its table does not hold the others' hostage:
/// at the recovery limit the deferred tables go out without it.
#[test]
fn a_restarting_speaker_sends_its_table_at_the_limit_without_a_silent_peer() {
    let mut sim = Sim::new();
    sim.add_peer(1, 65001, true);
    sim.add_peer(2, 65002, true);
    sim.request(Request::Recover(Duration::from_secs(30)));
    sim.establish(1, 120, false);
    sim.announce(1, &["203.0.113.0/24"]);
    sim.end_of_rib(1);
    sim.finish();

    sim.advance(Duration::from_millis(29_900));
    assert_eq!(sim.take_received(1).end_of_rib, 0, "before the limit");
    sim.advance(Duration::from_millis(200));
    assert_eq!(sim.take_received(1).end_of_rib, 1, "at the limit");
    assert!(sim.core.recovery.is_none());
}

/// Peer 1 (restart time 120 s) sent two routes, then its connection was
/// lost without a NOTIFICATION.
fn a_graceful_peer_lost_with_two_routes() -> Sim {
    let mut sim = Sim::new();
    sim.add_peer(1, 65001, true);
    sim.establish(1, 120, false);
    sim.announce(1, &["203.0.113.0/24", "198.51.100.0/24"]);
    sim.finish();
    sim.down(1, DownReason::ConnectionLost);
    sim.finish();
    sim
}

/// As helper: a peer that restarts gracefully keeps its routes as stale
/// until its restart time runs out, and not a moment longer.
#[test]
fn a_helper_keeps_stale_routes_until_the_restart_timer() {
    let mut sim = a_graceful_peer_lost_with_two_routes();
    assert_eq!(sim.routes().len(), 2, "kept as stale");

    sim.advance(Duration::from_secs(119));
    assert_eq!(sim.routes().len(), 2, "within the restart time");
    sim.advance(Duration::from_secs(2));
    assert!(
        sim.routes().is_empty(),
        "swept when the restart timer fired"
    );
}

/// As helper, the peer is back: what it sends again stays, what it does
/// not is swept at its End-of-RIB, and the old restart timer is void.
#[test]
fn a_helper_sweeps_what_a_returning_peer_did_not_send_again_at_end_of_rib() {
    let mut sim = a_graceful_peer_lost_with_two_routes();
    sim.advance(Duration::from_secs(10));
    sim.establish(1, 120, false);
    sim.announce(1, &["203.0.113.0/24"]);
    sim.finish();
    assert_eq!(sim.routes().len(), 2, "stale routes wait for End-of-RIB");
    sim.end_of_rib(1);
    sim.finish();
    assert_eq!(sim.routes(), [prefix("203.0.113.0/24")]);
    sim.advance(Duration::from_secs(400));
    assert_eq!(
        sim.routes(),
        [prefix("203.0.113.0/24")],
        "no timer sweeps it later"
    );
}

/// A hundred sessions ending in one batch leave in one walk: the FIB gets
/// one batch of changes, and a peer that stays is sent each withdrawal
/// once.
#[test]
fn a_hundred_sessions_ending_together_leave_in_one_batch() {
    let mut sim = Sim::new();
    sim.add_peer(200, 65200, false);
    sim.establish(200, 0, false);
    for n in 1..=100 {
        sim.add_peer(n, 65000 + u32::from(n), false);
        sim.establish(n, 0, false);
        let own = format!("10.{n}.0.0/16");
        sim.announce(n, &[own.as_str(), "10.255.0.0/16"]);
    }
    sim.finish();
    assert_eq!(sim.routes().len(), 101);
    sim.best_changes();
    let before = sim.take_received(200);
    assert_eq!(before.announced.len(), 101);

    for n in 1..=100 {
        sim.down(n, DownReason::ConnectionLost);
    }
    assert_eq!(
        sim.routes().len(),
        101,
        "nothing goes before the batch ends"
    );
    sim.finish();
    assert!(sim.routes().is_empty());
    let batches = sim.best_changes();
    assert_eq!(batches.len(), 1, "one batch for the FIB");
    assert_eq!(batches[0].len(), 101);
    assert!(batches[0].iter().all(|c| c.best.is_empty()));
    let after = sim.take_received(200);
    assert_eq!(after.withdrawn.len(), 101, "each prefix withdrawn once");
    assert!(after.announced.is_empty());
}

/// A peer that does not read is sent nothing more; once it has read its
/// backlog it gets what changed meanwhile, as it stands now.
#[test]
fn a_slow_peer_is_held_back_then_sent_what_changed() {
    let mut sim = Sim::new();
    sim.add_peer(1, 65001, false);
    sim.add_peer(2, 65002, false);
    sim.establish(1, 0, false);
    sim.establish(2, 0, false);
    sim.finish();
    assert_eq!(sim.take_received(2).end_of_rib, 1);

    sim.link(2).log.borrow_mut().backlog = BACKLOG_HIGH + 1;
    sim.announce(1, &["203.0.113.0/24", "198.51.100.0/24"]);
    sim.finish();
    assert_eq!(sim.take_received(2), Default::default(), "held back");
    assert!(sim.core.counts(sim.now).peers[&sim::addr(2)].behind);
    sim.withdraw(1, &["198.51.100.0/24"]);
    sim.finish();
    sim.advance(BACKLOG_POLL * 10);
    assert_eq!(sim.take_received(2), Default::default(), "still behind");

    sim.link(2).log.borrow_mut().backlog = 0;
    sim.advance(BACKLOG_POLL);
    let caught_up = sim.take_received(2);
    assert_eq!(caught_up.announced, [prefix("203.0.113.0/24")]);
    assert!(!caught_up.announced.contains(&prefix("198.51.100.0/24")));
    assert!(!sim.core.counts(sim.now).peers[&sim::addr(2)].behind);
    assert!(sim.core.poll_timeout().is_none(), "no timer left running");
}
