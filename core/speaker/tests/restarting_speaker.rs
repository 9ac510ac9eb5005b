//! Graceful restart as the restarting speaker (RFC 4724 §4.1): after
//! `Instance::recover`, our OPENs carry the R bit (and the F bit when
//! forwarding was kept), and peers that kept our routes as stale get our
//! table and End-of-RIB only once every peer has sent its own, or the
//! recovery time is up. A peer without graceful restart is not made to
//! wait, nor is a peer restarting too; the others wait for its table.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::raw::{RawPeer, announce, graceful_restart};
use common::{free_port, passive_peer, wait_active};
use starling_speaker::config::GracefulRestartConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_wire::capability::{Capability, GracefulRestart};
use starling_wire::{AsPath, Family, Message, Origin, PathAttributes, Prefix, encode_end_of_rib};

const ME: u8 = 140;

async fn restarted_instance(recovery: Duration) -> (Instance, SocketAddr) {
    let listen = SocketAddr::from(([127, 0, 0, ME], free_port([127, 0, 0, ME])));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, ME)),
        &[listen],
    )
    .await
    .expect("instance");
    instance.originate(
        "198.51.100.0/24".parse().expect("prefix"),
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(Ipv4Addr::new(127, 0, 0, ME)),
            ..PathAttributes::default()
        },
    );
    for peer in [141, 142, 143] {
        let mut cfg = passive_peer(ME, peer);
        cfg.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 120,
            forwarding_preserved: true,
            ..GracefulRestartConfig::default()
        });
        instance.add_peer(cfg, PeerPolicy::default());
    }
    instance.recover(recovery);
    wait_active(&instance, 3).await;
    (instance, listen)
}

/// A peer that offers graceful restart (a helper: it kept our routes).
fn helper() -> Vec<Capability> {
    graceful_restart(false)
}

fn our_graceful_restart(peer: &RawPeer) -> GracefulRestart {
    peer.their_open
        .as_ref()
        .expect("an OPEN")
        .capabilities()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        })
        .expect("a graceful restart capability")
}

async fn send_end_of_rib(peer: &mut RawPeer) {
    let mut bytes = Vec::new();
    encode_end_of_rib(Family::IPV4_UNICAST, &mut bytes);
    peer.send(&bytes).await;
}

/// The next UPDATE or End-of-RIB within `limit`, skipping keepalives.
async fn next_update(peer: &mut RawPeer, limit: Duration) -> Option<Message> {
    tokio::time::timeout(limit, async {
        loop {
            match peer.recv().await {
                Message::Keepalive => continue,
                other => return other,
            }
        }
    })
    .await
    .ok()
}

fn announces(message: &Message, prefix: &str) -> bool {
    let want: Prefix = prefix.parse().expect("prefix");
    matches!(message, Message::Update(u) if u.update.nlri.iter().any(|n| n.prefix == want))
}

