//! Plugin performance, through wasm and natively, on the same logic:
//! planning one node of a 5,000-node cluster with 50 BGPPeers (the RR
//! recipe plus 49 per-rack ToR peers), planning every node, and route
//! policy over a batch of 100,000 routes.
//!
//! `cargo bench -p starling-plugin-host --bench plugins`; results and
//! method in docs/performance.md.

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use starling_calico::Calico;
use starling_plugin_host::contract::{
    Attributes, Direction, Family, Object, Prefix, Route, RouteContext,
};
// The native side of the comparison runs the plugin as the SDK does.
use starling_plugin_host::pipeline::Roles;
use starling_plugin_host::{Host, Limits};
use starling_plugin_sdk::{PeerSelection, RoutePolicy, Snapshot};

const NODES: u32 = 5_000;
const REFLECTORS: u32 = 10;
const RACKS: u32 = 49;

fn object(kind: &str, name: &str, labels: &[(&str, String)], spec: serde_json::Value) -> Object {
    Object::new(kind, name, spec.to_string())
        .with_labels(labels.iter().map(|(k, v)| (*k, v.clone())))
}

fn node_name(i: u32) -> String {
    format!("node-{i:05}")
}

/// The benchmark cluster: 5,000 nodes in 49 racks, 10 reflectors, the mesh
/// off, one BGPPeer to the reflectors and one ToR BGPPeer per rack.
fn cluster() -> Vec<Object> {
    let mut objects = vec![object(
        "BGPConfiguration",
        "default",
        &[],
        json!({"nodeToNodeMeshEnabled": false}),
    )];
    for i in 0..NODES {
        let ip = format!(
            "10.{}.{}.{}/16",
            (i + 1) >> 16,
            ((i + 1) >> 8) & 0xff,
            (i + 1) & 0xff
        );
        let mut labels = vec![("rack", format!("r{}", i % RACKS))];
        let mut bgp = json!({"ipv4Address": ip});
        if i < REFLECTORS {
            labels.push(("route-reflector", "true".to_owned()));
            bgp["routeReflectorClusterID"] = json!("244.0.0.1");
        }
        objects.push(object("Node", &node_name(i), &labels, json!({"bgp": bgp})));
    }
    objects.push(object(
        "BGPPeer",
        "peer-with-route-reflectors",
        &[],
        json!({"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"}),
    ));
    for r in 0..RACKS {
        objects.push(object(
            "BGPPeer",
            &format!("rack-{r}-tor"),
            &[],
            json!({
                "nodeSelector": format!("rack == 'r{r}' && !has(route-reflector)"),
                "peerIP": format!("198.51.100.{}", r + 1),
                "asNumber": 65000,
            }),
        ));
    }
    objects
}

fn host() -> Host {
    Host::new(Limits {
        call_deadline: Duration::from_secs(30),
        memory: 1 << 30,
        ..Limits::default()
    })
    .expect("host")
}

fn plan_benches(c: &mut Criterion) {
    let objects = cluster();
    let host = host();
    let plugin = host
        .load("calico", starling_plugins::CALICO)
        .expect("calico");
    let roles = Roles::all(plugin.clone());
    let one = vec![node_name(2_500)];

    let native = Calico::load(objects.clone()).expect("native load");
    let facts = native.facts();
    let mut loaded = plugin.evaluate(&objects).expect("wasm load");

    let mut g = c.benchmark_group("plan_one_node");
    g.sample_size(20);
    g.bench_function("wasm", |b| {
        b.iter(|| loaded.plan(&facts, &one).expect("plan"))
    });
    g.bench_function("native", |b| {
        b.iter(|| native.plan_all(&facts, &one).expect("plan"))
    });
    g.bench_function("wasm_from_snapshot", |b| {
        b.iter(|| roles.plan(&objects, Some(&one)).expect("plan"))
    });
    g.bench_function("native_from_snapshot", |b| {
        b.iter(|| {
            let calico = Calico::load(objects.clone()).expect("load");
            let facts = calico.facts();
            calico.plan_all(&facts, &one).expect("plan")
        })
    });
    g.finish();

    let all: Vec<String> = (0..NODES).map(node_name).collect();
    let mut g = c.benchmark_group("plan_all_nodes");
    g.sample_size(10);
    g.bench_function("wasm", |b| {
        b.iter(|| loaded.plan(&facts, &all).expect("plan"))
    });
    g.bench_function("native", |b| {
        b.iter(|| native.plan_all(&facts, &all).expect("plan"))
    });
    g.finish();
}

const ROUTES: usize = 100_000;
const SETS: usize = 1_000;

fn policy_benches(c: &mut Criterion) {
    let objects = vec![
        object("IPPool", "pool", &[], json!({"cidr": "10.0.0.0/8"})),
        object(
            "BGPFilter",
            "edge",
            &[],
            json!({"exportV4": [
                {"action": "Reject", "communities": {"values": ["65000:666"]}},
                {"action": "Reject", "cidr": "10.255.0.0/16", "matchOperator": "In"},
                {"action": "Accept", "cidr": "10.0.0.0/8", "matchOperator": "In", "prefixLength": {"max": 24},
                 "operations": [{"addCommunity": {"value": "65000:100"}}]},
            ]}),
        ),
    ];
    let context = RouteContext {
        node: "node-00001".to_owned(),
        session: "Global_198_51_100_1".to_owned(),
        family: Family::Ipv4,
        direction: Direction::Export,
        peer_as: 65000,
        local_as: 64512,
        filters: vec!["edge".to_owned()],
    };
    let sets: Vec<Attributes> = (0..SETS as u32)
        .map(|i| Attributes {
            as_path: vec![64512, 65000 + i % 100],
            communities: vec![(65000 << 16) | (i % 700)],
            from_peer: true,
            ..Attributes::default()
        })
        .collect();
    let routes: Vec<Route> = (0..ROUTES as u32)
        .map(|i| Route {
            prefix: Prefix {
                family: Family::Ipv4,
                bits: u128::from(0x0a00_0000 | (i << 8)),
                length: if i % 10 == 0 { 25 } else { 24 },
            },
            attributes: i % SETS as u32,
        })
        .collect();
    let host = host();
    let plugin = host
        .load("calico", starling_plugins::CALICO)
        .expect("calico");
    let mut loaded = plugin.evaluate(&objects).expect("load");
    let native = Calico::load(objects).expect("native");

    let mut g = c.benchmark_group("route_policy_100k");
    g.sample_size(10);
    g.bench_function("wasm", |b| {
        b.iter_batched(
            || (),
            |()| {
                loaded
                    .route_policy(&context, &sets, &routes)
                    .expect("policy")
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("native", |b| {
        b.iter(|| native.evaluate(&context, &sets, &routes))
    });
    g.finish();
}

criterion_group!(benches, plan_benches, policy_benches);
criterion_main!(benches);
