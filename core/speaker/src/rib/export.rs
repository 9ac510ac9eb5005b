//! Which best paths go to which peer, and how they change on the way out
//! (RFC 4271 §5.1 and §9.1.3, RFC 1997, RFC 4456).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use starling_wire::{Community, NextHop};

use super::{PeerInfo, RibConfig, RouteAttrs, Source};

/// How to set NEXT_HOP towards a peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NextHopMode {
    /// Ourselves towards eBGP and for local routes; unchanged towards iBGP.
    #[default]
    Auto,
    /// Always ourselves.
    SelfAddress,
    /// Never change it (route servers, Calico's `keepOriginalNextHop`).
    Keep,
}

/// The peer a route is exported to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExportTarget {
    pub info: PeerInfo,
    pub next_hop: NextHopMode,
    /// Our addresses on this session, for next-hop-self.
    pub local_v4: Option<Ipv4Addr>,
    pub local_v6: Option<Ipv6Addr>,
    /// The AS we present to this peer (local-AS override), if not the RIB's.
    pub local_as: Option<u32>,
    /// RFC 8950 was negotiated: IPv4 routes may carry an IPv6 next hop.
    pub extended_next_hop: bool,
    /// The subnet this session runs over (our address's network and
    /// prefix length), when known: in `Auto` mode an eBGP next hop inside
    /// it, towards a peer inside it, is kept (RFC 4271 §5.1.3's
    /// third-party next hop, BIRD's default), so traffic goes straight to
    /// the router that has the route rather than through us.
    pub shared_subnet: Option<(IpAddr, u8)>,
}

/// Whether `a` lies in the network `net`/`len`.
pub(crate) fn within(a: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Why a route is not advertised to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// The protocol says so: the peer's own route, NO_ADVERTISE or
    /// NO_EXPORT, iBGP to iBGP without reflection.
    Rules,
    /// Next hop self was due, but the session has no address of the
    /// route's family to give (and, for IPv4, no RFC 8950). Worth telling
    /// the operator: the route silently never reaches the peer.
    NoNextHop,
}

