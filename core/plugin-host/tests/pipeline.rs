//! The default Calico plugin through the real sandbox, role composition
//! across plugins, last-known-good fallback and hot reload.

use std::time::Duration;

use starling_plugin_host::contract::{Family, Object};
use starling_plugin_host::mend::Remedy;
use starling_plugin_host::pipeline::{Outcome, Policy, Reloading, Roles};
use starling_plugin_host::{ErrorKind, Host, Limits};

fn object(kind: &str, name: &str, labels: &[(&str, &str)], spec: &str) -> Object {
    Object::new(kind, name, spec).with_labels(labels.iter().copied())
}

fn mesh() -> Vec<Object> {
    vec![
        object(
            "Node",
            "a",
            &[("rack", "r1")],
            r#"{"bgp": {"ipv4Address": "192.0.2.1/24"}}"#,
        ),
        object(
            "Node",
            "b",
            &[("rack", "r2")],
            r#"{"bgp": {"ipv4Address": "192.0.2.2/24"}}"#,
        ),
    ]
}

fn host() -> Host {
    Host::new(Limits {
        call_deadline: Duration::from_millis(500),
        ..Limits::default()
    })
    .expect("host")
}

#[test]
fn calico_through_wasm_plans_a_mesh() {
    let host = host();
    let calico = host
        .load("calico", starling_plugins::CALICO)
        .expect("calico");
    let roles = Roles::all(calico.clone());
    roles.check().expect("calico fills every role");
    assert_eq!(calico.contract_version(), "0.3.0");
    let plan = roles.plan(&mesh(), None).expect("plan");
    assert_eq!(plan.facts.len(), 2);
    let a = plan.facts("a").expect("a");
    assert_eq!(a.local_as, 64512);
    assert_eq!(a.router_id.as_deref(), Some("192.0.2.1"), "node identity");
    assert_eq!(plan.nodes[0].node, "a");
    assert_eq!(plan.nodes[0].sessions[0].name, "Mesh_192_0_2_2");
    assert!(plan.nodes[0].sessions[0].passive);
    assert_eq!(plan.nodes[1].sessions[0].name, "Mesh_192_0_2_1");
    assert!(
        plan.nodes
            .iter()
            .flat_map(|p| &p.sessions)
            .all(|s| s.families == [Family::Ipv4]),
        "Calico's sessions carry their own family only"
    );
    assert_eq!(plan.inputs.len(), 2, "a digest pair per session");
    assert!(calico.metrics().snapshot().calls >= 5);
    assert!(
        plan.nodes.iter().all(|p| p.listen_addresses.is_empty()),
        "every address by default"
    );

    // bindMode: NodeIP reaches the host as contract 0.3's listen addresses.
    let mut bound = mesh();
    bound.push(object(
        "BGPConfiguration",
        "default",
        &[],
        r#"{"bindMode": "NodeIP", "listenPort": 1790}"#,
    ));
    let plan = roles.plan(&bound, None).expect("plan");
    let a = &plan.nodes[0];
    assert_eq!(
        a.listen_addresses,
        ["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(a.listen_port, Some(1790));
}

/// One host runs every contract version side by side: what an older
/// plugin cannot say takes the host's defaults.
#[test]
fn every_contract_version_loads() {
    let host = host();
    for (name, bytes, version) in [
        ("calico", starling_plugins::CALICO, "0.3.0"),
        ("fabric", starling_plugins::EXAMPLE_FABRIC, "0.2.0"),
        (
            "as-per-rack",
            starling_plugins::EXAMPLE_AS_PER_RACK,
            "0.1.0",
        ),
    ] {
        let plugin = host.load(name, bytes).expect(name);
        assert_eq!(plugin.contract_version(), version, "{name}");
    }
}

#[test]
fn a_custom_as_plugin_composes_with_calico_peering() {
    let host = host();
    let calico = host
        .load("calico", starling_plugins::CALICO)
        .expect("calico");
    let rack = host
        .load("as-per-rack", starling_plugins::EXAMPLE_AS_PER_RACK)
        .expect("as-per-rack");
    // A 0.1 component for one role beside the 0.3 Calico plugin.
    assert_eq!(rack.contract_version(), "0.1.0");
    let roles = Roles {
        as_assignment: rack,
        ..Roles::all(calico)
    };
    let mut objects = mesh();
    objects.push(object(
        "Rack",
        "r1",
        &[],
        r#"{"asNumber": 65101, "torIP": "198.51.100.1", "torASNumber": 65100}"#,
    ));
    objects.push(object(
        "Rack",
        "r2",
        &[],
        r#"{"asNumber": 65102, "torIP": "198.51.100.2", "torASNumber": 65100}"#,
    ));
    let plan = roles.plan(&objects, Some(&["a".to_owned()])).expect("plan");
    // Calico's mesh, with the AS numbers the rack plugin chose.
    let s = &plan.nodes[0].sessions[0];
    assert_eq!(
        (s.name.as_str(), s.local_as, s.peer_as),
        ("Mesh_192_0_2_2", 65101, 65102)
    );
}

#[test]
fn a_failing_snapshot_keeps_the_last_good_plan() {
    let host = host();
    let calico = host
        .load("calico", starling_plugins::CALICO)
        .expect("calico");
    let mut policy = Policy::new(Roles::all(calico.clone()), None);
    let Outcome::Planned(good) = policy.update(&mesh()) else {
        panic!("the mesh plans");
    };
    let mut bad = mesh();
    bad.push(object(
        "BGPPeer",
        "broken",
        &[],
        r#"{"peerIP": "192.0.2.9", "peerSelector": "all()"}"#,
    ));
    // A resource another writer left invalid is left out, not the plan:
    // the same sessions, and a warning that names it.
    let Outcome::Planned(mended) = policy.update(&bad) else {
        panic!("the rest of the snapshot plans");
    };
    assert_eq!(mended.nodes[0].sessions, good.nodes[0].sessions);
    let skipped = &mended.mended.as_ref().expect("mended").skipped;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].problem.name, "broken");
    assert_eq!(skipped[0].remedy, Remedy::Resource);
    assert!(
        mended.nodes[0]
            .warnings
            .iter()
            .any(|w| w.contains("BGPPeer 'broken'") && w.contains("resource skipped")),
        "{:?}",
        mended.nodes[0].warnings
    );
    // A trapping plugin swapped in also falls back, and the old plugin
    // then recovers the service.
    let hostile = host
        .load("hostile", starling_plugins::TEST_HOSTILE)
        .expect("hostile");
    policy.set_roles(Roles {
        as_assignment: hostile,
        ..Roles::all(calico.clone())
    });
    let mut trap = mesh();
    trap.push(object("Hostile", "h", &[], r#"{"mode": "trap"}"#));
    let Outcome::KeptLastGood { error, plan } = policy.update(&trap) else {
        panic!("a trap must fall back");
    };
    assert_eq!(error.kind(), ErrorKind::Trap);
    assert!(
        error.to_string().contains("hostile plugin asked to trap"),
        "{error}"
    );
    assert_eq!(plan.as_deref(), Some(&*mended));
    policy.set_roles(Roles::all(calico));
    assert!(matches!(policy.update(&mesh()), Outcome::Planned(_)));
}

/// What another writer left in the datastore (calicoctl would have
/// refused it): bad list elements are left out, as confd skips them; a
/// resource edited into something unreadable keeps its last good version;
/// the fixed one is taken as soon as it comes.
#[test]
fn a_datastore_left_partly_invalid_still_plans() {
    let calico = host()
        .load("calico", starling_plugins::CALICO)
        .expect("calico");
    let mut policy = Policy::new(Roles::all(calico), Some(vec!["a".to_owned()]));
    let config = |spec: &str| object("BGPConfiguration", "default", &[], spec);
    let peer = |ip: &str| {
        object(
            "BGPPeer",
            "tor",
            &[],
            &format!(r#"{{"peerIP": "{ip}", "asNumber": 65000}}"#),
        )
    };
    let snapshot = |extra: Vec<Object>| {
        let mut s = mesh();
        s.extend(extra);
        s
    };
    let good = snapshot(vec![
        config(r#"{"nodeToNodeMeshEnabled": false}"#),
        peer("198.51.100.1"),
    ]);
    let Outcome::Planned(first) = policy.update(&good) else {
        panic!("plans");
    };
    assert!(first.mended.is_none());
    let sessions = |plan: &starling_plugin_host::pipeline::Plan| -> Vec<String> {
        plan.nodes[0]
            .sessions
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    assert_eq!(sessions(&first), ["Global_198_51_100_1"]);

    // Another writer: an empty service CIDR, a community given as a
    // number, an unknown field; and the peer edited to a bad address.
    let left = snapshot(vec![
        config(
            r#"{"nodeToNodeMeshEnabled": false, "serviceClusterIPs": [{"cidr": ""}, {"cidr": "10.96.0.0/12"}],
                "prefixAdvertisements": [{"cidr": "192.168.0.0/16", "communities": [12345, "65000:1"]}],
                "addedByANewerCalico": true}"#,
        ),
        peer("198.51.100.300"),
    ]);
    let Outcome::Planned(plan) = policy.update(&left) else {
        panic!("the rest plans");
    };
    // The peer keeps its last good address; the mesh stays off.
    assert_eq!(sessions(&plan), ["Global_198_51_100_1"]);
    let mended = plan.mended.as_ref().expect("mended");
    let mut what: Vec<(String, Remedy)> = mended
        .skipped
        .iter()
        .map(|s| (format!("{} {}", s.problem.name, s.problem.field), s.remedy))
        .collect();
    what.sort();
    assert_eq!(
        what,
        [
            (
                "default spec.addedByANewerCalico".to_owned(),
                Remedy::Element
            ),
            (
                "default spec.prefixAdvertisements[0].communities[0]".to_owned(),
                Remedy::Element
            ),
            (
                "default spec.serviceClusterIPs[0].cidr".to_owned(),
                Remedy::Element
            ),
            ("tor spec.peerIP".to_owned(), Remedy::LastGood),
        ]
    );
    // What the plan was made from: the good elements stay.
    let default = mended
        .objects
        .iter()
        .find(|o| o.name == "default")
        .expect("the configuration stays");
    assert!(default.spec.contains("10.96.0.0/12") && default.spec.contains("65000:1"));
    assert_eq!(
        plan.nodes[0].warnings.len(),
        4,
        "{:?}",
        plan.nodes[0].warnings
    );

    // Fixed: planned as it is, the new address taken.
    let fixed = snapshot(vec![
        config(r#"{"nodeToNodeMeshEnabled": false}"#),
        peer("198.51.100.2"),
    ]);
    let Outcome::Planned(plan) = policy.update(&fixed) else {
        panic!("plans");
    };
    assert!(plan.mended.is_none());
    assert_eq!(sessions(&plan), ["Global_198_51_100_2"]);
}

#[test]
fn hot_reload_swaps_good_builds_and_refuses_bad_ones() {
    let dir = std::env::temp_dir().join(format!("starling-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("policy.wasm");
    std::fs::write(&path, starling_plugins::EXAMPLE_PREFIX_GUARD).expect("write");
    let host = host();
    let mut slot = Reloading::open(&host, "policy", &path).expect("open");
    assert!(!slot.check().expect("unchanged"));
    assert_eq!(slot.current().roles().len(), 1);

    // A broken build is refused; the old plugin keeps serving.
    std::fs::write(&path, b"\0asm garbage").expect("write");
    let err = slot.check().expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Load);
    assert_eq!(slot.current().roles().len(), 1);
    assert!(!slot.check().expect("same broken file is not retried"));

    // A good build is swapped in.
    std::fs::write(&path, starling_plugins::CALICO).expect("write");
    assert!(slot.check().expect("reloaded"));
    assert_eq!(
        slot.current().roles().len(),
        6,
        "every role of contract 0.2"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn compiled_plugins_are_cached() {
    let base = std::env::temp_dir().join(format!("starling-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (calico_dir, guard_dir) = (base.join("calico"), base.join("guard"));
    let only = |dir: &std::path::Path| {
        let files: Vec<_> = std::fs::read_dir(dir)
            .expect("cache dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    };
    let calico_host = host().with_cache(&calico_dir);
    calico_host
        .load("calico", starling_plugins::CALICO)
        .expect("compile");
    let calico_artifact = only(&calico_dir);
    host()
        .with_cache(&guard_dir)
        .load("guard", starling_plugins::EXAMPLE_PREFIX_GUARD)
        .expect("compile");
    // Plant the guard's artifact under calico's name: if the next load of
    // calico really comes from the cache, it gets the guard's roles.
    std::fs::copy(only(&guard_dir), &calico_artifact).expect("plant");
    let loaded = calico_host
        .load("calico", starling_plugins::CALICO)
        .expect("cached");
    assert_eq!(
        loaded.roles().len(),
        1,
        "loaded from the cache, not compiled"
    );
    std::fs::remove_dir_all(&base).expect("cleanup");
}

#[test]
fn changed_facts_reach_the_plugin() {
    use starling_plugin_host::contract::NodeFacts;
    let host = host();
    let calico = host
        .load("calico", starling_plugins::CALICO)
        .expect("calico");
    let mut e = calico.evaluate(&mesh()).expect("load");
    let facts = |b_as: u32| {
        vec![
            NodeFacts {
                node: "a".into(),
                local_as: 64512,
                ..NodeFacts::default()
            },
            NodeFacts {
                node: "b".into(),
                local_as: b_as,
                ..NodeFacts::default()
            },
        ]
    };
    let a = ["a".to_owned()];
    let first = e.plan(&facts(64512), &a).expect("plan");
    assert_eq!(first[0].sessions[0].peer_as, 64512);
    let same = e.plan(&facts(64512), &a).expect("plan");
    assert_eq!(same, first);
    let changed = e.plan(&facts(65001), &a).expect("plan");
    assert_eq!(changed[0].sessions[0].peer_as, 65001);
}

/// A new build that loads but no longer fills the role its slot serves
/// is refused before the swap; the old build keeps serving.
#[test]
fn hot_reload_refuses_a_build_that_no_longer_fills_its_role() {
    use starling_plugin_host::contract::Role;
    let dir = std::env::temp_dir().join(format!("starling-reload-role-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("policy.wasm");
    std::fs::write(&path, starling_plugins::EXAMPLE_PREFIX_GUARD).expect("write");
    let host = host();
    let mut slot = Reloading::open(&host, "policy", &path).expect("open");
    assert!(slot.current().fills(Role::RoutePolicy));

    // as-per-rack assigns AS numbers and decides no routes.
    std::fs::write(&path, starling_plugins::EXAMPLE_AS_PER_RACK).expect("write");
    let err = slot
        .check_for_roles(&[Role::RoutePolicy])
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Incompatible);
    assert!(err.to_string().contains("RoutePolicy"), "{err}");
    assert!(
        slot.current().fills(Role::RoutePolicy),
        "the old build serves"
    );

    // A build that fills it is taken.
    std::fs::write(&path, starling_plugins::CALICO).expect("write");
    assert!(
        slot.check_for_roles(&[Role::RoutePolicy])
            .expect("reloaded")
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
