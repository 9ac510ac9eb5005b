//! The appliance's default listener is one dual-stack socket on `[::]`:
//! an IPv4 peer's connection arrives there as `::ffff:a.b.c.d` and must
//! still reach the session configured for `a.b.c.d`.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use common::raw::RawPeer;
use common::{passive_peer, wait_active, wait_state};
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_speaker::session::State;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_peer_reaches_its_session_through_a_dual_stack_listener() {
    let port = std::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0))
        .and_then(|l| l.local_addr())
        .expect("this test needs IPv6 ([::] must bind)")
        .port();
    let listen = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, 130)),
        &[listen],
    )
    .await
    .expect("instance on [::]");
    instance.add_peer(passive_peer(130, 131), PeerPolicy::default());
    wait_active(&instance, 1).await;

    let _peer =
        RawPeer::establish([127, 0, 0, 131], SocketAddr::from(([127, 0, 0, 130], port))).await;
    wait_state(&instance, State::Established, 1).await;
}
