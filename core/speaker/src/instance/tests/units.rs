//! Pure helpers of the instance, unit by unit.
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use smallvec::SmallVec;
use starling_wire::notification::code;
use starling_wire::{NextHop, Notification, PathAttributes, Prefix};

use crate::instance::core::keep_last_per_slot;
use crate::instance::export_cache::ExportCache;
use crate::instance::peer::SlotSet;
use crate::instance::recovery::{keeps_routes, retry_keeps_stale};
use crate::rib::export::{ExportTarget, NextHopMode};
use crate::rib::{BestChange, PeerInfo, Rib, RibConfig, RouteAttrs, Slot};

fn change(prefix: &str, slot: Slot, paths: usize) -> BestChange {
    let route = Arc::new(RouteAttrs {
        attrs: PathAttributes::default(),
        next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
    });
    let mut rib = Rib::new(RibConfig::new(64512, Ipv4Addr::new(192, 0, 2, 254)));
    let prefix: Prefix = prefix.parse().expect("prefix");
    let best = if paths == 0 {
        SmallVec::new()
    } else {
        rib.originate(prefix, route.attrs.clone(), route.next_hop)
            .remove(0)
            .best
    };
    BestChange {
        prefix,
        slot,
        best,
        best_changed: true,
    }
}

#[test]
fn a_batch_keeps_each_slots_last_change_in_order() {
    let mut changes = vec![
        change("10.0.0.0/8", 1, 1),
        change("10.1.0.0/16", 2, 1),
        change("10.0.0.0/8", 1, 0),
        // The prefix came back under a new slot: its withdrawal (slot
        // 1) must still go out first.
        change("10.0.0.0/8", 3, 1),
        change("10.1.0.0/16", 2, 0),
    ];
    keep_last_per_slot(&mut changes);
    let kept: Vec<(Slot, usize)> = changes.iter().map(|c| (c.slot, c.best.len())).collect();
    assert_eq!(kept, [(1, 0), (3, 1), (2, 0)]);
}

#[test]
fn a_kept_change_inherits_a_dropped_selection_change() {
    // The best path moved, then (ADD-PATH tracking) a path that is not
    // selected changed: the FIB must still hear of the first.
    let mut later = change("10.0.0.0/8", 1, 1);
    later.best_changed = false;
    let mut changes = vec![change("10.0.0.0/8", 1, 1), later];
    keep_last_per_slot(&mut changes);
    assert_eq!(changes.len(), 1);
    assert!(changes[0].best_changed);
}

#[test]
fn which_session_ends_keep_a_graceful_peers_routes() {
    use crate::session::DownReason;
    let cease = |subcode| Notification::new(code::CEASE, subcode);
    let lost = DownReason::ConnectionLost;
    assert!(keeps_routes(false, &lost));
    let collision = DownReason::Received(cease(code::cease::CONNECTION_COLLISION));
    assert!(keeps_routes(true, &collision));
    assert!(
        !keeps_routes(false, &collision),
        "no N bit: any NOTIFICATION ends it"
    );
    let hard = DownReason::Received(cease(code::cease::HARD_RESET));
    assert!(!keeps_routes(true, &hard));
    let deconfigured = DownReason::Sent(cease(code::cease::PEER_DECONFIGURED));
    assert!(!keeps_routes(true, &deconfigured));
    let hold = DownReason::Received(Notification::new(code::HOLD_TIMER_EXPIRED, 0));
    assert!(keeps_routes(true, &hold));
}

#[test]
fn which_failed_reconnections_keep_a_restarting_peers_routes() {
    use crate::session::DownReason;
    let cease = |subcode| DownReason::Received(Notification::new(code::CEASE, subcode));
    assert!(retry_keeps_stale(&DownReason::ConnectionLost));
    assert!(retry_keeps_stale(&cease(code::cease::CONNECTION_REJECTED)));
    let open_error = Notification::new(code::OPEN_MESSAGE, code::open::BAD_PEER_AS);
    assert!(retry_keeps_stale(&DownReason::Sent(open_error)));
    for gone in [
        code::cease::ADMIN_SHUTDOWN,
        code::cease::PEER_DECONFIGURED,
        code::cease::HARD_RESET,
    ] {
        assert!(!retry_keeps_stale(&cease(gone)), "Cease/{gone}");
    }
}

#[test]
fn slot_sets() {
    let mut set = SlotSet::default();
    assert!(!set.contains(5));
    set.insert(5);
    set.insert(200);
    assert!(set.contains(5) && set.contains(200));
    assert!(!set.contains(6) && !set.contains(64) && !set.contains(100_000));
}

#[test]
fn peers_that_export_alike_share_a_class() {
    let info = |n: u8| PeerInfo {
        address: IpAddr::from([192, 0, 2, n]),
        router_id: Ipv4Addr::new(198, 51, 100, n),
        asn: 64512,
        ebgp: false,
        rr_client: true,
        allow_own_as: 0,
    };
    let target = |n: u8| ExportTarget {
        info: info(n),
        next_hop: NextHopMode::Auto,
        local_v4: Some(Ipv4Addr::new(192, 0, 2, 254)),
        local_v6: None,
        local_as: None,
        extended_next_hop: false,
        shared_subnet: None,
    };
    let mut cache = ExportCache::default();
    assert_eq!(cache.class(&target(1)), cache.class(&target(2)));
    let mut non_client = target(3);
    non_client.info.rr_client = false;
    assert_ne!(cache.class(&target(1)), cache.class(&non_client));
    // A third-party next hop depends on the peer's own address.
    let mut on_subnet = |n| {
        let mut t = target(n);
        t.shared_subnet = Some((IpAddr::from([192, 0, 2, 0]), 24));
        cache.class(&t)
    };
    assert_ne!(on_subnet(1), on_subnet(2));
}
