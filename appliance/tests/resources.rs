//! calicoctl's verbs over the datastore: the real binary, a datastore
//! directory (or a real etcd server) per test.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use starling_store_etcd::test_server::EtcdServer;

struct Datastore(PathBuf, Option<EtcdServer>);

impl Datastore {
    fn new(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ds-{name}"));
        let _ = std::fs::remove_dir_all(&path);
        Datastore(path, None)
    }

    /// A real etcd server, used as calicoctl would be told to:
    /// `DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=...`.
    fn etcd(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ds-etcd-{name}"));
        let server = EtcdServer::start(&path);
        Datastore(path, Some(server))
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        match &self.1 {
            None => common::starling(&self.0, args, stdin),
            Some(etcd) => {
                let endpoint = etcd.endpoint();
                let env: [(&str, &std::ffi::OsStr); 2] = [
                    ("DATASTORE_TYPE", "etcdv3".as_ref()),
                    ("ETCD_ENDPOINTS", endpoint.as_ref()),
                ];
                common::starling_with(&env, args, stdin)
            }
        }
    }

    /// Run, expect success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// Run, expect failure, return stderr.
    fn err(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).expect("utf8")
    }
}

impl Drop for Datastore {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The failure may point at a log in here: keep it.
            eprintln!("kept {} (the test failed)", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/rr-cluster.yaml"
);

#[test]
fn the_guides_commands_work_verbatim() {
    the_guides_commands(&Datastore::new("guide"));
}

#[test]
fn the_guides_commands_work_verbatim_on_etcd() {
    let ds = Datastore::etcd("guide");
    the_guides_commands(&ds);
    // And the resources sit where calicoctl would look for them.
    let out = Command::new("etcdctl")
        .args(["--endpoints", &ds.1.as_ref().expect("etcd").endpoint()])
        .args([
            "get",
            "--keys-only",
            "--prefix",
            "/calico/resources/v3/projectcalico.org/nodes/",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl (Debian etcd-client, installed with etcd-server)");
    let keys = String::from_utf8_lossy(&out.stdout);
    assert!(
        keys.contains("/calico/resources/v3/projectcalico.org/nodes/worker-2\n"),
        "{keys}"
    );
}

#[test]
fn a_missing_etcd_is_a_clear_error() {
    let ds = Datastore::new("no-etcd");
    let env: [(&str, &std::ffi::OsStr); 1] = [("DATASTORE_TYPE", "etcdv3".as_ref())];
    let out = common::starling_with(&env, &["get", "nodes"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs --etcd-endpoints"), "{stderr}");
    let env: [(&str, &std::ffi::OsStr); 2] = [
        ("DATASTORE_TYPE", "etcdv3".as_ref()),
        ("ETCD_ENDPOINTS", "http://127.0.0.1:9".as_ref()),
    ];
    let out = common::starling_with(&env, &["get", "nodes"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("etcd http://127.0.0.1:9"), "{stderr}");
    drop(ds);
}

fn the_guides_commands(ds: &Datastore) {
    // On a fresh install there is no `default` BGPConfiguration: patching
    // it creates it, with Calico's defaults for everything else.
    assert_eq!(
        ds.ok(&[
            "patch",
            "bgpconfiguration",
            "default",
            "-p",
            r#"{"spec": {"nodeToNodeMeshEnabled": false}}"#
        ]),
        "Successfully patched 1 'BGPConfiguration' resource\n"
    );
    ds.ok(&[
        "patch",
        "bgpconfiguration",
        "default",
        "-p",
        r#"{"spec": {"asNumber": "64513"}}"#,
    ]);
    assert_eq!(
        ds.ok(&["get", "bgpconfig"]),
        "NAME      LOGSEVERITY   MESHENABLED   ASNUMBER\n\
         default   -             false         64513\n\n"
    );
    assert_eq!(
        ds.ok(&["apply", "-f", EXAMPLE]),
        "Successfully applied 8 'BGPConfiguration, BGPPeer, Node, Secret' resource(s)\n"
    );
    // The example sets the default AS back to 64512.
    ds.ok(&[
        "patch",
        "node",
        "worker-2",
        "-p",
        r#"{"spec": {"bgp": {"asNumber": "64514"}}}"#,
    ]);
    ds.ok(&[
        "patch",
        "node",
        "worker-1",
        "-p",
        r#"{"spec": {"bgp": {"routeReflectorClusterID": "244.0.0.1"}}}"#,
    ]);
    assert_eq!(
        ds.ok(&["get", "nodes", "-o", "wide"]),
        "NAME       ASN       IPV4             IPV6\n\
         rr-1       (64512)   192.0.2.101/24\n\
         rr-2       (64512)   192.0.2.102/24\n\
         worker-1   (64512)   192.0.2.1/24     2001:db8::1/64\n\
         worker-2   64514     192.0.2.2/24\n\n"
    );
    assert_eq!(
        ds.ok(&["get", "bgpp"]),
        "NAME                         PEERIP                      NODE                                    ASN\n\
         peer-with-route-reflectors   route-reflector == 'true'   all()                                   0\n\
         rack1-tor                    198.51.100.1                rack == 'r1' && !has(route-reflector)   65000\n\n"
    );
    assert_eq!(ds.ok(&["get", "node"]).lines().next(), Some("NAME"));
}

#[test]
fn yaml_and_json_output() {
    let ds = Datastore::new("output");
    ds.ok(&["apply", "-f", EXAMPLE]);
    let one: Value =
        serde_yaml_ng::from_str(&ds.ok(&["get", "bgppeer", "rack1-tor", "-o", "yaml"]))
            .expect("yaml");
    assert_eq!(one["kind"], "BGPPeer");
    assert_eq!(one["spec"]["asNumber"], 65000);
    assert!(one["metadata"]["resourceVersion"].is_string());
    let list: Value =
        serde_json::from_str(&ds.ok(&["get", "bgppeers", "-o", "json"])).expect("json");
    assert_eq!(list["kind"], "BGPPeerList");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    // Secrets are stored for the daemon to resolve passwords, and shown
    // only on request.
    let secret: Value =
        serde_json::from_str(&ds.ok(&["get", "secret", "bgp-secrets", "-o", "json"]))
            .expect("json");
    assert_eq!(secret["stringData"]["rack1-tor"], "s3cr3t");
}

#[test]
fn invalid_writes_change_nothing() {
    let ds = Datastore::new("invalid");
    ds.ok(&["apply", "-f", EXAMPLE]);
    let before = ds.ok(&["get", "bgppeer", "rack1-tor", "-o", "json"]);
    let err = ds.err(
        &[
            "patch",
            "bgppeer",
            "rack1-tor",
            "-p",
            r#"{"spec": {"peerSelector": "all()"}}"#,
        ],
        None,
    );
    assert!(
        err.contains(
            "BGPPeer 'rack1-tor', field spec.peerIP: peerIP and peerSelector are mutually exclusive"
        ),
        "{err}"
    );
    assert_eq!(
        ds.ok(&["get", "bgppeer", "rack1-tor", "-o", "json"]),
        before
    );

    let bad = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: ok}\nspec: {peerIP: 192.0.2.50, asNumber: 1}\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: broken}\nspec: {bgp: {asNumber: as1}}\n";
    let err = ds.err(&["create", "-f", "-"], Some(bad));
    assert!(
        err.contains("Node 'broken', field spec.bgp.asNumber: invalid AS Number format"),
        "{err}"
    );
    // All or nothing: the valid peer in the same file was not stored.
    assert!(
        ds.err(&["get", "bgppeer", "ok"], None)
            .contains("resource does not exist: BGPPeer(ok)")
    );

    assert!(
        ds.err(&["create", "-f", EXAMPLE], None)
            .contains("resource already exists")
    );
    assert!(
        ds.err(&["delete", "bgpconfiguration", "default"], None)
            .contains("cannot be deleted")
    );
    assert!(
        ds.err(&["patch", "node", "rr-1", "-t", "json", "-p", "[]"], None)
            .contains("not supported")
    );
    assert!(
        ds.err(&["patch", "node", "rr-1", "-p", "{oops"], None)
            .contains("not JSON")
    );
    assert!(
        ds.err(&["get", "node", "ghost"], None)
            .contains("resource does not exist: Node(ghost)")
    );
}

#[test]
fn replace_checks_the_resource_version() {
    let ds = Datastore::new("conflict");
    ds.ok(&["apply", "-f", EXAMPLE]);
    let mut doc: Value =
        serde_json::from_str(&ds.ok(&["get", "bgppeer", "rack1-tor", "-o", "json"])).expect("json");
    let version = doc["metadata"]["resourceVersion"]
        .as_str()
        .expect("version")
        .to_owned();
    doc["spec"]["asNumber"] = 65001.into();
    let text = serde_json::to_string(&doc).expect("json");
    assert_eq!(
        ds.ok_with(&["replace", "-f", "-"], Some(&text)),
        "Successfully replaced 1 'BGPPeer' resource(s)\n"
    );
    // The same document again carries a stale version.
    let err = ds.err(&["replace", "-f", "-"], Some(&text));
    assert!(
        err.contains(&format!("resource version '{version}' is out of date")),
        "{err}"
    );
}

#[test]
fn labels_and_delete() {
    let ds = Datastore::new("labels");
    ds.ok(&["apply", "-f", EXAMPLE]);
    assert_eq!(
        ds.ok(&["label", "nodes", "worker-2", "route-reflector=true"]),
        "Successfully set label route-reflector on Node worker-2\n"
    );
    assert!(
        ds.err(&["label", "node", "worker-2", "rack=r9"], None)
            .contains("--overwrite")
    );
    ds.ok(&["label", "node", "worker-2", "rack=r9", "--overwrite"]);
    ds.ok(&["label", "node", "worker-2", "route-reflector", "--remove"]);
    assert!(
        ds.err(
            &["label", "node", "worker-2", "route-reflector", "--remove"],
            None
        )
        .contains("has no label")
    );
    let node: Value =
        serde_json::from_str(&ds.ok(&["get", "node", "worker-2", "-o", "json"])).expect("json");
    assert_eq!(
        node["metadata"]["labels"],
        serde_json::json!({"rack": "r9"})
    );

    assert_eq!(
        ds.ok(&["delete", "bgppeer", "rack1-tor"]),
        "Successfully deleted 1 'BGPPeer' resource(s)\n"
    );
    assert!(
        ds.err(&["delete", "bgppeer", "rack1-tor"], None)
            .contains("does not exist")
    );
    ds.ok(&["delete", "bgppeer", "rack1-tor", "--skip-not-exists"]);
}

#[test]
fn validate_works_offline() {
    let ds = Datastore::new("validate");
    assert_eq!(
        ds.ok(&["validate", "-f", EXAMPLE]),
        "Successfully validated 8 'BGPConfiguration, BGPPeer, Node, Secret' resource(s)\n"
    );
    assert!(!ds.0.exists(), "validate must not touch the datastore");
    let err = ds.err(&["validate", "-f", "-"], Some("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 192.0.2.1, asNumber: 1, nextHopMode: Always}\n"));
    assert!(err.contains("spec.nextHopMode"), "{err}");
}

#[test]
fn kill_9_during_writes_never_tears_a_resource() {
    let ds = Datastore::new("kill9");
    ds.ok(&["apply", "-f", EXAMPLE]);
    let mut seed = 0x9e37_79b9_u64;
    for round in 0..15 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_starling"))
            .args(["apply", "-f", EXAMPLE])
            .env("STARLING_DATASTORE", &ds.0)
            .env(
                "STARLING_CACHE_DIR",
                concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Kill at a pseudo-random point of the run (not waiting for
        // anything: the point is to land anywhere).
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(seed % 400));
        let _ = child.kill();
        let _ = child.wait();
        // Every stored resource parses, and the store opens and lists.
        for entry in walk(&ds.0.join("resources")) {
            if entry.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&entry).expect("read");
                serde_json::from_slice::<Value>(&bytes)
                    .unwrap_or_else(|e| panic!("round {round}: {} torn: {e}", entry.display()));
            }
        }
        let listed = ds.ok(&["get", "bgppeers", "-o", "json"]);
        let list: Value = serde_json::from_str(&listed).expect("json");
        assert_eq!(
            list["items"].as_array().map(Vec::len),
            Some(2),
            "round {round}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
