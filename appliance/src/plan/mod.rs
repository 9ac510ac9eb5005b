//! `starling plan`: an offline what-if. Reads resources, runs the plugins,
//! and prints the sessions each node would have — without touching a
//! datastore or a socket.

pub(crate) mod build;
mod diff;
pub(crate) mod kit;
pub(crate) mod new;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};
use starling_plugin_host::contract::{Family, NextHopMode, NodePlan, Role, Session};
use starling_plugin_host::pipeline::{Plan, Roles};
use starling_plugin_host::{Host, Limits, Plugin, PluginError};
use starling_store::ResourceSet;

/// Exit code for invalid input (resources, flags), as calicoctl uses it.
const INVALID: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
    Yaml,
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FamilyArg {
    Ipv4,
    Ipv6,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// Resource files (YAML, multi-document YAML, JSON or a *List); `-` is
    /// standard input. May be repeated.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Plan only this node.
    #[arg(long)]
    node: Option<String>,
    /// Plan only this address family.
    #[arg(long, value_enum)]
    family: Option<FamilyArg>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
    /// Print resolved passwords instead of `<redacted>`.
    #[arg(long)]
    show_secrets: bool,
    /// Use a plugin for a role: `ROLE=SOURCE`, where ROLE is as-assignment,
    /// route-reflection, peer-selection, route-policy or `all`, and SOURCE a
    /// built-in plugin (calico, as-per-rack, prefix-guard) or a .wasm file.
    /// Default: calico for every role.
    #[arg(long = "plugin", value_name = "ROLE=SOURCE")]
    plugins: Vec<String>,
    /// Show what changes from the plan of these resource files (the
    /// current ones) to the plan of `-f` (the proposed ones): sessions
    /// added, removed, reset or updated in place, and node roles. May be
    /// repeated.
    #[arg(long = "diff", value_name = "FILE")]
    diff: Vec<PathBuf>,
    /// With `--diff`, or alone to compare plugins on the same files: the
    /// current side's plugin for a role (`ROLE=SOURCE`, as `--plugin`).
    #[arg(long = "diff-plugin", value_name = "ROLE=SOURCE")]
    diff_plugins: Vec<String>,
}

