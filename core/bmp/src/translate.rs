//! From what the instance shows a monitor ([`MonitorEvent`]) to BMP
//! messages. Pure: the exporter stamps the time and writes the bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use starling_speaker::instance::{MonitorEvent, MonitoredPeer, MonitoredRoute};
use starling_speaker::rib::RouteAttrs;
use starling_speaker::session::DownReason;
use starling_wire::builder::{ReachEncoder, encode_withdrawals};
use starling_wire::{Afi, Context, Family, Message, Nlri, Notification, PerFamily, Prefix};

use crate::message::{self, PeerDownReason, PeerHeader, PeerKind};

/// The speaker itself, for the Loc-RIB's per-peer header (RFC 9069 §4.1:
/// its own AS and BGP identifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speaker {
    pub asn: u32,
    pub router_id: Ipv4Addr,
}

/// How every UPDATE sent to a collector is encoded: 4-octet ASNs, both
/// families, IPv4 over IPv6 next hops allowed, no ADD-PATH, standard size.
fn collector_context() -> Context {
    Context {
        families: PerFamily::BOTH,
        extended_next_hop: true,
        ..Context::default()
    }
}

/// The BMP messages for one event.
pub fn messages(event: &MonitorEvent, speaker: Speaker, now: SystemTime) -> Vec<Vec<u8>> {
    let ctx = collector_context();
    match event {
        MonitorEvent::PeerUp { peer, negotiated } => {
            let header = peer_header(peer, false, now);
            let encode = |open: &starling_wire::Open| {
                Message::Open(open.clone())
                    .to_bytes(&ctx)
                    .unwrap_or_default()
            };
            let (local, remote) = negotiated.endpoints.unwrap_or((
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                SocketAddr::from((peer.address, 0)),
            ));
            vec![message::peer_up(
                &header,
                local,
                remote.port(),
                &encode(&negotiated.sent_open),
                &encode(&negotiated.received_open),
                &[],
            )]
        }
        MonitorEvent::PeerDown { peer, reason } => {
            let header = peer_header(peer, false, now);
            let notification = |n: &Notification| {
                Message::Notification(n.clone())
                    .to_bytes(&ctx)
                    .unwrap_or_default()
            };
            let reason = match reason {
                None => PeerDownReason::Deconfigured,
                Some(DownReason::Sent(n)) => PeerDownReason::LocalNotification(notification(n)),
                Some(DownReason::Received(n)) => {
                    PeerDownReason::RemoteNotification(notification(n))
                }
                Some(DownReason::ConnectionLost) => PeerDownReason::RemoteNoNotification,
            };
            vec![message::peer_down(&header, &reason)]
        }
        MonitorEvent::PrePolicy { peer, update } => {
            let header = peer_header(peer, false, now);
            // As large as the peer may send (RFC 8654).
            let ctx = Context {
                extended_message: true,
                ..ctx
            };
            let mut pdu = Vec::new();
            match update.encode(&ctx, &mut pdu) {
                Ok(()) => vec![message::route_monitoring(&header, &pdu)],
                Err(e) => {
                    tracing::debug!(peer = %peer.address, "BMP: an UPDATE cannot be re-encoded: {e}");
                    Vec::new()
                }
            }
        }
        MonitorEvent::PostPolicy { peer, routes } => {
            let header = peer_header(peer, true, now);
            updates(routes, &ctx)
                .iter()
                .map(|pdu| message::route_monitoring(&header, pdu))
                .collect()
        }
        MonitorEvent::LocRib { routes } => {
            let header = loc_rib_header(speaker, now);
            updates(routes, &ctx)
                .iter()
                .map(|pdu| message::route_monitoring(&header, pdu))
                .collect()
        }
    }
}

/// The Peer Up that introduces the Loc-RIB (RFC 9069 §5.3): a fabricated
/// OPEN of the speaker's own, sent and "received", and the table's name.
pub fn loc_rib_peer_up(speaker: Speaker, now: SystemTime) -> Vec<u8> {
    let ctx = collector_context();
    let open = Message::Open(starling_wire::Open::new(
        speaker.asn,
        0,
        speaker.router_id,
        vec![starling_wire::capability::Capability::FourOctetAs(
            speaker.asn,
        )],
    ))
    .to_bytes(&ctx)
    .unwrap_or_default();
    message::peer_up(
        &loc_rib_header(speaker, now),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        0,
        &open,
        &open,
        &[(3, b"global")],
    )
}

pub fn peer_header(peer: &MonitoredPeer, post_policy: bool, now: SystemTime) -> PeerHeader {
    PeerHeader {
        kind: PeerKind::Peer { post_policy },
        address: peer.address,
        asn: peer.asn,
        bgp_id: peer.bgp_id,
        timestamp: now,
    }
}

