//! perf-method.md's S7, policy reload: a hundred eBGP peers each send
//! their own share of the table through the same import filter (a
//! prefix list and a community), and a sink gets every accepted route.
//! Once the table is in and the daemon is idle, the filter is replaced
//! the way an operator of that daemon replaces it — `starling patch
//! bgpfilter` (Calico's resource), `birdc configure`, FRR's `vtysh` and
//! `clear bgp * soft in` — and the clock runs from that command until the
//! sink holds exactly what the new filter accepts. Reported: that
//! completion time, the stall (the longest the sink waits for an UPDATE
//! meanwhile, the wait for the first one included), and peak RSS.
//!
//! None of the daemons keeps what a filter rejected, so each asks the
//! peers to send their routes again (ROUTE-REFRESH); the harness's peers
//! offer the capability and replay their stream when asked.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use starling_wire::attr::Community;
use starling_wire::capability::Capability;
use starling_wire::{Context, PathAttributes, Prefix};

use super::{
    ApplianceRuns, BGPD_CONF, DUT, DUT_AS, Daemon, Dut, SEED, SINK, SINK_AS, Stats, connect,
    connect_with, free_port, frr_peer_group, lead_with, member_as, peak_rss_kib, peer, rr_client,
    scratch, spawn_bgpd, spawn_bird_in, split_shares, stats, table,
};

/// How long the table may take to arrive, and the new filter to apply.
const DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, clap::Args)]
pub(super) struct PolicyRun {
    /// Peers, each sending its own share of the table through the filter.
    #[arg(long, default_value_t = 100)]
    pub(super) peers: usize,
    /// Routes each peer sends.
    #[arg(long, default_value_t = 10_000)]
    routes: usize,
    #[arg(long, default_value_t = 1_000)]
    attribute_sets: usize,
    #[command(flatten)]
    daemons: ApplianceRuns,
    #[arg(long, hide = true)]
    pub(super) inside: bool,
}

/// One version of the peers' import filter: reject a route inside (or
/// equal to) one of `networks`, or carrying `community`; accept the
/// rest. The same semantics in every daemon's language: Calico's `In`
/// operator, BIRD's `net ~ [ n+ ]`, FRR's `le 32`.
#[derive(Clone)]
struct Filter {
    networks: Vec<(Ipv4Addr, u8)>,
    community: (u16, u16),
}

/// How many networks each filter version names.
const NETWORKS: usize = 32;

impl Filter {
    /// Version 1 or 2. Each names 32 /9s (about 7 % of the table) and a
    /// community one attribute set in sixteen carries (about 6 %); the two
    /// versions share neither, so the change withdraws one eighth of the
    /// table and announces another.
    fn version(v: u8) -> Self {
        let (first, second) = if v == 1 { (8, 0) } else { (11, 128) };
        Filter {
            networks: (0..NETWORKS as u8)
                .map(|k| (Ipv4Addr::new(first + 6 * k, second, 0, 0), 9))
                .collect(),
            community: (DUT_AS as u16, 1000 + u16::from(v)),
        }
    }

    fn community(&self) -> Community {
        Community((u32::from(self.community.0) << 16) | u32::from(self.community.1))
    }

    fn rejects(&self, addr: Ipv4Addr, len: u8, attrs: &PathAttributes) -> bool {
        let inside = |&(net, bits): &(Ipv4Addr, u8)| {
            let mask = u32::MAX << (32 - bits);
            len >= bits && u32::from(addr) & mask == u32::from(net)
        };
        self.networks.iter().any(inside) || attrs.communities.contains(&self.community())
    }

