//! Route policy (calico-model.md §1.5, §2.7): BGPFilter rules in order,
//! first match ends the evaluation; otherwise import accepts and export
//! falls through to Calico's export policy.

use serde_json::{Value, json};
use starling_calico::Calico;
use starling_plugin_sdk::{
    Attributes, Direction, Family, Object, Prefix, Route, RouteContext, RoutePolicy, Snapshot,
    Verdicts,
};

fn resource(kind: &str, name: &str, spec: Value) -> Object {
    Object::new(kind, name, spec.to_string())
}

fn prefix(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').expect("slash");
    Prefix::new(a.parse().expect("ip"), l.parse().expect("len"))
}

fn context(direction: Direction, peer_as: u32, filters: &[&str]) -> RouteContext {
    RouteContext {
        node: "a".to_owned(),
        session: "Global_198_51_100_1".to_owned(),
        family: Family::Ipv4,
        direction,
        peer_as,
        local_as: 64512,
        filters: filters.iter().map(|s| s.to_string()).collect(),
    }
}

fn run(
    objects: Vec<Object>,
    ctx: &RouteContext,
    sets: &[Attributes],
    routes: &[(&str, u32)],
) -> Verdicts {
    let calico = Calico::load(objects).expect("load");
    let routes: Vec<Route> = routes
        .iter()
        .map(|(p, a)| Route {
            prefix: prefix(p),
            attributes: *a,
        })
        .collect();
    calico.evaluate(ctx, sets, &routes)
}

const R: u32 = Verdicts::REJECT;
const A: u32 = Verdicts::ACCEPT;

#[test]
fn first_matching_rule_wins_across_filters_in_order() {
    let objects = vec![
        resource("IPPool", "pool", json!({"cidr": "10.0.0.0/8"})),
        resource(
            "BGPFilter",
            "one",
            json!({"exportV4": [
                {"action": "Reject", "cidr": "10.1.0.0/16", "matchOperator": "Equal"},
                {"action": "Accept", "cidr": "10.1.0.0/16", "matchOperator": "In", "prefixLength": {"max": 24}},
            ]}),
        ),
        resource(
            "BGPFilter",
            "two",
            json!({"exportV4": [
                {"action": "Reject", "cidr": "10.0.0.0/8", "matchOperator": "In"},
            ]}),
        ),
    ];
    let v = run(
        objects,
        &context(Direction::Export, 65000, &["one", "two"]),
        &[Attributes::default()],
        &[
            ("10.1.0.0/16", 0),
            ("10.1.2.0/24", 0),
            ("10.1.2.0/25", 0),
            ("10.2.0.0/16", 0),
            ("192.0.2.0/24", 0),
        ],
    );
    // /16 exact: rejected by rule 1. /24 inside with length ≤ 24: accepted.
    // /25: too long for rule 2, rejected by filter two. 10.2/16: filter
    // two. 192.0.2.0/24: no rule, Calico's export rejects (not in a pool).
    assert_eq!(v.outcome, [R, A, R, R, R]);
}

#[test]
fn without_filters_import_accepts_and_export_follows_the_pools() {
    let objects = vec![
        resource("IPPool", "on", json!({"cidr": "10.0.0.0/8"})),
        resource(
            "IPPool",
            "quiet",
            json!({"cidr": "172.16.0.0/12", "disableBGPExport": true}),
        ),
        resource(
            "IPPool",
            "off",
            json!({"cidr": "192.168.0.0/16", "disabled": true}),
        ),
    ];
    let routes = [
        ("10.0.1.0/26", 0),
        ("172.16.0.0/26", 0),
        ("192.168.0.0/26", 0),
        ("0.0.0.0/0", 0),
    ];
    let sets = [Attributes::default()];
    let import = run(
        objects.clone(),
        &context(Direction::Import, 65000, &[]),
        &sets,
        &routes,
    );
    assert_eq!(import.outcome, [A, A, A, A]);
    let export = run(
        objects,
        &context(Direction::Export, 65000, &[]),
        &sets,
        &routes,
    );
    assert_eq!(export.outcome, [A, R, R, R]);
}

#[test]
fn felix_devices_are_not_exported_to_internal_peers() {
    let objects = vec![resource("IPPool", "on", json!({"cidr": "10.0.0.0/8"}))];
    let sets = [Attributes {
        interface: Some("vxlan.calico".to_owned()),
        ..Default::default()
    }];
    let routes = [("10.0.0.0/26", 0)];
    assert_eq!(
        run(
            objects.clone(),
            &context(Direction::Export, 64512, &[]),
            &sets,
            &routes
        )
        .outcome,
        [R]
    );
    assert_eq!(
        run(
            objects,
            &context(Direction::Export, 65000, &[]),
            &sets,
            &routes
        )
        .outcome,
        [A]
    );
}

