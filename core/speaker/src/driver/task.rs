//! One peer's task: its `Session`, its connections and their writer,
//! outbound connects, and collision resolution.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use starling_wire::MessageType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::handle::*;
use super::intake::*;
use super::*;
use crate::config::PeerConfig;
use crate::session::{Input, Output, Session, State};
use crate::sockopt;

pub(super) struct Connection {
    pub(super) reader: OwnedReadHalf,
    pub(super) writer: mpsc::UnboundedSender<WriterCommand>,
    pub(super) progress: Arc<WriteProgress>,
    pub(super) writer_task: JoinHandle<()>,
}

/// What the writer task has done, for the send hold timer (RFC 9687).
#[derive(Debug)]
pub(super) struct WriteProgress {
    /// Octets queued and not yet written to the socket.
    pub(super) pending: std::sync::atomic::AtomicUsize,
    /// When the writer last made progress (or work arrived while idle).
    pub(super) last: Mutex<Instant>,
}

impl WriteProgress {
    pub(super) fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// When the send hold timer fires if nothing moves, if anything waits.
    pub(super) fn stall_deadline(&self, hold: std::time::Duration) -> Option<Instant> {
        use std::sync::atomic::Ordering;
        (self.pending.load(Ordering::Relaxed) > 0)
            .then(|| *self.last.lock().unwrap_or_else(PoisonError::into_inner) + hold)
    }
}

impl Connection {
    pub(super) fn send(&self, bytes: Bytes) {
        use std::sync::atomic::Ordering;
        if self
            .progress
            .pending
            .fetch_add(bytes.len(), Ordering::Relaxed)
            == 0
        {
            self.progress.touch();
        }
        let _ = self.writer.send(WriterCommand::Bytes(bytes));
    }
}

pub(super) enum WriterCommand {
    Bytes(Bytes),
    Close,
}

pub(super) struct PeerTask {
    /// Shared with the handle: the main connection's writer progress.
    pub(super) writer: Arc<Mutex<Option<Arc<WriteProgress>>>>,
    pub(super) unforwarded: Arc<std::sync::atomic::AtomicUsize>,
    pub(super) session: Session,
    pub(super) events: mpsc::UnboundedSender<(IpAddr, PeerEvent)>,
    pub(super) status: Arc<Mutex<PeerStatus>>,
    pub(super) conn: Option<Connection>,
    /// Whether `conn` is the connection we initiated (collision rule).
    pub(super) outbound: bool,
    pub(super) connecting: Option<JoinHandle<io::Result<TcpStream>>>,
    /// Since when the inbound session's confirmation is held back while our
    /// own connection attempt is in flight (see `drain_outputs`).
    pub(super) held_since: Option<Instant>,
    /// An inbound connection that arrived while ours was opening: both run
    /// until one side's BGP Identifier is known, then RFC 4271 §6.8 picks
    /// the survivor.
    pub(super) contender: Option<Contender>,
    /// UPDATEs sent to the RIB and not yet applied.
    pub(super) intake: Arc<Intake>,
}

/// The second connection of a collision, with its own state machine.
pub(super) struct Contender {
    pub(super) session: Session,
    pub(super) conn: Connection,
    /// We initiated it.
    pub(super) outbound: bool,
}

/// Longest wait for our own connection attempt before confirming an
/// inbound session (see `PeerTask::drain_outputs`).
pub(super) const CONFIRMATION_HOLD: std::time::Duration = std::time::Duration::from_secs(2);

/// Cease / Connection Collision Resolution.
pub(super) fn collision_cease() -> starling_wire::Notification {
    starling_wire::Notification::new(
        starling_wire::notification::code::CEASE,
        starling_wire::notification::code::cease::CONNECTION_COLLISION,
    )
}

