//! Import and export policy on live sessions: rejected imports never reach
//! the Loc-RIB, rejected exports never reach the peer, replaced attributes
//! are what the peer sees, a new policy corrects what peers already have,
//! and a policy that fails changes no route the peer has, but still
//! withdraws prefixes that are gone.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::raw::RawPeer;
use common::{free_port, passive_peer, wait_active, wait_routes};
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::policy::{Candidate, Direction, RoutePolicy, Verdict};
use starling_speaker::rib::RibConfig;
use starling_wire::attr::Community;
use starling_wire::capability::Capability;
use starling_wire::{Message, Prefix};

const X: [u8; 4] = [127, 0, 0, 126];
const Y: [u8; 4] = [127, 0, 0, 127];

/// Import from X: reject 192.0.2.0/24. Export to Y: reject 203.0.113.0/24,
/// tag 198.51.100.0/24 with 65000:1. `failing`: every call errs.
#[derive(Debug, Default)]
struct TestPolicy {
    failing: Mutex<bool>,
    /// Export 203.0.113.0/24 to Y after all.
    relent: Mutex<bool>,
}

impl RoutePolicy for TestPolicy {
    fn evaluate(
        &self,
        peer: IpAddr,
        direction: Direction,
        routes: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, String> {
        if *self.failing.lock().expect("lock") {
            return Err("plugin trapped".to_owned());
        }
        Ok(routes
            .iter()
            .map(|c| {
                let p = c.prefix.to_string();
                match (direction, peer == IpAddr::from(Y), p.as_str()) {
                    (Direction::Import, _, "192.0.2.0/24") => Verdict::Reject,
                    (Direction::Export, true, "203.0.113.0/24")
                        if !*self.relent.lock().expect("lock") =>
                    {
                        Verdict::Reject
                    }
                    (Direction::Export, true, "198.51.100.0/24") => {
                        assert!(c.from_peer);
                        let mut attrs = c.route.attrs.clone();
                        attrs.communities.push(Community(0xfde8_0001));
                        Verdict::Replace(Box::new(attrs))
                    }
                    _ => Verdict::Accept,
                }
            })
            .collect())
    }
}

/// An UPDATE from AS 64512 with next hop 127.0.0.126 for `prefixes` (/24s).
fn update(prefixes: &[[u8; 3]]) -> Vec<u8> {
    let attrs = [
        &[0x40u8, 1, 1, 0][..],
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0],
        &[0x40, 3, 4, 127, 0, 0, 126],
    ]
    .concat();
    let nlri: Vec<u8> = prefixes
        .iter()
        .flat_map(|p| [24, p[0], p[1], p[2]])
        .collect();
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((19 + 4 + attrs.len() + nlri.len()) as u16).to_be_bytes());
    out.extend_from_slice(&[2, 0, 0]);
    out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&attrs);
    out.extend_from_slice(&nlri);
    out
}

/// An UPDATE withdrawing one /24.
fn withdrawal(prefix: [u8; 3]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&27u16.to_be_bytes());
    out.extend_from_slice(&[2, 0, 4, 24, prefix[0], prefix[1], prefix[2], 0, 0]);
    out
}

