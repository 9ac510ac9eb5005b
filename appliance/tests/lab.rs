//! Calico's "Configure BGP peering" guide on a `starling lab`: real
//! daemons in network namespaces, a BIRD 2 ToR, assertions on kernel FIBs,
//! BIRD's RIB, `starling node status` and pings between workloads.
//!
//! Over 800 lines on purpose: the guide's steps read in order here, with
//! the traffic and FIB checks they share (the `Lab` itself is in
//! `common/lab.rs`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::lab::{Lab, metric_sum, rows, wait_for};
use serde_json::Value;

/// Continuous traffic between the workloads of every pair of nodes: one
/// `ping` per pair at 50 packets a second, for a fixed count, so that
/// every packet is accounted for (`ping -c` waits for the last replies).
struct Traffic {
    /// "1 ↔ 2" (or "1 ↔ 2, IPv6") and its pinger.
    pingers: Vec<(String, std::process::Child)>,
}

/// Packets a second per pair: the guide's bar is at least 50.
const PING_RATE: u32 = 50;

impl Traffic {
    fn start(lab: &Lab, seconds: u32) -> Self {
        Self::in_families(lab, seconds, &[false])
    }

    /// Traffic over IPv4 and IPv6 at once, for a dual-stack lab.
    fn dual_stack(lab: &Lab, seconds: u32) -> Self {
        Self::in_families(lab, seconds, &[false, true])
    }

    fn in_families(lab: &Lab, seconds: u32, v6s: &[bool]) -> Self {
        let mut pingers = Vec::new();
        for &v6 in v6s {
            for from in 1..=lab.nodes {
                for to in from + 1..=lab.nodes {
                    let (source, target, label) = if v6 {
                        (
                            format!("2001:db8:244:{from}::10"),
                            format!("2001:db8:244:{to}::10"),
                            format!("{from} ↔ {to}, IPv6"),
                        )
                    } else {
                        (
                            format!("10.244.{from}.10"),
                            format!("10.244.{to}.10"),
                            format!("{from} ↔ {to}"),
                        )
                    };
                    let child = Command::new(env!("CARGO_BIN_EXE_starling"))
                        .args([
                            "lab",
                            "exec",
                            &format!("node-{from}"),
                            "--name",
                            &lab.name,
                            "--dir",
                        ])
                        .arg(&lab.dir)
                        .args(["--", "ping", "-q", "-n", "-W", "2"])
                        .args(["-i", &format!("{}", 1.0 / f64::from(PING_RATE))])
                        .args(["-c", &(seconds * PING_RATE).to_string()])
                        .args(["-I", &source])
                        .arg(target)
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .expect("ping");
                    pingers.push((label, child));
                }
            }
        }
        Traffic { pingers }
    }

