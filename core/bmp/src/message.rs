//! BMP messages (RFC 7854 §4), as bytes: the common header, the per-peer
//! header, and each message type Starling sends. Pure functions, no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

/// BMP version 3 (RFC 7854).
pub const VERSION: u8 = 3;
/// Version, message length, message type.
pub const COMMON_HEADER_LEN: usize = 6;
const PER_PEER_HEADER_LEN: usize = 42;

/// Message types (RFC 7854 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    RouteMonitoring = 0,
    StatisticsReport = 1,
    PeerDown = 2,
    PeerUp = 3,
    Initiation = 4,
    Termination = 5,
}

/// Whose routes a per-peer header introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// A BGP peer's Adj-RIB-In, before (`post_policy: false`) or after
    /// import policy (RFC 7854 peer type 0, "global instance").
    Peer { post_policy: bool },
    /// The speaker's own Loc-RIB (RFC 9069 peer type 3).
    LocRib,
}

/// The per-peer header (RFC 7854 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerHeader {
    pub kind: PeerKind,
    /// The peer's address; for the Loc-RIB, unspecified.
    pub address: IpAddr,
    pub asn: u32,
    pub bgp_id: Ipv4Addr,
    pub timestamp: SystemTime,
}

impl PeerHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        let (kind, mut flags) = match self.kind {
            PeerKind::Peer { post_policy } => (0u8, if post_policy { 0x40 } else { 0 }),
            // RFC 9069 §4.2: the F flag (0x80) would say the table is
            // filtered; Starling's Loc-RIB is the whole table.
            PeerKind::LocRib => (3u8, 0),
        };
        if self.address.to_canonical().is_ipv6() && matches!(self.kind, PeerKind::Peer { .. }) {
            flags |= 0x80; // V: an IPv6 peer
        }
        // A (0x20) stays clear: UPDATEs are re-encoded with 4-octet ASNs.
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&[0; 8]); // peer distinguisher: the global instance
        out.extend_from_slice(&header_address(self.address).octets());
        out.extend_from_slice(&self.asn.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let since_epoch = self
            .timestamp
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        out.extend_from_slice(&(since_epoch.as_secs() as u32).to_be_bytes());
        out.extend_from_slice(&since_epoch.subsec_micros().to_be_bytes());
    }
}

/// Start a message: the common header with its length still zero.
fn begin(kind: MessageType) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    out.extend_from_slice(&[0; 4]);
    out.push(kind as u8);
    out
}

/// Patch the common header's length.
fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let len = out.len() as u32;
    if let Some(field) = out.get_mut(1..5) {
        field.copy_from_slice(&len.to_be_bytes());
    }
    out
}

fn put_tlv(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(value.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&value[..value.len().min(u16::MAX as usize)]);
}

/// Initiation (§4.3): who is talking. sysDescr and sysName are required.
pub fn initiation(sys_name: &str, sys_descr: &str) -> Vec<u8> {
    let mut out = begin(MessageType::Initiation);
    put_tlv(&mut out, 1, sys_descr.as_bytes());
    put_tlv(&mut out, 2, sys_name.as_bytes());
    finish(out)
}

/// Termination (§4.5) with reason 0, "session administratively closed".
pub fn termination(text: &str) -> Vec<u8> {
    let mut out = begin(MessageType::Termination);
    put_tlv(&mut out, 0, text.as_bytes());
    put_tlv(&mut out, 1, &0u16.to_be_bytes());
    finish(out)
}

/// Route Monitoring (§4.6): one BGP UPDATE message, header included.
pub fn route_monitoring(peer: &PeerHeader, update: &[u8]) -> Vec<u8> {
    let mut out = begin(MessageType::RouteMonitoring);
    out.reserve(PER_PEER_HEADER_LEN + update.len());
    peer.encode(&mut out);
    out.extend_from_slice(update);
    finish(out)
}

