//! Update groups over live sessions: peers that export alike share one
//! group, and each is still sent exactly what it should hold. No peer gets
//! its own route back; a peer whose own route wins loses the one it had; a
//! peer that joins late gets the group's table; a peer whose policy
//! changes leaves the group and keeps a correct view.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::raw::RawPeer;
use common::{free_port, passive_peer, wait_active};
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::policy::{Candidate, Direction, RoutePolicy, Verdict};
use starling_speaker::rib::export::NextHopMode;
use starling_speaker::rib::{RibConfig, Source};
use starling_wire::attr::{AsPath, Community};
use starling_wire::capability::Capability;
use starling_wire::{Context, Message, Nlri, Origin, ParsedUpdate, PathAttributes, Prefix, Update};

const ME: u8 = 160;
const A: u8 = 161;
const B: u8 = 162;
const C: u8 = 163;
const D: u8 = 164;

fn address(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

fn p(s: &str) -> Prefix {
    s.parse().expect("prefix")
}

/// The session codec of the test peers: 4-octet ASes, IPv4 unicast.
fn ctx() -> Context {
    Context::external(64513)
}

/// An UPDATE from test peer `from` announcing `prefix` with this AS_PATH.
fn announce(from: u8, prefix: &str, as_path: &[u32]) -> Vec<u8> {
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(as_path.iter().copied())),
            next_hop: Some(Ipv4Addr::new(127, 0, 0, from)),
            ..PathAttributes::default()
        },
        nlri: vec![Nlri::new(p(prefix))],
        ..Update::default()
    };
    Message::Update(ParsedUpdate::from(update))
        .to_bytes(&ctx())
        .expect("encode")
}

fn withdraw(prefix: &str) -> Vec<u8> {
    let update = Update {
        withdrawn: vec![Nlri::new(p(prefix))],
        ..Update::default()
    };
    Message::Update(ParsedUpdate::from(update))
        .to_bytes(&ctx())
        .expect("encode")
}

/// A test peer and what it holds: prefix → the AS the route originated
/// in (0 for ours).
struct Peer {
    raw: RawPeer,
    view: BTreeMap<Prefix, u32>,
    /// Prefixes received with community 64513:1.
    tagged: usize,
}

impl Peer {
    async fn connect(n: u8, listen: SocketAddr) -> Self {
        let four_octet = vec![Capability::FourOctetAs(64512)];
        Self {
            raw: RawPeer::establish_offering([127, 0, 0, n], listen, four_octet).await,
            view: BTreeMap::new(),
            tagged: 0,
        }
    }

    /// Read until `marker` is held: everything sent before it is in the
    /// view then.
    async fn read_until(&mut self, marker: Prefix) {
        while !self.view.contains_key(&marker) {
            let Message::Update(u) = self.raw.recv().await else {
                continue;
            };
            for n in u.update.withdrawals(false) {
                self.view.remove(&n.prefix);
            }
            let origin = u
                .update
                .attributes
                .as_path
                .as_ref()
                .and_then(|path| path.origin_asn())
                .filter(|asn| *asn != 64513)
                .unwrap_or(0);
            let tagged = u
                .update
                .attributes
                .communities
                .contains(&Community(0xfc01_0001));
            for n in &u.update.nlri {
                self.view.insert(n.prefix, origin);
                self.tagged += usize::from(tagged);
            }
        }
    }
}

/// A route of ours, sent after the step under test has reached the
/// Loc-RIB: each peer's view is complete once it holds it. The markers are
/// left out of the views compared.
async fn settle(instance: &Instance, peers: &mut [&mut Peer], step: u8) {
    let marker = p(&format!("192.0.2.{step}/32"));
    instance.originate(
        marker,
        PathAttributes {
            origin: Some(Origin::Igp),
            ..PathAttributes::default()
        },
    );
    for peer in peers.iter_mut() {
        peer.read_until(marker).await;
        peer.view
            .retain(|prefix, _| !prefix.to_string().starts_with("192.0.2."));
    }
}

fn view(routes: &[(&str, u32)]) -> BTreeMap<Prefix, u32> {
    routes.iter().map(|(s, origin)| (p(s), *origin)).collect()
}

