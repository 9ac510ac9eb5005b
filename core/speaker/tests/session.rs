//! The session state machine, driven in memory with simulated time: two
//! `Session`s wired back to back, no sockets (the quinn-proto `Pair` idea).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use starling_speaker::PeerConfig;
use starling_speaker::session::{DownReason, Input, Output, Session, State};
use starling_wire::notification::code;
use starling_wire::{Family, Message, MessageType, Notification};

fn cfg(local_as: u32, remote_as: u32, id: u8, remote_port: u16) -> PeerConfig {
    let remote = SocketAddr::from(([192, 0, 2, 100 + id], remote_port));
    let mut c = PeerConfig::new(remote, local_as, remote_as, Ipv4Addr::new(192, 0, 2, id));
    c.connect_retry = Duration::from_secs(5);
    c
}

/// Two sessions and a clock. Bytes one sends are delivered to the other
/// when `pump` runs, unless `drop_traffic` is set.
struct Pair {
    now: Instant,
    a: Session,
    b: Session,
    a_log: Vec<Output>,
    b_log: Vec<Output>,
    drop_traffic: bool,
}

impl Pair {
    fn new(a: PeerConfig, mut b: PeerConfig) -> Self {
        b.passive = true;
        Self {
            now: Instant::now(),
            a: Session::new(a),
            b: Session::new(b),
            a_log: Vec::new(),
            b_log: Vec::new(),
            drop_traffic: false,
        }
    }

    /// Move outputs across until both are quiet.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(out) = self.a.poll_output() {
                moved = true;
                match &out {
                    Output::Connect => {
                        if matches!(self.b.state(), State::Active) {
                            self.a.handle(self.now, Input::Connected);
                            self.b.handle(self.now, Input::Connected);
                        } else {
                            self.a.handle(self.now, Input::ConnectFailed);
                        }
                    }
                    Output::Send(bytes) if !self.drop_traffic => {
                        self.b.handle(self.now, Input::Received(bytes))
                    }
                    Output::Close => self.b.handle(self.now, Input::Disconnected),
                    _ => {}
                }
                self.a_log.push(out);
            }
            while let Some(out) = self.b.poll_output() {
                moved = true;
                match &out {
                    Output::Send(bytes) if !self.drop_traffic => {
                        self.a.handle(self.now, Input::Received(bytes))
                    }
                    Output::Close => self.a.handle(self.now, Input::Disconnected),
                    _ => {}
                }
                self.b_log.push(out);
            }
            if !moved {
                return;
            }
        }
        panic!("outputs never settled");
    }

    /// Advance the clock to `to`, firing timers in order.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn start(&mut self) {
        self.b.handle(self.now, Input::Start);
        self.a.handle(self.now, Input::Start);
        self.pump();
    }
}

