//! Route policy (calico-model.md §1.5, §2.7): the session's BGPFilters in
//! order, first matching rule ends the evaluation; when none matches,
//! import accepts and export falls through to Calico's export policy.

use std::collections::BTreeMap;

use starling_plugin_sdk::{Attributes, Direction, Family, Prefix, Route, RouteContext, Verdicts};

use crate::model::{FilterRule, MatchOperator, Model, Operation};
use crate::values::Community;

/// Calico's priority ↔ LOCAL_PREF mapping: local_pref = 2³¹ − 1 − priority.
const PRIORITY_BASE: u32 = 2_147_483_647;

/// What Calico's export policy does with a route.
enum Outcome {
    Reject,
    Accept,
    Changed(Attributes),
}

/// Evaluate one batch. Routes sharing an attribute set and an outcome share
/// the changed set, so a batch of a full table yields few distinct sets.
pub fn evaluate(
    model: &Model,
    context: &RouteContext,
    sets: &[Attributes],
    routes: &[Route],
) -> Verdicts {
    let rules: Vec<&[FilterRule]> = context
        .filters
        .iter()
        .filter_map(|name| model.filters.get(name))
        .map(|f| match (context.direction, context.family) {
            (Direction::Import, Family::Ipv4) => f.import_v4.as_slice(),
            (Direction::Export, Family::Ipv4) => f.export_v4.as_slice(),
            (Direction::Import, Family::Ipv6) => f.import_v6.as_slice(),
            (Direction::Export, Family::Ipv6) => f.export_v6.as_slice(),
        })
        .collect();
    let ebgp = context.peer_as != context.local_as;
    let advertisements = model
        .config
        .node_prefix_advertisements
        .get(&context.node)
        .unwrap_or(&model.config.prefix_advertisements);
    let mut verdicts = Verdicts {
        outcome: Vec::with_capacity(routes.len()),
        changed: Vec::new(),
    };
    // A full table has far fewer distinct attribute sets than routes:
    // changed sets are deduplicated, and what a rule's operations make of
    // an attribute set is computed once per (set, rule).
    let mut changed_index: BTreeMap<Attributes, u32> = BTreeMap::new();
    let mut applied: BTreeMap<(u32, usize), u32> = BTreeMap::new();
    let empty = Attributes::default();
    let mut intern = |verdicts: &mut Verdicts, a: Attributes| -> u32 {
        *changed_index.entry(a).or_insert_with_key(|a| {
            verdicts.changed.push(a.clone());
            verdicts.changed.len() as u32 + 1
        })
    };
    for route in routes {
        let attrs = sets.get(route.attributes as usize).unwrap_or(&empty);
        let outcome = match first_match(&rules, &route.prefix, attrs, ebgp) {
            Some((_, rule)) if !rule.accept => Verdicts::REJECT,
            Some((_, rule)) if rule.operations.is_empty() => Verdicts::ACCEPT,
            Some((index, rule)) => match applied.get(&(route.attributes, index)) {
                Some(&o) => o,
                None => {
                    let o = intern(&mut verdicts, apply(&rule.operations, attrs));
                    applied.insert((route.attributes, index), o);
                    o
                }
            },
            None if context.direction == Direction::Import => Verdicts::ACCEPT,
            None => match calico_export(
                model,
                &context.node,
                &route.prefix,
                attrs,
                !ebgp,
                advertisements,
            ) {
                Outcome::Reject => Verdicts::REJECT,
                Outcome::Accept => Verdicts::ACCEPT,
                Outcome::Changed(a) => intern(&mut verdicts, a),
            },
        };
        verdicts.outcome.push(outcome);
    }
    verdicts
}

/// The first rule that matches, with its position among all the rules.
fn first_match<'r>(
    filters: &[&'r [FilterRule]],
    prefix: &Prefix,
    attrs: &Attributes,
    ebgp: bool,
) -> Option<(usize, &'r FilterRule)> {
    filters
        .iter()
        .flat_map(|rules| rules.iter())
        .enumerate()
        .find(|(_, rule)| matches(rule, prefix, attrs, ebgp))
}