/// Peer Up (§4.10): the session's addresses and both OPEN messages
/// (header included), then information TLVs (`(type, value)`).
pub fn peer_up(
    peer: &PeerHeader,
    local: SocketAddr,
    remote_port: u16,
    sent_open: &[u8],
    received_open: &[u8],
    information: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut out = begin(MessageType::PeerUp);
    peer.encode(&mut out);
    out.extend_from_slice(&header_address(local.ip()).octets());
    out.extend_from_slice(&local.port().to_be_bytes());
    out.extend_from_slice(&remote_port.to_be_bytes());
    out.extend_from_slice(sent_open);
    out.extend_from_slice(received_open);
    for (kind, value) in information {
        put_tlv(&mut out, *kind, value);
    }
    finish(out)
}

/// Why a session went down (§4.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerDownReason {
    /// We closed it with this NOTIFICATION (the whole message).
    LocalNotification(Vec<u8>),
    /// We closed it without a NOTIFICATION, on this FSM event.
    LocalNoNotification { fsm_event: u16 },
    /// The peer closed it with this NOTIFICATION (the whole message).
    RemoteNotification(Vec<u8>),
    /// The connection closed without a NOTIFICATION.
    RemoteNoNotification,
    /// The peer was removed from the configuration.
    Deconfigured,
}

/// Peer Down (§4.9).
pub fn peer_down(peer: &PeerHeader, reason: &PeerDownReason) -> Vec<u8> {
    let mut out = begin(MessageType::PeerDown);
    peer.encode(&mut out);
    match reason {
        PeerDownReason::LocalNotification(pdu) => {
            out.push(1);
            out.extend_from_slice(pdu);
        }
        PeerDownReason::LocalNoNotification { fsm_event } => {
            out.push(2);
            out.extend_from_slice(&fsm_event.to_be_bytes());
        }
        PeerDownReason::RemoteNotification(pdu) => {
            out.push(3);
            out.extend_from_slice(pdu);
        }
        PeerDownReason::RemoteNoNotification => out.push(4),
        PeerDownReason::Deconfigured => out.push(5),
    }
    finish(out)
}

/// One statistic of a Statistics Report (§4.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Type 0: prefixes rejected by inbound policy (32-bit counter).
    RejectedPrefixes(u32),
    /// Type 7: routes in the Adj-RIB-In, before policy (64-bit gauge).
    AdjRibInRoutes(u64),
    /// Type 8: routes in the Loc-RIB (64-bit gauge).
    LocRibRoutes(u64),
}

/// Statistics Report (§4.8).
pub fn statistics(peer: &PeerHeader, stats: &[Stat]) -> Vec<u8> {
    let mut out = begin(MessageType::StatisticsReport);
    peer.encode(&mut out);
    out.extend_from_slice(&(stats.len() as u32).to_be_bytes());
    for stat in stats {
        match *stat {
            Stat::RejectedPrefixes(n) => put_tlv(&mut out, 0, &n.to_be_bytes()),
            Stat::AdjRibInRoutes(n) => put_tlv(&mut out, 7, &n.to_be_bytes()),
            Stat::LocRibRoutes(n) => put_tlv(&mut out, 8, &n.to_be_bytes()),
        }
    }
    finish(out)
}

