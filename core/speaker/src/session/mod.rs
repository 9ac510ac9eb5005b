//! One BGP session as a deterministic state machine (RFC 4271 §8).
//!
//! No sockets and no clock: the driver feeds it inputs (connection events,
//! received bytes) with the current time, asks when it next needs waking
//! (`poll_timeout`), and carries out what it asks for (`poll_output`:
//! connect, send, close) — the quinn-proto split. Every behaviour can
//! therefore be replayed in a unit test with simulated time.
//!
//! Connection collision (§6.8) is resolved one level up, where both
//! connections of a peer are visible; a `Session` owns one connection.

mod negotiate;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use starling_wire::notification::code;
use starling_wire::{
    Context, DecodeError, Message, MessageType, Notification, ParsedUpdate, RouteRefresh,
    peek_header,
};

pub use negotiate::{Negotiated, local_open, negotiate};

use crate::config::PeerConfig;

/// Hold time used while waiting for the peer's OPEN (RFC 4271 §8.2.2
/// suggests 4 minutes).
const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);

/// The six states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    /// The name BIRD and `calicoctl node status` print.
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Connect => "Connect",
            Self::Active => "Active",
            Self::OpenSent => "OpenSent",
            Self::OpenConfirm => "OpenConfirm",
            Self::Established => "Established",
        }
    }
}

/// What happened to the connection, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// The operator (or the daemon at start-up) enables the session.
    Start,
    /// The operator disables the session; it closes with Cease.
    Stop,
    /// A TCP connection is up (outbound connect completed, or an inbound
    /// connection was handed to this session).
    Connected,
    /// The outbound connection attempt failed.
    ConnectFailed,
    /// The peer closed the connection or it broke.
    Disconnected,
    /// Bytes arrived.
    Received(&'a [u8]),
}

/// What the driver must do or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Start an outbound connection attempt (abandoning any previous one).
    Connect,
    /// Write these bytes.
    Send(bytes::Bytes),
    /// Close the connection once everything queued before this is written.
    Close,
    StateChanged {
        from: State,
        to: State,
    },
    Established(Box<Negotiated>),
    Update(Box<ParsedUpdate>),
    RouteRefresh(RouteRefresh),
    /// The session left Established or failed to get there.
    Down(DownReason),
}

/// Why a session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION (hold timer expiry and protocol errors
    /// included).
    Sent(Notification),
    /// The peer sent this NOTIFICATION.
    Received(Notification),
    /// The connection closed without a NOTIFICATION.
    ConnectionLost,
}

/// Per-session counters, for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub messages_in: [u64; 6],
    pub messages_out: [u64; 6],
    pub established_transitions: u64,
    /// RFC 7606 outcomes: (action label, attribute code) -> occurrences.
    pub update_errors: BTreeMap<(&'static str, Option<u8>), u64>,
}

impl Counters {
    fn problems(&mut self, problems: &[starling_wire::Problem]) {
        for p in problems {
            *self
                .update_errors
                .entry((p.action.label(), p.attribute))
                .or_default() += 1;
        }
    }

    /// Occurrences of one RFC 7606 action, over all attributes.
    pub fn update_errors(&self, action: &str) -> u64 {
        self.update_errors
            .iter()
            .filter(|((a, _), _)| *a == action)
            .map(|(_, n)| n)
            .sum()
    }

    fn count(slot: &mut [u64; 6], kind: MessageType) {
        if let Some(c) = slot.get_mut(kind as usize) {
            *c += 1;
        }
    }

    pub fn received(&self, kind: MessageType) -> u64 {
        self.messages_in.get(kind as usize).copied().unwrap_or(0)
    }

