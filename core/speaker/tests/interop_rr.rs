//! Route reflection with real BIRD 2 processes on loopback: Starling
//! reflects between two BIRD clients, and is itself a client of a BIRD
//! reflector. ORIGINATOR_ID and CLUSTER_LIST are checked where they land.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{Bird, wait_for};
use starling_speaker::PeerConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::{RibConfig, Source};
use starling_wire::{AsPath, Origin, PathAttributes, Prefix};

fn bird_client(id: u8, starling: &str, port: u16, route: &str) -> String {
    format!(
        r#"
router id 192.0.2.{id};
protocol device {{}}
protocol static {{ ipv4; route {route} blackhole; }}
protocol bgp to_rr {{
    local 127.0.0.{id} as 64512;
    neighbor {starling} port {port} as 64512;
    strict bind;
    connect retry time 1;
    ipv4 {{ import all; export where source = RTS_STATIC; next hop self; }};
}}
"#
    )
}

fn peer(remote: [u8; 4], port: u16, local: [u8; 4]) -> PeerConfig {
    let mut cfg = PeerConfig::new(
        SocketAddr::from((remote, port)),
        64512,
        64512,
        Ipv4Addr::from(local),
    );
    cfg.local_address = Some(IpAddr::from(local));
    cfg.connect_retry = Duration::from_secs(1);
    cfg
}

async fn wait_async<F: std::future::Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starling_reflects_between_two_bird_clients() {
    let (instance, _best, listen) = common::start_listening(
        [127, 0, 0, 30],
        RibConfig::new(64512, Ipv4Addr::new(192, 0, 2, 30)),
    )
    .await;
    let port = listen.port();
    for id in [31u8, 32] {
        let mut cfg = peer([127, 0, 0, id], 179, [127, 0, 0, 30]);
        cfg.passive = true;
        cfg.router_id = Ipv4Addr::new(192, 0, 2, 30);
        instance.add_peer(
            cfg,
            PeerPolicy {
                rr_client: true,
                ..PeerPolicy::default()
            },
        );
    }
    let a = Bird::start(&bird_client(31, "127.0.0.30", port, "198.51.100.0/24"));
    let b = Bird::start(&bird_client(32, "127.0.0.30", port, "203.0.113.0/24"));

    wait_for(
        "client B to learn A's route through Starling",
        Duration::from_secs(30),
        || {
            let out = b.cli("show route 198.51.100.0/24 all");
            out.contains("BGP.originator_id: 192.0.2.31")
                && out.contains("BGP.cluster_list: 192.0.2.30")
        },
    );
    wait_for(
        "client A to learn B's route through Starling",
        Duration::from_secs(10),
        || {
            let out = a.cli("show route 203.0.113.0/24 all");
            out.contains("BGP.originator_id: 192.0.2.32")
                && out.contains("BGP.cluster_list: 192.0.2.30")
        },
    );
    // The reflected route keeps the client's next hop and LOCAL_PREF.
    let out = b.cli("show route 198.51.100.0/24 all");
    assert!(out.contains("BGP.next_hop: 127.0.0.31"), "{out}");
    assert!(out.contains("BGP.local_pref: 100"), "{out}");

    // Withdrawal propagates through the reflector.
    a.cli("disable static1");
    wait_for("B to lose A's route", Duration::from_secs(10), || {
        !b.cli("show route 198.51.100.0/24")
            .contains("198.51.100.0/24")
    });
    assert_eq!(instance.peers().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starling_is_a_client_of_a_bird_reflector() {
    // BIRD reflector on 127.0.0.41 with clients Starling (.42) and BIRD (.43).
    let rr_port = common::free_port([127, 0, 0, 41]);
    let rr = Bird::start(&format!(
        r#"
router id 192.0.2.41;
protocol device {{}}
template bgp rrclient {{
    local 127.0.0.41 port {rr_port} as 64512;
    rr client;
    rr cluster id 10.255.255.1;
    strict bind;
    connect retry time 1;
    ipv4 {{ import all; export all; }};
}}
protocol bgp starling from rrclient {{ neighbor 127.0.0.42 as 64512; }}
protocol bgp peer_c from rrclient {{ neighbor 127.0.0.43 port 1 as 64512; passive; }}
"#
    ));
    let other = Bird::start(&bird_client(43, "127.0.0.41", rr_port, "198.51.100.128/25"));
    let (instance, _best) =
        Instance::start(RibConfig::new(64512, Ipv4Addr::new(192, 0, 2, 42)), &[])
            .await
            .expect("instance");
    let mut cfg = peer([127, 0, 0, 41], rr_port, [127, 0, 0, 42]);
    cfg.router_id = Ipv4Addr::new(192, 0, 2, 42);
    instance.add_peer(cfg, PeerPolicy::default());
    instance.originate(
        "192.0.2.128/25".parse().expect("prefix"),
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..PathAttributes::default()
        },
    );

    let target: Prefix = "198.51.100.128/25".parse().expect("prefix");
    wait_async(
        "the reflected route in Starling's Loc-RIB",
        Duration::from_secs(30),
        || {
            let instance = instance.clone();
            async move {
                instance.routes().await.iter().any(|(p, r, s)| {
                    *p == target
                        && matches!(s, Source::Peer(_))
                        && r.attrs.originator_id == Some(Ipv4Addr::new(192, 0, 2, 43))
                        && r.attrs.cluster_list == vec![Ipv4Addr::new(10, 255, 255, 1)]
                })
            }
        },
    )
    .await;
    wait_for(
        "the other client to learn Starling's route",
        Duration::from_secs(10),
        || {
            let out = other.cli("show route 192.0.2.128/25 all");
            out.contains("BGP.originator_id: 192.0.2.42")
                && out.contains("BGP.cluster_list: 10.255.255.1")
        },
    );
    drop(rr);
}