fn is_end_of_rib(message: &Message) -> bool {
    matches!(message, Message::Update(u) if u.update.end_of_rib() == Some(Family::IPV4_UNICAST))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_wait_until_every_peer_has_sent_its_own() {
    let (instance, listen) = restarted_instance(Duration::from_secs(60)).await;

    let mut a = RawPeer::establish_offering([127, 0, 0, 141], listen, helper()).await;
    let ours = our_graceful_restart(&a);
    assert!(ours.restarting, "the R bit while recovering: {ours:?}");
    assert!(
        ours.families
            .iter()
            .any(|f| f.family == Family::IPV4_UNICAST && f.forwarding_preserved),
        "the F bit: forwarding was kept: {ours:?}"
    );
    send_end_of_rib(&mut a).await;
    // Two other peers have not sent their tables: A gets nothing yet.
    let early = next_update(&mut a, Duration::from_millis(1500)).await;
    assert!(early.is_none(), "sent before recovery ended: {early:?}");

    // A peer without graceful restart dropped our routes: it gets the
    // table at once rather than wait with nothing.
    let mut c = RawPeer::establish([127, 0, 0, 143], listen).await;
    let first = next_update(&mut c, Duration::from_secs(5)).await;
    assert!(
        first
            .as_ref()
            .is_some_and(|m| announces(m, "198.51.100.0/24")),
        "{first:?}"
    );
    send_end_of_rib(&mut c).await;

    // The last peer sends its table: recovery ends, A and B get ours,
    // then End-of-RIB.
    let mut b = RawPeer::establish_offering([127, 0, 0, 142], listen, helper()).await;
    send_end_of_rib(&mut b).await;
    for peer in [&mut a, &mut b] {
        let update = next_update(peer, Duration::from_secs(5)).await;
        assert!(
            update
                .as_ref()
                .is_some_and(|m| announces(m, "198.51.100.0/24")),
            "{update:?}"
        );
        let eor = next_update(peer, Duration::from_secs(5)).await;
        assert!(eor.as_ref().is_some_and(is_end_of_rib), "{eor:?}");
    }

    // Recovery is over: a new session's OPEN has no R bit.
    drop(a);
    wait_active(&instance, 1).await;
    let a = RawPeer::establish_offering([127, 0, 0, 141], listen, helper()).await;
    assert!(!our_graceful_restart(&a).restarting);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_ends_at_its_limit_when_a_peer_never_comes() {
    let (_instance, listen) = restarted_instance(Duration::from_secs(2)).await;
    let started = tokio::time::Instant::now();
    let mut a = RawPeer::establish_offering([127, 0, 0, 141], listen, helper()).await;
    send_end_of_rib(&mut a).await;
    let update = next_update(&mut a, Duration::from_secs(10)).await;
    assert!(
        update
            .as_ref()
            .is_some_and(|m| announces(m, "198.51.100.0/24")),
        "{update:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "sent before the recovery limit: {:?}",
        started.elapsed()
    );
    let eor = next_update(&mut a, Duration::from_secs(5)).await;
    assert!(eor.as_ref().is_some_and(is_end_of_rib), "{eor:?}");
}

/// A peer that restarted as well (the R bit).
fn restarting() -> Vec<Capability> {
    graceful_restart(true)
}

/// Both ends restarted (a reflector and a client losing power together):
/// the restarting peer is sent our table at once, since it sends its own
/// only after our End-of-RIB; the other peers wait for its table, so
/// their End-of-RIB never comes before its routes (they would sweep them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_restarting_too_is_sent_our_table_and_the_others_wait_for_its_own() {
    let (_instance, listen) = restarted_instance(Duration::from_secs(60)).await;
    let mut a = RawPeer::establish_offering([127, 0, 0, 141], listen, helper()).await;
    send_end_of_rib(&mut a).await;
    let mut c = RawPeer::establish_offering([127, 0, 0, 143], listen, helper()).await;
    send_end_of_rib(&mut c).await;

    let mut b = RawPeer::establish_offering([127, 0, 0, 142], listen, restarting()).await;
    let update = next_update(&mut b, Duration::from_secs(5)).await;
    assert!(
        update
            .as_ref()
            .is_some_and(|m| announces(m, "198.51.100.0/24")),
        "{update:?}"
    );
    let eor = next_update(&mut b, Duration::from_secs(5)).await;
    assert!(eor.as_ref().is_some_and(is_end_of_rib), "{eor:?}");
    let early = next_update(&mut a, Duration::from_millis(1000)).await;
    assert!(early.is_none(), "sent before B's table came: {early:?}");

    b.send(&announce("203.0.113.0/24", Ipv4Addr::new(127, 0, 0, 142)))
        .await;
    send_end_of_rib(&mut b).await;
    for peer in [&mut a, &mut c] {
        let mut got = Vec::new();
        loop {
            let message = next_update(peer, Duration::from_secs(5))
                .await
                .expect("the table, then End-of-RIB");
            if is_end_of_rib(&message) {
                break;
            }
            got.push(message);
        }
        for prefix in ["198.51.100.0/24", "203.0.113.0/24"] {
            assert!(
                got.iter().any(|m| announces(m, prefix)),
                "{prefix} before End-of-RIB: {got:?}"
            );
        }
    }
}
