//! Starling against a real FRR bgpd (Debian `frr`, run standalone with
//! `-Z`, no zebra) on loopback, with TCP-MD5: the session establishes,
//! FRR's route arrives with its attributes, and Starling's route appears
//! in FRR's table.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::frr::Frr;
use common::wait_for;
use starling_speaker::PeerConfig;
use starling_speaker::config::Secret;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_wire::{AsPath, Community, Origin, PathAttributes, Prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_flow_both_ways_with_frr_over_md5() {
    let port = common::free_port([127, 0, 0, 101]);
    let (instance, _best) = Instance::start(
        RibConfig::new(64531, Ipv4Addr::new(192, 0, 2, 101)),
        &[SocketAddr::from(([127, 0, 0, 101], port))],
    )
    .await
    .expect("instance");
    let mut cfg = PeerConfig::new(
        SocketAddr::from(([127, 0, 0, 100], 179)),
        64531,
        64530,
        Ipv4Addr::new(192, 0, 2, 101),
    );
    cfg.passive = true;
    cfg.local_address = Some(IpAddr::from([127, 0, 0, 101]));
    cfg.password = Some(Secret::new("frr-md5-key"));
    // FRR treats 127/8 next hops as martian and resets the session
    // (3/8), so announce a documentation address as our next hop.
    let policy = PeerPolicy {
        next_hop_address: Some(IpAddr::from([192, 0, 2, 101])),
        ..PeerPolicy::default()
    };
    instance.add_peer(cfg, policy);
    instance.originate(
        "203.0.113.0/24".parse().expect("prefix"),
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..PathAttributes::default()
        },
    );

    let frr = Frr::start(&format!(
        r#"
frr defaults traditional
hostname frr-test
!
route-map OUT permit 10
 set community 64530:5
 set metric 33
!
router bgp 64530
 bgp router-id 192.0.2.100
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 127.0.0.101 remote-as 64531
 neighbor 127.0.0.101 port {port}
 neighbor 127.0.0.101 update-source 127.0.0.100
 neighbor 127.0.0.101 disable-connected-check
 neighbor 127.0.0.101 password frr-md5-key
 neighbor 127.0.0.101 timers connect 1
 address-family ipv4 unicast
  network 198.51.100.0/24
  neighbor 127.0.0.101 activate
  neighbor 127.0.0.101 route-map OUT out
 exit-address-family
!
"#
    ));

    let target: Prefix = "198.51.100.0/24".parse().expect("prefix");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let route = loop {
        if let Some((_, r, _)) = instance
            .routes()
            .await
            .into_iter()
            .find(|(p, _, _)| *p == target)
        {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no route from FRR: {}\n{}",
            frr.vtysh("show bgp summary"),
            frr.vtysh("show bgp neighbors")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(route.attrs.med, Some(33));
    assert_eq!(route.attrs.communities, vec![Community::new(64530, 5)]);
    assert_eq!(
        route
            .attrs
            .as_path
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("64530")
    );

    wait_for(
        "FRR to learn 203.0.113.0/24 from Starling",
        Duration::from_secs(10),
        || {
            let out = frr.vtysh("show bgp ipv4 unicast 203.0.113.0/24");
            out.contains("64531") && out.contains("192.0.2.101")
        },
    );
}
