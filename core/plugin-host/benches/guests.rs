//! One plugin, three languages, the same host: the zone-reflectors and
//! prefix-guard examples built from Rust, Python (componentize-py) and
//! JavaScript (componentize-js), run through the sandbox the daemon uses.
//!
//! - `plan_node_5000`: one node's whole plan on the RR recipe of a
//!   5,000-node cluster (the mesh off, every node peering with its zone's
//!   reflectors), Calico's plugin for every role but reflection, which
//!   the guest fills: what `starling plan --node` and the daemon do for
//!   each snapshot;
//! - `reflect_5000`: the guest's share of that, alone: a fresh instance
//!   loads the 5,000-node snapshot and answers `reflectors`;
//! - `route_policy_100k`: one export verdict for each of 100,000 routes;
//! - `load_cached`: a load from the compile cache (the first, compiling
//!   load is timed once and printed: a sample of ten would take minutes).
//!
//! `scripts/guest-bench` builds the components into `target/guest-bench`
//! and runs this; a language whose components are missing is skipped, and
//! said so. Results and the command in docs/performance.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use starling_plugin_host::contract::{
    Attributes, Direction, Family, Object, Prefix, Route, RouteContext,
};
use starling_plugin_host::pipeline::Roles;
use starling_plugin_host::{Host, Limits, Plugin};

const LANGUAGES: [&str; 3] = ["rust", "python", "js"];
const NODES: u32 = 5_000;
const ROUTES: u32 = 100_000;

fn components() -> PathBuf {
    std::env::var_os("STARLING_GUEST_BENCH").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/guest-bench"
            ))
        },
        PathBuf::from,
    )
}

fn host(cache: &std::path::Path) -> Host {
    Host::new(Limits {
        call_deadline: Duration::from_secs(60),
        memory: 1 << 30,
        ..Limits::default()
    })
    .expect("host")
    .with_cache(cache)
}

/// `<lang>-<example>.wasm`, loaded (compiled on the first load); `None`
/// when it was not built.
fn load(host: &Host, lang: &str, example: &str) -> Option<Plugin> {
    let path = components().join(format!("{lang}-{example}.wasm"));
    if !path.is_file() {
        eprintln!(
            "skipping {lang} {example}: {} not built (scripts/guest-bench builds it)",
            path.display()
        );
        return None;
    }
    let started = Instant::now();
    let plugin = host.load_file(example, &path).expect("load");
    eprintln!(
        "{lang} {example}: first load (compiling) {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Some(plugin)
}

/// 5,000 nodes in 10 zones, the first node of each zone a reflector.
fn cluster() -> Vec<Object> {
    (0..NODES)
        .map(|i| {
            let mut labels = vec![("zone", format!("z{}", i % 10))];
            if i < 10 {
                labels.push(("reflector", "true".to_owned()));
            }
            Object::new(
                "Node",
                &format!("node-{i:05}"),
                format!(
                    r#"{{"bgp": {{"ipv4Address": "10.0.{}.{}/16"}}}}"#,
                    i >> 8,
                    i & 0xff
                ),
            )
            .with_labels(labels.iter().map(|(k, v)| (*k, v.clone())))
        })
        .collect()
}

/// The RR recipe over `cluster()`: the mesh off, every node peers with the
/// reflectors.
fn rr_recipe() -> Vec<Object> {
    let mut objects = cluster();
    objects.push(Object::new(
        "BGPConfiguration",
        "default",
        r#"{"nodeToNodeMeshEnabled": false}"#.to_owned(),
    ));
    objects.push(Object::new(
        "BGPPeer",
        "peer-with-reflectors",
        r#"{"nodeSelector": "all()", "peerSelector": "reflector == 'true'"}"#.to_owned(),
    ));
    objects
}

fn benches(c: &mut Criterion) {
    let cache = tempdir();
    let host = host(&cache);
    let objects = cluster();
    let calico = host
        .load("calico", starling_plugins::CALICO)
        .expect("calico");
    let recipe = rr_recipe();
    let one = vec!["node-02500".to_owned()];

    let mut g = c.benchmark_group("plan_node_5000");
    g.sample_size(10);
    for lang in LANGUAGES {
        let Some(plugin) = load(&host, lang, "zone-reflectors") else {
            continue;
        };
        let mut roles = Roles::all(calico.clone());
        roles.route_reflection = plugin;
        g.bench_function(lang, |b| {
            b.iter(|| {
                let plan = roles.plan(&recipe, Some(&one)).expect("plan");
                // A client of its zone's reflectors.
                assert_eq!(plan.nodes[0].sessions.len(), 10);
            })
        });
    }
    g.finish();

    let context = RouteContext {
        node: "node-00001".to_owned(),
        session: "Global_198_51_100_1".to_owned(),
        family: Family::Ipv4,
        direction: Direction::Export,
        peer_as: 65000,
        local_as: 64512,
        filters: Vec::new(),
    };
    let sets = vec![Attributes {
        as_path: vec![64512],
        ..Attributes::default()
    }];
    let routes: Vec<Route> = (0..ROUTES)
        .map(|i| Route {
            prefix: Prefix {
                family: Family::Ipv4,
                bits: u128::from(0x0a00_0000 | (i << 8)),
                length: if i % 10 == 0 { 25 } else { 24 },
            },
            attributes: 0,
        })
        .collect();

    let mut g = c.benchmark_group("reflect_5000");
    g.sample_size(10);
    for lang in LANGUAGES {
        let Some(plugin) = load(&host, lang, "zone-reflectors") else {
            continue;
        };
        g.bench_function(lang, |b| {
            b.iter(|| {
                let mut e = plugin.evaluate(&objects).expect("load");
                let reflectors = e.reflectors().expect("reflectors");
                assert_eq!(reflectors.len(), 10);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("route_policy_100k");
    g.sample_size(10);
    for lang in LANGUAGES {
        let plugin = if lang == "rust" {
            Some(
                host.load("prefix-guard", starling_plugins::EXAMPLE_PREFIX_GUARD)
                    .expect("load"),
            )
        } else {
            load(&host, lang, "prefix-guard")
        };
        let Some(plugin) = plugin else { continue };
        let mut e = plugin.evaluate(&[]).expect("load");
        g.bench_function(lang, |b| {
            b.iter(|| {
                let v = e.route_policy(&context, &sets, &routes).expect("policy");
                assert_eq!(v.outcome.iter().filter(|&&o| o == 0).count(), 10_000);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("load_cached");
    g.sample_size(10);
    for lang in LANGUAGES {
        let path = components().join(format!("{lang}-zone-reflectors.wasm"));
        if !path.is_file() {
            continue;
        }
        g.bench_function(lang, |b| {
            b.iter(|| host.load_file("zone-reflectors", &path).expect("load"))
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&cache);
}

/// A compile cache of the bench's own, so the first load compiles.
fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("starling-guest-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cache dir");
    dir
}

criterion_group!(guests, benches);
criterion_main!(guests);
