//! `starling lab`: a lab on this machine. N nodes, each a network
//! namespace running its own Starling daemon, joined by a bridge (in a
//! "fabric" namespace) on 192.0.2.0/24; optionally a BIRD 2 ToR in its
//! own namespace; a shared datastore (embedded, or etcd in the fabric
//! namespace); each node owning the pod block 10.244.<i>.0/26 with a
//! workload address 10.244.<i>.10 on its loopback, so traffic can flow.
//!
//! Everything the lab creates is named after it (`sl-<name>-…`) and
//! recorded in its directory; `lab down` removes all of it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

mod model;

use model::{apply_fabric, apply_resources, node_config, tor_config};
use serde::{Deserialize, Serialize};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum LabCommand {
    /// Build the lab and start every node's daemon.
    Up(UpArgs),
    /// Stop everything and remove every namespace and file of the lab.
    Down(LabArgs),
    /// Each node: daemon running, sessions Established / planned.
    Status(LabArgs),
    /// Run a command inside a node (`starling lab exec node-1 -- starling node status`).
    Exec(ExecArgs),
    /// Stop a node's daemon: SIGTERM, or SIGKILL with `--kill` (a crash;
    /// its routes stay in the kernels for the graceful-restart time).
    Stop(StopArgs),
    /// Start a stopped node's daemon again.
    Start(NodeArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    #[command(flatten)]
    lab: LabArgs,
    /// The node (`node-1`).
    node: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct StopArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// SIGKILL instead of SIGTERM: no NOTIFICATION, no clean-up.
    #[arg(long)]
    kill: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LabArgs {
    /// The lab's name: its namespaces are `sl-<name>-…`.
    #[arg(long, default_value = "lab")]
    name: String,
    /// Where the lab keeps its state, configs, logs and datastore.
    #[arg(long, default_value = "/run/starling-lab")]
    dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    lab: LabArgs,
    /// How many nodes (at most 200).
    #[arg(long, default_value_t = 4)]
    nodes: u8,
    /// Add a BIRD 2 top-of-rack router (192.0.2.1, AS 64567) that accepts
    /// BGP from any node.
    #[arg(long)]
    tor: bool,
    /// Share an etcd server (in the fabric namespace) instead of the
    /// embedded datastore.
    #[arg(long)]
    etcd: bool,
    /// Start with route reflectors instead of the mesh: nodes 1..=K get
    /// the cluster id 244.0.0.1 and the label `route-reflector=true`, the
    /// guide's `peer-with-route-reflectors` BGPPeer is applied and the
    /// mesh is off.
    #[arg(long, default_value_t = 0, value_name = "K")]
    reflectors: u8,
    /// Run every node with this plugin for a role: `ROLE=PLUGIN`, the
    /// role spelt as for `starling plan --plugin` (`route-reflection`) or
    /// as in `starling.toml` (`route_reflection`), the plugin a built-in
    /// name or a `.wasm` file, which every node's daemon watches and
    /// hot-loads when it changes (repeatable). Default: Calico's plugins.
    #[arg(long = "plugin", value_name = "ROLE=PLUGIN", value_parser = parse_plugin)]
    plugins: Vec<(String, String)>,
    /// The resource model the nodes run on: `calico` (the guide's
    /// resources), or `fabric` (the example fabric plugin's `FabricNode`
    /// resources and no Calico kind: dual-stack, each node with one
    /// session to the ToR carrying IPv4 and IPv6).
    #[arg(long, value_enum, default_value_t = Model::Calico)]
    model: Model,
    /// IPv6 too (the fabric model always has it): each node gets
    /// 2001:db8::1N beside 192.0.2.1N and a workload at
    /// 2001:db8:244:N::10, the pool 2001:db8:244::/48 gives each node a
    /// /122 block, the mesh runs in both families, and the ToR (2001:db8::1)
    /// takes IPv6 sessions too.
    #[arg(long)]
    dual_stack: bool,
}

/// The resources a lab is described with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Model {
    #[default]
    Calico,
    Fabric,
}

const ROLES: [&str; 6] = [
    "as_assignment",
    "route_reflection",
    "node_identity",
    "peer_selection",
    "origination",
    "route_policy",
];

fn parse_plugin(arg: &str) -> Result<(String, String), String> {
    let (role, plugin) = arg
        .split_once('=')
        .ok_or_else(|| format!("'{arg}': expected ROLE=PLUGIN"))?;
    // `plan --plugin route-reflection=…` and `[plugins] route_reflection`
    // both name the role: a lab takes what the user just typed for either.
    let role = role.replace('-', "_");
    if !ROLES.contains(&role.as_str()) {
        return Err(format!(
            "'{role}' is not a role (one of {})",
            ROLES.join(", ")
        ));
    }
    let plugin = if plugin.ends_with(".wasm") {
        // Nodes run elsewhere: name the file absolutely.
        std::path::absolute(plugin)
            .map_err(|e| format!("{plugin}: {e}"))?
            .display()
            .to_string()
    } else {
        plugin.to_owned()
    };
    Ok((role, plugin))
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    lab: LabArgs,
    /// The node (`node-1`) or `tor`.
    node: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// What `lab up` made, for `status`, `exec` and `down`.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    name: String,
    nodes: Vec<String>,
    tor: bool,
    etcd: bool,
    #[serde(default)]
    model: Model,
    #[serde(default)]
    dual_stack: bool,
    /// Process ids of the daemons, BIRD and etcd.
    pids: Vec<(String, u32)>,
}

/// The lab's bridge address (etcd listens here in etcd mode).
const FABRIC_IP: &str = "192.0.2.2";
const TOR_IP: &str = "192.0.2.1";
/// The ToR's IPv6 address, in the fabric model.
const TOR_IP6: &str = "2001:db8::1";
const TOR_AS: u32 = 64567;

fn namespace(lab: &str, member: &str) -> String {
    format!("sl-{lab}-{member}")
}

fn node_ip(i: usize) -> String {
    format!("192.0.2.{}", 10 + i)
}

/// A node's IPv6 address on the bridge, in the fabric model.
fn node_ip6(i: usize) -> String {
    format!("2001:db8::{}", 10 + i)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A fixed, locally administered MAC address for a lab member's `eth0`,
/// from its IPv4 address (02:00 then the four octets).
fn mac(address: &str) -> String {
    let octets: Vec<u8> = address.split('.').filter_map(|o| o.parse().ok()).collect();
    format!(
        "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
        octets[0], octets[1], octets[2], octets[3]
    )
}

/// Every member knows every other member's MAC from the start. The
/// kernel's ARP table is shared by all namespaces and holds at most
/// `gc_thresh3` (1024) learned entries: a 100-node mesh needs ten times
/// that, and ARP then fails ("neighbor table overflow"). Permanent entries
/// do not count against it, and leave the host's settings alone.
fn permanent_neighbours(lab: &LabArgs, state: &State) -> anyhow::Result<()> {
    let mut members: Vec<(String, String)> = state
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.clone(), node_ip(i + 1)))
        .collect();
    if state.tor {
        members.push(("tor".to_owned(), TOR_IP.to_owned()));
    }
    for (member, _) in &members {
        let batch: String = members
            .iter()
            .filter(|(other, _)| other != member)
            .map(|(_, address)| {
                format!(
                    "neigh replace {address} lladdr {} dev eth0 nud permanent\n",
                    mac(address)
                )
            })
            .collect();
        let file = lab.dir.join("neighbours.batch");
        std::fs::write(&file, batch)?;
        ip(&[
            "-n",
            &namespace(&lab.name, member),
            "-batch",
            &file.display().to_string(),
        ])?;
    }
    Ok(())
}