    /// The rules of a Calico BGPFilter's `importV4`, as JSON.
    fn calico_rules(&self) -> String {
        let (a, b) = self.community;
        let rules: Vec<String> = self
            .networks
            .iter()
            .map(|(net, bits)| {
                format!(r#"{{"action": "Reject", "matchOperator": "In", "cidr": "{net}/{bits}"}}"#)
            })
            .chain([format!(
                r#"{{"action": "Reject", "communities": {{"values": ["{a}:{b}"]}}}}"#
            )])
            .collect();
        format!("[{}]", rules.join(", "))
    }

    /// BIRD's filter `s7_in`.
    fn bird(&self) -> String {
        let networks: Vec<String> = self
            .networks
            .iter()
            .map(|(net, bits)| format!("{net}/{bits}+"))
            .collect();
        let (a, b) = self.community;
        format!(
            "filter s7_in {{\n  if net ~ [ {} ] then reject;\n  if ({a}, {b}) ~ bgp_community then reject;\n  accept;\n}}\n",
            networks.join(", ")
        )
    }

    /// FRR's prefix list `S7-P` and community list `S7-C`, as
    /// configuration commands (route map `S7-IN` denies what they match).
    fn frr(&self) -> Vec<String> {
        let (a, b) = self.community;
        self.networks
            .iter()
            .enumerate()
            .map(|(i, (net, bits))| {
                format!(
                    "ip prefix-list S7-P seq {} permit {net}/{bits} le 32",
                    i + 1
                )
            })
            .chain([format!("bgp community-list standard S7-C permit {a}:{b}")])
            .collect()
    }
}

/// The peers' streams and what each filter version leaves.
struct Workload {
    streams: Vec<Vec<u8>>,
    total: usize,
    /// The prefixes each version rejects ([`peer::prefix_key`]).
    rejected: [HashSet<u64>; 2],
}

impl Workload {
    fn build(args: &PolicyRun, filters: &[Filter; 2]) -> Self {
        let (peers, routes) = (args.peers, args.routes);
        eprintln!(
            "generating {peers} × {routes} prefixes over {} attribute sets ...",
            args.attribute_sets
        );
        let mut table = table::Table::generate(peers * routes, args.attribute_sets, 0, SEED);
        for (i, attrs) in table.sets.iter_mut().enumerate() {
            match i % 16 {
                1 => attrs.communities.push(filters[0].community()),
                2 => attrs.communities.push(filters[1].community()),
                _ => {}
            }
        }
        let mut rejected = [HashSet::new(), HashSet::new()];
        let v4 = table.routes().filter_map(|(set, n)| match n.prefix {
            Prefix::V4(p) => Some((set, p)),
            Prefix::V6(_) => None,
        });
        for (set, p) in v4 {
            for (filter, rejected) in filters.iter().zip(&mut rejected) {
                if filter.rejects(p.addr(), p.prefix_len(), &table.sets[set]) {
                    rejected.insert(peer::prefix_key(p.addr(), p.prefix_len()));
                }
            }
        }
        let ctx = Context {
            ebgp: true,
            peer_as: DUT_AS,
            ..Context::default()
        };
        let streams = split_shares(&table, peers)
            .iter_mut()
            .enumerate()
            .map(|(i, share)| {
                lead_with(share, member_as(i));
                share.encode(rr_client(i), &ctx)
            })
            .collect();
        let k = table.len();
        eprintln!(
            "version 1 rejects {}, version 2 {} of {k} prefixes",
            rejected[0].len(),
            rejected[1].len()
        );
        Workload {
            streams,
            total: k,
            rejected,
        }
    }
}

/// What the sink holds, against what one filter version should leave.
struct Held<'a> {
    prefixes: HashSet<u64>,
    rejected: &'a HashSet<u64>,
    /// Held prefixes the version rejects.
    wrongly: usize,
    want: usize,
}

impl<'a> Held<'a> {
    fn against(&mut self, rejected: &'a HashSet<u64>, total: usize) {
        self.rejected = rejected;
        self.wrongly = self
            .prefixes
            .iter()
            .filter(|k| rejected.contains(k))
            .count();
        self.want = total - rejected.len();
    }

    fn apply(&mut self, changes: &[(bool, u64)]) {
        for &(announced, key) in changes {
            let changed = if announced {
                self.prefixes.insert(key)
            } else {
                self.prefixes.remove(&key)
            };
            if changed && self.rejected.contains(&key) {
                if announced {
                    self.wrongly += 1;
                } else {
                    self.wrongly -= 1;
                }
            }
        }
    }

    fn complete(&self) -> bool {
        self.wrongly == 0 && self.prefixes.len() == self.want
    }
}

/// What one run measured.
struct Sample {
    /// From the peers' first UPDATE until the sink holds what the first
    /// filter accepts (S3's measure, through the filter).
    table_in: Duration,
    /// From the command until the sink holds what the new filter accepts.
    completion: Duration,
    /// From the command until the sink's first UPDATE.
    first: Duration,
    /// The longest the sink waited for an UPDATE, `first` included.
    stall: Duration,
    rss_kib: u64,
    /// Then every peer's session ends at once: from then until the sink
    /// holds nothing.
    teardown: Duration,
}

