//! Starling's speaker against a real BIRD 2 on loopback: the session comes
//! up, BIRD's routes arrive with the attributes BIRD was told to set, and a
//! route Starling announces shows up in BIRD's table.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Bird, wait_for};
use starling_speaker::PeerConfig;
use starling_speaker::driver::{PeerEvent, PeerRegistry, accept_loop};
use starling_speaker::session::State;
use starling_wire::{
    AsPath, Community, Family, MessageType, NextHop, Nlri, Origin, PathAttributes, ReachEncoder,
    Update, encode_end_of_rib,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

const BIRD_CONF: &str = r#"
router id 192.0.2.1;
protocol device {}
protocol static {
    ipv4;
    route 198.51.100.0/24 blackhole;
    route 10.0.0.0/8 blackhole;
}
protocol static {
    ipv6;
    route 2001:db8:100::/48 blackhole;
}
filter decorate {
    if net = 198.51.100.0/24 then {
        bgp_community.add((64512, 100));
        bgp_med = 50;
    }
    accept;
}
protocol bgp starling {
    local 127.0.0.1 as 64512;
    neighbor 127.0.0.12 port PORT as 64513;
    multihop;
    strict bind;
    connect retry time 1;
    error wait time 1, 2;
    ipv4 { import all; export filter decorate; next hop self; };
    ipv6 { import all; export filter decorate; next hop address 2001:db8::1; };
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_flow_both_ways_with_bird() {
    // Starling listens on 127.0.0.12 at a free port; BIRD connects to it.
    let listener = TcpListener::bind("127.0.0.12:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();

    let speaker = Arc::new(Mutex::new(PeerRegistry::default()));
    tokio::spawn(accept_loop(std::sync::Arc::new(listener), speaker.clone()));
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut cfg = PeerConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 179)),
        64513,
        64512,
        Ipv4Addr::new(192, 0, 2, 13),
    );
    cfg.passive = true;
    cfg.local_address = Some(IpAddr::from([127, 0, 0, 12]));
    let peer = speaker.lock().expect("speaker").add_peer(cfg, tx);
    // BIRD starts once the peer is configured: a connection it made before
    // would be refused, and BIRD would wait out its error wait time.
    let bird = Bird::start(&BIRD_CONF.replace("PORT", &port.to_string()));

    // Collect until End-of-RIB for both families.
    let mut updates: Vec<Update> = Vec::new();
    let mut eor = Vec::new();
    let collect = async {
        while eor.len() < 2 {
            match events.recv().await.expect("event stream") {
                (_, PeerEvent::Update(p, _)) => {
                    assert!(p.problems.is_empty(), "{:?}", p.problems);
                    match p.update.end_of_rib() {
                        Some(f) => eor.push(f),
                        None => updates.push(p.update.clone()),
                    }
                }
                (_, PeerEvent::Down(r)) => panic!("session went down: {r:?}"),
                _ => {}
            }
        }
    };
    timeout(Duration::from_secs(30), collect)
        .await
        .expect("BIRD's table and End-of-RIB within 30 s");
    assert_eq!(peer.status().state, State::Established);
    let negotiated = peer.status().negotiated.expect("negotiated");
    assert!(negotiated.codec.four_octet_as);
    assert_eq!(negotiated.peer_id, Ipv4Addr::new(192, 0, 2, 1));

    let find = |p: &str| {
        let prefix = p.parse().expect("prefix");
        updates
            .iter()
            .find(|u| {
                u.nlri
                    .iter()
                    .chain(u.mp_reach.iter().flat_map(|m| &m.nlri))
                    .any(|n| n.prefix == prefix)
            })
            .unwrap_or_else(|| panic!("{p} not received"))
    };
    let r = &find("198.51.100.0/24").attributes;
    assert_eq!(r.med, Some(50));
    assert_eq!(r.communities, vec![Community::new(64512, 100)]);
    assert_eq!(
        r.as_path.as_ref().map(ToString::to_string).as_deref(),
        Some("64512")
    );
    assert_eq!(r.next_hop, Some(Ipv4Addr::LOCALHOST));
    find("10.0.0.0/8");
    let v6 = find("2001:db8:100::/48");
    assert!(matches!(
        v6.mp_reach.as_ref().map(|m| m.next_hop),
        Some(NextHop::V6 { .. })
    ));

    // Now announce a route to BIRD and find it in BIRD's table.
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([64513])),
        communities: vec![Community::new(64513, 7)],
        ..PathAttributes::default()
    };
    let encoder = ReachEncoder::new(
        &attrs,
        Family::IPV4_UNICAST,
        NextHop::V4(Ipv4Addr::new(127, 0, 0, 12)),
        &negotiated.codec,
    )
    .expect("encoder");
    let mut bytes = Vec::new();
    encoder.encode(
        &[Nlri::new("203.0.113.0/24".parse().expect("prefix"))],
        &mut bytes,
    );
    encode_end_of_rib(Family::IPV4_UNICAST, &mut bytes);
    peer.send(bytes, MessageType::Update);
    wait_for(
        "BIRD to learn 203.0.113.0/24",
        Duration::from_secs(10),
        || {
            let out = bird.cli("show route 203.0.113.0/24 all");
            out.contains("BGP.as_path: 64513") && out.contains("(64513,7)")
        },
    );

    // Withdraw it again.
    let mut bytes = Vec::new();
    starling_wire::encode_withdrawals(
        Family::IPV4_UNICAST,
        &[Nlri::new("203.0.113.0/24".parse().expect("prefix"))],
        &negotiated.codec,
        &mut bytes,
    );
    peer.send(bytes, MessageType::Update);
    wait_for(
        "BIRD to drop 203.0.113.0/24",
        Duration::from_secs(10),
        || {
            !bird
                .cli("show route 203.0.113.0/24")
                .contains("203.0.113.0/24")
        },
    );

    // Disabling the peer in BIRD reaches us as a Cease.
    bird.cli("disable starling");
    let down = timeout(Duration::from_secs(10), async {
        loop {
            if let (_, PeerEvent::Down(r)) = events.recv().await.expect("events") {
                return r;
            }
        }
    })
    .await
    .expect("session down within 10 s");
    assert!(
        matches!(&down, starling_speaker::DownReason::Received(n) if n.code == 6),
        "{down:?}"
    );
}
