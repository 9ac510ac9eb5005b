//! Calico's own confd scenarios as Starling's spec: every fixture under
//! `plugins/calico/conformance/confd/` (README.md there says the format)
//! gives resources and the sessions confd rendered for one node; the real
//! `starling plan -o json` must print the same. Fixtures with `verdicts`
//! also run routes through the Calico plugin's route policy.
//!
//! All fixtures run, then one failure lists every scenario that departs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use starling_calico::Calico;
use starling_plugin_sdk::{
    Attributes, Direction, Family, Prefix, Route, RouteContext, RoutePolicy, Snapshot, Verdicts,
};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/calico/conformance/confd"
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    scenario: String,
    node: String,
    resources: Vec<Value>,
    /// What confd rendered, as `plan -o json` rows without plain fields.
    sessions: Vec<Map<String, Value>>,
    /// Where Starling deliberately plans otherwise.
    #[serde(default)]
    differs: Option<Differs>,
    #[serde(default)]
    verdicts: Vec<Probe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Differs {
    why: String,
    sessions: Vec<Map<String, Value>>,
}

/// One route through one session's policy, and what must come of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    session: String,
    direction: String,
    route: String,
    #[serde(default)]
    as_path: Vec<u32>,
    #[serde(default)]
    communities: Vec<String>,
    #[serde(default)]
    large_communities: Vec<String>,
    #[serde(default)]
    local_pref: Option<u32>,
    /// Export: a route learnt from a BGP peer (`source: RemotePeers`).
    #[serde(default)]
    from_peer: bool,
    #[serde(default)]
    interface: Option<String>,
    /// `reject`, `accept`, or the attributes an accepting rule changed.
    then: Value,
}