pub(super) async fn run(args: PolicyRun) -> anyhow::Result<()> {
    if !(1..=254).contains(&args.peers) {
        bail!("between 1 and 254 peers");
    }
    let starling = args.daemons.starling_binary()?;
    let filters = [Filter::version(1), Filter::version(2)];
    let work = Workload::build(&args, &filters);
    println!("dut,run,table_in_s,completion_s,first_update_s,stall_s,peak_rss_mib,teardown_s");
    let mut samples: Vec<(Dut, Sample)> = Vec::new();
    for &dut in &args.daemons.dut {
        for n in 1..=args.daemons.runs {
            let s = one_run(dut, &work, &filters, &args, &starling).await?;
            println!(
                "{dut:?},{n},{:.3},{:.3},{:.3},{:.3},{:.1},{:.3}",
                s.table_in.as_secs_f64(),
                s.completion.as_secs_f64(),
                s.first.as_secs_f64(),
                s.stall.as_secs_f64(),
                s.rss_kib as f64 / 1024.0,
                s.teardown.as_secs_f64()
            );
            samples.push((dut, s));
        }
    }
    report(&args.daemons.dut, &samples);
    Ok(())
}

fn report(duts: &[Dut], samples: &[(Dut, Sample)]) {
    let of = |dut: Dut, field: fn(&Sample) -> f64| -> Stats {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|(d, _)| *d == dut)
            .map(|(_, s)| field(s))
            .collect();
        stats(&mut v)
    };
    let table_in = |s: &Sample| s.table_in.as_secs_f64();
    let completion = |s: &Sample| s.completion.as_secs_f64();
    let stall = |s: &Sample| s.stall.as_secs_f64();
    let first = |s: &Sample| s.first.as_secs_f64();
    let rss = |s: &Sample| s.rss_kib as f64 / 1024.0;
    let teardown = |s: &Sample| s.teardown.as_secs_f64();
    println!();
    println!(
        "| daemon | table in (s) | completion (s) | stall (s) | first UPDATE (s) | peak RSS (MiB) | all sessions end: until the sink holds nothing (s) |\n|---|---|---|---|---|---|---|"
    );
    let cell =
        |(m, lo, hi): Stats, digits: usize| format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})");
    for &dut in duts {
        println!(
            "| {dut:?} | {} | {} | {} | {} | {} | {} |",
            cell(of(dut, table_in), 2),
            cell(of(dut, completion), 2),
            cell(of(dut, stall), 2),
            cell(of(dut, first), 2),
            cell(of(dut, rss), 0),
            cell(of(dut, teardown), 2)
        );
    }
    if let [head, rest @ ..] = duts {
        println!();
        for &other in rest {
            println!(
                "ratio {head:?}/{other:?}: table in {:.2}, completion {:.2}, stall {:.2}, RSS {:.2}, teardown {:.2}",
                of(*head, table_in).0 / of(other, table_in).0,
                of(*head, completion).0 / of(other, completion).0,
                of(*head, stall).0 / of(other, stall).0,
                of(*head, rss).0 / of(other, rss).0,
                of(*head, teardown).0 / of(other, teardown).0
            );
        }
    }
}

