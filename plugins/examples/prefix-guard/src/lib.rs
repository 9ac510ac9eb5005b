//! Example plugin: an export guard that never announces prefixes more
//! specific than a limit, whatever the rest of policy says. A common
//! safety net at a network edge (most of the Internet filters IPv4 longer
//! than /24 and IPv6 longer than /48).
//!
//! Configured by an optional resource of its own kind, `PrefixGuard`
//! (any name, any apiVersion): `spec: {maxLengthV4: 24, maxLengthV6: 48}`;
//! those are also the defaults. Imports are accepted unchanged.

use serde_json::Value;
use starling_plugin_sdk::{
    AsAssignment, Attributes, Direction, Family, NodeIdentity, Object, Origination, PeerSelection,
    Problem, Role, Route, RouteContext, RoutePolicy, RouteReflection, Snapshot, Verdicts,
};

#[derive(Debug)]
pub struct PrefixGuard {
    max_v4: u8,
    max_v6: u8,
}

impl Snapshot for PrefixGuard {
    fn load(objects: Vec<Object>) -> Result<Self, Vec<Problem>> {
        let mut guard = PrefixGuard {
            max_v4: 24,
            max_v6: 48,
        };
        let mut problems = Vec::new();
        for o in objects.iter().filter(|o| o.kind == "PrefixGuard") {
            let spec: Value = serde_json::from_str(&o.spec).unwrap_or(Value::Null);
            for (key, width, slot) in [
                ("maxLengthV4", 32, &mut guard.max_v4),
                ("maxLengthV6", 128, &mut guard.max_v6),
            ] {
                match spec.get(key).map(Value::as_u64) {
                    None => {}
                    Some(Some(n)) if n <= width => *slot = n as u8,
                    Some(_) => problems.push(Problem {
                        kind: o.kind.clone(),
                        name: o.name.clone(),
                        field: format!("spec.{key}"),
                        reason: format!("must be a prefix length 0-{width}"),
                    }),
                }
            }
        }
        if problems.is_empty() {
            Ok(guard)
        } else {
            Err(problems)
        }
    }

    fn nodes(&self) -> Vec<String> {
        Vec::new()
    }

    fn roles() -> Vec<Role> {
        vec![Role::RoutePolicy]
    }
}

impl RoutePolicy for PrefixGuard {
    fn evaluate(&self, context: &RouteContext, _sets: &[Attributes], routes: &[Route]) -> Verdicts {
        let outcome = routes
            .iter()
            .map(|r| {
                let max = match r.prefix.family {
                    Family::Ipv4 => self.max_v4,
                    Family::Ipv6 => self.max_v6,
                };
                if context.direction == Direction::Export && r.prefix.length > max {
                    Verdicts::REJECT
                } else {
                    Verdicts::ACCEPT
                }
            })
            .collect();
        Verdicts {
            outcome,
            changed: Vec::new(),
        }
    }
}

impl AsAssignment for PrefixGuard {}
impl RouteReflection for PrefixGuard {}
impl PeerSelection for PrefixGuard {}
impl NodeIdentity for PrefixGuard {}
impl Origination for PrefixGuard {}

// Built against contract 0.1 on purpose: the host loads it beside 0.2
// plugins (the daemon tests run it with the Calico plugin).
starling_plugin_sdk::export_plugin_v0_1!(PrefixGuard);
