//! ADD-PATH (RFC 7911) with real BIRD 2 processes on loopback, both
//! ways: Starling sends a BIRD peer every path it has for a prefix, each
//! under its own path id, and keeps the several paths a BIRD peer sends it
//! for one prefix apart.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{Bird, wait_for};
use starling_speaker::PeerConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::{RibConfig, Source};
use starling_wire::capability::AddPathMode;
use starling_wire::{Family, Prefix};

const STARLING: [u8; 4] = [127, 0, 0, 50];

/// A BIRD eBGP peer of Starling that originates `routes` (static protocol
/// name, prefix, MED, also tagged as community (64700, MED)) and, with `add_paths`, sends and receives every path.
fn bird(id: u8, asn: u32, port: u16, routes: &[(&str, &str, u32)], add_paths: bool) -> Bird {
    let statics: String = routes
        .iter()
        .map(|(name, prefix, med)| {
            format!(
                "protocol static {name} {{ ipv4 {{ import filter {{ bgp_community.add((64700, {med})); accept; }}; }}; route {prefix} blackhole; }}\n"
            )
        })
        .collect();
    // BIRD sends a MED to an eBGP peer only if its export filter set it.
    let meds: String = routes
        .iter()
        .map(|(name, _, med)| format!("if proto = \"{name}\" then bgp_med = {med}; "))
        .collect();
    let add_paths = if add_paths { "add paths on;" } else { "" };
    Bird::start(&format!(
        r#"
router id 192.0.2.{id};
protocol device {{}}
{statics}
protocol bgp starling {{
    local 127.0.0.{id} as {asn};
    neighbor 127.0.0.50 port {port} as 64512;
    multihop;
    strict bind;
    connect retry time 1;
    ipv4 {{
        import all;
        export filter {{ if source != RTS_STATIC then reject; {meds}accept; }};
        {add_paths}
    }};
}}
"#
    ))
}

fn peer(id: u8, asn: u32) -> PeerConfig {
    let mut cfg = PeerConfig::new(
        SocketAddr::from(([127, 0, 0, id], 179)),
        64512,
        asn,
        Ipv4Addr::new(192, 0, 2, 50),
    );
    cfg.local_address = Some(IpAddr::from(STARLING));
    cfg.passive = true;
    cfg
}

/// The AS_PATHs of the routes BIRD holds for `prefix`, sorted.
fn as_paths(bird: &Bird, prefix: &str) -> Vec<String> {
    let mut paths: Vec<String> = bird
        .cli(&format!("show route {prefix} all"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("BGP.as_path: "))
        .map(str::to_owned)
        .collect();
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_goes_to_and_comes_from_a_bird_add_path_peer() {
    let port = common::free_port(STARLING);
    let (instance, _best) = Instance::start(
        RibConfig::new(64512, Ipv4Addr::new(192, 0, 2, 50)),
        &[SocketAddr::from((STARLING, port))],
    )
    .await
    .expect("instance");
    instance.add_peer(peer(51, 64601), PeerPolicy::default());
    instance.add_peer(peer(52, 64602), PeerPolicy::default());
    let mut add_path = peer(53, 64700);
    add_path.add_path = vec![(Family::IPV4_UNICAST, AddPathMode::Both)];
    instance.add_peer(add_path, PeerPolicy::default());

    // Two peers send the same prefix; a third, with ADD-PATH, sends two
    // paths of another prefix.
    let a = bird(51, 64601, port, &[("s1", "198.51.100.0/24", 0)], false);
    let b = bird(52, 64602, port, &[("s1", "198.51.100.0/24", 0)], false);
    let c = bird(
        53,
        64700,
        port,
        &[("s1", "203.0.113.0/24", 10), ("s2", "203.0.113.0/24", 20)],
        true,
    );

    wait_for(
        "the ADD-PATH peer to hold both paths of 198.51.100.0/24",
        Duration::from_secs(30),
        || as_paths(&c, "198.51.100.0/24") == ["64512 64601", "64512 64602"],
    );
    // Both of C's paths are kept apart in Starling's RIB.
    let target: Prefix = "203.0.113.0/24".parse().expect("prefix");
    let from_c = Source::Peer(IpAddr::from([127, 0, 0, 53]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut meds: Vec<Option<u32>> = instance
            .paths()
            .await
            .into_iter()
            .filter(|p| p.prefix == target && p.source == from_c)
            .map(|p| p.route.attrs.med)
            .collect();
        meds.sort();
        if meds == [Some(10), Some(20)] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "C's two paths in Starling's RIB, got MEDs {meds:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Peers without ADD-PATH get the best of them only.
    wait_for(
        "A to hold one path of 203.0.113.0/24",
        Duration::from_secs(10),
        || as_paths(&a, "203.0.113.0/24") == ["64512 64700"],
    );
    let shown = a.cli("show route 203.0.113.0/24 all");
    // The better MED; the MED itself stays in C's AS (RFC 4271 §5.1.4).
    assert!(
        shown.contains("(64700,10)") && !shown.contains("(64700,20)"),
        "{shown}"
    );

    // B's path is not the best one (A's router id is lower): its
    // withdrawal changes no best path, and must still reach C.
    b.cli("disable s1");
    wait_for(
        "the ADD-PATH peer to lose B's path only",
        Duration::from_secs(10),
        || as_paths(&c, "198.51.100.0/24") == ["64512 64601"],
    );
    // And it comes back under its own path id, next to A's.
    b.cli("enable s1");
    wait_for(
        "the ADD-PATH peer to get B's path back",
        Duration::from_secs(10),
        || as_paths(&c, "198.51.100.0/24") == ["64512 64601", "64512 64602"],
    );
    a.cli("disable s1");
    wait_for(
        "the ADD-PATH peer to lose A's path",
        Duration::from_secs(10),
        || as_paths(&c, "198.51.100.0/24") == ["64512 64602"],
    );
}
