//! The harness's own view of the kernel's IPv4 routing table, over raw
//! netlink, independent of the FIB code it measures:
//!
//! - the floor: pre-encoded route messages, a batch per `send`, no
//!   per-route ACK (the kernel still reports failures), one ACK at the end
//!   — the fastest way this kernel takes routes (perf-method.md 4.3);
//! - a monitor that timestamps a daemon's routes as the kernel announces
//!   them (RTNLGRP_IPV4_ROUTE), so T_fib needs no polling of the daemon;
//! - counting and flushing a protocol's routes, between runs.
//!
//! Only the calling thread's network namespace is touched: the benchmark
//! runs in one it created (or, for the mesh, enters each node's with
//! [`in_namespace`]).

// Raw netlink through libc, so the harness shares no code with the FIB
// programmer it measures; each call says why it is sound.
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const RTA_DST: u16 = 1;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;
const RTN_UNICAST: u8 = 1;
/// RTMGRP_IPV4_ROUTE, the legacy group bit bound at `bind`.
const GROUP_IPV4_ROUTE: u32 = 0x40;

/// The floor's routes carry this protocol, which no daemon uses.
pub(crate) const FLOOR_PROTOCOL: u8 = 250;
/// Route messages per `send`: perf-method.md 4.3 measured 700–1000 as
/// the kernel's best.
const BATCH: usize = 1000;

/// An IPv4 prefix as the kernel sees it.
pub(crate) type Route = (Ipv4Addr, u8);

/// Where the floor's routes point.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    /// A gateway, inline in each route (as daemons write them).
    Gateway(Ipv4Addr),
    /// A kernel nexthop object (RTA_NH_ID), shared by every route.
    Nexthop(u32),
}

const RTA_NH_ID: u16 = 30;

struct Socket {
    fd: OwnedFd,
}

impl Socket {
    fn open(groups: u32) -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned from here on.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and is not shared.
        let socket = Socket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        };
        // SAFETY: an all-zero sockaddr_nl is valid; the fields set below
        // are its family and multicast groups.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = groups;
        // SAFETY: `addr` is a properly sized sockaddr_nl.
        let rc = unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // Room for a burst of replies or notifications (root may exceed
        // rmem_max): a full table's announcements, if the reader lags.
        socket.set_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 1 << 30)?;
        socket.set_int(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 4 << 20)?;
        Ok(socket)
    }

    fn set_int(&self, level: i32, name: i32, value: i32) -> io::Result<()> {
        // SAFETY: setsockopt with a pointer to a live i32 and its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw const value).cast(),
                std::mem::size_of::<i32>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Give up on a `recv` after `timeout`, so a waiting reader can look
    /// at its deadline.
    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        // SAFETY: setsockopt with a pointer to a live timeval and its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: send(2) from a live buffer of the given length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One datagram into `buf`; `flags` as recv(2)'s.
    fn recv(&self, buf: &mut [u8], flags: i32) -> io::Result<usize> {
        // SAFETY: recv(2) into a live buffer of the given length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// One netlink message in a datagram.
struct Message<'a> {
    kind: u16,
    seq: u32,
    body: &'a [u8],
}

/// The messages of one datagram.
fn messages(mut data: &[u8]) -> impl Iterator<Item = Message<'_>> {
    std::iter::from_fn(move || {
        if data.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(data[0..4].try_into().ok()?) as usize;
        if len < 16 || len > data.len() {
            return None;
        }
        let message = Message {
            kind: u16::from_ne_bytes(data[4..6].try_into().ok()?),
            seq: u32::from_ne_bytes(data[8..12].try_into().ok()?),
            body: &data[16..len],
        };
        data = &data[(len + 3) & !3..];
        Some(message)
    })
}

/// The errno of an NLMSG_ERROR body (0: an ACK).
fn error_code(body: &[u8]) -> i32 {
    body.get(0..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i32::from_ne_bytes)
}

