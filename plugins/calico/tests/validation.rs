//! Calico's validation rules: every invalid resource is refused with a
//! problem naming the resource, the field and the reason; valid ones load.

use serde_json::{Value, json};
use starling_calico::Calico;
use starling_plugin_sdk::{Object, Snapshot};

fn resource(kind: &str, name: &str, spec: Value) -> Object {
    Object::new(kind, name, spec.to_string())
}

/// Load one resource and expect exactly one problem at `field`, whose
/// reason contains `reason`.
fn refused(kind: &str, name: &str, spec: Value, field: &str, reason: &str) {
    let problems = Calico::load(vec![resource(kind, name, spec.clone())])
        .expect_err(&format!("{kind} {name} {spec} should be refused"));
    assert!(
        problems.iter().any(|p| p.kind == kind
            && p.name == name
            && p.field == field
            && p.reason.contains(reason)),
        "{kind} {spec}: want {field}: {reason}; got {problems:?}"
    );
}

#[test]
fn nodes() {
    refused(
        "Node",
        "a",
        json!({"bgp": {}}),
        "spec.bgp",
        "Spec.BGP should not be empty",
    );
    refused(
        "Node",
        "a",
        json!({"bgp": {"asNumber": "x"}}),
        "spec.bgp.asNumber",
        "invalid AS Number format",
    );
    refused(
        "Node",
        "a",
        json!({"bgp": {"ipv4Address": "fd00::1/64"}}),
        "spec.bgp.ipv4Address",
        "not an IPv4",
    );
    refused(
        "Node",
        "a",
        json!({"bgp": {"ipv6Address": "10.0.0.1"}}),
        "spec.bgp.ipv6Address",
        "not an IPv6",
    );
    refused(
        "Node",
        "a",
        json!({"bgp": {"ipv4Address": "10.0.0.1/40"}}),
        "spec.bgp.ipv4Address",
        "prefix length",
    );
    refused(
        "Node",
        "a",
        json!({"bgp": {"routeReflectorClusterID": "cluster-1"}}),
        "spec.bgp.routeReflectorClusterID",
        "not an IPv4",
    );
    refused(
        "Node",
        "a",
        json!({"bgp": {"ipv4Adress": "10.0.0.1"}}),
        "spec.bgp.ipv4Adress",
        "unknown field",
    );
    refused(
        "Node",
        "Node_1",
        json!({}),
        "metadata.name",
        "not a valid name",
    );
}

#[test]
fn bgp_configurations() {
    for field in [
        "nodeToNodeMeshEnabled",
        "asNumber",
        "serviceClusterIPs",
        "nodeMeshPassword",
        "nodeMeshMaxRestartTime",
    ] {
        let value = match field {
            "nodeToNodeMeshEnabled" => json!(false),
            "asNumber" => json!(64512),
            "serviceClusterIPs" => json!([{"cidr": "10.96.0.0/12"}]),
            "nodeMeshPassword" => json!({"secretKeyRef": {"name": "s", "key": "k"}}),
            _ => json!("120s"),
        };
        refused(
            "BGPConfiguration",
            "node.a",
            json!({ field: value }),
            &format!("spec.{field}"),
            &format!("Cannot set {field} on a non default BGP Configuration"),
        );
    }
    refused(
        "BGPConfiguration",
        "default",
        json!({"logSeverityScreen": "Loud"}),
        "spec.logSeverityScreen",
        "not one of",
    );
    refused(
        "BGPConfiguration",
        "default",
        json!({"listenPort": 0}),
        "spec.listenPort",
        "1-65535",
    );
    refused(
        "BGPConfiguration",
        "default",
        json!({"listenPort": 70000}),
        "spec.listenPort",
        "0-65535",
    );
    refused(
        "BGPConfiguration",
        "default",
        json!({"bindMode": "All"}),
        "spec.bindMode",
        "None or NodeIP",
    );
    refused(
        "BGPConfiguration",
        "default",
        json!({"ignoredInterfaces": ["*"]}),
        "spec.ignoredInterfaces[0]",
        "every interface",
    );
    refused(
        "BGPConfiguration",
        "default",
        json!({"nodeToNodeMeshEnabled": false, "nodeMeshPassword": {"secretKeyRef": {"name": "s", "key": "k"}}}),
        "spec.nodeMeshPassword",
        "nodeToNodeMeshEnabled is false",
    );
    refused(
        "BGPConfiguration",
        "default",
        json!({"communities": [{"name": "c", "value": "1:2"}]}),
        "spec.communities",
        "prefixAdvertisements, which is empty",
    );
    refused(
        "BGPConfiguration",
        "default",
        json!({"prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["nope"]}]}),
        "spec.prefixAdvertisements[0].communities[0]",
        "neither a community value nor a name",
    );
    refused(
        "BGPConfiguration",
        "default",
        json!({"communities": [{"name": "c", "value": "70000:1"}], "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c"]}]}),
        "spec.communities[0].value",
        "not a community",
    );
    refused(
        "BGPConfiguration",
        "default",
        json!({"nodeMeshMaxRestartTime": "soon"}),
        "spec.nodeMeshMaxRestartTime",
        "invalid duration",
    );
    // Valid: a named community used by an advertisement, asdot AS.
    Calico::load(vec![resource(
        "BGPConfiguration",
        "default",
        json!({"asNumber": "1.10", "communities": [{"name": "c", "value": "65001:100"}], "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c", "65001:200:300"]}]}),
    )])
    .expect("valid configuration");
}