fn sysctl(ns: &str, setting: &str) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-qw", setting])
        .output()
        .context("running sysctl")?;
    if !out.status.success() {
        bail!(
            "sysctl {setting} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl LabArgs {
    fn state_file(&self) -> PathBuf {
        self.dir.join("lab.json")
    }

    fn load(&self) -> anyhow::Result<State> {
        let path = self.state_file();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no lab '{}' here ({})", self.name, path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a lab state", path.display()))
    }

    /// The environment that points `starling` inside the lab at its
    /// datastore and at `node`'s admin socket.
    fn env(&self, state: &State, node: &str) -> Vec<(String, String)> {
        let mut env = vec![(
            "STARLING_ADMIN_SOCKET".to_owned(),
            self.dir.join(node).join("admin.sock").display().to_string(),
        )];
        if state.etcd {
            env.push(("DATASTORE_TYPE".to_owned(), "etcdv3".to_owned()));
            env.push((
                "ETCD_ENDPOINTS".to_owned(),
                format!("http://{FABRIC_IP}:2379"),
            ));
        } else {
            env.push((
                "STARLING_DATASTORE".to_owned(),
                self.dir.join("store").display().to_string(),
            ));
        }
        env.push((
            "STARLING_CACHE_DIR".to_owned(),
            self.dir.join("plugin-cache").display().to_string(),
        ));
        env
    }
}

