//! A datastore that misbehaves never touches a session (test-matrix.md's
//! N2/N10 for the control plane's own input): etcd killed, paused and cut
//! off from the node, its history compacted past the daemon's watch; the
//! embedded store's disk full, its journal torn and damaged, two writers
//! at once. In each case the BGP session to a real BIRD stays up with its
//! route, node status says what is wrong while it lasts, and the first
//! good state afterwards is applied exactly once (the daemon's log says
//! "replacing it" once per change that replaces the session).

mod common;

use common::daemon::*;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use starling_store_etcd::test_server::EtcdServer;

/// The admin socket's status answer (`starling node status -o json`).
fn status(dir: &Path, socket: &Path) -> Value {
    let out = starling(
        dir,
        &[
            "node",
            "status",
            "-o",
            "json",
            "--socket",
            socket.to_str().expect("utf8"),
        ],
        None,
    );
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// When the one session last changed state (Unix seconds), if Established.
fn established_since(dir: &Path, socket: &Path) -> Option<u64> {
    let status = status(dir, socket);
    let session = &status["sessions"][0];
    (session["state"] == "Established").then(|| session["since"].as_u64())?
}

fn datastore_error(dir: &Path, socket: &Path) -> Option<String> {
    status(dir, socket)["datastore_error"]["error"]
        .as_str()
        .map(str::to_owned)
}

/// How many times the daemon replaced a session for changed settings.
fn replacements(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("daemon.log"))
        .unwrap_or_default()
        .matches("session settings changed: replacing it")
        .count()
}

/// Whether two readings of "since" are the same moment: status derives
/// it from whole seconds of wall clock and of session age, so one reading
/// may differ from the next by a second.
fn same_moment(a: u64, b: u64) -> bool {
    a.abs_diff(b) <= 1
}

/// The session is up since `since` and BIRD's route is in the Loc-RIB.
fn untouched(dir: &Path, socket: &Path, since: u64, what: &str) {
    let now = established_since(dir, socket);
    assert!(
        now.is_some_and(|now| same_moment(now, since)),
        "{what}: the session dropped (up since {since}, now {now:?})"
    );
    assert!(
        loc_rib(dir, socket).contains("203.0.113.0/24"),
        "{what}: BIRD's route is gone"
    );
}

/// This test thread in a network namespace of its own, so a firewall
/// rule can cut the node off from etcd without touching the host; the
/// daemon, BIRD, etcd and the CLI it starts run in it too. Back to the
/// original namespace, and the namespace removed, on drop.
struct Netns {
    name: String,
    original: std::fs::File,
}

