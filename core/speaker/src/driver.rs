//! The tokio shell around `Session`: sockets, timers, one task per peer.
//!
//! Each peer task owns its `Session` and its connection; nothing else
//! mutates them, so no locks. A task never waits on another peer: writes go
//! through the peer's own writer task, so a slow peer cannot stall anyone
//! else's keepalives.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use starling_wire::{MessageType, ParsedUpdate, RouteRefresh};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::PeerConfig;
use crate::session::{DownReason, Input, Negotiated, Output, Session, State};
use crate::sockopt;

/// Something a peer did, for the RIB and for status.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    StateChanged(State),
    Established(Box<Negotiated>),
    /// An UPDATE, and its place in the peer's intake: drop the ticket
    /// once the UPDATE is applied.
    Update(Box<ParsedUpdate>, InputTicket),
    RouteRefresh(RouteRefresh),
    Down(DownReason),
}

/// Prefixes a peer has sent that have not been applied yet: past this
/// many its connection is not read (TCP holds the rest, and the peer
/// waits), so a peer that sends faster than the RIB takes routes costs
/// socket buffers, not a growing queue of decoded UPDATEs.
const INTAKE_HIGH: usize = 65_536;

/// A peer's UPDATEs between its connection and the RIB.
#[derive(Debug, Default)]
struct Intake {
    prefixes: std::sync::atomic::AtomicUsize,
    drained: tokio::sync::Notify,
}

/// One UPDATE's share of its peer's intake, given back when dropped.
#[derive(Debug, Clone)]
pub struct InputTicket {
    /// Held only to be dropped.
    _share: Arc<TicketInner>,
}

#[derive(Debug)]
struct TicketInner {
    intake: Arc<Intake>,
    prefixes: usize,
}

impl Drop for TicketInner {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let before = self
            .intake
            .prefixes
            .fetch_sub(self.prefixes, Ordering::Relaxed);
        if before > INTAKE_HIGH && before - self.prefixes <= INTAKE_HIGH {
            self.intake.drained.notify_one();
        }
    }
}

impl InputTicket {
    /// A ticket of no intake, for driving the instance without peer tasks.
    #[cfg(test)]
    pub(crate) fn detached(update: &ParsedUpdate) -> Self {
        Arc::new(Intake::default()).admit(update)
    }
}

impl Intake {
    /// A ticket for `update`, counted in.
    fn admit(self: &Arc<Self>, update: &ParsedUpdate) -> InputTicket {
        let u = &update.update;
        let prefixes = 1
            + u.nlri.len()
            + u.withdrawn.len()
            + u.mp_reach.as_ref().map_or(0, |m| m.nlri.len())
            + u.mp_unreach.as_ref().map_or(0, |m| m.nlri.len());
        self.prefixes
            .fetch_add(prefixes, std::sync::atomic::Ordering::Relaxed);
        InputTicket {
            _share: Arc::new(TicketInner {
                intake: self.clone(),
                prefixes,
            }),
        }
    }

    /// Wait until the RIB has taken in enough of what was read.
    async fn room(&self) {
        while self.prefixes.load(std::sync::atomic::Ordering::Relaxed) > INTAKE_HIGH {
            self.drained.notified().await;
        }
    }
}

/// A snapshot of one session for status output.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub remote: SocketAddr,
    pub state: State,
    pub since: Instant,
    pub last_error: Option<DownReason>,
    pub negotiated: Option<Negotiated>,
    pub updates_received: u64,
    pub updates_sent: u64,
    /// Message and RFC 7606 counters of the session.
    pub counters: crate::session::Counters,
    /// Connection collisions resolved in favour of the inbound connection.
    pub collisions: u64,
}

enum PeerCommand {
    Start,
    Stop,
    Close(starling_wire::Notification),
    Incoming(TcpStream),
    Send(Bytes, MessageType),
    SetPassive(bool),
    SetRestarting(bool),
    /// Close for good, with this NOTIFICATION (default: Cease / Peer
    /// De-configured).
    Shutdown(Option<starling_wire::Notification>),
}

/// Handle to a running peer task.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    tx: mpsc::UnboundedSender<PeerCommand>,
    status: Arc<Mutex<PeerStatus>>,
    /// The current connection's writer, for [`PeerHandle::backlog`].
    writer: Arc<Mutex<Option<Arc<WriteProgress>>>>,
    /// Octets sent to the peer task and not yet handed to a connection.
    unforwarded: Arc<std::sync::atomic::AtomicUsize>,
    password: Option<crate::config::Secret>,
}

