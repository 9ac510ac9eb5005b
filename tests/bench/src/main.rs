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
//!
//! Over 800 lines on purpose: this file is the harness's shared kit (the
//! command line of every scenario, the namespace, the daemons' launchers,
//! the peers' connect, the statistics) plus the three small scenarios
//! (`rib`, `withdraw`, `rr`/`fanout`) that use nothing else; each larger
//! scenario has a module of its own (fib, paths, mesh, policy, soak).

mod fib;
mod kernel;
mod mesh;
mod paths;
mod peer;
mod policy;
mod soak;

use starling_wire::testdata as table;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use starling_speaker::PeerConfig;
use starling_speaker::instance::{Instance, PeerPolicy};
use starling_speaker::policy::{Candidate, Direction, RoutePolicy, Verdict};
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
/// The generated table's seed: every run and daemon gets the same routes.
const SEED: u64 = 0x5eed_cafe_f00d_d00d;
const BLASTER_AS: u32 = 65001;
const SINK_AS: u32 = 65002;

/// The address of route-reflector client or exchange member `i` (the
/// `rr` and `fanout` scenarios), on the namespace's loopback like the
/// others.
fn rr_client(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 1 + (i % 254) as u8)
}

/// The AS of exchange member `i` (the `fanout` scenario): private 4-octet
/// ASes, which the generated AS paths (ASes below 400,000) never contain.
fn member_as(i: usize) -> u32 {
    4_200_000_000 + i as u32
}

/// How the `rr` and `fanout` scenarios' peers relate to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Peers {
    /// iBGP route-reflector clients.
    Clients,
    /// eBGP peers, one AS each, as an exchange's members.
    Members,
    /// eBGP peers, one AS each, that only send (the `paths` scenario);
    /// the sink gets the best of their routes.
    Blasters,
}

