//! Backpressure: a peer that stops reading is held back instead of being
//! queued everything; once it reads again it gets the table as it is now
//! (prefixes withdrawn meanwhile are withdrawn, changed ones carry their
//! latest attributes).

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::raw::RawPeer;
use common::{free_port, passive_peer, wait_active};
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_wire::{Message, Origin, PathAttributes, Prefix};

const ME: [u8; 4] = [127, 0, 0, 140];
const X: [u8; 4] = [127, 0, 0, 141];

fn prefix(i: u32) -> Prefix {
    Prefix::new(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), 32).expect("prefix")
}

/// Distinct attributes (the MED) per prefix: one UPDATE each.
fn attrs(med: u32) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        med: Some(med),
        ..PathAttributes::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_held_back_then_caught_up() {
    let listen = SocketAddr::from((ME, free_port(ME)));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, 140)),
        &[listen],
    )
    .await
    .expect("instance");
    instance.add_peer(passive_peer(140, 141), PeerPolicy::default());
    wait_active(&instance, 1).await;
    // A small receive buffer, and no reading for now.
    let mut x = RawPeer::establish_with(X, listen, Some(4096)).await;

    // About 10 MB of UPDATEs: more than the socket buffers and the 4 MiB
    // backlog hold.
    const N: u32 = 200_000;
    for i in 0..N {
        instance.originate(prefix(i), attrs(i));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let counts = instance.counts().await;
        if counts.loc_rib == N as usize && counts.peers[&IpAddr::from(X)].behind {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the peer was never held back: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While it is held back, some prefixes go and some change.
    for i in 0..1_000 {
        instance.withdraw(prefix(i));
    }
    for i in 1_000..2_000 {
        instance.originate(prefix(i), attrs(N + i));
    }
    let want: HashMap<Prefix, u32> = (1_000..N)
        .map(|i| (prefix(i), if i < 2_000 { N + i } else { i }))
        .collect();

    // Now read: the peer's view must end as the Loc-RIB is.
    let mut view: HashMap<Prefix, u32> = HashMap::new();
    while view != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the peer's view never matched: {} prefixes, {} wanted",
            view.len(),
            want.len()
        );
        if let Message::Update(p) = x.recv().await {
            for n in &p.update.withdrawn {
                view.remove(&n.prefix);
            }
            for n in &p.update.nlri {
                let med = p.update.attributes.med.expect("every route has a MED");
                view.insert(n.prefix, med);
            }
        }
    }
    let counts = instance.counts().await;
    let x_counts = counts.peers[&IpAddr::from(X)];
    assert!(!x_counts.behind);
    assert_eq!(x_counts.advertised, want.len());
}
