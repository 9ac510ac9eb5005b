//! Peers come and go at runtime without disturbing the others: removing a
//! peer closes it with Cease / Peer De-configured, withdraws its routes
//! from everyone else, and leaves the other sessions untouched.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::raw::RawPeer;
use common::{free_port, passive_peer, wait_active, wait_routes, wait_state};
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_speaker::session::State;
use starling_wire::{Message, Prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_peer_leaves_the_others_alone() {
    let listen = SocketAddr::from(([127, 0, 0, 120], free_port([127, 0, 0, 120])));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, 120)),
        &[listen],
    )
    .await
    .expect("instance");
    instance.add_peer(passive_peer(120, 121), PeerPolicy::default());
    instance.add_peer(passive_peer(120, 122), PeerPolicy::default());
    wait_active(&instance, 2).await;
    let mut x = RawPeer::establish([127, 0, 0, 121], listen).await;
    let mut y = RawPeer::establish([127, 0, 0, 122], listen).await;

    // X announces a route; it reaches the Loc-RIB and Y.
    let attrs = [
        &[0x40u8, 1, 1, 0][..],
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0],
        &[0x40, 3, 4, 127, 0, 0, 121],
    ]
    .concat();
    let mut update = vec![0xff; 16];
    update.extend_from_slice(&((19 + 4 + attrs.len() + 4) as u16).to_be_bytes());
    update.extend_from_slice(&[2, 0, 0]);
    update.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    update.extend_from_slice(&attrs);
    update.extend_from_slice(&[24, 198, 51, 100]);
    x.send(&update).await;
    wait_routes(&instance, &["198.51.100.0/24"], Duration::from_secs(10)).await;
    let target: Prefix = "198.51.100.0/24".parse().expect("prefix");
    loop {
        if let Message::Update(p) = y.recv().await
            && p.update.nlri.iter().any(|n| n.prefix == target)
        {
            break;
        }
    }
    let y_before = instance
        .peers()
        .await
        .into_iter()
        .find(|p| p.remote.ip() == IpAddr::from([127, 0, 0, 122]))
        .expect("Y");

    // Remove X: it hears Cease/3, Y hears the withdrawal and nothing else.
    instance.remove_peer(IpAddr::from([127, 0, 0, 121]));
    let n = x.notification().await;
    assert_eq!((n.code, n.subcode), (6, 3));
    loop {
        match y.recv().await {
            Message::Update(p) if p.update.withdrawn.iter().any(|n| n.prefix == target) => break,
            Message::Notification(n) => panic!("Y was disturbed: {n}"),
            _ => {}
        }
    }
    wait_routes(&instance, &[], Duration::from_secs(10)).await;
    let peers = instance.peers().await;
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].state, State::Established);
    assert_eq!(
        peers[0].counters.established_transitions,
        y_before.counters.established_transitions
    );

    // And a peer added later comes up beside Y.
    instance.add_peer(passive_peer(120, 123), PeerPolicy::default());
    wait_active(&instance, 1).await;
    let _z = RawPeer::establish([127, 0, 0, 123], listen).await;
    // Our KEEPALIVE completes Z's handshake asynchronously; both must end
    // up Established.
    wait_state(&instance, State::Established, 2).await;
}
