//! The originator: the prefixes this node originates, as the origination
//! plugin answers them (Calico's: its IPAM blocks and the service CIDRs),
//! plus the `bgp.originate` prefixes of `starling.toml`, which the
//! operator routes and the kernel never gets from us.
//!
//! Originating only puts a route in the Loc-RIB. Whether a peer gets it
//! is the export policy's decision, per session, like any other route.
//! What the kernel gets for it (a blackhole, a route, nothing) is kept
//! here for the FIB programmer, which asks before it writes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use starling_fib::Target;
use starling_plugin_host::contract::{self, KernelRoute};
use starling_speaker::instance::Instance;
use starling_wire::attr::{AsPath, Community, LargeCommunity, Origin};
use starling_wire::{PathAttributes, Prefix};

/// One prefix to originate: why, its attributes, and what the kernel gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origination {
    /// For logs: the plugin's reason, or `configured`.
    pub(super) reason: String,
    pub(super) kernel: Option<Target>,
    pub(super) communities: Vec<u32>,
    pub(super) large_communities: Vec<(u32, u32, u32)>,
}

/// What this node should originate: the plugin's answer and the prefixes
/// configured in `starling.toml` (the plugin's entry wins a tie), and a
/// host route to each session's peer that is reachable by a gateway
/// (Calico's `reachableBy`: so the session does not ride on a route it
/// learnt itself). Those go to the kernel only: NO_ADVERTISE keeps them
/// from every peer, and as local routes they win over learnt ones, as
/// BIRD's static protocol does over BGP.
pub(super) fn desired(
    originated: &[contract::Originated],
    configured: &[Prefix],
    sessions: &[contract::Session],
) -> BTreeMap<Prefix, Origination> {
    let mut out = BTreeMap::new();
    for s in sessions {
        let Some(gateway) = s.reachable_by.as_deref() else {
            continue;
        };
        let (Ok(peer), Ok(gateway)) = (s.peer_ip.parse::<IpAddr>(), gateway.parse::<IpAddr>())
        else {
            tracing::warn!(
                session = s.name,
                "reachableBy needs a peer and gateway address"
            );
            continue;
        };
        let Some(host) = Prefix::new(peer, if peer.is_ipv4() { 32 } else { 128 }) else {
            continue;
        };
        out.insert(
            host,
            Origination {
                reason: format!("reachableBy of {}", s.name),
                kernel: Some(Target::via([gateway])),
                communities: vec![Community::NO_ADVERTISE.0],
                large_communities: Vec::new(),
            },
        );
    }
    for p in configured {
        out.insert(
            *p,
            Origination {
                reason: "configured".to_owned(),
                kernel: None,
                communities: Vec::new(),
                large_communities: Vec::new(),
            },
        );
    }
    for o in originated {
        let Some(prefix) = Prefix::new(o.prefix.addr(), o.prefix.length) else {
            tracing::warn!(prefix = %o.prefix, "the origination plugin named no valid prefix");
            continue;
        };
        let kernel = match o.kernel {
            KernelRoute::None => None,
            KernelRoute::Blackhole => Some(Target::Blackhole),
            KernelRoute::Via(gateway) => Some(Target::via([gateway])),
        };
        out.insert(
            prefix,
            Origination {
                reason: o.reason.clone(),
                kernel,
                communities: o.communities.clone(),
                large_communities: o.large_communities.clone(),
            },
        );
    }
    out
}

/// The prefixes currently originated, and the kernel routes the FIB
/// programmer installs for them.
#[derive(Debug, Default)]
pub(super) struct Originated {
    current: BTreeMap<Prefix, Origination>,
    kernel: KernelRoutes,
}

/// Locally originated prefixes that get a kernel route, and which.
pub(super) type KernelRoutes = Arc<Mutex<BTreeMap<Prefix, Target>>>;

impl Originated {
    /// The map the FIB programmer reads: a locally originated prefix in it
    /// gets that route, others no kernel route.
    pub(super) fn kernel_routes(&self) -> KernelRoutes {
        self.kernel.clone()
    }

