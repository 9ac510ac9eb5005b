//! Kernel FIB write rate: 100,000 IPv4 /24 routes installed and then
//! deleted, in a network namespace this benchmark creates (needs root and
//! iproute2). `cargo bench -p starling-fib --bench fib`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use starling_fib::{Destination, Fib, FibConfig, Target};

const ROUTES: u32 = 100_000;

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?}");
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn enter_netns() -> Netns {
    let name = format!("starling-fib-bench-{}", std::process::id());
    ip(&["netns", "add", &name]);
    let ns = Netns(name);
    let n = ns.0.as_str();
    ip(&[
        "-n", n, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    ip(&["-n", n, "link", "set", "d0", "up"]);
    ip(&["-n", n, "link", "set", "d1", "up"]);
    ip(&["-n", n, "addr", "add", "192.0.2.1/24", "dev", "d0"]);
    let file = std::fs::File::open(format!("/run/netns/{n}")).expect("netns");
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    ns
}

fn fib_rate(c: &mut Criterion) {
    let _ns = enter_netns();
    let gateway = Target::via(vec![IpAddr::from([192, 0, 2, 2])]);
    let desired: BTreeMap<Destination, Target> = (0..ROUTES)
        .map(|i| {
            let addr = IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes());
            (Destination::new(addr, 24).expect("prefix"), gateway.clone())
        })
        .collect();
    let empty = BTreeMap::new();
    let mut fib = Fib::open(FibConfig {
        table: 1000,
        ..FibConfig::default()
    })
    .expect("open");
    let mut g = c.benchmark_group("fib_100k_routes");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(ROUTES)));
    g.bench_function("install", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let changes = fib.apply(&desired).expect("install");
                total += started.elapsed();
                assert_eq!(changes.added, ROUTES as usize);
                fib.apply(&empty).expect("clear");
            }
            total
        })
    });
    g.bench_function("delete", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                fib.apply(&desired).expect("install");
                let started = Instant::now();
                let changes = fib.apply(&empty).expect("clear");
                total += started.elapsed();
                assert_eq!(changes.deleted, ROUTES as usize);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, fib_rate);
criterion_main!(benches);
