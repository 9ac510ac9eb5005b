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

/// When the one session last changed state (Unix seconds), if Established.
fn established_since(dir: &Path, socket: &Path) -> Option<u64> {
    let status = node_status(dir, socket);
    let session = &status["sessions"][0];
    (session["state"] == "Established").then(|| session["since"].as_u64())?
}

fn datastore_error(dir: &Path, socket: &Path) -> Option<String> {
    node_status(dir, socket)["datastore_error"]["error"]
        .as_str()
        .map(str::to_owned)
}

/// `starling patch` arguments giving BIRD's BGPPeer a keepalive time: a
/// change that replaces the session, once.
fn keepalive_patch(seconds: u32) -> Vec<String> {
    ["patch", "bgppeer", "bird", "-p"]
        .into_iter()
        .map(str::to_owned)
        .chain([format!(r#"{{"spec": {{"keepaliveTime": "{seconds}s"}}}}"#)])
        .collect()
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
    let cli = |args: &[&str], stdin: Option<&str>| {
        starling_on_etcd_ok(&cluster_endpoint, args, stdin);
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
        let patch = keepalive_patch(seconds);
        cli(&patch.iter().map(String::as_str).collect::<Vec<_>>(), None);
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

/// A small tmpfs mounted at a path for the test, so its disk can fill.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                at.to_str().expect("utf8"),
            ],
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fill the disk under `dir` with one file; bounded by the disk's size.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..10_000 {
        if file.write_all(&chunk).is_err() {
            return path;
        }
    }
    panic!("{} never filled", dir.display());
}

/// The journal's lines that are events, as (revision, line).
fn journal(store: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(store.join("journal"))
        .expect("journal")
        .lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            Some((v["revision"].as_u64()?, l.to_owned()))
        })
        .collect()
}

fn counter(metrics: std::net::SocketAddr, name: &str) -> u64 {
    scrape(metrics)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_default()
}

