//! perf-method.md's S5: a Calico-like full mesh. N nodes, each in a
//! network namespace of its own, joined by a bridge; every node runs the
//! daemon under test with an iBGP session to every other node, originates
//! its own address block and installs the others' in its kernel table.
//!
//! Measured, with a fresh daemon on every node per run:
//!
//! - **convergence**: from starting the first daemon until every node's
//!   kernel holds its own block (a blackhole, as Calico's BIRD installs
//!   it) and the N − 1 others' (the harness's netlink monitor in each
//!   namespace, confirmed by dumps);
//! - **restarts**: k nodes reboot — the daemon is killed, its routes
//!   flushed (a rebooted kernel has none), the daemon started again — and
//!   the clock runs until every node's kernel holds the whole mesh again;
//! - every daemon's RSS and PSS once the mesh has converged (PSS counts
//!   the pages the nodes share once: what the mesh costs the machine),
//!   and the CPU time they used until then.
//!
//! Starling runs as shipped: `starling run` with Calico's plugins on a
//! datastore holding the mesh's Node, IPPool and BlockAffinity resources
//! (the node-to-node mesh is Calico's default). BIRD runs as Calico's
//! templates configure it: a static blackhole per block, exported to the
//! kernel and to every mesh peer; the lower address of each pair waits
//! for the higher to connect.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{
    ApplianceRuns, Daemon, Dut, Stats, cpu_ticks, ip, kernel, scratch, starling_apply, stats,
    status_kib,
};

/// The mesh's AS (Calico's default).
const MESH_AS: u32 = 64512;
/// How long convergence, or reconvergence after a restart, may take.
const DEADLINE: Duration = Duration::from_secs(180);
/// The largest mesh: one /30 block per node in 203.0.113.0/24.
const MAX_NODES: usize = 64;

#[derive(Debug, clap::Args)]
pub(crate) struct MeshRun {
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Numbers of nodes restarted together after convergence, in turn
    /// (different nodes each time).
    #[arg(long, value_delimiter = ',', default_value = "1,5")]
    restart: Vec<usize>,
    #[command(flatten)]
    daemons: ApplianceRuns,
}

/// Node `i`'s address on the mesh's bridge.
fn node_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 1 + i as u8)
}

/// Node `i`'s MAC address on the bridge (fixed, for its neighbours'
/// permanent entries).
fn node_mac(i: usize) -> String {
    format!("02:00:c0:00:02:{:02x}", 1 + i)
}

/// Node `i`'s address block (its IPAM block, in Calico's terms).
fn node_block(i: usize) -> String {
    format!("203.0.113.{}/30", 4 * i)
}

/// The `rtm_protocol` of a daemon's routes.
fn protocol(dut: Dut) -> anyhow::Result<u8> {
    match dut {
        Dut::Starling => Ok(199),
        Dut::Bird => Ok(12),
        other => bail!("the mesh runs Starling and BIRD (perf-method.md S5), not {other:?}"),
    }
}

/// The namespaces of one invocation, removed when dropped.
struct Topology {
    hub: String,
    nodes: Vec<String>,
}

