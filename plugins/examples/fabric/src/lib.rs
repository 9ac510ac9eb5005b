//! Example plugin set, written as a network team with its own model would:
//! no Calico kind anywhere. One resource per node, `FabricNode`, names the
//! node's AS, addresses, peers (each session carrying one or both
//! families, optionally on an interface, with BFD and an error wait) and
//! the prefixes it originates. Contract 0.2; it fills every role.
//!
//! ```yaml
//! apiVersion: fabric.example/v1
//! kind: FabricNode
//! metadata: {name: node-1}
//! spec:
//!   asNumber: 65001
//!   addresses: [192.0.2.11/24, "2001:db8::11/64"]
//!   peers:
//!     - {name: tor, address: 192.0.2.1, asNumber: 64567, families: [ipv4, ipv6]}
//!   originate:
//!     - {cidr: 10.244.1.0/26, kernel: blackhole}
//!     - {cidr: "2001:db8:244:1::/64", kernel: blackhole}
//! ```
//!
//! `routerID` defaults to the first IPv4 address; a peer's `families`
//! default to both; `kernel` is `blackhole`, `none` (the default) or an
//! address to route the prefix through. Every node is exported to and
//! imported from unchanged: the fabric's policy lives in its topology.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use starling_plugin_sdk::{
    AsAssignment, Bfd, Family, Identity, KernelRoute, NodeAddress, NodeFacts, NodeIdentity,
    NodePlan, Object, Originated, Origination, PeerSelection, Prefix, Problem, Role, RouteContext,
    RoutePolicy, RouteReflection, Session, Snapshot,
};

/// The resource kind this plugin reads.
pub const KIND: &str = "FabricNode";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    as_number: u32,
    #[serde(default, rename = "routerID")]
    router_id: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    peers: Vec<PeerSpec>,
    #[serde(default)]
    originate: Vec<OriginateSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PeerSpec {
    name: String,
    #[serde(default)]
    address: Option<IpAddr>,
    as_number: u32,
    #[serde(default)]
    families: Option<Vec<String>>,
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    bfd: Option<BfdSpec>,
    #[serde(default)]
    error_wait_seconds: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BfdSpec {
    min_rx_ms: u32,
    min_tx_ms: u32,
    multiplier: u8,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginateSpec {
    cidr: String,
    #[serde(default)]
    kernel: Option<String>,
}

/// One node, validated.
#[derive(Debug, Clone)]
struct Node {
    asn: u32,
    router_id: Option<String>,
    addresses: Vec<NodeAddress>,
    sessions: Vec<Session>,
    originated: Vec<Originated>,
}

/// The loaded fabric: every `FabricNode`, by name.
#[derive(Debug)]
pub struct Fabric {
    nodes: BTreeMap<String, Node>,
}

fn cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = text
        .split_once('/')
        .ok_or_else(|| format!("'{text}' is not address/length"))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("'{ip}' is not an IP address"))?;
    let width = if ip.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(len) if len <= width => Ok((ip, len)),
        _ => Err(format!("'{len}' is not a prefix length for {ip}")),
    }
}

fn family(name: &str) -> Result<Family, String> {
    match name {
        "ipv4" => Ok(Family::Ipv4),
        "ipv6" => Ok(Family::Ipv6),
        other => Err(format!("'{other}' is not ipv4 or ipv6")),
    }
}