    /// Make the instance originate exactly `desired`.
    pub(super) fn apply(&mut self, instance: &Instance, desired: BTreeMap<Prefix, Origination>) {
        if desired == self.current {
            return;
        }
        let wanted: BTreeMap<Prefix, Target> = desired
            .iter()
            .filter_map(|(p, o)| Some((*p, o.kernel.clone()?)))
            .collect();
        // The FIB programmer must know a prefix's kernel route before the
        // best path for it arrives.
        if let Ok(mut k) = self.kernel.lock() {
            k.extend(wanted.clone());
        }
        for (prefix, origin) in &desired {
            if self.current.get(prefix) != Some(origin) {
                tracing::info!(%prefix, reason = origin.reason, "originating");
                instance.originate(*prefix, attributes(origin));
            }
        }
        for prefix in self.current.keys().filter(|p| !desired.contains_key(p)) {
            tracing::info!(%prefix, "no longer originating");
            instance.withdraw(*prefix);
        }
        if let Ok(mut k) = self.kernel.lock() {
            *k = wanted;
        }
        self.current = desired;
    }
}

fn attributes(origin: &Origination) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        communities: origin.communities.iter().map(|c| Community(*c)).collect(),
        large_communities: origin
            .large_communities
            .iter()
            .map(|&(global, local1, local2)| LargeCommunity {
                global,
                local1,
                local2,
            })
            .collect(),
        ..PathAttributes::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_plugin_host::contract::{Originated as Answer, Prefix as ContractPrefix};

    fn answer(prefix: &str, kernel: KernelRoute, reason: &str) -> Answer {
        let (addr, len) = prefix.split_once('/').expect("a prefix");
        Answer {
            prefix: ContractPrefix::new(addr.parse().expect("address"), len.parse().expect("len")),
            kernel,
            communities: vec![0xFDE8_0001],
            large_communities: Vec::new(),
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn the_plugins_prefixes_and_the_configured_ones() {
        let plugin = [
            answer("10.244.3.0/26", KernelRoute::Blackhole, "block"),
            answer("10.96.0.0/12", KernelRoute::None, "service"),
            answer(
                "198.51.100.0/24",
                KernelRoute::Via("192.0.2.9".parse().expect("ip")),
                "static",
            ),
        ];
        let configured = ["192.0.2.0/24".parse().expect("prefix")];
        let got: Vec<(String, String, Option<Target>)> = desired(&plugin, &configured, &[])
            .into_iter()
            .map(|(p, o)| (p.to_string(), o.reason, o.kernel))
            .collect();
        let via = Target::via(["192.0.2.9".parse::<IpAddr>().expect("ip")]);
        assert_eq!(
            got,
            [
                ("10.96.0.0/12".to_owned(), "service".to_owned(), None),
                (
                    "10.244.3.0/26".to_owned(),
                    "block".to_owned(),
                    Some(Target::Blackhole)
                ),
                ("192.0.2.0/24".to_owned(), "configured".to_owned(), None),
                ("198.51.100.0/24".to_owned(), "static".to_owned(), Some(via)),
            ]
        );
        let attrs = attributes(&desired(&plugin, &[], &[])[&"10.96.0.0/12".parse().expect("p")]);
        assert_eq!(attrs.communities, [Community(0xFDE8_0001)]);
    }

    #[test]
    fn a_peer_reachable_by_a_gateway_gets_a_host_route_no_peer_is_sent() {
        let session = |name: &str, peer: &str, via: Option<&str>| contract::Session {
            name: name.to_owned(),
            peer_ip: peer.to_owned(),
            reachable_by: via.map(str::to_owned),
            ..contract::Session::default()
        };
        let sessions = [
            session("Global_203_0_113_1", "203.0.113.1", Some("192.0.2.1")),
            session(
                "Global_2001_db8__1",
                "2001:db8::1",
                Some("2001:db8:ffff::1"),
            ),
            session("Global_203_0_113_2", "203.0.113.2", None),
        ];
        let got = desired(&[], &[], &sessions);
        assert_eq!(got.len(), 2);
        let v4 = &got[&"203.0.113.1/32".parse().expect("p")];
        assert_eq!(v4.reason, "reachableBy of Global_203_0_113_1");
        assert_eq!(
            v4.kernel,
            Some(Target::via(["192.0.2.1".parse::<IpAddr>().expect("ip")]))
        );
        assert_eq!(attributes(v4).communities, [Community::NO_ADVERTISE]);
        let v6 = &got[&"2001:db8::1/128".parse().expect("p")];
        assert_eq!(
            v6.kernel,
            Some(Target::via(["2001:db8:ffff::1"
                .parse::<IpAddr>()
                .expect("ip")]))
        );
    }
}
