//! The FIB programmer against a real kernel table, inside a network
//! namespace each test creates and removes. Routes use the documentation
//! ranges for links and any range for prefixes; nothing reaches the host's
//! own tables.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use starling_fib::{Destination, Fib, FibConfig, Routes, Target};

const TABLE: u32 = 1000;

/// A network namespace with a link `d0` at 192.0.2.1/24 and
/// 2001:db8::1/64, so gateways 192.0.2.2–.9 and 2001:db8::2–9 resolve.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

impl Netns {
    fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "starling-fib-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        // A veth pair with both ends inside: dummy links need a kernel
        // module not every machine has.
        ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
        ns.ip(&["link", "set", "d1", "up"]);
        ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "d0"]);
        ns.ip(&["addr", "add", "2001:db8::1/64", "dev", "d0", "nodad"]);
        ns.ip(&["link", "set", "d0", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Run `f` on a thread inside the namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("netns file");
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("netns thread")
        })
    }

    /// Our routes as the kernel shows them: destination → gateways
    /// (empty for blackhole).
    fn routes(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for family in ["-4", "-6"] {
            let table = TABLE.to_string();
            let args = [
                "-n", &self.name, family, "-j", "route", "show", "table", &table, "proto", "199",
            ];
            let shown = Command::new("ip").args(args).output().expect("run ip");
            if !shown.status.success() {
                // A table the kernel has no route in does not exist.
                let stderr = String::from_utf8_lossy(&shown.stderr);
                assert!(stderr.contains("does not exist"), "ip {args:?}: {stderr}");
                continue;
            }
            let text = String::from_utf8(shown.stdout).expect("utf8");
            let routes: Vec<Value> = serde_json::from_str(&text).expect("ip -j");
            for r in routes {
                let mut gateways: Vec<String> = r["gateway"]
                    .as_str()
                    .map(str::to_owned)
                    .into_iter()
                    .collect();
                if let Some(hops) = r["nexthops"].as_array() {
                    gateways.extend(
                        hops.iter()
                            .filter_map(|h| h["gateway"].as_str().map(str::to_owned)),
                    );
                }
                gateways.sort();
                let mut dst = r["dst"].as_str().expect("dst").to_owned();
                if !dst.contains('/') {
                    dst += if family == "-4" { "/32" } else { "/128" };
                }
                out.insert(dst, gateways);
            }
        }
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn config() -> FibConfig {
    FibConfig {
        table: TABLE,
        ..FibConfig::default()
    }
}

fn gw(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

/// `count` IPv4 /24s from 10.0.0.0 via 192.0.2.2, every 10th ECMP over .2
/// and .3, every 100th a blackhole, plus a few IPv6 /48s.
fn table(count: u32) -> Routes {
    let mut desired = Routes::default();
    for i in 0..count {
        let addr = IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes());
        let target = match i {
            i if i % 100 == 0 => Target::Blackhole,
            i if i % 10 == 0 => Target::via(vec![gw(2), gw(3)]),
            _ => Target::via(vec![gw(2)]),
        };
        desired.insert(Destination::new(addr, 24).expect("prefix"), target);
    }
    for i in 0..16u16 {
        let addr: IpAddr = format!("2001:db8:{:x}::", 0x100 + i).parse().expect("v6");
        desired.insert(
            Destination::new(addr, 48).expect("prefix"),
            Target::via(vec!["2001:db8::2".parse().expect("gw")]),
        );
    }
    desired
}

fn expected(desired: &Routes) -> BTreeMap<String, Vec<String>> {
    desired
        .iter()
        .map(|(d, t)| {
            let gws = match t {
                Target::Blackhole => Vec::new(),
                Target::Via(g) => g.iter().map(ToString::to_string).collect(),
            };
            (d.to_string(), gws)
        })
        .collect()
}

#[test]
fn a_hundred_thousand_routes_installed_changed_and_withdrawn() {
    let ns = Netns::new();
    let desired = table(100_000);
    // Re-point every 10th IPv4 route, withdraw another tenth.
    let mut next = desired.clone();
    let v4: Vec<Destination> = next
        .keys()
        .copied()
        .filter(|d| d.addr().is_ipv4())
        .collect();
    for d in v4.iter().skip(1).step_by(10) {
        next.insert(*d, Target::via(vec![gw(4)]));
    }
    for d in v4.iter().skip(3).step_by(10) {
        next.remove(d);
    }
    let (first, second) = ns.run(|| {
        let mut fib = Fib::open(config()).expect("open");
        let first = fib.apply(&desired).expect("install");
        let second = fib.apply(&next).expect("change");
        (first, second)
    });
    assert_eq!(first.added, 100_016);
    assert!(first.refused.is_empty(), "{:?}", first.refused.first());
    assert!(second.refused.is_empty(), "{:?}", second.refused.first());
    assert_eq!(
        (second.added, second.replaced, second.deleted),
        (0, 10_000, 10_000)
    );
    assert_eq!(ns.routes(), expected(&next));
}

/// `apply_changes` writes only the named destinations: a change left out
/// of the list stays unwritten, and a listed one that did not change
/// writes nothing.
#[test]
fn only_the_changed_destinations_are_written() {
    let ns = Netns::new();
    let desired = table(1_000);
    let v4: Vec<Destination> = desired
        .keys()
        .copied()
        .filter(|d| d.addr().is_ipv4())
        .collect();
    let mut next = desired.clone();
    let (moved, gone, unlisted, same) = (v4[1], v4[2], v4[3], v4[4]);
    next.insert(moved, Target::via(vec![gw(4)]));
    next.remove(&gone);
    next.insert(unlisted, Target::via(vec![gw(5)]));
    let (second, third) = ns.run(|| {
        let mut fib = Fib::open(config()).expect("open");
        fib.apply(&desired).expect("install");
        let listed: std::collections::HashMap<Destination, Option<Target>> = [moved, gone, same]
            .into_iter()
            .map(|d| (d, next.get(&d).cloned()))
            .collect();
        let second = fib
            .apply_changes(listed.iter().map(|(d, t)| (*d, t)))
            .expect("changed");
        let third = fib
            .apply_changes([(unlisted, &next.get(&unlisted).cloned())])
            .expect("the rest");
        (second, third)
    });
    assert_eq!(
        (second.added, second.replaced, second.deleted),
        (0, 1, 1),
        "only the two listed changes"
    );
    assert_eq!((third.added, third.replaced, third.deleted), (0, 1, 0));
    assert_eq!(ns.routes(), expected(&next));
}

/// `ip monitor route` in the namespace, counting the lines it prints
/// between two sentinel routes the test adds itself.
struct Monitor {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Monitor {
    fn start(ns: &Netns) -> Self {
        let mut child = Command::new("ip")
            .args(["-n", &ns.name, "monitor", "route"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ip monitor");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Monitor { child, lines }
    }

    /// Add a sentinel route and collect monitor lines until it shows up.
    fn mark(&self, ns: &Netns, sentinel: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut added = false;
        loop {
            if !added {
                ns.ip(&["route", "add", sentinel, "dev", "d0", "table", "2000"]);
                added = true;
            }
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line)
                    if !line.starts_with("Deleted")
                        && line.contains(sentinel.split('/').next().unwrap_or(sentinel)) =>
                {
                    return seen;
                }
                // Sentinels (table 2000) are the test's own doing.
                Ok(line) if line.contains("table 2000") => {}
                Ok(line) => seen.push(line),
                Err(_) => {
                    // The monitor may not have subscribed yet when the
                    // first sentinel went in: send another.
                    assert!(Instant::now() < deadline, "monitor never saw {sentinel}");
                    ns.ip(&["route", "del", sentinel, "dev", "d0", "table", "2000"]);
                    added = false;
                }
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_restart_adopts_its_routes_with_zero_churn() {
    let ns = Netns::new();
    let desired = table(2_000);
    ns.run(|| {
        let mut fib = Fib::open(config()).expect("open");
        fib.apply(&desired).expect("install");
    });
    // A foreign route in the same table is never adopted or touched.
    ns.ip(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "192.0.2.5",
        "table",
        &TABLE.to_string(),
        "proto",
        "static",
    ]);

    let monitor = Monitor::start(&ns);
    monitor.mark(&ns, "203.0.113.1/32");
    let (adopted, changes) = ns.run(|| {
        let mut fib = Fib::open(config()).expect("open");
        let adopted = fib.adopt().expect("adopt");
        (adopted, fib.apply(&desired).expect("apply"))
    });
    let churn = monitor.mark(&ns, "203.0.113.2/32");
    assert_eq!(adopted, 2_016);
    assert!(changes.is_empty(), "{changes:?}");
    assert!(churn.is_empty(), "kernel saw route changes: {churn:?}");

    // A restart that wants fewer routes deletes exactly the rest.
    let mut fewer = desired.clone();
    let gone: Vec<Destination> = fewer.keys().copied().take(10).collect();
    for d in &gone {
        fewer.remove(d);
    }
    let changes = ns.run(|| {
        let mut fib = Fib::open(config()).expect("open");
        fib.adopt().expect("adopt");
        fib.apply(&fewer).expect("apply")
    });
    assert_eq!(
        (changes.added, changes.replaced, changes.deleted),
        (0, 0, 10)
    );
    assert_eq!(ns.routes(), expected(&fewer));
    let foreign = ns.ip(&[
        "route",
        "show",
        "table",
        &TABLE.to_string(),
        "proto",
        "static",
    ]);
    assert!(
        foreign.contains("198.51.100.0/24 via 192.0.2.5"),
        "{foreign}"
    );
}

#[test]
fn tampering_is_repaired_and_foreign_routes_left_alone() {
    let ns = Netns::new();
    let desired = table(500);
    let t = TABLE.to_string();
    let (changes, again) = ns.run(|| {
        let mut fib = Fib::open(config()).expect("open");
        fib.apply(&desired).expect("install");
        // While it runs, someone deletes one of our routes, re-points
        // another, adds a stray route with our protocol, and a static one.
        ns.ip(&["route", "del", "10.0.1.0/24", "table", &t, "proto", "199"]);
        ns.ip(&[
            "route",
            "replace",
            "10.0.2.0/24",
            "via",
            "192.0.2.9",
            "table",
            &t,
            "proto",
            "199",
        ]);
        ns.ip(&[
            "route",
            "add",
            "172.16.0.0/16",
            "via",
            "192.0.2.9",
            "table",
            &t,
            "proto",
            "199",
        ]);
        ns.ip(&[
            "route",
            "add",
            "172.17.0.0/16",
            "via",
            "192.0.2.9",
            "table",
            &t,
            "proto",
            "static",
        ]);
        let changes = fib.resync().expect("resync");
        // Repaired, the table matches: nothing more to write.
        (changes, fib.resync().expect("second resync"))
    });
    assert!(changes.refused.is_empty(), "{changes:?}");
    assert_eq!(
        (changes.added, changes.replaced, changes.deleted),
        (1, 1, 1)
    );
    assert_eq!((again.added, again.replaced, again.deleted), (0, 0, 0));
    assert_eq!(ns.routes(), expected(&desired));
    assert!(
        ns.ip(&["route", "show", "table", &t, "proto", "static"])
            .contains("172.17.0.0/16")
    );
}

#[test]
fn refused_routes_are_reported_and_others_installed() {
    let ns = Netns::new();
    let t = TABLE.to_string();
    // A foreign route where we want one: never clobbered.
    ns.ip(&[
        "route",
        "add",
        "10.9.9.0/24",
        "via",
        "192.0.2.5",
        "table",
        &t,
        "proto",
        "static",
    ]);
    let mut desired = Routes::default();
    let d = |s: &str| s.parse::<Destination>().expect("prefix");
    desired.insert(d("10.1.0.0/24"), Target::via(vec![gw(2)]));
    desired.insert(
        d("10.2.0.0/24"),
        Target::via(vec![IpAddr::from([203, 0, 113, 9])]),
    );
    desired.insert(d("10.9.9.0/24"), Target::via(vec![gw(2)]));
    let changes = ns.run(|| {
        let mut fib = Fib::open(config()).expect("open");
        let changes = fib.apply(&desired).expect("apply");
        assert_eq!(fib.installed().len(), 1);
        changes
    });
    assert_eq!(changes.added, 1);
    let refused: BTreeMap<String, String> = changes
        .refused
        .iter()
        .map(|r| (r.destination.to_string(), r.error.clone()))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused["10.2.0.0/24"].contains("unreachable"),
        "{refused:?}"
    );
    assert!(refused["10.9.9.0/24"].contains("exists"), "{refused:?}");
    assert!(
        ns.ip(&["route", "show", "table", &t])
            .contains("10.9.9.0/24 via 192.0.2.5 dev d0 proto static")
    );
}

/// The monitor reports the kernel's route changes; echoes of our own
/// writes agree with what we installed, someone else's changes to our
/// routes do not, and routes elsewhere are none of our business.
#[test]
fn the_monitor_tells_our_writes_from_tampering() {
    let ns = Netns::new();
    let desired = table(50);
    let t = TABLE.to_string();
    ns.run(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut monitor = starling_fib::RouteMonitor::open().expect("monitor");
            let mut fib = Fib::open(config()).expect("open");
            fib.apply(&desired).expect("install");
            // Every echo of our own writes agrees (IPv4 and IPv6).
            let mut seen = 0;
            while seen < desired.len() {
                for event in next(&mut monitor).await {
                    assert!(!fib.disagrees(&event), "our own write: {event:?}");
                    seen += 1;
                }
            }
            // A route in another table: not ours to care about.
            ns.ip(&[
                "route",
                "add",
                "172.18.0.0/16",
                "via",
                "192.0.2.9",
                "table",
                "2000",
            ]);
            let event = next(&mut monitor).await.remove(0);
            assert!(!fib.disagrees(&event), "{event:?}");
            // Someone deletes one of ours.
            ns.ip(&["route", "del", "10.0.1.0/24", "table", &t, "proto", "199"]);
            let event = next(&mut monitor).await.remove(0);
            assert!(
                matches!(
                    &event,
                    starling_fib::KernelEvent::Deleted { protocol: 199, .. }
                ),
                "{event:?}"
            );
            assert!(fib.disagrees(&event));
            // Someone puts a static route over one of ours.
            ns.ip(&[
                "route",
                "replace",
                "10.0.2.0/24",
                "via",
                "192.0.2.9",
                "table",
                &t,
                "proto",
                "static",
            ]);
            let events = next(&mut monitor).await;
            assert!(events.iter().any(|e| fib.disagrees(e)), "{events:?}");
        });
    });
}

async fn next(monitor: &mut starling_fib::RouteMonitor) -> Vec<starling_fib::KernelEvent> {
    tokio::time::timeout(std::time::Duration::from_secs(5), monitor.next())
        .await
        .expect("a notification within 5 s")
        .expect("monitor")
}

/// ECMP routes name one kernel nexthop group per gateway set, marked with
/// our protocol; a restart reuses the groups without a write; withdrawing
/// the routes removes the objects.
#[test]
fn ecmp_routes_share_nexthop_groups() {
    let ns = Netns::new();
    let desired = table(200);
    let nexthops = |ns: &Netns| -> Vec<Value> {
        serde_json::from_str(&ns.ip(&["-j", "nexthop", "show"])).unwrap_or_default()
    };
    let uses_objects = ns.run(|| {
        let mut fib = Fib::open(config()).expect("open");
        fib.apply(&desired).expect("install");
        fib.uses_nexthop_objects()
    });
    assert!(uses_objects, "this kernel has nexthop objects (5.3+)");
    assert_eq!(ns.routes(), expected(&desired));
    let objects = nexthops(&ns);
    let groups: Vec<&Value> = objects.iter().filter(|o| o["group"].is_array()).collect();
    assert_eq!(groups.len(), 1, "one gateway set, one group: {objects:?}");
    assert_eq!(groups[0]["protocol"], "199");
    assert_eq!(
        objects.len(),
        4,
        "the group, its two gateways, and the IPv6 routes' gateway (single-gateway routes name their gateway's object too): {objects:?}"
    );
    let group_id = groups[0]["id"].clone();
    let t = TABLE.to_string();
    let ecmp: Vec<Value> = serde_json::from_str(&ns.ip(&[
        "-j",
        "route",
        "show",
        "table",
        &t,
        "proto",
        "199",
        "10.0.10.0/24",
    ]))
    .expect("json");
    assert_eq!(ecmp[0]["nhid"], group_id, "{ecmp:?}");
    let single: Vec<Value> = serde_json::from_str(&ns.ip(&[
        "-j",
        "route",
        "show",
        "table",
        &t,
        "proto",
        "199",
        "10.0.1.0/24",
    ]))
    .expect("json");
    let gateway_object = objects
        .iter()
        .find(|o| o["gateway"] == "192.0.2.2")
        .map(|o| o["id"].clone());
    assert_eq!(
        Some(single[0]["nhid"].clone()),
        gateway_object,
        "a single-gateway route names its gateway's object: {single:?}"
    );

    // A restart adopts routes and groups: nothing to write.
    let (again, cleared) = ns.run(|| {
        let mut fib = Fib::open(config()).expect("open");
        fib.adopt().expect("adopt");
        let again = fib.apply(&desired).expect("apply");
        (again, fib.clear().expect("clear"))
    });
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(cleared.deleted, desired.len());
    assert!(nexthops(&ns).is_empty(), "{:?}", nexthops(&ns));
}

/// Poll `check` until it holds, for at most 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Wanted = Vec<(Destination, Option<Target>)>;

/// A programmer on `changes`, with short delays, reporting into `reports`.
fn programmer(
    changes: tokio::sync::mpsc::UnboundedReceiver<Wanted>,
    reports: std::sync::Arc<std::sync::Mutex<Vec<starling_fib::Report>>>,
) -> starling_fib::Programmer {
    let pacing = starling_fib::Pacing {
        batch_delay: Duration::from_millis(10),
        repair_delay: Duration::from_millis(10),
        quiet: Duration::from_millis(100),
        ..starling_fib::Pacing::default()
    };
    starling_fib::Programmer::start(
        config(),
        pacing,
        changes,
        Box::new(
            |batch: Wanted, want: &mut dyn FnMut(Destination, Option<Target>)| {
                for (dest, target) in batch {
                    want(dest, target);
                }
            },
        ),
        Box::new(move |report| reports.lock().expect("reports").push(report)),
    )
    .expect("programmer")
}

fn multi_threaded() -> tokio::runtime::Runtime {
    // Writes block in place, which needs worker threads; they inherit the
    // namespace of the thread that builds the runtime.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The whole loop: batches in, the table follows; a withdrawal deletes;
/// a route someone deletes is put back and reported; a clean stop
/// leaves nothing behind.
#[test]
fn the_programmer_keeps_the_kernel_table_equal_to_what_it_is_sent() {
    let ns = Netns::new();
    let desired = table(300);
    let t = TABLE.to_string();
    ns.run(|| {
        multi_threaded().block_on(async {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let reports = std::sync::Arc::default();
            let mut programmer = programmer(rx, std::sync::Arc::clone(&reports));
            assert_eq!(programmer.adopted(), 0);
            let wanted: Wanted = desired.iter().map(|(d, t)| (*d, Some(t.clone()))).collect();
            tx.send(wanted).expect("send");
            eventually("the table", || ns.routes() == expected(&desired)).await;

            let gone = Destination::new(IpAddr::from([10, 0, 1, 0]), 24).expect("prefix");
            tx.send(vec![(gone, None)]).expect("send");
            eventually("the withdrawal", || {
                !ns.routes().contains_key("10.0.1.0/24")
            })
            .await;

            // Nothing was adopted: the sweep has nothing to delete (it once
            // took every route installed since for an unclaimed one). Its
            // request is taken once the channel is empty, so by the time a
            // second withdrawal sent after it is out, it has been written.
            programmer.sweep();
            let gone = Destination::new(IpAddr::from([10, 0, 3, 0]), 24).expect("prefix");
            tx.send(vec![(gone, None)]).expect("send");
            eventually("the second withdrawal", || {
                !ns.routes().contains_key("10.0.3.0/24")
            })
            .await;
            let gone = Destination::new(IpAddr::from([10, 0, 4, 0]), 24).expect("prefix");
            tx.send(vec![(gone, None)]).expect("send");
            eventually("the third withdrawal", || {
                !ns.routes().contains_key("10.0.4.0/24")
            })
            .await;
            assert_eq!(
                ns.routes().len(),
                desired.len() - 3,
                "a sweep with nothing adopted deletes nothing"
            );

            ns.ip(&["route", "del", "10.0.2.0/24", "table", &t, "proto", "199"]);
            eventually("the repair", || ns.routes().contains_key("10.0.2.0/24")).await;
            let repaired = reports
                .lock()
                .expect("reports")
                .iter()
                .any(|r| matches!(r, starling_fib::Report::Repaired(1)));
            assert!(repaired, "the repair is reported");

            programmer.stop(true).await;
            assert!(ns.routes().is_empty(), "a clean stop removes our routes");
        });
    });
}

/// A restart: the next programmer adopts what the last one left, keeps it
/// through the restart, and at the sweep deletes only what nobody
/// claimed meanwhile.
#[test]
fn the_programmer_adopts_then_sweeps_what_nobody_claimed() {
    let ns = Netns::new();
    let desired = table(100);
    ns.run(|| {
        multi_threaded().block_on(async {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let first = programmer(rx, std::sync::Arc::default());
            let wanted: Wanted = desired.iter().map(|(d, t)| (*d, Some(t.clone()))).collect();
            tx.send(wanted.clone()).expect("send");
            eventually("the table", || ns.routes() == expected(&desired)).await;
            first.stop(false).await;
            assert_eq!(ns.routes(), expected(&desired), "kept for the next run");

            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let mut second = programmer(rx, std::sync::Arc::default());
            assert_eq!(second.adopted(), desired.len());
            let (claimed, unclaimed) = wanted.split_at(wanted.len() / 2);
            tx.send(claimed.to_vec()).expect("send");
            second.sweep();
            assert!(second.swept());
            let kept: Routes = claimed
                .iter()
                .filter_map(|(d, t)| Some((*d, t.clone()?)))
                .collect();
            eventually("the sweep", || ns.routes() == expected(&kept)).await;
            assert!(!unclaimed.is_empty());
            second.stop(true).await;
        });
    });
}
