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
/// configured in `starling.toml` (the plugin's entry wins a tie).
pub(super) fn desired(
    originated: &[contract::Originated],
    configured: &[Prefix],
) -> BTreeMap<Prefix, Origination> {
    let mut out = BTreeMap::new();
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
    use std::net::IpAddr;

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
        let got: Vec<(String, String, Option<Target>)> = desired(&plugin, &configured)
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
        let attrs = attributes(&desired(&plugin, &[])[&"10.96.0.0/12".parse().expect("p")]);
        assert_eq!(attrs.communities, [Community(0xFDE8_0001)]);
    }
}