impl Node {
    fn parse(name: &str, spec: Spec, problem: &mut dyn FnMut(String, String)) -> Node {
        let mut addresses = Vec::new();
        for (i, text) in spec.addresses.iter().enumerate() {
            match cidr(text) {
                Ok((address, prefix_length)) => addresses.push(NodeAddress {
                    address,
                    prefix_length,
                }),
                Err(e) => problem(format!("spec.addresses[{i}]"), e),
            }
        }
        let own = |f: Family| {
            addresses
                .iter()
                .find(|a| Family::of(&a.address) == f)
                .map(|a| a.address.to_string())
        };
        let router_id = spec
            .router_id
            .map(|id| id.to_string())
            .or_else(|| own(Family::Ipv4));
        let mut sessions = Vec::new();
        for (i, p) in spec.peers.iter().enumerate() {
            let path = format!("spec.peers[{i}]");
            let families: Vec<Family> = match &p.families {
                None => vec![Family::Ipv4, Family::Ipv6],
                Some(names) => names
                    .iter()
                    .filter_map(|n| {
                        family(n)
                            .map_err(|e| problem(format!("{path}.families"), e))
                            .ok()
                    })
                    .collect(),
            };
            if families.is_empty() {
                problem(format!("{path}.families"), "names no family".to_owned());
            }
            if p.address.is_none() && p.interface.is_none() {
                problem(path.clone(), "needs an address or an interface".to_owned());
            }
            let transport = p.address.map_or(Family::Ipv6, |a| Family::of(&a));
            sessions.push(Session {
                name: format!("Fabric_{}", p.name),
                family: transport,
                families: families.clone(),
                // IPv4 routes over an IPv6 session take IPv6 next hops.
                extended_next_hop: transport == Family::Ipv6 && families.contains(&Family::Ipv4),
                origin: "fabric".to_owned(),
                peer_ip: p.address.map(|a| a.to_string()).unwrap_or_default(),
                interface: p.interface.clone(),
                peer_as: p.as_number,
                local_as: spec.as_number,
                source_address: own(transport),
                bfd: p.bfd.as_ref().map(|b| Bfd {
                    min_rx: b.min_rx_ms,
                    min_tx: b.min_tx_ms,
                    multiplier: b.multiplier,
                }),
                error_wait: p.error_wait_seconds,
                ..Session::default()
            });
        }
        let mut originated = Vec::new();
        for (i, o) in spec.originate.iter().enumerate() {
            let path = format!("spec.originate[{i}]");
            let (ip, len) = match cidr(&o.cidr) {
                Ok(p) => p,
                Err(e) => {
                    problem(format!("{path}.cidr"), e);
                    continue;
                }
            };
            let kernel = match o.kernel.as_deref() {
                None | Some("none") => KernelRoute::None,
                Some("blackhole") => KernelRoute::Blackhole,
                Some(gateway) => match gateway.parse() {
                    Ok(g) => KernelRoute::Via(g),
                    Err(_) => {
                        let e = format!("'{gateway}' is not blackhole, none or an address");
                        problem(format!("{path}.kernel"), e);
                        continue;
                    }
                },
            };
            originated.push(Originated {
                prefix: Prefix::new(ip, len),
                kernel,
                communities: Vec::new(),
                large_communities: Vec::new(),
                reason: "fabric".to_owned(),
            });
        }
        let _ = name;
        Node {
            asn: spec.as_number,
            router_id,
            addresses,
            sessions,
            originated,
        }
    }
}

impl Snapshot for Fabric {
    fn load(objects: Vec<Object>) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut nodes = BTreeMap::new();
        for o in objects.iter().filter(|o| o.kind == KIND) {
            let mut problem = |field: String, reason: String| {
                problems.push(Problem {
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    field,
                    reason,
                });
            };
            match serde_json::from_str::<Spec>(&o.spec) {
                Ok(spec) => {
                    nodes.insert(o.name.clone(), Node::parse(&o.name, spec, &mut problem));
                }
                Err(e) => problem("spec".to_owned(), e.to_string()),
            }
        }
        if problems.is_empty() {
            Ok(Fabric { nodes })
        } else {
            Err(problems)
        }
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn roles() -> Vec<Role> {
        vec![
            Role::AsAssignment,
            Role::RouteReflection,
            Role::NodeIdentity,
            Role::PeerSelection,
            Role::Origination,
            Role::RoutePolicy,
        ]
    }
}

impl AsAssignment for Fabric {
    fn assign(&self) -> Vec<(String, u32)> {
        self.nodes
            .iter()
            .map(|(n, node)| (n.clone(), node.asn))
            .collect()
    }
}

/// A fabric of eBGP sessions to its switches: no node reflects.
impl RouteReflection for Fabric {}