pub(crate) fn run(command: &LabCommand) -> anyhow::Result<ExitCode> {
    match command {
        LabCommand::Up(args) => up(args),
        LabCommand::Down(args) => down(args),
        LabCommand::Status(args) => status(args),
        LabCommand::Exec(args) => exec(args),
        LabCommand::Stop(args) => stop(args),
        LabCommand::Start(args) => start(args),
    }
}

fn up(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let lab = &args.lab;
    if !(1..=200).contains(&args.nodes) {
        bail!("--nodes: {} is not between 1 and 200", args.nodes);
    }
    if args.reflectors > args.nodes {
        bail!(
            "--reflectors: {} is more than the {} nodes",
            args.reflectors,
            args.nodes
        );
    }
    if lab.state_file().exists() {
        bail!(
            "lab '{}' is already up ({}); `starling lab down` first",
            lab.name,
            lab.state_file().display()
        );
    }
    std::fs::create_dir_all(&lab.dir).with_context(|| format!("creating {}", lab.dir.display()))?;
    let mut state = State {
        name: lab.name.clone(),
        nodes: (1..=usize::from(args.nodes))
            .map(|i| format!("node-{i}"))
            .collect(),
        tor: args.tor,
        etcd: args.etcd,
        model: args.model,
        dual_stack: args.dual_stack || args.model == Model::Fabric,
        pids: Vec::new(),
    };
    // Saved first: a failure half-way leaves something `down` can remove.
    save(lab, &state)?;
    let result = build(args, &mut state);
    save(lab, &state)?;
    if let Err(e) = result {
        eprintln!("lab up failed, tearing down: {e:#}");
        let _ = down(lab);
        return Err(e);
    }
    println!(
        "lab '{}' is up: {} nodes{}{} (`starling lab status --name {}`)",
        lab.name,
        state.nodes.len(),
        if state.tor { ", a ToR" } else { "" },
        if state.etcd { ", etcd" } else { "" },
        lab.name
    );
    Ok(ExitCode::SUCCESS)
}

fn save(lab: &LabArgs, state: &State) -> anyhow::Result<()> {
    std::fs::write(lab.state_file(), serde_json::to_string_pretty(state)?)
        .with_context(|| format!("writing {}", lab.state_file().display()))
}