#[derive(Debug, Parser)]
#[command(about = "Side-by-side BGP benchmarks on loopback")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// The blaster-and-sink scenarios' options.
#[derive(Debug, clap::Args)]
struct TableRun {
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
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// One full table in, re-advertised to a second peer.
    Rib(TableRun),
    /// perf-method.md's S1 to the FIB: one full table in, the clock
    /// until the kernel holds every prefix; next to the harness's own
    /// netlink floor. Starling as the appliance (`starling run`).
    Fib(fib::FibRun),
    /// perf-method.md's S6 (a): one full table in, as `rib`; then the
    /// blaster's session ends, and the clock runs until the sink has had
    /// every prefix withdrawn.
    Withdraw(TableRun),
    /// perf-method.md's S2 and S8: N peers send the same table with
    /// different AS paths; the clock runs until the sink holds every
    /// prefix's best path, and RSS against one peer's gives the bytes per
    /// extra path.
    Paths(paths::PathsRun),
    /// perf-method.md's S5: N nodes, a namespace each, in a Calico-like
    /// iBGP full mesh; the clock runs until every node's kernel holds
    /// every node's block, then again after nodes restart.
    Mesh(mesh::MeshRun),
    /// perf-method.md's S7: N peers send their routes through an import
    /// filter (a prefix list and a community); the filter is replaced,
    /// and the clock runs until the sink holds what the new one accepts.
    Policy(policy::PolicyRun),
    /// The soak: a hundred peers churning against the appliance for an
    /// hour (sessions flapping, routes coming and going, filter edits,
    /// plugin reloads); fails when memory, descriptors or tasks keep
    /// growing or the kernel ever differs from the RIB after settling.
    Soak(soak::SoakRun),
    /// A route reflector: clients send their own routes, and every
    /// client must get everyone else's. With `--originators`, only that
    /// many clients send (perf-method.md's S4: 200 clients, 100k routes
    /// from 2 originators).
    Rr {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Routes each sending client sends.
        #[arg(long, default_value_t = 10_000)]
        routes: usize,
        /// How many of the clients send routes (default: all of them).
        #[arg(long)]
        originators: Option<usize>,
        #[arg(long, default_value_t = 1_000)]
        attribute_sets: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, value_delimiter = ',', default_value = "starling,bird,frr")]
        dut: Vec<Dut>,
        #[arg(long, default_value_t = 1)]
        cpu: usize,
        #[arg(long, hide = true)]
        inside: bool,
    },
    /// perf-method.md's S3: eBGP peers, one AS each (an exchange's
    /// members), every one sends its own routes and must get everyone
    /// else's (next hop self; not a transparent route server).
    Fanout {
        #[arg(long, default_value_t = 100)]
        peers: usize,
        /// Routes each peer sends.
        #[arg(long, default_value_t = 10_000)]
        routes: usize,
        #[arg(long, default_value_t = 1_000)]
        attribute_sets: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, value_delimiter = ',', default_value = "starling,bird,frr")]
        dut: Vec<Dut>,
        #[arg(long, default_value_t = 1)]
        cpu: usize,
        #[arg(long, hide = true)]
        inside: bool,
    },
    /// Run Starling as the daemon under test (used by `rib`, `rr` and
    /// `fanout`).
    #[command(hide = true)]
    Dut {
        #[arg(long)]
        port: u16,
        /// Serve this many clients or members (the `rr` and `fanout`
        /// scenarios) instead of the blaster and the sink.
        #[arg(long, default_value_t = 0)]
        rr_clients: usize,
        #[arg(long, value_enum, default_value_t = Peers::Clients)]
        peers: Peers,
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
        Cmd::Dut {
            port,
            rr_clients,
            peers,
        } => {
            // Warnings and errors only (sessions that go down, ...):
            // the benchmark's output stays readable.
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "warn".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            // Two workers, as the daemon has on this machine (one per
            // core): the DUT is pinned to one CPU either way, but a long
            // pass of the instance must not keep the peer tasks from
            // reading (a client's KEEPALIVE, read 90 s late, ended a
            // reflector run with Hold Timer Expired).
            let dut = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            drop(rt);
            dut.block_on(run_starling_dut(port, rr_clients, peers))
        }
        Cmd::Rib(TableRun { inside: false, .. })
        | Cmd::Withdraw(TableRun { inside: false, .. }) => in_namespace(0, false),
        Cmd::Fib(fib::FibRun { inside: false, .. }) => in_namespace(0, true),
        Cmd::Fib(run) => rt.block_on(fib::run(run)),
        // Builds its own namespaces, one per node.
        Cmd::Mesh(run) => mesh::run(run),
        Cmd::Paths(paths::PathsRun {
            inside: false,
            ref peers,
            ..
        }) => in_namespace(peers.iter().copied().max().unwrap_or(1), false),
        Cmd::Paths(run) => rt.block_on(paths::run(run)),
        Cmd::Policy(policy::PolicyRun {
            inside: false,
            peers,
            ..
        }) => in_namespace(peers, false),
        Cmd::Policy(run) => rt.block_on(policy::run(run)),
        Cmd::Soak(soak::SoakRun {
            inside: false,
            peers,
            ..
        }) => in_namespace(peers, true),
        Cmd::Soak(run) => rt.block_on(soak::run(run)),
        Cmd::Rib(run) => rt.block_on(table_run(run, false)),
        Cmd::Withdraw(run) => rt.block_on(table_run(run, true)),
        Cmd::Rr {
            inside: false,
            clients,
            ..
        } => in_namespace(clients, false),
        Cmd::Fanout {
            inside: false,
            peers,
            ..
        } => in_namespace(peers, false),
        Cmd::Fanout {
            peers,
            routes,
            attribute_sets,
            runs,
            dut,
            cpu,
            inside: true,
        } => rt.block_on(rr(
            Peers::Members,
            (peers, peers),
            routes,
            attribute_sets,
            runs,
            &dut,
            cpu,
        )),
        Cmd::Rr {
            clients,
            routes,
            originators,
            attribute_sets,
            runs,
            dut,
            cpu,
            inside: true,
        } => rt.block_on(rr(
            Peers::Clients,
            (clients, originators.unwrap_or(clients)),
            routes,
            attribute_sets,
            runs,
            &dut,
            cpu,
        )),
    }
}

/// `ip` with `args`; failure is an error that names the command.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("ip")
        .args(args)
        .status()
        .context("running ip")?;
    if !status.success() {
        bail!("ip {} failed (the benchmark needs root)", args.join(" "));
    }
    Ok(())
}