impl std::fmt::Debug for PeerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Start => "Start",
            Self::Stop => "Stop",
            Self::Close(_) => "Close",
            Self::Incoming(_) => "Incoming",
            Self::Send(..) => "Send",
            Self::SetPassive(_) => "SetPassive",
            Self::SetRestarting(_) => "SetRestarting",
            Self::Shutdown(_) => "Shutdown",
        })
    }
}

impl PeerHandle {
    pub fn start(&self) {
        let _ = self.tx.send(PeerCommand::Start);
    }

    pub fn stop(&self) {
        let _ = self.tx.send(PeerCommand::Stop);
    }

    /// Start or stop connecting out; the session is not touched.
    pub fn set_passive(&self, passive: bool) {
        let _ = self.tx.send(PeerCommand::SetPassive(passive));
    }

    /// Set or clear the R bit of the next OPEN (we are recovering from a
    /// restart).
    pub fn set_restarting(&self, restarting: bool) {
        let _ = self.tx.send(PeerCommand::SetRestarting(restarting));
    }

    /// Close the session with this NOTIFICATION; it restarts after the
    /// idle-hold backoff.
    pub fn close(&self, notification: starling_wire::Notification) {
        let _ = self.tx.send(PeerCommand::Close(notification));
    }

    /// Octets queued on the session's connection and not yet written: how
    /// far the peer is behind in reading what it is sent.
    pub fn backlog(&self) -> usize {
        use std::sync::atomic::Ordering;
        let writing = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |w| w.pending.load(Ordering::Relaxed));
        writing + self.unforwarded.load(Ordering::Relaxed)
    }

    /// The peer's task has ended (the peer was removed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Queue encoded UPDATEs (or any message) for the peer.
    pub fn send(&self, bytes: impl Into<Bytes>, kind: MessageType) {
        use std::sync::atomic::Ordering;
        let bytes = bytes.into();
        let len = bytes.len();
        self.unforwarded.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(PeerCommand::Send(bytes, kind)).is_err() {
            self.unforwarded.fetch_sub(len, Ordering::Relaxed);
        }
    }

    pub fn status(&self) -> PeerStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Spawn the task for one peer. Events go to `events` tagged with the
/// peer's address.
pub fn spawn_peer(
    cfg: PeerConfig,
    events: mpsc::UnboundedSender<(IpAddr, PeerEvent)>,
) -> (PeerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let password = cfg.password.clone();
    let status = Arc::new(Mutex::new(PeerStatus {
        remote: cfg.remote,
        state: State::Idle,
        since: Instant::now(),
        last_error: None,
        negotiated: None,
        updates_received: 0,
        updates_sent: 0,
        counters: Default::default(),
        collisions: 0,
    }));
    let writer = Arc::new(Mutex::new(None));
    let unforwarded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let task = PeerTask {
        writer: writer.clone(),
        unforwarded: unforwarded.clone(),
        session: Session::new(cfg),
        events,
        status: status.clone(),
        conn: None,
        outbound: false,
        connecting: None,
        contender: None,
        held_since: None,
        intake: Arc::default(),
    };
    let join = tokio::spawn(task.run(rx));
    (
        PeerHandle {
            tx,
            status,
            writer,
            unforwarded,
            password,
        },
        join,
    )
}

struct Connection {
    reader: OwnedReadHalf,
    writer: mpsc::UnboundedSender<WriterCommand>,
    progress: Arc<WriteProgress>,
    writer_task: JoinHandle<()>,
}

/// What the writer task has done, for the send hold timer (RFC 9687).
#[derive(Debug)]
struct WriteProgress {
    /// Octets queued and not yet written to the socket.
    pending: std::sync::atomic::AtomicUsize,
    /// When the writer last made progress (or work arrived while idle).
    last: Mutex<Instant>,
}

impl WriteProgress {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// When the send hold timer fires if nothing moves, if anything waits.
    fn stall_deadline(&self, hold: std::time::Duration) -> Option<Instant> {
        use std::sync::atomic::Ordering;
        (self.pending.load(Ordering::Relaxed) > 0)
            .then(|| *self.last.lock().unwrap_or_else(PoisonError::into_inner) + hold)
    }
}

