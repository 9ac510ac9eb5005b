//! `starling-bench`: side-by-side BGP benchmarks on loopback.
//!
//!   starling-bench rib --prefixes 1000000 --runs 5
//!
//! Everything runs in a network namespace the benchmark creates (and
//! removes), on 192.0.2.0/24: FRR and GoBGP refuse 127/8 next hops.
//! One peer (the blaster) sends a generated full table to the daemon under
//! test; a second peer (the sink) counts what the daemon re-advertises.
//! Measured: time from the blaster's first byte until the sink holds every
//! prefix, and the daemon's peak RSS. Starling, BIRD 2, FRR and GoBGP run
//! the same scenario in the same invocation. See docs/performance.md.

mod peer;

use starling_wire::testdata as table;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use starling_speaker::PeerConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_wire::Context;
use tokio::io::AsyncWriteExt;

const DUT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const BLASTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 201);
const SINK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 202);
/// The interface in the benchmark's namespace that holds the three
/// addresses (the namespace's own loopback: no module needed).
const LINK: &str = "lo";
const DUT_AS: u32 = 64512;
const BLASTER_AS: u32 = 65001;
const SINK_AS: u32 = 65002;

#[derive(Debug, Parser)]
#[command(about = "Side-by-side BGP benchmarks on loopback")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// One full table in, re-advertised to a second peer.
    Rib {
        #[arg(long, default_value_t = 1_000_000)]
        prefixes: usize,
        #[arg(long, default_value_t = 5_000)]
        attribute_sets: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Daemons to measure, in order.
        #[arg(long, value_delimiter = ',', default_value = "starling,bird,frr,gobgp")]
        dut: Vec<Dut>,
        /// Pin the daemon to this CPU (taskset).
        #[arg(long, default_value_t = 1)]
        cpu: usize,
        /// Already inside the benchmark's namespace (set by the outer run).
        #[arg(long, hide = true)]
        inside: bool,
    },
    /// Run Starling as the daemon under test (used by `rib`).
    Dut {
        #[arg(long)]
        port: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dut {
    Starling,
    Bird,
    /// FRR's bgpd alone (`-Z`: no zebra, as no FIB is involved).
    Frr,
    Gobgp,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Dut { port } => rt.block_on(run_starling_dut(port)),
        Cmd::Rib { inside: false, .. } => in_namespace(),
        Cmd::Rib {
            prefixes,
            attribute_sets,
            runs,
            dut,
            cpu,
            inside: true,
        } => rt.block_on(rib(prefixes, attribute_sets, runs, &dut, cpu)),
    }
}

/// Run this same command again inside a fresh network namespace with the
/// benchmark's addresses, and remove the namespace afterwards.
fn in_namespace() -> anyhow::Result<()> {
    let ns = format!("starling-bench-{}", std::process::id());
    let ip = |args: &[&str]| -> anyhow::Result<()> {
        let status = Command::new("ip")
            .args(args)
            .status()
            .context("running ip")?;
        if !status.success() {
            bail!("ip {} failed (the benchmark needs root)", args.join(" "));
        }
        Ok(())
    };
    ip(&["netns", "add", &ns])?;
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _remove = Remove(ns.clone());
    ip(&["-n", &ns, "link", "set", LINK, "up"])?;
    for (address, len) in [(DUT, 24), (BLASTER, 32), (SINK, 32)] {
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{address}/{len}"),
            "dev",
            LINK,
        ])?;
    }
    let status = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .arg("--inside")
        .status()
        .context("running the benchmark in its namespace")?;
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(())
}

/// Starling with a passive eBGP session to the blaster and the sink.
async fn run_starling_dut(port: u16) -> anyhow::Result<()> {
    let (instance, mut best) = Instance::start(
        RibConfig::new(DUT_AS, Ipv4Addr::new(192, 0, 2, 200)),
        &[SocketAddr::from((DUT, port))],
    )
    .await?;
    for (addr, asn) in [(BLASTER, BLASTER_AS), (SINK, SINK_AS)] {
        let mut cfg = PeerConfig::new(
            SocketAddr::from((addr, 179)),
            DUT_AS,
            asn,
            Ipv4Addr::new(192, 0, 2, 200),
        );
        cfg.passive = true;
        cfg.local_address = Some(IpAddr::V4(DUT));
        cfg.families = vec![starling_wire::Family::IPV4_UNICAST];
        instance.add_peer(cfg, PeerPolicy::default());
    }
    // No FIB in this scenario: drain best-path changes.
    while best.recv().await.is_some() {}
    Ok(())
}

