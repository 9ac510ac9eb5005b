//! `starling run` end to end: the real daemon on the embedded datastore,
//! a real BIRD 2 peer on loopback, `starling node status` over the admin
//! socket, configuration changes through the CLI, and a clean shutdown.
//!
//! The helpers (scratch, BIRD peer, config, scrape) are in
//! `common::daemon`, shared with the other daemon test binaries.
//!
//! Over 800 lines on purpose: the first test walks one running daemon and
//! its BIRD session through every live change in turn (raw datastore
//! writes, a listen port change, an emptied plan, SIGHUP, plugin reloads),
//! each step a function here; split across binaries, each would pay for
//! its own daemon and BIRD and lose the "the session never dropped"
//! thread that runs through them.

mod common;

use common::daemon::*;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

#[test]
fn the_daemon_peers_with_bird_as_the_datastore_says() {
    let dir = Scratch::new("bird");
    let starling_port = free_port([127, 0, 0, 130]);
    let bird_port = free_port([127, 0, 0, 131]);
    let socket = dir.0.join("admin.sock");
    let metrics_addr = metrics_at([127, 0, 0, 130]);

    let _bird = bird(
        &dir.0,
        ([127, 0, 0, 131], bird_port),
        ([127, 0, 0, 130], starling_port),
    );
    let resources = resources("127.0.0.130", starling_port, "127.0.0.131", bird_port);
    starling_ok(&dir.0, &["apply", "-f", "-"], Some(&resources));

    let config = daemon_config(
        &dir.0,
        "127.0.0.130",
        None,
        &format!("[metrics]\nlisten = \"{metrics_addr}\"\n"),
    );
    let mut daemon = run_daemon(&dir.0, &config);

    wait_for("the session to BIRD", Duration::from_secs(30), || {
        session_state(&dir.0, &socket).as_deref() == Some("Established")
    });
    let out = starling(
        &dir.0,
        &["node", "status", "--socket", socket.to_str().expect("utf8")],
        None,
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.starts_with("Calico process is running.\n\nIPv4 BGP status\n+"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "| 127.0.0.131.port.{bird_port} | global    | up    |"
        )),
        "{text}"
    );
    assert!(text.contains("| Established |"), "{text}");
    assert!(
        text.ends_with("IPv6 BGP status\nNo IPv6 peers found.\n\n"),
        "{text}"
    );

    // Prometheus sees the session, its messages, BIRD's one route and the
    // plugin calls that planned it.
    let session = format!("Global_127_0_0_131_port_{bird_port}");
    let labels = format!("peer=\"127.0.0.131\",session=\"{session}\"");
    let mut metrics = String::new();
    wait_for(
        "BIRD's route in the metrics",
        Duration::from_secs(30),
        || {
            metrics = scrape(metrics_addr);
            metrics.contains(&format!("starling_bgp_prefixes_received{{{labels}}} 1\n"))
        },
    );
    for want in [
        format!("starling_bgp_peer_up{{{labels}}} 1\n"),
        format!("starling_bgp_peer_state{{{labels}}} 5\n"),
        format!("starling_bgp_messages_received_total{{{labels},type=\"open\"}} 1\n"),
        format!("starling_bgp_update_errors_total{{action=\"session_reset\",{labels}}} 0\n"),
        format!("starling_bgp_prefixes_accepted{{{labels}}} 1\n"),
        // No pool covers BIRD's route: Calico's export policy keeps it.
        format!("starling_bgp_prefixes_advertised{{{labels}}} 0\n"),
        "starling_bgp_loc_rib_prefixes 1\n".to_owned(),
        "starling_bgp_update_groups 1\n".to_owned(),
        "starling_plugin_errors_total{kind=\"trap\",plugin=\"calico\"} 0\n".to_owned(),
    ] {
        assert!(metrics.contains(&want), "missing {want:?} in\n{metrics}");
    }
    let calls: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("starling_plugin_calls_total{plugin=\"calico\"} "))
        .and_then(|n| n.parse().ok())
        .expect("plugin calls");
    assert!(calls >= 4, "{calls}");
    dashboard_and_docs_match(&metrics);
    assert!(!metrics.contains("s3cr3t"));

    // `starling routes` lists BIRD's route with the session it came from.
    let text = loc_rib(&dir.0, &socket);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("PREFIX"), "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("203.0.113.0/24")
            && l.contains(&session)
            && l.trim_end().ends_with("65001")),
        "{text}"
    );

    // CalicoNodeStatus: the daemon fills in the status it is asked for.
    let request = "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\nmetadata: {name: n1-status}\n\
                   spec: {node: n1, classes: [Agent, BGP, Routes], updatePeriodSeconds: 1}\n";
    starling_ok(&dir.0, &["create", "-f", "-"], Some(request));
    let mut status = Value::Null;
    wait_for("CalicoNodeStatus.status", Duration::from_secs(15), || {
        let out = starling(
            &dir.0,
            &["get", "caliconodestatus", "n1-status", "-o", "json"],
            None,
        );
        status = serde_json::from_slice::<Value>(&out.stdout).unwrap_or_default()["status"].clone();
        status["bgp"]["numberEstablishedV4"] == 1
            && status["routes"]["routesV4"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    });
    assert_eq!(status["agent"]["birdV4"]["state"], "Ready");
    assert_eq!(status["agent"]["birdV4"]["routerID"], "127.0.0.130");
    assert_eq!(status["bgp"]["peersV4"][0]["type"], "GlobalPeer");
    assert_eq!(status["bgp"]["peersV4"][0]["peerIP"], "127.0.0.131");
    assert_eq!(status["bgp"]["peersV4"][0]["state"], "Established");
    let route = &status["routes"]["routesV4"][0];
    assert_eq!(route["destination"], "203.0.113.0/24");
    assert_eq!(route["learnedFrom"]["sourceType"], "BGPPeer");
    assert_eq!(route["learnedFrom"]["peerIP"], "127.0.0.131");

    // An invalid change is refused by the CLI; the session stays up.
    let bad = starling(
        &dir.0,
        &[
            "patch",
            "bgppeer",
            "bird",
            "-p",
            r#"{"spec": {"peerSelector": "all()"}}"#,
        ],
        None,
    );
    assert!(!bad.status.success());
    assert_eq!(
        session_state(&dir.0, &socket).as_deref(),
        Some("Established")
    );

    another_writers_invalid_data_is_gone_around(&dir.0, &socket, metrics_addr);
    a_listen_port_change_needs_no_restart(&dir.0, &socket, starling_port);
    a_change_that_empties_the_plan_is_warned(&dir.0, &socket);

    // A change the daemon applies: the wrong AS for BIRD, so the session
    // is replaced and cannot establish.
    let out = starling(
        &dir.0,
        &[
            "patch",
            "bgppeer",
            "bird",
            "-p",
            r#"{"spec": {"asNumber": 65099}}"#,
        ],
        None,
    );
    assert!(out.status.success());
    wait_for(
        "the session to leave Established",
        Duration::from_secs(30),
        || session_state(&dir.0, &socket).is_some_and(|s| s != "Established"),
    );
    // And back.
    starling(
        &dir.0,
        &[
            "patch",
            "bgppeer",
            "bird",
            "-p",
            r#"{"spec": {"asNumber": 65001}}"#,
        ],
        None,
    );
    wait_for("the session to come back", Duration::from_secs(30), || {
        session_state(&dir.0, &socket).as_deref() == Some("Established")
    });

    // SIGHUP with a broken file changes nothing; with a valid one the
    // plugin change applies at once.
    let pid = daemon.0.id().to_string();
    let good = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("{good}\nbogus = 1\n")).expect("config");
    signal(&pid, "-HUP");
    let log = dir.0.join("daemon.log");
    wait_for(
        "the refused reload in the log",
        Duration::from_secs(10),
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("configuration not reloaded")),
    );
    assert!(
        std::fs::read_to_string(&log)
            .expect("log")
            .contains("unknown field `bogus`")
    );
    assert_eq!(
        session_state(&dir.0, &socket).as_deref(),
        Some("Established")
    );
    assert!(
        daemon.0.try_wait().expect("wait").is_none(),
        "a bad SIGHUP killed the daemon"
    );
    std::fs::write(
        &config,
        format!("{good}\n[plugins]\nroute_policy = \"prefix-guard\"\n"),
    )
    .expect("config");
    signal(&pid, "-HUP");
    wait_for(
        "the new route-policy plugin",
        Duration::from_secs(10),
        || scrape(metrics_addr).contains("starling_plugin_calls_total{plugin=\"prefix-guard\"}"),
    );
    assert_eq!(
        session_state(&dir.0, &socket).as_deref(),
        Some("Established")
    );
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        read_log().contains("plugins serving their roles")
            && read_log().contains("route_policy=prefix-guard"),
        "the log says which plugin serves which role"
    );

    // A plugin file is hot-reloaded; a rebuild that no longer fills the
    // role it serves is refused, and the previous build keeps serving.
    let plugin = dir.0.join("policy.wasm");
    std::fs::write(&plugin, starling_plugins::EXAMPLE_PREFIX_GUARD).expect("plugin");
    std::fs::write(
        &config,
        format!(
            "{good}\n[plugins]\nroute_policy = \"{}\"\n",
            plugin.display()
        ),
    )
    .expect("config");
    signal(&pid, "-HUP");
    wait_for("the plugin file serving", Duration::from_secs(10), || {
        read_log().contains(&format!("route_policy={}", plugin.display()))
    });
    std::fs::write(&plugin, starling_plugins::EXAMPLE_AS_PER_RACK).expect("plugin");
    wait_for("the refused rebuild", Duration::from_secs(10), || {
        read_log().contains("kept the running plugin")
    });
    assert!(read_log().contains("does not fill the RoutePolicy role"));
    // The datastore still plans: an unrelated change goes through.
    starling_ok(
        &dir.0,
        &[
            "patch",
            "bgpconfiguration",
            "default",
            "-p",
            r#"{"spec": {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}}"#,
        ],
        None,
    );
    wait_for(
        "the new service CIDR originated",
        Duration::from_secs(10),
        || loc_rib(&dir.0, &socket).contains("10.96.0.0/12"),
    );
    assert!(!read_log().contains("do not fill"), "{}", read_log());
    assert_eq!(
        session_state(&dir.0, &socket).as_deref(),
        Some("Established")
    );

    // SIGTERM: a clean exit, the admin socket removed.
    signal(&pid, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = daemon.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "starling did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
    // BIRD was told why (RFC 9003 shutdown communication).
    let bird_says = birdc(&dir.0, &["show", "protocols", "all", "starling"]);
    assert!(
        bird_says.contains("starling is shutting down"),
        "{bird_says}"
    );
    let out = starling(
        &dir.0,
        &["node", "status", "--socket", socket.to_str().expect("utf8")],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Calico process is not running.\n"
    );
    assert!(!out.status.success());
}