fn build(args: &UpArgs, state: &mut State) -> anyhow::Result<()> {
    let lab = &args.lab;
    let fabric = namespace(&lab.name, "fabric");
    ip(&["netns", "add", &fabric])?;
    ip(&["-n", &fabric, "link", "set", "lo", "up"])?;
    ip(&["-n", &fabric, "link", "add", "br0", "type", "bridge"])?;
    ip(&[
        "-n",
        &fabric,
        "addr",
        "add",
        &format!("{FABRIC_IP}/24"),
        "dev",
        "br0",
    ])?;
    ip(&["-n", &fabric, "link", "set", "br0", "up"])?;
    let attach = |member: &str, port: &str, address: &str| -> anyhow::Result<String> {
        let ns = namespace(&lab.name, member);
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &fabric,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "address",
            &mac(address),
            "netns",
            &ns,
        ])?;
        ip(&["-n", &fabric, "link", "set", port, "master", "br0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        // Nodes and the ToR route for others, as Calico hosts do.
        sysctl(&ns, "net.ipv4.ip_forward=1")?;
        Ok(ns)
    };
    let dual_stack = state.dual_stack;
    let add_ipv6 = |ns: &str, address: &str, on: &str, len: u8| -> anyhow::Result<()> {
        if !dual_stack {
            return Ok(());
        }
        sysctl(ns, "net.ipv6.conf.all.forwarding=1")?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{address}/{len}"),
            "dev",
            on,
            "nodad",
        ])
    };
    for (i, node) in state.nodes.iter().enumerate() {
        let ns = attach(node, &format!("n{}", i + 1), &node_ip(i + 1))?;
        // The node's workload: an address in its pod block.
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.244.{}.10/32", i + 1),
            "dev",
            "lo",
        ])?;
        add_ipv6(&ns, &node_ip6(i + 1), "eth0", 64)?;
        add_ipv6(&ns, &format!("2001:db8:244:{}::10", i + 1), "lo", 128)?;
        std::fs::create_dir_all(lab.dir.join(node))?;
    }
    if args.tor {
        let ns = attach("tor", "tor", TOR_IP)?;
        add_ipv6(&ns, TOR_IP6, "eth0", 64)?;
        std::fs::create_dir_all(lab.dir.join("tor"))?;
    }
    permanent_neighbours(lab, state)?;
    if args.etcd {
        let pid = spawn(
            &fabric,
            "etcd",
            &[
                "--name=lab".to_owned(),
                format!("--data-dir={}", lab.dir.join("etcd").display()),
                format!("--listen-client-urls=http://{FABRIC_IP}:2379"),
                format!("--advertise-client-urls=http://{FABRIC_IP}:2379"),
                format!("--listen-peer-urls=http://{FABRIC_IP}:2380"),
                format!("--initial-advertise-peer-urls=http://{FABRIC_IP}:2380"),
                format!("--initial-cluster=lab=http://{FABRIC_IP}:2380"),
            ],
            &[],
            &lab.dir.join("etcd.log"),
        )?;
        state.pids.push(("etcd".to_owned(), pid));
    }
    if args.tor {
        let conf = lab.dir.join("tor").join("bird.conf");
        std::fs::write(&conf, tor_config(args.model, state.dual_stack))?;
        let pid = spawn(
            &namespace(&lab.name, "tor"),
            "bird",
            &[
                "-f".to_owned(),
                "-c".to_owned(),
                conf.display().to_string(),
                "-s".to_owned(),
                lab.dir.join("tor").join("bird.ctl").display().to_string(),
            ],
            &[],
            &lab.dir.join("tor").join("bird.log"),
        )?;
        state.pids.push(("tor".to_owned(), pid));
    }
    match args.model {
        Model::Calico => apply_resources(lab, state, usize::from(args.reflectors))?,
        Model::Fabric => apply_fabric(lab, state)?,
    }
    let exe = std::env::current_exe().context("finding the starling binary")?;
    for (i, node) in state.nodes.iter().enumerate() {
        let dir = lab.dir.join(node);
        let config = dir.join("starling.toml");
        let plugins = match args.model {
            Model::Calico => args.plugins.clone(),
            Model::Fabric => ROLES
                .iter()
                .map(|role| (role.to_string(), "fabric".to_owned()))
                .collect(),
        };
        std::fs::write(&config, node_config(lab, state, node, i + 1, &plugins))?;
        let pid = start_daemon(lab, state, node, &exe)?;
        state.pids.push((node.clone(), pid));
    }
    // Up means every daemon answers on its admin socket.
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in &state.nodes {
        wait_for_daemon(lab, node, deadline)?;
    }
    Ok(())
}

/// Run `node`'s daemon on the configuration `lab up` wrote.
fn start_daemon(lab: &LabArgs, state: &State, node: &str, exe: &Path) -> anyhow::Result<u32> {
    let dir = lab.dir.join(node);
    spawn(
        &namespace(&lab.name, node),
        &exe.display().to_string(),
        &[
            "run".to_owned(),
            "-c".to_owned(),
            dir.join("starling.toml").display().to_string(),
        ],
        &lab.env(state, node),
        &dir.join("starling.log"),
    )
}