/// `starling apply -f resources` into the embedded datastore `store`
/// (with `cache`, compiling Calico's plugin into that plugin cache).
fn starling_apply(
    exe: &std::path::Path,
    store: &std::path::Path,
    resources: &std::path::Path,
    cache: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut command = Command::new(exe);
    command
        .arg("--datastore")
        .arg(store)
        .args(["apply", "-f"])
        .arg(resources);
    if let Some(cache) = cache {
        command.env("STARLING_CACHE_DIR", cache);
    }
    let applied = command.output().context("running starling apply")?;
    if !applied.status.success() {
        bail!(
            "starling apply: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }
    Ok(())
}

/// `starling run -c config`, pinned to `cpu`, its warnings on our stderr.
fn spawn_appliance(
    exe: &std::path::Path,
    config: &std::path::Path,
    cpu: usize,
) -> anyhow::Result<Child> {
    under_profiler(cpu, exe)
        .arg("run")
        .arg("-c")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning starling run")
}

/// The options of the scenarios that run Starling as the appliance
/// (`starling run`) next to BIRD: `fib` and `mesh`.
#[derive(Debug, clap::Args)]
struct ApplianceRuns {
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Daemons to measure, in order (Starling and BIRD).
    #[arg(long, value_delimiter = ',', default_value = "starling,bird")]
    dut: Vec<Dut>,
    /// Pin the daemons to this CPU (taskset).
    #[arg(long, default_value_t = 1)]
    cpu: usize,
    /// The `starling` binary (default: next to this one, as
    /// `cargo build --release` leaves it).
    #[arg(long)]
    starling: Option<std::path::PathBuf>,
}

impl ApplianceRuns {
    /// Check the options; the `starling` binary to run.
    fn starling_binary(&self) -> anyhow::Result<std::path::PathBuf> {
        if self.runs == 0 {
            bail!("--runs must be at least 1");
        }
        let starling = match &self.starling {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("starling"),
        };
        if self.dut.contains(&Dut::Starling) && !starling.exists() {
            bail!(
                "{} not found: build it (cargo build --release -p starling) or pass --starling",
                starling.display()
            );
        }
        Ok(starling)
    }
}

/// Run this same command again inside a fresh network namespace with the
/// benchmark's addresses (and `clients` route-reflector client addresses;
/// with `fib_link`, the veth pair the FIB's next hop is on), and remove
/// the namespace afterwards.
fn in_namespace(clients: usize, fib_link: bool) -> anyhow::Result<()> {
    let ns = format!("starling-bench-{}", std::process::id());
    ip(&["netns", "add", &ns])?;
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _remove = Remove(ns.clone());
    ip(&["-n", &ns, "link", "set", LINK, "up"])?;
    let client_addresses = (0..clients).map(|i| (rr_client(i), 32));
    for (address, len) in [(DUT, 24), (BLASTER, 32), (SINK, 32)]
        .into_iter()
        .chain(client_addresses)
    {
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
    if fib_link {
        ip(&[
            "-n",
            &ns,
            "link",
            "add",
            fib::FIB_LINK,
            "type",
            "veth",
            "peer",
            "name",
            "fib1",
        ])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            fib::FIB_ADDRESS,
            "dev",
            fib::FIB_LINK,
        ])?;
        ip(&["-n", &ns, "link", "set", fib::FIB_LINK, "up"])?;
        ip(&["-n", &ns, "link", "set", "fib1", "up"])?;
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

/// Starling with passive sessions: eBGP to the blaster and the sink, or
/// to `rr_clients` route-reflector clients (iBGP) or exchange members
/// (eBGP).
async fn run_starling_dut(port: u16, rr_clients: usize, kind: Peers) -> anyhow::Result<()> {
    let (instance, mut best) = Instance::start(
        RibConfig::new(DUT_AS, Ipv4Addr::new(192, 0, 2, 200)),
        &[SocketAddr::from((DUT, port))],
    )
    .await?;
    let peers: Vec<(Ipv4Addr, u32)> = match kind {
        _ if rr_clients == 0 => vec![(BLASTER, BLASTER_AS), (SINK, SINK_AS)],
        Peers::Clients => (0..rr_clients).map(|i| (rr_client(i), DUT_AS)).collect(),
        Peers::Members => (0..rr_clients)
            .map(|i| (rr_client(i), member_as(i)))
            .collect(),
        Peers::Blasters => (0..rr_clients)
            .map(|i| (rr_client(i), member_as(i)))
            .chain([(SINK, SINK_AS)])
            .collect(),
    };
    if kind == Peers::Blasters {
        // As the others' `export none` towards the blasters.
        instance.set_route_policy(Some(Arc::new(SinkOnly)), Vec::new());
    }
    for (addr, asn) in peers {
        let mut cfg = PeerConfig::new(
            SocketAddr::from((addr, 179)),
            DUT_AS,
            asn,
            Ipv4Addr::new(192, 0, 2, 200),
        );
        cfg.passive = true;
        // `paths --flaps` ends sessions on purpose, in quick succession:
        // the damping that holds a flapping peer off (BIRD's error wait
        // time) would only slow the benchmark, in every daemon.
        cfg.max_idle_hold = Duration::from_secs(1);
        cfg.local_address = Some(IpAddr::V4(DUT));
        cfg.families = vec![starling_wire::Family::IPV4_UNICAST];
        let policy = PeerPolicy {
            rr_client: rr_clients > 0 && kind == Peers::Clients,
            ..PeerPolicy::default()
        };
        instance.add_peer(cfg, policy);
    }
    // No FIB in these scenarios: drain best-path changes.
    while best.recv().await.is_some() {}
    Ok(())
}

/// Everything in, and out to the sink only (the `paths` scenario).
#[derive(Debug)]
struct SinkOnly;

impl RoutePolicy for SinkOnly {
    fn evaluate(
        &self,
        peer: IpAddr,
        direction: Direction,
        routes: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, String> {
        let verdict = if direction == Direction::Import || peer == IpAddr::V4(SINK) {
            Verdict::Accept
        } else {
            Verdict::Reject
        };
        Ok(vec![verdict; routes.len()])
    }

    fn export_class(&self, peer: IpAddr) -> Option<u64> {
        Some(u64::from(peer == IpAddr::V4(SINK)))
    }
}

struct Daemon {
    child: Child,
    _dir: Option<std::path::PathBuf>,
    /// Where the daemon serves Prometheus metrics, if it does.
    metrics: Option<SocketAddr>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first, so a wrapper (a profiler, see
        // STARLING_BENCH_WRAP) can stop its child and write its data; a
        // wrapped daemon leads a process group, signalled whole.
        // (It may be gone already: the mesh stops every node at once.)
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: getpgid only reads the process table.
        #[allow(unsafe_code)]
        let leads_group = unsafe { libc::getpgid(pid) } == pid;
        let target = if leads_group { -pid } else { pid };
        let signal = |signal: libc::c_int| {
            // SAFETY: kill sends a signal to our own child (or its group).
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(target, signal);
            }
        };
        signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let exited = !matches!(self.child.try_wait(), Ok(None));
            // SAFETY: signal 0 only asks whether the group has a process.
            #[allow(unsafe_code)]
            let group_gone = !leads_group || unsafe { libc::kill(-pid, 0) } != 0;
            if exited && group_gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if leads_group {
            signal(libc::SIGKILL);
        }
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

/// Starling pinned to `cpu`, under the profiler STARLING_BENCH_WRAP names
/// if any (heaptrack, valgrind ...), e.g.
/// STARLING_BENCH_WRAP="heaptrack -o /tmp/dut".
fn under_profiler(cpu: usize, exe: impl AsRef<std::ffi::OsStr>) -> Command {
    match std::env::var("STARLING_BENCH_WRAP") {
        Ok(wrap) if !wrap.trim().is_empty() => {
            let mut words = wrap.split_whitespace();
            let mut command = pinned(cpu, words.next().unwrap_or_default());
            command.args(words).arg(exe);
            // A group of its own, which `Daemon`'s drop signals whole: a
            // profiler's script killed alone left the daemon under it
            // running, holding a full table.
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            command
        }
        _ => pinned(cpu, exe),
    }
}

/// A scratch directory for one comparator run.
fn scratch(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("starling-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Start `dut` listening on `port`: for the `rib` scenario with
/// `rr_clients` 0, else for that many reflector clients or exchange
/// members.
fn start_dut(
    dut: Dut,
    port: u16,
    cpu: usize,
    rr_clients: usize,
    kind: Peers,
) -> anyhow::Result<Daemon> {
    let clients: Vec<Ipv4Addr> = (0..rr_clients).map(rr_client).collect();
    match dut {
        Dut::Frr => {
            let dir = scratch("frr")?;
            let conf = dir.join(BGPD_CONF);
            // Same policy as the others: everything from the blaster,
            // re-advertised to the sink with next hop self (eBGP default);
            // or every client's routes reflected to every other client.
            let text = if clients.is_empty() {
                format!(
                    "router bgp {DUT_AS}\n bgp router-id 192.0.2.200\n no bgp ebgp-requires-policy\n\
                     neighbor {BLASTER} remote-as {BLASTER_AS}\n neighbor {BLASTER} passive\n\
                     neighbor {SINK} remote-as {SINK_AS}\n neighbor {SINK} passive\n\
                     address-family ipv4 unicast\n  neighbor {BLASTER} activate\n  neighbor {SINK} activate\n\
                     exit-address-family\n"
                )
            } else if kind == Peers::Blasters {
                // The blasters get nothing, as with BIRD's `export none`.
                let group = frr_peer_group("blasters", "external", &clients);
                format!(
                    "router bgp {DUT_AS}\n bgp router-id 192.0.2.200\n no bgp ebgp-requires-policy\n\
                     {group}\
                     neighbor {SINK} remote-as {SINK_AS}\n neighbor {SINK} passive\n\
                     address-family ipv4 unicast\n  neighbor blasters activate\n  neighbor blasters route-map NOTHING out\n\
                     neighbor {SINK} activate\n\
                     exit-address-family\n\
                     route-map NOTHING deny 10\n"
                )
            } else if kind == Peers::Members {
                let group = frr_peer_group("members", "external", &clients);
                format!(
                    "router bgp {DUT_AS}\n bgp router-id 192.0.2.200\n no bgp ebgp-requires-policy\n\
                     {group}\
                     address-family ipv4 unicast\n  neighbor members activate\n\
                     exit-address-family\n"
                )
            } else {
                let group = frr_peer_group("clients", &DUT_AS.to_string(), &clients);
                format!(
                    "router bgp {DUT_AS}\n bgp router-id 192.0.2.200\n\
                     {group}\
                     address-family ipv4 unicast\n  neighbor clients activate\n  neighbor clients route-reflector-client\n\
                     exit-address-family\n"
                )
            };
            std::fs::write(&conf, text)?;
            spawn_bgpd(dir, port, cpu)
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
            let neighbors: String = if clients.is_empty() {
                neighbor(BLASTER, BLASTER_AS) + &neighbor(SINK, SINK_AS)
            } else if kind == Peers::Blasters {
                // GoBGP applies per-neighbor policy to route-server
                // clients only: the global export policy keeps the
                // blasters from getting anything.
                let blasters: Vec<String> = clients.iter().map(|c| format!("\"{c}\"")).collect();
                clients
                    .iter()
                    .enumerate()
                    .map(|(i, c)| neighbor(*c, member_as(i)))
                    .chain([neighbor(SINK, SINK_AS)])
                    .collect::<String>()
                    + &format!(
                        "[[defined-sets.neighbor-sets]]\n  neighbor-set-name = \"blasters\"\n\
                         neighbor-info-list = [{}]\n\
                         [[policy-definitions]]\n  name = \"sink-only\"\n\
                         [[policy-definitions.statements]]\n    name = \"no-blasters\"\n\
                         [policy-definitions.statements.conditions.match-neighbor-set]\n      neighbor-set = \"blasters\"\n\
                         [policy-definitions.statements.actions]\n      route-disposition = \"reject-route\"\n\
                         [global.apply-policy.config]\n  export-policy-list = [\"sink-only\"]\n\
                         default-export-policy = \"accept-route\"\n",
                        blasters.join(", ")
                    )
            } else if kind == Peers::Members {
                clients
                    .iter()
                    .enumerate()
                    .map(|(i, c)| neighbor(*c, member_as(i)))
                    .collect()
            } else {
                clients
                    .iter()
                    .map(|c| {
                        neighbor(*c, DUT_AS)
                            + "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n\
                               route-reflector-cluster-id = \"192.0.2.200\"\n"
                    })
                    .collect()
            };
            std::fs::write(
                &conf,
                format!(
                    "[global.config]\n  as = {DUT_AS}\n  router-id = \"192.0.2.200\"\n  port = {port}\n\
                     local-address-list = [\"{DUT}\"]\n{neighbors}"
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
                metrics: None,
            })
        }
        Dut::Starling => {
            let exe = std::env::current_exe()?;
            let child = under_profiler(cpu, exe)
                // The allocator as the daemon sets it for itself
                // (`tune_malloc` in appliance/src/daemon/mod.rs).
                .env("MALLOC_ARENA_MAX", "2")
                .env("MALLOC_MMAP_THRESHOLD_", "262144")
                .args(["dut", "--port", &port.to_string()])
                .args(["--rr-clients", &rr_clients.to_string()])
                .args([
                    "--peers",
                    match kind {
                        Peers::Clients => "clients",
                        Peers::Members => "members",
                        Peers::Blasters => "blasters",
                    },
                ])
                .stderr(Stdio::inherit())
                .spawn()
                .context("spawning the Starling DUT")?;
            Ok(Daemon {
                child,
                _dir: None,
                metrics: None,
            })
        }
        Dut::Bird => {
            let dir = scratch("bird")?;
            let conf = dir.join("bird.conf");
            // The sink gets the best BGP routes, next hop self (the
            // `rib`, `withdraw` and `paths` scenarios).
            let sink = format!(
                "protocol bgp sink from p {{ neighbor {SINK} as {SINK_AS}; \
                 ipv4 {{ import none; export where source = RTS_BGP; next hop self; }}; }}"
            );
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
    error wait time 1, 1;
}}
{}
"#,
                    if clients.is_empty() {
                        format!(
                            "protocol bgp blaster from p {{ neighbor {BLASTER} as {BLASTER_AS}; ipv4 {{ import all; export none; }}; }}\n\
                             {sink}"
                        )
                    } else if kind == Peers::Blasters {
                        clients
                            .iter()
                            .enumerate()
                            .map(|(i, c)| {
                                format!(
                                    "protocol bgp b{i} from p {{ neighbor {c} as {}; \
                                     ipv4 {{ import all; export none; }}; }}\n",
                                    member_as(i)
                                )
                            })
                            .chain([sink])
                            .collect()
                    } else if kind == Peers::Members {
                        clients
                            .iter()
                            .enumerate()
                            .map(|(i, c)| {
                                format!(
                                    "protocol bgp m{i} from p {{ neighbor {c} as {}; \
                                     ipv4 {{ import all; export where source = RTS_BGP; }}; }}\n",
                                    member_as(i)
                                )
                            })
                            .collect()
                    } else {
                        clients
                            .iter()
                            .enumerate()
                            .map(|(i, c)| {
                                format!(
                                    "protocol bgp c{i} from p {{ neighbor {c} as {DUT_AS}; rr client; rr cluster id 192.0.2.200; \
                                     ipv4 {{ import all; export where source = RTS_BGP; }}; }}\n"
                                )
                            })
                            .collect()
                    }
                ),
            )?;
            spawn_bird_in(dir, &conf, cpu)
        }
    }
}

/// An FRR peer group of passive neighbors: its declaration and members.
fn frr_peer_group(name: &str, remote_as: &str, members: &[Ipv4Addr]) -> String {
    let mut text = format!(
        " neighbor {name} peer-group\n neighbor {name} remote-as {remote_as}\n neighbor {name} passive\n"
    );
    for member in members {
        text += &format!(" neighbor {member} peer-group {name}\n");
    }
    text
}

/// The name of FRR's configuration in its scratch directory.
const BGPD_CONF: &str = "bgpd.conf";

/// FRR's bgpd alone (no zebra) on `dir`'s [`BGPD_CONF`], listening on
/// `port`, pinned to `cpu`; its vty socket in `dir` too (for `vtysh
/// --vty_socket`).
fn spawn_bgpd(dir: std::path::PathBuf, port: u16, cpu: usize) -> anyhow::Result<Daemon> {
    let child = pinned(cpu, "/usr/lib/frr/bgpd")
        .arg("-f")
        .arg(dir.join(BGPD_CONF))
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
        metrics: None,
    })
}

/// BIRD on `config`, pinned to `cpu`, in a scratch directory of its own.
fn spawn_bird(config: &str, cpu: usize) -> anyhow::Result<Daemon> {
    let dir = scratch("bird")?;
    let conf = dir.join("bird.conf");
    std::fs::write(&conf, config)?;
    spawn_bird_in(dir, &conf, cpu)
}

fn spawn_bird_in(
    dir: std::path::PathBuf,
    conf: &std::path::Path,
    cpu: usize,
) -> anyhow::Result<Daemon> {
    let child = pinned(cpu, "bird")
        .args(["-f", "-c"])
        .arg(conf)
        .arg("-s")
        .arg(dir.join("bird.ctl"))
        .spawn()
        .context("spawning bird")?;
    Ok(Daemon {
        child,
        _dir: Some(dir),
        metrics: None,
    })
}

/// Peak resident set size of a process, from /proc (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// A `/proc/<pid>/status` field given in KiB (`VmHWM:`, `VmRSS:` ...).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU time process `pid` has used (user and system), in clock
/// ticks (`/proc/<pid>/stat`; 100 per second on Linux).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // utime and stime: fields 14 and 15, counted after the command
    // name's closing parenthesis (the name may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("a short /proc/<pid>/stat")?.parse()?)
    };
    Ok(field(11)? + field(12)?)
}