/// Poll until the Loc-RIB's best path for `prefix` is from `source`
/// (`None`: no route).
async fn wait_best(instance: &Instance, prefix: &str, source: Option<u8>) {
    let want = source.map(|n| Source::Peer(address(n)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let best = instance
            .routes()
            .await
            .into_iter()
            .find(|(q, _, _)| *q == p(prefix))
            .map(|(_, _, s)| s);
        if best == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "best path for {prefix} is from {best:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_export_alike_share_a_group_and_each_holds_what_it_should() {
    let me = [127, 0, 0, ME];
    let listen = SocketAddr::from((me, free_port(me)));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, ME)),
        &[listen],
    )
    .await
    .expect("instance");
    for n in [A, B, C, D] {
        instance.add_peer(passive_peer(ME, n), PeerPolicy::default());
    }
    wait_active(&instance, 4).await;
    let ours = "198.51.100.0/24";
    instance.originate(
        p(ours),
        PathAttributes {
            origin: Some(Origin::Igp),
            ..PathAttributes::default()
        },
    );
    let mut a = Peer::connect(A, listen).await;
    let mut b = Peer::connect(B, listen).await;
    let mut c = Peer::connect(C, listen).await;
    settle(&instance, &mut [&mut a, &mut b, &mut c], 1).await;
    let counts = instance.counts().await;
    assert_eq!(counts.update_groups, 1, "three alike peers, one group");
    for peer in [&a, &b, &c] {
        assert_eq!(peer.view, view(&[(ours, 0)]));
    }

    // A's route goes to everyone but A.
    let theirs = "203.0.113.0/24";
    a.raw.send(&announce(A, theirs, &[64512, 65001])).await;
    wait_best(&instance, theirs, Some(A)).await;
    settle(&instance, &mut [&mut a, &mut b, &mut c], 2).await;
    assert_eq!(a.view, view(&[(ours, 0)]), "A is not sent its own route");
    assert_eq!(b.view, view(&[(ours, 0), (theirs, 65001)]));
    assert_eq!(c.view, view(&[(ours, 0), (theirs, 65001)]));

    // B's shorter path wins: B loses A's route, A gets B's.
    b.raw.send(&announce(B, theirs, &[64512])).await;
    wait_best(&instance, theirs, Some(B)).await;
    settle(&instance, &mut [&mut a, &mut b, &mut c], 3).await;
    assert_eq!(a.view, view(&[(ours, 0), (theirs, 64512)]));
    assert_eq!(b.view, view(&[(ours, 0)]), "B holds no route of its own");
    assert_eq!(c.view, view(&[(ours, 0), (theirs, 64512)]));

    // D comes late: it gets the group's table (ordered by attribute set,
    // so the step's marker is sent once D is in).
    let mut d = Peer::connect(D, listen).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while instance.counts().await.peers[&address(D)].advertised == 0 {
        assert!(tokio::time::Instant::now() < deadline, "D never joined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle(&instance, &mut [&mut a, &mut b, &mut c, &mut d], 4).await;
    assert_eq!(d.view, view(&[(ours, 0), (theirs, 64512)]));
    let counts = instance.counts().await;
    assert_eq!(counts.update_groups, 1, "D joined the group");
    let advertised = |n: u8| counts.peers[&address(n)].advertised;
    // Markers included: ours, four of them, and B's route but to B.
    assert_eq!([advertised(A), advertised(B), advertised(D)], [6, 5, 6]);

    // B withdraws: A's route is back, for everyone but A.
    b.raw.send(&withdraw(theirs)).await;
    wait_best(&instance, theirs, Some(A)).await;
    settle(&instance, &mut [&mut a, &mut b, &mut c, &mut d], 5).await;
    assert_eq!(a.view, view(&[(ours, 0)]), "A's own route replaced B's");
    for peer in [&b, &c, &d] {
        assert_eq!(peer.view, view(&[(ours, 0), (theirs, 65001)]));
    }

    // C's policy changes (next hop self, which eBGP does anyway): it
    // leaves the group, and its view stays right through the next changes.
    instance.update_peer_policy(
        address(C),
        PeerPolicy {
            next_hop: NextHopMode::SelfAddress,
            ..PeerPolicy::default()
        },
    );
    c.raw.send(&announce(C, theirs, &[64512])).await;
    wait_best(&instance, theirs, Some(C)).await;
    settle(&instance, &mut [&mut a, &mut b, &mut c, &mut d], 6).await;
    assert_eq!(c.view, view(&[(ours, 0)]), "C holds no route of its own");
    for peer in [&a, &b, &d] {
        assert_eq!(peer.view, view(&[(ours, 0), (theirs, 64512)]));
    }
    assert_eq!(instance.counts().await.update_groups, 2, "C alone now");

    // A's session ends: its route leaves every view, and its group lives
    // on for the others.
    drop(a);
    c.raw.send(&withdraw(theirs)).await;
    wait_best(&instance, theirs, None).await;
    settle(&instance, &mut [&mut b, &mut c, &mut d], 7).await;
    for peer in [&b, &c, &d] {
        assert_eq!(peer.view, view(&[(ours, 0)]));
    }
}

/// Tags every exported route with 64513:1; promises A and B the same
/// verdicts, and C nothing.
#[derive(Debug)]
struct Tagging;

impl RoutePolicy for Tagging {
    fn evaluate(
        &self,
        _peer: IpAddr,
        direction: Direction,
        routes: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, String> {
        Ok(routes
            .iter()
            .map(|c| match direction {
                Direction::Import => Verdict::Accept,
                Direction::Export => {
                    let mut attrs = c.route.attrs.clone();
                    attrs.communities.push(Community(0xfc01_0001));
                    Verdict::Replace(Box::new(attrs))
                }
            })
            .collect())
    }

    fn export_class(&self, peer: IpAddr) -> Option<u64> {
        (peer != address(C)).then_some(7)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_policy_shares_groups_only_among_peers_it_promises_alike() {
    let me = [127, 0, 0, ME + 10];
    let listen = SocketAddr::from((me, free_port(me)));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, ME + 10)),
        &[listen],
    )
    .await
    .expect("instance");
    instance.set_route_policy(Some(std::sync::Arc::new(Tagging)), Vec::new());
    for n in [A, B, C] {
        instance.add_peer(passive_peer(ME + 10, n), PeerPolicy::default());
    }
    wait_active(&instance, 3).await;
    let mut a = Peer::connect(A, listen).await;
    let mut b = Peer::connect(B, listen).await;
    let mut c = Peer::connect(C, listen).await;
    let theirs = "203.0.113.0/24";
    a.raw.send(&announce(A, theirs, &[64512, 65001])).await;
    wait_best(&instance, theirs, Some(A)).await;
    settle(&instance, &mut [&mut a, &mut b, &mut c], 1).await;
    assert_eq!(a.view, view(&[]), "A is not sent its own route");
    assert_eq!(b.view, view(&[(theirs, 65001)]));
    assert_eq!(c.view, view(&[(theirs, 65001)]));
    for peer in [&b, &c] {
        assert_eq!(peer.tagged, 2, "the route and the marker carry the tag");
    }
    assert_eq!(instance.counts().await.update_groups, 2, "A and B; C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebgp_peers_in_different_ases_share_a_group() {
    let me = [127, 0, 0, ME + 20];
    let listen = SocketAddr::from((me, free_port(me)));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, ME + 20)),
        &[listen],
    )
    .await
    .expect("instance");
    // As an exchange's members: one AS each.
    let members = [(A, 64512), (B, 65010)];
    for (n, asn) in members {
        let mut cfg = passive_peer(ME + 20, n);
        cfg.remote_as = asn;
        instance.add_peer(cfg, PeerPolicy::default());
    }
    wait_active(&instance, 2).await;
    let mut peers = Vec::new();
    for (n, asn) in members {
        let four_octet = vec![Capability::FourOctetAs(asn)];
        peers.push(Peer {
            raw: RawPeer::establish_as([127, 0, 0, n], listen, asn, four_octet).await,
            view: BTreeMap::new(),
            tagged: 0,
        });
    }
    let [a, b] = &mut peers[..] else {
        unreachable!()
    };
    settle(&instance, &mut [a, b], 1).await;
    assert_eq!(instance.counts().await.update_groups, 1);
}

