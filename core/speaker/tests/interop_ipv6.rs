//! An IPv6 session with BIRD 2 over ::1: IPv6 routes both ways, and IPv4
//! routes over the IPv6 session with IPv6 next hops (RFC 8950).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::{Bird, wait_for};
use starling_speaker::PeerConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_wire::{AsPath, NextHop, Origin, PathAttributes, Prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_session_carries_ipv6_and_ipv4_routes() {
    let port = std::net::TcpListener::bind("[::1]:0")
        .expect("probe")
        .local_addr()
        .expect("addr")
        .port();
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, 110)),
        &[SocketAddr::from((Ipv6Addr::LOCALHOST, port))],
    )
    .await
    .expect("instance");
    let mut cfg = PeerConfig::new(
        SocketAddr::from((Ipv6Addr::LOCALHOST, 179)),
        64513,
        64512,
        Ipv4Addr::new(192, 0, 2, 110),
    );
    cfg.passive = true;
    cfg.local_address = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
    cfg.extended_next_hop = true;
    instance.add_peer(cfg, PeerPolicy::default());
    for p in ["2001:db8:110::/48", "203.0.113.0/24"] {
        instance.originate(
            p.parse().expect("prefix"),
            PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                ..PathAttributes::default()
            },
        );
    }

    let bird = Bird::start(&format!(
        r#"
router id 192.0.2.111;
protocol device {{}}
protocol static {{ ipv6; route 2001:db8:111::/48 blackhole; }}
protocol static {{ ipv4; route 198.51.100.0/24 blackhole; }}
protocol bgp starling {{
    local ::1 port 17911 as 64512;
    neighbor ::1 port {port} as 64513;
    multihop;
    strict bind;
    connect retry time 1;
    # BIRD withdraws what it would announce with the loopback ::1 as next
    # hop, so give it a documentation address.
    ipv6 {{ import all; export all; next hop address 2001:db8::111; }};
    ipv4 {{ import all; export all; next hop address 2001:db8::111; extended next hop on; }};
}}
"#
    ));

    let want: [Prefix; 2] = [
        "2001:db8:111::/48".parse().expect("p"),
        "198.51.100.0/24".parse().expect("p"),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let routes = instance.routes().await;
        let found: Vec<_> = routes.iter().filter(|(p, _, _)| want.contains(p)).collect();
        if found.len() == 2 {
            for (_, r, _) in found {
                assert!(
                    matches!(r.next_hop, NextHop::V6 { global, .. } if global.to_string() == "2001:db8::111"),
                    "{r:?}"
                );
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "routes: {routes:?}\n{:?}",
            instance.peers().await[0].counters
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(
        "BIRD to learn both of Starling's routes",
        Duration::from_secs(10),
        || {
            let v6 = bird.cli("show route 2001:db8:110::/48 all");
            let v4 = bird.cli("show route 203.0.113.0/24 all");
            v6.contains("BGP.as_path: 64513")
                && v4.contains("BGP.as_path: 64513")
                && v4.contains("BGP.next_hop: ::1")
        },
    );
}
