//! Table-driven scenarios from calico-model.md §2: each asserts the exact
//! session list Calico would configure on one node.
//!
//! Over 800 lines on purpose: one scenario per rule of the model, in the
//! model's order, so a rule's test is found where the rule is.
//!
//! Sessions come mesh first, then global, then node-specific, each by
//! address. A session renders as one line: its name, then only what differs from
//! the plain case: `as=` (peer AS) and `local=` always, then `port=`, `passive`,
//! `rr-client=<cluster>`, `src=none`, `pw=<secret>/<key>`, `gr=`, `ka=`,
//! `ttl=`, `nh=self|keep`, `allow=`, `filters=`, `via=`.

use serde_json::{Value, json};
use starling_calico::Calico;
use starling_plugin_sdk::{
    AsAssignment, Family, NextHopMode, NodeFacts, Object, PeerSelection, Snapshot,
};

fn resource(kind: &str, name: &str, labels: Value, spec: Value) -> Object {
    let labels = labels.as_object().cloned().unwrap_or_default();
    Object::new(kind, name, spec.to_string()).with_labels(
        labels
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned())),
    )
}

/// A node at 192.0.2.`n`/24 and 2001:db8::`n`/64 (either may be left out).
fn node(name: &str, v4: Option<u8>, v6: Option<u8>) -> Object {
    node_with(name, v4, v6, json!({}), json!({}))
}

fn node_with(name: &str, v4: Option<u8>, v6: Option<u8>, labels: Value, bgp: Value) -> Object {
    let mut bgp = bgp.as_object().cloned().unwrap_or_default();
    if let Some(n) = v4 {
        bgp.insert("ipv4Address".into(), json!(format!("192.0.2.{n}/24")));
    }
    if let Some(n) = v6 {
        bgp.insert("ipv6Address".into(), json!(format!("2001:db8::{n:x}/64")));
    }
    resource("Node", name, labels, json!({ "bgp": bgp }))
}

fn rr(name: &str, v4: u8, cluster: &str) -> Object {
    node_with(
        name,
        Some(v4),
        None,
        json!({"route-reflector": "true"}),
        json!({"routeReflectorClusterID": cluster}),
    )
}

fn config(spec: Value) -> Object {
    resource("BGPConfiguration", "default", json!({}), spec)
}

fn no_mesh() -> Object {
    config(json!({"nodeToNodeMeshEnabled": false}))
}

fn peer(name: &str, spec: Value) -> Object {
    resource("BGPPeer", name, json!({}), spec)
}

fn filter(name: &str, spec: Value) -> Object {
    resource("BGPFilter", name, json!({}), spec)
}

fn plan_lines(objects: &[Object], me: &str, family: Family) -> Vec<String> {
    let calico = Calico::load(objects.to_vec()).unwrap_or_else(|p| panic!("invalid: {p:?}"));
    let facts = calico.facts();
    let plan = calico
        .plan(&facts, &[me.to_owned()], family)
        .expect("plan")
        .remove(0);
    let my_ip = calico.model.nodes[me].address(family);
    plan.sessions
        .iter()
        .map(|s| {
            assert_eq!(s.family, family);
            if let Some(src) = &s.source_address {
                assert_eq!(Some(src.parse().expect("ip")), my_ip, "{}", s.name);
            }
            let mut line = format!("{} as={} local={}", s.name, s.peer_as, s.local_as);
            if let Some(port) = s.peer_port {
                line += &format!(" port={port}");
            }
            if s.passive {
                line += " passive";
            }
            if s.rr_client {
                line += &format!(" rr-client={}", s.rr_cluster_id.as_deref().unwrap_or("?"));
            }
            if s.source_address.is_none() {
                line += " src=none";
            }
            if let Some(pw) = &s.password {
                line += &format!(" pw={}/{}", pw.name, pw.key);
            }
            if let Some(t) = s.graceful_restart_time {
                line += &format!(" gr={t}");
            }
            if let Some(t) = s.keepalive_time {
                line += &format!(" ka={t}");
            }
            if let Some(t) = s.ttl_security {
                line += &format!(" ttl={t}");
            }
            match s.next_hop {
                NextHopMode::Auto => {}
                NextHopMode::SetSelf => line += " nh=self",
                NextHopMode::Keep => line += " nh=keep",
            }
            if let Some(n) = s.allow_local_as {
                line += &format!(" allow={n}");
            }
            if !s.filters.is_empty() {
                line += &format!(" filters={}", s.filters.join(","));
            }
            if let Some(via) = &s.reachable_by {
                line += &format!(" via={via}");
            }
            line
        })
        .collect()
}