impl PeerTask {
    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<PeerCommand>) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut contender_buf = vec![0u8; 4096];
        loop {
            self.resolve_collision();
            self.drain_outputs();
            let contender_deadline = self
                .contender
                .as_ref()
                .and_then(|c| c.session.poll_timeout());
            let hold_deadline = self.held_since.map(|t| t + CONFIRMATION_HOLD);
            let send_hold = self.session.config().send_hold_time;
            let stall_deadline = self
                .conn
                .as_ref()
                .zip(send_hold)
                .and_then(|(c, hold)| c.progress.stall_deadline(hold));
            let deadline = [
                self.session.poll_timeout(),
                contender_deadline,
                hold_deadline,
                stall_deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            let connecting = async {
                match self.connecting.as_mut() {
                    Some(j) => j.await,
                    None => std::future::pending().await,
                }
            };
            let intake = self.intake.clone();
            let reading = async {
                intake.room().await;
                match self.conn.as_mut() {
                    Some(c) => c.reader.read(&mut buf).await,
                    None => std::future::pending().await,
                }
            };
            let contender_reading = async {
                match self.contender.as_mut() {
                    Some(c) => c.conn.reader.read(&mut contender_buf).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    cmd @ (None | Some(PeerCommand::Shutdown(_))) => {
                        // The peer was removed from the configuration:
                        // Cease / Peer De-configured (RFC 4486), unless the
                        // caller says why (an administrative shutdown).
                        let cease = match cmd {
                            Some(PeerCommand::Shutdown(Some(n))) => n,
                            _ => starling_wire::Notification::new(
                                starling_wire::notification::code::CEASE,
                                starling_wire::notification::code::cease::PEER_DECONFIGURED,
                            ),
                        };
                        self.session.close(Instant::now(), cease);
                        self.session.handle(Instant::now(), Input::Stop);
                        self.held_since = None;
                        self.connecting = None;
                        self.drain_outputs();
                        return;
                    }
                    Some(PeerCommand::Start) => self.session.handle(Instant::now(), Input::Start),
                    Some(PeerCommand::Stop) => self.session.handle(Instant::now(), Input::Stop),
                    Some(PeerCommand::Close(n)) => self.session.close(Instant::now(), n),
                    Some(PeerCommand::Send(bytes, kind)) => {
                        self.unforwarded.fetch_sub(bytes.len(), std::sync::atomic::Ordering::Relaxed);
                        self.session.send_encoded(Instant::now(), bytes, kind);
                    }
                    Some(PeerCommand::SetPassive(passive)) => self.session.set_passive(Instant::now(), passive),
                    Some(PeerCommand::SetRestarting(restarting)) => self.session.set_restarting(restarting),
                    Some(PeerCommand::Incoming(stream)) => self.incoming(stream),
                },
                result = connecting => {
                    self.connecting = None;
                    match result {
                        Ok(Ok(stream)) if self.conn.is_none() => {
                            self.attach(stream);
                            self.outbound = true;
                            self.session.handle(Instant::now(), Input::Connected);
                        }
                        // An inbound connection came first: ours contends.
                        Ok(Ok(stream)) => self.contend(stream, true),
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %self.session.config().remote, "connect failed: {e}");
                            self.session.handle(Instant::now(), Input::ConnectFailed);
                        }
                        Err(_) => self.session.handle(Instant::now(), Input::ConnectFailed),
                    }
                }
                read = reading => match read {
                    Ok(0) | Err(_) => {
                        self.detach();
                        self.session.handle(Instant::now(), Input::Disconnected);
                    }
                    Ok(n) => {
                        let data = buf.get(..n).unwrap_or_default();
                        self.session.handle(Instant::now(), Input::Received(data));
                    }
                },
                read = contender_reading => {
                    let now = Instant::now();
                    if let Some(c) = self.contender.as_mut() {
                        match read {
                            Ok(0) | Err(_) => c.session.handle(now, Input::Disconnected),
                            Ok(n) => c.session.handle(now, Input::Received(contender_buf.get(..n).unwrap_or_default())),
                        }
                    }
                }
                () = sleep => {
                    // What the peer sent before the deadline counts first:
                    // a task that woke late must not expire a session
                    // whose KEEPALIVE waits in the socket.
                    self.read_pending(&mut buf);
                    let now = Instant::now();
                    if self.held_since.is_some_and(|t| now >= t + CONFIRMATION_HOLD) {
                        // Our own attempt is taking too long: stop waiting
                        // for it and confirm the session we have.
                        if let Some(j) = self.connecting.take() {
                            j.abort();
                        }
                    }
                    if stall_deadline.is_some_and(|t| now >= t) {
                        self.send_hold_expired(now);
                    }
                    self.session.handle_timeout(now);
                    if let Some(c) = self.contender.as_mut() {
                        c.session.handle_timeout(now);
                    }
                }
            }
        }
    }

    pub(super) fn incoming(&mut self, stream: TcpStream) {
        if let Err(e) = secure_accepted(&stream, self.session.config()) {
            tracing::warn!(peer = %self.session.config().remote, "connection refused: {e}");
            return;
        }
        if self.conn.is_some() {
            self.contend(stream, false);
            return;
        }
        if !matches!(self.session.state(), State::Connect | State::Active) {
            drop(stream);
            return;
        }
        // Our own connection attempt keeps running: the peer may already
        // have accepted it, and then the collision rule must pick one.
        self.attach(stream);
        self.outbound = false;
        self.session.handle(Instant::now(), Input::Connected);
    }

    /// A second connection while the first is opening: a collision in the
    /// making (RFC 4271 §6.8). Run both until the BGP Identifiers decide.
    /// An Established session, or a third connection, ends it at once.
    pub(super) fn contend(&mut self, stream: TcpStream, outbound: bool) {
        let opening = matches!(self.session.state(), State::OpenSent | State::OpenConfirm)
            || self.unconfirmed_established();
        if !opening || self.contender.is_some() {
            drop(stream);
            return;
        }
        let now = Instant::now();
        let mut session = Session::new(self.session.config().clone());
        session.handle(now, Input::Start);
        session.handle(now, Input::Connected);
        let conn = Self::open_connection(stream);
        self.contender = Some(Contender {
            session,
            conn,
            outbound,
        });
    }

    pub(super) fn open_connection(stream: TcpStream) -> Connection {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let progress = Arc::new(WriteProgress {
            pending: std::sync::atomic::AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        });
        let writer_task = tokio::spawn(write_loop(writer, rx, progress.clone()));
        Connection {
            reader,
            writer: tx,
            progress,
            writer_task,
        }
    }

    pub(super) fn attach(&mut self, stream: TcpStream) {
        self.replace_conn(Some(Self::open_connection(stream)));
    }

    /// Make `conn` the main connection (publishing its writer's progress
    /// to the handle); the previous one, if any.
    pub(super) fn replace_conn(&mut self, conn: Option<Connection>) -> Option<Connection> {
        *self.writer.lock().unwrap_or_else(PoisonError::into_inner) =
            conn.as_ref().map(|c| c.progress.clone());
        std::mem::replace(&mut self.conn, conn)
    }

    /// RFC 4271 §6.8. Once the peer's BGP Identifier is known from either
    /// connection, keep ours if our identifier is higher, theirs otherwise;
    /// an Established session always wins. The loser gets Cease/7.
    ///
    /// Runs before any queued output is written, so a connection that
    /// loses never sends the KEEPALIVE its OPEN processing queued: the
    /// peer must not reach Established on a connection we are closing.
    pub(super) fn resolve_collision(&mut self) {
        let Some(contender) = self.contender.as_mut() else {
            return;
        };
        let now = Instant::now();
        if contender.session.state() == State::Idle {
            // It failed by itself (bad OPEN, closed): flush its NOTIFICATION.
            if let Some(c) = self.contender.take() {
                Self::finish_loser(c.session, &c.conn, None, now);
            }
            return;
        }
        let established = self.session.state() == State::Established && self.held_since.is_none();
        let contender_wins = if established || self.conn.is_none() {
            false
        } else {
            let peer_id = self
                .session
                .negotiated()
                .or(contender.session.negotiated())
                .map(|n| u32::from(n.peer_id));
            let Some(peer_id) = peer_id else {
                // Undecided: let the contender talk (its OPEN).
                self.flush_contender();
                return;
            };
            let keep_outbound = u32::from(self.session.config().router_id) > peer_id;
            self.outbound != keep_outbound && contender.outbound == keep_outbound
        };
        self.update_status(|s| s.collisions += 1);
        let Some(Contender {
            session,
            conn,
            outbound,
        }) = self.contender.take()
        else {
            return;
        };
        if !contender_wins {
            tracing::debug!(peer = %self.session.config().remote, "collision: keeping the existing connection");
            Self::finish_loser(session, &conn, Some(collision_cease()), now);
            return;
        }
        tracing::debug!(peer = %self.session.config().remote, "collision: switching to the other connection");
        let loser = std::mem::replace(&mut self.session, session);
        let loser_conn = self.replace_conn(Some(conn));
        self.outbound = outbound;
        if let Some(c) = loser_conn {
            Self::finish_loser(loser, &c, Some(collision_cease()), now);
        }
        let state = self.session.state();
        let negotiated = self.session.negotiated().cloned().map(|mut n| {
            n.endpoints = self.endpoints();
            n
        });
        self.update_status(|s| {
            s.state = state;
            s.negotiated.clone_from(&negotiated);
        });
        let peer = self.session.config().remote.ip();
        let _ = self.events.send((peer, PeerEvent::StateChanged(state)));
        // The contender may have reached Established before the decision;
        // its Established output was not forwarded then.
        if let (State::Established, Some(n)) = (state, negotiated) {
            let _ = self
                .events
                .send((peer, PeerEvent::Established(Box::new(n))));
        }
    }

    /// The current connection's local and remote addresses.
    fn endpoints(&self) -> Option<(SocketAddr, SocketAddr)> {
        let reader = &self.conn.as_ref()?.reader;
        Some((reader.local_addr().ok()?, reader.peer_addr().ok()?))
    }

    /// Established on our side, but our confirming KEEPALIVE is still held
    /// back (see `drain_outputs`): to the peer this connection is only in
    /// OpenConfirm, so the collision rule, not "Established wins", applies.
    pub(super) fn unconfirmed_established(&self) -> bool {
        self.session.state() == State::Established && self.held_since.is_some()
    }

    /// Write the contender's queued messages (its OPEN) while undecided.
    pub(super) fn flush_contender(&mut self) {
        let Some(c) = self.contender.as_mut() else {
            return;
        };
        while let Some(out) = c.session.poll_output() {
            if let Output::Send(bytes) = out {
                c.conn.send(bytes);
            }
        }
    }

    /// Close a losing connection: drop whatever it had queued (a KEEPALIVE
    /// would confirm the session to the peer), send only the NOTIFICATION.
    pub(super) fn finish_loser(
        mut session: Session,
        conn: &Connection,
        cease: Option<starling_wire::Notification>,
        now: Instant,
    ) {
        if let Some(cease) = cease {
            while session.poll_output().is_some() {}
            session.close(now, cease);
        }
        while let Some(out) = session.poll_output() {
            if let Output::Send(bytes) = out {
                conn.send(bytes);
            }
        }
        let _ = conn.writer.send(WriterCommand::Close);
    }

    /// RFC 9687: the peer stopped reading. Nothing we write will reach it,
    /// so the NOTIFICATION is a formality; the connection is torn down
    /// without waiting for the writer.
    pub(super) fn send_hold_expired(&mut self, now: Instant) {
        tracing::warn!(peer = %self.session.config().remote, "send hold timer expired: the peer stopped reading");
        let code = starling_wire::notification::code::SEND_HOLD_TIMER_EXPIRED;
        self.session
            .close(now, starling_wire::Notification::new(code, 0));
        if let Some(c) = self.replace_conn(None) {
            c.writer_task.abort();
        }
    }

    /// Hand the session whatever the connection has ready to read,
    /// without waiting (a bounded number of reads).
    pub(super) fn read_pending(&mut self, buf: &mut [u8]) {
        for _ in 0..16 {
            let Some(c) = self.conn.as_ref() else {
                return;
            };
            match c.reader.try_read(buf) {
                Ok(0) => {
                    self.detach();
                    self.session.handle(Instant::now(), Input::Disconnected);
                    return;
                }
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    self.session.handle(Instant::now(), Input::Received(data));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.detach();
                    self.session.handle(Instant::now(), Input::Disconnected);
                    return;
                }
            }
        }
    }

    pub(super) fn detach(&mut self) {
        if let Some(c) = self.replace_conn(None) {
            let _ = c.writer.send(WriterCommand::Close);
        }
    }

    pub(super) fn drain_outputs(&mut self) {
        // An inbound session that got the peer's OPEN while our own
        // connection attempt is still in flight must not confirm it yet:
        // if our attempt connects, the collision rule may pick it, and a
        // KEEPALIVE already sent would let the peer reach Established on a
        // connection we are about to close (both sides would then drop
        // both). Wait for the attempt, at most CONFIRMATION_HOLD.
        let opened = matches!(
            self.session.state(),
            State::OpenConfirm | State::Established
        );
        if opened && !self.outbound && self.conn.is_some() && self.connecting.is_some() {
            self.held_since.get_or_insert_with(Instant::now);
            return;
        }
        self.held_since = None;
        let peer = self.session.config().remote.ip();
        while let Some(out) = self.session.poll_output() {
            match out {
                Output::Connect => {
                    if let Some(j) = self.connecting.take() {
                        j.abort();
                    }
                    let cfg = self.session.config().clone();
                    self.connecting = Some(tokio::spawn(connect(cfg)));
                }
                Output::Send(bytes) => {
                    if let Some(c) = &self.conn {
                        c.send(bytes);
                    }
                }
                Output::Close => self.detach(),
                Output::StateChanged { to, .. } => {
                    self.update_status(|s| {
                        s.state = to;
                        s.since = Instant::now();
                    });
                    let _ = self.events.send((peer, PeerEvent::StateChanged(to)));
                }
                Output::Established(mut n) => {
                    n.endpoints = self.endpoints();
                    self.update_status(|s| s.negotiated = Some((*n).clone()));
                    let _ = self.events.send((peer, PeerEvent::Established(n)));
                }
                Output::Update(u) => {
                    self.update_status(|s| s.updates_received += 1);
                    let ticket = self.intake.admit(&u);
                    let _ = self.events.send((peer, PeerEvent::Update(u, ticket)));
                }
                Output::RouteRefresh(r) => {
                    let _ = self.events.send((peer, PeerEvent::RouteRefresh(r)));
                }
                Output::Down(reason) => {
                    tracing::info!(peer = %peer, "session down: {reason:?}");
                    self.update_status(|s| {
                        s.last_error = Some(reason.clone());
                        s.negotiated = None;
                    });
                    let _ = self.events.send((peer, PeerEvent::Down(reason)));
                }
            }
        }
        let counters = self.session.counters().clone();
        self.update_status(|s| {
            s.updates_sent = counters.sent(MessageType::Update);
            s.counters = counters;
        });
    }

    pub(super) fn update_status(&self, f: impl FnOnce(&mut PeerStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

pub(super) async fn connect(cfg: PeerConfig) -> io::Result<TcpStream> {
    let v6 = cfg.remote.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(password) = &cfg.password {
        sockopt::set_md5_key(
            &socket,
            cfg.remote.ip(),
            Some(password.expose().as_bytes()),
            v6,
        )?;
    }
    if let Some(hops) = cfg.ttl_security {
        sockopt::set_ttl(&socket, 255, v6)?;
        sockopt::set_min_ttl(&socket, gtsm_min_ttl(hops), v6)?;
    } else if let Some(ttl) = cfg.ttl {
        sockopt::set_ttl(&socket, ttl, v6)?;
    }
    if let Some(local) = cfg.local_address {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    socket.connect(cfg.remote).await
}

/// RFC 5082: a peer `hops` away arrives with TTL at least 256 - hops.
pub(super) fn gtsm_min_ttl(hops: u8) -> u8 {
    (256 - u16::from(hops.max(1))) as u8
}

/// Apply a peer's GTSM/TTL settings to an accepted connection. With GTSM
/// the SYN's TTL is checked (the listener saved it), then IP_MINTTL guards
/// every later segment.
pub(super) fn secure_accepted(stream: &TcpStream, cfg: &PeerConfig) -> io::Result<()> {
    let v6 = cfg.remote.is_ipv6();
    if let Some(hops) = cfg.ttl_security {
        let min = gtsm_min_ttl(hops);
        match sockopt::saved_syn_ttl(stream)? {
            Some(ttl) if ttl >= min => {}
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("GTSM: SYN arrived with TTL {other:?}, below {min}"),
                ));
            }
        }
        sockopt::set_ttl(stream, 255, v6)?;
        sockopt::set_min_ttl(stream, gtsm_min_ttl(hops), v6)?;
    } else if let Some(ttl) = cfg.ttl {
        sockopt::set_ttl(stream, ttl, v6)?;
    }
    Ok(())
}

