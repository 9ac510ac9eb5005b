//! Calico's answers to contract 0.2's node-identity and origination
//! roles, and what its route policy's verdicts depend on.
//!
//! - A node is its `spec.bgp.ipv4Address` and `ipv6Address` (each with the
//!   subnet Calico records), and its router id is the IPv4 address (as
//!   confd renders it).
//! - A node originates, as Calico's BIRD configuration does with its
//!   static protocol (calico-model.md §2.7): every IPAM block affine to it
//!   (BlockAffinity confirmed, not deleted, not a host route), which the
//!   kernel blackholes so traffic to unallocated addresses stops here; and
//!   the `default` BGPConfiguration's service CIDRs, from every node, kept
//!   out of the kernel. Communities of `prefixAdvertisements` are the
//!   export policy's business, per session.

use std::hash::{Hash, Hasher};

use starling_plugin_sdk::{
    Identity, KernelRoute, NodeAddress, Object, Originated, Prefix, RouteContext,
};

use crate::model::Model;

pub(crate) fn identify(model: &Model) -> Vec<Identity> {
    model
        .nodes
        .values()
        .map(|n| Identity {
            node: n.name.clone(),
            router_id: n.ipv4.map(|(ip, _)| ip.to_string()),
            addresses: [n.ipv4, n.ipv6]
                .into_iter()
                .flatten()
                .map(|(address, prefix_length)| NodeAddress {
                    address,
                    prefix_length,
                })
                .collect(),
        })
        .collect()
}

pub(crate) fn originate(model: &Model, node: &str) -> Vec<Originated> {
    let mut out: Vec<Originated> = Vec::new();
    let mut add = |prefix: Prefix, kernel: KernelRoute, reason: &str| {
        if out.iter().all(|o| o.prefix != prefix) {
            out.push(Originated {
                prefix,
                kernel,
                communities: Vec::new(),
                large_communities: Vec::new(),
                reason: reason.to_owned(),
            });
        }
    };
    for block in model.blocks.iter().filter(|b| b.node == node) {
        if block.confirmed && block.cidr.length < block.cidr.width() {
            add(block.cidr, KernelRoute::Blackhole, "block");
        }
    }
    for cidr in &model.config.service_cidrs {
        add(*cidr, KernelRoute::None, "service");
    }
    out
}

/// What the route policy's verdicts depend on, digested once per
/// snapshot: per BGPFilter its import rules, and every resource but the
/// BGPFilters' import rules, Secrets, and CalicoNodeStatus (whose status
/// is the daemon's own report). Resource versions are left out: editing a
/// filter's import rules alone bumps its version.
#[derive(Debug, Clone, Default)]
pub struct PolicyBasis {
    everything: u64,
    filter_imports: std::collections::BTreeMap<String, u64>,
}

impl PolicyBasis {
    pub fn of(objects: &[Object]) -> Self {
        let mut basis = PolicyBasis::default();
        let mut everything = hasher();
        for o in objects {
            if o.kind == "Secret" || o.kind == "CalicoNodeStatus" {
                continue;
            }
            if o.kind != "BGPFilter" {
                (&o.kind, &o.name, &o.labels, &o.spec).hash(&mut everything);
                continue;
            }
            let mut spec: serde_json::Value = serde_json::from_str(&o.spec).unwrap_or_default();
            let mut imports = hasher();
            (spec["importV4"].to_string(), spec["importV6"].to_string()).hash(&mut imports);
            basis
                .filter_imports
                .insert(o.name.clone(), imports.finish());
            if let Some(spec) = spec.as_object_mut() {
                spec.remove("importV4");
                spec.remove("importV6");
            }
            (&o.kind, &o.name, &o.labels, spec.to_string()).hash(&mut everything);
        }
        basis.everything = everything.finish();
        basis
    }

    /// Per session: its import digest (its context and the import rules of
    /// the filters it names) and its export digest (its context and
    /// everything else).
    pub fn inputs(&self, contexts: &[RouteContext]) -> Vec<(u64, u64)> {
        contexts
            .iter()
            .map(|c| {
                let context = (
                    &c.node, &c.session, c.family, c.peer_as, c.local_as, &c.filters,
                );
                let mut import = hasher();
                context.hash(&mut import);
                for name in &c.filters {
                    (name, self.filter_imports.get(name)).hash(&mut import);
                }
                let mut export = hasher();
                (self.everything, context).hash(&mut export);
                (import.finish(), export.finish())
            })
            .collect()
    }
}

/// The standard library's SipHash with its fixed keys: the same digest for
/// the same input in every run (a plugin has no randomness to seed one).
fn hasher() -> impl Hasher {
    #[allow(deprecated)]
    std::hash::SipHasher::new()
}