/// Wait until `node`'s daemon answers on its admin socket.
fn wait_for_daemon(lab: &LabArgs, node: &str, deadline: Instant) -> anyhow::Result<()> {
    let socket = lab.dir.join(node).join("admin.sock");
    while crate::calico::node_status::ask_for(&socket, "status").is_err() {
        if Instant::now() > deadline {
            bail!(
                "{node}'s daemon did not start; see {}",
                lab.dir.join(node).join("starling.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The running daemon's pid, if `node` has one.
fn daemon_pid(state: &State, node: &str) -> Option<u32> {
    state
        .pids
        .iter()
        .find(|(n, pid)| n == node && alive(*pid))
        .map(|(_, pid)| *pid)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `kill -SIGNAL pid`; whether it was delivered.
fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Wait until `pid` is gone, or `deadline`; whether it is gone.
fn wait_gone(pid: u32, deadline: Instant) -> bool {
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn stop(args: &StopArgs) -> anyhow::Result<ExitCode> {
    let NodeArgs { lab, node } = &args.node;
    let state = lab.load()?;
    if !state.nodes.contains(node) {
        bail!("no node '{node}' in lab '{}'", lab.name);
    }
    let Some(pid) = daemon_pid(&state, node) else {
        bail!("{node}'s daemon is not running");
    };
    let sig = if args.kill { "-KILL" } else { "-TERM" };
    if !signal(pid, sig) {
        bail!("kill {sig} {pid} failed");
    }
    if !wait_gone(pid, Instant::now() + Duration::from_secs(10)) {
        bail!("{node}'s daemon (pid {pid}) did not stop");
    }
    println!(
        "{node}'s daemon {}",
        if args.kill { "killed" } else { "stopped" }
    );
    Ok(ExitCode::SUCCESS)
}

fn start(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    let NodeArgs { lab, node } = args;
    let mut state = lab.load()?;
    if !state.nodes.contains(node) {
        bail!("no node '{node}' in lab '{}'", lab.name);
    }
    if let Some(pid) = daemon_pid(&state, node) {
        bail!("{node}'s daemon is already running (pid {pid})");
    }
    let exe = std::env::current_exe().context("finding the starling binary")?;
    let pid = start_daemon(lab, &state, node, &exe)?;
    state.pids.retain(|(n, _)| n != node);
    state.pids.push((node.clone(), pid));
    save(lab, &state)?;
    wait_for_daemon(lab, node, Instant::now() + Duration::from_secs(60))?;
    println!("{node}'s daemon started (pid {pid})");
    Ok(ExitCode::SUCCESS)
}

/// Start `program` inside `ns`, detached from this process (it outlives
/// `lab up`), logging to `log`. `ip netns exec` execs the program, so the
/// pid is the program's.
fn spawn(
    ns: &str,
    program: &str,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    // Appended: a restarted daemon's log follows its predecessor's.
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        // STARLING_LAB_LOG: the nodes' log filter (RUST_LOG syntax), for
        // chasing a failure with debug logs.
        .env(
            "RUST_LOG",
            std::env::var("STARLING_LAB_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {program} in {ns}"))?;
    Ok(child.id())
}

fn down(lab: &LabArgs) -> anyhow::Result<ExitCode> {
    let state = lab.load().ok();
    if let Some(state) = &state {
        // Daemons first (SIGTERM: Cease to their peers), then BIRD and etcd.
        for (_, pid) in &state.pids {
            signal(*pid, "-TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (what, pid) in &state.pids {
            if !wait_gone(*pid, deadline) {
                eprintln!("{what} (pid {pid}) did not stop; killing it");
                signal(*pid, "-KILL");
            }
        }
    }
    // Every namespace of the lab, recorded or not.
    let prefix = format!("sl-{}-", lab.name);
    let list = Command::new("ip").args(["netns", "list"]).output()?;
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or_default();
        if ns.starts_with(&prefix) {
            ip(&["netns", "del", ns])?;
        }
    }
    if lab.dir.exists() {
        std::fs::remove_dir_all(&lab.dir)
            .with_context(|| format!("removing {}", lab.dir.display()))?;
    }
    println!("lab '{}' is down", lab.name);
    Ok(ExitCode::SUCCESS)
}

fn status(lab: &LabArgs) -> anyhow::Result<ExitCode> {
    let state = lab.load()?;
    println!("{:<10} {:<8} {:<22} SESSIONS", "NODE", "DAEMON", "ADDRESS");
    for (i, node) in state.nodes.iter().enumerate() {
        let running = daemon_pid(&state, node).is_some();
        let sessions = match crate::calico::node_status::ask_for(
            &lab.dir.join(node).join("admin.sock"),
            "status",
        ) {
            Ok(v) => {
                let all = v["sessions"].as_array().cloned().unwrap_or_default();
                let up = all.iter().filter(|s| s["state"] == "Established").count();
                format!("{up}/{} Established", all.len())
            }
            Err(_) => "-".to_owned(),
        };
        println!(
            "{node:<10} {:<8} {:<22} {sessions}",
            if running { "running" } else { "stopped" },
            node_ip(i + 1)
        );
    }
    if state.tor {
        println!(
            "{:<10} {:<8} {:<22} BIRD 2, AS {TOR_AS}",
            "tor", "bird", TOR_IP
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn exec(args: &ExecArgs) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let lab = &args.lab;
    let state = lab.load()?;
    if args.node != "tor" && !state.nodes.contains(&args.node) {
        bail!(
            "no node '{}' in lab '{}' (nodes: {})",
            args.node,
            lab.name,
            state.nodes.join(", ")
        );
    }
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &namespace(&lab.name, &args.node)])
        .args(&args.command)
        .envs(lab.env(&state, &args.node));
    // `starling` inside means this binary.
    if args.command.first().is_some_and(|c| c == "starling") {
        command = Command::new("ip");
        command
            .args(["netns", "exec", &namespace(&lab.name, &args.node)])
            .arg(std::env::current_exe()?)
            .args(&args.command[1..])
            .envs(lab.env(&state, &args.node));
    }
    let error = command.exec();
    Err(error).context("running the command in the node")
}