/// Connect a peer, retrying while the daemon starts listening.
async fn connect(local: Ipv4Addr, target: SocketAddr, asn: u32) -> anyhow::Result<peer::Peer> {
    connect_with(local, target, asn, &[]).await
}

/// [`connect`], offering the `extra` capabilities too.
async fn connect_with(
    local: Ipv4Addr,
    target: SocketAddr,
    asn: u32,
    extra: &[starling_wire::capability::Capability],
) -> anyhow::Result<peer::Peer> {
    // A daemon takes a moment to listen (gobgpd, bgpd): try for 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match peer::Peer::connect(local, target, asn, DUT_AS, extra).await {
            Ok(peer) => return Ok(peer),
            Err(e) if Instant::now() > deadline => return Err(e.context(local)),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// How long the clients of one `rr` run may take.
const RR_DEADLINE: Duration = Duration::from_secs(600);

/// A free port on the daemon's address.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(SocketAddr::from((DUT, 0)))?
        .local_addr()?
        .port())
}

/// One `rib` run (the time until the sink holds every prefix) or, with
/// `then_withdraw`, one `withdraw` run (the table in, then the blaster
/// gone: the time from its connection's end until the sink holds
/// nothing).
async fn one_run(
    dut: Dut,
    stream: &[u8],
    prefixes: usize,
    cpu: usize,
    then_withdraw: bool,
) -> anyhow::Result<(Duration, u64)> {
    let port = free_port()?;
    let daemon = start_dut(dut, port, cpu, 0, Peers::Clients)?;
    let target = SocketAddr::from((DUT, port));
    let mut sink = connect(SINK, target, SINK_AS).await?;
    let mut blaster = connect(BLASTER, target, BLASTER_AS).await?;
    let sink_task = tokio::spawn(async move {
        let seen = AtomicUsize::new(0);
        let done = sink.count_until(prefixes, &seen).await?;
        anyhow::Ok((done, sink))
    });
    let t0 = Instant::now();
    blaster.stream.write_all(stream).await?;
    let (done, mut sink) = tokio::time::timeout(Duration::from_secs(600), sink_task)
        .await
        .context("the sink did not get every prefix within 600 s")???;
    if !then_withdraw {
        let rss = peak_rss_kib(daemon.child.id()).unwrap_or(0);
        return Ok((done - t0, rss));
    }
    // The table is in: the blaster's session ends (no graceful restart
    // offered, so every daemon withdraws at once).
    let t0 = Instant::now();
    drop(blaster);
    let left = AtomicUsize::new(prefixes);
    let done = tokio::time::timeout(Duration::from_secs(600), sink.count_down(prefixes, &left))
        .await
        .with_context(|| {
            format!(
                "the sink still held {} prefixes after 600 s",
                left.load(Ordering::Relaxed)
            )
        })??;
    let rss = peak_rss_kib(daemon.child.id()).unwrap_or(0);
    Ok((done - t0, rss))
}