#[test]
fn prefix_advertisements_tag_exported_routes() {
    let objects = vec![
        resource("IPPool", "on", json!({"cidr": "10.0.0.0/8"})),
        resource(
            "BGPConfiguration",
            "default",
            json!({
                "communities": [{"name": "gold", "value": "65001:100"}],
                "prefixAdvertisements": [
                    {"cidr": "10.0.0.0/16", "communities": ["gold", "65001:1:2"]},
                ],
            }),
        ),
    ];
    let v = run(
        objects,
        &context(Direction::Export, 65000, &[]),
        &[Attributes::default()],
        &[("10.0.1.0/26", 0), ("10.9.0.0/26", 0)],
    );
    assert_eq!(v.outcome, [2, A]);
    assert_eq!(v.changed[0].communities, [65001 << 16 | 100]);
    assert_eq!(v.changed[0].large_communities, [(65001, 1, 2)]);
}

#[test]
fn match_conditions_and_operations() {
    let objects = vec![resource(
        "BGPFilter",
        "f",
        json!({"importV4": [
            {"action": "Reject", "communities": {"values": ["65000:666"]}},
            {"action": "Reject", "asPathPrefix": [65000, 65001]},
            {"action": "Accept", "peerType": "iBGP", "source": "RemotePeers",
             "operations": [{"prependASPath": {"prefix": [64999]}}, {"addCommunity": {"value": "65000:1"}}, {"setPriority": {"value": 100}}]},
            {"action": "Reject", "priority": 1000},
        ]}),
    )];
    let sets = [
        Attributes {
            communities: vec![65000 << 16 | 666],
            from_peer: true,
            ..Default::default()
        },
        Attributes {
            as_path: vec![65000, 65001, 7],
            from_peer: true,
            ..Default::default()
        },
        Attributes {
            as_path: vec![65000],
            from_peer: true,
            ..Default::default()
        },
        Attributes {
            local_pref: Some(2_147_483_647 - 1000),
            ..Default::default()
        },
    ];
    let routes = [
        ("10.0.0.0/24", 0),
        ("10.0.1.0/24", 1),
        ("10.0.2.0/24", 2),
        ("10.0.3.0/24", 3),
    ];
    let ibgp = run(
        objects.clone(),
        &context(Direction::Import, 64512, &["f"]),
        &sets,
        &routes,
    );
    assert_eq!(ibgp.outcome, [R, R, 2, R]);
    let changed = &ibgp.changed[0];
    assert_eq!(changed.as_path, [64999, 65000]);
    assert_eq!(changed.communities, [65000 << 16 | 1]);
    assert_eq!(changed.local_pref, Some(2_147_483_647 - 100));
    // Over eBGP the iBGP rule does not apply: the route falls through to
    // the import default.
    let ebgp = run(
        objects,
        &context(Direction::Import, 65000, &["f"]),
        &sets,
        &routes,
    );
    assert_eq!(ebgp.outcome, [R, R, A, R]);
}

#[test]
fn own_blocks_go_out_whole_and_service_cidrs_from_every_node() {
    let objects = vec![
        resource("IPPool", "pods", json!({"cidr": "10.244.0.0/16"})),
        resource(
            "BlockAffinity",
            "a-10-244-3-0-26",
            json!({"node": "a", "cidr": "10.244.3.0/26", "state": "confirmed", "deleted": "false"}),
        ),
        resource(
            "BlockAffinity",
            "a-10-244-4-0-26",
            json!({"node": "a", "cidr": "10.244.4.0/26", "state": "pending"}),
        ),
        resource(
            "BlockAffinity",
            "b-10-244-5-0-26",
            json!({"node": "b", "cidr": "10.244.5.0/26"}),
        ),
        resource(
            "BGPConfiguration",
            "default",
            json!({
                "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
                "serviceLoadBalancerIPs": [{"cidr": "203.0.113.0/24"}],
            }),
        ),
    ];
    let v = run(
        objects,
        &context(Direction::Export, 65000, &[]),
        &[Attributes::default()],
        &[
            // Node a's confirmed block, and a workload /32 inside it.
            ("10.244.3.0/26", 0),
            ("10.244.3.7/32", 0),
            // A pending block is not aggregated: its /32 is a pool route.
            ("10.244.4.9/32", 0),
            // Node b's block and a borrowed /32 in it, learned via BGP.
            ("10.244.5.0/26", 0),
            ("10.244.5.3/32", 0),
            // Services, outside every pool.
            ("10.96.0.0/12", 0),
            ("10.100.0.10/32", 0),
            ("203.0.113.0/24", 0),
            ("198.51.100.0/24", 0),
        ],
    );
    assert_eq!(v.outcome, [A, R, A, A, A, A, A, A, R]);
}

#[test]
fn block_affinities_are_validated() {
    let problems = Calico::load(vec![resource(
        "BlockAffinity",
        "bad",
        json!({"cidr": "10.0.0.0/33", "state": "maybe", "colour": "red"}),
    )])
    .expect_err("invalid");
    let fields: Vec<String> = problems.iter().map(|p| p.field.clone()).collect();
    assert_eq!(
        fields,
        ["spec.colour", "spec.node", "spec.state", "spec.cidr"],
        "{problems:?}"
    );
}