impl Connection {
    fn send(&self, bytes: Bytes) {
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

enum WriterCommand {
    Bytes(Bytes),
    Close,
}

struct PeerTask {
    /// Shared with the handle: the main connection's writer progress.
    writer: Arc<Mutex<Option<Arc<WriteProgress>>>>,
    unforwarded: Arc<std::sync::atomic::AtomicUsize>,
    session: Session,
    events: mpsc::UnboundedSender<(IpAddr, PeerEvent)>,
    status: Arc<Mutex<PeerStatus>>,
    conn: Option<Connection>,
    /// Whether `conn` is the connection we initiated (collision rule).
    outbound: bool,
    connecting: Option<JoinHandle<io::Result<TcpStream>>>,
    /// Since when the inbound session's confirmation is held back while our
    /// own connection attempt is in flight (see `drain_outputs`).
    held_since: Option<Instant>,
    /// An inbound connection that arrived while ours was opening: both run
    /// until one side's BGP Identifier is known, then RFC 4271 §6.8 picks
    /// the survivor.
    contender: Option<Contender>,
    /// UPDATEs sent to the RIB and not yet applied.
    intake: Arc<Intake>,
}

/// The second connection of a collision, with its own state machine.
struct Contender {
    session: Session,
    conn: Connection,
    /// We initiated it.
    outbound: bool,
}

/// Longest wait for our own connection attempt before confirming an
/// inbound session (see `PeerTask::drain_outputs`).
const CONFIRMATION_HOLD: std::time::Duration = std::time::Duration::from_secs(2);

/// Cease / Connection Collision Resolution.
fn collision_cease() -> starling_wire::Notification {
    starling_wire::Notification::new(
        starling_wire::notification::code::CEASE,
        starling_wire::notification::code::cease::CONNECTION_COLLISION,
    )
}

impl PeerTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<PeerCommand>) {
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

