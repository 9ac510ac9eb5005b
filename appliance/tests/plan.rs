//! `starling plan` end to end: the real binary, the embedded plugins.

use std::process::{Command, Output};

use serde_json::Value;

fn starling(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_starling"));
    cmd.args(args).env(
        "STARLING_CACHE_DIR",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
    );
    match stdin {
        None => cmd.output().expect("run starling"),
        Some(text) => {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write");
            child.wait_with_output().expect("wait")
        }
    }
}

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/rr-cluster.yaml"
);

fn json_rows(args: &[&str]) -> Vec<Value> {
    let out = starling(args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("json array")
}

#[test]
fn json_rows_have_exactly_the_documented_keys() {
    let rows = json_rows(&["plan", "-f", EXAMPLE, "--node", "worker-1", "-o", "json"]);
    assert_eq!(rows.len(), 3);
    let keys: Vec<&str> = rows[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "node",
        "family",
        "name",
        "peer_ip",
        "peer_port",
        "peer_as",
        "local_as",
        "type",
        "source_address",
        "passive",
        "rr_client",
        "rr_cluster_id",
        "password",
        "graceful_restart_time",
        "keepalive_time",
        "ttl_security",
        "next_hop",
        "allow_local_as",
        "filters",
        "reachable_by",
        // Contract 0.2.
        "families",
        "interface",
        "bfd",
        "error_wait",
        // Contract 0.3.
        "error_wait_longest",
        "listen",
    ];
    want.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, want);
    let tor = &rows[2];
    assert_eq!(tor["name"], "Node_198_51_100_1");
    assert_eq!(tor["password"], "<redacted>");
    assert_eq!(tor["keepalive_time"], 10);
    assert_eq!(tor["type"], "node");
    assert_eq!(tor["families"], serde_json::json!(["ipv4"]));
    assert_eq!(tor["listen"], "0.0.0.0:179", "every address, BGP's port");
    assert!(tor["interface"].is_null() && tor["bfd"].is_null() && tor["error_wait"].is_null());
}

#[test]
fn secrets_show_only_when_asked() {
    let rows = json_rows(&[
        "plan",
        "-f",
        EXAMPLE,
        "--node",
        "worker-1",
        "-o",
        "json",
        "--show-secrets",
    ]);
    assert_eq!(rows[2]["password"], "s3cr3t");
    // A missing secret: no password, and a warning.
    let text = std::fs::read_to_string(EXAMPLE)
        .expect("example")
        .replace("name: bgp-secrets, namespace", "name: other, namespace");
    let out = starling(
        &["plan", "-f", "-", "--node", "worker-1", "-o", "json"],
        Some(&text),
    );
    assert!(out.status.success());
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rows[2]["password"], Value::Null);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no Secret named 'bgp-secrets'"), "{stderr}");
}

#[test]
fn table_yaml_and_dot() {
    let out = starling(&["plan", "-f", EXAMPLE, "--family", "ipv4"], None);
    let table = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NODE       FAMILY   NAME"), "{table}");
    assert_eq!(lines.len(), 12, "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("rr-1") && l.ends_with("rr-client(244.0.0.1)")),
        "{table}"
    );

    // Where a node listens shows when it is not every address on 179.
    assert!(!table.contains("listen="), "{table}");
    let example = std::fs::read_to_string(EXAMPLE).expect("example");
    let bound = format!(
        "{example}\n---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\n\
         metadata: {{name: node.rr-1}}\nspec: {{listenPort: 1790}}\n"
    );
    let out = starling(&["plan", "-f", "-", "--node", "rr-1"], Some(&bound));
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.ends_with("listen=0.0.0.0:1790")),
        "{text}"
    );

    let out = starling(
        &["plan", "-f", EXAMPLE, "-o", "yaml", "--node", "rr-1"],
        None,
    );
    let rows: Vec<Value> = serde_yaml_ng::from_slice(&out.stdout).expect("yaml");
    assert_eq!(rows.len(), 3);

    let out = starling(&["plan", "-f", EXAMPLE, "-o", "dot"], None);
    let dot = String::from_utf8(out.stdout).expect("utf8");
    assert!(dot.starts_with("digraph starling {"));
    assert!(dot.contains("subgraph cluster_0"));
    assert!(
        dot.contains("\"rr-1\" -> \"worker-1\" [color=black, label=\"rr-client\"];"),
        "{dot}"
    );
    assert!(
        dot.contains("\"198.51.100.1\" [label=\"198.51.100.1\\nAS 65000\", shape=ellipse"),
        "{dot}"
    );
}

#[test]
fn a_node_without_an_address_in_the_family_has_no_sessions() {
    let rows = json_rows(&[
        "plan", "-f", EXAMPLE, "--node", "worker-2", "--family", "ipv6", "-o", "json",
    ]);
    assert!(rows.is_empty());
}