fn v4(objects: &[Object], me: &str) -> Vec<String> {
    plan_lines(objects, me, Family::Ipv4)
}

fn v6(objects: &[Object], me: &str) -> Vec<String> {
    plan_lines(objects, me, Family::Ipv6)
}

// ===== node-to-node mesh (§2.2) =====

#[test]
fn s01_a_single_node_has_no_sessions() {
    assert!(v4(&[node("a", Some(1), None)], "a").is_empty());
}

#[test]
fn s02_two_node_mesh_and_the_lexical_passive_rule() {
    let nodes = [node("a", Some(1), None), node("b", Some(2), None)];
    assert_eq!(
        v4(&nodes, "a"),
        ["Mesh_192_0_2_2 as=64512 local=64512 passive"]
    );
    assert_eq!(v4(&nodes, "b"), ["Mesh_192_0_2_1 as=64512 local=64512"]);
}

#[test]
fn s03_passive_compares_text_not_numbers() {
    // "192.0.2.10" < "192.0.2.9" as text, though 10 > 9 as a number.
    let nodes = [node("a", Some(9), None), node("b", Some(10), None)];
    assert_eq!(v4(&nodes, "a"), ["Mesh_192_0_2_10 as=64512 local=64512"]);
    assert_eq!(
        v4(&nodes, "b"),
        ["Mesh_192_0_2_9 as=64512 local=64512 passive"]
    );
}

#[test]
fn s04_five_node_mesh() {
    let nodes: Vec<Object> = (1..=5)
        .map(|i| node(&format!("n{i}"), Some(i), None))
        .collect();
    let lines = v4(&nodes, "n3");
    assert_eq!(
        lines,
        [
            "Mesh_192_0_2_1 as=64512 local=64512",
            "Mesh_192_0_2_2 as=64512 local=64512",
            "Mesh_192_0_2_4 as=64512 local=64512 passive",
            "Mesh_192_0_2_5 as=64512 local=64512 passive",
        ]
    );
}

#[test]
fn s05_fifty_node_mesh_has_every_other_node_once() {
    let nodes: Vec<Object> = (1..=50)
        .map(|i| node(&format!("n{i:02}"), Some(i), None))
        .collect();
    for me in ["n01", "n25", "n50"] {
        let lines = v4(&nodes, me);
        assert_eq!(lines.len(), 49, "{me}");
        let passive = lines.iter().filter(|l| l.ends_with("passive")).count();
        let my = me[1..].parse::<u8>().expect("n");
        let above = (1..=50u8)
            .filter(|&i| i != my && format!("192.0.2.{i}") > format!("192.0.2.{my}"))
            .count();
        assert_eq!(passive, above, "{me}");
    }
}

#[test]
fn s06_mesh_disabled_gives_no_sessions() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        no_mesh(),
    ];
    assert!(v4(&objects, "a").is_empty());
}

#[test]
fn s07_mesh_password_and_restart_time() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        config(json!({
            "nodeMeshPassword": {"secretKeyRef": {"name": "bgp", "key": "mesh"}},
            "nodeMeshMaxRestartTime": "2m",
        })),
    ];
    assert_eq!(
        v4(&objects, "b"),
        ["Mesh_192_0_2_1 as=64512 local=64512 pw=bgp/mesh gr=120"]
    );
}

#[test]
fn s08_a_node_without_an_address_in_the_family_is_skipped() {
    let objects = [
        node("a", Some(1), Some(1)),
        node("b", None, Some(2)),
        node("c", Some(3), None),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Mesh_192_0_2_3 as=64512 local=64512 passive"]
    );
    assert_eq!(
        v6(&objects, "a"),
        ["Mesh_2001_db8__2 as=64512 local=64512 passive"]
    );
    assert!(
        v4(&objects, "b").is_empty(),
        "b has no IPv4: no IPv4 sessions"
    );
}

