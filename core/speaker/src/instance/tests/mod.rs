//! The instance driven without a runtime: simulated time, recording
//! links, no sockets. Each test runs in milliseconds whatever the timers
//! it walks through.

mod sim;
mod units;

use std::time::Duration;

use sim::{Sim, prefix};

use crate::instance::Request;
use crate::instance::advertise::{BACKLOG_HIGH, BACKLOG_POLL};
use crate::instance::events::DEPARTURE_SLICE;
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

/// A full table leaves a slice at a time: each step's changes are out to
/// the FIB and the peers before the next is made, so they are never all
/// held at once; any other input first walks the rest.
#[test]
fn a_departure_goes_out_a_slice_at_a_time() {
    let mut sim = Sim::new();
    sim.add_peer(200, 65200, false);
    sim.establish(200, 0, false);
    sim.add_peer(1, 65001, false);
    sim.establish(1, 0, false);
    let total = DEPARTURE_SLICE + 100;
    let table: Vec<String> = (0..total)
        .map(|i| format!("{}.{}.{}.0/24", 10 + i / 65_536, (i / 256) % 256, i % 256))
        .collect();
    let table: Vec<&str> = table.iter().map(String::as_str).collect();
    for chunk in table.chunks(4_096) {
        sim.announce(1, chunk);
    }
    sim.finish();
    assert_eq!(sim.routes().len(), total);
    sim.best_changes();
    sim.take_received(200);

    sim.down(1, DownReason::ConnectionLost);
    assert!(sim.core.step_batch(), "more than one step");
    assert!(sim.core.busy());
    let first = sim.best_changes();
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].len(),
        DEPARTURE_SLICE,
        "the first slice, out already"
    );
    assert_eq!(sim.take_received(200).withdrawn.len(), DEPARTURE_SLICE);
    assert_eq!(sim.routes().len(), 100, "the rest still in the table");

    // Peer 200 sends a route mid-walk: the walk ends first.
    sim.announce(200, &["192.0.2.0/24"]);
    assert!(!sim.core.busy());
    sim.finish();
    assert_eq!(sim.routes(), vec![prefix("192.0.2.0/24")]);
    let rest: usize = sim.best_changes().iter().map(Vec::len).sum();
    assert_eq!(rest, 101, "the last 100 withdrawals, then the new route");
    assert_eq!(sim.take_received(200).withdrawn.len(), 100);
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

/// Rejects every import of 198.51.100.0/24, accepts the rest.
#[derive(Debug)]
struct RejectDocumentation2;

