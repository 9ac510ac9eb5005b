//! Entry points that feed the sans-I/O session and instance arbitrary
//! sequences of inputs — messages, connection events, time steps, peers
//! coming and going — shared by the cargo-fuzz targets (`core/speaker/fuzz`)
//! and the corpus replay test on stable. Each checks invariants by
//! panicking, which is how a fuzzer sees a failure:
//!
//! - [`session`]: no panic; every state change the session reports is one
//!   RFC 4271's FSM allows, starts where the last one ended, and is what
//!   `state()` says; UPDATEs come out only while Established.
//! - [`instance`]: no panic; every route in the Loc-RIB is one this node
//!   originates or one a configured peer announced in an UPDATE the
//!   codec accepted; a removed peer's routes are gone once its batch ends.

// A panic is how a fuzzer (and the corpus replay test) sees a failure.
#![allow(clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use starling_wire::{
    Family, Message, MessageType, Notification, PathAttributes, Prefix, decode_update,
};

use crate::config::{GracefulRestartConfig, PeerConfig};
use crate::driver::{InputTicket, PeerEvent, PeerStatus};
use crate::instance::{Core, Link, Links, PeerPolicy, Request};
use crate::rib::{RibConfig, Source};
use crate::session::{DownReason, Input, Output, Session, State, local_open, negotiate};

/// Reads a fuzzer's bytes as a script, one small decision at a time; an
/// exhausted script reads zeros.
struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(first)
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (chunk, rest) = self.data.split_at(n);
        self.data = rest;
        chunk
    }
}

const LOCAL_AS: u32 = 64512;

fn config(n: u8, remote_as: u32) -> PeerConfig {
    let mut cfg = PeerConfig::new(
        SocketAddr::from(([192, 0, 2, n], 179)),
        LOCAL_AS,
        remote_as,
        Ipv4Addr::new(192, 0, 2, 254),
    );
    cfg.local_address = Some(IpAddr::from([192, 0, 2, 254]));
    cfg.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    cfg.graceful_restart = Some(GracefulRestartConfig::default());
    cfg
}

/// The peer's side of a session with `ours`: its OPEN, as it would send it.
fn their_open(ours: &PeerConfig, n: u8) -> starling_wire::Open {
    let mut theirs = PeerConfig::new(
        SocketAddr::from(([192, 0, 2, 254], 179)),
        ours.remote_as,
        ours.local_as,
        Ipv4Addr::new(198, 51, 100, n),
    );
    theirs.families = ours.families.clone();
    theirs.graceful_restart = ours.graceful_restart;
    local_open(&theirs)
}

fn framed(kind: MessageType, body: &[u8]) -> Vec<u8> {
    let len = (19 + body.len()).min(usize::from(u16::MAX));
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&body[..len - 19]);
    out
}

/// Moves RFC 4271's FSM allows (§8.2.2), as Starling implements it.
fn legal(from: State, to: State) -> bool {
    use State::*;
    matches!(
        (from, to),
        (Idle, Connect | Active)
            | (Connect, Active | OpenSent | Idle)
            | (Active, Connect | OpenSent | Idle)
            | (OpenSent, Active | OpenConfirm | Idle)
            | (OpenConfirm, Established | Idle)
            | (Established, Idle)
    )
}