#[test]
fn s09_dual_stack_families_are_independent() {
    let objects = [node("a", Some(1), Some(1)), node("b", Some(2), Some(2))];
    assert_eq!(
        v4(&objects, "a"),
        ["Mesh_192_0_2_2 as=64512 local=64512 passive"]
    );
    assert_eq!(
        v6(&objects, "a"),
        ["Mesh_2001_db8__2 as=64512 local=64512 passive"]
    );
}

#[test]
fn s10_ipv6_only_mesh_names_use_underscores() {
    let objects = [node("a", None, Some(0xa)), node("b", None, Some(0xb))];
    assert_eq!(v6(&objects, "b"), ["Mesh_2001_db8__a as=64512 local=64512"]);
}

// ===== AS numbers =====

#[test]
fn s11_per_node_as_and_cluster_default() {
    let objects = [
        node_with("a", Some(1), None, json!({}), json!({"asNumber": 65001})),
        node("b", Some(2), None),
        config(json!({"asNumber": "64600"})),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Mesh_192_0_2_2 as=64600 local=65001 passive"]
    );
    assert_eq!(v4(&objects, "b"), ["Mesh_192_0_2_1 as=65001 local=64600"]);
}

#[test]
fn s12_asdot_numbers() {
    let objects = [
        node_with("a", Some(1), None, json!({}), json!({"asNumber": "1.10"})),
        node("b", Some(2), None),
    ];
    assert_eq!(v4(&objects, "b"), ["Mesh_192_0_2_1 as=65546 local=64512"]);
}

// ===== ports (§2.5) =====

#[test]
fn s13_global_listen_port_applies_to_mesh_peers() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        config(json!({"listenPort": 1790})),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Mesh_192_0_2_2 as=64512 local=64512 port=1790 passive"]
    );
}

#[test]
fn s14_per_node_listen_port_override() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        node("c", Some(3), None),
        config(json!({"listenPort": 1790})),
        resource(
            "BGPConfiguration",
            "node.c",
            json!({}),
            json!({"listenPort": 1791}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        [
            "Mesh_192_0_2_2 as=64512 local=64512 port=1790 passive",
            "Mesh_192_0_2_3 as=64512 local=64512 port=1791 passive",
        ]
    );
}

#[test]
fn s15_explicit_peer_port() {
    let objects = [
        node("a", Some(1), None),
        no_mesh(),
        peer(
            "tor",
            json!({"peerIP": "198.51.100.1:1790", "asNumber": 65000}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Global_198_51_100_1_port_1790 as=65000 local=64512 port=1790"]
    );
}

#[test]
fn s16_port_inferred_from_the_node_at_the_peer_ip() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        no_mesh(),
        resource(
            "BGPConfiguration",
            "node.b",
            json!({}),
            json!({"listenPort": 1800}),
        ),
        peer(
            "to-b",
            json!({"node": "a", "peerIP": "192.0.2.2", "asNumber": 64512}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Node_192_0_2_2_port_1800 as=64512 local=64512 port=1800"]
    );
}

#[test]
fn s17_port_inference_needs_a_matching_as() {
    // The node at the address has AS 64512; the peer says 65000, so the
    // node's port is not borrowed and the global one (none) applies.
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        no_mesh(),
        resource(
            "BGPConfiguration",
            "node.b",
            json!({}),
            json!({"listenPort": 1800}),
        ),
        peer(
            "to-b",
            json!({"node": "a", "peerIP": "192.0.2.2", "asNumber": 65000}),
        ),
    ];
    assert_eq!(v4(&objects, "a"), ["Node_192_0_2_2 as=65000 local=64512"]);
}

#[test]
fn s17b_a_peer_that_is_not_a_node_is_dialled_at_179() {
    // The global listen port is where *we* listen. A router that is not a
    // Calico node lends no port, so none is inferred (confd:
    // explicit_peering/global-external).
    let objects = [
        node("a", Some(1), None),
        config(json!({"nodeToNodeMeshEnabled": false, "listenPort": 1790})),
        peer("tor", json!({"peerIP": "198.51.100.1", "asNumber": 65000})),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Global_198_51_100_1 as=65000 local=64512"]
    );
}

// ===== explicit peers (§2.3) =====

#[test]
fn s18_global_peer_reaches_every_node() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        no_mesh(),
        peer("tor", json!({"peerIP": "198.51.100.1", "asNumber": 65000})),
    ];
    for me in ["a", "b"] {
        assert_eq!(
            v4(&objects, me),
            ["Global_198_51_100_1 as=65000 local=64512"]
        );
    }
}