pub(super) async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<WriterCommand>,
    progress: Arc<WriteProgress>,
) {
    use std::sync::atomic::Ordering;
    /// Messages queued meanwhile join one write up to this size: one
    /// system call for many small UPDATEs.
    const COALESCE: usize = 256 * 1024;
    let mut closing = false;
    // Reused for coalescing; a lone message is written from its own
    // (possibly shared) buffer.
    let mut joined: Vec<u8> = Vec::new();
    while let Some(cmd) = rx.recv().await {
        let first = match cmd {
            WriterCommand::Bytes(b) => b,
            WriterCommand::Close => break,
        };
        joined.clear();
        while joined.len().max(first.len()) < COALESCE {
            match rx.try_recv() {
                Ok(WriterCommand::Bytes(more)) => {
                    if joined.is_empty() {
                        joined.extend_from_slice(&first);
                    }
                    joined.extend_from_slice(&more);
                }
                Ok(WriterCommand::Close) => {
                    closing = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let bytes: &[u8] = if joined.is_empty() { &first } else { &joined };
        // In chunks, so a peer that reads slowly but steadily is seen to
        // make progress.
        for chunk in bytes.chunks(64 * 1024) {
            if writer.write_all(chunk).await.is_err() {
                return;
            }
            progress.pending.fetch_sub(chunk.len(), Ordering::Relaxed);
            progress.touch();
        }
        if closing {
            break;
        }
        if joined.capacity() > 4 * COALESCE {
            joined = Vec::new();
        }
    }
    let _ = writer.shutdown().await;
}