impl Netns {
    fn enter(name: &str) -> Self {
        use std::os::fd::AsRawFd;
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        run("ip", &["netns", "add", name]);
        run("ip", &["-n", name, "link", "set", "lo", "up"]);
        let original = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
        let target = std::fs::File::open(format!("/var/run/netns/{name}")).expect("netns");
        // SAFETY: setns on this thread only, with descriptors we hold.
        #[allow(unsafe_code)]
        let entered = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
        Netns {
            name: name.to_owned(),
            original,
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as in `enter`.
        #[allow(unsafe_code)]
        let _ = unsafe { libc::setns(self.original.as_raw_fd(), libc::CLONE_NEWNET) };
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} {args:?}");
}

/// Drop everything between this node and etcd's first address, both
/// ways: a partition that leaves connections open and silent, as a lost
/// link does.
fn cut_off(etcd: &EtcdServer, cut: bool) {
    let address = etcd.address().to_string();
    let action = if cut { "-I" } else { "-D" };
    for (side, port) in [("-d", "--dport"), ("-s", "--sport")] {
        run(
            "iptables",
            &[
                action, "INPUT", "-p", "tcp", side, &address, port, "2379", "-j", "DROP",
            ],
        );
    }
}

/// `starling_datastore_watch_losses_total`.
fn watch_losses(metrics: std::net::SocketAddr) -> u64 {
    scrape(metrics)
        .lines()
        .find_map(|l| l.strip_prefix("starling_datastore_watch_losses_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_default()
}

#[test]
fn etcd_killed_paused_cut_off_or_compacted_never_touches_a_session() {
    let _ns = Netns::enter(&format!("sl-dsf-{}", std::process::id()));
    let dir = Scratch::new("etcd-faults");
    let mut etcd = EtcdServer::start_twice_reachable(&dir.0.join("etcd"));
    // The daemon uses the first address; the CLI, standing for the rest
    // of the cluster, the second.
    let node_endpoint = etcd.endpoint();
    let cluster_endpoint = etcd.second_endpoint().expect("a second address");
    let env: [(&str, &std::ffi::OsStr); 2] = [
        ("DATASTORE_TYPE", "etcdv3".as_ref()),
        ("ETCD_ENDPOINTS", cluster_endpoint.as_ref()),
    ];
    let cli = |args: &[&str], stdin: Option<&str>| {
        let out = common::starling_with(&env, args, stdin);
        assert!(
            out.status.success(),
            "starling {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let socket = dir.0.join("admin.sock");
    let _bird = bird(&dir.0, ([127, 0, 0, 3], 1179), ([127, 0, 0, 2], 1180));
    cli(
        &["apply", "-f", "-"],
        Some(&resources("127.0.0.2", 1180, "127.0.0.3", 1179)),
    );
    let config = daemon_config(
        &dir.0,
        "127.0.0.2",
        Some(&format!(
            "{{ type = \"etcdv3\", endpoints = [\"{node_endpoint}\"] }}"
        )),
        "[metrics]\nlisten = \"127.0.0.2:9179\"\n",
    );
    let _daemon = run_daemon(&dir.0, &config);
    wait_for("the session to BIRD", Duration::from_secs(30), || {
        established_since(&dir.0, &socket).is_some()
    });
    let since = established_since(&dir.0, &socket).expect("up");
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 2], 9179));
    assert!(scrape(metrics).contains("starling_datastore_up 1\n"));
    let trouble = || datastore_error(&dir.0, &socket);
    let keepalive = |seconds: u32| {
        cli(
            &[
                "patch",
                "bgppeer",
                "bird",
                "-p",
                &format!(r#"{{"spec": {{"keepaliveTime": "{seconds}s"}}}}"#),
            ],
            None,
        );
    };

    // Killed: said at once, nothing else happens; back, said too.
    etcd.kill();
    wait_for("node status to name etcd", Duration::from_secs(20), || {
        trouble().is_some_and(|e| e.contains(&node_endpoint))
    });
    assert!(scrape(metrics).contains("starling_datastore_up 0\n"));
    untouched(&dir.0, &socket, since, "etcd killed");
    etcd.restart();
    wait_for("etcd back in node status", Duration::from_secs(30), || {
        trouble().is_none()
    });

    // Paused past the watch's keepalive (10 s, 5 s to answer): the
    // connection is open and silent; the daemon notices on its own.
    etcd.pause();
    wait_for("a paused etcd noticed", Duration::from_secs(40), || {
        trouble().is_some()
    });
    untouched(&dir.0, &socket, since, "etcd paused");
    etcd.resume();
    wait_for("a resumed etcd", Duration::from_secs(30), || {
        trouble().is_none()
    });
    untouched(&dir.0, &socket, since, "etcd resumed");
    assert_eq!(replacements(&dir.0), 0);

    // Cut off while the cluster changes: nothing applied meanwhile, the
    // change applied once when the link is back.
    cut_off(&etcd, true);
    keepalive(10);
    wait_for("a partition noticed", Duration::from_secs(40), || {
        trouble().is_some()
    });
    untouched(&dir.0, &socket, since, "cut off");
    assert_eq!(replacements(&dir.0), 0, "a change applied while cut off");
    cut_off(&etcd, false);
    wait_for(
        "the change made during the partition",
        Duration::from_secs(40),
        || {
            trouble().is_none()
                && established_since(&dir.0, &socket).is_some_and(|s| !same_moment(s, since))
        },
    );
    assert_eq!(replacements(&dir.0), 1);
    let since = established_since(&dir.0, &socket).expect("up");

    // Cut off until the watch itself gives up (its keepalive: 10 s, 5 s
    // to answer), and the history it would resume from compacted away:
    // everything is read again, and the change applied once.
    let losses = watch_losses(metrics);
    cut_off(&etcd, true);
    wait_for("the watch to give up", Duration::from_secs(40), || {
        watch_losses(metrics) > losses
    });
    assert!(trouble().is_some());
    // Two changes, then everything before the second compacted: the
    // watch's next revision is gone.
    keepalive(20);
    keepalive(21);
    let etcdctl = Command::new("etcdctl")
        .args([
            "--endpoints",
            &cluster_endpoint,
            "endpoint",
            "status",
            "-w",
            "json",
        ])
        .output()
        .expect("etcdctl");
    let state: Value = serde_json::from_slice(&etcdctl.stdout).expect("etcdctl json");
    let revision = state[0]["Status"]["header"]["revision"]
        .as_u64()
        .expect("a revision");
    run(
        "etcdctl",
        &[
            "--endpoints",
            &cluster_endpoint,
            "compact",
            &revision.to_string(),
        ],
    );
    untouched(&dir.0, &socket, since, "cut off and compacted");
    cut_off(&etcd, false);
    wait_for(
        "the change made before the compaction",
        Duration::from_secs(40),
        || {
            trouble().is_none()
                && established_since(&dir.0, &socket).is_some_and(|s| !same_moment(s, since))
        },
    );
    let text = scrape(metrics);
    assert!(
        text.contains("starling_datastore_resyncs_total 1\n"),
        "{text}"
    );
    assert_eq!(watch_losses(metrics), losses + 1, "one loss per outage");
    assert_eq!(replacements(&dir.0), 2, "each change applied once");
}