/// The same daemon on etcd: resources written with calicoctl's
/// environment (`DATASTORE_TYPE=etcdv3`), changes followed through etcd's
/// watch, and still followed after etcd itself restarts.
#[test]
fn the_daemon_follows_an_etcd_datastore_across_an_etcd_restart() {
    use starling_store_etcd::test_server::EtcdServer;
    let dir = Scratch::new("etcd");
    let mut etcd = EtcdServer::start(&dir.0.join("etcd"));
    let endpoint = etcd.endpoint();
    let cli = |args: &[&str], stdin: Option<&str>| starling_on_etcd_ok(&endpoint, args, stdin);
    let starling_port = free_port([127, 0, 0, 132]);
    let bird_port = free_port([127, 0, 0, 133]);
    let socket = dir.0.join("admin.sock");
    let _bird = bird(
        &dir.0,
        ([127, 0, 0, 133], bird_port),
        ([127, 0, 0, 132], starling_port),
    );
    cli(
        &["apply", "-f", "-"],
        Some(&resources(
            "127.0.0.132",
            starling_port,
            "127.0.0.133",
            bird_port,
        )),
    );
    let got = cli(&["get", "bgppeer", "bird", "-o", "json"], None);
    let peer: Value = serde_json::from_slice(&got.stdout).expect("json");
    assert_eq!(peer["spec"]["asNumber"], 65001);

    let config = daemon_config(
        &dir.0,
        "127.0.0.132",
        Some(&format!(
            "{{ type = \"etcdv3\", endpoints = [\"{endpoint}\"] }}"
        )),
        "[metrics]\nenabled = false\n",
    );
    let _daemon = run_daemon(&dir.0, &config);
    let established = || session_state(&dir.0, &socket).as_deref() == Some("Established");
    wait_for("the session to BIRD", Duration::from_secs(30), established);

    // A change through etcd reaches the daemon: the wrong AS for BIRD.
    let patch = |asn: u32| {
        cli(
            &[
                "patch",
                "bgppeer",
                "bird",
                "-p",
                &format!(r#"{{"spec": {{"asNumber": {asn}}}}}"#),
            ],
            None,
        );
    };
    patch(65099);
    wait_for(
        "the session to leave Established",
        Duration::from_secs(30),
        || session_state(&dir.0, &socket).is_some_and(|s| s != "Established"),
    );

    // etcd crashes and comes back; the daemon keeps running on what it
    // has, resumes its watch, and sees the next change.
    etcd.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = starling_on_etcd(
            &endpoint,
            &[
                "patch",
                "bgppeer",
                "bird",
                "-p",
                r#"{"spec": {"asNumber": 65001}}"#,
            ],
            None,
        );
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "etcd did not come back: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for(
        "the session to come back after etcd restarted",
        Duration::from_secs(30),
        established,
    );
}