/// The blaster's pre-encoded stream: the generated table, as one eBGP
/// peer sends it.
fn blaster_stream(prefixes: usize, sets: usize) -> Vec<u8> {
    eprintln!("generating {prefixes} prefixes over {sets} attribute sets ...");
    let table = table::Table::generate(prefixes, sets, BLASTER_AS, SEED);
    let ctx = Context {
        ebgp: true,
        peer_as: DUT_AS,
        ..Context::default()
    };
    let stream = table.encode(BLASTER, &ctx);
    eprintln!("{} MiB of UPDATEs", stream.len() >> 20);
    stream
}

/// `rib`, or with `then_withdraw` `withdraw`, `run.runs` times per daemon.
async fn table_run(run: TableRun, then_withdraw: bool) -> anyhow::Result<()> {
    let TableRun {
        prefixes,
        attribute_sets,
        runs,
        dut,
        cpu,
        ..
    } = run;
    let stream = blaster_stream(prefixes, attribute_sets);
    let results = measure(&dut, runs, async |dut| {
        one_run(dut, &stream, prefixes, cpu, then_withdraw).await
    })
    .await?;
    results.report(if then_withdraw {
        "time from the blaster's session end until the sink holds nothing (s)"
    } else {
        "time until the sink holds every prefix (s)"
    });
    Ok(())
}

