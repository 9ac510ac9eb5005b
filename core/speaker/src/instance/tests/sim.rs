//! A simulated world for the instance: peers whose sessions are recorders,
//! a clock that moves only when the test says so.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use starling_wire::{
    AsPath, Family, Message, MessageType, Nlri, Notification, Origin, ParsedUpdate, PathAttributes,
    Prefix, Update, peek_header,
};

use crate::config::{GracefulRestartConfig, PeerConfig};
use crate::driver::{InputTicket, PeerStatus};
use crate::instance::{Core, Link, Links, PeerEvent, PeerPolicy, Request};
use crate::rib::{BestChange, RibConfig};
use crate::session::DownReason;
use crate::session::{local_open, negotiate};

pub(super) const LOCAL_AS: u32 = 64512;

/// What a peer's session was asked to do.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    pub(super) sent: Vec<Bytes>,
    pub(super) closed: Vec<Notification>,
    /// Octets the peer has not read: set by the test.
    pub(super) backlog: usize,
    pub(super) restarting: bool,
    pub(super) stopped: bool,
}

#[derive(Debug, Clone)]
pub(super) struct RecordingLink {
    remote: SocketAddr,
    pub(super) log: Rc<RefCell<Recorded>>,
}

impl Link for RecordingLink {
    fn send(&self, bytes: Bytes, _kind: MessageType) {
        self.log.borrow_mut().sent.push(bytes);
    }
    fn close(&self, notification: Notification) {
        self.log.borrow_mut().closed.push(notification);
    }
    fn set_passive(&self, _passive: bool) {}
    fn set_restarting(&self, restarting: bool) {
        self.log.borrow_mut().restarting = restarting;
    }
    fn backlog(&self) -> usize {
        self.log.borrow().backlog
    }
    fn is_closed(&self) -> bool {
        self.log.borrow().stopped
    }
    fn status(&self) -> PeerStatus {
        PeerStatus::idle(self.remote)
    }
}

#[derive(Debug, Default)]
pub(super) struct RecordingLinks {
    links: Rc<RefCell<HashMap<IpAddr, RecordingLink>>>,
}

impl Links for RecordingLinks {
    type Link = RecordingLink;

    fn start(&mut self, cfg: &PeerConfig) -> RecordingLink {
        let link = RecordingLink {
            remote: cfg.remote,
            log: Rc::default(),
        };
        self.links
            .borrow_mut()
            .insert(cfg.remote.ip(), link.clone());
        link
    }

    fn stop(&mut self, address: IpAddr, _notification: Option<Notification>) {
        if let Some(link) = self.links.borrow().get(&address) {
            link.log.borrow_mut().stopped = true;
        }
    }
}

/// What a peer was sent, decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Received {
    pub(super) announced: Vec<Prefix>,
    /// The IPv4 NEXT_HOP of each UPDATE that announced something.
    pub(super) next_hops: Vec<Ipv4Addr>,
    pub(super) withdrawn: Vec<Prefix>,
    pub(super) end_of_rib: usize,
}

/// One instance, its peers and its clock.
pub(super) struct Sim {
    pub(super) core: Core<RecordingLinks>,
    pub(super) now: Instant,
    links: Rc<RefCell<HashMap<IpAddr, RecordingLink>>>,
    configs: HashMap<IpAddr, PeerConfig>,
    /// Bytes of each peer's log already read by [`Sim::take_received`].
    read: HashMap<IpAddr, usize>,
}

pub(super) fn addr(n: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, n])
}

pub(super) fn prefix(s: &str) -> Prefix {
    s.parse().expect("prefix")
}

impl Sim {
    pub(super) fn new() -> Self {
        let links = RecordingLinks::default();
        let shared = links.links.clone();
        let now = Instant::now();
        let rib = RibConfig::new(LOCAL_AS, Ipv4Addr::new(192, 0, 2, 254));
        Self {
            core: Core::new(rib, links, now),
            now,
            links: shared,
            configs: HashMap::new(),
            read: HashMap::new(),
        }
    }

    pub(super) fn request(&mut self, request: Request) {
        self.core.handle_request(request, self.now);
    }

    /// Configure peer `n` (192.0.2.n) in `asn`, IPv4 unicast only, with
    /// graceful restart as `graceful` says.
    pub(super) fn add_peer(&mut self, n: u8, asn: u32, graceful: bool) {
        let mut cfg = PeerConfig::new(
            SocketAddr::from((addr(n), 179)),
            LOCAL_AS,
            asn,
            Ipv4Addr::new(192, 0, 2, 254),
        );
        cfg.families = vec![Family::IPV4_UNICAST];
        cfg.local_address = Some(IpAddr::from([192, 0, 2, 254]));
        cfg.graceful_restart = graceful.then(GracefulRestartConfig::default);
        self.configs.insert(addr(n), cfg.clone());
        self.request(Request::AddPeer(Box::new(cfg), PeerPolicy::default()));
    }

    fn event(&mut self, n: u8, event: PeerEvent) {
        self.core.handle_event(addr(n), event, self.now);
    }

    /// Peer `n`'s session comes up; its OPEN offers graceful restart
    /// (restart time `restart_time`, R bit `restarting`) when configured
    /// so on our side.
    /// Configure peer `n` as [`Sim::add_peer`] does, with no source
    /// address: the session takes whatever address the kernel picks.
    pub(super) fn add_peer_without_source(&mut self, n: u8, asn: u32) {
        self.add_peer(n, asn, false);
        let cfg = self.configs.get_mut(&addr(n)).expect("just added");
        cfg.local_address = None;
        let cfg = cfg.clone();
        self.request(Request::AddPeer(Box::new(cfg), PeerPolicy::default()));
    }