struct Daemon {
    child: Child,
    _dir: Option<std::path::PathBuf>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self._dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// `program` pinned to `cpu`, its output discarded.
fn pinned(cpu: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("taskset");
    command
        .args(["-c", &cpu.to_string()])
        .arg(program)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A scratch directory for one comparator run.
fn scratch(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("starling-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn start_dut(dut: Dut, port: u16, cpu: usize) -> anyhow::Result<Daemon> {
    match dut {
        Dut::Frr => {
            let dir = scratch("frr")?;
            let conf = dir.join("bgpd.conf");
            // Same policy as the others: everything from the blaster,
            // re-advertised to the sink with next hop self (eBGP default).
            std::fs::write(
                &conf,
                format!(
                    "router bgp {DUT_AS}\n bgp router-id 192.0.2.200\n no bgp ebgp-requires-policy\n\
                     neighbor {BLASTER} remote-as {BLASTER_AS}\n neighbor {BLASTER} passive\n\
                     neighbor {SINK} remote-as {SINK_AS}\n neighbor {SINK} passive\n\
                     address-family ipv4 unicast\n  neighbor {BLASTER} activate\n  neighbor {SINK} activate\n\
                     exit-address-family\n"
                ),
            )?;
            let child = pinned(cpu, "/usr/lib/frr/bgpd")
                .arg("-f")
                .arg(&conf)
                .arg("-i")
                .arg(dir.join("bgpd.pid"))
                .arg("--vty_socket")
                .arg(&dir)
                .args(["-S", "-Z", "-n", "-P", "0", "-u", "root", "-g", "root"])
                .args(["-p", &port.to_string(), "-l", &DUT.to_string()])
                .spawn()
                .context("spawning FRR's bgpd")?;
            Ok(Daemon {
                child,
                _dir: Some(dir),
            })
        }
        Dut::Gobgp => {
            let dir = scratch("gobgp")?;
            let conf = dir.join("gobgpd.toml");
            let neighbor = |address: Ipv4Addr, asn: u32| {
                format!(
                    "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{address}\"\n    peer-as = {asn}\n\
                     [neighbors.transport.config]\n    passive-mode = true\n    local-address = \"{DUT}\"\n\
                     [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n"
                )
            };
            std::fs::write(
                &conf,
                format!(
                    "[global.config]\n  as = {DUT_AS}\n  router-id = \"192.0.2.200\"\n  port = {port}\n\
                     local-address-list = [\"{DUT}\"]\n{}{}",
                    neighbor(BLASTER, BLASTER_AS),
                    neighbor(SINK, SINK_AS)
                ),
            )?;
            let api = std::net::TcpListener::bind(SocketAddr::from((DUT, 0)))?.local_addr()?;
            let child = pinned(cpu, "gobgpd")
                .arg("-f")
                .arg(&conf)
                .args([
                    "--api-hosts",
                    &api.to_string(),
                    "--pprof-disable",
                    "-l",
                    "warn",
                ])
                .spawn()
                .context("spawning gobgpd")?;
            Ok(Daemon {
                child,
                _dir: Some(dir),
            })
        }
        Dut::Starling => {
            let exe = std::env::current_exe()?;
            let child = pinned(cpu, exe)
                .args(["dut", "--port", &port.to_string()])
                .stderr(Stdio::inherit())
                .spawn()
                .context("spawning the Starling DUT")?;
            Ok(Daemon { child, _dir: None })
        }
        Dut::Bird => {
            let dir = scratch("bird")?;
            let conf = dir.join("bird.conf");
            std::fs::write(
                &conf,
                format!(
                    r#"
router id 192.0.2.200;
protocol device {{}}
protocol direct {{ ipv4; interface "{LINK}"; }}
template bgp p {{
    local {DUT} port {port} as {DUT_AS};
    passive on;
    multihop;
    strict bind;
}}
protocol bgp blaster from p {{ neighbor {BLASTER} as {BLASTER_AS}; ipv4 {{ import all; export none; }}; }}
protocol bgp sink from p {{ neighbor {SINK} as {SINK_AS}; ipv4 {{ import none; export where source = RTS_BGP; next hop self; }}; }}
"#
                ),
            )?;
            let child = pinned(cpu, "bird")
                .args(["-f", "-c"])
                .arg(&conf)
                .arg("-s")
                .arg(dir.join("bird.ctl"))
                .spawn()
                .context("spawning bird")?;
            Ok(Daemon {
                child,
                _dir: Some(dir),
            })
        }
    }
}

/// Peak resident set size of a process, from /proc (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn one_run(
    dut: Dut,
    stream: &[u8],
    prefixes: usize,
    cpu: usize,
) -> anyhow::Result<(Duration, u64)> {
    let port = std::net::TcpListener::bind(SocketAddr::from((DUT, 0)))?
        .local_addr()?
        .port();
    let daemon = start_dut(dut, port, cpu)?;
    let target = SocketAddr::from((DUT, port));
    // A daemon takes a moment to listen (gobgpd, bgpd): try for 10 s.
    let connect_deadline = Instant::now() + Duration::from_secs(10);
    let mut sink = loop {
        match peer::Peer::connect(SINK, target, SINK_AS, DUT_AS).await {
            Ok(sink) => break sink,
            Err(e) if Instant::now() > connect_deadline => return Err(e.context("sink")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut blaster = peer::Peer::connect(BLASTER, target, BLASTER_AS, DUT_AS)
        .await
        .context("blaster")?;
    let sink_task = tokio::spawn(async move { sink.count_until(prefixes).await });
    let t0 = Instant::now();
    blaster.stream.write_all(stream).await?;
    let done = tokio::time::timeout(Duration::from_secs(600), sink_task)
        .await
        .context("the sink did not get every prefix within 600 s")???;
    let rss = peak_rss_kib(daemon.child.id()).unwrap_or(0);
    drop(blaster);
    Ok((done - t0, rss))
}

async fn rib(
    prefixes: usize,
    sets: usize,
    runs: usize,
    duts: &[Dut],
    cpu: usize,
) -> anyhow::Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    eprintln!("generating {prefixes} prefixes over {sets} attribute sets ...");
    let table = table::Table::generate(prefixes, sets, BLASTER_AS, 0x5eed_cafe_f00d_d00d);
    let ctx = Context {
        ebgp: true,
        peer_as: DUT_AS,
        ..Context::default()
    };
    let stream = table.encode(BLASTER, &ctx);
    eprintln!("{} MiB of UPDATEs", stream.len() >> 20);
    println!("dut,run,seconds,peak_rss_mib");
    let mut summary = Vec::new();
    for &dut in duts {
        let mut times = Vec::new();
        let mut rss = Vec::new();
        for run in 1..=runs {
            let (t, r) = one_run(dut, &stream, prefixes, cpu).await?;
            println!(
                "{dut:?},{run},{:.3},{:.1}",
                t.as_secs_f64(),
                r as f64 / 1024.0
            );
            times.push(t.as_secs_f64());
            rss.push(r as f64 / 1024.0);
        }
        summary.push((dut, stats(&mut times), stats(&mut rss)));
    }
    println!();
    println!(
        "| daemon | time to re-advertise all (s), median (min–max) | peak RSS (MiB), median (min–max) |"
    );
    println!("|---|---|---|");
    for (dut, t, r) in &summary {
        println!(
            "| {dut:?} | {:.2} ({:.2}–{:.2}) | {:.0} ({:.0}–{:.0}) |",
            t.0, t.1, t.2, r.0, r.1, r.2
        );
    }
    if let [(first, s, sr), rest @ ..] = summary.as_slice() {
        println!();
        for (other, o, or) in rest {
            println!(
                "ratio {first:?}/{other:?}: time {:.2}, RSS {:.2}",
                s.0 / o.0,
                sr.0 / or.0
            );
        }
    }
    Ok(())
}

/// Median, min, max.
fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    (median, v[0], v[v.len() - 1])
}
