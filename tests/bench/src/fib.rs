//! perf-method.md's S1 to the FIB: one full table in, re-advertised to a
//! second peer (the sink), and the clock runs until the kernel's table
//! holds every prefix — T_fib, reported next to the floor the harness
//! measures itself in the same namespace (raw
//! batched netlink, [`kernel`]). Starling runs as the appliance (`starling
//! run`, Calico's plugins, its FIB programmer), BIRD with its kernel
//! protocol. FRR and GoBGP reach the kernel through zebra; not measured
//! here yet. Then perf-method.md's S6 (a) end to end: the blaster's
//! session ends, and the clock runs until the kernel holds none of the
//! daemon's routes.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use starling_wire::{Context, Prefix};
use tokio::io::AsyncWriteExt;

use super::{
    ApplianceRuns, BLASTER, BLASTER_AS, DUT, DUT_AS, Daemon, Dut, Results, SEED, SINK, SINK_AS,
    Stats, connect, free_port, kernel, peak_rss_kib, scratch, stats, table,
};

/// The FIB's next hop: the far end of a veth pair in the benchmark's
/// namespace (`fib0` holds 203.0.113.1/24), so every daemon installs
/// ordinary gateway routes.
pub(super) const GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
pub(super) const FIB_LINK: &str = "fib0";
pub(super) const FIB_ADDRESS: &str = "203.0.113.1/24";
/// The floor's nexthop object id.
const FLOOR_NEXTHOP: u32 = 1000;

