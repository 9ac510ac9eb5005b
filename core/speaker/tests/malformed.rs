//! Malformed input over a live session: a raw-byte peer (the codec builds
//! the valid parts, the bad parts are written by hand) sends cases of
//! rfc7606.md and test-matrix.md groups B1/B3/B4. Starling takes the
//! documented action, stays Established where it should, leaves the peer's
//! other routes alone, and counts each action.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::raw::RawPeer;
use common::{free_port, passive_peer, wait_active, wait_routes};
use starling_speaker::PeerConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_speaker::session::State;

fn update(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let len = 19 + 4 + attrs.len() + nlri.len();
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    out.extend_from_slice(attrs);
    out.extend_from_slice(nlri);
    out
}

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
const BAD_ORIGIN: &[u8] = &[0x40, 1, 1, 7];
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x00];
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 127, 0, 0, 71];
const BAD_ATOMIC: &[u8] = &[0x40, 6, 1, 0];

async fn start(me: u8, peer: u8) -> (Instance, SocketAddr) {
    start_with(me, peer, |_, _| {}).await
}

/// An instance on 127.0.0.`me` with a passive peer at 127.0.0.`peer`;
/// `setup` may originate routes and adjust the peer before it is added.
async fn start_with(
    me: u8,
    peer: u8,
    setup: impl FnOnce(&Instance, &mut PeerConfig),
) -> (Instance, SocketAddr) {
    let listen = SocketAddr::from(([127, 0, 0, me], free_port([127, 0, 0, me])));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, me)),
        &[listen],
    )
    .await
    .expect("instance");
    let mut cfg = passive_peer(me, peer);
    setup(&instance, &mut cfg);
    instance.add_peer(cfg, PeerPolicy::default());
    // Let the instance register the peer before the connection arrives.
    wait_active(&instance, 1).await;
    (instance, listen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn treat_as_withdraw_and_discard_keep_the_session_up() {
    let (instance, listen) = start(70, 71).await;
    let mut peer = RawPeer::establish([127, 0, 0, 71], listen).await;
    let good = [ORIGIN, AS_PATH, NEXT_HOP].concat();
    peer.send(&update(&good, &[24, 198, 51, 100, 25, 203, 0, 113, 0]))
        .await;
    wait_routes(
        &instance,
        &["198.51.100.0/24", "203.0.113.0/25"],
        Duration::from_secs(10),
    )
    .await;

    // Bad ORIGIN on a re-announcement: that route is withdrawn, the other stays.
    peer.send(&update(
        &[BAD_ORIGIN, AS_PATH, NEXT_HOP].concat(),
        &[25, 203, 0, 113, 0],
    ))
    .await;
    wait_routes(&instance, &["198.51.100.0/24"], Duration::from_secs(10)).await;
    // Malformed ATOMIC_AGGREGATE: discarded, the route is installed.
    peer.send(&update(
        &[ORIGIN, AS_PATH, NEXT_HOP, BAD_ATOMIC].concat(),
        &[24, 192, 0, 2],
    ))
    .await;
    wait_routes(
        &instance,
        &["192.0.2.0/24", "198.51.100.0/24"],
        Duration::from_secs(10),
    )
    .await;
    // Missing AS_PATH: treat-as-withdraw.
    peer.send(&update(&[ORIGIN, NEXT_HOP].concat(), &[24, 192, 0, 2]))
        .await;
    wait_routes(&instance, &["198.51.100.0/24"], Duration::from_secs(10)).await;
    // Framing error on an IPv4-only session: treat-as-withdraw, no reset.
    let mut framed = good.clone();
    framed.extend_from_slice(&[0x80, 4, 9, 0]);
    peer.send(&update(&framed, &[24, 198, 51, 100])).await;
    wait_routes(&instance, &[], Duration::from_secs(10)).await;

    let status = instance.peers().await.remove(0);
    assert_eq!(status.state, State::Established);
    assert_eq!(status.counters.update_errors("treat_as_withdraw"), 3);
    assert_eq!(status.counters.update_errors("attr_discard"), 1);
    assert_eq!(status.counters.update_errors("session_reset"), 0);

    // A truncated MP_UNREACH_NLRI cannot be handled by withdrawal: 3/9.
    peer.send(&update(&[0x80, 15, 2, 0, 2], &[])).await;
    let n = peer.notification().await;
    assert_eq!((n.code, n.subcode), (3, 9));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while instance.peers().await[0]
        .counters
        .update_errors("session_reset")
        != 1
    {
        assert!(tokio::time::Instant::now() < deadline, "reset not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_errors_get_the_right_notification() {
    let (_instance, listen) = start(72, 73).await;
    let cases: [(Vec<u8>, (u8, u8)); 4] = [
        // B1: bad marker.
        ([vec![0xfe; 16], vec![0, 19, 4]].concat(), (1, 1)),
        // B1: length above 4096 without Extended Messages.
        ([vec![0xff; 16], vec![0x10, 0x01, 2]].concat(), (1, 2)),
        // B1: unknown message type.
        ([vec![0xff; 16], vec![0, 19, 9]].concat(), (1, 3)),
        // B1: KEEPALIVE longer than 19.
        ([vec![0xff; 16], vec![0, 20, 4, 0]].concat(), (1, 2)),
    ];
    for (bytes, want) in cases {
        let mut peer = RawPeer::establish([127, 0, 0, 73], listen).await;
        peer.send(&bytes).await;
        let n = peer.notification().await;
        assert_eq!((n.code, n.subcode), want, "for {bytes:02x?}");
        // Wait out the idle-hold backoff before the next case.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while _instance.peers().await[0].state != State::Active {
            assert!(
                tokio::time::Instant::now() < deadline,
                "peer never came back to Active"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_by_the_send_hold_timer() {
    // RFC 9687: with a tiny receive window and nobody reading, our writes
    // stall; after the send hold time the session is closed with code 8.
    let (instance, listen) = start_with(74, 75, |instance, cfg| {
        for i in 0..50_000u32 {
            let prefix = starling_wire::Prefix::V4(
                starling_wire::Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24)
                    .expect("/24"),
            );
            let attrs = starling_wire::PathAttributes {
                origin: Some(starling_wire::Origin::Igp),
                as_path: Some(starling_wire::AsPath::default()),
                med: Some(i),
                ..starling_wire::PathAttributes::default()
            };
            instance.originate(prefix, attrs);
        }
        cfg.send_hold_time = Some(Duration::from_secs(2));
    })
    .await;
    let _silent = RawPeer::establish_with([127, 0, 0, 75], listen, Some(4096)).await;
    // Never read again; wait for Starling to give up on us.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = instance.peers().await.remove(0);
        if let Some(starling_speaker::DownReason::Sent(n)) = &status.last_error {
            assert_eq!(n.code, 8, "{n}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "send hold timer never fired: {:?}",
            status.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