impl crate::policy::RoutePolicy for RejectDocumentation2 {
    fn evaluate(
        &self,
        _peer: std::net::IpAddr,
        _direction: crate::policy::Direction,
        routes: &[crate::policy::Candidate<'_>],
    ) -> Result<Vec<crate::policy::Verdict>, String> {
        let rejected = prefix("198.51.100.0/24");
        Ok(routes
            .iter()
            .map(|c| {
                if c.prefix == rejected {
                    crate::policy::Verdict::Reject
                } else {
                    crate::policy::Verdict::Accept
                }
            })
            .collect())
    }
}

/// A route monitor (BMP) is shown a snapshot, then each UPDATE as sent
/// and as import policy left it, the Loc-RIB's changes and the session's
/// end; nothing is queued while nobody watches.
#[test]
fn a_monitor_sees_the_snapshot_then_pre_and_post_policy_and_the_loc_rib() {
    use crate::instance::{MonitorEvent, MonitoredRoute};
    let mut sim = Sim::new();
    sim.request(Request::SetRoutePolicy {
        policy: Some(std::sync::Arc::new(RejectDocumentation2)),
        refresh: Vec::new(),
        keep_exports: false,
    });
    sim.add_peer(1, 65001, false);
    sim.establish(1, 0, false);
    sim.announce(1, &["203.0.113.0/24"]);
    sim.finish();
    assert!(sim.core.poll_monitor().is_empty(), "nobody watches yet");

    let before = sim.link(1).log.borrow().sent.len();
    let snapshot = sim.core.monitor_snapshot();
    sim.core.start_monitoring();
    let kinds: Vec<&str> = snapshot
        .iter()
        .map(|e| match e {
            MonitorEvent::PeerUp { .. } => "up",
            MonitorEvent::PostPolicy { .. } => "post",
            MonitorEvent::LocRib { .. } => "loc",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["up", "post", "loc"]);
    let MonitorEvent::PeerUp { peer, negotiated } = &snapshot[0] else {
        unreachable!()
    };
    assert_eq!((peer.asn, peer.address), (65001, sim::addr(1)));
    assert_eq!(negotiated.received_open.asn(), 65001);
    // For the pre-policy view the peer is asked for its routes again.
    let asked = sim.link(1).log.borrow().sent.len() - before;
    assert_eq!(asked, 1, "one ROUTE-REFRESH");

    sim.announce(1, &["192.0.2.0/24", "198.51.100.0/24"]);
    sim.withdraw(1, &["203.0.113.0/24"]);
    sim.finish();
    let events = sim.core.poll_monitor();
    let post: Vec<&MonitoredRoute> = events
        .iter()
        .filter_map(|e| match e {
            MonitorEvent::PostPolicy { routes, .. } => Some(routes),
            _ => None,
        })
        .flatten()
        .collect();
    let shown = |p: &str| {
        post.iter()
            .find(|r| r.prefix == prefix(p))
            .map(|r| r.route.is_some())
    };
    assert_eq!(shown("192.0.2.0/24"), Some(true));
    assert_eq!(
        shown("198.51.100.0/24"),
        Some(false),
        "rejected: withdrawn post-policy"
    );
    assert_eq!(shown("203.0.113.0/24"), Some(false));
    let pre = events
        .iter()
        .filter(|e| matches!(e, MonitorEvent::PrePolicy { .. }))
        .count();
    assert_eq!(pre, 2, "each UPDATE as received");
    let loc: Vec<(starling_wire::Prefix, bool)> = events
        .iter()
        .filter_map(|e| match e {
            MonitorEvent::LocRib { routes } => Some(routes),
            _ => None,
        })
        .flatten()
        .map(|r| (r.prefix, r.route.is_some()))
        .collect();
    assert_eq!(
        loc,
        [
            (prefix("192.0.2.0/24"), true),
            (prefix("203.0.113.0/24"), false)
        ]
    );

    sim.down(1, DownReason::ConnectionLost);
    sim.finish();
    let events = sim.core.poll_monitor();
    assert!(events.iter().any(|e| matches!(
        e,
        MonitorEvent::PeerDown {
            reason: Some(DownReason::ConnectionLost),
            ..
        }
    )));
    sim.core.stop_monitoring();
    sim.establish(1, 0, false);
    assert!(sim.core.poll_monitor().is_empty());
}

/// A session with no source address configured (Calico's
/// `sourceAddress: None`) still exports what needs next hop self: the
/// next hop is the address the connection has.
#[test]
fn next_hop_self_without_a_source_address_is_the_connections_address() {
    let mut sim = Sim::new();
    sim.add_peer_without_source(1, 65001);
    sim.add_peer(2, 65002, false);
    sim.establish_from(1, std::net::IpAddr::from([192, 0, 2, 200]));
    sim.establish(2, 0, false);
    sim.take_received(1);
    sim.announce(2, &["203.0.113.0/24"]);
    sim.finish();
    let received = sim.take_received(1);
    assert_eq!(received.announced, [prefix("203.0.113.0/24")]);
    assert_eq!(
        received.next_hops,
        [std::net::Ipv4Addr::new(192, 0, 2, 200)]
    );
}

/// A route that needs us as its next hop, on a session with no address
/// of its family to give, is withheld, counted each time export decides
/// so, and logged once per session; routes of the other family still go.
#[test]
fn a_route_with_no_next_hop_to_give_is_withheld_counted_and_logged_once() {
    use starling_wire::{Origin, PathAttributes};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let warnings = || {
        String::from_utf8_lossy(&log.0.lock().expect("log"))
            .matches("no next hop to give")
            .count()
    };
    tracing::subscriber::with_default(subscriber, || {
        let mut sim = Sim::new();
        // An IPv4 session carrying IPv6 too, from a node with no IPv6
        // address.
        sim.add_dual_stack_peer(1, 65001);
        sim.establish(1, 0, false);
        sim.take_received(1);
        let attrs = || {
            Box::new(PathAttributes {
                origin: Some(Origin::Igp),
                ..PathAttributes::default()
            })
        };
        sim.request(Request::Originate(prefix("2001:db8:1::/48"), attrs()));
        sim.request(Request::Originate(prefix("198.51.100.0/24"), attrs()));
        sim.finish();
        let received = sim.take_received(1);
        assert_eq!(received.announced, [prefix("198.51.100.0/24")]);
        let without = |sim: &Sim| sim.core.counts(sim.now).peers[&sim::addr(1)].without_next_hop;
        assert_eq!(without(&sim), 1);
        sim.request(Request::Originate(prefix("2001:db8:2::/48"), attrs()));
        sim.finish();
        assert!(sim.take_received(1).announced.is_empty());
        assert_eq!(without(&sim), 2);
        assert_eq!(warnings(), 1, "once per session");
        // A new session walks the table again: counted, and said once more.
        sim.down(1, DownReason::ConnectionLost);
        sim.establish(1, 0, false);
        sim.finish();
        assert_eq!(without(&sim), 4);
        assert_eq!(warnings(), 2);
    });
}
