//! The netlink side: batched route writes and filtered table dumps.

use std::collections::BTreeMap;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::{Destination, FibConfig, FibError, Op, Target};

/// Tables above 255 do not fit the header's byte; the kernel reads them
/// from RTA_TABLE when the header says RT_TABLE_UNSPEC.
const RT_TABLE_UNSPEC: u8 = 0;

/// A unicast route named without its gateways (for deletes).
static NO_GATEWAY: Target = Target::Via(crate::Gateways::new_const());

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// How often a dump interrupted by concurrent changes is retried.
const DUMP_RETRIES: usize = 5;

/// What [`Netlink::dump_each`] hands over.
#[derive(Debug)]
pub(crate) enum Dumped {
    Route(Destination, Target),
    /// The dump of one family was interrupted: its routes handed over so
    /// far are void, and it starts again.
    Restart {
        ipv6: bool,
    },
}

/// One rtnetlink socket.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    sequence: u32,
    /// Reused for every receive (a fresh large buffer per ACK is what made
    /// ACKed writes look 4× slower in perf-method.md §4.3).
    receive: Vec<u8>,
    send: Vec<u8>,
}

impl Netlink {
    pub fn open() -> Result<Self, FibError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(FibError::Socket)?;
        socket.bind_auto().map_err(FibError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(FibError::Socket)?;
        // Big enough for a dump burst; the kernel doubles and caps it.
        socket.set_rx_buf_sz(8 << 20).map_err(FibError::Socket)?;
        // Let the kernel filter dumps by table and protocol.
        socket
            .set_netlink_get_strict_chk(true)
            .map_err(FibError::Socket)?;
        socket.set_ext_ack(true).map_err(FibError::Socket)?;
        Ok(Netlink {
            socket,
            sequence: 1,
            receive: Vec::with_capacity(1 << 20),
            send: Vec::with_capacity(1 << 20),
        })
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence = self.sequence.wrapping_add(1).max(1);
        self.sequence
    }

    /// Send `ops` in batches; return the destinations the kernel refused.
    pub(crate) fn write(
        &mut self,
        config: &FibConfig,
        ops: &[(Op, Destination, Target)],
        groups: &[Option<u32>],
    ) -> Result<Vec<(Destination, String)>, FibError> {
        let mut refused = Vec::new();
        let batch = config.batch.max(1);
        for (chunk, chunk_groups) in ops.chunks(batch).zip(groups.chunks(batch)) {
            self.send.clear();
            // Sequence numbers, in the order sent (consecutive but for a
            // wrap): an error names its message by number.
            let mut sequences = Vec::with_capacity(chunk.len());
            let last = chunk.len() - 1;
            for (i, (op, dest, target)) in chunk.iter().enumerate() {
                let sequence = self.next_sequence();
                sequences.push(sequence);
                let mut flags = NLM_F_REQUEST;
                flags |= match op {
                    Op::Add => NLM_F_CREATE | NLM_F_EXCL,
                    Op::Replace => NLM_F_CREATE | NLM_F_REPLACE,
                    Op::Delete => 0,
                };
                // Errors come back without asking; one ACK marks the end.
                if i == last {
                    flags |= NLM_F_ACK;
                }
                let payload = match op {
                    // Destination, table and protocol identify our route;
                    // leaving the gateways out spares the kernel matching
                    // them hop by hop.
                    // (The route type must still match: a blackhole is only
                    // deleted as a blackhole.)
                    Op::Delete => RouteNetlinkMessage::DelRoute(route_message(
                        config,
                        dest,
                        match target {
                            Target::Blackhole => &Target::Blackhole,
                            Target::Via(_) => &NO_GATEWAY,
                        },
                        None,
                    )),
                    _ => RouteNetlinkMessage::NewRoute(route_message(
                        config,
                        dest,
                        target,
                        chunk_groups.get(i).copied().flatten(),
                    )),
                };
                self.push(payload, flags, sequence);
            }
            self.socket.send(&self.send, 0).map_err(FibError::Socket)?;
            let end = sequences.last().copied().unwrap_or(0);
            self.await_ack(end, |sequence, error| {
                if let Some(i) = sequences.iter().position(|s| *s == sequence) {
                    refused.push((chunk[i].1, error));
                }
            })?;
        }
        Ok(refused)
    }

