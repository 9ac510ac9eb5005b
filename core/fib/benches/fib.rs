//! Kernel FIB write rate: 100,000 IPv4 /24 routes installed and then
//! deleted, in a network namespace this benchmark creates (needs root and
//! iproute2). `cargo bench -p starling-fib --bench fib`.
//!
//! `fib_100k_routes/floor_*` is the kernel's own limit on this machine, for
//! the programmer to be judged against: the same routes as raw
//! RTM_NEWROUTE / RTM_DELROUTE messages encoded before the clock starts,
//! 1,000 per `send`, no ACK but the last (perf-method.md §4.3's fastest
//! method), into another table of the same namespace.

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
    let desired: starling_fib::Routes = (0..ROUTES)
        .map(|i| {
            let addr = IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes());
            (Destination::new(addr, 24).expect("prefix"), gateway.clone())
        })
        .collect();
    let empty = starling_fib::Routes::default();
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
    let mut floor = Floor::open();
    let install = floor.messages(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, false);
    // Highest prefix first, as the programmer deletes: the kernel's trie
    // takes ascending deletes about 4× slower.
    let delete = floor.messages(RTM_DELROUTE, 0, true);
    g.bench_function("floor_install", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                floor.send(&install);
                total += started.elapsed();
                floor.send(&delete);
            }
            total
        })
    });
    g.bench_function("floor_delete", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                floor.send(&install);
                let started = Instant::now();
                floor.send(&delete);
                total += started.elapsed();
            }
            total
        })
    });
    g.finish();
}

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTA_DST: u16 = 1;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
/// Not the programmer's table: the floor never touches its routes.
const FLOOR_TABLE: u32 = 1001;
const PER_SEND: usize = 1_000;
/// nlmsghdr 16 + rtmsg 12 + three 8-octet attributes.
const MESSAGE_LEN: usize = 52;

/// Raw netlink, as fast as the kernel takes it.
struct Floor {
    socket: netlink_sys::Socket,
    receive: Vec<u8>,
}

impl Floor {
    fn open() -> Self {
        let mut socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE)
            .expect("netlink socket");
        socket.bind_auto().expect("bind");
        socket
            .connect(&netlink_sys::SocketAddr::new(0, 0))
            .expect("connect");
        socket.set_rx_buf_sz(8 << 20).expect("rcvbuf");
        Self {
            socket,
            receive: Vec::with_capacity(1 << 16),
        }
    }

    /// One message per route, in sends of `PER_SEND`; the last asks for
    /// the ACK that says the kernel has handled them all.
    fn messages(&self, kind: u16, flags: u16, descending: bool) -> Vec<Vec<u8>> {
        let mut batches = Vec::new();
        let mut batch = Vec::with_capacity(PER_SEND * MESSAGE_LEN);
        for sequence in 1..=ROUTES {
            let i = if descending {
                ROUTES - sequence
            } else {
                sequence - 1
            };
            let mut flags = NLM_F_REQUEST | flags;
            if sequence == ROUTES {
                flags |= NLM_F_ACK;
            }
            batch.extend_from_slice(&(MESSAGE_LEN as u32).to_ne_bytes());
            batch.extend_from_slice(&kind.to_ne_bytes());
            batch.extend_from_slice(&flags.to_ne_bytes());
            batch.extend_from_slice(&sequence.to_ne_bytes());
            batch.extend_from_slice(&0u32.to_ne_bytes()); // port id
            // rtmsg: AF_INET, /24, no source, tos 0, table (in the
            // attribute), protocol 200, universe scope, unicast, no flags.
            batch.extend_from_slice(&[2, 24, 0, 0, 0, 200, 0, 1]);
            batch.extend_from_slice(&0u32.to_ne_bytes());
            let dst = (0x0a00_0000 + (i << 8)).to_be_bytes();
            for (kind, value) in [
                (RTA_DST, dst),
                (RTA_GATEWAY, [192, 0, 2, 2]),
                (RTA_TABLE, FLOOR_TABLE.to_ne_bytes()),
            ] {
                batch.extend_from_slice(&8u16.to_ne_bytes());
                batch.extend_from_slice(&kind.to_ne_bytes());
                batch.extend_from_slice(&value);
            }
            if batch.len() == PER_SEND * MESSAGE_LEN {
                batches.push(std::mem::take(&mut batch));
            }
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        batches
    }

    /// Send every batch, then wait for the last message's ACK; any error
    /// the kernel returned on the way fails the benchmark.
    fn send(&mut self, batches: &[Vec<u8>]) {
        for batch in batches {
            self.socket.send(batch, 0).expect("netlink send");
        }
        loop {
            self.receive.clear();
            self.socket
                .recv(&mut self.receive, 0)
                .expect("netlink recv");
            let mut at = 0;
            while at + 20 <= self.receive.len() {
                let m = &self.receive[at..];
                let len = u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize;
                let kind = u16::from_ne_bytes([m[4], m[5]]);
                let sequence = u32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
                if kind == NLMSG_ERROR {
                    let errno = i32::from_ne_bytes([m[16], m[17], m[18], m[19]]);
                    assert_eq!(errno, 0, "the kernel refused route {sequence}");
                    if sequence == ROUTES {
                        return;
                    }
                }
                at += len.max(20).next_multiple_of(4);
            }
        }
    }
}

criterion_group!(benches, fib_rate);
criterion_main!(benches);