/// The fields a fixture states only when they differ from these.
const PLAIN: &[(&str, Value)] = &[
    ("peer_port", Value::Null),
    ("source_address", Value::Null),
    ("passive", Value::Bool(false)),
    ("rr_client", Value::Bool(false)),
    ("rr_cluster_id", Value::Null),
    ("password", Value::Null),
    ("graceful_restart_time", Value::Null),
    ("keepalive_time", Value::Null),
    ("ttl_security", Value::Null),
    ("next_hop", Value::Null),
    ("allow_local_as", Value::Null),
    ("reachable_by", Value::Null),
];

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("the corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Which of the BGPFilters have rules per direction in a family: confd
/// calls a filter's import (export) function only where it has rules.
fn filter_rules(resources: &[Value]) -> BTreeMap<String, Value> {
    resources
        .iter()
        .filter(|r| r["kind"] == "BGPFilter")
        .map(|r| {
            (
                r["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                r["spec"].clone(),
            )
        })
        .collect()
}

/// A `plan -o json` row in the fixture's form.
fn restate(row: &Value, filters: &BTreeMap<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for key in ["family", "name", "peer_ip", "peer_as", "local_as"] {
        out.insert(key.to_owned(), row[key].clone());
    }
    for (key, plain) in PLAIN {
        if row[*key] != *plain {
            out.insert((*key).to_owned(), row[*key].clone());
        }
    }
    // BIRD's `listen bgp`, stated where it is not the wildcard on 179.
    let wildcard = if row["family"] == "ipv4" {
        "0.0.0.0:179"
    } else {
        "[::]:179"
    };
    if row["listen"] != wildcard {
        out.insert("listen".to_owned(), row["listen"].clone());
    }
    let suffix = if row["family"] == "ipv4" { "V4" } else { "V6" };
    let names = row["filters"].as_array().cloned().unwrap_or_default();
    let with_rules = |direction: &str| -> Vec<Value> {
        names
            .iter()
            .filter(|n| {
                let spec = n.as_str().and_then(|n| filters.get(n));
                spec.and_then(|s| s[format!("{direction}{suffix}")].as_array())
                    .is_some_and(|rules| !rules.is_empty())
            })
            .cloned()
            .collect()
    };
    let (import, export) = (with_rules("import"), with_rules("export"));
    if !import.is_empty() || !export.is_empty() {
        out.insert(
            "filters".to_owned(),
            json!({"import": import, "export": export}),
        );
    }
    out
}

fn sorted(mut rows: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    rows.sort_by_key(|r| (r["family"].to_string(), r["name"].to_string()));
    rows
}

/// `starling plan -o json` for the fixture's node, restated.
fn plan(fixture: &Fixture, scratch: &Path) -> Result<Vec<Map<String, Value>>, String> {
    let file = scratch.join(format!("{}.yaml", fixture.scenario.replace('/', ".")));
    let stream: String = fixture
        .resources
        .iter()
        .map(|r| format!("---\n{r}\n"))
        .collect();
    std::fs::write(&file, stream).expect("write resources");
    let out = Command::new(env!("CARGO_BIN_EXE_starling"))
        .args([
            "plan",
            "--show-secrets",
            "-o",
            "json",
            "--node",
            &fixture.node,
            "-f",
        ])
        .arg(&file)
        .env(
            "STARLING_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
        )
        .output()
        .expect("run starling plan");
    if !out.status.success() {
        return Err(format!(
            "starling plan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("plan json");
    let filters = filter_rules(&fixture.resources);
    Ok(sorted(rows.iter().map(|r| restate(r, &filters)).collect()))
}

fn lines(rows: &[Map<String, Value>]) -> String {
    rows.iter()
        .map(|r| format!("    {}\n", Value::Object(r.clone())))
        .collect()
}

fn community(text: &str) -> u32 {
    let (high, low) = text.split_once(':').expect("community a:b");
    (high.parse::<u32>().expect("a") << 16) | low.parse::<u32>().expect("b")
}

fn large(text: &str) -> (u32, u32, u32) {
    let parts: Vec<u32> = text.split(':').map(|p| p.parse().expect("n")).collect();
    (parts[0], parts[1], parts[2])
}

fn community_text(c: u32) -> String {
    format!("{}:{}", c >> 16, c & 0xffff)
}

/// The changed attributes in a fixture's words.
fn attributes_value(a: &Attributes) -> Value {
    json!({
        "as_path": a.as_path,
        "communities": a.communities.iter().map(|c| community_text(*c)).collect::<Vec<_>>(),
        "large_communities": a.large_communities.iter()
            .map(|(x, y, z)| format!("{x}:{y}:{z}")).collect::<Vec<_>>(),
        "local_pref": a.local_pref,
    })
}

/// Run each probe through the route policy the plan gave its session.
fn verdicts(fixture: &Fixture, planned: &[Map<String, Value>]) -> Vec<String> {
    if fixture.verdicts.is_empty() {
        return Vec::new();
    }
    let objects = fixture
        .resources
        .iter()
        .map(starling_store::to_object)
        .collect();
    let calico = Calico::load(objects).expect("the fixture's resources load");
    let mut failures = Vec::new();
    for probe in &fixture.verdicts {
        let Some(session) = planned.iter().find(|s| s["name"] == probe.session) else {
            failures.push(format!(
                "    probe names no planned session {}",
                probe.session
            ));
            continue;
        };
        let family = if session["family"] == "ipv4" {
            Family::Ipv4
        } else {
            Family::Ipv6
        };
        let direction = match probe.direction.as_str() {
            "import" => Direction::Import,
            "export" => Direction::Export,
            other => panic!("direction {other}"),
        };
        let key = if direction == Direction::Import {
            "import"
        } else {
            "export"
        };
        let filters = session
            .get("filters")
            .and_then(|f| f[key].as_array())
            .map(|f| {
                f.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let context = RouteContext {
            node: fixture.node.clone(),
            session: probe.session.clone(),
            family,
            direction,
            peer_as: session["peer_as"].as_u64().expect("peer_as") as u32,
            local_as: session["local_as"].as_u64().expect("local_as") as u32,
            filters,
        };
        let attributes = Attributes {
            as_path: probe.as_path.clone(),
            communities: probe.communities.iter().map(|c| community(c)).collect(),
            large_communities: probe.large_communities.iter().map(|c| large(c)).collect(),
            local_pref: probe.local_pref,
            // Whatever is imported comes from the peer (BIRD's `source` is
            // RTS_BGP in every import filter).
            from_peer: probe.from_peer || direction == Direction::Import,
            interface: probe.interface.clone(),
        };
        let (address, length) = probe.route.split_once('/').expect("prefix");
        let route = Route {
            prefix: Prefix::new(
                address.parse().expect("address"),
                length.parse().expect("length"),
            ),
            attributes: 0,
        };
        let v = calico.evaluate(&context, &[attributes], &[route]);
        let got = match v.outcome[0] {
            Verdicts::REJECT => json!("reject"),
            Verdicts::ACCEPT => json!("accept"),
            n => attributes_value(&v.changed[n as usize - 2]),
        };
        let want = match &probe.then {
            Value::Object(changed) => {
                // Unstated attributes are empty.
                let mut full = attributes_value(&Attributes::default());
                for (k, v) in changed {
                    full[k] = v.clone();
                }
                full
            }
            other => other.clone(),
        };
        if got != want {
            failures.push(format!(
                "    {} {} {}: want {want}, got {got}",
                probe.session, probe.direction, probe.route
            ));
        }
    }
    failures
}

#[test]
fn every_confd_scenario_plans_as_calico_renders_it() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("confd-corpus");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let files = fixtures();
    assert!(files.len() >= 50, "the corpus is missing: {CORPUS}");
    let mut failures = Vec::new();
    let mut probes = 0;
    let mut deliberate = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read fixture");
        let fixture: Fixture =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let planned = match plan(&fixture, &scratch) {
            Ok(rows) => rows,
            Err(e) => {
                failures.push(format!("{}: {e}", fixture.scenario));
                continue;
            }
        };
        let calico = sorted(fixture.sessions.clone());
        let want = match &fixture.differs {
            Some(d) => {
                deliberate += 1;
                if sorted(d.sessions.clone()) == calico {
                    failures.push(format!(
                        "{}: `differs` names no difference; drop it",
                        fixture.scenario
                    ));
                }
                assert!(
                    !d.why.trim().is_empty(),
                    "{}: differs without why",
                    fixture.scenario
                );
                sorted(d.sessions.clone())
            }
            None => calico,
        };
        if planned != want {
            failures.push(format!(
                "{}: sessions differ\n  want:\n{}  got:\n{}",
                fixture.scenario,
                lines(&want),
                lines(&planned)
            ));
        }
        probes += fixture.verdicts.len();
        let bad = verdicts(&fixture, &planned);
        if !bad.is_empty() {
            failures.push(format!(
                "{}: verdicts\n{}",
                fixture.scenario,
                bad.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} confd scenarios depart from Calico:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} confd scenarios, {probes} route-policy probes: all as Calico but {deliberate} \
         where Starling chooses otherwise (each fixture's `differs` says why)",
        files.len()
    );
}