    /// Wait for every pinger; assert that no packet was lost, and say how
    /// many went. Call it once the change is over: the traffic must still
    /// be running then, or it did not cover the whole change.
    fn assert_none_lost(mut self, what: &str) {
        for (pair, child) in &mut self.pingers {
            assert!(
                child.try_wait().expect("ping").is_none(),
                "{what}: the traffic {pair} ended before the change did"
            );
        }
        let mut sent_total = 0;
        let mut lost = Vec::new();
        for (pair, child) in self.pingers {
            let out = child.wait_with_output().expect("ping");
            let text = String::from_utf8_lossy(&out.stdout);
            let count = |word: &str| -> u64 {
                text.lines()
                    .find(|line| line.contains("transmitted"))
                    .and_then(|line| line.split(',').find(|part| part.contains(word)))
                    .and_then(|part| part.split_whitespace().next()?.parse().ok())
                    .unwrap_or_else(|| panic!("{pair}: no '{word}' in {text:?}"))
            };
            let (sent, received) = (count("transmitted"), count("received"));
            sent_total += sent;
            if received != sent {
                lost.push(format!("{pair}: {} of {sent}", sent - received));
            }
        }
        eprintln!(
            "{what}: {sent_total} pings between workloads, {} pairs lost packets",
            lost.len()
        );
        assert!(lost.is_empty(), "{what}: packets lost: {lost:?}");
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

/// Guide step 1, the default full mesh: a mesh session to every other
/// node, a route to every other node's block, workloads reach each other.
fn step_1_full_mesh(lab: &Lab) {
    for node in lab.nodes() {
        wait_for(&format!("{node}'s mesh"), Duration::from_secs(60), || {
            let s = lab.sessions(&node);
            s.len() == lab.nodes - 1
                && s.iter()
                    .all(|(name, state)| name.starts_with("Mesh_") && state == "Established")
        });
    }
    for (i, node) in lab.nodes().iter().enumerate() {
        wait_for(&format!("{node}'s FIB"), Duration::from_secs(30), || {
            lab.fib(node) == mesh_fib(i + 1, lab.nodes)
        });
    }
    for (from, to) in (1..=lab.nodes).map(|i| (i, i % lab.nodes + 1)) {
        assert!(lab.ping(from, to), "workload {from} → {to}");
    }
    let table = lab.exec("node-1", &["starling", "node", "status"]);
    assert!(
        rows(&table)
            .iter()
            .any(|r| r[1] == "node-to-node mesh" && r[2] == "up"),
        "{table}"
    );
}

/// Guide steps 4 and 5: node-1, carrying traffic, becomes a route
/// reflector, everyone peers with it, then the mesh goes, the commands
/// back to back (the blunt path: Calico drops node-1's traffic until its
/// reflector sessions are up). Every block stays reachable from every
/// node, and traffic between every pair of workloads loses no packet.
/// `other_peers`: sessions each node has besides the reflector (the ToR).
fn step_4_route_reflector(lab: &Lab, other_peers: usize) {
    let traffic = Traffic::start(lab, 30);
    lab.make_reflector("node-1");
    lab.apply("rr.yaml", PEER_WITH_ROUTE_REFLECTORS);
    lab.mesh_off();
    for node in lab.nodes().iter().skip(1) {
        wait_for(
            &format!("{node} to peer only with the reflector (and {other_peers} other)"),
            Duration::from_secs(60),
            || {
                let s = lab.sessions(node);
                s.len() == 1 + other_peers
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
                mesh_fib(i + 1, lab.nodes).iter().all(|r| fib.contains(r))
            },
        );
    }
    for (from, to) in (1..=lab.nodes).map(|i| (i, i % lab.nodes + 1)) {
        assert!(
            lab.ping(from, to),
            "workload {from} → {to} through the reflector"
        );
    }
    traffic.assert_none_lost("mesh → route reflector, back to back");
}

/// The guide's BGPPeer: every node peers with every route reflector.
const PEER_WITH_ROUTE_REFLECTORS: &str = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\n\
    metadata:\n  name: peer-with-route-reflectors\n\
    spec:\n  nodeSelector: all()\n  peerSelector: route-reflector == 'true'\n";

/// `node`'s one session is with the reflector node-4, and Established.
fn only_with_node_4(lab: &Lab, node: &str) -> bool {
    lab.sessions(node) == [("Node_192_0_2_14".to_owned(), "Established".to_owned())]
}

/// Guide step 5, Calico's procedure for moving from the mesh to route
/// reflectors without disruption: (1) make node-4 a reflector (cluster id
/// and label; Calico needs the node drained or new, Starling keeps its
/// workload's traffic), (2) the BGPPeer, (3) wait until every node's
/// reflector session is up, (4) turn the mesh off, (5) nothing to
/// uncordon. Traffic between every pair of workloads throughout, at 50
/// packets a second: none is lost.
#[test]
fn mesh_to_route_reflectors_without_losing_a_packet() {
    let lab = Lab::up("migrate", 4, &[]);
    step_1_full_mesh(&lab);
    let traffic = Traffic::start(&lab, 30);

    lab.make_reflector("node-4");
    lab.apply("rr.yaml", PEER_WITH_ROUTE_REFLECTORS);
    for node in lab.nodes().iter().take(3) {
        wait_for(
            &format!("{node}'s session with the reflector"),
            Duration::from_secs(60),
            || {
                lab.sessions(node)
                    .contains(&("Node_192_0_2_14".to_owned(), "Established".to_owned()))
            },
        );
    }
    lab.mesh_off();
    for (i, node) in lab.nodes().iter().enumerate().take(3) {
        wait_for(
            &format!("{node} to peer only with the reflector"),
            Duration::from_secs(60),
            || only_with_node_4(&lab, node),
        );
        wait_for(
            &format!("{node}'s FIB through the reflector"),
            Duration::from_secs(30),
            || lab.fib(node) == mesh_fib(i + 1, lab.nodes),
        );
    }
    traffic.assert_none_lost("mesh → route reflector, Calico's procedure");

    // The reflector crashes and comes back. Its clients keep its routes
    // (graceful restart); back, it sends each client its table only once
    // every client has sent it theirs (RFC 4724 §4.1), so no client sees
    // a partial table end with End-of-RIB: no packet lost, no kernel route
    // written on any client.
    let kernel_writes = |node: &str| metric_sum(&lab.scrape(node), "starling_fib_operations_total");
    let clients = ["node-1", "node-2", "node-3"];
    let writes_before: Vec<f64> = clients.iter().map(|n| kernel_writes(n)).collect();
    let traffic = Traffic::start(&lab, 25);
    lab.lab_verb("stop", "node-4", &["--kill"]);
    wait_for(
        "node-1 to lose the reflector",
        Duration::from_secs(30),
        || !only_with_node_4(&lab, "node-1"),
    );
    lab.lab_verb("start", "node-4", &[]);
    wait_for("the reflector to recover", Duration::from_secs(60), || {
        // Each client is sent the other three blocks.
        metric_sum(&lab.scrape("node-4"), "starling_bgp_prefixes_advertised") == 9.0
    });
    traffic.assert_none_lost("the route reflector killed and started again");
    // Its three clients export alike: one update group, encoded once.
    assert_eq!(
        metric_sum(&lab.scrape("node-4"), "starling_bgp_update_groups"),
        1.0
    );
    let writes: Vec<f64> = clients.iter().map(|n| kernel_writes(n)).collect();
    assert_eq!(writes, writes_before, "clients rewrote kernel routes");

    // The reflector and a client crash together (a rack losing power);
    // the reflector is back first. It sends its clients nothing until every
    // client has sent it its table, so they keep node-3's block (stale,
    // through graceful restart) instead of sweeping it at the reflector's
    // End-of-RIB, and node-3's kernel, which outlived its daemon, keeps
    // forwarding.
    let traffic = Traffic::start(&lab, 20);
    lab.lab_verb("stop", "node-4", &["--kill"]);
    lab.lab_verb("stop", "node-3", &["--kill"]);
    wait_for(
        "node-1 to lose the reflector",
        Duration::from_secs(30),
        || !only_with_node_4(&lab, "node-1"),
    );
    lab.lab_verb("start", "node-4", &[]);
    wait_for(
        "the reflector back with node-1 and node-2",
        Duration::from_secs(30),
        || {
            ["node-1", "node-2"]
                .iter()
                .all(|n| only_with_node_4(&lab, n))
        },
    );
    let held = Instant::now();
    while held.elapsed() < Duration::from_secs(3) {
        let fib = lab.fib("node-1");
        assert!(
            fib.contains(&"10.244.3.0/26 via 192.0.2.13".to_owned()),
            "node-1 dropped node-3's block while node-3 was still down: {fib:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.lab_verb("start", "node-3", &[]);
    wait_for("the reflector to recover", Duration::from_secs(60), || {
        metric_sum(&lab.scrape("node-4"), "starling_bgp_prefixes_advertised") == 9.0
    });
    traffic.assert_none_lost("a reflector and a client killed, the reflector back first");
}

/// Guide step 9: steps 1 and 4 with the nodes sharing a real etcd.
#[test]
fn the_guide_on_a_lab_with_etcd() {
    let lab = Lab::up("etcd", 3, &["--etcd"]);
    step_1_full_mesh(&lab);
    step_4_route_reflector(&lab, 0);
}

/// Guide steps 1, 2 and 4: the default full mesh, a global peer (the
/// ToR), and a route reflector replacing the mesh; `lab down` leaves
/// nothing behind.
#[test]
fn the_guide_on_a_lab_mesh_global_peer_and_route_reflector() {
    let lab = Lab::up("guide", 4, &["--tor"]);

    step_1_full_mesh(&lab);

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

    step_4_route_reflector(&lab, 1);

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

impl Lab {
    /// The guide's reflector recipe for `node`: cluster id 244.0.0.1 and
    /// the label `route-reflector=true`.
    fn make_reflector(&self, node: &str) {
        self.patch(
            "node",
            node,
            r#"{"spec": {"bgp": {"routeReflectorClusterID": "244.0.0.1"}}}"#,
        );
        self.exec(
            "node-1",
            &["starling", "label", "node", node, "route-reflector=true"],
        );
    }

    /// The guide's `patch bgpconfiguration default` turning the mesh off.
    fn mesh_off(&self) {
        self.patch(
            "bgpconfiguration",
            "default",
            r#"{"spec": {"nodeToNodeMeshEnabled": false}}"#,
        );
    }

    /// `starling patch KIND NAME -p PATCH`, from inside node-1.
    fn patch(&self, kind: &str, name: &str, patch: &str) {
        self.exec("node-1", &["starling", "patch", kind, name, "-p", patch]);
    }

    /// Apply YAML from inside node-1 (as the guide does with calicoctl).
    fn apply(&self, file: &str, yaml: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, yaml).expect("yaml");
        self.exec(
            "node-1",
            &["starling", "apply", "-f", path.to_str().expect("utf8")],
        );
    }

    /// The ToR's established BGP sessions, by neighbor address.
    fn tor_peers(&self) -> Vec<String> {
        let ctl = self.dir.join("tor").join("bird.ctl");
        let text = self.exec(
            "tor",
            &[
                "birdc",
                "-s",
                ctl.to_str().expect("utf8"),
                "show",
                "protocols",
                "all",
            ],
        );
        let mut peers = Vec::new();
        let mut established = false;
        for line in text.lines() {
            if line.starts_with("node") {
                established = line.contains("Established");
            }
            if let Some(addr) = line.trim().strip_prefix("Neighbor address:")
                && established
            {
                peers.push(addr.trim().to_owned());
            }
        }
        peers.sort();
        peers
    }
}

/// Guide steps 3, 6 and 7: a per-node peer for one rack, the node status
/// table and a CalicoNodeStatus resource, and new AS numbers.
#[test]
fn the_guide_on_a_lab_rack_peers_status_and_as_numbers() {
    let lab = Lab::up("rack", 3, &["--tor"]);
    for node in lab.nodes() {
        wait_for(&format!("{node}'s mesh"), Duration::from_secs(60), || {
            let s = lab.sessions(&node);
            s.len() == 2 && s.iter().all(|(_, state)| state == "Established")
        });
    }

    // 3. Nodes labelled rack-1 (node-1, node-2) peer with the ToR; node-3
    // does not.
    for node in ["node-1", "node-2"] {
        lab.exec(
            "node-1",
            &["starling", "label", "node", node, "rack=rack-1"],
        );
    }
    lab.apply(
        "rack1-tor.yaml",
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rack1-tor\n\
         spec:\n  peerIP: 192.0.2.1\n  asNumber: 64567\n  nodeSelector: rack == 'rack-1'\n",
    );
    wait_for(
        "the ToR to peer with rack-1",
        Duration::from_secs(60),
        || lab.tor_peers() == ["192.0.2.11", "192.0.2.12"],
    );
    assert!(
        !lab.sessions("node-3")
            .iter()
            .any(|(n, _)| n.contains("192_0_2_1_") || n == "Node_192_0_2_1"),
        "{:?}",
        lab.sessions("node-3")
    );
    let table = lab.exec("node-2", &["starling", "node", "status"]);
    assert!(
        rows(&table).contains(&vec![
            "192.0.2.1".to_owned(),
            "node specific".to_owned(),
            "up".to_owned()
        ]),
        "{table}"
    );

    // 6. A CalicoNodeStatus for node-1: its BGP class matches the sessions,
    // its Routes class has the other nodes' blocks.
    lab.apply(
        "status.yaml",
        "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\nmetadata:\n  name: node-1-status\n\
         spec:\n  node: node-1\n  classes: [Agent, BGP, Routes]\n  updatePeriodSeconds: 1\n",
    );
    let mut status = Value::Null;
    wait_for("node-1's CalicoNodeStatus", Duration::from_secs(30), || {
        let text = lab.exec(
            "node-1",
            &[
                "starling",
                "get",
                "caliconodestatus",
                "node-1-status",
                "-o",
                "json",
            ],
        );
        status = serde_json::from_str::<Value>(&text).unwrap_or_default()["status"].clone();
        status["bgp"]["numberEstablishedV4"] == 3
    });
    assert_eq!(status["agent"]["birdV4"]["state"], "Ready");
    let destinations: Vec<&str> = status["routes"]["routesV4"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["type"] == "FIB")
        .filter_map(|r| r["destination"].as_str())
        .collect();
    for block in ["10.244.2.0/26", "10.244.3.0/26"] {
        assert!(destinations.contains(&block), "{destinations:?}");
    }

    // 7. New AS numbers: the default becomes 64513, node-1 64514. Sessions
    // re-form with them, node-1's become eBGP, traffic still flows.
    lab.patch(
        "bgpconfiguration",
        "default",
        r#"{"spec": {"asNumber": "64513"}}"#,
    );
    lab.patch(
        "node",
        "node-1",
        r#"{"spec": {"bgp": {"asNumber": "64514"}}}"#,
    );
    // Established sessions: (name, peer AS, eBGP).
    let neighbours = |node: &str| -> Vec<(String, u64, bool)> {
        let out = lab.exec_raw(node, &["starling", "node", "status", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["state"] == "Established")
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or_default().to_owned(),
                    s["peer_as"].as_u64().unwrap_or_default(),
                    s["ebgp"] == true,
                )
            })
            .collect()
    };
    wait_for(
        "sessions with the new ASes",
        Duration::from_secs(60),
        || {
            let one = neighbours("node-1");
            let two = neighbours("node-2");
            // node-1 (AS 64514): everything eBGP, the other nodes in 64513.
            one.len() == 3
            && one.iter().all(|(_, _, ebgp)| *ebgp)
            && one.iter().filter(|(_, peer, _)| *peer == 64513).count() == 2
            // node-2 (AS 64513): node-1 is eBGP now, node-3 still iBGP.
            && two.contains(&("Mesh_192_0_2_11".to_owned(), 64514, true))
            && two.contains(&("Mesh_192_0_2_13".to_owned(), 64513, false))
        },
    );
    for (i, node) in lab.nodes().iter().enumerate() {
        wait_for(
            &format!("{node}'s FIB after the AS change"),
            Duration::from_secs(30),
            || {
                let fib = lab.fib(node);
                mesh_fib(i + 1, 3).iter().all(|r| fib.contains(r))
            },
        );
    }
    for (from, to) in [(1, 2), (2, 3), (3, 1)] {
        assert!(
            lab.ping(from, to),
            "workload {from} → {to} after the AS change"
        );
    }
}

impl Lab {
    /// `starling lab stop|start NODE ...`, which must succeed.
    fn lab_verb(&self, verb: &str, node: &str, extra: &[&str]) {
        let mut args = vec![verb, node];
        args.extend_from_slice(extra);
        let out = self.starling_lab(&args);
        assert!(
            out.status.success(),
            "lab {verb} {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `starling` inside node-1, expected to fail: its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let mut full = vec!["starling"];
        full.extend_from_slice(args);
        let out = self.exec_raw("node-1", &full);
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Every session of every node is Established, with these names.
fn all_established(lab: &Lab) -> Vec<Vec<(String, String)>> {
    lab.nodes().iter().map(|n| lab.sessions(n)).collect()
}

/// Guide step 8, faults, on one lab of three nodes:
/// - `kill -9` node-2's daemon: its block stays in the others' kernels
///   (graceful restart) and its own kernel keeps forwarding; started
///   again, it adopts its routes: no packet lost, no kernel route written
///   anywhere;
/// - a bad resource and a bad patch are refused with what and where, and
///   nothing changes;
/// - a plugin that traps: the node status and the metrics say so, the
///   sessions and the traffic carry on;
/// - node-3 removed: its block leaves the others' kernels at once.
#[test]
fn faults_a_crash_a_bad_resource_a_trapping_plugin_and_a_removed_node() {
    // A plugin that traps on request (a `hostile-mode` label on a Node);
    // until asked, it gives every node AS 65000.
    let hostile = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile.wasm");
    std::fs::write(&hostile, starling_plugins::TEST_HOSTILE).expect("hostile.wasm");
    let plugin = format!("as_assignment={}", hostile.display());
    let lab = Lab::up("faults", 3, &["--plugin", &plugin]);
    step_1_full_mesh(&lab);

    // 1. kill -9 node-2's daemon, with traffic throughout.
    let kernel_writes = |node: &str| metric_sum(&lab.scrape(node), "starling_fib_operations_total");
    let writes_before = [kernel_writes("node-1"), kernel_writes("node-3")];
    let traffic = Traffic::start(&lab, 25);
    lab.lab_verb("stop", "node-2", &["--kill"]);
    wait_for(
        "node-1 to lose its session with node-2",
        Duration::from_secs(30),
        || {
            !lab.sessions("node-1")
                .contains(&("Mesh_192_0_2_12".to_owned(), "Established".to_owned()))
        },
    );
    for (i, node) in lab.nodes().iter().enumerate() {
        assert_eq!(
            lab.fib(node),
            mesh_fib(i + 1, 3),
            "{node} while node-2 is down"
        );
    }
    lab.lab_verb("start", "node-2", &[]);
    wait_for("node-2 to recover", Duration::from_secs(60), || {
        // Its table goes out once it has the others' (RFC 4724 §4.1).
        metric_sum(&lab.scrape("node-2"), "starling_bgp_prefixes_advertised") == 2.0
    });
    traffic.assert_none_lost("node-2's daemon killed and started again");
    let restarted = lab.scrape("node-2");
    assert_eq!(
        metric_sum(&restarted, "starling_fib_operations_total"),
        0.0,
        "node-2 rewrote kernel routes after its restart:\n{restarted}"
    );
    assert_eq!(
        [kernel_writes("node-1"), kernel_writes("node-3")],
        writes_before,
        "the others rewrote kernel routes"
    );

    // 2. A bad resource and a bad patch change nothing.
    let sessions = all_established(&lab);
    lab.apply(
        "ok.yaml",
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: placeholder\n\
         spec:\n  peerIP: 198.51.100.1\n  asNumber: 64999\n  nodeSelector: has(nothing)\n",
    );
    let bad = lab.dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: placeholder\n\
         spec:\n  peerIP: 192.0.2.300\n  asNumber: 64999\n",
    )
    .expect("yaml");
    let error = lab.refused(&["apply", "-f", bad.to_str().expect("utf8")]);
    assert!(error.contains("peerIP"), "{error}");
    let error = lab.refused(&[
        "patch",
        "bgpconfiguration",
        "default",
        "-p",
        r#"{"spec": {"asNumber": "sixty-four"}}"#,
    ]);
    assert!(error.contains("asNumber"), "{error}");
    let stored = lab.exec(
        "node-1",
        &["starling", "get", "bgppeer", "placeholder", "-o", "json"],
    );
    assert!(stored.contains("198.51.100.1"), "{stored}");
    assert_eq!(all_established(&lab), sessions);

    // 3. The AS-assignment plugin traps on every plan: each node says so
    // and keeps its last plan; sessions and traffic carry on.
    let traps = |node: &str| {
        lab.scrape(node)
            .lines()
            .filter(|l| l.starts_with("starling_plugin_errors_total") && l.contains("trap"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    lab.exec(
        "node-1",
        &["starling", "label", "node", "node-3", "hostile-mode=trap"],
    );
    for node in lab.nodes() {
        wait_for(
            &format!("{node} to report the trapping plugin"),
            Duration::from_secs(30),
            || {
                lab.exec(&node, &["starling", "node", "status"])
                    .contains("Configuration not applied since")
                    && traps(&node) > 0.0
            },
        );
    }
    let table = lab.exec("node-1", &["starling", "node", "status"]);
    assert!(table.contains("trap"), "{table}");
    assert_eq!(all_established(&lab), sessions);
    assert!(
        lab.ping(1, 3) && lab.ping(3, 2),
        "traffic with a trapping plugin"
    );
    lab.exec(
        "node-1",
        &[
            "starling",
            "label",
            "node",
            "node-3",
            "hostile-mode",
            "--remove",
        ],
    );
    wait_for(
        "node-1 to apply changes again",
        Duration::from_secs(30),
        || {
            !lab.exec("node-1", &["starling", "node", "status"])
                .contains("Configuration not applied")
        },
    );

    // 4. node-3 removed: its block leaves the others' kernels at once
    // (well within the hold time).
    lab.exec("node-1", &["starling", "delete", "node", "node-3"]);
    for (i, node) in lab.nodes().iter().enumerate().take(2) {
        wait_for(
            &format!("{node} to forget node-3"),
            Duration::from_secs(10),
            || lab.fib(node) == mesh_fib(i + 1, 2),
        );
    }
    assert!(lab.ping(1, 2), "node-1 ↔ node-2 after node-3 left");
}

/// Guide step 10, scale: `nodes` daemons come up together; report how
/// long until every node's kernel has a route to every other node's block,
/// and each daemon's resident memory (printed; `scripts/lab-scale` runs
/// these alone for the numbers in docs/performance.md).
fn converge(name: &str, nodes: usize, extra: &[&str]) {
    let started = Instant::now();
    let lab = Lab::up(name, nodes, extra);
    let up = started.elapsed();
    let mut pending: Vec<usize> = (1..=nodes).collect();
    while !pending.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "not converged after 15 minutes: {} nodes pending ({pending:?})",
            pending.len()
        );
        pending.retain(|i| lab.fib(&format!("node-{i}")) != mesh_fib(*i, nodes));
        std::thread::sleep(Duration::from_millis(200));
    }
    let converged = started.elapsed();
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(lab.dir.join("lab.json")).expect("lab.json"))
            .expect("lab state");
    let mut rss_kib: Vec<u64> = state["pids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p[0].as_str().is_some_and(|n| n.starts_with("node-")))
        .filter_map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{}/status", p[1])).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    rss_kib.sort_unstable();
    assert_eq!(rss_kib.len(), nodes, "every daemon still running");
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "SCALE {name}: {nodes} nodes {extra:?}: lab up (namespaces, daemons answering) {:.1} s; \
         every kernel FIB complete {:.1} s after `lab up` began ({:.1} s after it returned); \
         RSS per daemon: min {:.1} MiB, median {:.1} MiB, max {:.1} MiB",
        up.as_secs_f64(),
        converged.as_secs_f64(),
        (converged - up).as_secs_f64(),
        mib(rss_kib[0]),
        mib(rss_kib[nodes / 2]),
        mib(rss_kib[nodes - 1]),
    );
}

#[test]
fn scale_a_30_node_full_mesh() {
    converge("mesh30-", 30, &[]);
}

#[test]
fn scale_60_nodes_with_two_route_reflectors() {
    converge("rr60-", 60, &["--reflectors", "2"]);
}

/// Contract 0.2's promise: Calico is *a* plugin set. Four nodes run on the
/// example fabric plugin's own resources (`FabricNode`, no Calico kind in
/// the datastore): each node has one session to the BIRD ToR carrying
/// IPv4 and IPv6, originates its pod blocks of both families, and
/// workloads reach each other over both.
#[test]
fn a_fabric_model_without_calico_runs_dual_stack_over_one_session_per_tor() {
    let lab = Lab::up("fabric", 4, &["--tor", "--model", "fabric"]);
    for node in lab.nodes() {
        wait_for(
            &format!("{node}'s session to the ToR"),
            Duration::from_secs(60),
            || lab.sessions(&node) == [("Fabric_tor".to_owned(), "Established".to_owned())],
        );
    }
    // No Calico kind anywhere: the daemons got everything from the plugin.
    for kind in ["node", "bgpconfiguration", "bgppeer", "ippool"] {
        let listed = lab.exec("node-1", &["starling", "get", kind, "-o", "json"]);
        let v: Value = serde_json::from_str(&listed).unwrap_or_default();
        let items = v.get("items").and_then(Value::as_array).map_or(0, Vec::len);
        assert_eq!(items, 0, "{kind}: {listed}");
    }
    for (from, to) in [(1, 4), (4, 1), (2, 3)] {
        for v6 in [false, true] {
            wait_for(
                &format!(
                    "node-{from} to reach node-{to} over IPv{}",
                    if v6 { 6 } else { 4 }
                ),
                Duration::from_secs(30),
                || lab.ping_in(from, to, v6),
            );
        }
    }
    // The kernel has both families' routes from the one session, and the
    // node's own blocks as blackholes.
    let v6 = lab.exec("node-1", &["ip", "-6", "route", "show", "proto", "199"]);
    assert!(v6.contains("blackhole 2001:db8:244:1::/64"), "{v6}");
    assert!(v6.contains("2001:db8:244:4::/64"), "{v6}");
    let v4 = lab.fib("node-1");
    assert!(v4.contains(&"10.244.1.0/26 blackhole".to_owned()), "{v4:?}");
    assert!(
        v4.iter().any(|r| r.starts_with("10.244.4.0/26 via")),
        "{v4:?}"
    );
    // `node status` lists the session in Calico's table, its type named
    // after the model.
    let table = lab.exec("node-1", &["starling", "node", "status"]);
    assert!(
        rows(&table)
            .iter()
            .any(|r| r[0] == "192.0.2.1" && r[1] == "fabric" && r[2] == "up"),
        "{table}"
    );
}

/// Calico's guide over both families (`lab up --dual-stack`): the mesh in
/// IPv4 and IPv6, the ToR as a global peer in each, then the move to a
/// route reflector by Calico's procedure with traffic in both families
/// throughout: no packet lost in either.
#[test]
fn the_guide_dual_stack_mesh_global_peers_and_route_reflector() {
    let lab = Lab::up("dual", 4, &["--tor", "--dual-stack"]);
    let sessions_up = |node: &str, want: &[&str]| {
        let s = lab.sessions(node);
        s.len() == want.len()
            && want.iter().all(|prefix| {
                s.iter()
                    .any(|(name, state)| name.starts_with(prefix) && state == "Established")
            })
    };
    for node in lab.nodes() {
        wait_for(
            &format!("{node}'s mesh in both families"),
            Duration::from_secs(60),
            || {
                let s = lab.sessions(&node);
                s.len() == 2 * (lab.nodes - 1)
                    && s.iter()
                        .all(|(name, state)| name.starts_with("Mesh_") && state == "Established")
                    && s.iter()
                        .filter(|(name, _)| name.starts_with("Mesh_2001_db8__"))
                        .count()
                        == lab.nodes - 1
            },
        );
    }
    for (from, to) in (1..=lab.nodes).map(|i| (i, i % lab.nodes + 1)) {
        for v6 in [false, true] {
            wait_for(
                &format!("workload {from} → {to}, IPv{}", if v6 { 6 } else { 4 }),
                Duration::from_secs(30),
                || lab.ping_in(from, to, v6),
            );
        }
    }
    let v6 = lab.exec("node-1", &["ip", "-6", "route", "show", "proto", "199"]);
    assert!(v6.contains("blackhole 2001:db8:244:1::/122"), "{v6}");
    assert!(
        v6.contains("2001:db8:244:4::/122 ") && v6.contains("via 2001:db8::14"),
        "{v6}"
    );

    // The ToR as a global peer in each family: it learns every block.
    lab.apply(
        "tor.yaml",
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor-v4}\n\
         spec: {peerIP: 192.0.2.1, asNumber: 64567}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor-v6}\n\
         spec: {peerIP: '2001:db8::1', asNumber: 64567}\n",
    );
    let ctl = lab.dir.join("tor").join("bird.ctl");
    let ctl = ctl.to_str().expect("utf8");
    wait_for(
        "the ToR to learn every block",
        Duration::from_secs(60),
        || {
            let v4 = lab.exec(
                "tor",
                &["birdc", "-s", ctl, "show", "route", "table", "master4"],
            );
            let v6 = lab.exec(
                "tor",
                &["birdc", "-s", ctl, "show", "route", "table", "master6"],
            );
            (1..=lab.nodes).all(|i| {
                v4.contains(&format!("10.244.{i}.0/26"))
                    && v6.contains(&format!("2001:db8:244:{i}::/122"))
            })
        },
    );
    let table = lab.exec("node-2", &["starling", "node", "status"]);
    for want in [
        ["192.0.2.1", "global", "up"],
        ["2001:db8::1", "global", "up"],
    ] {
        assert!(
            rows(&table).contains(&want.map(str::to_owned).to_vec()),
            "{table}"
        );
    }

    // Calico's procedure: node-4 reflects, everyone peers with it (in
    // both families), then the mesh goes. Traffic in both families.
    let traffic = Traffic::dual_stack(&lab, 30);
    lab.make_reflector("node-4");
    lab.apply("rr.yaml", PEER_WITH_ROUTE_REFLECTORS);
    let with_reflector = [
        "Node_192_0_2_14",
        "Node_2001_db8__14",
        "Global_192_0_2_1",
        "Global_2001_db8__1",
    ];
    for node in lab.nodes().iter().take(3) {
        wait_for(
            &format!("{node}'s sessions with the reflector"),
            Duration::from_secs(60),
            || {
                let s = lab.sessions(node);
                with_reflector[..2].iter().all(|want| {
                    s.iter()
                        .any(|(name, state)| name == want && state == "Established")
                })
            },
        );
    }
    lab.mesh_off();
    for (i, node) in lab.nodes().iter().enumerate().take(3) {
        wait_for(
            &format!("{node} to peer only with the reflector and the ToR"),
            Duration::from_secs(60),
            || sessions_up(node, &with_reflector),
        );
        wait_for(
            &format!("{node}'s IPv4 FIB through the reflector"),
            Duration::from_secs(30),
            || {
                let fib = lab.fib(node);
                mesh_fib(i + 1, lab.nodes).iter().all(|r| fib.contains(r))
            },
        );
    }
    traffic.assert_none_lost("dual stack: mesh → route reflector, Calico's procedure");
    // `node status` on the reflector says what it is, and whom it serves.
    let table = lab.exec("node-4", &["starling", "node", "status"]);
    assert!(
        table.contains(
            "This node is a route reflector, cluster ID 244.0.0.1; clients: 192.0.2.11, \
             192.0.2.12, 192.0.2.13, 2001:db8::11, 2001:db8::12, 2001:db8::13.\n"
        ),
        "{table}"
    );
    for (from, to) in (1..=lab.nodes).map(|i| (i, i % lab.nodes + 1)) {
        assert!(
            lab.ping_in(from, to, true),
            "IPv6 workload {from} → {to} through the reflector"
        );
    }
}