#[test]
fn bgp_peers() {
    let p = |spec: Value, field: &str, reason: &str| refused("BGPPeer", "p", spec, field, reason);
    p(
        json!({"node": "a", "nodeSelector": "all()", "peerIP": "10.0.0.1", "asNumber": 1}),
        "spec.node",
        "mutually exclusive",
    );
    p(
        json!({"peerIP": "10.0.0.1", "peerSelector": "all()"}),
        "spec.peerIP",
        "mutually exclusive",
    );
    p(
        json!({"peerSelector": "all()", "asNumber": 65000}),
        "spec.asNumber",
        "must be empty when peerSelector",
    );
    p(
        json!({"peerIP": "10.0.0.1:0", "asNumber": 1}),
        "spec.peerIP",
        "port must be 1-65535",
    );
    p(
        json!({"peerIP": "not-an-ip", "asNumber": 1}),
        "spec.peerIP",
        "not an IP address",
    );
    p(
        json!({"nodeSelector": "rack == r1", "peerIP": "10.0.0.1", "asNumber": 1}),
        "spec.nodeSelector",
        "expected string",
    );
    p(
        json!({"peerSelector": "a & b"}),
        "spec.peerSelector",
        "invalid selector",
    );
    p(
        json!({"localWorkloadSelector": "all()"}),
        "spec.asNumber",
        "required with localWorkloadSelector",
    );
    p(
        json!({"localWorkloadSelector": "all()", "peerIP": "10.0.0.1", "asNumber": 1}),
        "spec.localWorkloadSelector",
        "cannot be combined",
    );
    p(
        json!({"peerSelector": "all()", "reachableBy": "10.0.0.254"}),
        "spec.reachableBy",
        "needs peerIP",
    );
    p(
        json!({"peerIP": "fd00::1", "asNumber": 1, "reachableBy": "10.0.0.254"}),
        "spec.reachableBy",
        "same address family",
    );
    p(
        json!({"peerIP": "10.0.0.1", "asNumber": 1, "keepOriginalNextHop": true, "nextHopMode": "Self"}),
        "spec.nextHopMode",
        "keepOriginalNextHop",
    );
    p(
        json!({"peerIP": "10.0.0.1", "asNumber": 1, "nextHopMode": "Always"}),
        "spec.nextHopMode",
        "Auto, Self or Keep",
    );
    p(
        json!({"peerIP": "10.0.0.1", "asNumber": 1, "sourceAddress": "Any"}),
        "spec.sourceAddress",
        "UseNodeIP or None",
    );
    p(
        json!({"peerIP": "10.0.0.1", "asNumber": 1, "ttlSecurity": 256}),
        "spec.ttlSecurity",
        "0-255",
    );
    p(
        json!({"peerIP": "10.0.0.1", "asNumber": 1, "reversePeering": "Off"}),
        "spec.reversePeering",
        "Auto or Manual",
    );
    p(
        json!({"peerIP": "10.0.0.1", "asNumber": 1, "filters": ["Bad_Name"]}),
        "spec.filters[0]",
        "not a valid name",
    );
    p(
        json!({"peerIP": "10.0.0.1", "asNumber": 1, "password": {"secretKeyRef": {"name": "s"}}}),
        "spec.password.secretKeyRef",
        "needs both name and key",
    );
    p(
        json!({"peerIP": "10.0.0.1", "asNumber": 1, "maxRestartTime": "2"}),
        "spec.maxRestartTime",
        "missing unit",
    );
    p(
        json!({"peerIP": "10.0.0.1", "asNumber": 1, "peerIp": "x"}),
        "spec.peerIp",
        "unknown field",
    );
    p(json!({"node": "a"}), "spec", "nothing to peer with");
}

