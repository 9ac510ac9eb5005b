//! `starling plugin test`: the conformance kit a team runs against its
//! own plugin, in its own CI. First the contract's self-test (the
//! component links against a supported contract version, instantiates in
//! the sandbox, lists its roles, loads an empty snapshot without
//! trapping); then fixtures: resources in, and what must come out —
//! sessions as `starling plan -o json` rows (only the keys a fixture
//! states are compared), a refusal, or route-policy verdicts.
//!
//! The plugin under test serves every role it fills; Calico's built-in
//! plugin the others, as `starling plan --plugin all=SOURCE` does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use starling_plugin_host::contract::{
    Attributes, Direction, Family, Prefix, Route, RouteContext, Verdicts,
};
use starling_plugin_host::{Host, Limits, PluginError};
use starling_store::ResourceSet;

/// What a fixture says.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// What the fixture shows, for the report.
    #[serde(default)]
    description: String,
    /// The resources the plugins read.
    resources: Vec<Value>,
    /// Sessions that must be planned: `plan -o json` rows with `node`
    /// and `name`, and any other keys to compare.
    #[serde(default)]
    sessions: Vec<Map<String, Value>>,
    /// The nodes named in `sessions` have no other session.
    #[serde(default)]
    only: bool,
    /// The plan must be refused, a problem saying this.
    #[serde(default)]
    refused: Option<String>,
    /// Routes through planned sessions' route policy.
    #[serde(default)]
    verdicts: Vec<Probe>,
}

/// One route through one planned session's policy, and what must come of
/// it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    node: String,
    session: String,
    direction: String,
    route: String,
    #[serde(default)]
    as_path: Vec<u32>,
    /// `"65000:100"`.
    #[serde(default)]
    communities: Vec<String>,
    /// `"65000:1:2"`.
    #[serde(default)]
    large_communities: Vec<String>,
    #[serde(default)]
    local_pref: Option<u32>,
    /// Learnt from a BGP peer (imports always are).
    #[serde(default)]
    from_peer: bool,
    #[serde(default)]
    interface: Option<String>,
    /// `reject`, `accept`, or the attributes an accepting rule set
    /// (`{communities: ["65000:7"]}`; those not stated are the route's).
    then: Value,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// The plugin: a built-in name (calico, as-per-rack, ...) or a .wasm
    /// component.
    source: String,
    /// Fixture files, or directories of them (`*.yaml`). May be repeated.
    #[arg(long = "fixtures", value_name = "PATH")]
    fixtures: Vec<PathBuf>,
}

