//! Contract 0.2's roles as the Calico plugin answers them: who a node is
//! (its BGP addresses, its router id), what it originates (its IPAM
//! blocks, blackholed; the service CIDRs, announced only), and what the
//! route policy's verdicts depend on (digests the daemon compares to
//! decide on a ROUTE-REFRESH or a re-export).

use serde_json::{Value, json};
use starling_calico::Calico;
use starling_plugin_sdk::{
    Direction, Family, KernelRoute, NodeAddress, NodeIdentity, Object, Origination, RouteContext,
    RoutePolicy, Snapshot,
};

fn resource(kind: &str, name: &str, spec: Value) -> Object {
    Object::new(kind, name, spec.to_string())
}

fn node(name: &str, v4: &str, v6: Option<&str>) -> Object {
    let mut bgp = json!({"ipv4Address": v4});
    if let Some(v6) = v6 {
        bgp["ipv6Address"] = v6.into();
    }
    resource("Node", name, json!({"bgp": bgp}))
}

#[test]
fn a_node_is_its_bgp_addresses_and_its_ipv4_router_id() {
    let calico = Calico::load(vec![
        node("a", "192.0.2.1/24", Some("2001:db8::1/64")),
        node("b", "192.0.2.2/26", None),
    ])
    .expect("load");
    let ids = calico.identify();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0].node, "a");
    assert_eq!(ids[0].router_id.as_deref(), Some("192.0.2.1"));
    let address = |a: &str, len| NodeAddress {
        address: a.parse().expect("ip"),
        prefix_length: len,
    };
    assert_eq!(
        ids[0].addresses,
        [address("192.0.2.1", 24), address("2001:db8::1", 64)]
    );
    assert_eq!(ids[1].addresses, [address("192.0.2.2", 26)]);
}

/// The Calico rules the daemon applied itself before contract 0.2
/// (calico-model.md §2.7), now the plugin's answer.
#[test]
fn a_node_originates_its_confirmed_blocks_and_the_service_cidrs() {
    let block = |name: &str, node: &str, cidr: &str, extra: Value| {
        let mut spec = json!({"node": node, "cidr": cidr});
        for (k, v) in extra.as_object().into_iter().flatten() {
            spec[k] = v.clone();
        }
        resource("BlockAffinity", name, spec)
    };
    let calico = Calico::load(vec![
        node("a", "192.0.2.1/24", None),
        node("b", "192.0.2.2/24", None),
        block(
            "a1",
            "a",
            "10.244.3.0/26",
            json!({"state": "confirmed", "deleted": "false"}),
        ),
        block("a2", "a", "10.244.4.0/26", json!({"state": "pending"})),
        block("a3", "a", "10.244.5.0/26", json!({"deleted": "true"})),
        block("a4", "a", "10.244.6.1/32", json!({})),
        block("b1", "b", "10.244.7.0/26", json!({})),
        resource(
            "BGPConfiguration",
            "default",
            json!({"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
                   "serviceLoadBalancerIPs": [{"cidr": "2001:db8:5::/112"}]}),
        ),
    ])
    .expect("load");
    let got: Vec<(String, KernelRoute, String)> = calico
        .originate("a")
        .expect("originate")
        .into_iter()
        .map(|o| (o.prefix.to_string(), o.kernel, o.reason))
        .collect();
    let want = |p: &str, k, r: &str| (p.to_owned(), k, r.to_owned());
    assert_eq!(
        got,
        [
            want("10.244.3.0/26", KernelRoute::Blackhole, "block"),
            want("10.96.0.0/12", KernelRoute::None, "service"),
            want("2001:db8:5::/112", KernelRoute::None, "service"),
        ]
    );
}

fn filter(version: &str, import: &str, export: &str) -> Object {
    let mut o = resource(
        "BGPFilter",
        "f",
        json!({
            "importV4": [{"action": "Reject", "matchOperator": "In", "cidr": import}],
            "exportV4": [{"action": "Reject", "matchOperator": "In", "cidr": export}],
        }),
    );
    o.labels.insert("version".to_owned(), version.to_owned());
    o
}

fn digests(objects: Vec<Object>) -> (u64, u64) {
    let context = RouteContext {
        node: "a".to_owned(),
        session: "Global_192_0_2_9".to_owned(),
        family: Family::Ipv4,
        direction: Direction::Import,
        peer_as: 65001,
        local_as: 64512,
        filters: vec!["f".to_owned()],
    };
    let calico = Calico::load(objects).expect("load");
    calico.inputs(&[context]).expect("Calico says")[0]
}

#[test]
fn only_import_rules_change_the_import_digest() {
    let before = digests(vec![filter("1", "10.0.0.0/8", "10.1.0.0/16")]);
    let export_changed = digests(vec![filter("1", "10.0.0.0/8", "10.2.0.0/16")]);
    let import_changed = digests(vec![filter("1", "172.16.0.0/12", "10.1.0.0/16")]);
    assert_eq!(before.0, export_changed.0, "an export rule changed");
    assert_ne!(before.0, import_changed.0, "an import rule changed");
}

#[test]
fn import_rules_and_our_own_status_leave_the_export_digest_alone() {
    let pool = resource("IPPool", "p", json!({"cidr": "10.0.0.0/16"}));
    let report = |at: &str| {
        resource(
            "CalicoNodeStatus",
            "n1",
            json!({"node": "n1", "updatePeriodSeconds": 10, "lastUpdated": at}),
        )
    };
    let before = digests(vec![pool.clone(), filter("1", "10.0.0.0/8", "10.1.0.0/16")]);
    let import_changed = digests(vec![
        pool.clone(),
        filter("1", "172.16.0.0/12", "10.1.0.0/16"),
    ]);
    assert_eq!(before.1, import_changed.1, "an import rule changed");
    let export_changed = digests(vec![pool.clone(), filter("1", "10.0.0.0/8", "10.2.0.0/16")]);
    assert_ne!(before.1, export_changed.1, "an export rule changed");
    let with = |at| {
        digests(vec![
            pool.clone(),
            filter("1", "10.0.0.0/8", "10.1.0.0/16"),
            report(at),
        ])
    };
    assert_eq!(with("1"), with("2"), "our own status report was rewritten");
    let other_pool = resource("IPPool", "p", json!({"cidr": "10.9.0.0/16"}));
    assert_ne!(
        before.1,
        digests(vec![other_pool, filter("1", "10.0.0.0/8", "10.1.0.0/16")]).1,
        "another resource changed"
    );
}