/// One session fed a script of inputs: start and stop, connections that
/// come and go, bytes (arbitrary, or the peer's well-formed OPEN and
/// KEEPALIVE so the script can reach Established), and time. Whether it
/// reached Established, so tests can tell the seeds do.
pub fn session(data: &[u8]) -> bool {
    let mut script = Script { data };
    let ours = config(1, 65001);
    let mut open = Vec::new();
    Message::Open(their_open(&ours, 1))
        .encode(&starling_wire::Context::default(), &mut open)
        .expect("an OPEN encodes");
    let mut session = Session::new(ours);
    let mut now = Instant::now();
    let mut state = session.state();
    let mut established = false;
    let mut steps = 0;
    while let Some(op) = script.byte() {
        steps += 1;
        if steps > 256 {
            break;
        }
        match op % 9 {
            0 => session.handle(now, Input::Start),
            1 => session.handle(now, Input::Stop),
            2 => session.handle(now, Input::Connected),
            3 => session.handle(now, Input::ConnectFailed),
            4 => session.handle(now, Input::Disconnected),
            5 => {
                let n = usize::from(script.byte().unwrap_or(0));
                let chunk = script.bytes(n).to_vec();
                session.handle(now, Input::Received(&chunk));
            }
            6 => session.handle(now, Input::Received(&open)),
            7 => {
                let keepalive = framed(MessageType::Keepalive, &[]);
                session.handle(now, Input::Received(&keepalive));
            }
            _ => {
                // Time passes: up to ~4 minutes, in steps the timers see.
                let secs = u64::from(script.byte().unwrap_or(0));
                now += Duration::from_secs(secs);
                session.handle_timeout(now);
            }
        }
        while let Some(output) = session.poll_output() {
            match output {
                Output::StateChanged { from, to } => {
                    assert_eq!(from, state, "a change from a state it was not in");
                    assert!(legal(from, to), "illegal move {from:?} → {to:?}");
                    state = to;
                    established |= to == State::Established;
                }
                Output::Update(_) => {
                    assert_eq!(state, State::Established, "an UPDATE outside Established");
                }
                Output::Established(_) => {
                    assert_eq!(
                        state,
                        State::Established,
                        "Established reported in {state:?}"
                    );
                }
                _ => {}
            }
        }
        assert_eq!(
            session.state(),
            state,
            "state() and the reported changes disagree"
        );
    }
    established
}

/// Links that go nowhere: the instance's I/O, for the fuzzer.
#[derive(Debug, Default)]
struct NullLinks;

#[derive(Debug, Clone)]
struct NullLink(SocketAddr);

impl Link for NullLink {
    fn send(&self, _bytes: Bytes, _kind: MessageType) {}
    fn close(&self, _notification: Notification) {}
    fn set_passive(&self, _passive: bool) {}
    fn set_restarting(&self, _restarting: bool) {}
    fn backlog(&self) -> usize {
        0
    }
    fn is_closed(&self) -> bool {
        false
    }
    fn status(&self) -> PeerStatus {
        PeerStatus::idle(self.0)
    }
}

impl Links for NullLinks {
    type Link = NullLink;
    fn start(&mut self, cfg: &PeerConfig) -> NullLink {
        NullLink(cfg.remote)
    }
    fn stop(&mut self, _address: IpAddr, _notification: Option<Notification>) {}
}

