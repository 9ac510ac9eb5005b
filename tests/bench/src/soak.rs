//! The soak: a week of churn in an hour. A hundred eBGP peers against the
//! appliance (`starling run`, Calico's plugins, the FIB programming a
//! kernel table in the benchmark's namespace): sessions flap at random,
//! routes are announced and withdrawn, the import filter is edited every
//! minute (each edit a ROUTE-REFRESH to every peer) and the route-policy
//! plugin reloaded every five. Every `--sample-seconds` the harness
//! samples the daemon's RSS, open file descriptors, runtime tasks, its
//! Loc-RIB, Adj-RIB-In and Adj-RIB-Out sizes and the kernel's routes.
//! At the end of the first quarter, then every ten minutes and at the
//! end, the churn pauses until every session is up and the daemon idle,
//! and the kernel table must then be exactly the RIB's best paths.
//!
//! It fails when that check fails, or when RSS, descriptors or tasks
//! keep growing: the last quarter of the run against the second (the
//! first is the table coming in). The samples go to `soak.csv` and a plot
//! to `soak.svg` in `--out`.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use starling_wire::builder::encode_withdrawals;
use starling_wire::capability::Capability;
use starling_wire::notification::code;
use starling_wire::{Context, Family, Message, Notification};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::{
    DUT, DUT_AS, Daemon, SEED, connect_with, fib, free_port, kernel, lead_with, member_as,
    rr_client, scratch, split_shares, status_kib, table,
};

/// The Starling FIB's `rtm_protocol` (starling-fib's default).
const PROTOCOL: u8 = 199;
/// Chunks of each peer's share that come and go during the churn.
const CHUNKS: usize = 8;

#[derive(Debug, clap::Args)]
pub(super) struct SoakRun {
    /// eBGP peers, one AS each.
    #[arg(long, default_value_t = 100)]
    pub(super) peers: usize,
    /// How long the churn lasts, in minutes.
    #[arg(long, default_value_t = 60.0)]
    minutes: f64,
    /// Prefixes each peer owns (half of them always announced while its
    /// session is up, half coming and going in chunks).
    #[arg(long, default_value_t = 400)]
    routes: usize,
    #[arg(long, default_value_t = 10)]
    sample_seconds: u64,
    /// Where `soak.csv` and `soak.svg` go.
    #[arg(long, default_value = "soak")]
    out: PathBuf,
    /// The appliance binary (default: `starling` beside this one).
    #[arg(long)]
    starling: Option<PathBuf>,
    /// The Calico plugin's component, served from a file so it can be
    /// reloaded (default: the build's `target/plugins/.../starling_calico.wasm`).
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// Seconds between edits of the import filter.
    #[arg(long, default_value_t = 60)]
    edit_seconds: u64,
    /// Seconds between reloads of the route-policy plugin.
    #[arg(long, default_value_t = 300)]
    reload_seconds: u64,
    /// The RSS the last quarter of the run may reach, as a multiple of
    /// the second quarter's (plus 8 MiB): the allocator's arenas settle
    /// over tens of minutes, so a short run needs more room than the hour.
    #[arg(long, default_value_t = 1.15)]
    rss_growth: f64,
    /// The CPU the daemon is pinned to.
    #[arg(long, default_value_t = 1)]
    cpu: usize,
    #[arg(long, hide = true)]
    pub(super) inside: bool,
}

/// What one peer sends: its stable half, and the chunks that churn.
struct PeerWork {
    stable: Vec<u8>,
    announce: Vec<Vec<u8>>,
    withdraw: Vec<Vec<u8>>,
}

/// What the churn is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Churn,
    /// No flaps, no route changes; sessions stay (or come back) up.
    Quiet,
    Stop,
}

/// One sample of the daemon.
#[derive(Debug, Clone, Default)]
struct Sample {
    seconds: f64,
    rss_mib: f64,
    fds: u64,
    tasks: u64,
    sessions_up: u64,
    loc_rib: u64,
    adj_rib_in: u64,
    adj_rib_out: u64,
    kernel: u64,
}

/// One column of the samples.
type Series = fn(&Sample) -> f64;

const COLUMNS: &str = "seconds,rss_mib,fds,tasks,sessions_up,loc_rib,adj_rib_in,adj_rib_out,kernel";