    /// Send raw requests (message type, flags, body), each ACKed; the
    /// kernel's error for each, `None` when it succeeded.
    pub(crate) fn request_raw(
        &mut self,
        requests: &[(u16, u16, Vec<u8>)],
    ) -> Result<Vec<Option<String>>, FibError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        self.send.clear();
        let mut sequences = Vec::with_capacity(requests.len());
        for (kind, flags, body) in requests {
            let sequence = self.next_sequence();
            sequences.push(sequence);
            self.push_raw(*kind, *flags | NLM_F_REQUEST | NLM_F_ACK, sequence, body);
        }
        self.socket.send(&self.send, 0).map_err(FibError::Socket)?;
        let mut results: Vec<Option<Option<String>>> = vec![None; requests.len()];
        let mut pending = requests.len();
        self.receive_raw_until(|kind, _, sequence, body| {
            if kind != NLMSG_ERROR {
                return Ok(false);
            }
            let Some(index) = sequences.iter().position(|s| *s == sequence) else {
                return Ok(false);
            };
            let code = body
                .get(..4)
                .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
            if results[index].is_none() {
                pending -= 1;
            }
            results[index] =
                Some((code != 0).then(|| std::io::Error::from_raw_os_error(-code).to_string()));
            Ok(pending == 0)
        })?;
        Ok(results.into_iter().map(Option::flatten).collect())
    }

    /// Every nexthop object in the namespace; `None` when the kernel has
    /// no nexthop objects (before 5.3).
    pub(crate) fn dump_nexthops(
        &mut self,
    ) -> Result<Option<Vec<crate::nexthop::Object>>, FibError> {
        let sequence = self.next_sequence();
        self.send.clear();
        self.push_raw(
            crate::nexthop::RTM_GETNEXTHOP,
            NLM_F_REQUEST | NLM_F_DUMP,
            sequence,
            &crate::nexthop::dump_request(),
        );
        self.socket.send(&self.send, 0).map_err(FibError::Socket)?;
        let mut objects = Vec::new();
        let mut unsupported = false;
        self.receive_raw_until(|kind, _, seq, body| {
            if seq != sequence {
                return Ok(false);
            }
            match kind {
                NLMSG_DONE => Ok(true),
                NLMSG_ERROR => {
                    unsupported = true;
                    Ok(true)
                }
                crate::nexthop::RTM_NEWNEXTHOP => {
                    objects.extend(crate::nexthop::parse(body));
                    Ok(false)
                }
                _ => Ok(false),
            }
        })?;
        Ok((!unsupported).then_some(objects))
    }

    /// The interface the kernel would use to reach `gateway`.
    pub(crate) fn output_interface(&mut self, gateway: IpAddr) -> Result<Option<u32>, FibError> {
        let mut request = RouteMessage::default();
        request.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        request.header.destination_prefix_length = if gateway.is_ipv4() { 32 } else { 128 };
        request
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::from(gateway)));
        let sequence = self.next_sequence();
        self.send.clear();
        self.push(
            RouteNetlinkMessage::GetRoute(request),
            NLM_F_REQUEST,
            sequence,
        );
        self.socket.send(&self.send, 0).map_err(FibError::Socket)?;
        let mut oif = None;
        self.receive_until(|message| {
            if message.header.sequence_number != sequence {
                return Ok(false);
            }
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) => {
                    oif = route.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Oif(i) => Some(*i),
                        _ => None,
                    });
                    Ok(true)
                }
                NetlinkPayload::Error(_) => Ok(true),
                _ => Ok(false),
            }
        })?;
        Ok(oif)
    }

    fn push_raw(&mut self, kind: u16, flags: u16, sequence: u32, body: &[u8]) {
        let length = 16 + body.len();
        self.send.extend_from_slice(&(length as u32).to_ne_bytes());
        self.send.extend_from_slice(&kind.to_ne_bytes());
        self.send.extend_from_slice(&flags.to_ne_bytes());
        self.send.extend_from_slice(&sequence.to_ne_bytes());
        self.send.extend_from_slice(&0u32.to_ne_bytes());
        self.send.extend_from_slice(body);
        self.send.resize(self.send.len().next_multiple_of(4), 0);
    }

    /// As `receive_until`, for messages netlink-packet-route does not know:
    /// each as (type, flags, sequence, body).
    fn receive_raw_until(
        &mut self,
        mut handle: impl FnMut(u16, u16, u32, &[u8]) -> Result<bool, FibError>,
    ) -> Result<(), FibError> {
        loop {
            self.receive.clear();
            self.socket
                .recv(&mut self.receive, 0)
                .map_err(FibError::Socket)?;
            let mut offset = 0;
            while offset + 16 <= self.receive.len() {
                let b = &self.receive[offset..];
                let length = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if length < 16 || length > b.len() {
                    return Err(FibError::Decode(format!(
                        "netlink message of length {length}"
                    )));
                }
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                let flags = u16::from_ne_bytes([b[6], b[7]]);
                let sequence = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if handle(kind, flags, sequence, &b[16..length])? {
                    return Ok(());
                }
                offset += length.next_multiple_of(4);
            }
        }
    }

    fn push(&mut self, payload: RouteNetlinkMessage, flags: u16, sequence: u32) {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = sequence;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::from(payload));
        message.finalize();
        let start = self.send.len();
        self.send.resize(start + message.buffer_len(), 0);
        message.serialize(&mut self.send[start..]);
    }

    /// Read replies until the ACK (or error) for `end`; report every error
    /// on the way.
    fn await_ack(
        &mut self,
        end: u32,
        mut on_error: impl FnMut(u32, String),
    ) -> Result<(), FibError> {
        self.receive_until(|message| {
            let sequence = message.header.sequence_number;
            if let NetlinkPayload::Error(e) = &message.payload {
                if e.code.is_some() {
                    on_error(sequence, e.to_io().to_string());
                }
                if sequence == end {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Receive datagrams and hand each message to `handle` until it says
    /// it has seen the last one. The receive buffer is reused throughout.
    fn receive_until(
        &mut self,
        mut handle: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> Result<bool, FibError>,
    ) -> Result<(), FibError> {
        loop {
            self.receive.clear();
            self.socket
                .recv(&mut self.receive, 0)
                .map_err(FibError::Socket)?;
            if each_message(&self.receive, &mut handle)? {
                return Ok(());
            }
        }
    }

    /// Hand each route of our protocol in our table to `each`, both
    /// families, without making a copy of the table. A dump the kernel
    /// interrupts (the table changed under it) is repeated: `each` is told
    /// to forget the family's routes so far, then gets them again.
    pub(crate) fn dump_each(
        &mut self,
        config: &FibConfig,
        groups: &BTreeMap<u32, Vec<IpAddr>>,
        mut each: impl FnMut(Dumped),
    ) -> Result<(), FibError> {
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut attempt = 0;
            while !self.dump_family(config, family, groups, &mut |d, t| {
                each(Dumped::Route(d, t));
            })? {
                if attempt == DUMP_RETRIES {
                    return Err(FibError::DumpInterrupted);
                }
                attempt += 1;
                each(Dumped::Restart {
                    ipv6: family == AddressFamily::Inet6,
                });
            }
        }
        Ok(())
    }

    /// One dump; `false` when the kernel flagged it as interrupted.
    fn dump_family(
        &mut self,
        config: &FibConfig,
        family: AddressFamily,
        groups: &BTreeMap<u32, Vec<IpAddr>>,
        each: &mut dyn FnMut(Destination, Target),
    ) -> Result<bool, FibError> {
        let mut request = RouteMessage::default();
        request.header.address_family = family;
        request.header.table = table_byte(config.table);
        request.header.protocol = RouteProtocol::from(config.protocol);
        request.attributes.push(RouteAttribute::Table(config.table));
        let sequence = self.next_sequence();
        self.send.clear();
        self.push(
            RouteNetlinkMessage::GetRoute(request),
            NLM_F_REQUEST | NLM_F_DUMP,
            sequence,
        );
        self.socket.send(&self.send, 0).map_err(FibError::Socket)?;
        let mut interrupted = false;
        self.receive_until(|message| {
            if message.header.sequence_number != sequence {
                return Ok(false);
            }
            if message.header.flags & NLM_F_DUMP_INTR != 0 {
                interrupted = true;
            }
            match message.payload {
                NetlinkPayload::Done(_) => Ok(true),
                NetlinkPayload::Error(e) if e.code.is_some() => Err(FibError::Socket(e.to_io())),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) => {
                    if let Some((dest, target)) = ours(config, &route, groups) {
                        each(dest, target);
                    }
                    Ok(false)
                }
                _ => Ok(false),
            }
        })?;
        Ok(!interrupted)
    }
}

fn table_byte(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RT_TABLE_UNSPEC)
}

fn route_message(
    config: &FibConfig,
    dest: &Destination,
    target: &Target,
    group: Option<u32>,
) -> RouteMessage {
    let mut route = RouteMessage::default();
    route.header = RouteHeader {
        address_family: match dest.addr() {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        },
        destination_prefix_length: dest.len(),
        table: table_byte(config.table),
        protocol: RouteProtocol::from(config.protocol),
        scope: RouteScope::Universe,
        kind: match target {
            Target::Blackhole => RouteType::BlackHole,
            Target::Via(_) => RouteType::Unicast,
        },
        ..RouteHeader::default()
    };
    route
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dest.addr())));
    route.attributes.push(RouteAttribute::Table(config.table));
    if let Some(metric) = config.metric {
        route.attributes.push(RouteAttribute::Priority(metric));
    }
    match target {
        Target::Via(_) if group.is_some() => {
            route.attributes.extend(group.map(RouteAttribute::NhId));
        }
        Target::Via(gateways) if gateways.is_empty() => {}
        Target::Via(gateways) if gateways.len() == 1 => {
            route
                .attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gateways[0])));
        }
        Target::Via(gateways) => {
            let hops = gateways
                .iter()
                .map(|gw| {
                    let mut hop = RouteNextHop::default();
                    hop.attributes
                        .push(RouteAttribute::Gateway(RouteAddress::from(*gw)));
                    hop
                })
                .collect();
            route.attributes.push(RouteAttribute::MultiPath(hops));
        }
        Target::Blackhole => {}
    }
    route
}

