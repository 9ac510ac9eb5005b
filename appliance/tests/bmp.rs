//! BMP to a real collector: pmacct's `pmbmpd` (Debian package `pmacct`)
//! logs, as JSON lines, what the daemon exports while a real BIRD peer
//! sends it a route; a collector that restarts gets the whole state again.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::daemon::*;
use serde_json::Value;

const ME: [u8; 4] = [127, 0, 0, 152];
const BIRD: [u8; 4] = [127, 0, 0, 153];
const COLLECTOR: &str = "127.0.0.154";

/// pmbmpd on `COLLECTOR:port`, logging every message to `log`.
fn pmbmpd(dir: &Path, port: u16, log: &Path) -> Reaped {
    let config = dir.join(format!("pmbmpd-{port}.conf"));
    std::fs::write(
        &config,
        format!(
            "bmp_daemon_ip: {COLLECTOR}\nbmp_daemon_port: {port}\n\
             bmp_daemon_msglog_file: {}\nbmp_daemon_msglog_output: json\n\
             logfile: {}\n",
            log.display(),
            dir.join("pmbmpd.log").display()
        ),
    )
    .expect("pmbmpd.conf");
    Reaped(
        Command::new("pmbmpd")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pmbmpd (scripts/setup installs pmacct)"),
    )
}

/// The collector's log, one JSON object per line.
fn logged(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn has(log: &[Value], what: impl Fn(&Value) -> bool) -> bool {
    log.iter().any(what)
}

fn kind(v: &Value) -> &str {
    v["bmp_msg_type"].as_str().unwrap_or_default()
}

/// A route monitoring message for BIRD's route: pre- or post-policy.
fn birds_route(v: &Value, post: bool) -> bool {
    kind(v) == "route_monitor"
        && v["peer_ip"] == "127.0.0.153"
        && v["ip_prefix"] == "203.0.113.0/24"
        && v["is_post"] == u8::from(post)
}

#[test]
fn a_bmp_collector_sees_the_peer_its_routes_and_the_statistics_and_resyncs_after_a_restart() {
    let dir = Scratch::new("bmp");
    let starling_port = free_port(ME);
    let bird_port = free_port(BIRD);
    let collector_port = free_port([127, 0, 0, 154]);
    let socket = dir.0.join("admin.sock");
    let first_log: PathBuf = dir.0.join("bmp-1.json");

    let mut collector = pmbmpd(&dir.0, collector_port, &first_log);
    let _bird = bird(&dir.0, (BIRD, bird_port), (ME, starling_port));
    let resources = resources("127.0.0.152", starling_port, "127.0.0.153", bird_port);
    starling_ok(&dir.0, &["apply", "-f", "-"], Some(&resources));
    let config = daemon_config(
        &dir.0,
        "127.0.0.152",
        None,
        &format!(
            "[metrics]\nenabled = false\n[bmp]\ncollectors = [\"{COLLECTOR}:{collector_port}\"]\n\
             statistics_interval = 1\n"
        ),
    );
    let mut daemon = run_daemon(&dir.0, &config);
    wait_for("the session to BIRD", Duration::from_secs(30), || {
        session_state(&dir.0, &socket).as_deref() == Some("Established")
    });

    let wanted = |log: &[Value]| {
        has(log, |v| kind(v) == "init")
            && has(log, |v| {
                kind(v) == "peer_up" && v["peer_ip"] == "127.0.0.153" && v["peer_asn"] == 65001
            })
            && has(log, |v| birds_route(v, false))
            && has(log, |v| birds_route(v, true))
            && has(log, |v| kind(v) == "stats" && v["peer_ip"] == "127.0.0.153")
    };
    let mut log = Vec::new();
    wait_for(
        "the collector to log the peer, its route and statistics",
        Duration::from_secs(30),
        || {
            log = logged(&first_log);
            wanted(&log)
        },
    );
    let up = log
        .iter()
        .find(|v| kind(v) == "peer_up" && v["peer_type"] == 0)
        .expect("peer up");
    assert_eq!(up["local_ip"], "127.0.0.152", "{up}");
    assert_eq!(up["bgp_id"], "192.0.2.153", "{up}");
    // Whichever side connected, one of the ports is a listening one.
    assert!(
        up["remote_port"] == bird_port || up["local_port"] == starling_port,
        "{up}"
    );
    // The Loc-RIB (RFC 9069) is introduced and carries the route too.
    assert!(has(&log, |v| kind(v) == "peer_up" && v["is_loc"] == 1));
    assert!(has(&log, |v| {
        kind(v) == "route_monitor" && v["is_loc"] == 1 && v["ip_prefix"] == "203.0.113.0/24"
    }));
    assert!(has(&log, |v| {
        kind(v) == "stats" && v["counter_type"] == 7 && v["counter_value"] == 1
    }));
    let route = log
        .iter()
        .find(|v| birds_route(v, true))
        .expect("post-policy route");
    assert_eq!(route["bgp_nexthop"], "127.0.0.153", "{route}");
    assert_eq!(route["as_path"], "65001", "{route}");

    // A collector that restarts is given the peers and routes again.
    drop(collector);
    let second_log = dir.0.join("bmp-2.json");
    collector = pmbmpd(&dir.0, collector_port, &second_log);
    wait_for(
        "the restarted collector to get the state again",
        Duration::from_secs(30),
        || wanted(&logged(&second_log)),
    );

    // A clean stop: the session's Peer Down, then Termination.
    signal(&daemon.0.id().to_string(), "-TERM");
    let stopped = daemon.0.wait().expect("wait");
    assert!(stopped.success(), "{stopped:?}");
    wait_for(
        "the collector to log the peer down and the termination",
        Duration::from_secs(10),
        || {
            let log = logged(&second_log);
            has(&log, |v| {
                kind(v) == "peer_down" && v["peer_ip"] == "127.0.0.153"
            }) && has(&log, |v| kind(v) == "term")
        },
    );
    drop(collector);
}
