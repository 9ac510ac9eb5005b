//! Calico's "Configure BGP peering" guide on a `starling lab`: real
//! daemons in network namespaces, a BIRD 2 ToR, assertions on kernel FIBs,
//! BIRD's RIB, `starling node status` and pings between workloads.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A lab that is torn down however the test ends.
struct Lab {
    name: String,
    dir: PathBuf,
    nodes: usize,
}

impl Lab {
    fn up(name: &str, nodes: usize, extra: &[&str]) -> Self {
        let lab = Lab {
            name: format!("{name}{}", std::process::id() % 10_000),
            dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("lab-{name}")),
            nodes,
        };
        let _ = std::fs::remove_dir_all(&lab.dir);
        let mut args = vec!["up".to_owned(), "--nodes".to_owned(), nodes.to_string()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let out = lab.starling_lab(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "lab up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    fn starling_lab(&self, args: &[&str]) -> Output {
        let (verb, rest) = args.split_first().expect("a verb");
        Command::new(env!("CARGO_BIN_EXE_starling"))
            .args(["lab", verb, "--name", &self.name, "--dir"])
            .arg(&self.dir)
            .args(rest)
            .output()
            .expect("starling lab")
    }

    /// `starling lab exec NODE -- ARGS`, which must succeed.
    fn exec(&self, node: &str, args: &[&str]) -> String {
        let out = self.exec_raw(node, args);
        assert!(
            out.status.success(),
            "{node}: {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn exec_raw(&self, node: &str, args: &[&str]) -> Output {
        let mut full = vec!["exec", node, "--"];
        full.extend_from_slice(args);
        self.starling_lab(&full)
    }

    fn nodes(&self) -> Vec<String> {
        (1..=self.nodes).map(|i| format!("node-{i}")).collect()
    }

    /// `starling node status -o json` of a node: (peer type, state) per
    /// session, as Calico's table names them.
    fn sessions(&self, node: &str) -> Vec<(String, String)> {
        let out = self.exec_raw(node, &["starling", "node", "status", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or_default().to_owned(),
                    s["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The node's kernel routes from Starling: destination → "via X" or
    /// "blackhole".
    fn fib(&self, node: &str) -> Vec<String> {
        let text = self.exec(node, &["ip", "-j", "route", "show", "proto", "199"]);
        let routes: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        let mut out: Vec<String> = routes
            .iter()
            .map(|r| {
                let dst = r["dst"].as_str().unwrap_or_default();
                match r["gateway"].as_str() {
                    Some(gw) => format!("{dst} via {gw}"),
                    None => format!("{dst} {}", r["type"].as_str().unwrap_or("unicast")),
                }
            })
            .collect();
        out.sort();
        out
    }

    /// Ping from node `from`'s workload to node `to`'s.
    fn ping(&self, from: usize, to: usize) -> bool {
        self.exec_raw(
            &format!("node-{from}"),
            &[
                "ping",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "1",
                "-I",
                &format!("10.244.{from}.10"),
                &format!("10.244.{to}.10"),
            ],
        )
        .status
        .success()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.starling_lab(&["down"]);
        if !out.status.success() {
            eprintln!("lab down: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The peer rows of `starling node status`: address, type, state.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains("PEER ADDRESS"))
        .map(|l| {
            l.split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .take(3)
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The block routes a node should have towards the others, and its own
/// blackhole.
fn mesh_fib(me: usize, nodes: usize) -> Vec<String> {
    let mut want: Vec<String> = (1..=nodes)
        .map(|i| {
            if i == me {
                format!("10.244.{i}.0/26 blackhole")
            } else {
                format!("10.244.{i}.0/26 via 192.0.2.{}", 10 + i)
            }
        })
        .collect();
    want.sort();
    want
}

/// Guide steps 1, 2 and 4: the default full mesh, a global peer (the
/// ToR), and a route reflector replacing the mesh; `lab down` leaves
/// nothing behind.
#[test]
fn the_guide_on_a_lab_mesh_global_peer_and_route_reflector() {
    let lab = Lab::up("guide", 4, &["--tor"]);

    // 1. Default full mesh: 3 mesh sessions per node, a route to every
    // other node's block, workloads reach each other.
    for node in lab.nodes() {
        wait_for(&format!("{node}'s mesh"), Duration::from_secs(60), || {
            let s = lab.sessions(&node);
            s.len() == 3
                && s.iter()
                    .all(|(name, state)| name.starts_with("Mesh_") && state == "Established")
        });
    }
    for (i, node) in lab.nodes().iter().enumerate() {
        wait_for(&format!("{node}'s FIB"), Duration::from_secs(30), || {
            lab.fib(node) == mesh_fib(i + 1, 4)
        });
    }
    for (from, to) in [(1, 2), (2, 3), (3, 4), (4, 1)] {
        assert!(lab.ping(from, to), "workload {from} → {to}");
    }
    let table = lab.exec("node-1", &["starling", "node", "status"]);
    assert!(
        rows(&table)
            .iter()
            .any(|r| r[1] == "node-to-node mesh" && r[2] == "up"),
        "{table}"
    );

    // 2. A global peer: every node peers with the ToR; the ToR learns
    // every block.
    let global = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: my-global-peer\n\
                  spec:\n  peerIP: 192.0.2.1\n  asNumber: 64567\n";
    std::fs::write(lab.dir.join("global-peer.yaml"), global).expect("yaml");
    lab.exec(
        "node-1",
        &[
            "starling",
            "apply",
            "-f",
            lab.dir.join("global-peer.yaml").to_str().expect("utf8"),
        ],
    );
    let bird_ctl = lab.dir.join("tor").join("bird.ctl");
    let bird_ctl = bird_ctl.to_str().expect("utf8");
    wait_for(
        "the ToR to learn every block",
        Duration::from_secs(60),
        || {
            let routes = lab.exec("tor", &["birdc", "-s", bird_ctl, "show", "route"]);
            (1..=4).all(|i| routes.contains(&format!("10.244.{i}.0/26")))
        },
    );
    for node in lab.nodes() {
        wait_for(
            &format!("{node}'s ToR session"),
            Duration::from_secs(30),
            || {
                lab.sessions(&node).iter().any(|(name, state)| {
                    name.starts_with("Global_192_0_2_1") && state == "Established"
                })
            },
        );
    }
    let table = lab.exec("node-2", &["starling", "node", "status"]);
    assert!(
        rows(&table).contains(&vec![
            "192.0.2.1".to_owned(),
            "global".to_owned(),
            "up".to_owned()
        ]),
        "{table}"
    );

    // 4. node-1 becomes a route reflector, everyone peers with it, then
    // the mesh goes: every block still reachable from every node.
    lab.exec(
        "node-1",
        &[
            "starling",
            "patch",
            "node",
            "node-1",
            "-p",
            r#"{"spec": {"bgp": {"routeReflectorClusterID": "244.0.0.1"}}}"#,
        ],
    );
    lab.exec(
        "node-1",
        &[
            "starling",
            "label",
            "node",
            "node-1",
            "route-reflector=true",
        ],
    );
    let rr = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: peer-with-route-reflectors\n\
              spec:\n  nodeSelector: all()\n  peerSelector: route-reflector == 'true'\n";
    std::fs::write(lab.dir.join("rr.yaml"), rr).expect("yaml");
    lab.exec(
        "node-1",
        &[
            "starling",
            "apply",
            "-f",
            lab.dir.join("rr.yaml").to_str().expect("utf8"),
        ],
    );
    lab.exec(
        "node-1",
        &[
            "starling",
            "patch",
            "bgpconfiguration",
            "default",
            "-p",
            r#"{"spec": {"nodeToNodeMeshEnabled": false}}"#,
        ],
    );
    for node in ["node-2", "node-3", "node-4"] {
        wait_for(
            &format!("{node} to peer only with the reflector and the ToR"),
            Duration::from_secs(60),
            || {
                let s = lab.sessions(node);
                s.len() == 2
                    && s.iter().all(|(_, state)| state == "Established")
                    && s.iter()
                        .any(|(name, _)| name.starts_with("Node_192_0_2_11"))
            },
        );
    }
    let table = lab.exec("node-3", &["starling", "node", "status"]);
    assert!(
        rows(&table).contains(&vec![
            "192.0.2.11".to_owned(),
            "node specific".to_owned(),
            "up".to_owned()
        ]),
        "{table}"
    );
    for (i, node) in lab.nodes().iter().enumerate() {
        wait_for(
            &format!("{node}'s FIB through the reflector"),
            Duration::from_secs(30),
            || {
                let fib = lab.fib(node);
                mesh_fib(i + 1, 4).iter().all(|r| fib.contains(r))
            },
        );
    }
    for (from, to) in [(2, 3), (3, 4), (4, 2), (1, 3)] {
        assert!(
            lab.ping(from, to),
            "workload {from} → {to} through the reflector"
        );
    }

    // Down leaves nothing behind.
    let prefix = format!("sl-{}-", lab.name);
    let dir = lab.dir.clone();
    drop(lab);
    let namespaces = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    let left: Vec<String> = String::from_utf8_lossy(&namespaces.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(!dir.exists(), "{} left", dir.display());
}