/// One route-reflector run: every client sends its stream at once and
/// counts what it is sent until it holds its `wants` prefixes; the time
/// is until the last client does.
async fn one_rr_run(
    dut: Dut,
    kind: Peers,
    streams: &[Vec<u8>],
    wants: &[usize],
    cpu: usize,
) -> anyhow::Result<(Duration, u64)> {
    let port = free_port()?;
    let daemon = start_dut(dut, port, cpu, streams.len(), kind)?;
    let target = SocketAddr::from((DUT, port));
    let mut clients = Vec::with_capacity(streams.len());
    for i in 0..streams.len() {
        let asn = match kind {
            Peers::Clients => DUT_AS,
            Peers::Members | Peers::Blasters => member_as(i),
        };
        clients.push(connect(rr_client(i), target, asn).await?);
    }
    let t0 = Instant::now();
    let seen: Arc<Vec<AtomicUsize>> =
        Arc::new(streams.iter().map(|_| AtomicUsize::new(0)).collect());
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(streams.iter().cloned().zip(wants.iter().copied()))
        .enumerate()
        .map(|(i, (mut client, (stream, want)))| {
            let seen = seen.clone();
            tokio::spawn(async move {
                // A client's own routes are a few hundred KiB at most:
                // they fit in the socket buffers, and a daemon keeps
                // reading while its writes to us wait, so writing before
                // reading cannot stall against the daemon.
                client.stream.write_all(&stream).await?;
                let done = client.count_until(want, &seen[i]).await?;
                // Stay connected until every client is done: a client
                // that left would take its routes with it.
                anyhow::Ok((done, client))
            })
        })
        .collect();
    let mut last = t0;
    let mut finished = Vec::with_capacity(streams.len());
    let deadline = tokio::time::Instant::now() + RR_DEADLINE;
    for task in tasks {
        let Ok(done) = tokio::time::timeout_at(deadline, task).await else {
            let counts: Vec<usize> = seen.iter().map(|s| s.load(Ordering::Relaxed)).collect();
            let short = counts.iter().zip(wants).filter(|(c, w)| c < w).count();
            bail!(
                "{short} clients did not get every prefix within {RR_DEADLINE:?} \
                 (want {:?}; least {:?}, most {:?})",
                wants.iter().max(),
                counts.iter().min(),
                counts.iter().max()
            );
        };
        let (done, client) = done??;
        last = last.max(done);
        finished.push(client);
    }
    let rss = peak_rss_kib(daemon.child.id()).unwrap_or(0);
    drop(finished);
    Ok((last - t0, rss))
}