async fn one_run(
    dut: Dut,
    work: &Workload,
    filters: &[Filter; 2],
    args: &PolicyRun,
    starling: &std::path::Path,
) -> anyhow::Result<Sample> {
    let port = free_port()?;
    let cpu = args.daemons.cpu;
    let started = match dut {
        Dut::Starling => start_starling(starling, port, cpu, args.peers, &filters[0])?,
        Dut::Bird => start_bird(port, cpu, args.peers, &filters[0])?,
        Dut::Frr => start_frr(port, cpu, args.peers, &filters[0])?,
        Dut::Gobgp => bail!("the policy scenario has no GoBGP setup yet"),
    };
    let target = SocketAddr::from((DUT, port));
    let mut sink = connect(SINK, target, SINK_AS).await?;
    let mut peers = Vec::with_capacity(work.streams.len());
    for i in 0..work.streams.len() {
        peers.push(
            connect_with(
                rr_client(i),
                target,
                member_as(i),
                &[Capability::RouteRefresh],
            )
            .await?,
        );
    }
    // Each peer sends its share, then replays it whenever asked; a peer
    // whose session fails ends the run.
    let mut serving = tokio::task::JoinSet::new();
    for (mut p, stream) in peers.into_iter().zip(work.streams.iter().cloned()) {
        serving.spawn(async move { p.serve(&stream).await });
    }
    let loading = Instant::now();
    let mut held = Held {
        prefixes: HashSet::with_capacity(work.total),
        rejected: &work.rejected[0],
        wrongly: 0,
        want: work.total - work.rejected[0].len(),
    };
    let table_in = async {
        sink.follow_prefixes(|changes| {
            held.apply(changes);
            held.complete()
        })
        .await
    };
    tokio::select! {
        done = tokio::time::timeout(DEADLINE, table_in) => {
            done.with_context(|| format!("{dut:?}: the sink never held what filter 1 accepts"))??;
        }
        failed = serving.join_next() => bail!("{dut:?}: a peer's session ended: {failed:?}"),
    }
    let table_in = loading.elapsed();
    let pid = started.daemon.child.id();
    tokio::task::spawn_blocking(move || super::fib::settle(pid)).await??;

    held.against(&work.rejected[1], work.total);
    let mut arrivals: Vec<Instant> = Vec::new();
    let t0 = Instant::now();
    let change = tokio::task::spawn_blocking({
        let reload = started.reload.clone();
        let filter = filters[1].clone();
        move || reload.apply(&filter)
    });
    let reloaded = async {
        sink.follow_prefixes(|changes| {
            arrivals.push(Instant::now());
            held.apply(changes);
            held.complete()
        })
        .await
    };
    let done = tokio::select! {
        done = tokio::time::timeout(DEADLINE, reloaded) => done.with_context(|| {
            format!(
                "{dut:?}: {DEADLINE:?} after the change the sink held {} prefixes ({} of them rejected by the new filter), want {}",
                held.prefixes.len(), held.wrongly, held.want
            )
        })??,
        failed = serving.join_next() => bail!("{dut:?}: a peer's session ended: {failed:?}"),
    };
    change.await??;
    let rss_kib = peak_rss_kib(pid).unwrap_or(0);
    // Every session ends at once (a switch restarting, say; no graceful
    // restart offered): the clock runs until the sink holds nothing.
    tokio::task::spawn_blocking(move || super::fib::settle(pid)).await??;
    let down = Instant::now();
    serving.abort_all();
    let emptied = sink.follow_prefixes(|changes| {
        held.apply(changes);
        held.prefixes.is_empty()
    });
    let emptied = tokio::time::timeout(DEADLINE, emptied)
        .await
        .with_context(|| {
            format!(
                "{dut:?}: {DEADLINE:?} after the sessions ended the sink held {} prefixes",
                held.prefixes.len()
            )
        })??;
    let mut last = t0;
    let mut stall = Duration::ZERO;
    for &at in &arrivals {
        stall = stall.max(at - last);
        last = at;
    }
    Ok(Sample {
        table_in,
        completion: done - t0,
        first: arrivals.first().map_or(Duration::ZERO, |&at| at - t0),
        stall,
        rss_kib,
        teardown: emptied - down,
    })
}

/// A running daemon and how its filter is changed.
struct Started {
    daemon: Daemon,
    reload: Reload,
}

/// The operator's way to replace the filter in each daemon.
#[derive(Debug, Clone)]
enum Reload {
    /// `starling patch bgpfilter s7` in the datastore the daemon watches.
    Starling {
        exe: std::path::PathBuf,
        store: std::path::PathBuf,
    },
    /// Rewrite the configuration, then `birdc configure`.
    Bird {
        conf: std::path::PathBuf,
        socket: std::path::PathBuf,
        peers: usize,
        port: u16,
    },
    /// The lists replaced through `vtysh`, then `clear bgp * soft in`.
    Frr { dir: std::path::PathBuf },
}