/// The attributes to advertise `route` (from `source`) with to `target`,
/// or why it is not advertised there.
pub fn export(
    cfg: &RibConfig,
    source: Source,
    source_info: Option<&PeerInfo>,
    route: &RouteAttrs,
    target: &ExportTarget,
) -> Result<RouteAttrs, Withheld> {
    let to = &target.info;
    if source == Source::Peer(to.address) {
        return Err(Withheld::Rules);
    }
    let communities = &route.attrs.communities;
    if communities.contains(&Community::NO_ADVERTISE) {
        return Err(Withheld::Rules);
    }
    if to.ebgp
        && (communities.contains(&Community::NO_EXPORT)
            || communities.contains(&Community::NO_EXPORT_SUBCONFED))
    {
        return Err(Withheld::Rules);
    }
    let mut out = RouteAttrs {
        attrs: route.attrs.clone().for_propagation(),
        next_hop: route.next_hop,
    };
    let from_ibgp = source_info.is_some_and(|s| !s.ebgp);
    if from_ibgp && !to.ebgp {
        // iBGP to iBGP only through route reflection (RFC 4456 §6).
        let from_client = source_info.is_some_and(|s| s.rr_client);
        if !(from_client || to.rr_client) {
            return Err(Withheld::Rules);
        }
        let originator = source_info.map_or(cfg.router_id, |s| s.router_id);
        out.attrs.originator_id.get_or_insert(originator);
        out.attrs.cluster_list.insert(0, cfg.cluster_id());
    }
    let local_as = target.local_as.unwrap_or(cfg.local_as);
    if to.ebgp {
        let mut path = out.attrs.as_path.take().unwrap_or_default();
        path.prepend(local_as, 1);
        out.attrs.as_path = Some(path);
        out.attrs.local_pref = None;
        out.attrs.originator_id = None;
        out.attrs.cluster_list.clear();
        // RFC 4271 §5.1.4: a MED learned from another AS stays there.
        if source_info.is_some_and(|s| s.ebgp) {
            out.attrs.med = None;
        }
    } else {
        out.attrs.as_path.get_or_insert_with(Default::default);
        out.attrs.local_pref.get_or_insert(cfg.default_local_pref);
    }
    let set_self = match target.next_hop {
        NextHopMode::Keep => false,
        NextHopMode::SelfAddress => true,
        NextHopMode::Auto => {
            let third_party = source != Source::Local
                && target.shared_subnet.is_some_and(|subnet| {
                    let original = match route.next_hop {
                        NextHop::V4(a) => IpAddr::V4(a),
                        NextHop::V6 { global, .. } => IpAddr::V6(global),
                    };
                    // RFC 4271 §5.1.3: never the peer's own address.
                    original != to.address && within(original, subnet) && within(to.address, subnet)
                });
            (to.ebgp && !third_party) || source == Source::Local
        }
    };
    if set_self {
        let v6_self = target.local_v6.map(|global| NextHop::V6 {
            global,
            link_local: None,
        });
        out.next_hop = match route.next_hop {
            // IPv4 over an IPv6-only session needs RFC 8950.
            NextHop::V4(_) => match target.local_v4 {
                Some(v4) => NextHop::V4(v4),
                None if target.extended_next_hop => v6_self.ok_or(Withheld::NoNextHop)?,
                None => return Err(Withheld::NoNextHop),
            },
            NextHop::V6 { .. } => v6_self.ok_or(Withheld::NoNextHop)?,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use starling_wire::{AsPath, Origin, PathAttributes};

    use super::*;

    fn peer(n: u8, asn: u32, rr_client: bool) -> PeerInfo {
        PeerInfo {
            address: IpAddr::from([192, 0, 2, n]),
            router_id: Ipv4Addr::new(198, 51, 100, n),
            asn,
            ebgp: asn != 64512,
            rr_client,
            allow_own_as: 0,
        }
    }

    fn target(info: PeerInfo) -> ExportTarget {
        ExportTarget {
            info,
            next_hop: NextHopMode::Auto,
            local_v4: Some(Ipv4Addr::new(192, 0, 2, 254)),
            local_v6: None,
            local_as: None,
            extended_next_hop: false,
            shared_subnet: None,
        }
    }

    fn route() -> RouteAttrs {
        RouteAttrs {
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::from_sequence([65001])),
                med: Some(5),
                local_pref: Some(200),
                ..PathAttributes::default()
            },
            next_hop: NextHop::V4(Ipv4Addr::new(203, 0, 113, 1)),
        }
    }

    fn cfg() -> RibConfig {
        RibConfig::new(64512, Ipv4Addr::new(198, 51, 100, 254))
    }

    #[test]
    fn to_ebgp_prepends_strips_local_pref_and_sets_next_hop_self() {
        let from = peer(1, 65001, false);
        let out = export(
            &cfg(),
            Source::Peer(from.address),
            Some(&from),
            &route(),
            &target(peer(2, 65002, false)),
        )
        .expect("exported");
        assert_eq!(out.attrs.as_path.expect("path").to_string(), "64512 65001");
        assert_eq!(out.attrs.local_pref, None);
        assert_eq!(out.attrs.med, None, "MED from another AS is not passed on");
        assert_eq!(out.next_hop, NextHop::V4(Ipv4Addr::new(192, 0, 2, 254)));
    }

    #[test]
    fn to_ibgp_keeps_next_hop_and_local_pref() {
        let from = peer(1, 65001, false);
        let out = export(
            &cfg(),
            Source::Peer(from.address),
            Some(&from),
            &route(),
            &target(peer(2, 64512, false)),
        )
        .expect("exported");
        assert_eq!(out.attrs.as_path.expect("path").to_string(), "65001");
        assert_eq!(out.attrs.local_pref, Some(200));
        assert_eq!(out.next_hop, NextHop::V4(Ipv4Addr::new(203, 0, 113, 1)));
        // Next-hop-self on request; keep even towards eBGP on request.
        let mut t = target(peer(2, 64512, false));
        t.next_hop = NextHopMode::SelfAddress;
        let out = export(
            &cfg(),
            Source::Peer(from.address),
            Some(&from),
            &route(),
            &t,
        )
        .expect("exported");
        assert_eq!(out.next_hop, NextHop::V4(Ipv4Addr::new(192, 0, 2, 254)));
        let mut t = target(peer(3, 65003, false));
        t.next_hop = NextHopMode::Keep;
        let out = export(
            &cfg(),
            Source::Peer(from.address),
            Some(&from),
            &route(),
            &t,
        )
        .expect("exported");
        assert_eq!(out.next_hop, NextHop::V4(Ipv4Addr::new(203, 0, 113, 1)));
    }

    #[test]
    fn ebgp_keeps_a_next_hop_on_the_shared_subnet() {
        // We are 203.0.113.254/24; the route's next hop is 203.0.113.1.
        let from = peer(1, 64512, false);
        let next_hop_to = |address: [u8; 4]| {
            let mut to = peer(3, 65003, false);
            to.address = IpAddr::from(address);
            let mut t = target(to);
            t.shared_subnet = Some((IpAddr::from([203, 0, 113, 254]), 24));
            export(
                &cfg(),
                Source::Peer(from.address),
                Some(&from),
                &route(),
                &t,
            )
            .expect("exported")
            .next_hop
        };
        // An eBGP peer on the subnet: third-party next hop, kept.
        assert_eq!(
            next_hop_to([203, 0, 113, 3]),
            NextHop::V4(Ipv4Addr::new(203, 0, 113, 1))
        );
        // Never the peer's own address (RFC 4271 §5.1.3): that peer gets us.
        assert_eq!(
            next_hop_to([203, 0, 113, 1]),
            NextHop::V4(Ipv4Addr::new(192, 0, 2, 254))
        );
        // A peer outside the subnet gets us.
        assert_eq!(
            next_hop_to([198, 51, 100, 3]),
            NextHop::V4(Ipv4Addr::new(192, 0, 2, 254))
        );
    }

    #[test]
    fn ibgp_split_horizon_and_route_reflection() {
        let c = cfg();
        let non_client = peer(1, 64512, false);
        let other_non_client = peer(2, 64512, false);
        let client = peer(3, 64512, true);
        let other_client = peer(4, 64512, true);
        let src = |p: &PeerInfo| Source::Peer(p.address);
        // Non-client to non-client: never.
        assert!(
            export(
                &c,
                src(&non_client),
                Some(&non_client),
                &route(),
                &target(other_non_client.clone())
            )
            .is_err()
        );
        // Non-client to client: reflected.
        let out = export(
            &c,
            src(&non_client),
            Some(&non_client),
            &route(),
            &target(client.clone()),
        )
        .expect("reflected");
        assert_eq!(out.attrs.originator_id, Some(non_client.router_id));
        assert_eq!(out.attrs.cluster_list, vec![c.cluster_id()]);
        // Client to client and client to non-client: reflected.
        assert!(
            export(
                &c,
                src(&client),
                Some(&client),
                &route(),
                &target(other_client)
            )
            .is_ok()
        );
        let out = export(
            &c,
            src(&client),
            Some(&client),
            &route(),
            &target(non_client),
        )
        .expect("reflected");
        assert_eq!(out.attrs.originator_id, Some(client.router_id));
        // Never back to the peer it came from.
        assert!(
            export(
                &c,
                src(&client),
                Some(&client),
                &route(),
                &target(client.clone())
            )
            .is_err()
        );
        // An existing ORIGINATOR_ID is kept; the cluster id is prepended.
        let mut r = route();
        r.attrs.originator_id = Some(Ipv4Addr::new(10, 9, 9, 9));
        r.attrs.cluster_list = vec![Ipv4Addr::new(10, 0, 0, 1)];
        let out = export(
            &c,
            src(&client),
            Some(&client),
            &r,
            &target(peer(5, 64512, true)),
        )
        .expect("reflected");
        assert_eq!(out.attrs.originator_id, Some(Ipv4Addr::new(10, 9, 9, 9)));
        assert_eq!(
            out.attrs.cluster_list,
            vec![c.cluster_id(), Ipv4Addr::new(10, 0, 0, 1)]
        );
    }

    #[test]
    fn well_known_communities() {
        let c = cfg();
        let from = peer(1, 64512, true);
        let mut r = route();
        r.attrs.communities = vec![Community::NO_EXPORT];
        assert!(
            export(
                &c,
                Source::Peer(from.address),
                Some(&from),
                &r,
                &target(peer(2, 65002, false))
            )
            .is_err()
        );
        assert!(
            export(
                &c,
                Source::Peer(from.address),
                Some(&from),
                &r,
                &target(peer(3, 64512, true))
            )
            .is_ok()
        );
        r.attrs.communities = vec![Community::NO_ADVERTISE];
        assert!(
            export(
                &c,
                Source::Peer(from.address),
                Some(&from),
                &r,
                &target(peer(3, 64512, true))
            )
            .is_err()
        );
    }

    #[test]
    fn local_routes_and_local_as_override() {
        let mut r = route();
        r.attrs.as_path = Some(AsPath::default());
        let out = export(
            &cfg(),
            Source::Local,
            None,
            &r,
            &target(peer(2, 64512, false)),
        )
        .expect("exported");
        assert_eq!(
            out.next_hop,
            NextHop::V4(Ipv4Addr::new(192, 0, 2, 254)),
            "local routes carry our address"
        );
        assert!(out.attrs.as_path.expect("path").is_empty());
        let mut t = target(peer(3, 65003, false));
        t.local_as = Some(65100);
        let out = export(&cfg(), Source::Local, None, &r, &t).expect("exported");
        assert_eq!(out.attrs.as_path.expect("path").to_string(), "65100");
    }
}
