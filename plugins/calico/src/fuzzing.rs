//! The Calico model under the fuzzer (`tests/fuzz`, targets `calico` and
//! `selector`) and the corpus replay test: loading a resource set,
//! planning every node in both families, and deciding routes.

// A panic is how a fuzzer (and the corpus replay test) sees a failure.
#![allow(clippy::panic)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;
use starling_plugin_sdk::{
    Attributes, Direction, Family, Object, PeerSelection, Prefix, Route, RouteContext, RoutePolicy,
    Selector, Snapshot,
};

use crate::Calico;

/// A JSON array of resources (`kind`, `metadata.name`, `metadata.labels`,
/// `spec`). No panic. Refused: every problem names a resource given (or
/// none, for the set as a whole). Accepted: every node plans in both
/// families, each session to an address of its family that is not the
/// node's own, and the route policy decides every route it is given. How
/// many sessions were planned, so tests can tell the seeds plan some.
pub fn calico(data: &[u8]) -> usize {
    let Ok(Value::Array(docs)) = serde_json::from_slice::<Value>(data) else {
        return 0;
    };
    let objects: Vec<Object> = docs.iter().map(object).collect();
    let calico = match Calico::load(objects.clone()) {
        Ok(calico) => calico,
        Err(problems) => {
            assert!(!problems.is_empty(), "refused without a reason");
            for p in problems {
                assert!(
                    p.kind.is_empty()
                        || objects.iter().any(|o| o.kind == p.kind && o.name == p.name),
                    "a problem with a resource not given: {p}"
                );
            }
            return 0;
        }
    };
    let mut planned = 0;
    let facts = calico.facts();
    let nodes: Vec<String> = facts.iter().map(|f| f.node.clone()).collect();
    for family in [Family::Ipv4, Family::Ipv6] {
        let plans = calico
            .plan(&facts, &nodes, family)
            .expect("known nodes plan");
        for (plan, fact) in plans.iter().zip(&facts) {
            let own: Vec<IpAddr> = fact.addresses.iter().map(|a| a.address).collect();
            for s in &plan.sessions {
                let peer: IpAddr = s.peer_ip.parse().expect("a peer address");
                assert_eq!(Family::of(&peer), family, "{}: {}", plan.node, s.name);
                assert!(!own.contains(&peer), "{} peers with itself", plan.node);
                decide(&calico, &plan.node, s, family);
                planned += 1;
            }
        }
    }
    planned
}

/// A few routes through a session's policy both ways.
fn decide(calico: &Calico, node: &str, s: &starling_plugin_sdk::Session, family: Family) {
    let prefixes: [&str; 2] = match family {
        Family::Ipv4 => ["10.0.0.0/8", "192.168.1.0/24"],
        Family::Ipv6 => ["2001:db8::/32", "fd00::/64"],
    };
    let routes: Vec<Route> = prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (addr, len) = p.split_once('/').expect("prefix");
            Route {
                prefix: Prefix::new(addr.parse().expect("address"), len.parse().expect("length")),
                attributes: i as u32 % 2,
            }
        })
        .collect();
    let sets = [
        Attributes::default(),
        Attributes {
            as_path: vec![65000],
            communities: vec![0xFDE8_0064],
            from_peer: true,
            ..Attributes::default()
        },
    ];
    for direction in [Direction::Import, Direction::Export] {
        let context = RouteContext {
            node: node.to_owned(),
            session: s.name.clone(),
            family,
            direction,
            peer_as: s.peer_as,
            local_as: s.local_as,
            filters: s.filters.clone(),
        };
        let verdicts = calico.evaluate(&context, &sets, &routes);
        assert_eq!(verdicts.outcome.len(), routes.len(), "a verdict per route");
        for &o in &verdicts.outcome {
            assert!(
                o < 2 || (o as usize - 2) < verdicts.changed.len(),
                "a verdict naming no attribute set"
            );
        }
    }
}

fn object(doc: &Value) -> Object {
    let labels = doc["metadata"]["labels"]
        .as_object()
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default();
    Object::new(
        doc["kind"].as_str().unwrap_or_default(),
        doc["metadata"]["name"].as_str().unwrap_or_default(),
        match &doc["spec"] {
            Value::Null => "{}".to_owned(),
            spec => spec.to_string(),
        },
    )
    .with_labels(labels)
}

/// A label selector's text. No panic; one that parses evaluates against
/// any labels without a panic, the same way twice.
pub fn selector(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(selector) = Selector::parse(&text) else {
        return;
    };
    let labels: BTreeMap<String, String> =
        [("rack", "r1"), ("zone", "a"), ("route-reflector", "true")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    for set in [BTreeMap::new(), labels] {
        assert_eq!(selector.matches(&set), selector.matches(&set));
    }
}