/// Updates to `peer` until `prefix` is announced; its communities. No
/// step of the test may withdraw anything from the peer.
async fn announced(peer: &mut RawPeer, prefix: &str) -> Vec<Community> {
    let target: Prefix = prefix.parse().expect("prefix");
    loop {
        if let Message::Update(p) = peer.recv().await {
            assert!(
                p.update.withdrawn.is_empty(),
                "unexpected withdrawal: {p:?}"
            );
            assert!(
                !p.update
                    .nlri
                    .iter()
                    .any(|n| n.prefix.to_string() == "203.0.113.0/24")
                    || prefix == "203.0.113.0/24",
                "a rejected export reached the peer: {p:?}"
            );
            if p.update.nlri.iter().any(|n| n.prefix == target) {
                return p.update.attributes.communities;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_decides_imports_and_exports() {
    let me = [127, 0, 0, 125];
    let listen = SocketAddr::from((me, free_port(me)));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, 125)),
        &[listen],
    )
    .await
    .expect("instance");
    let policy = Arc::new(TestPolicy::default());
    instance.set_route_policy(Some(policy.clone()), Vec::new());
    instance.add_peer(passive_peer(125, 126), PeerPolicy::default());
    instance.add_peer(passive_peer(125, 127), PeerPolicy::default());
    wait_active(&instance, 2).await;
    let mut x = RawPeer::establish_offering(X, listen, vec![Capability::RouteRefresh]).await;
    let mut y = RawPeer::establish(Y, listen).await;

    x.send(&update(&[[198, 51, 100], [203, 0, 113], [192, 0, 2]]))
        .await;
    // Import: 192.0.2.0/24 never reaches the Loc-RIB.
    wait_routes(
        &instance,
        &["198.51.100.0/24", "203.0.113.0/24"],
        Duration::from_secs(10),
    )
    .await;
    // Export: Y gets 198.51.100.0/24 tagged, and never 203.0.113.0/24.
    assert_eq!(
        announced(&mut y, "198.51.100.0/24").await,
        [Community(0xfde8_0001)]
    );

    let counts = instance.counts().await;
    assert_eq!(counts.loc_rib, 2);
    let x_counts = counts.peers[&IpAddr::from(X)];
    assert_eq!((x_counts.accepted, x_counts.rejected), (2, 1));
    assert_eq!(counts.peers[&IpAddr::from(Y)].advertised, 1);

    // A failing policy changes nothing the peers have: no withdrawal.
    // (Had it withdrawn, Y would see the withdrawal before the
    // announcements below.) Commands run in order: once `routes()`
    // answers, the failed pass is over.
    *policy.failing.lock().expect("lock") = true;
    instance.set_route_policy(Some(policy.clone()), Vec::new());
    assert_eq!(instance.routes().await.len(), 2);
    // The failed export is retried: once the policy answers again (and
    // now lets 203.0.113.0/24 through), Y gets it without any new change.
    *policy.relent.lock().expect("lock") = true;
    *policy.failing.lock().expect("lock") = false;
    assert_eq!(
        announced(&mut y, "203.0.113.0/24").await,
        [],
        "the retry after the failed export"
    );

    // A prefix that goes while the policy fails is withdrawn all the
    // same: no policy can keep a route that is gone.
    *policy.failing.lock().expect("lock") = true;
    x.send(&withdrawal([198, 51, 100])).await;
    loop {
        if let Message::Update(p) = y.recv().await {
            assert!(
                p.update.nlri.is_empty(),
                "an announcement while the policy fails: {p:?}"
            );
            if p.update
                .withdrawn
                .iter()
                .any(|n| n.prefix.to_string() == "198.51.100.0/24")
            {
                break;
            }
        }
    }
    assert_eq!(
        instance.counts().await.peers[&IpAddr::from(Y)].advertised,
        1
    );
    *policy.failing.lock().expect("lock") = false;

    // No policy: X is asked to resend, and what it resends is no longer
    // filtered.
    instance.set_route_policy(None, vec![IpAddr::from(X)]);
    loop {
        if let Message::RouteRefresh(r) = x.recv().await {
            assert_eq!(r.family, starling_wire::Family::IPV4_UNICAST);
            break;
        }
    }
    x.send(&update(&[[198, 51, 100], [203, 0, 113], [192, 0, 2]]))
        .await;
    wait_routes(
        &instance,
        &["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"],
        Duration::from_secs(10),
    )
    .await;
    let x_counts = instance.counts().await.peers[&IpAddr::from(X)];
    assert_eq!((x_counts.accepted, x_counts.rejected), (3, 0));
}

/// Accepts everything; counts the routes it is asked to export.
#[derive(Debug, Default)]
struct CountingPolicy {
    exported: std::sync::atomic::AtomicUsize,
}

impl RoutePolicy for CountingPolicy {
    fn evaluate(
        &self,
        _peer: IpAddr,
        direction: Direction,
        routes: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, String> {
        if direction == Direction::Export {
            self.exported
                .fetch_add(routes.len(), std::sync::atomic::Ordering::Relaxed);
        }
        Ok(vec![Verdict::Accept; routes.len()])
    }
}

/// A policy whose exports are known unchanged (an import filter edited)
/// costs no export pass over the table; any other replacement does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_keeping_exports_is_not_asked_to_export_the_table_again() {
    let (me, from, to) = ([127, 0, 0, 128], [127, 0, 0, 129], [127, 0, 0, 130]);
    let listen = SocketAddr::from((me, free_port(me)));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, 128)),
        &[listen],
    )
    .await
    .expect("instance");
    let policy = Arc::new(CountingPolicy::default());
    instance.set_route_policy(Some(policy.clone()), Vec::new());
    instance.add_peer(passive_peer(128, 129), PeerPolicy::default());
    instance.add_peer(passive_peer(128, 130), PeerPolicy::default());
    wait_active(&instance, 2).await;
    let mut sender =
        RawPeer::establish_offering(from, listen, vec![Capability::RouteRefresh]).await;
    let mut receiver = RawPeer::establish(to, listen).await;
    sender.send(&update(&[[198, 51, 100], [192, 0, 2]])).await;
    announced(&mut receiver, "198.51.100.0/24").await;
    let exported = || policy.exported.load(std::sync::atomic::Ordering::Relaxed);
    // Commands run in order: once `routes()` answers, a pass is over.
    assert_eq!(instance.routes().await.len(), 2);
    let before = exported();

    instance.set_route_policy_keeping_exports(Some(policy.clone()), vec![IpAddr::from(from)]);
    assert_eq!(instance.routes().await.len(), 2);
    assert_eq!(exported(), before, "no export pass");
    // The refresh is still asked for: import rules changed.
    loop {
        if let Message::RouteRefresh(_) = sender.recv().await {
            break;
        }
    }

    instance.set_route_policy(Some(policy.clone()), Vec::new());
    assert_eq!(instance.routes().await.len(), 2);
    assert!(exported() >= before + 2, "every best route exported again");
}