/// The `rtm_protocol` each daemon marks its routes with.
fn protocol(dut: Dut) -> anyhow::Result<u8> {
    match dut {
        // starling-fib's default; the appliance's configuration keeps it.
        Dut::Starling => Ok(199),
        // RTPROT_BIRD.
        Dut::Bird => Ok(12),
        Dut::Frr | Dut::Gobgp => {
            bail!(
                "{dut:?} programs the kernel through FRR's zebra; the fib scenario has no zebra setup yet"
            )
        }
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct FibRun {
    #[arg(long, default_value_t = 1_000_000)]
    prefixes: usize,
    #[arg(long, default_value_t = 5_000)]
    attribute_sets: usize,
    #[command(flatten)]
    daemons: ApplianceRuns,
    #[arg(long, hide = true)]
    pub(super) inside: bool,
}

/// Whether `p` falls inside one of the namespace's own networks, where a
/// route of the table would collide with a connected one.
fn clashes(p: &Prefix) -> bool {
    let Prefix::V4(p) = p else { return true };
    ["192.0.2.0", "198.51.100.0", "203.0.113.0"]
        .iter()
        .any(|net| {
            let net = u32::from(net.parse::<Ipv4Addr>().expect("network"));
            p.prefix_len() >= 24 && u32::from(p.addr()) & 0xffff_ff00 == net
        })
}

pub(super) async fn run(args: FibRun) -> anyhow::Result<()> {
    let protocols: Vec<(Dut, u8)> = args
        .daemons
        .dut
        .iter()
        .map(|d| protocol(*d).map(|p| (*d, p)))
        .collect::<anyhow::Result<_>>()?;
    let starling = args.daemons.starling_binary()?;
    eprintln!(
        "generating {} prefixes over {} attribute sets ...",
        args.prefixes, args.attribute_sets
    );
    let mut table = table::Table::generate(args.prefixes, args.attribute_sets, BLASTER_AS, SEED);
    for group in &mut table.groups {
        group.retain(|n| !clashes(&n.prefix));
    }
    let routes: Vec<kernel::Route> = table
        .groups
        .iter()
        .flatten()
        .filter_map(|n| match n.prefix {
            Prefix::V4(p) => Some((p.addr(), p.prefix_len())),
            Prefix::V6(_) => None,
        })
        .collect();
    let ctx = Context {
        ebgp: true,
        peer_as: DUT_AS,
        ..Context::default()
    };
    let stream = table.encode(GATEWAY, &ctx);
    eprintln!(
        "{} prefixes ({} left out: inside the namespace's networks), {} MiB of UPDATEs",
        routes.len(),
        args.prefixes - routes.len(),
        stream.len() >> 20
    );

    // The floor, in the same namespace, `runs` times: gateway routes in
    // ascending order (as a sorted writer sends them) and in the order the
    // table arrives; and, in arrival order, routes naming one kernel
    // nexthop object (RTA_NH_ID), the kernel's fastest way. Measured as
    // the daemons are: written from the daemon's CPU, timed by the same
    // monitor.
    let mut sorted = routes.clone();
    sorted.sort_unstable();
    let status = Command::new("ip")
        .args(["nexthop", "add", "id", &FLOOR_NEXTHOP.to_string()])
        .args(["via", &GATEWAY.to_string(), "dev", FIB_LINK])
        .status()
        .context("ip nexthop add")?;
    if !status.success() {
        bail!("the kernel refused a nexthop object ({status}): too old for the nexthop floor");
    }
    let mut floor = Vec::new();
    println!("what,run,seconds");
    let gateway = kernel::Via::Gateway(GATEWAY);
    for n in 1..=args.daemons.runs {
        for (name, order, via) in [
            ("floor_sorted", &sorted, gateway),
            ("floor_arrival", &routes, gateway),
            (
                "floor_nexthop",
                &routes,
                kernel::Via::Nexthop(FLOOR_NEXTHOP),
            ),
        ] {
            kernel::flush(kernel::FLOOR_PROTOCOL)?;
            let mut monitor = kernel::Monitor::start(kernel::FLOOR_PROTOCOL)?;
            let (cpu, writes) = (args.daemons.cpu, order.clone());
            let started = Instant::now();
            let writer = std::thread::spawn(move || {
                kernel::pin_thread(cpu)?;
                kernel::add_floor(&writes, via)
            });
            let seen = monitor.wait_for(order.len(), Duration::from_secs(600));
            writer
                .join()
                .map_err(|_| anyhow::anyhow!("the floor's writer panicked"))??;
            let add = seen? - started;
            let held = kernel::dump(kernel::FLOOR_PROTOCOL)?.len();
            if held != order.len() {
                bail!(
                    "the floor wrote {} routes, the kernel holds {held}",
                    order.len()
                );
            }
            let mut descending = order.clone();
            descending.sort_unstable_by(|a, b| b.cmp(a));
            let delete = kernel::delete_floor(&descending)?;
            println!("{name}_add,{n},{:.3}", add.as_secs_f64());
            println!("{name}_delete,{n},{:.3}", delete.as_secs_f64());
            floor.push((name, add.as_secs_f64(), delete.as_secs_f64()));
        }
    }
    let floor_stats = |name: &str| -> (Stats, Stats) {
        let (mut adds, mut deletes): (Vec<f64>, Vec<f64>) = floor
            .iter()
            .filter(|(n, _, _)| *n == name)
            .map(|(_, a, d)| (*a, *d))
            .unzip();
        (stats(&mut adds), stats(&mut deletes))
    };
    let (sorted_add, sorted_delete) = floor_stats("floor_sorted");
    let (arrival_add, _) = floor_stats("floor_arrival");
    let (nexthop_add, _) = floor_stats("floor_nexthop");
    // The gateway-route floor is the faster of the two orders.
    let floor_add = if sorted_add.0 <= arrival_add.0 {
        sorted_add
    } else {
        arrival_add
    };
    let _ = Command::new("ip")
        .args(["nexthop", "del", "id", &FLOOR_NEXTHOP.to_string()])
        .status();
    println!();

    let mut results = Results::default();
    let mut withdrawals: Vec<(Dut, usize, f64)> = Vec::new();
    let mut settled: Vec<(Dut, usize, f64)> = Vec::new();
    let mut to_sink: Vec<(Dut, usize, f64)> = Vec::new();
    let mut withdrawn: Vec<(Dut, usize, f64)> = Vec::new();
    for &(dut, proto) in &protocols {
        for n in 1..=args.daemons.runs {
            let run = one_run(dut, proto, &stream, routes.len(), &args, &starling).await?;
            results.add(dut, n, run.add, run.rss_kib);
            withdrawals.push((dut, n, run.withdraw.as_secs_f64()));
            to_sink.push((dut, n, run.sink.as_secs_f64()));
            settled.push((dut, n, run.settled_rss_kib as f64 / 1024.0));
            withdrawn.push((dut, n, run.withdrawn_rss_kib as f64 / 1024.0));
        }
    }
    let summary = results.summary();
    results.report("T_fib: first UPDATE byte until the kernel holds every prefix (s)");
    // The same runs' time until the second peer held every prefix.
    println!();
    println!("what,run,seconds");
    for (dut, n, t) in &to_sink {
        println!("{}_sink,{n},{t:.3}", format!("{dut:?}").to_lowercase());
    }
    // S6 (a) end to end: the blaster's session ends, the clock runs until
    // the kernel holds none of the daemon's routes.
    println!();
    println!("what,run,seconds");
    for (dut, n, t) in &withdrawals {
        println!("{}_withdraw,{n},{t:.3}", format!("{dut:?}").to_lowercase());
    }
    // Peak RSS again once the daemon's follow-up work on the table is
    // over (Starling compares the kernel's table with its own after a
    // large write): what the table cost at its highest.
    println!();
    println!("what,run,peak_rss_mib");
    for (dut, n, mib) in &settled {
        let dut = format!("{dut:?}").to_lowercase();
        println!("{dut}_peak_rss_after_settling,{n},{mib:.1}");
    }
    for (dut, n, mib) in &withdrawn {
        let dut = format!("{dut:?}").to_lowercase();
        println!("{dut}_peak_rss_after_withdrawal,{n},{mib:.1}");
    }
    println!();
    // One daemon's median (min–max) of a per-run list.
    let of = |runs: &[(Dut, usize, f64)], dut: Dut| {
        let mut v: Vec<f64> = runs
            .iter()
            .filter(|(d, _, _)| *d == dut)
            .map(|(_, _, t)| *t)
            .collect();
        stats(&mut v)
    };
    for &(dut, _) in &protocols {
        let t = of(&to_sink, dut);
        println!(
            "to the second peer, {dut:?}: {:.2} ({:.2}–{:.2}) s",
            t.0, t.1, t.2
        );
    }
    for &(dut, _) in &protocols {
        let t = of(&withdrawals, dut);
        println!(
            "withdraw to an empty FIB, {dut:?}: {:.2} ({:.2}–{:.2}) s, {:.2} × the floor's delete",
            t.0,
            t.1,
            t.2,
            t.0 / sorted_delete.0
        );
    }
    println!();
    println!(
        "floor (raw batched netlink, {} routes): add {:.2} ({:.2}–{:.2}) s, sorted order {:.2}, arrival order {:.2}; delete (descending) {:.2} s",
        routes.len(),
        floor_add.0,
        floor_add.1,
        floor_add.2,
        sorted_add.0,
        arrival_add.0,
        sorted_delete.0
    );
    println!(
        "floor with one nexthop object (arrival order): add {:.2} ({:.2}–{:.2}) s",
        nexthop_add.0, nexthop_add.1, nexthop_add.2
    );
    for (dut, t, _) in summary {
        println!(
            "T_fib/floor {dut:?}: {:.2} (gateway routes), {:.2} (nexthop object)",
            t.0 / floor_add.0,
            t.0 / nexthop_add.0
        );
    }
    Ok(())
}

/// What one run measured.
struct FibSample {
    /// From the first byte until the kernel holds every route.
    add: Duration,
    /// From the first byte until the second peer holds every route.
    sink: Duration,
    /// From the blaster's session end until the kernel holds none.
    withdraw: Duration,
    rss_kib: u64,
    /// Peak RSS once the daemon is idle with the whole table.
    settled_rss_kib: u64,
    /// Peak RSS once the table has left the kernel.
    withdrawn_rss_kib: u64,
}

/// One run: a fresh daemon, the blaster's table, the clock until the
/// kernel holds `want` routes of the daemon's protocol; then the
/// blaster's session ends, and the clock until it holds none.
async fn one_run(
    dut: Dut,
    proto: u8,
    stream: &[u8],
    want: usize,
    args: &FibRun,
    starling: &std::path::Path,
) -> anyhow::Result<FibSample> {
    for p in [kernel::FLOOR_PROTOCOL, 12, 199] {
        kernel::flush(p)?;
    }
    // Subscribed before the daemon starts: no announcement is missed.
    let mut monitor = kernel::Monitor::start(proto)?;
    let port = free_port()?;
    let daemon = match dut {
        Dut::Starling => start_appliance(starling, port, args.daemons.cpu)?,
        _ => start_bird(port, args.daemons.cpu)?,
    };
    let target = SocketAddr::from((DUT, port));
    let mut sink = connect(SINK, target, SINK_AS).await?;
    let sink_task = tokio::spawn(async move {
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let done = sink.count_until(want, &seen).await?;
        Ok::<_, anyhow::Error>((done, sink))
    });
    let mut blaster = connect(BLASTER, target, BLASTER_AS).await?;
    let t0 = Instant::now();
    blaster.stream.write_all(stream).await?;
    let (done, mut monitor) = tokio::task::spawn_blocking(move || {
        let done = monitor.wait_for(want, Duration::from_secs(600));
        (done, monitor)
    })
    .await?;
    let done = done.with_context(|| format!("{dut:?}: the kernel never held every route"))?;
    let held = kernel::dump(proto)?.len();
    if held != want {
        bail!("{dut:?}: the monitor counted {want} routes, a dump finds {held}");
    }
    let (sink_done, mut sink) = tokio::time::timeout(Duration::from_secs(600), sink_task)
        .await
        .with_context(|| format!("{dut:?}: the second peer never held every route"))???;
    // The sink reads on (keepalives, the withdrawals) until the run ends.
    let sink_reader = tokio::spawn(async move { sink.idle().await });
    let rss = peak_rss_kib(daemon.child.id()).unwrap_or(0);
    if let Some(metrics) = &daemon.metrics {
        // Where Starling's time and bytes went, for whoever profiles it.
        let text = scrape(*metrics).await.unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                (l.starts_with("starling_fib_") && !l.contains("_bucket"))
                    || l.starts_with("starling_memory_bytes")
            })
            .collect();
        eprintln!("{}", lines.join("\n"));
    }
    // From steady state (S6): the daemon's follow-up work on the table
    // (Starling's resync after a large write) is over before the clock
    // starts. No graceful restart was offered: every daemon withdraws at
    // once.
    settle(daemon.child.id())?;
    let settled_rss_kib = peak_rss_kib(daemon.child.id()).unwrap_or(0);
    let t1 = Instant::now();
    drop(blaster);
    let (gone, monitor) = tokio::task::spawn_blocking(move || {
        let gone = monitor.wait_for(0, Duration::from_secs(600));
        (gone, monitor)
    })
    .await?;
    let gone = gone.with_context(|| format!("{dut:?}: the kernel kept routes"))?;
    drop(monitor);
    let left = kernel::dump(proto)?.len();
    if left != 0 {
        bail!("{dut:?}: the monitor saw every route go, a dump finds {left}");
    }
    // The table leaving has a peak of its own.
    let withdrawn_rss_kib = peak_rss_kib(daemon.child.id()).unwrap_or(0);
    drop(daemon);
    sink_reader.abort();
    Ok(FibSample {
        add: done - t0,
        sink: sink_done - t0,
        withdraw: gone - t1,
        rss_kib: rss,
        settled_rss_kib,
        withdrawn_rss_kib,
    })
}