/// The node's subnet (a ToR's, say) matters only to eBGP peers on it: a
/// third-party next hop can go to them alone. Peers elsewhere still
/// share a group however many there are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_ebgp_peers_on_the_shared_subnet_are_grouped_alone() {
    let me = [127, 0, 0, ME + 21];
    let listen = SocketAddr::from((me, free_port(me)));
    let (instance, _best) = Instance::start(
        RibConfig::new(64513, Ipv4Addr::new(192, 0, 2, ME + 21)),
        &[listen],
    )
    .await
    .expect("instance");
    let elsewhere = (IpAddr::from([192, 0, 2, 0]), 24);
    let here = (IpAddr::from([127, 0, 0, 0]), 8);
    let members = [
        (A, 64512, elsewhere),
        (B, 65010, elsewhere),
        (C, 65011, here),
    ];
    for (n, asn, subnet) in members {
        let mut cfg = passive_peer(ME + 21, n);
        cfg.remote_as = asn;
        let policy = PeerPolicy {
            shared_subnet: Some(subnet),
            ..PeerPolicy::default()
        };
        instance.add_peer(cfg, policy);
    }
    wait_active(&instance, 3).await;
    let mut peers = Vec::new();
    for (n, asn, _) in members {
        let four_octet = vec![Capability::FourOctetAs(asn)];
        peers.push(Peer {
            raw: RawPeer::establish_as([127, 0, 0, n], listen, asn, four_octet).await,
            view: BTreeMap::new(),
            tagged: 0,
        });
    }
    let [a, b, c] = &mut peers[..] else {
        unreachable!()
    };
    settle(&instance, &mut [a, b, c], 1).await;
    assert_eq!(
        instance.counts().await.update_groups,
        2,
        "A and B (off the subnet) share one; C (on it) has its own"
    );
}