    fn incoming(&mut self, stream: TcpStream) {
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
    fn contend(&mut self, stream: TcpStream, outbound: bool) {
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

    fn open_connection(stream: TcpStream) -> Connection {
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

    fn attach(&mut self, stream: TcpStream) {
        self.replace_conn(Some(Self::open_connection(stream)));
    }

    /// Make `conn` the main connection (publishing its writer's progress
    /// to the handle); the previous one, if any.
    fn replace_conn(&mut self, conn: Option<Connection>) -> Option<Connection> {
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
    fn resolve_collision(&mut self) {
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
        let negotiated = self.session.negotiated().cloned();
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

    /// Established on our side, but our confirming KEEPALIVE is still held
    /// back (see `drain_outputs`): to the peer this connection is only in
    /// OpenConfirm, so the collision rule, not "Established wins", applies.
    fn unconfirmed_established(&self) -> bool {
        self.session.state() == State::Established && self.held_since.is_some()
    }

    /// Write the contender's queued messages (its OPEN) while undecided.
    fn flush_contender(&mut self) {
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
    fn finish_loser(
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
    fn send_hold_expired(&mut self, now: Instant) {
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
    fn read_pending(&mut self, buf: &mut [u8]) {
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

    fn detach(&mut self) {
        if let Some(c) = self.replace_conn(None) {
            let _ = c.writer.send(WriterCommand::Close);
        }
    }

    fn drain_outputs(&mut self) {
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
                Output::Established(n) => {
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

    fn update_status(&self, f: impl FnOnce(&mut PeerStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

async fn connect(cfg: PeerConfig) -> io::Result<TcpStream> {
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
fn gtsm_min_ttl(hops: u8) -> u8 {
    (256 - u16::from(hops.max(1))) as u8
}

/// Apply a peer's GTSM/TTL settings to an accepted connection. With GTSM
/// the SYN's TTL is checked (the listener saved it), then IP_MINTTL guards
/// every later segment.
fn secure_accepted(stream: &TcpStream, cfg: &PeerConfig) -> io::Result<()> {
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

async fn write_loop(
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

/// The set of peers and the listeners that feed them.
#[derive(Debug, Default)]
pub struct PeerRegistry {
    peers: HashMap<IpAddr, (PeerHandle, JoinHandle<()>)>,
    /// Listening sockets, which need each peer's TCP-MD5 key before the
    /// peer's SYN arrives.
    listeners: Vec<Arc<TcpListener>>,
}

impl PeerRegistry {
    /// Register a listener; existing peers' keys are installed on it.
    pub fn add_listener(&mut self, listener: Arc<TcpListener>) -> io::Result<()> {
        let v6 = listener.local_addr()?.is_ipv6();
        sockopt::save_syn(listener.as_ref())?;
        for (handle, _) in self.peers.values() {
            if let Some(key) = &handle.password {
                let peer = handle.status().remote.ip();
                sockopt::set_md5_key(listener.as_ref(), peer, Some(key.expose().as_bytes()), v6)?;
            }
        }
        self.listeners.push(listener);
        Ok(())
    }

    /// Add (and start) a peer.
    pub fn add_peer(
        &mut self,
        cfg: PeerConfig,
        events: mpsc::UnboundedSender<(IpAddr, PeerEvent)>,
    ) -> PeerHandle {
        let ip = cfg.remote.ip();
        // A peer without a password needs no key; removing a key that was
        // never installed would only fail with ENOENT.
        let key = cfg.password.as_ref().map(|p| p.expose().as_bytes());
        let replaced_had_key = self
            .peers
            .get(&ip)
            .is_some_and(|(h, _)| h.password.is_some());
        for listener in self
            .listeners
            .iter()
            .filter(|_| key.is_some() || replaced_had_key)
        {
            let v6 = listener.local_addr().is_ok_and(|a| a.is_ipv6());
            if let Err(e) = sockopt::set_md5_key(listener.as_ref(), ip, key, v6) {
                tracing::error!(peer = %ip, "cannot install the TCP-MD5 key on a listener: {e}");
            }
        }
        if let Some((old, join)) = self.peers.remove(&ip) {
            let _ = old.tx.send(PeerCommand::Shutdown(None));
            join.abort();
        }
        let (handle, join) = spawn_peer(cfg, events);
        handle.start();
        self.peers.insert(ip, (handle.clone(), join));
        handle
    }

    /// Remove a peer: it closes with Cease.
    pub fn remove_peer(&mut self, ip: IpAddr) {
        self.remove_peer_with(ip, None);
    }

    /// Remove a peer, closing its session with `notification`.
    pub fn remove_peer_with(
        &mut self,
        ip: IpAddr,
        notification: Option<starling_wire::Notification>,
    ) {
        if let Some((handle, _join)) = self.peers.remove(&ip) {
            let _ = handle.tx.send(PeerCommand::Shutdown(notification));
            if handle.password.is_some() {
                for listener in &self.listeners {
                    let v6 = listener.local_addr().is_ok_and(|a| a.is_ipv6());
                    let _ = sockopt::set_md5_key(listener.as_ref(), ip, None, v6);
                }
            }
        }
    }

    pub fn peer(&self, ip: IpAddr) -> Option<&PeerHandle> {
        self.peers.get(&ip).map(|(h, _)| h)
    }

    /// Hand an accepted connection to its peer; unknown sources are closed.
    pub fn dispatch(&self, stream: TcpStream, from: SocketAddr) {
        // A dual-stack listener ([::], the appliance's default) sees an
        // IPv4 peer as ::ffff:a.b.c.d; peers are keyed by their IPv4
        // address.
        match self.peers.get(&from.ip().to_canonical()) {
            Some((h, _)) => {
                let _ = h.tx.send(PeerCommand::Incoming(stream));
            }
            None => tracing::info!(%from, "connection from an unconfigured address refused"),
        }
    }
}

/// Accept connections on `listener` forever, dispatching them to peers.
pub async fn accept_loop(listener: TcpListener, speaker: Arc<Mutex<PeerRegistry>>) {
    let listener = Arc::new(listener);
    let registered = speaker
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .add_listener(listener.clone());
    if let Err(e) = registered {
        tracing::error!("cannot install TCP-MD5 keys on a listener: {e}");
    }
    loop {
        match listener.accept().await {
            Ok((stream, from)) => speaker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .dispatch(stream, from),
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use starling_wire::{Nlri, Prefix, Update};

    use super::*;

    /// An UPDATE announcing `n` prefixes.
    fn update(n: usize) -> ParsedUpdate {
        let nlri = (0..n)
            .map(|i| {
                let addr = IpAddr::from((0x0a00_0000 + i as u32).to_be_bytes());
                Nlri::new(Prefix::new(addr, 32).expect("prefix"))
            })
            .collect();
        ParsedUpdate::from(Update {
            nlri,
            ..Update::default()
        })
    }

    #[tokio::test]
    async fn reading_waits_while_the_rib_holds_too_many_of_a_peers_prefixes() {
        let intake = Arc::new(Intake::default());
        let first = intake.admit(&update(INTAKE_HIGH / 2));
        let room = || tokio::time::timeout(Duration::from_millis(50), intake.room());
        assert!(room().await.is_ok(), "half full: reading goes on");
        let second = intake.admit(&update(INTAKE_HIGH / 2));
        let copy = second.clone();
        assert!(room().await.is_err(), "over the limit: reading waits");
        drop(second);
        assert!(room().await.is_err(), "a clone still holds its share");
        drop(copy);
        assert!(room().await.is_ok(), "applied: reading goes on");
        drop(first);
        assert_eq!(
            intake.prefixes.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}