impl Reload {
    fn apply(&self, filter: &Filter) -> anyhow::Result<()> {
        let output = match self {
            Reload::Starling { exe, store } => Command::new(exe)
                .arg("--datastore")
                .arg(store)
                .args(["patch", "bgpfilter", "s7", "-p"])
                .arg(format!(
                    r#"{{"spec": {{"importV4": {}}}}}"#,
                    filter.calico_rules()
                ))
                .output()
                .context("running starling patch")?,
            Reload::Bird {
                conf,
                socket,
                peers,
                port,
            } => {
                std::fs::write(conf, bird_config(*peers, filter, *port))?;
                let output = Command::new("birdc")
                    .arg("-s")
                    .arg(socket)
                    .arg("configure")
                    .output()
                    .context("running birdc")?;
                if !String::from_utf8_lossy(&output.stdout).contains("Reconfigured") {
                    bail!(
                        "birdc configure: {}",
                        String::from_utf8_lossy(&output.stdout)
                    );
                }
                output
            }
            Reload::Frr { dir } => {
                let mut command = Command::new("vtysh");
                command
                    .arg("--vty_socket")
                    .arg(dir)
                    .args(["-d", "bgpd", "-c", "configure terminal"])
                    .args([
                        "-c",
                        "no ip prefix-list S7-P",
                        "-c",
                        "no bgp community-list standard S7-C",
                    ]);
                for line in filter.frr() {
                    command.arg("-c").arg(line);
                }
                command
                    .args(["-c", "end", "-c", "clear bgp ipv4 unicast * soft in"])
                    .output()
                    .context("running vtysh")?
            }
        };
        if !output.status.success() {
            bail!(
                "changing the filter failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

/// Starling as shipped: `starling run` on an embedded datastore with
/// Calico's resources: the peers with BGPFilter `s7` on import, the sink
/// with a filter that exports everything (Calico's own export policy
/// sends only its IP pools' routes). No FIB, as the others have none.
fn start_starling(
    exe: &std::path::Path,
    port: u16,
    cpu: usize,
    peers: usize,
    filter: &Filter,
) -> anyhow::Result<Started> {
    let dir = scratch("starling")?;
    let store = dir.join("store");
    let resources = dir.join("bench.yaml");
    let mut text = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
         spec: {{logSeverityScreen: Warning, nodeToNodeMeshEnabled: false, asNumber: {DUT_AS}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: dut}}\n\
         spec: {{bgp: {{ipv4Address: {DUT}/24}}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {{name: s7}}\n\
         spec: {{importV4: {}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {{name: sink}}\n\
         spec: {{exportV4: [{{action: Accept}}]}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: sink}}\n\
         spec: {{peerIP: {SINK}, asNumber: {SINK_AS}, filters: [sink]}}\n",
        filter.calico_rules()
    );
    for i in 0..peers {
        text += &format!(
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: peer-{i}}}\n\
             spec: {{peerIP: {}, asNumber: {}, filters: [s7]}}\n",
            rr_client(i),
            member_as(i)
        );
    }
    std::fs::write(&resources, text)?;
    super::starling_apply(exe, &store, &resources, None)?;
    let config = dir.join("starling.toml");
    std::fs::write(
        &config,
        format!(
            "node_name = \"dut\"\ndatastore = {store:?}\n[bgp]\nlisten = [\"{DUT}:{port}\"]\n\
             [fib]\nmode = \"off\"\n[admin]\nsocket = {:?}\n[metrics]\nlisten = \"{}\"\n",
            dir.join("admin.sock"),
            SocketAddr::from((DUT, free_port()?)),
        ),
    )?;
    let child = super::spawn_appliance(exe, &config, cpu)?;
    Ok(Started {
        daemon: Daemon {
            child,
            _dir: Some(dir),
            metrics: None,
        },
        reload: Reload::Starling {
            exe: exe.to_path_buf(),
            store,
        },
    })
}

/// BIRD's configuration: the peers through `s7_in`, nothing back to
/// them; the sink gets every BGP route, next hop self.
fn bird_config(peers: usize, filter: &Filter, port: u16) -> String {
    let mut text = format!(
        "router id 192.0.2.200;\nprotocol device {{}}\n{}\
         template bgp p {{ local {DUT} port {port} as {DUT_AS}; passive on; multihop; strict bind; }}\n\
         protocol bgp sink from p {{ neighbor {SINK} as {SINK_AS}; \
         ipv4 {{ import none; export where source = RTS_BGP; next hop self; }}; }}\n",
        filter.bird()
    );
    for i in 0..peers {
        text += &format!(
            "protocol bgp b{i} from p {{ neighbor {} as {}; ipv4 {{ import filter s7_in; export none; }}; }}\n",
            rr_client(i),
            member_as(i)
        );
    }
    text
}

fn start_bird(port: u16, cpu: usize, peers: usize, filter: &Filter) -> anyhow::Result<Started> {
    let dir = scratch("bird")?;
    let conf = dir.join("bird.conf");
    std::fs::write(&conf, bird_config(peers, filter, port))?;
    let socket = dir.join("bird.ctl");
    Ok(Started {
        daemon: spawn_bird_in(dir, &conf, cpu)?,
        reload: Reload::Bird {
            conf,
            socket,
            peers,
            port,
        },
    })
}

/// FRR: the peers in a group through route map `S7-IN`, which denies
/// what the prefix and community lists match. Route-map changes are not
/// applied on a timer (`delay-timer 0`): `clear bgp * soft in` applies
/// them, as BIRD's `configure` and Starling's watch do, at once.
fn start_frr(port: u16, cpu: usize, peers: usize, filter: &Filter) -> anyhow::Result<Started> {
    let dir = scratch("frr")?;
    let members: Vec<Ipv4Addr> = (0..peers).map(rr_client).collect();
    let group = frr_peer_group("peers", "external", &members);
    let text = format!(
        "{}\n\
         route-map S7-IN deny 10\n match ip address prefix-list S7-P\n\
         route-map S7-IN deny 20\n match community S7-C\n\
         route-map S7-IN permit 30\n\
         route-map NOTHING deny 10\n\
         router bgp {DUT_AS}\n bgp router-id 192.0.2.200\n no bgp ebgp-requires-policy\n\
         bgp route-map delay-timer 0\n\
         {group}\
         neighbor {SINK} remote-as {SINK_AS}\n neighbor {SINK} passive\n\
         address-family ipv4 unicast\n  neighbor peers activate\n  neighbor peers route-map S7-IN in\n\
         neighbor peers route-map NOTHING out\n  neighbor {SINK} activate\n\
         exit-address-family\n",
        filter.frr().join("\n")
    );
    std::fs::write(dir.join(BGPD_CONF), text)?;
    Ok(Started {
        daemon: spawn_bgpd(dir.clone(), port, cpu)?,
        reload: Reload::Frr { dir },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_versions_reject_different_routes() {
        let (one, two) = (Filter::version(1), Filter::version(2));
        let plain = PathAttributes::default();
        assert!(one.rejects(Ipv4Addr::new(8, 1, 0, 0), 16, &plain));
        assert!(one.rejects(Ipv4Addr::new(8, 0, 0, 0), 9, &plain));
        assert!(
            !one.rejects(Ipv4Addr::new(8, 0, 0, 0), 8, &plain),
            "a shorter prefix is not inside"
        );
        assert!(!one.rejects(Ipv4Addr::new(8, 128, 0, 0), 16, &plain));
        assert!(!two.rejects(Ipv4Addr::new(8, 1, 0, 0), 16, &plain));
        assert!(two.rejects(Ipv4Addr::new(11, 200, 0, 0), 24, &plain));
        let tagged = PathAttributes {
            communities: vec![one.community()],
            ..PathAttributes::default()
        };
        assert!(one.rejects(Ipv4Addr::new(100, 0, 0, 0), 24, &tagged));
        assert!(!two.rejects(Ipv4Addr::new(100, 0, 0, 0), 24, &tagged));
    }

    #[test]
    fn the_networks_stay_clear_of_loopback_and_the_benchmark() {
        for v in [1, 2] {
            for (net, _) in Filter::version(v).networks {
                let first = net.octets()[0];
                assert!(![127, 192, 198, 203].contains(&first), "{net}");
            }
        }
    }

    #[test]
    fn every_daemon_is_told_every_rule() {
        let filter = Filter::version(2);
        assert_eq!(
            filter.calico_rules().matches(r#""action""#).count(),
            NETWORKS + 1
        );
        assert_eq!(filter.bird().matches("/9+").count(), NETWORKS);
        assert_eq!(filter.frr().len(), NETWORKS + 1);
        assert!(filter.frr()[0].ends_with("11.128.0.0/9 le 32"));
    }

    #[test]
    fn the_sink_follows_withdrawals_and_replacements() {
        let rejected: HashSet<u64> = [1, 2].into();
        let mut held = Held {
            prefixes: HashSet::new(),
            rejected: &rejected,
            wrongly: 0,
            want: 2,
        };
        held.apply(&[(true, 1), (true, 3), (true, 4), (true, 3)]);
        assert_eq!((held.prefixes.len(), held.wrongly), (3, 1));
        assert!(!held.complete());
        held.apply(&[(false, 1), (false, 9)]);
        assert!(held.complete());
    }
}