pub(crate) fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let resources = match crate::resources::read_files(&args.files)? {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::from(INVALID));
        }
    };
    let host = Host::new(Limits::default())?.with_cache(cache_dir());
    let roles = match choose_plugins(&host, &args.plugins) {
        Ok(roles) => roles,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    let families = match args.family {
        Some(FamilyArg::Ipv4) => vec![Family::Ipv4],
        Some(FamilyArg::Ipv6) => vec![Family::Ipv6],
        None => vec![Family::Ipv4, Family::Ipv6],
    };
    // A graph shows every node; the other formats honour --node.
    let nodes = match (&args.node, args.output) {
        (Some(n), o) if o != Output::Dot => Some(vec![n.clone()]),
        _ => None,
    };
    if !args.diff.is_empty() || !args.diff_plugins.is_empty() {
        return run_diff(args, &host, &roles, &resources, nodes.as_deref());
    }
    let plan = match plan_or_report(&roles, &resources, nodes.as_deref())? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    if let Some(node) = &args.node
        && plan.facts(node).is_none()
    {
        eprintln!("error: no Node named '{node}'");
        return Ok(ExitCode::from(INVALID));
    }
    for p in &plan.nodes {
        for w in &p.warnings {
            eprintln!("warning: node {}: {w}", p.node);
        }
    }
    let rows = rows(&plan, &families, &resources, args.show_secrets);
    let mut out = String::new();
    match args.output {
        Output::Json => {
            out = serde_json::to_string_pretty(&rows)?;
            out.push('\n');
        }
        Output::Yaml => out = serde_yaml_ng::to_string(&rows)?,
        Output::Table => table(&rows, &mut out),
        Output::Dot => dot(&plan, &mut out),
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Plan `resources`, or report why not (each problem on standard error)
/// and give the exit code.
fn plan_or_report(
    roles: &Roles,
    resources: &ResourceSet,
    nodes: Option<&[String]>,
) -> anyhow::Result<Result<Plan, ExitCode>> {
    match roles.plan(&resources.objects, nodes) {
        Ok(plan) => Ok(Ok(plan)),
        Err(PluginError::Invalid { problems, .. }) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            Ok(Err(ExitCode::from(INVALID)))
        }
        Err(PluginError::Failed { message, .. }) => {
            eprintln!("error: {message}");
            Ok(Err(ExitCode::from(INVALID)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `--diff`: plan the current side and the proposed one, and print what
/// changes between them.
fn run_diff(
    args: &PlanArgs,
    host: &Host,
    after_roles: &Roles,
    after: &ResourceSet,
    nodes: Option<&[String]>,
) -> anyhow::Result<ExitCode> {
    if args.output == Output::Dot {
        eprintln!("error: --diff prints a table, JSON or YAML, not a graph");
        return Ok(ExitCode::from(INVALID));
    }
    let before_files = if args.diff.is_empty() {
        &args.files
    } else {
        &args.diff
    };
    let before = match crate::resources::read_files(before_files)? {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                eprintln!("error: --diff: {e}");
            }
            return Ok(ExitCode::from(INVALID));
        }
    };
    let before_roles = match args.diff_plugins.is_empty() {
        true => after_roles.clone(),
        false => match choose_plugins(host, &args.diff_plugins) {
            Ok(roles) => roles,
            Err(e) => {
                eprintln!("error: --diff-plugin: {e:#}");
                return Ok(ExitCode::from(INVALID));
            }
        },
    };
    let old = match plan_or_report(&before_roles, &before, nodes)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let new = match plan_or_report(after_roles, after, nodes)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let (changes, warnings) = diff::diff(
        &diff::Side {
            plan: &old,
            secrets: &before,
        },
        &diff::Side {
            plan: &new,
            secrets: after,
        },
    );
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let rows: Vec<Value> = changes
        .iter()
        .map(|c| {
            json!({
                "node": c.node,
                "change": c.kind.as_str(),
                "session": c.session,
                "detail": c.detail,
            })
        })
        .collect();
    let out = match args.output {
        Output::Json => serde_json::to_string_pretty(&rows)? + "\n",
        Output::Yaml => serde_yaml_ng::to_string(&rows)?,
        _ if changes.is_empty() => "No changes.\n".to_owned(),
        _ => diff::table(&changes),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Where compiled plugins are kept between runs: `$STARLING_CACHE_DIR`,
/// else `/var/cache/starling/plugins` for root, else the user's cache.
/// Root is the effective user id, not `$USER`: systemd, `sudo -E` and
/// containers leave `$USER` unset or someone else's.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STARLING_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    match std::env::var_os("HOME").map(PathBuf::from) {
        _ if root => PathBuf::from("/var/cache/starling/plugins"),
        Some(home) => home.join(".cache/starling/plugins"),
        None => std::env::temp_dir().join("starling-plugins"),
    }
}

fn load_source(host: &Host, source: &str) -> anyhow::Result<Plugin> {
    if let Some(bytes) = starling_plugins::builtin(source) {
        return Ok(host.load(source, bytes)?);
    }
    let path = std::path::Path::new(source);
    if !path.exists() {
        let builtin: Vec<&str> = starling_plugins::BUILTIN.iter().map(|(n, _)| *n).collect();
        bail!(
            "plugin '{source}' is neither a built-in ({}) nor a file",
            builtin.join(", ")
        );
    }
    let name = path
        .file_stem()
        .map_or_else(|| source.to_owned(), |s| s.to_string_lossy().into_owned());
    Ok(host.load_file(&name, path)?)
}

fn choose_plugins(host: &Host, specs: &[String]) -> anyhow::Result<Roles> {
    let calico = load_source(host, "calico")?;
    let mut roles = Roles::all(calico);
    for spec in specs {
        let Some((role, source)) = spec.split_once('=') else {
            bail!("--plugin {spec}: expected ROLE=SOURCE");
        };
        let plugin = load_source(host, source)?;
        match role {
            "as-assignment" => roles.as_assignment = plugin,
            "route-reflection" => roles.route_reflection = plugin,
            "node-identity" => roles.node_identity = plugin,
            "peer-selection" => roles.peer_selection = plugin,
            "origination" => roles.origination = plugin,
            "route-policy" => roles.route_policy = plugin,
            "all" => {
                for (role, slot) in [
                    (Role::AsAssignment, &mut roles.as_assignment),
                    (Role::RouteReflection, &mut roles.route_reflection),
                    (Role::NodeIdentity, &mut roles.node_identity),
                    (Role::PeerSelection, &mut roles.peer_selection),
                    (Role::Origination, &mut roles.origination),
                    (Role::RoutePolicy, &mut roles.route_policy),
                ] {
                    if plugin.fills(role) {
                        *slot = plugin.clone();
                    }
                }
            }
            other => bail!(
                "--plugin {spec}: unknown role '{other}' (as-assignment, route-reflection, \
                 node-identity, peer-selection, origination, route-policy, all)"
            ),
        }
    }
    roles.check()?;
    Ok(roles)
}

/// One JSON object per session, with exactly the documented keys, IPv4
/// sessions first (by the family of the session's own addresses).
fn rows(
    plan: &Plan,
    families: &[Family],
    resources: &ResourceSet,
    show_secrets: bool,
) -> Vec<Value> {
    let mut rows = Vec::new();
    for family in families {
        for p in &plan.nodes {
            for s in p.sessions.iter().filter(|s| s.family == *family) {
                let password = s.password.as_ref().and_then(|r| match resources.secret(r) {
                    Ok(key) if show_secrets => Some(Value::from(key)),
                    Ok(_) => Some(Value::from("<redacted>")),
                    Err(why) => {
                        eprintln!(
                            "warning: node {}: session {}: {why}; no password",
                            p.node, s.name
                        );
                        None
                    }
                });
                rows.push(row(p, s, password));
            }
        }
    }
    rows
}

/// Where `plan`'s node accepts `s`'s connection: the node's listen
/// address of the session's family on its port, or the family's wildcard;
/// none when the plan names addresses but none of that family.
fn listen(plan: &NodePlan, s: &Session) -> Option<SocketAddr> {
    let port = plan.listen_port.unwrap_or(179);
    let v4 = s.family == Family::Ipv4;
    let ip = match plan.listen_addresses.as_slice() {
        [] if v4 => IpAddr::from(Ipv4Addr::UNSPECIFIED),
        [] => IpAddr::from(Ipv6Addr::UNSPECIFIED),
        addresses => *addresses.iter().find(|a| a.is_ipv4() == v4)?,
    };
    Some(SocketAddr::new(ip, port))
}

fn row(plan: &NodePlan, s: &Session, password: Option<Value>) -> Value {
    json!({
        "node": plan.node,
        "listen": listen(plan, s).map(|a| a.to_string()),
        "family": s.family.as_str(),
        "families": s.families.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        "interface": s.interface,
        "bfd": s.bfd.map(|b| json!({
            "min_rx_ms": b.min_rx,
            "min_tx_ms": b.min_tx,
            "multiplier": b.multiplier,
        })),
        "error_wait": s.error_wait,
        "error_wait_longest": s.error_wait_longest,
        "name": s.name,
        "peer_ip": s.peer_ip,
        "peer_port": s.peer_port,
        "peer_as": s.peer_as,
        "local_as": s.local_as,
        "type": s.origin,
        "source_address": s.source_address,
        "passive": s.passive,
        "rr_client": s.rr_client,
        "rr_cluster_id": s.rr_cluster_id,
        "password": password,
        "graceful_restart_time": s.graceful_restart_time,
        "keepalive_time": s.keepalive_time,
        "ttl_security": s.ttl_security,
        "next_hop": match s.next_hop {
            NextHopMode::Auto => None,
            NextHopMode::SetSelf => Some("self"),
            NextHopMode::Keep => Some("keep"),
        },
        "allow_local_as": s.allow_local_as,
        "filters": s.filters,
        "reachable_by": s.reachable_by,
    })
}

/// calicoctl's table style: upper-case headers, columns three spaces apart.
fn table(rows: &[Value], out: &mut String) {
    let header = [
        "NODE", "FAMILY", "NAME", "PEER", "PEER AS", "LOCAL AS", "TYPE", "OPTIONS",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let text = |k: &str| match &r[k] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            v => v.to_string(),
        };
        let peer = match r["peer_port"].as_u64() {
            Some(port) if r["family"] == "ipv6" => format!("[{}]:{port}", text("peer_ip")),
            Some(port) => format!("{}:{port}", text("peer_ip")),
            None => text("peer_ip"),
        };
        let mut options = Vec::new();
        if r["passive"] == true {
            options.push("passive".to_owned());
        }
        if r["rr_client"] == true {
            options.push(format!("rr-client({})", text("rr_cluster_id")));
        }
        if r["source_address"].is_null() {
            options.push("no-source-address".to_owned());
        }
        if let Some(f) = r["families"].as_array().filter(|f| f.len() > 1) {
            let names: Vec<&str> = f.iter().filter_map(Value::as_str).collect();
            options.push(format!("families={}", names.join(",")));
        }
        if let Some(bfd) = r["bfd"].as_object() {
            options.push(format!(
                "bfd={}/{}x{}",
                bfd["min_rx_ms"], bfd["min_tx_ms"], bfd["multiplier"]
            ));
        }
        for (key, label) in [
            ("password", "password"),
            ("graceful_restart_time", "gr"),
            ("keepalive_time", "keepalive"),
            ("ttl_security", "ttl-security"),
            ("next_hop", "next-hop"),
            ("allow_local_as", "allow-local-as"),
            ("interface", "interface"),
            ("error_wait", "error-wait"),
            ("error_wait_longest", "error-wait-longest"),
        ] {
            if !r[key].is_null() {
                options.push(format!("{label}={}", text(key)));
            }
        }
        let wildcard = if r["family"] == "ipv4" {
            "0.0.0.0:179"
        } else {
            "[::]:179"
        };
        match r["listen"].as_str() {
            Some(listen) if listen != wildcard => options.push(format!("listen={listen}")),
            Some(_) => {}
            None => options.push("no-listen".to_owned()),
        }
        if let Some(f) = r["filters"].as_array().filter(|f| !f.is_empty()) {
            let names: Vec<&str> = f.iter().filter_map(Value::as_str).collect();
            options.push(format!("filters={}", names.join(",")));
        }
        lines.push(vec![
            text("node"),
            text("family"),
            text("name"),
            peer,
            text("peer_as"),
            text("local_as"),
            text("type"),
            options.join(" "),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    for line in &lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c + 1 == line.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}   ", width = widths[c]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
}

/// Graphviz of every node's sessions: reflectors grouped by cluster,
/// external peers apart, one edge per session pair styled by type.
fn dot(plan: &Plan, out: &mut String) {
    let mut address_of: BTreeMap<String, String> = BTreeMap::new();
    for p in &plan.nodes {
        for s in &p.sessions {
            if let Some(src) = &s.source_address {
                address_of.insert(src.clone(), p.node.clone());
            }
        }
        if let Some(id) = &p.router_id {
            address_of
                .entry(id.clone())
                .or_insert_with(|| p.node.clone());
        }
    }
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
    out.push_str("digraph starling {\n  graph [rankdir=LR, fontname=\"sans-serif\"];\n");
    out.push_str("  node [fontname=\"sans-serif\", shape=box];\n  edge [dir=none];\n");
    let mut clusters: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in &plan.facts {
        match &f.cluster_id {
            Some(c) => clusters
                .entry(c.as_str())
                .or_default()
                .push(f.node.as_str()),
            None => {
                let _ = writeln!(
                    out,
                    "  {} [label=\"{}\\nAS {}\"];",
                    quote(&f.node),
                    f.node,
                    f.local_as
                );
            }
        }
    }
    for (i, (cluster, members)) in clusters.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{i} {{\n    label=\"RR cluster {cluster}\";"
        );
        for m in members {
            let asn = plan.facts(m).map_or(0, |f| f.local_as);
            let _ = writeln!(
                out,
                "    {} [label=\"{m}\\nAS {asn}\", shape=doubleoctagon];",
                quote(m)
            );
        }
        out.push_str("  }\n");
    }
    let mut external = BTreeSet::new();
    let mut edges: BTreeMap<(String, String, String), bool> = BTreeMap::new();
    for p in &plan.nodes {
        for s in &p.sessions {
            let peer = match address_of.get(&s.peer_ip) {
                Some(n) => n.clone(),
                None => {
                    external.insert((s.peer_ip.clone(), s.peer_as));
                    s.peer_ip.clone()
                }
            };
            let (a, b) = if p.node <= peer {
                (p.node.clone(), peer)
            } else {
                (peer, p.node.clone())
            };
            *edges.entry((a, b, s.origin.clone())).or_default() |= s.rr_client;
        }
    }
    for (ip, asn) in &external {
        let _ = writeln!(
            out,
            "  {} [label=\"{ip}\\nAS {asn}\", shape=ellipse, style=dashed];",
            quote(ip)
        );
    }
    for ((a, b, origin), client) in &edges {
        let style = match origin.as_str() {
            "mesh" => "color=gray",
            "global" => "color=blue",
            _ => "color=black",
        };
        let client = if *client { ", label=\"rr-client\"" } else { "" };
        let _ = writeln!(out, "  {} -> {} [{style}{client}];", quote(a), quote(b));
    }
    out.push_str("}\n");
}