/// A dumped route as ours, if it is: our protocol, our table, a unicast or
/// blackhole route we know how to describe.
///
/// A route naming a nexthop group is described by the group's gateways
/// (the kernel also lists them inline unless `nexthop_compat_mode` is 0).
pub(crate) fn ours(
    config: &FibConfig,
    route: &RouteMessage,
    groups: &BTreeMap<u32, Vec<IpAddr>>,
) -> Option<(Destination, Target)> {
    if u8::from(route.header.protocol) != config.protocol {
        return None;
    }
    let (table, dest, target) = describe(route)?;
    let target = target.or_else(|| {
        route.attributes.iter().find_map(|a| match a {
            RouteAttribute::NhId(id) => groups.get(id).map(|g| Target::via(g.clone())),
            _ => None,
        })
    });
    (table == config.table).then_some((dest, target?))
}

/// Any route: its table, destination, and what we would call its target
/// (`None` for kinds we do not program).
/// Hand each message of one netlink datagram to `handle`, in order, until
/// it says it is done (then `true`); a message that does not parse fails
/// the datagram, and one that claims no length ends it.
pub(crate) fn each_message(
    datagram: &[u8],
    handle: &mut impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> Result<bool, FibError>,
) -> Result<bool, FibError> {
    let mut offset = 0;
    while offset < datagram.len() {
        let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[offset..])
            .map_err(|e| FibError::Decode(e.to_string()))?;
        let length = message.header.length as usize;
        if handle(message)? {
            return Ok(true);
        }
        if length == 0 {
            break;
        }
        offset += length;
    }
    Ok(false)
}

pub(crate) fn describe(route: &RouteMessage) -> Option<(u32, Destination, Option<Target>)> {
    let mut table = u32::from(route.header.table);
    let mut dest = None;
    let mut gateways = Vec::new();
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dest = address(a),
            RouteAttribute::Gateway(a) => gateways.extend(address(a)),
            RouteAttribute::MultiPath(hops) => {
                for hop in hops {
                    for a in &hop.attributes {
                        if let RouteAttribute::Gateway(g) = a {
                            gateways.extend(address(g));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let dest = dest.unwrap_or(match route.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    });
    let dest = Destination::new(dest, route.header.destination_prefix_length)?;
    let target = match route.header.kind {
        RouteType::BlackHole => Some(Target::Blackhole),
        RouteType::Unicast if !gateways.is_empty() => Some(Target::via(gateways)),
        _ => None,
    };
    Some((table, dest, target))
}

fn address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}