/// Wait until process `pid` has used no CPU for half a second (at most
/// a minute).
pub(super) fn settle(pid: u32) -> anyhow::Result<()> {
    let cpu_ticks = || super::cpu_ticks(pid);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut quiet_since) = (cpu_ticks()?, Instant::now());
    while quiet_since.elapsed() < Duration::from_millis(500) {
        if Instant::now() > deadline {
            bail!("the daemon kept using CPU for a minute after the table was in");
        }
        std::thread::sleep(Duration::from_millis(50));
        let now = cpu_ticks()?;
        if now != last {
            (last, quiet_since) = (now, Instant::now());
        }
    }
    Ok(())
}

/// The daemon's Prometheus text.
async fn scrape(at: SocketAddr) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(at).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: starling\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

/// Starling as shipped: `starling run` on an embedded datastore holding
/// Calico's resources for one node, one eBGP peer (the blaster) and a second
/// (the sink) its routes are re-exported to (a BGPFilter: Calico exports
/// only its own by default).
fn start_appliance(exe: &std::path::Path, port: u16, cpu: usize) -> anyhow::Result<Daemon> {
    let dir = scratch("starling")?;
    let store = dir.join("store");
    let resources = dir.join("bench.yaml");
    std::fs::write(
        &resources,
        format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
             spec: {{logSeverityScreen: Warning, nodeToNodeMeshEnabled: false, asNumber: {DUT_AS}}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: dut}}\n\
             spec: {{bgp: {{ipv4Address: {DUT}/24}}}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: blaster}}\n\
             spec: {{peerIP: {BLASTER}, asNumber: {BLASTER_AS}}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {{name: re-export}}\n\
             spec: {{exportV4: [{{action: Accept, source: RemotePeers}}]}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: sink}}\n\
             spec: {{peerIP: {SINK}, asNumber: {SINK_AS}, filters: [re-export]}}\n"
        ),
    )?;
    super::starling_apply(exe, &store, &resources, None)?;
    let config = dir.join("starling.toml");
    let metrics = SocketAddr::from((DUT, free_port()?));
    std::fs::write(
        &config,
        format!(
            "node_name = \"dut\"\ndatastore = {store:?}\n[bgp]\nlisten = [\"{DUT}:{port}\"]\n\
             [admin]\nsocket = {:?}\n[metrics]\nlisten = \"{metrics}\"\n",
            dir.join("admin.sock"),
        ),
    )?;
    let child = super::spawn_appliance(exe, &config, cpu)?;
    Ok(Daemon {
        child,
        _dir: Some(dir),
        metrics: Some(metrics),
    })
}

/// BIRD 2 with its kernel protocol exporting the BGP routes (their next
/// hop resolves through the direct route of `fib0`), and the sink given
/// them with next hop self.
fn start_bird(port: u16, cpu: usize) -> anyhow::Result<Daemon> {
    super::spawn_bird(
        &format!(
            r#"
router id 192.0.2.200;
protocol device {{}}
protocol direct {{ ipv4; interface "{FIB_LINK}"; }}
protocol kernel {{ ipv4 {{ export where source = RTS_BGP; }}; }}
template bgp p {{
    local {DUT} port {port} as {DUT_AS};
    passive on;
    multihop;
    strict bind;
}}
protocol bgp blaster from p {{
    neighbor {BLASTER} as {BLASTER_AS};
    ipv4 {{ import all; export none; }};
}}
protocol bgp sink from p {{
    neighbor {SINK} as {SINK_AS};
    ipv4 {{ import none; export where source = RTS_BGP; next hop self; }};
}}
"#
        ),
        cpu,
    )
}