/// `rr` and `fanout`: `clients` peers of `kind`, the first `originators`
/// of which send `routes` routes each.
async fn rr(
    kind: Peers,
    (clients, originators): (usize, usize),
    routes: usize,
    sets: usize,
    runs: usize,
    duts: &[Dut],
    cpu: usize,
) -> anyhow::Result<()> {
    if !(2..=254).contains(&clients) {
        bail!("between 2 and 254 clients or members");
    }
    if !(1..=clients).contains(&originators) {
        bail!("between 1 and {clients} originators");
    }
    eprintln!("generating {originators} × {routes} prefixes over {sets} attribute sets ...");
    let mut table = table::Table::generate(originators * routes, sets, BLASTER_AS, SEED);
    if kind == Peers::Clients {
        for attrs in &mut table.sets {
            // iBGP: LOCAL_PREF is expected.
            attrs.local_pref = Some(100);
        }
    }
    let mut shares = split_shares(&table, originators);
    let ctx = Context {
        ebgp: kind == Peers::Members,
        peer_as: DUT_AS,
        ..Context::default()
    };
    if kind == Peers::Members {
        for (i, share) in shares.iter_mut().enumerate() {
            lead_with(share, member_as(i));
        }
    }
    // Each client's stream (empty for those that only listen) and what
    // it must end up holding: every route but its own.
    let (streams, wants): (Vec<Vec<u8>>, Vec<usize>) = (0..clients)
        .map(|i| match shares.get(i) {
            Some(share) => (share.encode(rr_client(i), &ctx), (originators - 1) * routes),
            None => (Vec::new(), originators * routes),
        })
        .unzip();
    let results = measure(duts, runs, async |dut| {
        one_rr_run(dut, kind, &streams, &wants, cpu).await
    })
    .await?;
    let want = originators * routes;
    results.report(&match kind {
        Peers::Clients if originators < clients => format!(
            "time until all {clients} clients hold the {want} prefixes of {originators} (s)"
        ),
        Peers::Clients => {
            let want = want - routes;
            format!("time until all {clients} clients hold {want} reflected prefixes (s)")
        }
        Peers::Members | Peers::Blasters => {
            let want = want - routes;
            format!("time until all {clients} members hold {want} prefixes (s)")
        }
    });
    Ok(())
}

