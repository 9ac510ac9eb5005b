//! Graceful restart helper mode (RFC 4724) against a real BIRD 2: after
//! `kill -9` its routes stay (stale) for its restart time; when it comes
//! back, End-of-RIB sweeps what it no longer announces; if it never comes
//! back, the restart timer removes everything.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Bird, routes, wait_routes};
use starling_speaker::PeerConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;

fn bird_conf(port: u16, routes: &[&str]) -> String {
    let statics: String = routes
        .iter()
        .map(|r| format!("    route {r} blackhole;\n"))
        .collect();
    format!(
        r#"
router id 192.0.2.81;
protocol device {{}}
protocol static {{
    ipv4;
{statics}}}
protocol bgp starling {{
    local 127.0.0.81 as 64512;
    neighbor 127.0.0.80 port {port} as 64513;
    multihop;
    strict bind;
    connect retry time 1;
    graceful restart on;
    graceful restart time 4;
    ipv4 {{ import none; export all; next hop self; }};
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_routes_survive_a_crash_until_end_of_rib_or_the_restart_timer() {
    let port = common::free_port([127, 0, 0, 80]);
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, 80)),
        &[SocketAddr::from(([127, 0, 0, 80], port))],
    )
    .await
    .expect("instance");
    let mut cfg = PeerConfig::new(
        SocketAddr::from(([127, 0, 0, 81], 179)),
        64513,
        64512,
        Ipv4Addr::new(192, 0, 2, 80),
    );
    cfg.passive = true;
    cfg.local_address = Some(IpAddr::from([127, 0, 0, 80]));
    cfg.idle_hold = Duration::from_millis(100);
    instance.add_peer(cfg, PeerPolicy::default());

    let bird = Bird::start(&bird_conf(port, &["198.51.100.0/24", "203.0.113.0/24"]));
    wait_routes(
        &instance,
        &["198.51.100.0/24", "203.0.113.0/24"],
        Duration::from_secs(30),
    )
    .await;

    // kill -9: no NOTIFICATION, the TCP session just dies.
    drop(bird);
    let killed = Instant::now();
    // The routes stay through most of BIRD's 4 s restart time...
    while killed.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            routes(&instance).await.len(),
            2,
            "stale routes dropped early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... BIRD comes back without 203.0.113.0/24: End-of-RIB sweeps it.
    let bird = Bird::start(&bird_conf(port, &["198.51.100.0/24"]));
    wait_routes(&instance, &["198.51.100.0/24"], Duration::from_secs(10)).await;
    assert!(killed.elapsed() < Duration::from_secs(4) + Duration::from_secs(10));

    // Killed again and not restarted: the restart timer removes the rest.
    drop(bird);
    let killed = Instant::now();
    wait_routes(&instance, &[], Duration::from_secs(15)).await;
    assert!(
        killed.elapsed() >= Duration::from_secs(3),
        "removed before the restart time: {:?}",
        killed.elapsed()
    );
}