fn matches(rule: &FilterRule, prefix: &Prefix, attrs: &Attributes, ebgp: bool) -> bool {
    if let Some((cidr, op)) = &rule.cidr {
        let inside =
            prefix.within(cidr) && (rule.length.0..=rule.length.1).contains(&prefix.length);
        let equal =
            prefix.family == cidr.family && prefix.length == cidr.length && prefix.within(cidr);
        let hit = match op {
            MatchOperator::Equal => equal,
            MatchOperator::NotEqual => !equal,
            MatchOperator::In => inside,
            MatchOperator::NotIn => !inside,
        };
        if !hit {
            return false;
        }
    }
    if rule.from_peer && !attrs.from_peer {
        return false;
    }
    if let Some(pattern) = &rule.interface
        && !attrs.interface.as_deref().is_some_and(|i| glob(pattern, i))
    {
        return false;
    }
    if rule.peer_type_ebgp.is_some_and(|want| want != ebgp) {
        return false;
    }
    if let Some(c) = rule.community
        && !has_community(attrs, c)
    {
        return false;
    }
    if !attrs.as_path.starts_with(&rule.as_path_prefix) {
        return false;
    }
    if let Some(p) = rule.priority
        && attrs.local_pref != Some(PRIORITY_BASE - p)
    {
        return false;
    }
    true
}

fn has_community(attrs: &Attributes, c: Community) -> bool {
    match c {
        Community::Standard(v) => attrs.communities.contains(&v),
        Community::Large(a, b, d) => attrs.large_communities.contains(&(a, b, d)),
    }
}

fn add_community(attrs: &mut Attributes, c: Community) {
    if has_community(attrs, c) {
        return;
    }
    match c {
        Community::Standard(v) => attrs.communities.push(v),
        Community::Large(a, b, d) => attrs.large_communities.push((a, b, d)),
    }
}

fn apply(operations: &[Operation], attrs: &Attributes) -> Attributes {
    let mut out = attrs.clone();
    for op in operations {
        match op {
            Operation::AddCommunity(c) => add_community(&mut out, *c),
            Operation::PrependAsPath(asns) => {
                out.as_path.splice(0..0, asns.iter().copied());
            }
            Operation::SetPriority(p) => out.local_pref = Some(PRIORITY_BASE - p),
        }
    }
    out
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Calico's `calico_export(internal)` (calico-model.md §2.7): disabled
/// pools, Felix-owned devices, prefix-advertisement communities, block
/// aggregation for the blocks affine to `node`, service CIDRs, and enabled
/// pools. Everything else is not exported.
fn calico_export(
    model: &Model,
    node: &str,
    prefix: &Prefix,
    attrs: &Attributes,
    internal: bool,
    advertisements: &[(Prefix, Vec<Community>)],
) -> Outcome {
    if model
        .pools
        .iter()
        .any(|p| p.disable_bgp_export && prefix.within(&p.cidr))
    {
        return Outcome::Reject;
    }
    if let Some(iface) = attrs.interface.as_deref() {
        if internal && (glob("*.cali", iface) || glob("*.calico", iface)) {
            return Outcome::Reject;
        }
        if glob("bpf*.cali", iface) {
            return Outcome::Reject;
        }
    }
    let mut tagged = None;
    for (cidr, communities) in advertisements {
        if prefix.within(cidr) {
            let out = tagged.get_or_insert_with(|| attrs.clone());
            for c in communities {
                add_community(out, *c);
            }
        }
    }
    let accept = || match &tagged {
        Some(a) if a != attrs => Outcome::Changed(a.clone()),
        _ => Outcome::Accept,
    };
    // Block aggregation: our own block goes out whole; the addresses
    // inside it stay home.
    for block in model
        .blocks
        .iter()
        .filter(|b| b.node == node && b.confirmed && b.cidr.length < b.cidr.width())
    {
        if *prefix == block.cidr {
            return accept();
        }
        if prefix.within(&block.cidr) {
            return Outcome::Reject;
        }
    }
    if model
        .config
        .service_cidrs
        .iter()
        .any(|cidr| prefix.within(cidr))
    {
        return accept();
    }
    if model
        .pools
        .iter()
        .any(|p| !p.disabled && prefix.within(&p.cidr))
    {
        return accept();
    }
    Outcome::Reject
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*.cali", "vxlan.cali"));
        assert!(glob("*.calico", "vxlan.calico"));
        assert!(!glob("*.cali", "vxlan.calico"));
        assert!(glob("bpf*.cali", "bpfout.cali"));
        assert!(glob("eth*", "eth0"));
        assert!(glob("eth0", "eth0"));
        assert!(!glob("eth0", "eth01"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
    }
}
