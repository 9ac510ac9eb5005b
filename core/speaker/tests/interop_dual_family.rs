//! One IPv4 session carrying both IPv4 and IPv6 unicast (MP-BGP, RFC
//! 4760), against BIRD 2 and against another Starling: each side's routes
//! of both families reach the other, IPv6 ones with the sender's own IPv6
//! address as next hop.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use common::{Bird, passive_peer, route, start_listening, wait_for, wait_routes};
use starling_speaker::instance::{Instance, OwnAddresses, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_wire::{AsPath, Family, NextHop, Origin, PathAttributes};

fn originate(instance: &Instance, prefixes: &[&str]) {
    for p in prefixes {
        instance.originate(
            p.parse().expect("prefix"),
            PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                ..PathAttributes::default()
            },
        );
    }
}

fn both_families(own_v6: Ipv6Addr) -> PeerPolicy {
    PeerPolicy {
        own_addresses: OwnAddresses {
            v4: None,
            v6: Some(own_v6),
        },
        ..PeerPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_session_carries_both_families_with_bird() {
    const ME: u8 = 152;
    const BIRD: u8 = 153;
    let (instance, _best, listen) = start_listening(
        [127, 0, 0, ME],
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, ME)),
    )
    .await;
    let mut cfg = passive_peer(ME, BIRD);
    cfg.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    instance.add_peer(cfg, both_families(Ipv6Addr::LOCALHOST));
    originate(&instance, &["203.0.113.0/24", "2001:db8:152::/48"]);

    let bird = Bird::start(&format!(
        r#"
router id 192.0.2.{BIRD};
protocol device {{}}
protocol static {{ ipv4; route 198.51.100.0/24 blackhole; }}
protocol static {{ ipv6; route 2001:db8:153::/48 blackhole; }}
protocol bgp starling {{
    local 127.0.0.{BIRD} as 64512;
    neighbor 127.0.0.{ME} port {port} as 64513;
    multihop;
    strict bind;
    connect retry time 1;
    ipv4 {{ import all; export all; }};
    # No IPv6 address on this session: the IPv6 next hop is given.
    ipv6 {{ import all; export all; next hop address 2001:db8::153; }};
}}
"#,
        port = listen.port()
    ));

    wait_routes(
        &instance,
        &[
            "198.51.100.0/24",
            "2001:db8:152::/48",
            "2001:db8:153::/48",
            "203.0.113.0/24",
        ],
        Duration::from_secs(30),
    )
    .await;
    let v6 = route(&instance, "2001:db8:153::/48")
        .await
        .expect("BIRD's IPv6 route");
    assert!(
        matches!(v6.next_hop, NextHop::V6 { global, .. } if global.to_string() == "2001:db8::153"),
        "{:?}",
        v6
    );
    let peer = &instance.peers().await[0];
    let families = &peer
        .negotiated
        .as_ref()
        .expect("established")
        .codec
        .families;
    assert!(families.get(Family::IPV4_UNICAST) && families.get(Family::IPV6_UNICAST));
    wait_for(
        "BIRD to learn both of Starling's routes over the one session",
        Duration::from_secs(10),
        || {
            let v4 = bird.cli("show route 203.0.113.0/24 all");
            let v6 = bird.cli("show route 2001:db8:152::/48 all");
            v4.contains("BGP.as_path: 64513")
                && v6.contains("BGP.as_path: 64513")
                && v6.contains("BGP.next_hop: ::1")
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_session_carries_both_families_between_starlings() {
    const A: u8 = 154;
    const B: u8 = 155;
    let (a, _best_a, a_listen) = start_listening(
        [127, 0, 0, A],
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, A)),
    )
    .await;
    let (b, _best_b, _) = start_listening(
        [127, 0, 0, B],
        RibConfig::new(64512, Ipv4Addr::new(192, 0, 2, B)),
    )
    .await;
    // a waits; b connects to a's port.
    let mut to_b = passive_peer(A, B);
    to_b.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    a.add_peer(to_b, both_families("2001:db8::a".parse().expect("v6")));
    let mut to_a =
        starling_speaker::PeerConfig::new(a_listen, 64512, 64513, Ipv4Addr::new(192, 0, 2, B));
    to_a.local_address = Some(IpAddr::from([127, 0, 0, B]));
    to_a.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    b.add_peer(to_a, both_families("2001:db8::b".parse().expect("v6")));
    originate(&a, &["203.0.113.0/24", "2001:db8:a::/48"]);
    originate(&b, &["198.51.100.0/24", "2001:db8:b::/48"]);

    let all = [
        "198.51.100.0/24",
        "2001:db8:a::/48",
        "2001:db8:b::/48",
        "203.0.113.0/24",
    ];
    wait_routes(&a, &all, Duration::from_secs(30)).await;
    wait_routes(&b, &all, Duration::from_secs(30)).await;
    let from_b = route(&a, "2001:db8:b::/48").await.expect("b's IPv6 route");
    assert!(
        matches!(from_b.next_hop, NextHop::V6 { global, .. } if global.to_string() == "2001:db8::b"),
        "{:?}",
        from_b
    );
    let from_a = route(&b, "203.0.113.0/24").await.expect("a's IPv4 route");
    assert_eq!(from_a.next_hop, NextHop::V4(Ipv4Addr::new(127, 0, 0, A)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_session_carries_both_families_with_frr() {
    const ME: u8 = 157;
    const FRR: u8 = 156;
    let (instance, _best, listen) = start_listening(
        [127, 0, 0, ME],
        RibConfig::new(64531, Ipv4Addr::new(192, 0, 2, ME)),
    )
    .await;
    let mut cfg = starling_speaker::PeerConfig::new(
        std::net::SocketAddr::from(([127, 0, 0, FRR], 179)),
        64531,
        64530,
        Ipv4Addr::new(192, 0, 2, ME),
    );
    cfg.passive = true;
    cfg.local_address = Some(IpAddr::from([127, 0, 0, ME]));
    cfg.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    // FRR treats loopback next hops as martian: documentation addresses.
    let policy = PeerPolicy {
        next_hop_address: Some(IpAddr::from([192, 0, 2, ME])),
        ..both_families("2001:db8::157".parse().expect("v6"))
    };
    instance.add_peer(cfg, policy);
    originate(&instance, &["203.0.113.0/24", "2001:db8:157::/48"]);

    let frr = common::frr::Frr::start(&format!(
        r#"
frr defaults traditional
hostname frr-dual
!
route-map V6OUT permit 10
 set ipv6 next-hop global 2001:db8::156
!
router bgp 64530
 bgp router-id 192.0.2.{FRR}
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor 127.0.0.{ME} remote-as 64531
 neighbor 127.0.0.{ME} port {port}
 neighbor 127.0.0.{ME} update-source 127.0.0.{FRR}
 neighbor 127.0.0.{ME} disable-connected-check
 neighbor 127.0.0.{ME} timers connect 1
 address-family ipv4 unicast
  network 198.51.100.0/24
  neighbor 127.0.0.{ME} activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:156::/48
  neighbor 127.0.0.{ME} activate
  neighbor 127.0.0.{ME} route-map V6OUT out
 exit-address-family
!
"#,
        port = listen.port()
    ));

    wait_routes(
        &instance,
        &[
            "198.51.100.0/24",
            "2001:db8:156::/48",
            "2001:db8:157::/48",
            "203.0.113.0/24",
        ],
        Duration::from_secs(40),
    )
    .await;
    wait_for(
        "FRR to learn both of Starling's routes over the one session",
        Duration::from_secs(20),
        || {
            let v4 = frr.vtysh("show bgp ipv4 unicast 203.0.113.0/24");
            let v6 = frr.vtysh("show bgp ipv6 unicast 2001:db8:157::/48");
            v4.contains("64531") && v6.contains("64531") && v6.contains("2001:db8::157")
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_session_carries_both_families_with_gobgp() {
    const GOBGP: u8 = 158;
    const ME: u8 = 159;
    let port = common::free_port([127, 0, 0, GOBGP]);
    let gobgp = common::gobgp::GoBgp::start(
        &format!(
            r#"
[global.config]
  as = 64520
  router-id = "192.0.2.{GOBGP}"
  port = {port}
  local-address-list = ["127.0.0.{GOBGP}"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.{ME}"
    peer-as = 64521
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#
        ),
        &format!("127.0.0.{GOBGP}:50071"),
    );
    for (family, prefix, next_hop) in [
        ("ipv4", "198.51.100.0/24", "192.0.2.158"),
        ("ipv6", "2001:db8:158::/48", "2001:db8::158"),
    ] {
        let (ok, out) = gobgp.cli(&[
            "global", "rib", "add", "-a", family, prefix, "nexthop", next_hop,
        ]);
        assert!(ok, "gobgp global rib add {prefix}: {out}");
    }

    let instance = Instance::start(RibConfig::new(64521, Ipv4Addr::new(192, 0, 2, ME)), &[])
        .await
        .expect("instance")
        .0;
    let mut cfg = starling_speaker::PeerConfig::new(
        std::net::SocketAddr::from(([127, 0, 0, GOBGP], port)),
        64521,
        64520,
        Ipv4Addr::new(192, 0, 2, ME),
    );
    cfg.local_address = Some(IpAddr::from([127, 0, 0, ME]));
    cfg.connect_retry = Duration::from_secs(1);
    cfg.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    // GoBGP ignores routes with a loopback next hop: a documentation one.
    let policy = PeerPolicy {
        next_hop_address: Some(IpAddr::from([192, 0, 2, ME])),
        ..both_families("2001:db8::159".parse().expect("v6"))
    };
    instance.add_peer(cfg, policy);
    originate(&instance, &["203.0.113.0/24", "2001:db8:159::/48"]);

    wait_routes(
        &instance,
        &[
            "198.51.100.0/24",
            "2001:db8:158::/48",
            "2001:db8:159::/48",
            "203.0.113.0/24",
        ],
        Duration::from_secs(30),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v4 = gobgp.cli(&["global", "rib", "-a", "ipv4"]).1;
        let v6 = gobgp.cli(&["global", "rib", "-a", "ipv6"]).1;
        if v4.contains("203.0.113.0/24")
            && v6.contains("2001:db8:159::/48")
            && v6.contains("2001:db8::159")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GoBGP never learnt both of Starling's routes:\n{v4}\n{v6}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