pub(crate) fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let host = Host::new(Limits::default())?.with_cache(super::cache_dir());
    // The self-test: it links, instantiates, says its roles, and loads.
    let plugin = match super::load_source(&host, &args.source) {
        Ok(p) => p,
        Err(e) => {
            println!("FAIL self-test: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let roles: Vec<String> = plugin.roles().iter().map(|r| format!("{r:?}")).collect();
    if roles.is_empty() {
        println!("FAIL self-test: the plugin fills no role");
        return Ok(ExitCode::FAILURE);
    }
    match plugin.evaluate(&[]) {
        Ok(mut evaluation) => {
            if let Err(e) = evaluation.nodes() {
                println!("FAIL self-test: an empty snapshot: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
        // Refusing an empty set with problems is the plugin's right.
        Err(PluginError::Invalid { .. }) => {}
        Err(e) => {
            println!("FAIL self-test: an empty snapshot: {e}");
            return Ok(ExitCode::FAILURE);
        }
    }
    println!(
        "ok   self-test: {} implements starling:policy@{}, fills {}",
        args.source,
        plugin.contract_version(),
        roles.join(", ")
    );
    let spec = vec![format!("all={}", args.source)];
    let plugins = super::choose_plugins(&host, &spec)?;
    let files = fixture_files(&args.fixtures)?;
    let mut failed = 0;
    for path in &files {
        let name = path.display();
        let fixture = std::fs::read_to_string(path)
            .with_context(|| format!("reading {name}"))
            .and_then(|text| {
                serde_yaml_ng::from_str::<Fixture>(&text).with_context(|| format!("{name}"))
            });
        let (failures, description) = match fixture {
            Ok(fixture) => (check(&plugins, &fixture), fixture.description),
            Err(e) => (vec![format!("{e:#}")], String::new()),
        };
        if failures.is_empty() {
            println!("ok   {name}");
        } else {
            failed += 1;
            println!("FAIL {name}");
            if !description.is_empty() {
                println!("       ({description})");
            }
            for f in failures {
                println!("       {f}");
            }
        }
    }
    println!(
        "{} fixtures, {} passed, {failed} failed",
        files.len(),
        files.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every `*.yaml` named or in a named directory, sorted.
fn fixture_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            for entry in
                std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?
            {
                let file = entry?.path();
                if file.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    files.push(file);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    Ok(files)
}

/// What in `fixture` does not come out as it says, one line each.
fn check(plugins: &starling_plugin_host::pipeline::Roles, fixture: &Fixture) -> Vec<String> {
    let mut set = ResourceSet::default();
    for (i, doc) in fixture.resources.iter().enumerate() {
        if let Err(errors) = set.add(&format!("resources[{i}]"), &doc.to_string()) {
            return errors.iter().map(ToString::to_string).collect();
        }
    }
    let plan = match (plugins.plan(&set.objects, None), &fixture.refused) {
        (Ok(_), Some(want)) => return vec![format!("planned; want it refused ({want})")],
        (Ok(plan), None) => plan,
        (Err(e), Some(want)) => {
            let said = match &e {
                PluginError::Invalid { problems, .. } => problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            return match said.contains(want.as_str()) {
                true => Vec::new(),
                false => vec![format!("refused, but not with '{want}': {said}")],
            };
        }
        (Err(e), None) => return vec![format!("refused: {e}")],
    };
    let rows = super::rows(&plan, &[Family::Ipv4, Family::Ipv6], &set, true);
    let mut failures = sessions(&fixture.sessions, fixture.only, &rows);
    if !fixture.verdicts.is_empty() {
        failures.extend(verdicts(plugins, &set, &plan, &fixture.verdicts));
    }
    failures
}

/// A value as a fixture would write it: strings without quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sessions(want: &[Map<String, Value>], only: bool, rows: &[Value]) -> Vec<String> {
    let mut failures = Vec::new();
    for w in want {
        let (node, name) = (
            w.get("node").cloned().unwrap_or_default(),
            w.get("name").cloned().unwrap_or_default(),
        );
        let got = rows.iter().find(|r| r["node"] == node && r["name"] == name);
        let (node, name) = (plain(&node), plain(&name));
        let Some(got) = got else {
            failures.push(format!("node {node}: no session {name}"));
            continue;
        };
        for (k, v) in w {
            if got[k] != *v {
                failures.push(format!(
                    "node {node}, session {name}: {k} is {}, want {}",
                    plain(&got[k]),
                    plain(v)
                ));
            }
        }
    }
    if only {
        for r in rows {
            let listed_node = want.iter().any(|w| w.get("node") == Some(&r["node"]));
            let listed = want
                .iter()
                .any(|w| w.get("node") == Some(&r["node"]) && w.get("name") == Some(&r["name"]));
            if listed_node && !listed {
                failures.push(format!(
                    "node {}: session {} is not in the fixture",
                    plain(&r["node"]),
                    plain(&r["name"])
                ));
            }
        }
    }
    failures
}

fn verdicts(
    plugins: &starling_plugin_host::pipeline::Roles,
    set: &ResourceSet,
    plan: &starling_plugin_host::pipeline::Plan,
    probes: &[Probe],
) -> Vec<String> {
    let mut evaluation = match plugins.route_policy.evaluate(&set.objects) {
        Ok(e) => e,
        Err(e) => return vec![format!("route policy: {e}")],
    };
    let mut failures = Vec::new();
    for probe in probes {
        let what = format!(
            "{} {} {} {}",
            probe.node, probe.session, probe.direction, probe.route
        );
        let session = plan
            .node(&probe.node)
            .and_then(|p| p.sessions.iter().find(|s| s.name == probe.session));
        let Some(session) = session else {
            failures.push(format!("{what}: no such planned session"));
            continue;
        };
        let direction = match probe.direction.as_str() {
            "import" => Direction::Import,
            "export" => Direction::Export,
            other => {
                failures.push(format!(
                    "{what}: direction '{other}' is not import or export"
                ));
                continue;
            }
        };
        let parsed = parse_probe(probe, direction == Direction::Import);
        let (prefix, attributes) = match parsed {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                continue;
            }
        };
        let context = RouteContext {
            node: probe.node.clone(),
            session: session.name.clone(),
            family: prefix.family,
            direction,
            peer_as: session.peer_as,
            local_as: session.local_as,
            filters: session.filters.clone(),
        };
        let route = Route {
            prefix,
            attributes: 0,
        };
        let verdict =
            match evaluation.route_policy(&context, std::slice::from_ref(&attributes), &[route]) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{what}: {e}"));
                    continue;
                }
            };
        let got = match verdict.outcome[0] {
            Verdicts::REJECT => json!("reject"),
            Verdicts::ACCEPT => json!("accept"),
            n => attributes_value(&verdict.changed[n as usize - 2]),
        };
        let want = match &probe.then {
            Value::Object(changed) => {
                let mut full = attributes_value(&attributes);
                for (k, v) in changed {
                    full[k] = v.clone();
                }
                full
            }
            other => other.clone(),
        };
        if got != want {
            failures.push(format!("{what}: got {got}, want {want}"));
        }
    }
    failures
}

fn parse_probe(probe: &Probe, import: bool) -> anyhow::Result<(Prefix, Attributes)> {
    let (address, length) = probe
        .route
        .split_once('/')
        .context("the route is not a prefix")?;
    let prefix = Prefix::new(
        address.parse().context("the route's address")?,
        length.parse().context("the route's length")?,
    );
    let number = |text: &str| -> anyhow::Result<u32> {
        text.parse()
            .with_context(|| format!("'{text}' is not a number"))
    };
    let communities = probe
        .communities
        .iter()
        .map(|c| {
            let (high, low) = c.split_once(':').context("a community is a:b")?;
            Ok((number(high)? << 16) | number(low)?)
        })
        .collect::<anyhow::Result<_>>()?;
    let large_communities = probe
        .large_communities
        .iter()
        .map(|c| {
            let parts: Vec<&str> = c.split(':').collect();
            match parts[..] {
                [a, b, c] => Ok((number(a)?, number(b)?, number(c)?)),
                _ => anyhow::bail!("a large community is a:b:c"),
            }
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((
        prefix,
        Attributes {
            as_path: probe.as_path.clone(),
            communities,
            large_communities,
            local_pref: probe.local_pref,
            from_peer: probe.from_peer || import,
            interface: probe.interface.clone(),
        },
    ))
}

/// Attributes in a fixture's words.
fn attributes_value(a: &Attributes) -> Value {
    json!({
        "as_path": a.as_path,
        "communities": a
            .communities
            .iter()
            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
            .collect::<Vec<_>>(),
        "large_communities": a
            .large_communities
            .iter()
            .map(|(x, y, z)| format!("{x}:{y}:{z}"))
            .collect::<Vec<_>>(),
        "local_pref": a.local_pref,
    })
}