    pub fn sent(&self, kind: MessageType) -> u64 {
        self.messages_out.get(kind as usize).copied().unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct Timers {
    connect_retry: Option<Instant>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
    /// When an automatic restart may happen after a failure.
    idle_hold: Option<Instant>,
}

/// One BGP session.
#[derive(Debug)]
pub struct Session {
    cfg: PeerConfig,
    state: State,
    enabled: bool,
    timers: Timers,
    out: VecDeque<Output>,
    rx: Vec<u8>,
    negotiated: Option<Negotiated>,
    /// Consecutive failures, for the idle-hold backoff.
    failures: u32,
    /// Consecutive connection attempts that failed, for the quick first
    /// retries.
    connect_failures: u32,
    established_at: Option<Instant>,
    last_error: Option<DownReason>,
    counters: Counters,
    /// xorshift state for timer jitter, seeded from the session's
    /// addresses: deterministic per session, different on the two sides.
    jitter: u64,
}

/// The first retry after a failed connection attempt (see
/// `Input::ConnectFailed`).
const FIRST_CONNECT_RETRY: Duration = Duration::from_secs(1);

/// A nonzero jitter seed from what distinguishes this session and side.
fn seed(cfg: &PeerConfig) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cfg.remote.hash(&mut h);
    cfg.local_address.hash(&mut h);
    cfg.router_id.hash(&mut h);
    h.finish() | 1
}

impl Session {
    /// After a connection attempt that failed, or closed before the peer's
    /// OPEN: 1 s, then 2, 4, ... up to ConnectRetry, jittered. The peer is
    /// most often not ready yet (nodes booting together), and a whole
    /// ConnectRetry would be wasted waiting; the sequence restarts once a
    /// peer's OPEN is accepted.
    fn next_connect_retry(&mut self) -> Duration {
        let shift = self.connect_failures.min(16);
        self.connect_failures += 1;
        let retry = FIRST_CONNECT_RETRY
            .saturating_mul(1 << shift)
            .min(self.cfg.connect_retry);
        self.jittered(retry)
    }

    /// RFC 4271 §10: ConnectRetry (and here the idle-hold backoff) are
    /// jittered to 75–100 % of their value, so two speakers that failed
    /// together do not retry, and collide, in lockstep forever.
    fn jittered(&mut self, d: Duration) -> Duration {
        let mut x = self.jitter;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter = x;
        let fraction = (x >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.75 + 0.25 * fraction)
    }

    pub fn new(cfg: PeerConfig) -> Self {
        let jitter = seed(&cfg);
        Self {
            cfg,
            state: State::Idle,
            enabled: false,
            timers: Timers::default(),
            out: VecDeque::new(),
            rx: Vec::new(),
            negotiated: None,
            failures: 0,
            connect_failures: 0,
            established_at: None,
            last_error: None,
            counters: Counters::default(),
            jitter,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    pub fn established_at(&self) -> Option<Instant> {
        self.established_at
    }

    pub fn last_error(&self) -> Option<&DownReason> {
        self.last_error.as_ref()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The next output for the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.timers;
        [t.connect_retry, t.hold, t.keepalive, t.idle_hold]
            .into_iter()
            .flatten()
            .min()
    }

    /// Queue an already encoded message (UPDATEs from the Adj-RIB-Out).
    /// Ignored unless Established.
    pub fn send_encoded(&mut self, now: Instant, bytes: bytes::Bytes, kind: MessageType) {
        if self.state == State::Established {
            Counters::count(&mut self.counters.messages_out, kind);
            self.out.push_back(Output::Send(bytes));
            self.restart_keepalive(now);
        }
    }

    /// Feed one input.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Start => self.start(now),
            Input::Stop => self.stop(now),
            Input::Connected => self.connected(now),
            Input::ConnectFailed => {
                if self.state == State::Connect {
                    // RFC 4271 §8.2.2: wait in Active, retry when the timer
                    // fires. A failed attempt usually means the peer is not
                    // listening yet (nodes booting together): retry after
                    // 1 s, then 2, 4, ... up to ConnectRetry.
                    self.set_state(State::Active);
                    let retry = self.next_connect_retry();
                    self.timers.connect_retry = Some(now + retry);
                }
            }
            Input::Disconnected => self.disconnected(now),
            Input::Received(bytes) => self.received(now, bytes),
        }
    }

