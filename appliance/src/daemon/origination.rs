//! The prefixes this node originates, as Calico's BIRD configuration does
//! with its static protocol (calico-model.md §2.7):
//!
//! - every IPAM block affine to the node (BlockAffinity, state `confirmed`
//!   or none, not deleted, not a host route): the block, never the
//!   addresses inside it; the kernel gets a blackhole route for it, so
//!   traffic to unallocated addresses in the block stops here;
//! - the service CIDRs of the `default` BGPConfiguration
//!   (`serviceClusterIPs`, `serviceExternalIPs`, `serviceLoadBalancerIPs`),
//!   from every node, kept out of the kernel;
//! - the `bgp.originate` prefixes of `starling.toml`, kept out of the
//!   kernel (the operator routes them).
//!
//! Originating only puts a route in the Loc-RIB. Whether a peer gets it
//! is the export policy's decision, per session, like any other route.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use starling_speaker::instance::Instance;
use starling_wire::attr::{AsPath, Origin};
use starling_wire::{PathAttributes, Prefix};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    Block,
    Service,
    Configured,
}

/// What this node should originate, from the resources and the config.
pub(super) fn desired(node: &str, docs: &[Value], configured: &[Prefix]) -> BTreeMap<Prefix, Why> {
    let mut out = BTreeMap::new();
    for p in configured {
        out.insert(*p, Why::Configured);
    }
    for doc in docs {
        let spec = &doc["spec"];
        match (doc["kind"].as_str(), doc["metadata"]["name"].as_str()) {
            (Some("BGPConfiguration"), Some("default")) => {
                for key in [
                    "serviceClusterIPs",
                    "serviceExternalIPs",
                    "serviceLoadBalancerIPs",
                ] {
                    for cidr in spec[key].as_array().into_iter().flatten() {
                        if let Some(p) = cidr["cidr"].as_str().and_then(|c| c.parse().ok()) {
                            out.insert(p, Why::Service);
                        }
                    }
                }
            }
            (Some("BlockAffinity"), _) if spec["node"] == node => {
                let state = spec["state"].as_str().unwrap_or("confirmed");
                let deleted = spec["deleted"] == true || spec["deleted"] == "true";
                let Some(block) = spec["cidr"].as_str().and_then(|c| c.parse::<Prefix>().ok())
                else {
                    continue;
                };
                let host = match block {
                    Prefix::V4(_) => 32,
                    Prefix::V6(_) => 128,
                };
                if matches!(state, "confirmed" | "") && !deleted && block.prefix_len() < host {
                    out.insert(block, Why::Block);
                }
            }
            _ => {}
        }
    }
    out
}

/// The prefixes currently originated, and the blackholes the FIB task
/// installs for them.
#[derive(Debug, Default)]
pub(super) struct Originated {
    current: BTreeMap<Prefix, Why>,
    blackholes: Arc<Mutex<BTreeSet<Prefix>>>,
}

impl Originated {
    /// The set the FIB task reads: locally originated prefixes in it get a
    /// blackhole route, others no kernel route.
    pub(super) fn blackholes(&self) -> Arc<Mutex<BTreeSet<Prefix>>> {
        self.blackholes.clone()
    }

    /// Make the instance originate exactly `desired`.
    pub(super) fn apply(&mut self, instance: &Instance, desired: BTreeMap<Prefix, Why>) {
        if desired == self.current {
            return;
        }
        // The FIB task must know a block is a blackhole before the best
        // path for it arrives.
        if let Ok(mut b) = self.blackholes.lock() {
            b.extend(
                desired
                    .iter()
                    .filter(|(_, w)| **w == Why::Block)
                    .map(|(p, _)| *p),
            );
        }
        for (prefix, why) in &desired {
            if self.current.get(prefix) != Some(why) {
                tracing::info!(%prefix, ?why, "originating");
                instance.originate(*prefix, attributes());
            }
        }
        for prefix in self.current.keys().filter(|p| !desired.contains_key(p)) {
            tracing::info!(%prefix, "no longer originating");
            instance.withdraw(*prefix);
        }
        if let Ok(mut b) = self.blackholes.lock() {
            b.retain(|p| desired.get(p) == Some(&Why::Block));
        }
        self.current = desired;
    }
}

fn attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        ..PathAttributes::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_services_and_configured_prefixes() {
        let docs = vec![
            json!({"kind": "BlockAffinity", "metadata": {"name": "a1"},
                   "spec": {"node": "a", "cidr": "10.244.3.0/26", "state": "confirmed", "deleted": "false"}}),
            json!({"kind": "BlockAffinity", "metadata": {"name": "a2"},
                   "spec": {"node": "a", "cidr": "10.244.4.0/26", "state": "pending"}}),
            json!({"kind": "BlockAffinity", "metadata": {"name": "a3"},
                   "spec": {"node": "a", "cidr": "10.244.5.0/26", "deleted": "true"}}),
            json!({"kind": "BlockAffinity", "metadata": {"name": "a4"},
                   "spec": {"node": "a", "cidr": "10.244.6.1/32"}}),
            json!({"kind": "BlockAffinity", "metadata": {"name": "b1"},
                   "spec": {"node": "b", "cidr": "10.244.7.0/26"}}),
            json!({"kind": "BGPConfiguration", "metadata": {"name": "default"},
                   "spec": {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
                            "serviceLoadBalancerIPs": [{"cidr": "2001:db8:5::/112"}]}}),
            json!({"kind": "BGPConfiguration", "metadata": {"name": "node.a"},
                   "spec": {"serviceClusterIPs": [{"cidr": "10.0.0.0/8"}]}}),
        ];
        let configured = ["192.0.2.0/24".parse().expect("prefix")];
        let got: Vec<(String, Why)> = desired("a", &docs, &configured)
            .into_iter()
            .map(|(p, w)| (p.to_string(), w))
            .collect();
        assert_eq!(
            got,
            [
                ("10.96.0.0/12".to_owned(), Why::Service),
                ("10.244.3.0/26".to_owned(), Why::Block),
                ("192.0.2.0/24".to_owned(), Why::Configured),
                ("2001:db8:5::/112".to_owned(), Why::Service),
            ]
        );
    }
}
