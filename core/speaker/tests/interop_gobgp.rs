//! Starling connects out (with a bound source address) to a passive GoBGP
//! on loopback; routes added through GoBGP's API arrive, and withdrawals
//! propagate.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::gobgp::GoBgp;
use common::wait_for;
use starling_speaker::PeerConfig;
use starling_speaker::driver::{PeerEvent, PeerRegistry};
use starling_wire::{Community, Prefix};
use tokio::sync::mpsc;
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starling_connects_out_to_gobgp() {
    // A free port for GoBGP to listen on.
    let port = common::free_port([127, 0, 0, 21]);
    let config = format!(
        r#"
[global.config]
  as = 64520
  router-id = "192.0.2.21"
  port = {port}
  local-address-list = ["127.0.0.21"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.22"
    peer-as = 64521
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#
    );
    let gobgp = GoBgp::start(&config, "127.0.0.1:50071");
    assert!(
        gobgp
            .cli(&[
                "global",
                "rib",
                "add",
                "-a",
                "ipv4",
                "198.51.100.0/24",
                "nexthop",
                "192.0.2.21",
                "community",
                "64520:9"
            ])
            .0
    );

    let speaker = Arc::new(Mutex::new(PeerRegistry::default()));
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut cfg = PeerConfig::new(
        SocketAddr::from(([127, 0, 0, 21], port)),
        64521,
        64520,
        Ipv4Addr::new(192, 0, 2, 22),
    );
    cfg.local_address = Some(IpAddr::from([127, 0, 0, 22]));
    cfg.connect_retry = Duration::from_secs(1);
    let _peer = speaker.lock().expect("speaker").add_peer(cfg, tx);

    let target: Prefix = "198.51.100.0/24".parse().expect("prefix");
    let announced = timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await.expect("events") {
                (_, PeerEvent::Update(p, _))
                    if p.update.nlri.iter().any(|n| n.prefix == target) =>
                {
                    return p;
                }
                (_, PeerEvent::Down(r)) => panic!("down: {r:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("route from GoBGP within 30 s");
    let a = &announced.update.attributes;
    assert_eq!(a.communities, vec![Community::new(64520, 9)]);
    assert_eq!(
        a.as_path.as_ref().map(ToString::to_string).as_deref(),
        Some("64520")
    );
    wait_for(
        "GoBGP to show the session Established",
        Duration::from_secs(10),
        || gobgp.cli(&["neighbor"]).1.contains("Establ"),
    );

    // A withdrawal in GoBGP reaches us.
    assert!(
        gobgp
            .cli(&["global", "rib", "del", "-a", "ipv4", "198.51.100.0/24"])
            .0
    );
    timeout(Duration::from_secs(10), async {
        loop {
            if let (_, PeerEvent::Update(p, _)) = events.recv().await.expect("events")
                && p.update.withdrawn.iter().any(|n| n.prefix == target)
            {
                return;
            }
        }
    })
    .await
    .expect("withdrawal within 10 s");
}