    /// Fire every timer that has expired by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.idle_hold.is_some_and(|t| t <= now) {
            self.timers.idle_hold = None;
            if self.enabled && self.state == State::Idle {
                self.begin(now);
            }
        }
        if self.timers.connect_retry.is_some_and(|t| t <= now) {
            self.timers.connect_retry = None;
            if matches!(self.state, State::Connect | State::Active) && !self.cfg.passive {
                self.set_state(State::Connect);
                self.out.push_back(Output::Connect);
                self.timers.connect_retry = Some(now + self.jittered(self.cfg.connect_retry));
            }
        }
        if self.timers.hold.is_some_and(|t| t <= now) {
            self.timers.hold = None;
            if matches!(
                self.state,
                State::OpenSent | State::OpenConfirm | State::Established
            ) {
                self.fail(now, Notification::new(code::HOLD_TIMER_EXPIRED, 0));
            }
        }
        if self.timers.keepalive.is_some_and(|t| t <= now) {
            self.timers.keepalive = None;
            if matches!(self.state, State::OpenConfirm | State::Established) {
                self.send(now, &Message::Keepalive);
            }
        }
    }

    /// Become passive (wait for the peer to connect) or active. A running
    /// session is not touched; a waiting one starts connecting at once
    /// when it becomes active.
    pub fn set_passive(&mut self, now: Instant, passive: bool) {
        if self.cfg.passive == passive {
            return;
        }
        self.cfg.passive = passive;
        if passive {
            if self.state == State::Connect {
                // Our attempt may still complete; it is not retried.
                self.timers.connect_retry = None;
            }
        } else if self.enabled && self.state == State::Active {
            self.set_state(State::Connect);
            self.out.push_back(Output::Connect);
            self.timers.connect_retry = Some(now + self.jittered(self.cfg.connect_retry));
        }
    }

    /// Set or clear the Restart State (R) bit of our graceful restart
    /// capability: it goes out in the next OPEN. Set while we recover from
    /// a restart (RFC 4724 §4.1); a running session is not touched.
    pub fn set_restarting(&mut self, restarting: bool) {
        if let Some(gr) = &mut self.cfg.graceful_restart {
            gr.restarting = restarting;
        }
    }

    /// Close the session with `notification` (max-prefix, configuration
    /// change). The session stays enabled and restarts after the idle-hold
    /// backoff.
    pub fn close(&mut self, now: Instant, notification: Notification) {
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            self.fail(now, notification);
        }
    }

    // ===== transitions =====

    fn start(&mut self, now: Instant) {
        self.enabled = true;
        if self.state == State::Idle && self.timers.idle_hold.is_none() {
            self.begin(now);
        }
    }

    fn begin(&mut self, now: Instant) {
        if self.cfg.passive {
            self.set_state(State::Active);
        } else {
            self.set_state(State::Connect);
            self.out.push_back(Output::Connect);
            self.timers.connect_retry = Some(now + self.jittered(self.cfg.connect_retry));
        }
    }

    fn stop(&mut self, now: Instant) {
        self.enabled = false;
        self.timers.idle_hold = None;
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            let cease = Notification::new(code::CEASE, code::cease::ADMIN_SHUTDOWN);
            self.send(now, &Message::Notification(cease.clone()));
            self.down(now, DownReason::Sent(cease), false);
        } else {
            self.reset_to_idle();
        }
    }

    fn connected(&mut self, now: Instant) {
        if !matches!(self.state, State::Connect | State::Active) {
            // Not expecting a connection: the driver should not have handed
            // it over; closing is the safe answer.
            self.out.push_back(Output::Close);
            return;
        }
        self.timers.connect_retry = None;
        self.rx.clear();
        let open = Message::Open(local_open(&self.cfg));
        self.send(now, &open);
        self.timers.hold = Some(now + LARGE_HOLD_TIME);
        self.set_state(State::OpenSent);
    }

    fn disconnected(&mut self, now: Instant) {
        match self.state {
            State::OpenSent => {
                // RFC 4271 §8.2.2: the connection failed before the peer
                // said anything; keep listening (Active) and retry after
                // ConnectRetry. Going Idle instead, which refuses incoming
                // connections, lets two active peers that failed together
                // refuse each other forever.
                self.out.push_back(Output::Close);
                self.out.push_back(Output::Down(DownReason::ConnectionLost));
                self.last_error = Some(DownReason::ConnectionLost);
                self.reset_to_idle();
                if self.enabled {
                    self.set_state(State::Active);
                    if !self.cfg.passive {
                        // Closed before any OPEN: most often a peer whose
                        // daemon listens but has not configured us yet.
                        let retry = self.next_connect_retry();
                        self.timers.connect_retry = Some(now + retry);
                    }
                }
            }
            State::OpenConfirm | State::Established => {
                self.down(now, DownReason::ConnectionLost, true)
            }
            State::Connect => self.handle(now, Input::ConnectFailed),
            State::Idle | State::Active => {}
        }
    }

    fn received(&mut self, now: Instant, bytes: &[u8]) {
        if !matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            return;
        }
        self.rx.extend_from_slice(bytes);
        let mut consumed = 0;
        loop {
            let max = self
                .negotiated
                .as_ref()
                .map_or(4096, |n| n.codec.max_message_len());
            let buf = self.rx.get(consumed..).unwrap_or_default();
            let header = match peek_header(buf, max) {
                Ok(Some(h)) if buf.len() >= h.len => h,
                Ok(_) => break,
                Err(notification) => {
                    self.fail(now, notification);
                    return;
                }
            };
            let msg_bytes = buf.get(..header.len).unwrap_or_default().to_vec();
            consumed += header.len;
            Counters::count(&mut self.counters.messages_in, header.kind);
            self.message(now, &msg_bytes);
            if !matches!(
                self.state,
                State::OpenSent | State::OpenConfirm | State::Established
            ) {
                return;
            }
        }
        self.rx.drain(..consumed);
    }

    fn message(&mut self, now: Instant, bytes: &[u8]) {
        let ctx = self
            .negotiated
            .as_ref()
            .map_or_else(Context::default, |n| n.codec.clone());
        let msg = match Message::decode(bytes, &ctx) {
            Ok(m) => m,
            Err(DecodeError::Malformed(n)) => return self.fail(now, n),
            Err(DecodeError::Update(reset)) => {
                self.counters.problems(&reset.problems);
                tracing::warn!(peer = %self.cfg.remote, "{reset}");
                return self.fail(now, reset.notification);
            }
        };
        if let Message::Notification(n) = msg {
            return self.down(now, DownReason::Received(n), true);
        }
        match (self.state, msg) {
            (State::OpenSent, Message::Open(open)) => match negotiate(&self.cfg, &open) {
                Ok(negotiated) => {
                    self.send(now, &Message::Keepalive);
                    self.timers.hold =
                        (!negotiated.hold_time.is_zero()).then(|| now + negotiated.hold_time);
                    self.negotiated = Some(negotiated);
                    self.restart_keepalive(now);
                    self.set_state(State::OpenConfirm);
                    self.connect_failures = 0;
                }
                Err(n) => self.fail(now, n),
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.restart_hold(now);
                self.established_at = Some(now);
                self.counters.established_transitions += 1;
                self.set_state(State::Established);
                if let Some(n) = &self.negotiated {
                    self.out.push_back(Output::Established(Box::new(n.clone())));
                }
            }
            (State::Established, Message::Keepalive) => self.restart_hold(now),
            (State::Established, Message::Update(parsed)) => {
                self.restart_hold(now);
                self.counters.problems(&parsed.problems);
                self.out.push_back(Output::Update(Box::new(parsed)));
            }
            (State::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(now);
                self.out.push_back(Output::RouteRefresh(rr));
            }
            (state, _) => {
                let subcode = match state {
                    State::OpenSent => code::fsm::UNEXPECTED_IN_OPENSENT,
                    State::OpenConfirm => code::fsm::UNEXPECTED_IN_OPENCONFIRM,
                    _ => code::fsm::UNEXPECTED_IN_ESTABLISHED,
                };
                self.fail(now, Notification::new(code::FSM, subcode));
            }
        }
    }

    // ===== helpers =====

    fn send(&mut self, now: Instant, msg: &Message) {
        let ctx = self
            .negotiated
            .as_ref()
            .map_or_else(Context::default, |n| n.codec.clone());
        match msg.to_bytes(&ctx) {
            Ok(bytes) => {
                Counters::count(&mut self.counters.messages_out, msg.kind());
                self.out.push_back(Output::Send(bytes.into()));
                if matches!(self.state, State::OpenConfirm | State::Established) {
                    self.restart_keepalive(now);
                }
            }
            Err(e) => {
                tracing::error!(peer = %self.cfg.remote, "cannot encode {:?}: {e}", msg.kind())
            }
        }
    }

    /// Send a NOTIFICATION and go down because of an error.
    fn fail(&mut self, now: Instant, notification: Notification) {
        self.send(now, &Message::Notification(notification.clone()));
        self.down(now, DownReason::Sent(notification), true);
    }

    fn down(&mut self, now: Instant, reason: DownReason, error: bool) {
        self.out.push_back(Output::Close);
        self.out.push_back(Output::Down(reason.clone()));
        self.last_error = Some(reason);
        let was_stable = self
            .established_at
            .is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.max_idle_hold);
        if was_stable {
            self.failures = 0;
        }
        self.reset_to_idle();
        if let Some(DownReason::Received(n)) = &self.last_error
            && n.code == code::CEASE
            && n.subcode == code::cease::CONNECTION_COLLISION
            && self.enabled
        {
            // The peer kept our other connection (RFC 4271 §6.8): not a
            // failure, so no backoff. Wait in Active for that connection;
            // connect again only if it never comes.
            self.set_state(State::Active);
            if !self.cfg.passive {
                self.timers.connect_retry = Some(now + self.jittered(self.cfg.connect_retry));
            }
            return;
        }
        if let Some(DownReason::Received(n)) = &self.last_error
            && n.code == code::CEASE
            && matches!(
                n.subcode,
                code::cease::PEER_DECONFIGURED
                    | code::cease::ADMIN_RESET
                    | code::cease::OTHER_CONFIGURATION_CHANGE
            )
            && self.enabled
        {
            // The peer is being reconfigured, not failing: come back after
            // one idle hold, without growing the backoff.
            let hold = self.jittered(self.cfg.idle_hold);
            self.timers.idle_hold = Some(now + hold);
            return;
        }
        if error && self.enabled {
            // A session that worked and lost its connection without a
            // word (the peer's daemon or host restarted, most often) is
            // back listening at once, so the peer's reconnection is not
            // refused by an Idle session: a restarted mesh node found
            // half its peers in idle hold, and rejoined after three
            // seconds instead of one. Only repeated losses are damped.
            let first_loss =
                self.failures == 0 && matches!(self.last_error, Some(DownReason::ConnectionLost));
            let backoff = if first_loss {
                Duration::ZERO
            } else {
                self.cfg
                    .idle_hold
                    .saturating_mul(1 << self.failures.min(16))
            };
            let hold = self.jittered(backoff.min(self.cfg.max_idle_hold));
            self.timers.idle_hold = Some(now + hold);
            self.failures = self.failures.saturating_add(1);
        }
    }

    fn reset_to_idle(&mut self) {
        self.timers = Timers {
            idle_hold: self.timers.idle_hold,
            ..Timers::default()
        };
        self.negotiated = None;
        self.established_at = None;
        self.rx.clear();
        self.set_state(State::Idle);
    }

    fn restart_hold(&mut self, now: Instant) {
        if let Some(n) = &self.negotiated {
            self.timers.hold = (!n.hold_time.is_zero()).then(|| now + n.hold_time);
        }
    }

    fn restart_keepalive(&mut self, now: Instant) {
        if let Some(n) = &self.negotiated {
            self.timers.keepalive = (!n.keepalive.is_zero()).then(|| now + n.keepalive);
        }
    }

    fn set_state(&mut self, to: State) {
        if self.state != to {
            let from = self.state;
            self.state = to;
            tracing::debug!(peer = %self.cfg.remote, "{} -> {}", from.name(), to.name());
            self.out.push_back(Output::StateChanged { from, to });
        }
    }
}