/// Append one IPv4 route message for the main table.
fn route_message(
    buf: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    (dst, len): Route,
    via: Option<Via>,
    protocol: u8,
) {
    let size = 16 + 12 + 8 + if via.is_some() { 8 } else { 0 };
    buf.extend_from_slice(&(size as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // A delete names no type (RTN_UNSPEC): it then matches any, the
    // blackholes Calico's routing installs included.
    let kind_of_route = if kind == RTM_DELROUTE { 0 } else { RTN_UNICAST };
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol,
    // scope (universe), type; flags.
    buf.extend_from_slice(&[
        libc::AF_INET as u8,
        len,
        0,
        0,
        RT_TABLE_MAIN,
        protocol,
        0,
        kind_of_route,
    ]);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    let mut attribute = |kind: u16, value: [u8; 4]| {
        buf.extend_from_slice(&8u16.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&value);
    };
    attribute(RTA_DST, dst.octets());
    match via {
        Some(Via::Gateway(gateway)) => attribute(RTA_GATEWAY, gateway.octets()),
        Some(Via::Nexthop(id)) => attribute(RTA_NH_ID, id.to_ne_bytes()),
        None => {}
    }
}

/// Write `routes` (`via` something: adds; without: deletes) in batches,
/// encoded before the clock starts; the time from the first `send` until
/// the kernel has acknowledged the last message. Any route the kernel
/// refuses is an error.
fn batched(routes: &[Route], via: Option<Via>) -> io::Result<Duration> {
    let socket = Socket::open(0)?;
    let (kind, flags) = match via {
        Some(_) => (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL),
        None => (RTM_DELROUTE, NLM_F_REQUEST),
    };
    let batches: Vec<Vec<u8>> = routes
        .chunks(BATCH)
        .enumerate()
        .map(|(b, chunk)| {
            let mut buf = Vec::with_capacity(chunk.len() * 44);
            for (i, route) in chunk.iter().enumerate() {
                let seq = (b * BATCH + i + 1) as u32;
                // Only the very last message asks for an ACK: the end.
                let ack = if seq as usize == routes.len() {
                    NLM_F_ACK
                } else {
                    0
                };
                route_message(
                    &mut buf,
                    kind,
                    flags | ack,
                    seq,
                    *route,
                    via,
                    FLOOR_PROTOCOL,
                );
            }
            buf
        })
        .collect();
    let last = routes.len() as u32;
    let mut reply = vec![0u8; 1 << 16];
    let mut refused = 0usize;
    let mut first_error = None;
    // The kernel handles a batch within `send`: the last ACK may already
    // be read by the loop that collects failures.
    let acked = std::cell::Cell::new(routes.is_empty());
    let mut note = |m: &Message<'_>| {
        if m.kind != NLMSG_ERROR {
            return;
        }
        let code = error_code(m.body);
        if code != 0 {
            refused += 1;
            first_error.get_or_insert((m.seq, -code));
        }
        if m.seq == last {
            acked.set(true);
        }
    };
    let started = Instant::now();
    for batch in &batches {
        socket.send(batch)?;
        // Failures come back unasked; read them as they come, so the
        // receive buffer never fills.
        while let Ok(n) = socket.recv(&mut reply, libc::MSG_DONTWAIT) {
            messages(&reply[..n]).for_each(|m| note(&m));
        }
    }
    socket.set_timeout(Duration::from_secs(60))?;
    while !acked.get() {
        let n = socket.recv(&mut reply, 0)?;
        messages(&reply[..n]).for_each(|m| note(&m));
    }
    let elapsed = started.elapsed();
    if let Some((seq, errno)) = first_error {
        let route = routes[seq as usize - 1];
        return Err(io::Error::other(format!(
            "the kernel refused {refused} of {} routes; the first, {}/{}: {}",
            routes.len(),
            route.0,
            route.1,
            io::Error::from_raw_os_error(errno)
        )));
    }
    Ok(elapsed)
}

/// The floor: add `routes` `via` a gateway or a nexthop object (protocol
/// [`FLOOR_PROTOCOL`]).
pub(crate) fn add_floor(routes: &[Route], via: Via) -> io::Result<Duration> {
    batched(routes, Some(via))
}

/// Run the calling thread on `cpu` only (the floor's writer takes the
/// daemon's CPU, as the daemon's writes do).
pub(crate) fn pin_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside
    // it, and sched_setaffinity(0, ..) reads it for this thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The floor's delete of the same routes.
pub(crate) fn delete_floor(routes: &[Route]) -> io::Result<Duration> {
    batched(routes, None)
}

/// The main table's IPv4 routes of `protocol`, by dump.
pub(crate) fn dump(protocol: u8) -> io::Result<Vec<Route>> {
    let socket = Socket::open(0)?;
    socket.set_timeout(Duration::from_secs(60))?;
    let mut request = Vec::new();
    request.extend_from_slice(&(16u32 + 12).to_ne_bytes());
    request.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    request.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0]);
    request.extend_from_slice(&0u32.to_ne_bytes());
    socket.send(&request)?;
    let mut routes = Vec::new();
    let mut reply = vec![0u8; 1 << 20];
    loop {
        let n = socket.recv(&mut reply, 0)?;
        for m in messages(&reply[..n]) {
            match m.kind {
                NLMSG_DONE => return Ok(routes),
                NLMSG_ERROR => {
                    return Err(io::Error::from_raw_os_error(-error_code(m.body)));
                }
                RTM_NEWROUTE => {
                    if let Some(route) = parse_route(m.body, protocol) {
                        routes.push(route);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Delete every main-table IPv4 route of `protocol`; how many there were.
pub(crate) fn flush(protocol: u8) -> io::Result<usize> {
    let mut routes = dump(protocol)?;
    // Descending: the kernel's trie shrinks from the end (see starling-fib).
    routes.sort_unstable_by(|a, b| b.cmp(a));
    let socket = Socket::open(0)?;
    socket.set_timeout(Duration::from_secs(60))?;
    let mut reply = vec![0u8; 1 << 16];
    for (b, chunk) in routes.chunks(BATCH).enumerate() {
        let mut buf = Vec::with_capacity(chunk.len() * 36);
        let last = (b * BATCH + chunk.len()) as u32;
        for (i, route) in chunk.iter().enumerate() {
            let seq = (b * BATCH + i + 1) as u32;
            let ack = if seq == last { NLM_F_ACK } else { 0 };
            route_message(
                &mut buf,
                RTM_DELROUTE,
                NLM_F_REQUEST | ack,
                seq,
                *route,
                None,
                protocol,
            );
        }
        socket.send(&buf)?;
        // Wait for the batch's last answer (failures: routes already gone).
        'acked: loop {
            let n = socket.recv(&mut reply, 0)?;
            if messages(&reply[..n]).any(|m| m.kind == NLMSG_ERROR && m.seq == last) {
                break 'acked;
            }
        }
    }
    Ok(routes.len())
}

/// A main-table IPv4 route of `protocol` from an RTM_NEWROUTE body.
fn parse_route(body: &[u8], protocol: u8) -> Option<Route> {
    let header = body.get(..12)?;
    if header[0] != libc::AF_INET as u8 || header[5] != protocol {
        return None;
    }
    let len = header[1];
    let mut table = u32::from(header[4]);
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut attributes = &body[12..];
    while attributes.len() >= 4 {
        let size = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]);
        if size < 4 || size > attributes.len() {
            break;
        }
        let value = &attributes[4..size];
        match kind {
            RTA_DST if value.len() == 4 => {
                dst = Ipv4Addr::new(value[0], value[1], value[2], value[3])
            }
            RTA_TABLE if value.len() == 4 => table = u32::from_ne_bytes(value.try_into().ok()?),
            _ => {}
        }
        let step = ((size + 3) & !3).min(attributes.len());
        attributes = &attributes[step..];
    }
    (table == u32::from(RT_TABLE_MAIN)).then_some((dst, len))
}

/// Watches the kernel announce a protocol's routes, from before a run
/// starts until the main table holds `want` of them.
pub(crate) struct Monitor {
    socket: Socket,
    protocol: u8,
    held: HashSet<Route>,
    buf: Vec<u8>,
}

impl Monitor {
    /// Subscribe before the daemon starts, so no announcement is missed.
    pub(crate) fn start(protocol: u8) -> io::Result<Self> {
        let socket = Socket::open(GROUP_IPV4_ROUTE)?;
        socket.set_timeout(Duration::from_millis(100))?;
        Ok(Monitor {
            socket,
            protocol,
            held: HashSet::new(),
            buf: vec![0u8; 1 << 20],
        })
    }

    /// Block until the table holds `want` of the protocol's routes (or,
    /// with `want` 0, none), or `limit` passes; when it did. Lost
    /// announcements (the receive buffer overflowed) are an error, not a
    /// guess.
    pub(crate) fn wait_for(&mut self, want: usize, limit: Duration) -> io::Result<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if self.held.len() == want {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the kernel held {} of {want} routes", self.held.len()),
                ));
            }
            let n = match self.socket.recv(&mut self.buf, 0) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Err(io::Error::other(
                        "the route monitor lost announcements (receive buffer full)",
                    ));
                }
                Err(e) => return Err(e),
            };
            self.absorb(n);
        }
    }

    /// Take in every announcement already queued, without waiting: after
    /// the harness changed the table itself (a flush), `held` counts what
    /// the kernel holds now.
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        loop {
            match self.socket.recv(&mut self.buf, libc::MSG_DONTWAIT) {
                Ok(n) => self.absorb(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Err(io::Error::other(
                        "the route monitor lost announcements (receive buffer full)",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The routes of the protocol the main table holds, as announced.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// Apply the first `n` octets of the buffer: one datagram.
    fn absorb(&mut self, n: usize) {
        for m in messages(&self.buf[..n]) {
            match m.kind {
                RTM_NEWROUTE => {
                    if let Some(route) = parse_route(m.body, self.protocol) {
                        self.held.insert(route);
                    }
                }
                RTM_DELROUTE => {
                    if let Some(route) = parse_route(m.body, self.protocol) {
                        self.held.remove(&route);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Run `f` on a thread inside network namespace `name` (`ip netns`'s
/// `/run/netns/<name>`): the sockets it opens stay bound to that
/// namespace wherever they are used afterwards.
pub(crate) fn in_namespace<T: Send>(
    name: &str,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let file = std::fs::File::open(format!("/run/netns/{name}"))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) with a namespace descriptor that `file`
            // keeps open; it moves only this thread, which ends here.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })
        .join()
        .map_err(|_| io::Error::other("a namespace thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_message_reads_back() {
        let mut buf = Vec::new();
        let route = (Ipv4Addr::new(198, 51, 100, 0), 24);
        let gateway = Some(Via::Gateway(Ipv4Addr::new(203, 0, 113, 2)));
        route_message(&mut buf, RTM_NEWROUTE, NLM_F_REQUEST, 7, route, gateway, 12);
        let all: Vec<_> = messages(&buf).collect();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].kind, all[0].seq), (RTM_NEWROUTE, 7));
        assert_eq!(parse_route(all[0].body, 12), Some(route));
        assert_eq!(parse_route(all[0].body, 199), None, "another protocol");
    }
}
