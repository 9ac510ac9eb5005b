//! Example plugin, written as a network team would: every rack is its own
//! AS, and every node peers over eBGP with its rack's top-of-rack switch.
//!
//! Resources it reads:
//! - Calico `Node`s: the `rack` label and `spec.bgp.ipv4Address` /
//!   `ipv6Address`;
//! - its own kind `Rack` (any apiVersion), named after the rack label:
//!   `spec: {asNumber: 65101, torIP: 192.0.2.1, torASNumber: 65100}`.
//!
//! Roles: AS assignment (the rack's `asNumber`) and peer selection (one
//! `Node_<torIP>` session per node and family). A node without a `rack`
//! label, or whose rack is not defined, is a problem the plugin reports
//! when it loads: better refused than silently unpeered.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;
use starling_plugin_sdk::{
    AsAssignment, Family, NextHopMode, NodeFacts, NodeIdentity, NodePlan, Object, Origination,
    PeerSelection, Problem, Role, RoutePolicy, RouteReflection, Session, Snapshot,
};

#[derive(Debug, Clone)]
struct Rack {
    asn: u32,
    tor: IpAddr,
    tor_as: u32,
}

#[derive(Debug, Clone)]
struct Node {
    rack: String,
    v4: Option<IpAddr>,
    v6: Option<IpAddr>,
}

#[derive(Debug)]
pub struct AsPerRack {
    racks: BTreeMap<String, Rack>,
    nodes: BTreeMap<String, Node>,
}

