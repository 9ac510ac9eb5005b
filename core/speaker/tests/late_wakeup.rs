//! A peer task that wakes after its hold deadline, because its worker
//! was busy, reads what the peer sent meanwhile before it acts on the
//! timer: KEEPALIVEs that arrived in time keep the session up.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::Duration;

use common::raw::RawPeer;
use common::{free_port, passive_peer, wait_active, wait_state};
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_speaker::session::State;
use starling_wire::{Context, Message};
use tokio::io::AsyncWriteExt;

const ME: [u8; 4] = [127, 0, 0, 170];
const X: [u8; 4] = [127, 0, 0, 171];
/// Seconds: the hold time Starling offers (the peer offers 90).
const HOLD: u16 = 3;

#[test]
fn a_keepalive_waiting_in_the_socket_beats_an_overdue_hold_timer() {
    // The instance runs on this thread alone, so blocking the thread
    // stalls every task of it, as a long pass would stall a busy worker.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listen = SocketAddr::from((ME, free_port(ME)));
    let instance = rt.block_on(async {
        let (instance, _best) = Instance::start(
            RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, 170)),
            &[listen],
        )
        .await
        .expect("instance");
        let mut cfg = passive_peer(170, 171);
        cfg.hold_time = HOLD;
        instance.add_peer(cfg, PeerPolicy::default());
        wait_active(&instance, 1).await;
        instance
    });

    // The peer, on a thread of its own, sends a KEEPALIVE every 300 ms
    // whatever Starling's thread is doing.
    let (stop, stopped) = mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut x = RawPeer::establish(X, listen).await;
            let keepalive = Message::Keepalive
                .to_bytes(&Context::default())
                .expect("keepalive");
            while stopped.try_recv().is_err() {
                if x.stream.write_all(&keepalive).await.is_err() {
                    // Starling closed the session: the assertions say why.
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
    });
    rt.block_on(wait_state(&instance, State::Established, 1));

    // Three times, Starling's thread is busy past the hold deadline. When
    // it wakes, the hold timer and the peer's KEEPALIVEs are both ready;
    // whichever the task looks at first, the session must stay up.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(u64::from(HOLD) + 1));
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    }
    let status = rt.block_on(instance.peers());
    let _ = stop.send(());
    peer.join().expect("the peer thread");
    let x = &status[0];
    assert_eq!(x.state, State::Established, "{:?}", x.last_error);
    assert_eq!(x.counters.established_transitions, 1, "{:?}", x.last_error);
}