fn downs(log: &[Output]) -> Vec<&DownReason> {
    log.iter()
        .filter_map(|o| match o {
            Output::Down(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn two_sessions_reach_established_and_negotiate() {
    let mut p = Pair::new(cfg(64512, 64513, 1, 179), cfg(64513, 64512, 2, 179));
    p.start();
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.b.state(), State::Established);
    let n = p.a.negotiated().expect("negotiated");
    assert_eq!(n.peer_as, 64513);
    assert_eq!(n.hold_time, Duration::from_secs(90));
    assert_eq!(n.keepalive, Duration::from_secs(30));
    assert!(n.codec.four_octet_as && n.codec.ebgp);
    assert!(n.codec.families.get(Family::IPV6_UNICAST));
    assert!(p.a_log.iter().any(|o| matches!(o, Output::Established(_))));
    // The transitions follow RFC 4271 §8.
    let states: Vec<State> = p
        .a_log
        .iter()
        .filter_map(|o| match o {
            Output::StateChanged { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![
            State::Connect,
            State::OpenSent,
            State::OpenConfirm,
            State::Established
        ]
    );
}

#[test]
fn keepalives_hold_the_session_up() {
    let mut p = Pair::new(cfg(64512, 64512, 1, 179), cfg(64512, 64512, 2, 179));
    p.start();
    p.advance(Duration::from_secs(600));
    assert_eq!(p.a.state(), State::Established);
    // One keepalive every hold/3 = 30 s (the first one confirmed the OPEN).
    let sent = p.a.counters().sent(MessageType::Keepalive);
    assert!((20..=22).contains(&sent), "{sent} keepalives in 600 s");
}

#[test]
fn hold_timer_expiry_sends_4_0_and_backs_off() {
    let mut p = Pair::new(cfg(64512, 64513, 1, 179), cfg(64513, 64512, 2, 179));
    p.start();
    p.drop_traffic = true;
    p.advance(Duration::from_millis(90_500));
    let reasons = downs(&p.a_log);
    assert!(
        matches!(reasons.first(), Some(DownReason::Sent(n)) if n.code == code::HOLD_TIMER_EXPIRED),
        "{reasons:?}"
    );
    // Idle until the idle-hold timer lets it try again (1 s, then 2 s, …).
    assert_eq!(p.a.state(), State::Idle);
    p.drop_traffic = false;
    p.advance(Duration::from_secs(1));
    assert_eq!(p.a.state(), State::Established);
}

#[test]
fn wrong_peer_as_is_refused_with_2_2() {
    let mut p = Pair::new(cfg(64512, 65000, 1, 179), cfg(64513, 64512, 2, 179));
    p.start();
    let reasons = downs(&p.a_log);
    assert!(
        matches!(reasons.first(), Some(DownReason::Sent(n)) if (n.code, n.subcode) == (2, 2)),
        "{reasons:?}"
    );
    assert!(
        matches!(downs(&p.b_log).first(), Some(DownReason::Received(n)) if (n.code, n.subcode) == (2, 2))
    );
}

#[test]
fn same_router_id_on_ibgp_is_refused_with_2_3() {
    let mut p = Pair::new(cfg(64512, 64512, 1, 179), cfg(64512, 64512, 1, 179));
    p.start();
    assert!(
        matches!(downs(&p.a_log).first(), Some(DownReason::Sent(n)) if (n.code, n.subcode) == (2, 3))
    );
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    let mut s = Session::new(cfg(64512, 64513, 1, 179));
    let now = Instant::now();
    s.handle(now, Input::Start);
    s.handle(now, Input::Connected);
    assert_eq!(s.state(), State::OpenSent);
    let keepalive = Message::Keepalive
        .to_bytes(&Default::default())
        .expect("encodes");
    s.handle(now, Input::Received(&keepalive));
    let sent: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
    let fsm_error = Message::Notification(Notification::new(
        code::FSM,
        code::fsm::UNEXPECTED_IN_OPENSENT,
    ))
    .to_bytes(&Default::default())
    .expect("encodes");
    assert!(sent.contains(&Output::Send(fsm_error.into())));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn a_header_error_sends_1_x() {
    let mut s = Session::new(cfg(64512, 64513, 1, 179));
    let now = Instant::now();
    s.handle(now, Input::Start);
    s.handle(now, Input::Connected);
    let mut junk = vec![0xffu8; 16];
    junk.extend_from_slice(&[0, 19, 9]); // type 9 does not exist
    s.handle(now, Input::Received(&junk));
    let outs: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
    assert!(outs.iter().any(|o| matches!(o, Output::Down(DownReason::Sent(n)) if (n.code, n.subcode, n.data.as_slice()) == (1, 3, &[9][..]))));
}

#[test]
fn bytes_split_anywhere_reassemble() {
    let mut p = Pair::new(cfg(64512, 64513, 1, 179), cfg(64513, 64512, 2, 179));
    // Deliver A's OPEN to B one byte at a time.
    p.b.handle(p.now, Input::Start);
    p.a.handle(p.now, Input::Start);
    let _ = p.a.poll_output(); // StateChanged
    let _ = p.a.poll_output(); // Connect
    p.a.handle(p.now, Input::Connected);
    p.b.handle(p.now, Input::Connected);
    while let Some(out) = p.a.poll_output() {
        if let Output::Send(bytes) = out {
            for byte in bytes {
                p.b.handle(p.now, Input::Received(&[byte]));
            }
        }
    }
    p.pump();
    assert_eq!(p.b.state(), State::Established);
}

#[test]
fn stop_sends_cease_admin_shutdown() {
    let mut p = Pair::new(cfg(64512, 64513, 1, 179), cfg(64513, 64512, 2, 179));
    p.start();
    p.a.handle(p.now, Input::Stop);
    p.pump();
    assert_eq!(p.a.state(), State::Idle);
    assert!(
        matches!(downs(&p.b_log).first(), Some(DownReason::Received(n)) if (n.code, n.subcode) == (6, 2))
    );
    // A stopped session does not restart by itself.
    p.advance(Duration::from_secs(300));
    assert_eq!(p.a.state(), State::Idle);
}

/// RFC 4271 §8.2.2: a connection lost in OpenSent leaves the session
/// listening (Active) with ConnectRetry running, not Idle (which would
/// refuse the peer's own attempt).
#[test]
fn a_connection_lost_before_the_open_keeps_listening() {
    let mut s = Session::new(cfg(64512, 64513, 1, 179));
    let now = Instant::now();
    s.handle(now, Input::Start);
    s.handle(now, Input::Connected);
    assert_eq!(s.state(), State::OpenSent);
    s.handle(now, Input::Disconnected);
    assert_eq!(s.state(), State::Active);
    let retry = s.poll_timeout().expect("connect retry armed") - now;
    // The first such retry is quick (see the next test).
    assert!(
        retry <= Duration::from_secs(1) && retry >= Duration::from_millis(750),
        "{retry:?}"
    );
    while s.poll_output().is_some() {}
    s.handle_timeout(now + retry);
    assert_eq!(s.state(), State::Connect);
}

/// A peer that resets the session because it is being reconfigured
/// (Cease 3, 4, 6) is not flapping: one idle hold, however often.
#[test]
fn a_reconfiguring_peer_is_not_damped() {
    let mut s = Session::new(cfg(64512, 64513, 1, 179));
    let mut now = Instant::now();
    s.handle(now, Input::Start);
    let cease = Message::Notification(Notification::new(code::CEASE, code::cease::ADMIN_RESET))
        .to_bytes(&starling_wire::Context::default())
        .expect("encode");
    for _ in 0..5 {
        s.handle(now, Input::Connected);
        s.handle(now, Input::Received(&cease));
        assert_eq!(s.state(), State::Idle);
        let wake = s.poll_timeout().expect("idle hold armed");
        assert!(wake - now <= Duration::from_secs(1), "{:?}", wake - now);
        now = wake;
        s.handle_timeout(now);
        while s.poll_output().is_some() {}
    }
}

#[test]
fn flapping_peer_backs_off_exponentially() {
    let mut s = Session::new(cfg(64512, 64513, 1, 179));
    let mut now = Instant::now();
    s.handle(now, Input::Start);
    let mut delays = Vec::new();
    // The peer answers each OPEN with a NOTIFICATION.
    let refusal = Message::Notification(Notification::new(code::OPEN_MESSAGE, 0))
        .to_bytes(&starling_wire::Context::default())
        .expect("encode");
    for _ in 0..5 {
        s.handle(now, Input::Connected);
        s.handle(now, Input::Received(&refusal));
        assert_eq!(s.state(), State::Idle);
        let wake = s.poll_timeout().expect("idle hold armed");
        delays.push(wake - now);
        now = wake;
        s.handle_timeout(now);
        assert_eq!(s.state(), State::Connect);
        while s.poll_output().is_some() {}
    }
    // 1, 2, 4, 8, 16 s, each jittered to 75–100 % (RFC 4271 §10).
    for (i, delay) in delays.iter().enumerate() {
        let full = Duration::from_secs(1 << i);
        assert!(*delay <= full && *delay >= full.mul_f64(0.75), "{delays:?}");
    }
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]),
        "backoff grows: {delays:?}"
    );
}

/// A passive session waiting for the peer starts connecting as soon as it
/// is made active, without a reset.
#[test]
fn a_waiting_passive_session_made_active_connects_at_once() {
    let mut c = cfg(64512, 64513, 1, 179);
    c.passive = true;
    let mut s = Session::new(c);
    let now = Instant::now();
    s.handle(now, Input::Start);
    assert_eq!(s.state(), State::Active);
    while s.poll_output().is_some() {}
    s.set_passive(now, false);
    assert_eq!(s.state(), State::Connect);
    let mut outputs = Vec::new();
    while let Some(o) = s.poll_output() {
        outputs.push(o);
    }
    assert!(
        outputs.iter().any(|o| matches!(o, Output::Connect)),
        "{outputs:?}"
    );
}

/// A refused connection (or one closed before the peer's OPEN) is retried
/// after 1 s, then 2 s, 4 s, ... up to ConnectRetry (5 s here): nodes
/// booting together find each other in a second, not a whole ConnectRetry
/// later. An OPEN accepted from the peer starts the sequence again.
#[test]
fn failed_connects_are_retried_quickly_at_first() {
    let mut s = Session::new(cfg(64512, 64513, 1, 179));
    let mut now = Instant::now();
    s.handle(now, Input::Start);
    let mut retries = Vec::new();
    for _ in 0..5 {
        assert_eq!(s.state(), State::Connect);
        s.handle(now, Input::ConnectFailed);
        assert_eq!(s.state(), State::Active);
        let retry = s.poll_timeout().expect("connect retry armed") - now;
        retries.push(retry);
        while s.poll_output().is_some() {}
        now += retry;
        s.handle_timeout(now);
    }
    let nominal = [1, 2, 4, 5, 5].map(Duration::from_secs);
    for (retry, nominal) in retries.iter().zip(nominal) {
        assert!(
            *retry <= nominal && *retry >= nominal.mul_f64(0.75),
            "{retries:?}"
        );
    }
    // Closed before the peer's OPEN counts as a failure too.
    s.handle(now, Input::Connected);
    s.handle(now, Input::Disconnected);
    while s.poll_output().is_some() {}
    let retry = s.poll_timeout().expect("connect retry armed") - now;
    assert!(retry >= Duration::from_millis(3750), "{retry:?}");
}

/// A working session whose connection is lost (the peer restarted) listens
/// again at once, so the restarted peer's connection is accepted; a second
/// loss soon after waits out an idle hold, as any flapping does.
#[test]
fn a_lost_connection_is_listened_for_at_once_the_first_time() {
    let mut p = Pair::new(cfg(64512, 64513, 1, 179), cfg(64513, 64512, 2, 179));
    p.start();
    assert_eq!(p.b.state(), State::Established);
    // a's host goes away without a NOTIFICATION.
    p.b.handle(p.now, Input::Disconnected);
    while p.b.poll_output().is_some() {}
    assert_eq!(p.b.poll_timeout(), Some(p.now), "no idle hold");
    p.b.handle_timeout(p.now);
    assert_eq!(p.b.state(), State::Active, "listening for the peer");
    // a comes back and connects: accepted.
    p.a = Session::new(cfg(64512, 64513, 1, 179));
    p.a.handle(p.now, Input::Start);
    p.pump();
    assert_eq!(p.b.state(), State::Established);
    // Lost again a moment later: now damped.
    p.b.handle(p.now, Input::Disconnected);
    while p.b.poll_output().is_some() {}
    assert_eq!(p.b.state(), State::Idle);
    let hold = p.b.poll_timeout().expect("idle hold armed") - p.now;
    assert!(hold >= Duration::from_millis(750), "{hold:?}");
}

/// Once a peer's OPEN was accepted, the next failed attempt is quick again.
#[test]
fn an_accepted_open_restarts_the_quick_retries() {
    let mut p = Pair::new(cfg(64512, 64513, 1, 179), cfg(64513, 64512, 2, 179));
    // The peer is not up: a's attempts fail, 1 s, 2 s, 4 s apart.
    p.a.handle(p.now, Input::Start);
    p.pump();
    p.advance(Duration::from_secs(6));
    assert_eq!(p.a.state(), State::Active);
    let waiting = p.a.poll_timeout().expect("connect retry armed") - p.now;
    assert!(waiting > Duration::from_secs(1), "{waiting:?}");
    // The peer comes up; the next attempt succeeds.
    p.b.handle(p.now, Input::Start);
    p.advance(Duration::from_secs(6));
    assert_eq!(p.a.state(), State::Established);
    // Lost, and the peer gone again: after the idle hold, the first
    // failed attempt is retried within a second.
    p.b.handle(p.now, Input::Stop);
    p.pump();
    while p.a.state() != State::Connect {
        let next = p.a.poll_timeout().expect("a timer") - p.now;
        p.now += next;
        p.a.handle_timeout(p.now);
    }
    while p.a.poll_output().is_some() {}
    p.a.handle(p.now, Input::ConnectFailed);
    let retry = p.a.poll_timeout().expect("connect retry armed") - p.now;
    assert!(retry <= Duration::from_secs(1), "{retry:?}");
}