/// The type and whole length of the message at the start of `buf`, if
/// its common header is there and valid.
pub fn message_header(buf: &[u8]) -> Option<(u8, usize)> {
    let header = buf.get(..COMMON_HEADER_LEN)?;
    if header[0] != VERSION {
        return None;
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    (len >= COMMON_HEADER_LEN).then_some((header[5], len))
}

/// An address as BMP's 16-octet fields carry it (IPv4 in the low four
/// octets).
fn header_address(address: IpAddr) -> Ipv6Addr {
    match address.to_canonical() {
        IpAddr::V4(a) => a.to_ipv6_compatible(),
        IpAddr::V6(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn header(kind: PeerKind, address: IpAddr) -> PeerHeader {
        PeerHeader {
            kind,
            address,
            asn: 65001,
            bgp_id: Ipv4Addr::new(192, 0, 2, 1),
            timestamp: UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000),
        }
    }

    #[test]
    fn per_peer_header_layout() {
        let peer = header(
            PeerKind::Peer { post_policy: true },
            IpAddr::from([192, 0, 2, 9]),
        );
        let message = route_monitoring(&peer, &[0xff; 19]);
        assert_eq!(message_header(&message), Some((0, 6 + 42 + 19)));
        let h = &message[COMMON_HEADER_LEN..COMMON_HEADER_LEN + 42];
        assert_eq!(h[0], 0, "global instance peer");
        assert_eq!(h[1], 0x40, "post-policy, IPv4, 4-octet AS");
        assert_eq!(&h[2..10], &[0; 8]);
        assert_eq!(&h[10..22], &[0; 12]);
        assert_eq!(&h[22..26], &[192, 0, 2, 9]);
        assert_eq!(&h[26..30], &65001u32.to_be_bytes());
        assert_eq!(&h[30..34], &[192, 0, 2, 1]);
        assert_eq!(&h[34..38], &1_700_000_000u32.to_be_bytes());
        assert_eq!(&h[38..42], &250_000u32.to_be_bytes());

        let v6 = header(
            PeerKind::Peer { post_policy: false },
            "2001:db8::9".parse().expect("v6"),
        );
        let message = route_monitoring(&v6, &[]);
        assert_eq!(message[COMMON_HEADER_LEN + 1], 0x80, "V flag");
        let loc = header(PeerKind::LocRib, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(route_monitoring(&loc, &[])[COMMON_HEADER_LEN], 3);
    }

    #[test]
    fn initiation_termination_and_peer_down() {
        let init = initiation("rr-1", "Starling 0.1.0");
        assert_eq!(message_header(&init), Some((4, init.len())));
        assert_eq!(&init[6..10], &[0, 1, 0, 14]);
        assert_eq!(&init[10..24], b"Starling 0.1.0");
        assert_eq!(&init[24..28], &[0, 2, 0, 4]);
        let term = termination("bye");
        assert_eq!(message_header(&term), Some((5, term.len())));
        assert_eq!(&term[term.len() - 6..], &[0, 1, 0, 2, 0, 0]);

        let peer = header(
            PeerKind::Peer { post_policy: false },
            IpAddr::from([192, 0, 2, 9]),
        );
        let down = peer_down(&peer, &PeerDownReason::RemoteNoNotification);
        assert_eq!(message_header(&down), Some((2, 6 + 42 + 1)));
        assert_eq!(down[down.len() - 1], 4);
        let down = peer_down(&peer, &PeerDownReason::LocalNoNotification { fsm_event: 7 });
        assert_eq!(&down[down.len() - 3..], &[2, 0, 7]);
    }

    #[test]
    fn peer_up_and_statistics() {
        let peer = header(
            PeerKind::Peer { post_policy: false },
            IpAddr::from([192, 0, 2, 9]),
        );
        let up = peer_up(
            &peer,
            "192.0.2.1:179".parse().expect("addr"),
            40000,
            &[1; 29],
            &[2; 29],
            &[],
        );
        assert_eq!(message_header(&up), Some((3, 6 + 42 + 20 + 58)));
        let body = &up[6 + 42..];
        assert_eq!(&body[12..16], &[192, 0, 2, 1]);
        assert_eq!(&body[16..18], &179u16.to_be_bytes());
        assert_eq!(&body[18..20], &40000u16.to_be_bytes());
        let stats = statistics(&peer, &[Stat::RejectedPrefixes(3), Stat::AdjRibInRoutes(9)]);
        let body = &stats[6 + 42..];
        assert_eq!(&body[..4], &[0, 0, 0, 2]);
        assert_eq!(&body[4..12], &[0, 0, 0, 4, 0, 0, 0, 3]);
        assert_eq!(&body[12..16], &[0, 7, 0, 8]);
        assert_eq!(&body[16..24], &9u64.to_be_bytes());
    }
}