    /// Configure peer `n` as [`Sim::add_peer`] does, carrying IPv4 and
    /// IPv6 unicast over its IPv4 session.
    pub(super) fn add_dual_stack_peer(&mut self, n: u8, asn: u32) {
        self.add_peer(n, asn, false);
        let cfg = self.configs.get_mut(&addr(n)).expect("just added");
        cfg.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        let cfg = cfg.clone();
        self.request(Request::AddPeer(Box::new(cfg), PeerPolicy::default()));
    }

    /// Peer `n`'s session comes up over a connection whose local address
    /// is `local`.
    pub(super) fn establish_from(&mut self, n: u8, local: IpAddr) {
        let ours = self.configs[&addr(n)].clone();
        let theirs = PeerConfig::new(
            SocketAddr::from((local, 179)),
            ours.remote_as,
            LOCAL_AS,
            Ipv4Addr::new(198, 51, 100, n),
        );
        let mut negotiated = negotiate(&ours, &local_open(&theirs)).expect("the OPENs agree");
        negotiated.endpoints = Some((
            SocketAddr::from((local, 40000)),
            SocketAddr::from((addr(n), 179)),
        ));
        self.event(n, PeerEvent::Established(Box::new(negotiated)));
    }

    pub(super) fn establish(&mut self, n: u8, restart_time: u16, restarting: bool) {
        let ours = self.configs[&addr(n)].clone();
        let mut theirs = PeerConfig::new(
            SocketAddr::from(([192, 0, 2, 254], 179)),
            ours.remote_as,
            LOCAL_AS,
            Ipv4Addr::new(198, 51, 100, n),
        );
        theirs.families = ours.families.clone();
        theirs.graceful_restart = ours.graceful_restart.map(|_| GracefulRestartConfig {
            restart_time,
            restarting,
            forwarding_preserved: true,
            notification: true,
        });
        let negotiated = negotiate(&ours, &local_open(&theirs)).expect("the OPENs agree");
        self.event(n, PeerEvent::Established(Box::new(negotiated)));
    }

    fn update(&mut self, n: u8, update: Update) {
        let parsed = ParsedUpdate::from(update);
        let ticket = InputTicket::detached(&parsed);
        self.event(n, PeerEvent::Update(Box::new(parsed), ticket));
    }

    /// Peer `n` announces `prefixes` with an AS path of its own AS.
    pub(super) fn announce(&mut self, n: u8, prefixes: &[&str]) {
        let asn = self.configs[&addr(n)].remote_as;
        self.update(
            n,
            Update {
                attributes: PathAttributes {
                    origin: Some(Origin::Igp),
                    as_path: Some(AsPath::from_sequence([asn])),
                    next_hop: Some(Ipv4Addr::new(192, 0, 2, n)),
                    ..PathAttributes::default()
                },
                nlri: prefixes.iter().map(|s| Nlri::new(prefix(s))).collect(),
                ..Update::default()
            },
        );
    }

    pub(super) fn withdraw(&mut self, n: u8, prefixes: &[&str]) {
        let withdrawn = prefixes.iter().map(|s| Nlri::new(prefix(s))).collect();
        self.update(
            n,
            Update {
                withdrawn,
                ..Update::default()
            },
        );
    }

    /// Peer `n` has sent its whole IPv4 table.
    pub(super) fn end_of_rib(&mut self, n: u8) {
        self.update(n, Update::default());
    }

    pub(super) fn down(&mut self, n: u8, reason: DownReason) {
        self.event(n, PeerEvent::Down(reason));
    }

    pub(super) fn finish(&mut self) {
        self.core.finish_batch();
    }

    /// Move the clock on by `by`, firing every timer due on the way, each
    /// at its own deadline.
    pub(super) fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(at) = self.core.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.core.handle_timeout(self.now);
        }
        self.now = end;
    }

    /// The Loc-RIB's prefixes, sorted.
    pub(super) fn routes(&self) -> Vec<Prefix> {
        let mut routes: Vec<Prefix> = self.core.routes().into_iter().map(|r| r.0).collect();
        routes.sort();
        routes
    }

    pub(super) fn link(&self, n: u8) -> RecordingLink {
        self.links.borrow()[&addr(n)].clone()
    }

    /// Every batch of selection changes for the FIB since the last call.
    pub(super) fn best_changes(&mut self) -> Vec<Vec<BestChange>> {
        std::iter::from_fn(|| self.core.poll_best_changes()).collect()
    }

    /// What peer `n` was sent since the last call, decoded with its
    /// session's parameters.
    pub(super) fn take_received(&mut self, n: u8) -> Received {
        let ctx = self.core.peers[&addr(n)]
            .negotiated
            .as_ref()
            .expect("established")
            .codec
            .clone();
        let log = self.link(n).log;
        let log = log.borrow();
        let start = self.read.insert(addr(n), log.sent.len()).unwrap_or(0);
        let mut received = Received::default();
        for chunk in &log.sent[start..] {
            let mut rest = &chunk[..];
            while let Some(header) = peek_header(rest, 65_535).expect("a header") {
                let (message, tail) = rest.split_at(header.len);
                rest = tail;
                let Ok(Message::Update(parsed)) = Message::decode(message, &ctx) else {
                    continue;
                };
                let u = &parsed.update;
                if u.end_of_rib().is_some() {
                    received.end_of_rib += 1;
                }
                if !u.nlri.is_empty() {
                    received.next_hops.extend(u.attributes.next_hop);
                }
                received
                    .announced
                    .extend(u.nlri.iter().map(|nlri| nlri.prefix));
                received
                    .withdrawn
                    .extend(u.withdrawn.iter().map(|nlri| nlri.prefix));
            }
        }
        received.announced.sort();
        received.withdrawn.sort();
        received
    }
}
