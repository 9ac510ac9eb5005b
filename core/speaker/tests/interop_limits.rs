//! Max-prefix (RFC 4486 Cease/1) against a real BIRD 2 on loopback.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{Bird, wait_for};
use starling_speaker::PeerConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_prefix_tears_the_session_down_with_cease_1() {
    let port = common::free_port([127, 0, 0, 60]);
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, 60)),
        &[SocketAddr::from(([127, 0, 0, 60], port))],
    )
    .await
    .expect("instance");
    let mut cfg = PeerConfig::new(
        SocketAddr::from(([127, 0, 0, 61], 179)),
        64513,
        64512,
        Ipv4Addr::new(192, 0, 2, 60),
    );
    cfg.passive = true;
    cfg.local_address = Some(IpAddr::from([127, 0, 0, 60]));
    instance.add_peer(
        cfg,
        PeerPolicy {
            max_prefixes: Some(3),
            ..PeerPolicy::default()
        },
    );

    let bird = Bird::start(&format!(
        r#"
router id 192.0.2.61;
protocol device {{}}
protocol static {{
    ipv4;
    route 198.51.100.0/26 blackhole;
    route 198.51.100.64/26 blackhole;
    route 198.51.100.128/26 blackhole;
    route 198.51.100.192/26 blackhole;
    route 203.0.113.0/24 blackhole;
}}
protocol bgp starling {{
    local 127.0.0.61 as 64512;
    neighbor 127.0.0.60 port {port} as 64513;
    multihop;
    strict bind;
    connect retry time 1;
    ipv4 {{ import none; export all; next hop self; }};
}}
"#
    ));
    wait_for(
        "BIRD to report Cease/1 from Starling",
        Duration::from_secs(30),
        || {
            bird.cli("show protocols all starling")
                .contains("Maximum number of prefixes reached")
        },
    );
    // The routes of the torn-down session are gone from the Loc-RIB.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !instance.routes().await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "routes stayed after the Cease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
