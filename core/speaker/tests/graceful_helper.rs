//! Graceful restart as the helper (RFC 4724 §4.2), over live sessions:
//! a restarting peer's routes stay, stale, through failed attempts to
//! reconnect (its listener up before it knows its peers, say), and go only
//! at its End-of-RIB if it does not announce them again.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::raw::{RawPeer, announce, end_of_rib, graceful_restart};
use common::{free_port, passive_peer, routes, wait_active, wait_routes};
use starling_speaker::config::GracefulRestartConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;

const ME: u8 = 180;
const X: [u8; 4] = [127, 0, 0, 181];

/// Connect from X, send an OPEN, read Starling's OPEN and hang up: a
/// session that fails in OpenSent, as one to a daemon still starting.
async fn failed_attempt(listen: SocketAddr) {
    let peer = RawPeer::open_only(X, listen, graceful_restart(true)).await;
    assert!(peer.their_open.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_routes_outlive_failed_reconnections_until_end_of_rib() {
    let listen = SocketAddr::from(([127, 0, 0, ME], free_port([127, 0, 0, ME])));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, ME)),
        &[listen],
    )
    .await
    .expect("instance");
    let mut cfg = passive_peer(ME, X[3]);
    cfg.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        ..GracefulRestartConfig::default()
    });
    instance.add_peer(cfg, PeerPolicy::default());
    wait_active(&instance, 1).await;

    let mut x = RawPeer::establish_offering(X, listen, graceful_restart(false)).await;
    x.send(&announce("203.0.113.0/24", Ipv4Addr::from(X))).await;
    x.send(&end_of_rib()).await;
    wait_routes(&instance, &["203.0.113.0/24"], Duration::from_secs(10)).await;

    // X crashes: its route stays, stale. Twice it fails to come back.
    drop(x);
    for _ in 0..2 {
        wait_active(&instance, 1).await;
        failed_attempt(listen).await;
    }

    // X is back, restarting, and sends a first route. Its arrival means
    // the failed attempts, queued before it, were handled.
    wait_active(&instance, 1).await;
    let mut x = RawPeer::establish_offering(X, listen, graceful_restart(true)).await;
    x.send(&announce("198.51.100.0/24", Ipv4Addr::from(X)))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let have = loop {
        let have = routes(&instance).await;
        if have.contains(&"198.51.100.0/24".parse().expect("prefix")) {
            break have;
        }
        assert!(tokio::time::Instant::now() < deadline, "{have:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        have.contains(&"203.0.113.0/24".parse().expect("prefix")),
        "the stale route went with a failed reconnection: {have:?}"
    );

    // Its End-of-RIB without the old route: the stale route goes.
    x.send(&end_of_rib()).await;
    wait_routes(&instance, &["198.51.100.0/24"], Duration::from_secs(10)).await;
}