impl NodeIdentity for Fabric {
    fn identify(&self) -> Vec<Identity> {
        self.nodes
            .iter()
            .map(|(n, node)| Identity {
                node: n.clone(),
                router_id: node.router_id.clone(),
                addresses: node.addresses.clone(),
            })
            .collect()
    }
}

impl PeerSelection for Fabric {
    fn plan_all(&self, _facts: &[NodeFacts], nodes: &[String]) -> Result<Vec<NodePlan>, String> {
        nodes
            .iter()
            .map(|name| {
                let node = self
                    .nodes
                    .get(name)
                    .ok_or_else(|| format!("no {KIND} named '{name}'"))?;
                Ok(NodePlan {
                    node: name.clone(),
                    router_id: node.router_id.clone(),
                    listen_port: None,
                    listen_addresses: Vec::new(),
                    sessions: node.sessions.clone(),
                    warnings: Vec::new(),
                })
            })
            .collect()
    }
}

impl Origination for Fabric {
    fn originate(&self, node: &str) -> Result<Vec<Originated>, String> {
        Ok(self
            .nodes
            .get(node)
            .map(|n| n.originated.clone())
            .unwrap_or_default())
    }
}

/// Accept everything, both ways. Its verdicts depend on nothing, so the
/// digests never change and no datastore change costs a re-export.
impl RoutePolicy for Fabric {
    fn inputs(&self, contexts: &[RouteContext]) -> Option<Vec<(u64, u64)>> {
        Some(vec![(0, 0); contexts.len()])
    }
}

starling_plugin_sdk::export_plugin_v0_2!(Fabric);

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, spec: &str) -> Object {
        Object::new(KIND, name, spec)
    }

    const NODE_1: &str = r#"{
        "asNumber": 65001,
        "addresses": ["192.0.2.11/24", "2001:db8::11/64"],
        "peers": [{"name": "tor", "address": "192.0.2.1", "asNumber": 64567,
                   "bfd": {"minRxMs": 300, "minTxMs": 300, "multiplier": 3},
                   "errorWaitSeconds": 5}],
        "originate": [{"cidr": "10.244.1.0/26", "kernel": "blackhole"},
                      {"cidr": "2001:db8:244:1::/64", "kernel": "blackhole"}]
    }"#;

    #[test]
    fn a_node_is_its_resource() {
        let fabric = Fabric::load(vec![node("node-1", NODE_1)]).expect("load");
        assert_eq!(fabric.assign(), [("node-1".to_owned(), 65001)]);
        let id = &fabric.identify()[0];
        assert_eq!(id.router_id.as_deref(), Some("192.0.2.11"));
        assert_eq!(id.addresses.len(), 2);
        let plan = fabric.plan_all(&[], &["node-1".to_owned()]).expect("plan");
        let s = &plan[0].sessions[0];
        assert_eq!(s.name, "Fabric_tor");
        assert_eq!(s.families, [Family::Ipv4, Family::Ipv6], "both by default");
        assert_eq!(s.source_address.as_deref(), Some("192.0.2.11"));
        assert_eq!(s.bfd.map(|b| b.multiplier), Some(3));
        assert_eq!(s.error_wait, Some(5));
        let originated = fabric.originate("node-1").expect("originate");
        assert_eq!(originated.len(), 2);
        assert!(
            originated
                .iter()
                .all(|o| o.kernel == KernelRoute::Blackhole)
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = r#"{"asNumber": 1, "addresses": ["192.0.2.11"],
                      "peers": [{"name": "x", "asNumber": 2, "families": ["ipv5"]}],
                      "originate": [{"cidr": "10.0.0.0/8", "kernel": "sideways"}]}"#;
        let problems = Fabric::load(vec![node("n", bad)]).expect_err("refused");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.addresses[0]",
                "spec.peers[0].families",
                "spec.peers[0].families",
                "spec.peers[0]",
                "spec.originate[0].kernel"
            ]
        );
        let unknown = Fabric::load(vec![node("n", r#"{"asNumber": 1, "colour": "red"}"#)]);
        assert!(unknown.expect_err("refused")[0].reason.contains("colour"));
    }
}
