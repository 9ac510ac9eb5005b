//! OPEN validation and capability negotiation: from our configuration and
//! the peer's OPEN to the parameters of the session.

use std::time::Duration;

use starling_wire::capability::{
    AddPathMode, Capability, ExtendedNextHop, GracefulRestart, GracefulRestartFamily,
};
use starling_wire::notification::code;
use starling_wire::{Afi, Context, Family, Notification, Open, PerFamily};

use crate::config::PeerConfig;

/// What both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_id: std::net::Ipv4Addr,
    /// Zero means no keepalives and no hold timer.
    pub hold_time: Duration,
    pub keepalive: Duration,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability, if it sent one and we offer
    /// graceful restart too.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// Both sides set the N bit (RFC 8538).
    pub graceful_notification: bool,
    /// The codec parameters for this session.
    pub codec: Context,
    /// The OPENs exchanged, ours and the peer's: monitoring (BMP Peer Up)
    /// shows them.
    pub sent_open: Open,
    pub received_open: Open,
    /// The connection's local and remote addresses, set by the driver
    /// that owns the socket (`None` where no socket exists, in tests).
    pub endpoints: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
}

/// Our OPEN for `cfg`.
pub fn local_open(cfg: &PeerConfig) -> Open {
    let mut caps: Vec<Capability> = cfg
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    caps.push(Capability::RouteRefresh);
    // Enhanced route refresh (RFC 7313) is not offered until BoRR/EoRR
    // demarcation is implemented: a peer that negotiated it would expect
    // them around our refresh answers.
    caps.push(Capability::FourOctetAs(cfg.local_as));
    if !cfg.add_path.is_empty() {
        caps.push(Capability::AddPath(cfg.add_path.clone()));
    }
    if cfg.extended_message {
        caps.push(Capability::ExtendedMessage);
    }
    if let Some(gr) = cfg.graceful_restart {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restarting: gr.restarting,
            notification: gr.notification,
            reserved_flags: 0,
            restart_time: gr.restart_time.min(4095),
            families: cfg
                .families
                .iter()
                .map(|&family| GracefulRestartFamily {
                    family,
                    forwarding_preserved: gr.forwarding_preserved,
                    reserved_flags: 0,
                })
                .collect(),
        }));
    }
    if cfg.extended_next_hop {
        caps.push(Capability::ExtendedNextHop(vec![ExtendedNextHop {
            family: Family::IPV4_UNICAST,
            next_hop_afi: Afi::IPV6,
        }]));
    }
    Open::new(cfg.local_as, cfg.hold_time, cfg.router_id, caps)
}

/// Check the peer's OPEN against our configuration and agree on the
/// session parameters, or say which NOTIFICATION to send (RFC 4271 §6.2).
pub fn negotiate(cfg: &PeerConfig, theirs: &Open) -> Result<Negotiated, Notification> {
    let peer_as = theirs.asn();
    if peer_as != cfg.remote_as {
        return Err(Notification::with_data(
            code::OPEN_MESSAGE,
            code::open::BAD_PEER_AS,
            theirs.my_as.to_be_bytes().to_vec(),
        ));
    }
    // RFC 6286 §2.2: the same identifier is an error on iBGP; between
    // different ASes it is allowed.
    if theirs.bgp_id == cfg.router_id && !cfg.is_ebgp() {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            code::open::BAD_BGP_IDENTIFIER,
        ));
    }
    let hold = theirs.hold_time.min(cfg.hold_time);
    let hold_time = Duration::from_secs(u64::from(hold));

    let caps: Vec<&Capability> = theirs.capabilities().collect();
    let has = |want: &Capability| caps.contains(&want);
    let four_octet_as = caps.iter().any(|c| matches!(c, Capability::FourOctetAs(_)));
    let peer_mp: Vec<Family> = caps
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect();
    // A peer that sends no multiprotocol capability speaks IPv4 unicast only.
    let peer_families = if peer_mp.is_empty() {
        vec![Family::IPV4_UNICAST]
    } else {
        peer_mp
    };
    let mut families = PerFamily::NONE;
    for f in cfg.families.iter().filter(|f| peer_families.contains(f)) {
        families.set(*f, true);
    }
    if families == PerFamily::NONE {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            code::open::UNSUPPORTED_CAPABILITY,
        ));
    }

    let peer_add_path: Vec<(Family, AddPathMode)> = caps
        .iter()
        .filter_map(|c| match c {
            Capability::AddPath(v) => Some(v.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let mut add_path_receive = PerFamily::NONE;
    let mut add_path_send = PerFamily::NONE;
    for (family, ours) in &cfg.add_path {
        if !families.get(*family) {
            continue;
        }
        for (f, theirs) in &peer_add_path {
            if f == family {
                add_path_receive.set(*family, ours.can_receive() && theirs.can_send());
                add_path_send.set(*family, ours.can_send() && theirs.can_receive());
            }
        }
    }
    let extended_next_hop = cfg.extended_next_hop
        && caps.iter().any(|c| {
            matches!(c, Capability::ExtendedNextHop(v)
                if v.iter().any(|t| t.family == Family::IPV4_UNICAST && t.next_hop_afi == Afi::IPV6))
        });

    let codec = Context {
        four_octet_as,
        extended_message: cfg.extended_message && has(&Capability::ExtendedMessage),
        families,
        add_path_receive,
        add_path_send,
        extended_next_hop,
        // Negotiated only if both sides offer it; we do not yet (local_open).
        enhanced_route_refresh: false,
        ebgp: cfg.is_ebgp(),
        peer_as,
        enforce_first_as: cfg.enforce_first_as,
        confederation: false,
        local_ipv4: match cfg.local_address {
            Some(std::net::IpAddr::V4(a)) => Some(a),
            _ => None,
        },
        ..Context::default()
    };
    let peer_graceful_restart = cfg.graceful_restart.and_then(|_| {
        caps.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        })
    });
    let graceful_notification = cfg.graceful_restart.is_some_and(|g| g.notification)
        && peer_graceful_restart
            .as_ref()
            .is_some_and(|g| g.notification);
    Ok(Negotiated {
        peer_graceful_restart,
        graceful_notification,
        peer_as,
        peer_id: theirs.bgp_id,
        hold_time,
        keepalive: hold_time / 3,
        route_refresh: has(&Capability::RouteRefresh),
        enhanced_route_refresh: codec.enhanced_route_refresh,
        codec,
        sent_open: local_open(cfg),
        received_open: theirs.clone(),
        endpoints: None,
    })
}