#[test]
fn an_embedded_store_full_torn_truncated_or_written_twice_at_once_loses_nothing() {
    let dir = Scratch::new("embedded-faults");
    let store = dir.0.join("store");
    let _disk = Tmpfs::mount(&store, "4m");
    let socket = dir.0.join("admin.sock");
    let (me, bird_at) = ([127, 0, 0, 170], [127, 0, 0, 171]);
    let (port, bird_port) = (free_port(me), free_port(bird_at));
    let _bird = bird(&dir.0, (bird_at, bird_port), (me, port));
    let resources = resources("127.0.0.170", port, "127.0.0.171", bird_port);
    starling_ok(&dir.0, &["apply", "-f", "-"], Some(&resources));
    // The daemon writes this node's status every second: its writes are
    // the first to meet a full disk.
    let request = "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\n\
                   metadata: {name: n1-status}\nspec: {node: n1, classes: [Agent], updatePeriodSeconds: 1}\n";
    starling_ok(&dir.0, &["create", "-f", "-"], Some(request));
    let metrics = metrics_at(me);
    let config = daemon_config(
        &dir.0,
        "127.0.0.170",
        None,
        &format!("[metrics]\nlisten = \"{metrics}\"\n"),
    );
    let daemon = run_daemon(&dir.0, &config);
    wait_for("the session to BIRD", Duration::from_secs(30), || {
        established_since(&dir.0, &socket).is_some()
    });
    let since = established_since(&dir.0, &socket).expect("up");
    let trouble = || datastore_error(&dir.0, &socket);
    let keepalive = |seconds: u32| {
        let patch = keepalive_patch(seconds);
        starling(
            &dir.0,
            &patch.iter().map(String::as_str).collect::<Vec<_>>(),
            None,
        )
    };
    // A replaced session may be up again within the second, so the log
    // counts replacements, not "since".
    let replaced = |n: usize| {
        wait_for("the change applied", Duration::from_secs(30), || {
            replacements(&dir.0) == n
                && established_since(&dir.0, &socket).is_some()
                && loc_rib(&dir.0, &socket).contains("203.0.113.0/24")
        });
        established_since(&dir.0, &socket).expect("up")
    };

    // A full disk: the CLI says so and changes nothing; the daemon's
    // status writes fail and node status says why; the session stays.
    let filler = fill(&store);
    let before = journal(&store);
    let out = keepalive(10);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(journal(&store), before, "nothing journaled");
    let peer = starling_ok(&dir.0, &["get", "bgppeer", "bird", "-o", "json"], None).stdout;
    let peer: Value = serde_json::from_slice(&peer).expect("json");
    assert!(peer["spec"]["keepaliveTime"].is_null(), "{peer}");
    let leftovers: Vec<_> = std::fs::read_dir(store.join("resources/bgppeers"))
        .expect("bgppeers")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.ends_with(".json"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    wait_for(
        "node status to say the disk is full",
        Duration::from_secs(15),
        || trouble().is_some_and(|e| e.contains("No space left on device")),
    );
    untouched(&dir.0, &socket, since, "disk full");
    std::fs::remove_file(filler).expect("free the disk");
    wait_for("the trouble to clear", Duration::from_secs(15), || {
        trouble().is_none()
    });
    assert!(keepalive(10).status.success());
    replaced(1);

    // A crash mid-append left a torn journal line: the next write is not
    // glued onto it, and the daemon sees it.
    {
        use std::io::Write;
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .open(store.join("journal"))
            .expect("journal");
        journal.write_all(br#"{"revision": 9"#).expect("torn line");
    }
    assert!(keepalive(20).status.success());
    let since = replaced(2);

    // A write cut off part-way through its journal line (the process's
    // file size limit stands for a disk that fails mid-write): the
    // change is undone, the CLI says why, and the next write works.
    let journal_len = std::fs::metadata(store.join("journal"))
        .expect("journal")
        .len();
    let limit_kib = journal_len / 1024 + 1;
    {
        use std::io::Write;
        // Pad with a torn line to 10 bytes below the limit: the next
        // journal line cannot fit, the resource file (a few hundred
        // bytes) can.
        let pad = (limit_kib * 1024 - 10 - journal_len) as usize;
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .open(store.join("journal"))
            .expect("journal");
        journal.write_all(&vec![b'x'; pad]).expect("pad");
    }
    let before = journal(&store);
    let out = Command::new("bash")
        .args([
            "-c",
            r#"trap '' XFSZ; ulimit -f "$1"; shift; exec "$@""#,
            "limited",
            &limit_kib.to_string(),
            env!("CARGO_BIN_EXE_starling"),
            "patch",
            "bgppeer",
            "bird",
            "-p",
            r#"{"spec": {"keepaliveTime": "25s"}}"#,
        ])
        .env("STARLING_DATASTORE", &store)
        .output()
        .expect("bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a write past the limit succeeded");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert_eq!(journal(&store), before, "nothing journaled");
    let peer = starling_ok(&dir.0, &["get", "bgppeer", "bird", "-o", "json"], None).stdout;
    let peer: Value = serde_json::from_slice(&peer).expect("json");
    assert_eq!(peer["spec"]["keepaliveTime"], "20s", "the change undone");
    untouched(&dir.0, &socket, since, "a write cut off");
    assert_eq!(replacements(&dir.0), 2);

    // The journal's tail lost (a disk that dropped it, a restore from an
    // older copy): its revision goes back; the daemon re-reads
    // everything rather than wait for revisions it has seen, and the
    // next change reaches it.
    let resyncs = counter(metrics, "starling_datastore_resyncs_total");
    let text = std::fs::read_to_string(store.join("journal")).expect("journal");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(
        store.join("journal"),
        lines[..lines.len() - 3].join("\n") + "\n",
    )
    .expect("truncate");
    wait_for("a resync", Duration::from_secs(15), || {
        counter(metrics, "starling_datastore_resyncs_total") > resyncs
    });
    untouched(&dir.0, &socket, since, "journal truncated");
    assert!(keepalive(30).status.success());
    let peer = starling_ok(&dir.0, &["get", "bgppeer", "bird", "-o", "json"], None).stdout;
    let peer: Value = serde_json::from_slice(&peer).expect("json");
    assert_eq!(peer["spec"]["keepaliveTime"], "30s");
    let since = replaced(3);

    // Writers at once, with the daemon frozen meanwhile: every write
    // lands, each with its own revision, and the daemon's next plan has
    // them all.
    signal(&daemon.0.id().to_string(), "-STOP");
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let dir = dir.0.clone();
            std::thread::spawn(move || {
                let peer = format!(
                    "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: extra-{i}}}\n\
                     spec: {{node: n1, peerIP: 127.0.0.{}, asNumber: 65010}}\n",
                    180 + i
                );
                starling(&dir, &["apply", "-f", "-"], Some(&peer))
            })
        })
        .collect();
    for w in writers {
        let out = w.join().expect("writer");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    signal(&daemon.0.id().to_string(), "-CONT");
    let revisions: Vec<u64> = journal(&store).iter().map(|(r, _)| *r).collect();
    let last = revisions[revisions.len() - 8..].to_vec();
    assert!(
        last.windows(2).all(|w| w[1] == w[0] + 1),
        "one revision each: {last:?}"
    );
    wait_for("nine sessions", Duration::from_secs(15), || {
        node_status(&dir.0, &socket)["sessions"]
            .as_array()
            .is_some_and(|s| s.len() == 9)
    });
    untouched(&dir.0, &socket, since, "writers at once");
    assert_eq!(replacements(&dir.0), 3);
}