#[test]
fn bgp_filters() {
    let f = |rule: Value, field: &str, reason: &str| {
        refused("BGPFilter", "f", json!({"exportV4": [rule]}), field, reason)
    };
    f(
        json!({"cidr": "10.0.0.0/8", "matchOperator": "In"}),
        "spec.exportV4[0].action",
        "is required",
    );
    f(
        json!({"action": "Accept", "cidr": "10.0.0.0/8"}),
        "spec.exportV4[0].cidr",
        "set together",
    );
    f(
        json!({"action": "Accept", "cidr": "fd00::/8", "matchOperator": "In"}),
        "spec.exportV4[0].cidr",
        "not an IPv4 CIDR",
    );
    f(
        json!({"action": "Accept", "cidr": "10.0.0.0/8", "matchOperator": "Near"}),
        "spec.exportV4[0].matchOperator",
        "Equal, NotEqual, In or NotIn",
    );
    f(
        json!({"action": "Accept", "prefixLength": {"max": 24}}),
        "spec.exportV4[0].prefixLength",
        "needs cidr",
    );
    f(
        json!({"action": "Accept", "cidr": "10.0.0.0/8", "matchOperator": "In", "prefixLength": {"max": 33}}),
        "spec.exportV4[0].prefixLength.max",
        "0-32",
    );
    f(
        json!({"action": "Accept", "source": "Kernel"}),
        "spec.exportV4[0].source",
        "RemotePeers",
    );
    f(
        json!({"action": "Accept", "interface": "way-too-long-iface"}),
        "spec.exportV4[0].interface",
        "not an interface",
    );
    f(
        json!({"action": "Accept", "peerType": "eBGP2"}),
        "spec.exportV4[0].peerType",
        "eBGP or iBGP",
    );
    f(
        json!({"action": "Accept", "communities": {"values": ["1:1", "2:2"]}}),
        "spec.exportV4[0].communities.values",
        "exactly one",
    );
    f(
        json!({"action": "Reject", "operations": [{"setPriority": {"value": 5}}]}),
        "spec.exportV4[0].operations",
        "only allowed with action: Accept",
    );
    f(
        json!({"action": "Accept", "operations": [{"setPriority": {"value": 5}, "addCommunity": {"value": "1:1"}}]}),
        "spec.exportV4[0].operations[0]",
        "exactly one of",
    );
    f(
        json!({"action": "Accept", "operations": [{"prependASPath": {"prefix": []}}]}),
        "spec.exportV4[0].operations[0].prependASPath.prefix",
        "1-10",
    );
    f(
        json!({"action": "Accept", "priority": 0}),
        "spec.exportV4[0].priority",
        "1-2147483646",
    );
}

#[test]
fn every_problem_is_reported_and_nothing_loads() {
    let problems = Calico::load(vec![
        resource("Node", "a", json!({"bgp": {"asNumber": "x"}})),
        resource(
            "BGPPeer",
            "p",
            json!({"peerSelector": "all()", "asNumber": 1}),
        ),
        resource("Node", "a", json!({})),
    ])
    .expect_err("refused");
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(
        problems[0].to_string(),
        "Node 'a', field spec.bgp.asNumber: invalid AS Number format: 'x'"
    );
    assert!(problems[2].reason.contains("defined more than once"));
}

#[test]
fn kinds_of_other_plugins_are_left_alone() {
    Calico::load(vec![resource(
        "Rack",
        "Not_A_Calico_Name",
        json!({"anything": 1}),
    )])
    .expect("unknown kinds are ignored");
}
