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
static NO_GATEWAY: Target = Target::Via(Vec::new());

/// How often a dump interrupted by concurrent changes is retried.
const DUMP_RETRIES: usize = 5;

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
    ) -> Result<Vec<(Destination, String)>, FibError> {
        let mut refused = Vec::new();
        for chunk in ops.chunks(config.batch.max(1)) {
            self.send.clear();
            let mut sequences = BTreeMap::new();
            let last = chunk.len() - 1;
            for (i, (op, dest, target)) in chunk.iter().enumerate() {
                let sequence = self.next_sequence();
                sequences.insert(sequence, *dest);
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
                    )),
                    _ => RouteNetlinkMessage::NewRoute(route_message(config, dest, target)),
                };
                self.push(payload, flags, sequence);
            }
            self.socket.send(&self.send, 0).map_err(FibError::Socket)?;
            let end = *sequences.keys().next_back().unwrap_or(&0);
            self.await_ack(end, |sequence, error| {
                if let Some(dest) = sequences.get(&sequence) {
                    refused.push((*dest, error));
                }
            })?;
        }
        Ok(refused)
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
            let mut offset = 0;
            while offset < self.receive.len() {
                let message =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.receive[offset..])
                        .map_err(|e| FibError::Decode(e.to_string()))?;
                let length = message.header.length as usize;
                if handle(message)? {
                    return Ok(());
                }
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }

    /// The routes of our protocol in our table, both families.
    pub(crate) fn dump(
        &mut self,
        config: &FibConfig,
    ) -> Result<BTreeMap<Destination, Target>, FibError> {
        let mut routes = BTreeMap::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut attempt = 0;
            loop {
                match self.dump_family(config, family)? {
                    Some(found) => {
                        routes.extend(found);
                        break;
                    }
                    None if attempt < DUMP_RETRIES => attempt += 1,
                    None => return Err(FibError::DumpInterrupted),
                }
            }
        }
        Ok(routes)
    }

    /// One dump; `None` when the kernel flagged it as interrupted.
    fn dump_family(
        &mut self,
        config: &FibConfig,
        family: AddressFamily,
    ) -> Result<Option<BTreeMap<Destination, Target>>, FibError> {
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
        let mut routes = BTreeMap::new();
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
                    if let Some((dest, target)) = ours(config, &route) {
                        routes.insert(dest, target);
                    }
                    Ok(false)
                }
                _ => Ok(false),
            }
        })?;
        Ok((!interrupted).then_some(routes))
    }
}

fn table_byte(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RT_TABLE_UNSPEC)
}

fn route_message(config: &FibConfig, dest: &Destination, target: &Target) -> RouteMessage {
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
fn ours(config: &FibConfig, route: &RouteMessage) -> Option<(Destination, Target)> {
    if u8::from(route.header.protocol) != config.protocol {
        return None;
    }
    let (table, dest, target) = describe(route)?;
    (table == config.table).then_some((dest, target?))
}

/// Any route: its table, destination, and what we would call its target
/// (`None` for kinds we do not program).
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