/// `birdc` on the BIRD whose control socket is `dir/bird.ctl`.
/// What another writer put straight into the datastore, and calicoctl
/// would have refused, is gone around: bad elements are skipped, a peer
/// edited into nonsense keeps its last good version; the session to BIRD
/// never drops, and node status and the metrics say what was skipped.
fn another_writers_invalid_data_is_gone_around(
    dir: &Path,
    socket: &Path,
    metrics_addr: std::net::SocketAddr,
) {
    let store = starling_store::Embedded::open(dir.join("store")).expect("the store");
    let write = |mut doc: Value| {
        if let Some(meta) = doc["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        store.update(doc).expect("a raw write");
    };
    let good_config = store
        .get("BGPConfiguration", "default")
        .expect("read")
        .expect("default");
    let good_peer = store.get("BGPPeer", "bird").expect("read").expect("bird");
    // A file no JSON reader can read: left out, the rest read.
    let junk = dir.join("store/resources/bgppeers/junk.json");
    std::fs::write(&junk, "{\"kind\": \"BGPPeer\", ").expect("junk");
    let mut config = good_config.clone();
    config["spec"]["serviceClusterIPs"] = serde_json::json!([{"cidr": ""}]);
    config["spec"]["prefixAdvertisements"] =
        serde_json::json!([{"cidr": "203.0.113.0/24", "communities": [12345, "65000:1"]}]);
    write(config);
    let mut peer = good_peer.clone();
    peer["spec"]["peerIP"] = Value::from("127.0.0.300");
    write(peer);

    let status = |dir: &Path| {
        let out = starling(
            dir,
            &["node", "status", "--socket", socket.to_str().expect("utf8")],
            None,
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let mut text = String::new();
    wait_for(
        "node status to list what was skipped",
        Duration::from_secs(15),
        || {
            text = status(dir);
            text.contains("Configuration applied with warnings:") && text.contains("BGPPeer 'bird'")
        },
    );
    for want in [
        "BGPConfiguration 'default', field spec.serviceClusterIPs[0].cidr: '' is not a CIDR (element skipped)",
        "BGPConfiguration 'default', field spec.prefixAdvertisements[0].communities[0]: must be a string (element skipped)",
        "BGPPeer 'bird', field spec.peerIP: '127.0.0.300' is not an IP address, IPv4:port or [IPv6]:port (last good version used)",
        "BGPPeer 'junk': cannot be read: ",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(text.contains("| Established |"), "{text}");
    let metrics = scrape(metrics_addr);
    for want in [
        "starling_datastore_skipped{kind=\"BGPConfiguration\",remedy=\"element skipped\"} 2\n",
        "starling_datastore_skipped{kind=\"BGPPeer\",remedy=\"last good version used\"} 1\n",
        "starling_datastore_skipped{kind=\"BGPPeer\",remedy=\"resource skipped\"} 1\n",
    ] {
        assert!(metrics.contains(want), "missing {want:?} in\n{metrics}");
    }
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    assert!(
        log.contains("plan: left out of the plan: BGPPeer 'bird'"),
        "{log}"
    );

    // Put right: the warnings go, the session never went.
    std::fs::remove_file(&junk).expect("junk");
    write(good_config);
    write(good_peer);
    wait_for("the warnings to clear", Duration::from_secs(15), || {
        !status(dir).contains("warnings")
    });
    assert_eq!(session_state(dir, socket).as_deref(), Some("Established"));
    assert!(!scrape(metrics_addr).contains("starling_datastore_skipped{"));
}

/// A new `listenPort` is listened on at once, the old one closed, and the
/// running session never notices; then back.
fn a_listen_port_change_needs_no_restart(dir: &Path, socket: &Path, port: u16) {
    let accepts = |port: u16| {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 130], port)),
            Duration::from_secs(1),
        )
        .is_ok()
    };
    assert!(accepts(port));
    let new_port = free_port([127, 0, 0, 130]);
    let patch = |port: u16| {
        starling_ok(
            dir,
            &[
                "patch",
                "bgpconfiguration",
                "node.n1",
                "-p",
                &format!(r#"{{"spec": {{"listenPort": {port}}}}}"#),
            ],
            None,
        );
    };
    patch(new_port);
    wait_for("the new port", Duration::from_secs(15), || {
        accepts(new_port) && !accepts(port)
    });
    assert_eq!(session_state(dir, socket).as_deref(), Some("Established"));
    patch(port);
    wait_for("the old port again", Duration::from_secs(15), || {
        accepts(port) && !accepts(new_port)
    });
    assert_eq!(session_state(dir, socket).as_deref(), Some("Established"));
}

/// Deleting the node's only BGPPeer leaves it without sessions: legal,
/// but more often a mistake than a wish, so the log says so. Put back,
/// the session forms again.
fn a_change_that_empties_the_plan_is_warned(dir: &Path, socket: &Path) {
    let peer = starling_ok(dir, &["get", "bgppeer", "bird", "-o", "yaml"], None).stdout;
    let peer = String::from_utf8(peer).expect("utf8");
    starling_ok(dir, &["delete", "bgppeer", "bird"], None);
    let log = dir.join("daemon.log");
    wait_for("the warning", Duration::from_secs(15), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("the new plan leaves this node without sessions"))
    });
    starling_ok(dir, &["apply", "-f", "-"], Some(&peer));
    wait_for("the session back", Duration::from_secs(30), || {
        session_state(dir, socket).as_deref() == Some("Established")
    });
}