/// `table` dealt to `peers` peers: prefix k of the table goes to peer k
/// mod N, so each gets its share over all the attribute sets.
fn split_shares(table: &table::Table, peers: usize) -> Vec<table::Table> {
    let mut shares: Vec<table::Table> = (0..peers)
        .map(|_| table::Table {
            sets: table.sets.clone(),
            groups: vec![Vec::new(); table.sets.len()],
        })
        .collect();
    for (k, (set, nlri)) in table.routes().enumerate() {
        shares[k % peers].groups[set].push(*nlri);
    }
    shares
}

/// Make an eBGP peer's share start its AS paths with the peer's own AS.
fn lead_with(share: &mut table::Table, asn: u32) {
    for attrs in &mut share.sets {
        if let Some(path) = &mut attrs.as_path
            && let Some(first) = path.segments.first_mut().and_then(|s| s.asns.first_mut())
        {
            *first = asn;
        }
    }
}

/// `runs` fresh runs of each daemon in turn, in one invocation: the time
/// and peak RSS (KiB) that `run` measures.
async fn measure(
    duts: &[Dut],
    runs: usize,
    mut run: impl AsyncFnMut(Dut) -> anyhow::Result<(Duration, u64)>,
) -> anyhow::Result<Results> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut results = Results::default();
    for &dut in duts {
        for n in 1..=runs {
            let (time, rss) = run(dut).await?;
            results.add(dut, n, time, rss);
        }
    }
    Ok(results)
}

/// Per-run rows as CSV on stdout as they come, then a summary table.
#[derive(Default)]
struct Results {
    runs: Vec<(Dut, Vec<f64>, Vec<f64>)>,
}

impl Results {
    fn add(&mut self, dut: Dut, run: usize, time: Duration, rss_kib: u64) {
        if self.runs.is_empty() {
            println!("dut,run,seconds,peak_rss_mib");
        }
        let (t, rss) = (time.as_secs_f64(), rss_kib as f64 / 1024.0);
        println!("{dut:?},{run},{t:.3},{rss:.1}");
        match self.runs.iter_mut().find(|(d, _, _)| *d == dut) {
            Some((_, times, sizes)) => {
                times.push(t);
                sizes.push(rss);
            }
            None => self.runs.push((dut, vec![t], vec![rss])),
        }
    }

    /// Per daemon: time and RSS, median (min–max).
    fn summary(&self) -> Vec<(Dut, Stats, Stats)> {
        self.runs
            .iter()
            .map(|(dut, times, sizes)| (*dut, stats(&mut times.clone()), stats(&mut sizes.clone())))
            .collect()
    }

    fn report(self, what: &str) {
        let summary = self.summary();
        println!();
        println!("| daemon | {what}, median (min–max) | peak RSS (MiB), median (min–max) |");
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
    }
}

/// Median, min, max.
type Stats = (f64, f64, f64);

fn stats(v: &mut [f64]) -> Stats {
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    (median, v[0], v[v.len() - 1])
}