#[test]
fn invalid_resources_exit_2_and_print_nothing_as_if_valid() {
    let bad = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 192.0.2.1, peerSelector: all()}\n";
    let out = starling(&["plan", "-f", "-", "-o", "json"], Some(bad));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "BGPPeer 'p', field spec.peerIP: peerIP and peerSelector are mutually exclusive"
        ),
        "{stderr}"
    );

    let out = starling(
        &["plan", "-f", "-"],
        Some("apiVersion: projectcalico.org/v3\nkind: Node\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("metadata is required"));

    let out = starling(&["plan", "-f", EXAMPLE, "--node", "ghost"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Node named 'ghost'"));
}

#[test]
fn plugins_can_be_swapped_per_role() {
    let racks = "\
apiVersion: starling.example/v1
kind: Rack
metadata: {name: r1}
spec: {asNumber: 65101, torIP: 198.51.100.1, torASNumber: 65100}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: a, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 192.0.2.1/24}}
";
    let out = starling(
        &[
            "plan",
            "-f",
            "-",
            "-o",
            "json",
            "--plugin",
            "all=as-per-rack",
        ],
        Some(racks),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "Node_198_51_100_1");
    assert_eq!(rows[0]["local_as"], 65101);
    assert_eq!(rows[0]["ttl_security"], 1);

    let out = starling(
        &[
            "plan",
            "-f",
            EXAMPLE,
            "--plugin",
            "peer-selection=prefix-guard",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not fill the PeerSelection role"));
}

/// `--diff`: a change reviewed before it ships. Turning the reflectors
/// back into plain nodes shows each role change and the sessions that go,
/// and warns that the cluster has no reflector left.
#[test]
fn diff_shows_what_a_change_does_to_each_node() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plan-diff");
    std::fs::create_dir_all(&dir).expect("dir");
    let proposed = dir.join("proposed.yaml");
    let current = std::fs::read_to_string(EXAMPLE).expect("example");
    // Both reflectors lose their cluster id and label.
    let changed = current
        .replace(", routeReflectorClusterID: 244.0.0.1", "")
        .replace("route-reflector: \"true\", ", "");
    assert_ne!(changed, current, "the example changed");
    std::fs::write(&proposed, &changed).expect("write");
    let proposed = proposed.to_str().expect("utf8");

    let out = starling(&["plan", "-f", proposed, "--diff", EXAMPLE], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(text.starts_with("NODE "), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("rr-1 ")
            && l.contains(" role ")
            && l.contains("route reflector (cluster 244.0.0.1) → not a reflector")),
        "{text}"
    );
    assert!(
        stderr.contains("warning: the cluster loses every route reflector (2 before)"),
        "{stderr}"
    );

    let rows = json_rows(&["plan", "-f", proposed, "--diff", EXAMPLE, "-o", "json"]);
    assert!(rows.iter().all(|r| {
        let keys: Vec<&str> = r
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys == ["change", "detail", "node", "session"]
    }));
    assert!(rows.iter().any(|r| r["change"] == "removed"), "{rows:?}");

    // Nothing changed, nothing to say.
    let same = starling(&["plan", "-f", EXAMPLE, "--diff", EXAMPLE], None);
    assert_eq!(String::from_utf8_lossy(&same.stdout), "No changes.\n");
}

const KIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/conformance");

/// `starling plugin test`: the kit's fixtures pass for the Calico plugin,
/// and a fixture that says otherwise fails, naming what differs.
#[test]
fn the_conformance_kit_passes_calico_and_names_what_differs() {
    let out = starling(&["plugin", "test", "calico", "--fixtures", KIT], None);
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with(
            "ok   self-test: calico implements starling:policy@0.3.0, fills AsAssignment"
        ),
        "{text}"
    );
    assert!(text.contains(", 0 failed"), "{text}");

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kit");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let edit = |name: &str, from: &str, to: &str| {
        let text = std::fs::read_to_string(format!("{KIT}/{name}")).expect("fixture");
        assert!(text.contains(from), "{name}: {from}");
        std::fs::write(dir.join(name), text.replace(from, to)).expect("write");
    };
    edit("as-assignment.yaml", "local_as: 65002", "local_as: 65003");
    edit(
        "refused.yaml",
        "refused: spec.peerIP",
        "refused: spec.asNumber",
    );
    edit(
        "route-policy.yaml",
        "route: 198.18.0.0/15, as_path: [65000], then: accept",
        "route: 198.18.0.0/15, as_path: [65000], then: reject",
    );
    edit(
        "peer-selection.yaml",
        "  - {node: a, name: Mesh_192_0_2_3, peer_ip: 192.0.2.3, peer_as: 64512, local_as: 64512, type: mesh}\n",
        "",
    );
    let out = starling(
        &[
            "plugin",
            "test",
            "calico",
            "--fixtures",
            dir.to_str().expect("utf8"),
        ],
        None,
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(out.status.code(), Some(1), "{text}");
    for want in [
        "node b, session Global_198_51_100_1: local_as is 65002, want 65003",
        "refused, but not with 'spec.asNumber'",
        "a Global_198_51_100_1 import 198.18.0.0/15: got \"accept\", want \"reject\"",
        "node a: session Mesh_192_0_2_3 is not in the fixture",
        "4 fixtures, 0 passed, 4 failed",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }

    // A team's plugin with its own fixtures: the 0.1 as-per-rack example
    // fills two roles, Calico the rest.
    let racks = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/examples/as-per-rack/fixtures"
    );
    let out = starling(
        &["plugin", "test", "as-per-rack", "--fixtures", racks],
        None,
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("starling:policy@0.1.0, fills AsAssignment, PeerSelection"),
        "{text}"
    );
    let guard = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/examples/prefix-guard/fixtures"
    );
    let out = starling(
        &["plugin", "test", "prefix-guard", "--fixtures", guard],
        None,
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 fixtures, 1 passed, 0 failed"), "{text}");

    // A component that is no plugin fails the self-test, and says why.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"\0asm junk").expect("junk");
    let out = starling(&["plugin", "test", junk.to_str().expect("utf8")], None);
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("FAIL self-test: "), "{text}");
}