/// Three peers (eBGP; iBGP route-reflector client; iBGP), both families,
/// graceful restart on, driven by a script: peers added, established,
/// sending arbitrary UPDATE bodies, going down, removed; prefixes
/// originated and withdrawn; batches ending; time passing. The most
/// routes a peer had in the Loc-RIB at once, so tests can tell the seeds
/// get that far.
pub fn instance(data: &[u8]) -> usize {
    let mut script = Script { data };
    let mut now = Instant::now();
    let mut core = Core::new(
        RibConfig::new(LOCAL_AS, Ipv4Addr::new(192, 0, 2, 254)),
        NullLinks,
        now,
    );
    let asn = |n: u8| if n == 1 { 65001 } else { LOCAL_AS };
    let mut configured: HashMap<IpAddr, PeerConfig> = HashMap::new();
    let mut negotiated: HashMap<IpAddr, starling_wire::Context> = HashMap::new();
    let mut announced: BTreeSet<Prefix> = BTreeSet::new();
    let mut originated: BTreeSet<Prefix> = BTreeSet::new();
    let mut learnt = 0;
    let mut steps = 0;
    while let Some(op) = script.byte() {
        steps += 1;
        if steps > 256 {
            break;
        }
        let n = 1 + script.byte().unwrap_or(0) % 3;
        let address = IpAddr::from([192, 0, 2, n]);
        match op % 10 {
            0 => {
                let cfg = config(n, asn(n));
                let policy = PeerPolicy {
                    rr_client: n == 2,
                    ..PeerPolicy::default()
                };
                configured.insert(address, cfg.clone());
                negotiated.remove(&address);
                core.handle_request(Request::AddPeer(Box::new(cfg), policy), now);
            }
            1 => {
                let Some(cfg) = configured.get(&address) else {
                    continue;
                };
                if let Ok(n) = negotiate(cfg, &their_open(cfg, n)) {
                    negotiated.insert(address, n.codec.clone());
                    core.handle_event(address, PeerEvent::Established(Box::new(n)), now);
                }
            }
            2 => {
                let len = usize::from(script.byte().unwrap_or(0)) * 2;
                let body = script.bytes(len).to_vec();
                let Some(ctx) = negotiated.get(&address) else {
                    continue;
                };
                if let Ok(parsed) = decode_update(&body, ctx) {
                    let u = &parsed.update;
                    announced.extend(u.nlri.iter().map(|n| n.prefix));
                    if let Some(mp) = &u.mp_reach {
                        announced.extend(mp.nlri.iter().map(|n| n.prefix));
                    }
                    let ticket = InputTicket::detached(&parsed);
                    core.handle_event(address, PeerEvent::Update(Box::new(parsed), ticket), now);
                }
            }
            3 => {
                let reason = match script.byte().unwrap_or(0) % 3 {
                    0 => DownReason::ConnectionLost,
                    1 => DownReason::Sent(Notification::new(6, 2)),
                    _ => DownReason::Received(Notification::new(4, 0)),
                };
                negotiated.remove(&address);
                core.handle_event(address, PeerEvent::Down(reason), now);
            }
            4 => {
                let secs = u64::from(script.byte().unwrap_or(0)) * 4;
                let end = now + Duration::from_secs(secs);
                while let Some(at) = core.poll_timeout().filter(|at| *at <= end) {
                    now = now.max(at);
                    core.handle_timeout(now);
                }
                now = end;
            }
            5 | 6 => {
                let raw = script.bytes(5);
                let mut octets = [0u8; 5];
                octets[..raw.len()].copy_from_slice(raw);
                let prefix = if octets[0] & 1 == 0 {
                    let len = 8 + octets[4] % 25;
                    Prefix::new(IpAddr::from([octets[1], octets[2], octets[3], 0]), len)
                } else {
                    let len = 16 + octets[4] % 49;
                    let addr = std::net::Ipv6Addr::new(
                        0x2001,
                        0xdb8,
                        u16::from(octets[1]),
                        u16::from(octets[2]),
                        0,
                        0,
                        0,
                        0,
                    );
                    Prefix::new(IpAddr::V6(addr), len)
                };
                let Some(prefix) = prefix else {
                    continue;
                };
                if op % 10 == 5 {
                    originated.insert(prefix);
                    let attrs = PathAttributes {
                        origin: Some(starling_wire::Origin::Igp),
                        ..PathAttributes::default()
                    };
                    core.handle_request(Request::Originate(prefix, Box::new(attrs)), now);
                } else {
                    originated.remove(&prefix);
                    core.handle_request(Request::Withdraw(prefix), now);
                }
            }
            7 => {
                configured.remove(&address);
                negotiated.remove(&address);
                core.handle_request(Request::RemovePeer(address, None), now);
            }
            8 => {
                let Some(ctx) = negotiated.get(&address) else {
                    continue;
                };
                // End-of-RIB for IPv4: an empty UPDATE.
                if let Ok(parsed) = decode_update(&[0, 0, 0, 0], ctx) {
                    let ticket = InputTicket::detached(&parsed);
                    core.handle_event(address, PeerEvent::Update(Box::new(parsed), ticket), now);
                }
            }
            _ => {
                core.finish_batch();
                learnt = learnt.max(check(&core, &configured, &announced, &originated));
            }
        }
        // Best paths for the FIB pile up otherwise.
        while core.poll_best_changes().is_some() {}
    }
    core.finish_batch();
    learnt = learnt.max(check(&core, &configured, &announced, &originated));
    // Gone with its peers: remove every peer, and only our own remain.
    for address in configured.keys().copied().collect::<Vec<_>>() {
        core.handle_request(Request::RemovePeer(address, None), now);
    }
    core.finish_batch();
    for (prefix, _, source) in core.routes() {
        assert!(
            source == Source::Local && originated.contains(&prefix),
            "{prefix} from {source:?} outlived every peer"
        );
    }
    learnt
}

/// The invariants; how many routes came from peers.
fn check<L: Links>(
    core: &Core<L>,
    configured: &HashMap<IpAddr, PeerConfig>,
    announced: &BTreeSet<Prefix>,
    originated: &BTreeSet<Prefix>,
) -> usize {
    let mut learnt = 0;
    for (prefix, _, source) in core.routes() {
        match source {
            Source::Local => assert!(
                originated.contains(&prefix),
                "{prefix} is local but not originated"
            ),
            Source::Peer(address) => {
                assert!(
                    configured.contains_key(&address),
                    "{prefix} from {address}, which is not a peer"
                );
                assert!(
                    announced.contains(&prefix),
                    "{prefix} from {address}, which never announced it"
                );
                learnt += 1;
            }
        }
    }
    learnt
}
