//! Kernel route notifications, so the FIB programmer learns at once when
//! someone else changes a route of ours, and when the kernel dropped
//! notifications (socket overrun) so that only a full re-read can tell.

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{AsyncSocket, AsyncSocketExt, TokioSocket};

use crate::netlink::{describe, each_message};
use crate::{Destination, FibError, Target};

/// `RTNLGRP_IPV4_ROUTE` and `RTNLGRP_IPV6_ROUTE` (linux/rtnetlink.h).
const GROUPS: [u32; 2] = [7, 11];

/// What the kernel told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A route was added or replaced.
    Added {
        table: u32,
        protocol: u8,
        dest: Destination,
        /// `None`: a kind Starling does not program (local, unreachable…).
        target: Option<Target>,
    },
    Deleted {
        table: u32,
        protocol: u8,
        dest: Destination,
    },
    /// Notifications were lost (the socket's buffer overran): the table
    /// must be read again to know its state.
    Overrun,
}

/// A subscription to route changes in the current network namespace.
pub struct RouteMonitor {
    socket: TokioSocket,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for RouteMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteMonitor")
    }
}

impl RouteMonitor {
    /// Subscribe. Needs a tokio runtime.
    pub fn open() -> Result<Self, FibError> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE).map_err(FibError::Socket)?;
        let inner = socket.socket_mut();
        inner.bind_auto().map_err(FibError::Socket)?;
        inner.set_rx_buf_sz(4 << 20).map_err(FibError::Socket)?;
        for group in GROUPS {
            inner.add_membership(group).map_err(FibError::Socket)?;
        }
        Ok(RouteMonitor {
            socket,
            buffer: Vec::with_capacity(1 << 16),
        })
    }

    /// Stop hearing about route changes, for the length of one of our own
    /// large writes: a million echoes would overrun the socket anyway, and
    /// each costs the kernel a copy in the writer's time. Whoever pauses
    /// must compare the table with the kernel's afterwards
    /// ([`crate::Fib::resync`]): changes made meanwhile went unseen.
    pub fn pause(&mut self) -> Result<(), FibError> {
        let inner = self.socket.socket_mut();
        for group in GROUPS {
            inner.drop_membership(group).map_err(FibError::Socket)?;
        }
        Ok(())
    }

    /// Hear about route changes again after [`RouteMonitor::pause`].
    pub fn resume(&mut self) -> Result<(), FibError> {
        let inner = self.socket.socket_mut();
        for group in GROUPS {
            inner.add_membership(group).map_err(FibError::Socket)?;
        }
        Ok(())
    }

    /// The next batch of events (one datagram's worth). Cancel-safe: a
    /// datagram is consumed only when this returns.
    pub async fn next(&mut self) -> Result<Vec<KernelEvent>, FibError> {
        self.buffer.clear();
        match self.socket.recv(&mut self.buffer).await {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(105) => return Ok(vec![KernelEvent::Overrun]),
            Err(e) => return Err(FibError::Socket(e)),
        }
        events(&self.buffer)
    }
}

/// The route events in one datagram of notifications.
pub(crate) fn events(datagram: &[u8]) -> Result<Vec<KernelEvent>, FibError> {
    let mut events = Vec::new();
    each_message(datagram, &mut |message| {
        match message.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) => {
                if let Some((table, dest, target)) = describe(&route) {
                    events.push(KernelEvent::Added {
                        table,
                        protocol: route.header.protocol.into(),
                        dest,
                        target,
                    });
                }
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(route)) => {
                if let Some((table, dest, _)) = describe(&route) {
                    events.push(KernelEvent::Deleted {
                        table,
                        protocol: route.header.protocol.into(),
                        dest,
                    });
                }
            }
            _ => {}
        }
        Ok(false)
    })?;
    Ok(events)
}