pub fn loc_rib_header(speaker: Speaker, now: SystemTime) -> PeerHeader {
    PeerHeader {
        kind: PeerKind::LocRib,
        address: IpAddr::from(Ipv4Addr::UNSPECIFIED),
        asn: speaker.asn,
        bgp_id: speaker.router_id,
        timestamp: now,
    }
}

fn family_of(prefix: &Prefix) -> Family {
    if prefix.afi() == Afi::IPV6 {
        Family::IPV6_UNICAST
    } else {
        Family::IPV4_UNICAST
    }
}

/// BGP UPDATE messages carrying `routes`: withdrawals per family, then
/// announcements grouped by attribute set (the RIB shares one `Arc` per
/// set, so consecutive routes with the same set share messages).
fn updates(routes: &[MonitoredRoute], ctx: &Context) -> Vec<Vec<u8>> {
    let mut stream = Vec::new();
    for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
        let withdrawn: Vec<Nlri> = routes
            .iter()
            .filter(|r| r.route.is_none() && family_of(&r.prefix) == family)
            .map(|r| Nlri::new(r.prefix))
            .collect();
        if !withdrawn.is_empty() {
            encode_withdrawals(family, &withdrawn, ctx, &mut stream);
        }
    }
    let mut run: Vec<Nlri> = Vec::new();
    let mut current: Option<(&Arc<RouteAttrs>, Family)> = None;
    let flush =
        |current: Option<(&Arc<RouteAttrs>, Family)>, run: &mut Vec<Nlri>, out: &mut Vec<u8>| {
            if let Some((route, family)) = current
                && !run.is_empty()
            {
                match ReachEncoder::new(&route.attrs, family, route.next_hop, ctx) {
                    Ok(encoder) => {
                        encoder.encode(run, out);
                    }
                    Err(e) => tracing::debug!("BMP: routes cannot be encoded: {e}"),
                }
            }
            run.clear();
        };
    for r in routes {
        let Some(route) = &r.route else { continue };
        let family = family_of(&r.prefix);
        let same = current.is_some_and(|(c, f)| Arc::ptr_eq(c, route) && f == family);
        if !same {
            flush(current, &mut run, &mut stream);
            current = Some((route, family));
        }
        run.push(Nlri::new(r.prefix));
    }
    flush(current, &mut run, &mut stream);
    split_messages(&stream)
}

/// Cut a stream of BGP messages at their length fields.
fn split_messages(mut stream: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    while stream.len() >= 19 {
        let len = usize::from(u16::from_be_bytes([stream[16], stream[17]]));
        if len < 19 || len > stream.len() {
            break;
        }
        messages.push(stream[..len].to_vec());
        stream = &stream[len..];
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_wire::update::NextHop;
    use starling_wire::{PathAttributes, decode_update};

    fn route(prefix: &str, attrs: &Arc<RouteAttrs>) -> MonitoredRoute {
        MonitoredRoute {
            prefix: prefix.parse().expect("prefix"),
            route: Some(attrs.clone()),
        }
    }

    #[test]
    fn routes_become_updates_that_decode_back() {
        let v4 = Arc::new(RouteAttrs {
            attrs: PathAttributes::default(),
            next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
        });
        let v6 = Arc::new(RouteAttrs {
            attrs: PathAttributes::default(),
            next_hop: NextHop::V6 {
                global: "2001:db8::1".parse().expect("v6"),
                link_local: None,
            },
        });
        let routes = vec![
            route("203.0.113.0/24", &v4),
            route("198.51.100.0/24", &v4),
            route("2001:db8:1::/48", &v6),
            MonitoredRoute {
                prefix: "192.0.2.0/24".parse().expect("prefix"),
                route: None,
            },
        ];
        let ctx = collector_context();
        let pdus = updates(&routes, &ctx);
        assert_eq!(pdus.len(), 3, "a withdrawal, IPv4 and IPv6 announcements");
        let decoded: Vec<_> = pdus
            .iter()
            .map(|p| decode_update(&p[19..], &ctx).expect("decodes").update)
            .collect();
        assert_eq!(decoded[0].withdrawn.len(), 1);
        assert_eq!(decoded[1].nlri.len(), 2);
        assert_eq!(
            decoded[1].attributes.next_hop,
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        let mp = decoded[2].mp_reach.as_ref().expect("MP_REACH");
        assert_eq!(mp.nlri[0].prefix, "2001:db8:1::/48".parse().expect("p"));
    }
}