impl Topology {
    /// A bridge in a hub namespace, and per node a namespace with one end
    /// of a veth pair (`eth0`, the node's address) on it.
    fn build(nodes: usize) -> anyhow::Result<Self> {
        let prefix = format!("starling-bench-{}", std::process::id());
        let topology = Topology {
            hub: format!("{prefix}-hub"),
            nodes: (0..nodes).map(|i| format!("{prefix}-n{i}")).collect(),
        };
        // Built into `topology`, so whatever was made is removed when a
        // step fails.
        let hub = topology.hub.as_str();
        ip(&["netns", "add", hub])?;
        ip(&["-n", hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", hub, "link", "set", "br0", "up"])?;
        for (i, ns) in topology.nodes.iter().enumerate() {
            let (ns, veth) = (ns.as_str(), format!("v{i}"));
            let address = format!("{}/24", node_address(i));
            ip(&["netns", "add", ns])?;
            ip(&[
                "link", "add", &veth, "netns", hub, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ])?;
            ip(&["-n", hub, "link", "set", &veth, "master", "br0", "up"])?;
            ip(&["-n", ns, "link", "set", "eth0", "address", &node_mac(i)])?;
            ip(&["-n", ns, "addr", "add", &address, "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // The kernel's ARP table is shared by every namespace, and 50
        // nodes resolving 49 neighbours each overflow its default limit
        // (gc_thresh3 = 1024: "neighbor table overflow", sessions stuck
        // in Connect). Permanent entries don't count against it, and the
        // host's settings stay as they are.
        for (i, ns) in topology.nodes.iter().enumerate() {
            let script: String = (0..nodes)
                .filter(|j| *j != i)
                .map(|j| {
                    format!(
                        "neigh add {} lladdr {} dev eth0 nud permanent\n",
                        node_address(j),
                        node_mac(j)
                    )
                })
                .collect();
            let mut batch = Command::new("ip")
                .args(["-n", ns, "-batch", "-"])
                .stdin(Stdio::piped())
                .spawn()
                .context("running ip")?;
            {
                use std::io::Write as _;
                let mut input = batch.stdin.take().context("ip's input")?;
                input.write_all(script.as_bytes())?;
            }
            if !batch.wait()?.success() {
                bail!("adding node {i}'s neighbours failed");
            }
        }
        Ok(topology)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain([&self.hub]) {
            // Those a failed build never made are not an error.
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Every node's daemon; stopped all at once when dropped.
struct Nodes {
    daemons: Vec<Option<Daemon>>,
}

impl Nodes {
    fn pid(&self, i: usize) -> anyhow::Result<u32> {
        Ok(self.daemons[i]
            .as_ref()
            .context("a node without its daemon")?
            .child
            .id())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        // SIGTERM to all first: each daemon's own shutdown then overlaps.
        for d in self.daemons.iter().flatten() {
            let _ = Command::new("kill")
                .args(["-TERM", &d.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        self.daemons.clear();
    }
}

/// What one run measured.
struct Sample {
    converge: Duration,
    /// Per restart size: the time until the mesh was whole again.
    restarts: Vec<Duration>,
    /// Per node, once converged.
    rss_kib: Vec<u64>,
    /// Per node, once converged: the proportional set size, where pages
    /// the nodes share (the daemon's binary, mapped 50 times) count once
    /// over all of them.
    pss_kib: Vec<u64>,
    /// CPU time all nodes' daemons used until the mesh converged.
    cpu: Duration,
}

pub(crate) fn run(args: MeshRun) -> anyhow::Result<()> {
    if !(2..=MAX_NODES).contains(&args.nodes) {
        bail!("--nodes must be 2 to {MAX_NODES}");
    }
    let starling = args.daemons.starling_binary()?;
    if args.restart.contains(&0) || args.restart.iter().sum::<usize>() > args.nodes {
        bail!(
            "cannot restart {:?} of {} nodes: each restart takes nodes not restarted before",
            args.restart,
            args.nodes
        );
    }
    for dut in &args.daemons.dut {
        protocol(*dut)?;
    }
    let topology = Topology::build(args.nodes)?;
    let mut header = "dut,run,nodes,converge_seconds".to_string();
    for k in &args.restart {
        header.push_str(&format!(",restart_{k}_seconds"));
    }
    header.push_str(
        ",rss_median_mib,rss_max_mib,rss_total_mib,pss_median_mib,pss_total_mib,cpu_seconds",
    );
    println!("{header}");
    let mut rows: Vec<(Dut, Vec<Sample>)> = Vec::new();
    for &dut in &args.daemons.dut {
        let dir = scratch(&format!("mesh-{dut:?}"))?;
        let prepared = prepare(dut, &dir, args.nodes, &starling)?;
        let mut samples = Vec::new();
        for run in 1..=args.daemons.runs {
            let sample = one_run(dut, &prepared, &topology, &args)
                .with_context(|| format!("{dut:?}, run {run}"))?;
            let rss = rss_stats(&sample.rss_kib);
            let mut row = format!(
                "{dut:?},{run},{},{:.3}",
                args.nodes,
                sample.converge.as_secs_f64()
            );
            for t in &sample.restarts {
                row.push_str(&format!(",{:.3}", t.as_secs_f64()));
            }
            let pss = rss_stats(&sample.pss_kib);
            row.push_str(&format!(
                ",{:.1},{:.1},{:.1},{:.1},{:.1},{:.2}",
                rss.0,
                rss.1,
                rss.2,
                pss.0,
                pss.2,
                sample.cpu.as_secs_f64()
            ));
            println!("{row}");
            samples.push(sample);
        }
        let _ = std::fs::remove_dir_all(&dir);
        rows.push((dut, samples));
    }
    report(&rows, &args);
    Ok(())
}

/// A process's proportional set size (`Pss:` of smaps_rollup), in KiB.
fn pss_of(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Median, max and total over the nodes, in MiB.
fn rss_stats(kib: &[u64]) -> (f64, f64, f64) {
    let mut mib: Vec<f64> = kib.iter().map(|k| *k as f64 / 1024.0).collect();
    let total = mib.iter().sum();
    let (median, _, max) = stats(&mut mib);
    (median, max, total)
}

/// A daemon's per-node files, written once per invocation.
struct Prepared {
    dir: PathBuf,
    /// Per node: the command that starts its daemon.
    commands: Vec<Vec<String>>,
    /// Starling's plugin cache (warm before the first run is timed).
    cache: Option<PathBuf>,
    /// Per node: a pristine datastore, copied afresh for every run.
    stores: Option<PathBuf>,
}

fn prepare(dut: Dut, dir: &Path, nodes: usize, starling: &Path) -> anyhow::Result<Prepared> {
    let mut commands = Vec::new();
    match dut {
        Dut::Starling => {
            let cache = dir.join("plugin-cache");
            let template = dir.join("store-template");
            let resources = dir.join("mesh.yaml");
            std::fs::write(&resources, calico_resources(nodes))?;
            // `apply` validates through Calico's plugin: that compiles it
            // into the cache every node then loads it from.
            starling_apply(starling, &template, &resources, Some(&cache))?;
            for i in 0..nodes {
                let node = dir.join(format!("node{i}"));
                std::fs::create_dir_all(&node)?;
                let config = node.join("starling.toml");
                std::fs::write(
                    &config,
                    format!(
                        "node_name = \"node{i}\"\ndatastore = {:?}\n[admin]\nsocket = {:?}\n",
                        node.join("store"),
                        node.join("admin.sock"),
                    ),
                )?;
                commands.push(vec![
                    starling.display().to_string(),
                    "run".into(),
                    "-c".into(),
                    config.display().to_string(),
                ]);
            }
            Ok(Prepared {
                dir: dir.to_path_buf(),
                commands,
                cache: Some(cache),
                stores: Some(template),
            })
        }
        Dut::Bird => {
            for i in 0..nodes {
                let node = dir.join(format!("node{i}"));
                std::fs::create_dir_all(&node)?;
                let config = node.join("bird.conf");
                std::fs::write(&config, bird_config(i, nodes))?;
                commands.push(vec![
                    "bird".into(),
                    "-f".into(),
                    "-c".into(),
                    config.display().to_string(),
                    "-s".into(),
                    node.join("bird.ctl").display().to_string(),
                ]);
            }
            Ok(Prepared {
                dir: dir.to_path_buf(),
                commands,
                cache: None,
                stores: None,
            })
        }
        other => bail!("no mesh configuration for {other:?}"),
    }
}

/// Calico's resources for the mesh: the default BGPConfiguration (the
/// node-to-node mesh on, as Calico ships it), one Node per node, an
/// IPPool of /30 blocks and each node's block affinity.
fn calico_resources(nodes: usize) -> String {
    let mut text = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
         spec: {{logSeverityScreen: Warning, asNumber: {MESH_AS}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: mesh}}\n\
         spec: {{cidr: 203.0.113.0/24, blockSize: 30}}\n"
    );
    for i in 0..nodes {
        let block = node_block(i);
        text.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: node{i}}}\n\
             spec: {{bgp: {{ipv4Address: {}/24}}}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: BlockAffinity\n\
             metadata: {{name: node{i}-{}}}\n\
             spec: {{node: node{i}, cidr: {block}, state: confirmed}}\n",
            node_address(i),
            block.replace(['.', '/'], "-"),
        ));
    }
    text
}

/// BIRD on node `i` as Calico's templates set it up: its block as a
/// static blackhole, to the kernel and to every mesh peer; the peers'
/// blocks to the kernel, their next hops resolved over the bridge.
fn bird_config(i: usize, nodes: usize) -> String {
    let me = node_address(i);
    let mut text = format!(
        r#"router id {me};
protocol device {{}}
protocol direct {{ ipv4; interface "eth0"; }}
protocol static {{ ipv4; route {block} blackhole; }}
protocol kernel {{ ipv4 {{ export where source = RTS_BGP || source = RTS_STATIC; }}; }}
template bgp mesh {{
    local {me} as {MESH_AS};
    graceful restart on;
    ipv4 {{ import all; export where source = RTS_STATIC; next hop self; }};
}}
"#,
        block = node_block(i)
    );
    for j in (0..nodes).filter(|j| *j != i) {
        let peer = node_address(j);
        // As Calico: of each pair, the lower address waits.
        let passive = if i < j { " passive on;" } else { "" };
        text.push_str(&format!(
            "protocol bgp mesh_{j} from mesh {{ neighbor {peer} as {MESH_AS};{passive} }}\n"
        ));
    }
    text
}

/// Start node `i`'s daemon in its namespace, pinned.
fn spawn(prepared: &Prepared, topology: &Topology, i: usize, cpu: usize) -> anyhow::Result<Daemon> {
    let log = std::fs::File::create(prepared.dir.join(format!("node{i}")).join("log"))?;
    // `ip netns exec` and `taskset` both exec: the child's pid is the
    // daemon's.
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &topology.nodes[i], "taskset", "-c"])
        .arg(cpu.to_string())
        .args(&prepared.commands[i])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(cache) = &prepared.cache {
        command.env("STARLING_CACHE_DIR", cache);
    }
    let child = command.spawn().context("starting a node's daemon")?;
    Ok(Daemon {
        child,
        _dir: None,
        metrics: None,
    })
}

/// A fresh copy of node `i`'s datastore (Starling), so no run starts with
/// the state a previous one wrote.
fn fresh_store(prepared: &Prepared, i: usize) -> anyhow::Result<()> {
    let Some(template) = &prepared.stores else {
        return Ok(());
    };
    let store = prepared.dir.join(format!("node{i}")).join("store");
    let _ = std::fs::remove_dir_all(&store);
    let status = Command::new("cp")
        .arg("-r")
        .arg(template)
        .arg(&store)
        .status()?;
    if !status.success() {
        bail!("copying the datastore for node {i}");
    }
    Ok(())
}

/// Until every monitor's namespace holds `want` routes; when the last got
/// there. One thread per node, so no namespace's announcements wait.
fn wait_all(monitors: &mut [kernel::Monitor], want: usize) -> anyhow::Result<Instant> {
    std::thread::scope(|s| {
        let waiting: Vec<_> = monitors
            .iter_mut()
            .enumerate()
            .map(|(i, m)| (i, s.spawn(move || m.wait_for(want, DEADLINE))))
            .collect();
        let mut last = None;
        for (i, w) in waiting {
            let at = w
                .join()
                .map_err(|_| anyhow::anyhow!("a monitor thread panicked"))?
                .with_context(|| format!("node {i}"))?;
            last = last.max(Some(at));
        }
        last.context("no nodes")
    })
}

/// Every node's table holds exactly `want` of the protocol's routes, by
/// dump (the monitors' count, confirmed).
fn confirm(topology: &Topology, proto: u8, want: usize) -> anyhow::Result<()> {
    for (i, ns) in topology.nodes.iter().enumerate() {
        let held = kernel::in_namespace(ns, || kernel::dump(proto))?.len();
        if held != want {
            bail!("node {i}: the monitor counted {want} routes, a dump finds {held}");
        }
    }
    Ok(())
}

/// The nodes each restart takes down, per restart size: spread over the
/// mesh, so both sides of Calico's who-connects rule restart, and no node
/// twice. A node restarted again within two minutes would meet its peers'
/// flap damping, which is not what a restart of k nodes measures.
fn restart_sets(sizes: &[usize], nodes: usize) -> Vec<Vec<usize>> {
    let mut used = vec![false; nodes];
    sizes
        .iter()
        .map(|&k| {
            (0..k)
                .filter_map(|j| {
                    let target = (2 * j + 1) * nodes / (2 * k);
                    let node = (0..nodes)
                        .map(|step| (target + step) % nodes)
                        .find(|n| !used[*n])?;
                    used[node] = true;
                    Some(node)
                })
                .collect()
        })
        .collect()
}

fn one_run(
    dut: Dut,
    prepared: &Prepared,
    topology: &Topology,
    args: &MeshRun,
) -> anyhow::Result<Sample> {
    let proto = protocol(dut)?;
    let want = args.nodes; // the N − 1 others' blocks and its own
    // Untimed: no node starts with routes or state from before, and every
    // monitor is listening before the first daemon starts.
    let mut monitors = Vec::new();
    for (i, ns) in topology.nodes.iter().enumerate() {
        fresh_store(prepared, i)?;
        let monitor = kernel::in_namespace(ns, || {
            for p in [12, 199] {
                kernel::flush(p)?;
            }
            kernel::Monitor::start(proto)
        })?;
        monitors.push(monitor);
    }

    let t0 = Instant::now();
    let mut nodes = Nodes {
        daemons: Vec::new(),
    };
    for i in 0..args.nodes {
        nodes
            .daemons
            .push(Some(spawn(prepared, topology, i, args.daemons.cpu)?));
    }
    let done = wait_all(&mut monitors, want)
        .map_err(|e| with_logs(e, prepared, args.nodes))
        .context("the mesh never converged")?;
    let converge = done - t0;
    confirm(topology, proto, want)?;
    // One pass over the nodes: memory and the CPU used so far.
    let (mut rss_kib, mut pss_kib, mut ticks) = (Vec::new(), Vec::new(), 0);
    for i in 0..args.nodes {
        let pid = nodes.pid(i)?;
        rss_kib.push(status_kib(pid, "VmRSS:").unwrap_or(0));
        pss_kib.push(pss_of(pid).unwrap_or(0));
        ticks += cpu_ticks(pid)?;
    }
    // /proc counts in USER_HZ, 100 per second on every Linux.
    let cpu = Duration::from_millis(ticks * 10);

    let mut restarts = Vec::new();
    for down in restart_sets(&args.restart, args.nodes) {
        // A reboot: the daemon dies without a word, the kernel forgets
        // its routes. The peers notice the connection close.
        for &i in &down {
            if let Some(mut daemon) = nodes.daemons[i].take() {
                let _ = daemon.child.kill();
                let _ = daemon.child.wait();
            }
            kernel::in_namespace(&topology.nodes[i], || kernel::flush(proto))?;
            monitors[i].drain()?;
            if monitors[i].held() != 0 {
                bail!("node {i}: routes left after the flush");
            }
        }
        let t0 = Instant::now();
        for &i in &down {
            nodes.daemons[i] = Some(spawn(prepared, topology, i, args.daemons.cpu)?);
        }
        // Announcements already queued (a peer that dropped the node's
        // block) count before the wait starts.
        for m in &mut monitors {
            m.drain()?;
        }
        let done = wait_all(&mut monitors, want)
            .map_err(|e| with_logs(e, prepared, args.nodes))
            .with_context(|| format!("the mesh never recovered from restarting {down:?}"))?;
        restarts.push(done - t0);
        confirm(topology, proto, want)?;
    }
    Ok(Sample {
        converge,
        restarts,
        rss_kib,
        pss_kib,
        cpu,
    })
}

/// `e`, with the first node log that says anything (why a daemon failed).
fn with_logs(e: anyhow::Error, prepared: &Prepared, nodes: usize) -> anyhow::Error {
    let said = (0..nodes).find_map(|i| {
        let log =
            std::fs::read_to_string(prepared.dir.join(format!("node{i}")).join("log")).ok()?;
        (!log.trim().is_empty()).then(|| format!("node {i}'s log:\n{log}"))
    });
    match said {
        Some(log) => e.context(log),
        None => e,
    }
}

fn report(rows: &[(Dut, Vec<Sample>)], args: &MeshRun) {
    let median = |v: Vec<f64>| -> Stats { stats(&mut v.clone()) };
    println!();
    let mut head = "| daemon | converge (s)".to_string();
    for k in &args.restart {
        head.push_str(&format!(" | restart {k} (s)"));
    }
    head.push_str(
        " | RSS per node (MiB) | PSS per node (MiB) | PSS, all nodes (MiB) | CPU until converged (s) |",
    );
    println!("{head}");
    println!(
        "|---|---{}|---|---|---|---|",
        "|---".repeat(args.restart.len())
    );
    let mut medians = Vec::new();
    for (dut, samples) in rows {
        let converge = median(samples.iter().map(|s| s.converge.as_secs_f64()).collect());
        let mut line = format!(
            "| {dut:?} | {:.2} ({:.2}–{:.2})",
            converge.0, converge.1, converge.2
        );
        let mut restarts = Vec::new();
        for r in 0..args.restart.len() {
            let t = median(
                samples
                    .iter()
                    .map(|s| s.restarts[r].as_secs_f64())
                    .collect(),
            );
            line.push_str(&format!(" | {:.2} ({:.2}–{:.2})", t.0, t.1, t.2));
            restarts.push(t.0);
        }
        let per_node = median(samples.iter().map(|s| rss_stats(&s.rss_kib).0).collect());
        let pss = median(samples.iter().map(|s| rss_stats(&s.pss_kib).0).collect());
        let total = median(samples.iter().map(|s| rss_stats(&s.pss_kib).2).collect());
        let cpu = median(samples.iter().map(|s| s.cpu.as_secs_f64()).collect());
        line.push_str(&format!(
            " | {:.1} | {:.1} | {:.0} | {:.2} |",
            per_node.0, pss.0, total.0, cpu.0
        ));
        println!("{line}");
        medians.push((*dut, converge.0, restarts, total.0));
    }
    if let [(first, c, r, m), rest @ ..] = medians.as_slice() {
        println!();
        for (other, oc, or, om) in rest {
            let restarts: Vec<String> = r
                .iter()
                .zip(or)
                .zip(&args.restart)
                .map(|((a, b), k)| format!("restart {k} {:.2}", a / b))
                .collect();
            println!(
                "ratio {first:?}/{other:?}: converge {:.2}, {}, memory (PSS, all nodes) {:.2}",
                c / oc,
                restarts.join(", "),
                m / om
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_spread_and_never_repeat_a_node() {
        assert_eq!(
            restart_sets(&[1, 5], 50),
            vec![vec![25], vec![5, 15, 26, 35, 45]]
        );
        let mut all: Vec<usize> = restart_sets(&[10, 40], 50).concat();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn blocks_and_addresses_stay_inside_the_documentation_networks() {
        assert_eq!(node_block(MAX_NODES - 1), "203.0.113.252/30");
        assert_eq!(node_address(MAX_NODES - 1), Ipv4Addr::new(192, 0, 2, 64));
    }

    #[test]
    fn bird_waits_for_the_higher_address_only() {
        let config = bird_config(1, 3);
        assert!(config.contains("neighbor 192.0.2.1 as 64512; }"));
        assert!(config.contains("neighbor 192.0.2.3 as 64512; passive on; }"));
        assert!(!config.contains("neighbor 192.0.2.2 "));
    }
}