fn problem(o: &Object, field: &str, reason: impl Into<String>) -> Problem {
    Problem {
        kind: o.kind.clone(),
        name: o.name.clone(),
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The address part of a Calico node address (`192.0.2.10/24`).
fn address(spec: &Value, key: &str) -> Option<IpAddr> {
    let text = spec.pointer(&format!("/bgp/{key}"))?.as_str()?;
    text.split('/').next()?.parse().ok()
}

fn parse_rack(o: &Object) -> Result<Rack, Problem> {
    let spec: Value =
        serde_json::from_str(&o.spec).map_err(|e| problem(o, "spec", e.to_string()))?;
    let number = |key: &str| {
        spec.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| problem(o, &format!("spec.{key}"), "needs an AS number"))
    };
    let tor = spec
        .get("torIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| problem(o, "spec.torIP", "needs the ToR's IP address"))?;
    Ok(Rack {
        asn: number("asNumber")?,
        tor,
        tor_as: number("torASNumber")?,
    })
}

impl Snapshot for AsPerRack {
    fn load(objects: Vec<Object>) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut racks = BTreeMap::new();
        for o in objects.iter().filter(|o| o.kind == "Rack") {
            match parse_rack(o) {
                Ok(r) => {
                    racks.insert(o.name.clone(), r);
                }
                Err(p) => problems.push(p),
            }
        }
        let mut nodes = BTreeMap::new();
        for o in objects.iter().filter(|o| o.kind == "Node") {
            let Some(rack) = o.labels.get("rack") else {
                problems.push(problem(
                    o,
                    "metadata.labels.rack",
                    "every node needs a rack label",
                ));
                continue;
            };
            if !racks.contains_key(rack) {
                problems.push(problem(
                    o,
                    "metadata.labels.rack",
                    format!("no Rack named '{rack}'"),
                ));
                continue;
            }
            let spec: Value = serde_json::from_str(&o.spec).unwrap_or(Value::Null);
            nodes.insert(
                o.name.clone(),
                Node {
                    rack: rack.clone(),
                    v4: address(&spec, "ipv4Address"),
                    v6: address(&spec, "ipv6Address"),
                },
            );
        }
        if problems.is_empty() {
            Ok(AsPerRack { racks, nodes })
        } else {
            Err(problems)
        }
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn roles() -> Vec<Role> {
        vec![Role::AsAssignment, Role::PeerSelection]
    }
}

impl AsAssignment for AsPerRack {
    fn assign(&self) -> Vec<(String, u32)> {
        self.nodes
            .iter()
            .map(|(name, n)| (name.clone(), self.racks[&n.rack].asn))
            .collect()
    }
}

impl PeerSelection for AsPerRack {
    fn plan(
        &self,
        facts: &[NodeFacts],
        nodes: &[String],
        family: Family,
    ) -> Result<Vec<NodePlan>, String> {
        nodes
            .iter()
            .map(|name| {
                let node = self
                    .nodes
                    .get(name)
                    .ok_or_else(|| format!("no Node named '{name}'"))?;
                let rack = &self.racks[&node.rack];
                let local_as = facts
                    .iter()
                    .find(|f| f.node == *name)
                    .map_or(rack.asn, |f| f.local_as);
                let mine = match family {
                    Family::Ipv4 => node.v4,
                    Family::Ipv6 => node.v6,
                };
                let mut plan = NodePlan {
                    node: name.clone(),
                    router_id: node.v4.map(|ip| ip.to_string()),
                    listen_port: None,
                    listen_addresses: Vec::new(),
                    sessions: Vec::new(),
                    warnings: Vec::new(),
                };
                if let Some(me) = mine
                    && Family::of(&rack.tor) == family
                {
                    plan.sessions.push(Session {
                        name: format!("Node_{}", rack.tor.to_string().replace(['.', ':'], "_")),
                        family,
                        origin: "rack".to_owned(),
                        peer_ip: rack.tor.to_string(),
                        peer_port: None,
                        peer_as: rack.tor_as,
                        local_as,
                        source_address: Some(me.to_string()),
                        passive: false,
                        rr_client: false,
                        rr_cluster_id: None,
                        password: None,
                        graceful_restart_time: None,
                        keepalive_time: None,
                        // The ToR is one hop away: GTSM costs nothing here.
                        ttl_security: Some(1),
                        next_hop: NextHopMode::Auto,
                        allow_local_as: None,
                        filters: Vec::new(),
                        reachable_by: None,
                        families: vec![family],
                        ..Session::default()
                    });
                }
                Ok(plan)
            })
            .collect()
    }
}

impl RouteReflection for AsPerRack {}
impl RoutePolicy for AsPerRack {}
impl NodeIdentity for AsPerRack {}
impl Origination for AsPerRack {}

// Built against contract 0.1 on purpose: a plugin written before 0.2
// keeps working (see docs/plugins.md, compatibility).
starling_plugin_sdk::export_plugin_v0_1!(AsPerRack);

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, labels: &[(&str, &str)], spec: &str) -> Object {
        Object::new(kind, name, spec).with_labels(labels.iter().copied())
    }

    #[test]
    fn each_node_speaks_its_racks_as_to_its_tor() {
        let plugin = AsPerRack::load(vec![
            object(
                "Rack",
                "r1",
                &[],
                r#"{"asNumber": 65101, "torIP": "192.0.2.1", "torASNumber": 65100}"#,
            ),
            object(
                "Rack",
                "r2",
                &[],
                r#"{"asNumber": 65102, "torIP": "198.51.100.1", "torASNumber": 65100}"#,
            ),
            object(
                "Node",
                "a",
                &[("rack", "r1")],
                r#"{"bgp": {"ipv4Address": "192.0.2.10/24"}}"#,
            ),
            object(
                "Node",
                "b",
                &[("rack", "r2")],
                r#"{"bgp": {"ipv4Address": "198.51.100.10/24"}}"#,
            ),
        ])
        .expect("load");
        assert_eq!(
            plugin.assign(),
            vec![("a".to_owned(), 65101), ("b".to_owned(), 65102)]
        );
        let plans = plugin
            .plan(&[], &["a".to_owned(), "b".to_owned()], Family::Ipv4)
            .expect("plan");
        let s = &plans[1].sessions[0];
        assert_eq!(
            (s.name.as_str(), s.peer_as, s.local_as),
            ("Node_198_51_100_1", 65100, 65102)
        );
        assert_eq!(s.source_address.as_deref(), Some("198.51.100.10"));
        let v6 = plugin
            .plan(&[], &["a".to_owned()], Family::Ipv6)
            .expect("v6");
        assert!(v6[0].sessions.is_empty());
    }

    #[test]
    fn a_node_without_a_known_rack_is_refused() {
        let problems = AsPerRack::load(vec![
            object("Node", "a", &[], "{}"),
            object("Node", "b", &[("rack", "r9")], "{}"),
        ])
        .expect_err("refused");
        assert_eq!(problems.len(), 2);
        assert!(problems[1].reason.contains("no Rack named 'r9'"));
    }
}