impl Sample {
    fn csv(&self) -> String {
        format!(
            "{:.0},{:.1},{},{},{},{},{},{},{}",
            self.seconds,
            self.rss_mib,
            self.fds,
            self.tasks,
            self.sessions_up,
            self.loc_rib,
            self.adj_rib_in,
            self.adj_rib_out,
            self.kernel
        )
    }
}

/// Counters the peers keep, for the report.
#[derive(Default)]
struct Churned {
    flaps: AtomicU64,
    toggles: AtomicU64,
    refreshes: AtomicU64,
}

pub(super) async fn run(args: SoakRun) -> anyhow::Result<()> {
    if !(1..=254).contains(&args.peers) {
        bail!("between 1 and 254 peers");
    }
    let starling = args.starling.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .unwrap_or_default()
            .with_file_name("starling")
    });
    if !starling.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p starling) or pass --starling",
            starling.display()
        );
    }
    let plugin = match &args.plugin {
        Some(p) => p.clone(),
        None => default_plugin()?,
    };
    std::fs::create_dir_all(&args.out)?;
    let work = Arc::new(workload(args.peers, args.routes));
    let port = free_port()?;
    let dir = scratch("soak")?;
    let served_plugin = dir.join("calico.wasm");
    std::fs::copy(&plugin, &served_plugin)
        .with_context(|| format!("copying {}", plugin.display()))?;
    let (daemon, metrics, store) = start_starling(&starling, &dir, port, &args, &served_plugin)?;
    let pid = daemon.child.id();
    let socket = dir.join("admin.sock");
    let target = SocketAddr::from((DUT, port));

    let (phase_tx, phase) = watch::channel(Phase::Churn);
    let churned = Arc::new(Churned::default());
    let mut peers = tokio::task::JoinSet::new();
    for i in 0..args.peers {
        peers.spawn(peer_loop(
            i,
            target,
            work.clone(),
            phase.clone(),
            churned.clone(),
        ));
    }

    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let check_every = Duration::from_secs(600)
        .min(total / 2)
        .max(Duration::from_secs(60));
    let interval = Duration::from_secs(args.sample_seconds.max(1));
    let started = Instant::now();
    let mut csv = std::fs::File::create(args.out.join("soak.csv"))?;
    writeln!(csv, "{COLUMNS}")?;
    let mut samples: Vec<Sample> = Vec::new();
    let mut checks: Vec<String> = Vec::new();
    let (edit_every, reload_every) = (
        Duration::from_secs(args.edit_seconds.max(1)),
        Duration::from_secs(args.reload_seconds.max(1)),
    );
    // The first check ends the warm-up (the first quarter): the quarter
    // that growth is measured against then holds what every check costs
    // (the RIB's dump through the admin socket), as the last one does.
    let (mut next_sample, mut next_edit, mut next_reload, mut next_check) = (
        started,
        started + edit_every,
        started + reload_every,
        started + total / 4,
    );
    let (mut edits, mut reloads) = (0u32, 0u32);
    eprintln!(
        "soak: {} peers × {} prefixes for {:.1} min; samples every {interval:?}, checks every {check_every:?}",
        args.peers, args.routes, args.minutes
    );
    eprintln!("{COLUMNS}");
    while started.elapsed() < total {
        let now = Instant::now();
        if now >= next_sample {
            let s = sample(pid, metrics, started).await;
            writeln!(csv, "{}", s.csv())?;
            eprintln!("{}", s.csv());
            samples.push(s);
            next_sample += interval;
        }
        if now >= next_edit {
            edits += 1;
            edit_filter(&starling, &store, edits)?;
            next_edit += edit_every;
        }
        if now >= next_reload {
            reloads += 1;
            // The same bytes, a new file: the daemon loads, self-tests and
            // swaps it as it does a new build (from its compile cache).
            let tmp = dir.join("calico.wasm.new");
            std::fs::copy(&plugin, &tmp)?;
            std::fs::rename(&tmp, &served_plugin)?;
            next_reload += reload_every;
        }
        if now >= next_check {
            checks.push(checkpoint(&phase_tx, pid, metrics, &socket, args.peers).await?);
            next_check += check_every;
        }
        if let Some(Ok(Err(e))) = peers.try_join_next() {
            bail!("a peer gave up: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    checks.push(checkpoint(&phase_tx, pid, metrics, &socket, args.peers).await?);
    let _ = phase_tx.send(Phase::Stop);
    peers.abort_all();
    let last = sample(pid, metrics, started).await;
    writeln!(csv, "{}", last.csv())?;
    samples.push(last);
    drop(daemon);

    plot(&samples, &args.out.join("soak.svg"))?;
    let verdicts = growth(&samples, args.rss_growth);
    println!(
        "soak: {:.1} min, {} peers × {} prefixes; {} session flaps, {} route changes, {} ROUTE-REFRESH answered, {edits} filter edits, {reloads} plugin reloads",
        args.minutes,
        args.peers,
        args.routes,
        churned.flaps.load(Ordering::Relaxed),
        churned.toggles.load(Ordering::Relaxed),
        churned.refreshes.load(Ordering::Relaxed),
    );
    for c in &checks {
        println!("check: {c}");
    }
    let mut failed = false;
    for (name, verdict) in &verdicts {
        println!("{name}: {verdict}");
        failed |= verdict.starts_with("GROWS");
    }
    println!("samples: {}", args.out.join("soak.csv").display());
    println!("plot: {}", args.out.join("soak.svg").display());
    if failed {
        bail!("a resource grew without bound");
    }
    Ok(())
}

/// `target/plugins/wasm32-wasip2/plugin/starling_calico.wasm` next to the
/// build this binary came from.
fn default_plugin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .context("not run from a cargo target directory: pass --plugin")?;
    let path = target.join("plugins/wasm32-wasip2/plugin/starling_calico.wasm");
    if !path.exists() {
        bail!(
            "{} not found: cargo build first, or pass --plugin",
            path.display()
        );
    }
    Ok(path)
}

/// Each peer's share of a generated table, its first AS its own, split
/// into a stable half and [`CHUNKS`] chunks that come and go. Next hops
/// are gateways on the namespace's `fib0` link, so every best path can be
/// installed.
fn workload(peers: usize, routes: usize) -> Vec<PeerWork> {
    let table = table::Table::generate(peers * routes, 50, 0, SEED);
    let ctx = Context {
        ebgp: true,
        peer_as: DUT_AS,
        ..Context::default()
    };
    split_shares(&table, peers)
        .iter_mut()
        .enumerate()
        .map(|(i, share)| {
            lead_with(share, member_as(i));
            let gateway = Ipv4Addr::new(203, 0, 113, 2 + (i % 200) as u8);
            let (stable, churning) = halves(share);
            let chunks = split_shares(&churning, CHUNKS);
            PeerWork {
                stable: stable.encode(gateway, &ctx),
                announce: chunks.iter().map(|c| c.encode(gateway, &ctx)).collect(),
                withdraw: chunks
                    .iter()
                    .map(|c| {
                        let nlri: Vec<_> = c.routes().map(|(_, n)| *n).collect();
                        let mut out = Vec::new();
                        encode_withdrawals(Family::IPV4_UNICAST, &nlri, &ctx, &mut out);
                        out
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A share split in two: every other prefix.
fn halves(share: &table::Table) -> (table::Table, table::Table) {
    let mut stable = table::Table {
        sets: share.sets.clone(),
        groups: vec![Vec::new(); share.groups.len()],
    };
    let mut churning = table::Table {
        sets: share.sets.clone(),
        groups: vec![Vec::new(); share.groups.len()],
    };
    let mut k = 0usize;
    for (g, group) in share.groups.iter().enumerate() {
        for n in group {
            if k.is_multiple_of(2) {
                stable.groups[g].push(*n);
            } else {
                churning.groups[g].push(*n);
            }
            k += 1;
        }
    }
    (stable, churning)
}

/// A small deterministic generator per peer: runs repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn seconds(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(1000 * low + self.below(1000 * (high - low)))
    }
}

/// One peer, for the whole soak: connect, send what it announces, churn
/// its chunks, answer ROUTE-REFRESH, leave and come back at random.
async fn peer_loop(
    i: usize,
    target: SocketAddr,
    work: Arc<Vec<PeerWork>>,
    mut phase: watch::Receiver<Phase>,
    churned: Arc<Churned>,
) -> anyhow::Result<()> {
    let mine = &work[i];
    let mut rng = Rng(SEED ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut announced = vec![true; CHUNKS];
    loop {
        if *phase.borrow() == Phase::Stop {
            return Ok(());
        }
        let peer = match connect_with(
            rr_client(i),
            target,
            member_as(i),
            &[Capability::RouteRefresh],
        )
        .await
        {
            Ok(p) => p,
            // Refused while the daemon damps us (its error wait): retry.
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (mut read, mut write) = peer.into_stream().into_split();
        let (refresh_tx, mut refresh) = mpsc::channel::<()>(4);
        // The DUT's UPDATEs are read and dropped; a ROUTE-REFRESH is
        // passed on; the end of the connection ends the session.
        let reader = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1 << 16);
            loop {
                let mut chunk = [0u8; 1 << 16];
                let n = read.read(&mut chunk).await?;
                if n == 0 {
                    return anyhow::Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
                let mut at = 0;
                while buf.len() >= at + 19 {
                    let len = usize::from(u16::from_be_bytes([buf[at + 16], buf[at + 17]]));
                    if len < 19 || buf.len() < at + len {
                        break;
                    }
                    if buf[at + 18] == 5 {
                        let _ = refresh_tx.try_send(());
                    }
                    at += len;
                }
                buf.drain(..at);
            }
        });
        let everything = |announced: &[bool]| -> Vec<u8> {
            let mut out = mine.stable.clone();
            for (k, on) in announced.iter().enumerate() {
                if *on {
                    out.extend_from_slice(&mine.announce[k]);
                }
            }
            out
        };
        let keepalive = Message::Keepalive.to_bytes(&Context::default())?;
        let session = async {
            write.write_all(&everything(&announced)).await?;
            let lifetime = rng.seconds(30, 300);
            let ends = tokio::time::Instant::now() + lifetime;
            let mut next_keepalive = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let churning = *phase.borrow() == Phase::Churn;
                let toggle_in = rng.seconds(2, 20);
                tokio::select! {
                    () = tokio::time::sleep(toggle_in), if churning => {
                        let k = rng.below(CHUNKS as u64) as usize;
                        announced[k] = !announced[k];
                        let bytes = if announced[k] { &mine.announce[k] } else { &mine.withdraw[k] };
                        write.write_all(bytes).await?;
                        churned.toggles.fetch_add(1, Ordering::Relaxed);
                    }
                    () = tokio::time::sleep_until(ends), if churning => {
                        // Leave as an operator would: Cease.
                        let cease = Message::Notification(Notification::cease_with_message(
                            code::cease::ADMIN_RESET,
                            "soak: leaving for a while",
                        ));
                        let _ = write.write_all(&cease.to_bytes(&Context::default())?).await;
                        churned.flaps.fetch_add(1, Ordering::Relaxed);
                        return anyhow::Ok(());
                    }
                    () = tokio::time::sleep_until(next_keepalive) => {
                        write.write_all(&keepalive).await?;
                        next_keepalive += Duration::from_secs(30);
                    }
                    Some(()) = refresh.recv() => {
                        write.write_all(&everything(&announced)).await?;
                        churned.refreshes.fetch_add(1, Ordering::Relaxed);
                    }
                    changed = phase.changed() => {
                        if changed.is_err() || *phase.borrow() == Phase::Stop {
                            return anyhow::Ok(());
                        }
                    }
                }
            }
        };
        let ended = tokio::select! {
            ended = session => ended,
            _ = reader => Ok(()),
        };
        // A write that fails is the DUT closing the session (a filter
        // or plugin change it applies by reset, its hold timer): the
        // loop reconnects, as a real neighbour does.
        let _ = ended;
        // Out for a few seconds, as a restarting neighbour is.
        tokio::time::sleep(rng.seconds(1, 5)).await;
    }
}

/// The daemon's configuration and resources: the peers through the
/// `soak` filter (import rules edited during the run, every route from a
/// peer exported to the others), the route-policy role from a file.
fn start_starling(
    exe: &Path,
    dir: &Path,
    port: u16,
    args: &SoakRun,
    plugin: &Path,
) -> anyhow::Result<(Daemon, SocketAddr, PathBuf)> {
    let store = dir.join("store");
    let resources = dir.join("soak.yaml");
    let mut text = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
         spec: {{logSeverityScreen: Warning, nodeToNodeMeshEnabled: false, asNumber: {DUT_AS}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: dut}}\n\
         spec: {{bgp: {{ipv4Address: {DUT}/24}}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {{name: soak}}\n\
         spec: {{importV4: {}, exportV4: [{{action: Accept, source: RemotePeers}}]}}\n",
        filter_rules(0)
    );
    for i in 0..args.peers {
        text += &format!(
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: peer-{i}}}\n\
             spec: {{peerIP: {}, asNumber: {}, filters: [soak]}}\n",
            rr_client(i),
            member_as(i)
        );
    }
    std::fs::write(&resources, text)?;
    super::starling_apply(exe, &store, &resources, None)?;
    let metrics = SocketAddr::from((DUT, free_port()?));
    let config = dir.join("starling.toml");
    std::fs::write(
        &config,
        format!(
            "node_name = \"dut\"\ndatastore = {store:?}\n\
             [bgp]\nlisten = [\"{DUT}:{port}\"]\nerror_wait = [1, 10]\n\
             [admin]\nsocket = {:?}\n[metrics]\nlisten = \"{metrics}\"\n\
             [plugins]\nroute_policy = {plugin:?}\n",
            dir.join("admin.sock"),
        ),
    )?;
    let child = super::spawn_appliance(exe, &config, args.cpu)?;
    Ok((
        Daemon {
            child,
            _dir: Some(dir.to_owned()),
            metrics: Some(metrics),
        },
        metrics,
        store,
    ))
}

/// The import rules of edit `n`: reject one /4 of the address space,
/// a different one each edit. JSON, which is YAML too: the resource file
/// and the patch take the same text.
fn filter_rules(n: u32) -> String {
    let first = 16 * (n % 14) as u8 + 16;
    format!(r#"[{{"action": "Reject", "matchOperator": "In", "cidr": "{first}.0.0.0/4"}}]"#)
}

fn edit_filter(exe: &Path, store: &Path, n: u32) -> anyhow::Result<()> {
    let patch = format!(r#"{{"spec": {{"importV4": {}}}}}"#, filter_rules(n));
    let out = Command::new(exe)
        .arg("--datastore")
        .arg(store)
        .args(["patch", "bgpfilter", "soak", "-p", &patch])
        .output()
        .context("starling patch")?;
    if !out.status.success() {
        bail!("starling patch: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Pause the churn until every session is up and the daemon idle; then
/// the kernel must hold exactly the RIB's best paths. Resumes the churn.
async fn checkpoint(
    phase: &watch::Sender<Phase>,
    pid: u32,
    metrics: SocketAddr,
    socket: &Path,
    peers: usize,
) -> anyhow::Result<String> {
    let _ = phase.send(Phase::Quiet);
    let paused = Instant::now();
    let deadline = paused + Duration::from_secs(180);
    loop {
        let up = metric_sum(&scrape(metrics).await, "starling_bgp_peer_up{");
        if up as usize == peers {
            break;
        }
        if Instant::now() > deadline {
            bail!("checkpoint: only {up} of {peers} sessions up after 180 s of quiet");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::task::spawn_blocking(move || fib::settle(pid)).await??;
    let best = best_paths(socket).await?;
    let installed: BTreeSet<(Ipv4Addr, u8)> =
        tokio::task::spawn_blocking(|| kernel::dump(PROTOCOL))
            .await??
            .into_iter()
            .collect();
    let _ = phase.send(Phase::Churn);
    let missing = best.difference(&installed).count();
    let extra = installed.difference(&best).count();
    if missing + extra > 0 {
        bail!(
            "checkpoint: the kernel differs from the RIB's best paths: {missing} missing, {extra} extra (of {})",
            best.len()
        );
    }
    Ok(format!(
        "kernel = RIB best paths ({} routes), settled {:.1} s after the churn paused",
        best.len(),
        paused.elapsed().as_secs_f64()
    ))
}

/// The IPv4 prefixes the daemon's RIB selects, from its admin socket
/// (what `starling routes` prints).
async fn best_paths(socket: &Path) -> anyhow::Result<BTreeSet<(Ipv4Addr, u8)>> {
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("admin socket {}", socket.display()))?;
    stream.write_all(b"routes\n").await?;
    let mut text = Vec::new();
    stream.read_to_end(&mut text).await?;
    let answer: serde_json::Value = serde_json::from_slice(&text).context("routes answer")?;
    let mut best = BTreeSet::new();
    for route in answer["routes"].as_array().into_iter().flatten() {
        if route["best"] != true {
            continue;
        }
        let Some((address, length)) = route["prefix"].as_str().and_then(|p| p.split_once('/'))
        else {
            continue;
        };
        if let (Ok(address), Ok(length)) = (address.parse::<Ipv4Addr>(), length.parse::<u8>()) {
            best.insert((address, length));
        }
    }
    Ok(best)
}

/// Sample the daemon: /proc for memory and descriptors, its metrics for
/// the rest, the kernel for its routes.
async fn sample(pid: u32, metrics: SocketAddr, started: Instant) -> Sample {
    let text = scrape(metrics).await;
    let kernel = tokio::task::spawn_blocking(|| kernel::dump(PROTOCOL).map(|r| r.len()))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Sample {
        seconds: started.elapsed().as_secs_f64(),
        rss_mib: status_kib(pid, "VmRSS").unwrap_or_default() as f64 / 1024.0,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64),
        tasks: metric_sum(&text, "starling_runtime_tasks "),
        sessions_up: metric_sum(&text, "starling_bgp_peer_up{"),
        loc_rib: metric_sum(&text, "starling_bgp_loc_rib_prefixes "),
        adj_rib_in: metric_sum(&text, "starling_bgp_prefixes_received{"),
        adj_rib_out: metric_sum(&text, "starling_bgp_prefixes_advertised{"),
        kernel: kernel as u64,
    }
}

/// The sum of every series whose line starts with `prefix`.
fn metric_sum(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// GET /metrics (HTTP/1.0, one connection, in a blocking thread).
async fn scrape(at: SocketAddr) -> String {
    tokio::task::spawn_blocking(move || {
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&at, Duration::from_secs(5))
        else {
            return String::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: soak\r\n\r\n");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    })
    .await
    .unwrap_or_default()
}

/// Per resource, whether it grew: the mean of the last quarter against
/// the second (the first quarter is the table coming in).
fn growth(samples: &[Sample], rss_growth: f64) -> Vec<(&'static str, String)> {
    let n = samples.len();
    let quarter = |k: usize| &samples[k * n / 4..((k + 1) * n / 4).max(k * n / 4 + 1).min(n)];
    let mean =
        |s: &[Sample], f: fn(&Sample) -> f64| s.iter().map(f).sum::<f64>() / s.len().max(1) as f64;
    let limits: [(&str, Series, f64, f64); 3] = [
        // (name, value, allowed ratio, allowed absolute slack)
        ("RSS (MiB)", |s| s.rss_mib, rss_growth, 8.0),
        ("open descriptors", |s| s.fds as f64, 1.0, 8.0),
        ("runtime tasks", |s| s.tasks as f64, 1.0, 16.0),
    ];
    limits
        .iter()
        .map(|&(name, f, ratio, slack)| {
            if n < 8 {
                return (name, "too few samples to judge".to_owned());
            }
            let (second, last) = (mean(quarter(1), f), mean(quarter(3), f));
            let bound = second * ratio + slack;
            let verdict = if last > bound { "GROWS" } else { "bounded" };
            (
                name,
                format!("{verdict}: second quarter {second:.1}, last quarter {last:.1} (limit {bound:.1})"),
            )
        })
        .collect()
}

/// The samples as an SVG: one panel per series.
fn plot(samples: &[Sample], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let series: [(&str, Series); 8] = [
        ("RSS (MiB)", |s| s.rss_mib),
        ("open descriptors", |s| s.fds as f64),
        ("runtime tasks", |s| s.tasks as f64),
        ("sessions up", |s| s.sessions_up as f64),
        ("Loc-RIB prefixes", |s| s.loc_rib as f64),
        ("Adj-RIB-In prefixes", |s| s.adj_rib_in as f64),
        ("Adj-RIB-Out prefixes", |s| s.adj_rib_out as f64),
        ("kernel routes", |s| s.kernel as f64),
    ];
    let root = SVGBackend::new(path, (1200, 1400)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((4, 2));
    let minutes = samples
        .last()
        .map_or(1.0, |s| s.seconds / 60.0)
        .max(1.0 / 60.0);
    for (panel, (name, f)) in panels.iter().zip(series) {
        let top = samples.iter().map(f).fold(0.0f64, f64::max).max(1.0) * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(name, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..minutes, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(LineSeries::new(
            samples.iter().map(|s| (s.seconds / 60.0, f(s))),
            &BLUE,
        ))?;
    }
    root.present()?;
    Ok(())
}