fn birdc(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("birdc")
        .arg("-s")
        .arg(dir.join("bird.ctl"))
        .args(args)
        .output()
        .expect("birdc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What BIRD has learned, as `birdc show route all` prints it.
fn bird_routes(dir: &Path) -> String {
    birdc(dir, &["show", "route", "all", "protocol", "starling"])
}

/// The node originates its affine block and the service CIDRs; the
/// export policy (Calico's, through the plugin) decides what BIRD gets,
/// and a BGPFilter attached to the peer changes that without touching the
/// session.
#[test]
fn the_daemon_originates_blocks_and_services_through_the_export_policy() {
    let dir = Scratch::new("originate");
    let starling_port = free_port([127, 0, 0, 134]);
    let bird_port = free_port([127, 0, 0, 135]);
    let socket = dir.0.join("admin.sock");
    let metrics_addr = metrics_at([127, 0, 0, 134]);
    let _bird = bird(
        &dir.0,
        ([127, 0, 0, 135], bird_port),
        ([127, 0, 0, 134], starling_port),
    );
    let apply = |text: &str| {
        starling_ok(&dir.0, &["apply", "-f", "-"], Some(text));
    };
    apply(&resources(
        "127.0.0.134",
        starling_port,
        "127.0.0.135",
        bird_port,
    ));
    apply(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n\
         spec: {nodeToNodeMeshEnabled: false, asNumber: 64512, serviceClusterIPs: [{cidr: 10.96.0.0/12}]}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pods}\n\
         spec: {cidr: 10.244.0.0/16}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: n1-10-244-3-0-26}\n\
         spec: {node: n1, cidr: 10.244.3.0/26, state: confirmed, deleted: 'false'}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: other-10-244-9-0-26}\n\
         spec: {node: other, cidr: 10.244.9.0/26, state: confirmed}\n",
    );
    let config = daemon_config(
        &dir.0,
        "127.0.0.134",
        None,
        &format!(
            "originate = [\"198.51.100.0/24\", \"203.0.113.0/24\"]\n\
             [metrics]\nlisten = \"{metrics_addr}\"\n"
        ),
    );
    let _daemon = run_daemon(&dir.0, &config);

    let mut routes = String::new();
    wait_for(
        "the block and the service CIDR at BIRD",
        Duration::from_secs(30),
        || {
            routes = bird_routes(&dir.0);
            routes.contains("10.244.3.0/26") && routes.contains("10.96.0.0/12")
        },
    );
    assert!(routes.contains("BGP.as_path: 64512"), "{routes}");
    assert!(routes.contains("BGP.next_hop: 127.0.0.134"), "{routes}");
    // 203.0.113.0/24 has two paths: ours (selected) and BIRD's, as
    // `birdc show route` would list them.
    let mut table = String::new();
    wait_for(
        "both paths of 203.0.113.0/24",
        Duration::from_secs(10),
        || {
            table = loc_rib(&dir.0, &socket);
            table
                .lines()
                .filter(|l| l.starts_with("203.0.113.0/24"))
                .count()
                == 2
        },
    );
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("203.0.113.0/24"))
        .collect();
    assert!(
        rows[0].contains(" * ") && rows[0].contains("local"),
        "{table}"
    );
    assert!(
        !rows[1].contains(" * ") && rows[1].contains("Global_127_0_0_135"),
        "{table}"
    );
    // Not ours, and not in a pool or a service CIDR: not exported.
    assert!(!routes.contains("10.244.9.0/26"), "{routes}");
    assert!(!routes.contains("198.51.100.0/24"), "{routes}");

    // A BGPFilter on the peer: the service CIDR goes, the configured
    // prefix comes; the session stays up throughout.
    // How often the session reached Established: a reset would count.
    let established = || {
        scrape(metrics_addr)
            .lines()
            .filter(|l| l.starts_with("starling_bgp_established_transitions_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    assert_eq!(established(), 1);
    apply(
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: tor-out}\n\
         spec:\n  exportV4:\n  - {action: Reject, cidr: 10.96.0.0/12, matchOperator: Equal}\n\
         \x20 - {action: Accept, cidr: 198.51.100.0/24, matchOperator: Equal}\n",
    );
    starling_ok(
        &dir.0,
        &[
            "patch",
            "bgppeer",
            "bird",
            "-p",
            r#"{"spec": {"filters": ["tor-out"]}}"#,
        ],
        None,
    );
    wait_for(
        "the filter to apply at BIRD",
        Duration::from_secs(30),
        || {
            routes = bird_routes(&dir.0);
            !routes.contains("10.96.0.0/12") && routes.contains("198.51.100.0/24")
        },
    );
    assert!(routes.contains("10.244.3.0/26"), "{routes}");
    assert_eq!(established(), 1, "the session was reset");

    // Editing the attached filter's export rules re-exports: the session's
    // context is the same, what its filter says is not.
    starling_ok(
        &dir.0,
        &[
            "patch",
            "bgpfilter",
            "tor-out",
            "-p",
            r#"{"spec": {"exportV4": [{"action": "Reject", "cidr": "10.96.0.0/12", "matchOperator": "Equal"}]}}"#,
        ],
        None,
    );
    wait_for(
        "the edited filter to apply at BIRD",
        Duration::from_secs(30),
        || {
            routes = bird_routes(&dir.0);
            !routes.contains("198.51.100.0/24") && routes.contains("10.244.3.0/26")
        },
    );
    assert!(!routes.contains("10.96.0.0/12"), "{routes}");
    assert_eq!(established(), 1, "the session was reset");

    // Changes that do not touch the OPEN are applied without a reset:
    // the node becomes a route reflector, the peer gets next-hop-self.
    for (kind, name, patch) in [
        (
            "node",
            "n1",
            r#"{"spec": {"bgp": {"routeReflectorClusterID": "244.0.0.1"}}}"#,
        ),
        ("bgppeer", "bird", r#"{"spec": {"nextHopMode": "Self"}}"#),
    ] {
        starling_ok(&dir.0, &["patch", kind, name, "-p", patch], None);
    }
    wait_for("the daemon to apply both", Duration::from_secs(10), || {
        std::fs::read_to_string(dir.0.join("daemon.log")).is_ok_and(|l| {
            l.contains("cluster id changed") && l.contains("policy updated in place")
        })
    });
    assert_eq!(established(), 1, "the session was reset");

    // The block's affinity goes: so does the route.
    starling_ok(
        &dir.0,
        &["delete", "blockaffinity", "n1-10-244-3-0-26"],
        None,
    );
    wait_for("the block to be withdrawn", Duration::from_secs(30), || {
        !bird_routes(&dir.0).contains("10.244.3.0/26")
    });

    // A new AS needs a new OPEN: the session is replaced and BIRD, which
    // expects AS 64512, refuses the new one.
    starling_ok(
        &dir.0,
        &[
            "patch",
            "bgpconfiguration",
            "default",
            "-p",
            r#"{"spec": {"asNumber": "64599"}}"#,
        ],
        None,
    );
    wait_for("BIRD to refuse AS 64599", Duration::from_secs(30), || {
        birdc(&dir.0, &["show", "protocols", "all", "starling"]).contains("Bad peer AS")
    });
}

/// Replacing a peer is make-before-break: the old session keeps its routes
/// until the new one is up and has sent its table, so the route never
/// leaves the RIB, although the new peer only starts a second later.
#[test]
fn a_replaced_peer_keeps_its_routes_until_the_new_one_is_synced() {
    let dir = Scratch::new("mbb");
    let starling_port = free_port([127, 0, 0, 136]);
    let a_port = free_port([127, 0, 0, 137]);
    let b_port = free_port([127, 0, 0, 138]);
    let socket = dir.0.join("admin.sock");
    let a_dir = dir.0.join("a");
    let b_dir = dir.0.join("b");
    std::fs::create_dir_all(&a_dir).expect("a");
    std::fs::create_dir_all(&b_dir).expect("b");
    let _a = bird(
        &a_dir,
        ([127, 0, 0, 137], a_port),
        ([127, 0, 0, 136], starling_port),
    );
    starling_ok(
        &dir.0,
        &["apply", "-f", "-"],
        Some(&resources(
            "127.0.0.136",
            starling_port,
            "127.0.0.137",
            a_port,
        )),
    );
    let config = daemon_config(&dir.0, "127.0.0.136", None, "[metrics]\nenabled = false\n");
    let _daemon = run_daemon(&dir.0, &config);
    let has_route = || loc_rib(&dir.0, &socket).contains("203.0.113.0/24");
    wait_for("BIRD A's route", Duration::from_secs(30), has_route);

    // The peer moves to B, which is not even running yet.
    starling_ok(
        &dir.0,
        &[
            "patch",
            "bgppeer",
            "bird",
            "-p",
            &format!(r#"{{"spec": {{"peerIP": "127.0.0.138:{b_port}"}}}}"#),
        ],
        None,
    );
    let sessions = || common::session_states(&node_status(&dir.0, &socket));
    let old = format!("Global_127_0_0_137_port_{a_port}");
    let new = format!("Global_127_0_0_138_port_{b_port}");
    wait_for(
        "the new session to be planned",
        Duration::from_secs(10),
        || sessions().iter().any(|(n, _)| *n == new),
    );
    let started = Instant::now();
    let mut b = None;
    let mut samples = 0;
    loop {
        assert!(has_route(), "the route left the RIB during the change");
        samples += 1;
        if b.is_none() && started.elapsed() >= Duration::from_secs(1) {
            b = Some(bird(
                &b_dir,
                ([127, 0, 0, 138], b_port),
                ([127, 0, 0, 136], starling_port),
            ));
        }
        let now = sessions();
        let old_up = now.iter().any(|(n, _)| *n == old);
        let new_state = now.iter().find(|(n, _)| *n == new).map(|(_, s)| s.clone());
        if !old_up {
            assert_eq!(
                new_state.as_deref(),
                Some("Established"),
                "the old session went before the new one was up"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the old session never retired: {now:?}"
        );
    }
    assert!(samples > 10, "{samples}");
    assert!(has_route());
}