#[test]
fn s19_node_specific_peer() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        no_mesh(),
        peer(
            "a-tor",
            json!({"node": "a", "peerIP": "198.51.100.1", "asNumber": 65000}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Node_198_51_100_1 as=65000 local=64512"]
    );
    assert!(v4(&objects, "b").is_empty());
}

#[test]
fn s20_tor_peering_by_node_selector() {
    let objects = [
        node_with("a", Some(1), None, json!({"rack": "r1"}), json!({})),
        node_with("b", Some(2), None, json!({"rack": "r2"}), json!({})),
        no_mesh(),
        peer(
            "r1-tor",
            json!({"nodeSelector": "rack == 'r1'", "peerIP": "198.51.100.1", "asNumber": 65001}),
        ),
        peer(
            "r2-tor",
            json!({"nodeSelector": "rack == 'r2'", "peerIP": "198.51.100.2", "asNumber": 65002}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Node_198_51_100_1 as=65001 local=64512"]
    );
    assert_eq!(
        v4(&objects, "b"),
        ["Node_198_51_100_2 as=65002 local=64512"]
    );
}

#[test]
fn s21_global_beats_node_specific_for_the_same_address() {
    let objects = [
        node("a", Some(1), None),
        no_mesh(),
        peer(
            "g",
            json!({"peerIP": "198.51.100.1", "asNumber": 65000, "keepaliveTime": "10s"}),
        ),
        peer(
            "n",
            json!({"node": "a", "peerIP": "198.51.100.1", "asNumber": 65000, "keepaliveTime": "20s"}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Global_198_51_100_1 as=65000 local=64512 ka=10"]
    );
}

#[test]
fn s22_duplicates_within_a_pass_go_to_the_first_name() {
    let objects = [
        node("a", Some(1), None),
        no_mesh(),
        peer(
            "zz",
            json!({"node": "a", "peerIP": "198.51.100.1", "asNumber": 65009}),
        ),
        peer(
            "aa",
            json!({"node": "a", "peerIP": "198.51.100.1", "asNumber": 65001}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Node_198_51_100_1 as=65001 local=64512"]
    );
}

#[test]
fn s23_same_address_different_ports_are_different_sessions() {
    let objects = [
        node("a", Some(1), None),
        no_mesh(),
        peer("p1", json!({"peerIP": "198.51.100.1", "asNumber": 65000})),
        peer(
            "p2",
            json!({"peerIP": "198.51.100.1:1790", "asNumber": 65000}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        [
            "Global_198_51_100_1 as=65000 local=64512",
            "Global_198_51_100_1_port_1790 as=65000 local=64512 port=1790",
        ]
    );
}

#[test]
fn s24_never_peer_with_yourself() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        no_mesh(),
        peer("all", json!({"peerSelector": "all()"})),
    ];
    // Not passive: Calico's lexical rule covers peerIP entries only, never
    // nodes a peerSelector picks (confd: ttl_security/global).
    assert_eq!(v4(&objects, "a"), ["Global_192_0_2_2 as=64512 local=64512"]);
}

#[test]
fn s25_every_option_is_carried_onto_the_session() {
    let objects = [
        node("a", Some(1), None),
        no_mesh(),
        filter(
            "f4",
            json!({"exportV4": [{"action": "Reject", "cidr": "10.0.0.0/8", "matchOperator": "In"}]}),
        ),
        filter(
            "f6-only",
            json!({"exportV6": [{"action": "Reject", "cidr": "fd00::/8", "matchOperator": "In"}]}),
        ),
        peer(
            "full",
            json!({
                "node": "a",
                "peerIP": "198.51.100.1",
                "asNumber": 65000,
                "localASNumber": 65100,
                "password": {"secretKeyRef": {"name": "bgp-secrets", "key": "tor"}},
                "maxRestartTime": "90s",
                "keepaliveTime": "20s",
                "ttlSecurity": 1,
                "numAllowedLocalASNumbers": 2,
                "nextHopMode": "Self",
                "reachableBy": "192.0.2.254",
                "filters": ["f4", "f6-only", "missing"],
            }),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        [
            "Node_198_51_100_1 as=65000 local=65100 pw=bgp-secrets/tor gr=90 ka=20 ttl=1 nh=self allow=2 filters=f4 via=192.0.2.254"
        ]
    );
}

#[test]
fn s26_source_address_none() {
    let objects = [
        node("a", Some(1), None),
        no_mesh(),
        peer(
            "p",
            json!({"peerIP": "198.51.100.1", "asNumber": 65000, "sourceAddress": "None"}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Global_198_51_100_1 as=65000 local=64512 src=none"]
    );
}

#[test]
fn s27_keep_original_next_hop_applies_to_ebgp_only() {
    let objects = [
        node("a", Some(1), None),
        no_mesh(),
        peer(
            "e",
            json!({"peerIP": "198.51.100.1", "asNumber": 65000, "keepOriginalNextHop": true}),
        ),
        peer(
            "i",
            json!({"peerIP": "198.51.100.2", "asNumber": 64512, "keepOriginalNextHop": true}),
        ),
        peer(
            "k",
            json!({"peerIP": "198.51.100.3", "asNumber": 64512, "nextHopMode": "Keep"}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        [
            "Global_198_51_100_1 as=65000 local=64512 nh=keep",
            "Global_198_51_100_2 as=64512 local=64512",
            "Global_198_51_100_3 as=64512 local=64512 nh=keep",
        ]
    );
}

#[test]
fn s28_ttl_security_zero_is_off() {
    let objects = [
        node("a", Some(1), None),
        no_mesh(),
        peer(
            "p",
            json!({"peerIP": "198.51.100.1", "asNumber": 65000, "ttlSecurity": 0}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Global_198_51_100_1 as=65000 local=64512"]
    );
}

#[test]
fn s29_a_peer_ip_in_the_other_family_makes_no_session() {
    let objects = [
        node("a", Some(1), Some(1)),
        no_mesh(),
        peer(
            "p6",
            json!({"peerIP": "2001:db8:ffff::1", "asNumber": 65000}),
        ),
    ];
    assert!(v4(&objects, "a").is_empty());
    assert_eq!(
        v6(&objects, "a"),
        ["Global_2001_db8_ffff__1 as=65000 local=64512"]
    );
}

#[test]
fn s30_ipv6_peer_with_port() {
    let objects = [
        node("a", None, Some(1)),
        no_mesh(),
        peer(
            "p6",
            json!({"peerIP": "[2001:db8:ffff::1]:1790", "asNumber": 65000}),
        ),
    ];
    assert_eq!(
        v6(&objects, "a"),
        ["Global_2001_db8_ffff__1_port_1790 as=65000 local=64512 port=1790"]
    );
}

// ===== route reflectors (§2.4, §2.6) =====

/// The standard recipe: RRs labelled and clustered, mesh off, one BGPPeer
/// from every node to the RRs.
fn rr_recipe(global: bool) -> Vec<Object> {
    let mut spec = json!({"peerSelector": "route-reflector == 'true'"});
    if !global {
        spec["nodeSelector"] = json!("all()");
    }
    vec![
        rr("rr1", 101, "244.0.0.1"),
        rr("rr2", 102, "244.0.0.1"),
        node("c1", Some(1), None),
        node("c2", Some(2), None),
        no_mesh(),
        peer("peer-with-rrs", spec),
    ]
}

#[test]
fn s31_rr_recipe_clients_peer_with_every_reflector() {
    assert_eq!(
        v4(&rr_recipe(false), "c1"),
        [
            "Node_192_0_2_101 as=64512 local=64512",
            "Node_192_0_2_102 as=64512 local=64512",
        ]
    );
}

#[test]
fn s32_rr_recipe_reflectors_serve_clients_and_each_other() {
    assert_eq!(
        v4(&rr_recipe(false), "rr1"),
        [
            "Node_192_0_2_1 as=64512 local=64512 rr-client=244.0.0.1",
            "Node_192_0_2_2 as=64512 local=64512 rr-client=244.0.0.1",
            "Node_192_0_2_102 as=64512 local=64512",
        ]
    );
}

#[test]
fn s33_rr_recipe_global_variant() {
    let objects = rr_recipe(true);
    // Clients see the reflectors as global peers, both ends active: the
    // lexical passive rule is for peerIP entries, not selected nodes.
    assert_eq!(
        v4(&objects, "c1"),
        [
            "Global_192_0_2_101 as=64512 local=64512",
            "Global_192_0_2_102 as=64512 local=64512",
        ]
    );
    // Reflector to reflector is global; reflector to client is node
    // specific (the reverse peering).
    assert_eq!(
        v4(&objects, "rr1"),
        [
            "Global_192_0_2_102 as=64512 local=64512",
            "Node_192_0_2_1 as=64512 local=64512 rr-client=244.0.0.1",
            "Node_192_0_2_2 as=64512 local=64512 rr-client=244.0.0.1",
        ]
    );
}

#[test]
fn s34_reflectors_with_different_clusters_are_each_others_clients() {
    let mut objects = rr_recipe(false);
    objects[1] = rr("rr2", 102, "244.0.0.2");
    assert_eq!(
        v4(&objects, "rr1"),
        [
            "Node_192_0_2_1 as=64512 local=64512 rr-client=244.0.0.1",
            "Node_192_0_2_2 as=64512 local=64512 rr-client=244.0.0.1",
            "Node_192_0_2_102 as=64512 local=64512 rr-client=244.0.0.1",
        ]
    );
}

#[test]
fn s35_reflectors_leave_the_mesh_both_ways() {
    let objects = [
        rr("rr1", 101, "244.0.0.1"),
        node("a", Some(1), None),
        node("b", Some(2), None),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Mesh_192_0_2_2 as=64512 local=64512 passive"]
    );
    assert!(v4(&objects, "rr1").is_empty());
}

#[test]
fn s36_an_ibgp_peer_ip_of_a_reflector_is_a_client_ebgp_is_not() {
    let objects = [
        rr("rr1", 101, "244.0.0.1"),
        no_mesh(),
        peer(
            "ext-i",
            json!({"node": "rr1", "peerIP": "198.51.100.1", "asNumber": 64512}),
        ),
        peer(
            "ext-e",
            json!({"node": "rr1", "peerIP": "198.51.100.2", "asNumber": 65000}),
        ),
    ];
    assert_eq!(
        v4(&objects, "rr1"),
        [
            "Node_198_51_100_1 as=64512 local=64512 rr-client=244.0.0.1",
            "Node_198_51_100_2 as=65000 local=64512",
        ]
    );
}

#[test]
fn s37_a_non_reflector_never_marks_clients() {
    let objects = [
        rr("rr1", 101, "244.0.0.1"),
        node("c1", Some(1), None),
        no_mesh(),
        peer(
            "to-rr",
            json!({"node": "c1", "peerIP": "192.0.2.101", "asNumber": 64512}),
        ),
    ];
    assert_eq!(
        v4(&objects, "c1"),
        ["Node_192_0_2_101 as=64512 local=64512"]
    );
}

// ===== reverse peering (§2.4) =====

#[test]
fn s38_reverse_peering_for_a_peer_ip_that_is_a_node() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        no_mesh(),
        peer(
            "a-to-b",
            json!({"node": "a", "peerIP": "192.0.2.2", "asNumber": 64512}),
        ),
    ];
    assert_eq!(v4(&objects, "a"), ["Node_192_0_2_2 as=64512 local=64512"]);
    assert_eq!(v4(&objects, "b"), ["Node_192_0_2_1 as=64512 local=64512"]);
}

#[test]
fn s39_reverse_peering_needs_the_nodes_as() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        no_mesh(),
        peer(
            "a-to-b",
            json!({"node": "a", "peerIP": "192.0.2.2", "asNumber": 65000}),
        ),
    ];
    assert!(v4(&objects, "b").is_empty(), "b's AS is 64512, not 65000");
}

#[test]
fn s40_reverse_peering_manual_turns_the_mirror_off() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        no_mesh(),
        peer(
            "a-to-b",
            json!({"node": "a", "peerIP": "192.0.2.2", "asNumber": 64512, "reversePeering": "Manual"}),
        ),
    ];
    assert_eq!(v4(&objects, "a"), ["Node_192_0_2_2 as=64512 local=64512"]);
    assert!(v4(&objects, "b").is_empty());
}

#[test]
fn s41_reverse_of_a_global_peer_reaches_all_nodes() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        node("c", Some(3), None),
        no_mesh(),
        peer(
            "all-to-c",
            json!({"peerIP": "192.0.2.3", "asNumber": 64512}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Global_192_0_2_3 as=64512 local=64512 passive"]
    );
    assert_eq!(
        v4(&objects, "c"),
        [
            "Node_192_0_2_1 as=64512 local=64512",
            "Node_192_0_2_2 as=64512 local=64512",
        ]
    );
}

#[test]
fn s42_peer_selector_entries_carry_the_remote_nodes_as_and_port() {
    let objects = [
        node_with("a", Some(1), None, json!({"role": "edge"}), json!({})),
        node_with(
            "b",
            Some(2),
            None,
            json!({"role": "core"}),
            json!({"asNumber": 65002}),
        ),
        no_mesh(),
        resource(
            "BGPConfiguration",
            "node.b",
            json!({}),
            json!({"listenPort": 1790}),
        ),
        peer(
            "edge-to-core",
            json!({"nodeSelector": "role == 'edge'", "peerSelector": "role == 'core'"}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Node_192_0_2_2_port_1790 as=65002 local=64512 port=1790"]
    );
    // The reverse on b points at a with a's AS and (no) port.
    assert_eq!(v4(&objects, "b"), ["Node_192_0_2_1 as=64512 local=65002"]);
}

#[test]
fn s43_mesh_and_an_explicit_peer_to_the_same_node_keep_the_mesh() {
    let objects = [
        node("a", Some(1), None),
        node("b", Some(2), None),
        peer(
            "a-to-b",
            json!({"node": "a", "peerIP": "192.0.2.2", "asNumber": 64512}),
        ),
    ];
    let calico = Calico::load(objects.to_vec()).expect("load");
    let facts: Vec<NodeFacts> = calico
        .assign()
        .into_iter()
        .map(|(node, local_as)| NodeFacts {
            node,
            local_as,
            ..NodeFacts::default()
        })
        .collect();
    let plan = calico
        .plan(&facts, &["a".to_owned()], Family::Ipv4)
        .expect("plan")
        .remove(0);
    let names: Vec<&str> = plan.sessions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Mesh_192_0_2_2"]);
    assert_eq!(plan.warnings.len(), 1);
    assert!(plan.warnings[0].contains("a-to-b"), "{}", plan.warnings[0]);
}

#[test]
fn s44_selector_corner_cases_in_peers() {
    let objects = [
        node_with("a", Some(1), None, json!({"zone": "us-east-1a"}), json!({})),
        node_with(
            "b",
            Some(2),
            None,
            json!({"zone": "us-west-2a", "gpu": ""}),
            json!({}),
        ),
        node_with("c", Some(3), None, json!({}), json!({})),
        no_mesh(),
        peer(
            "east",
            json!({"nodeSelector": "zone starts with 'us-east'", "peerIP": "198.51.100.1", "asNumber": 65000}),
        ),
        peer(
            "no-zone",
            json!({"nodeSelector": "!has(zone)", "peerIP": "198.51.100.2", "asNumber": 65000}),
        ),
        peer(
            "gpu",
            json!({"nodeSelector": "has(gpu) && zone not in {'us-east-1a'}", "peerIP": "198.51.100.3", "asNumber": 65000}),
        ),
    ];
    assert_eq!(
        v4(&objects, "a"),
        ["Node_198_51_100_1 as=65000 local=64512"]
    );
    assert_eq!(
        v4(&objects, "b"),
        ["Node_198_51_100_3 as=65000 local=64512"]
    );
    assert_eq!(
        v4(&objects, "c"),
        ["Node_198_51_100_2 as=65000 local=64512"]
    );
}

#[test]
fn s45_planning_an_unknown_node_is_an_error() {
    let calico = Calico::load(vec![node("a", Some(1), None)]).expect("load");
    let err = calico
        .plan(&[], &["ghost".to_owned()], Family::Ipv4)
        .expect_err("unknown");
    assert!(err.contains("ghost"));
}
