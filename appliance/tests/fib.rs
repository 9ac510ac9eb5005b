//! The daemon programming a real kernel table: Starling in one network
//! namespace, BIRD in another, joined by a veth pair (192.0.2.0/24). The
//! namespaces are the test's own and are removed afterwards; nothing
//! touches the host's tables.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Lab {
    dir: PathBuf,
    a: String,
    b: String,
    children: Vec<Child>,
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

impl Lab {
    fn new() -> Self {
        // Tests run in parallel in one process: the pid alone is not
        // enough.
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fib-lab-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch");
        let lab = Lab {
            dir,
            a: format!("starling-da-{id}"),
            b: format!("starling-db-{id}"),
            children: Vec::new(),
        };
        ip(&["netns", "add", &lab.a]);
        ip(&["netns", "add", &lab.b]);
        ip(&["-n", &lab.a, "link", "set", "lo", "up"]);
        ip(&["-n", &lab.b, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &lab.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
            &lab.b,
        ]);
        ip(&["-n", &lab.a, "addr", "add", "192.0.2.1/24", "dev", "va"]);
        ip(&["-n", &lab.b, "addr", "add", "192.0.2.2/24", "dev", "vb"]);
        ip(&["-n", &lab.a, "link", "set", "va", "up"]);
        ip(&["-n", &lab.b, "link", "set", "vb", "up"]);
        lab
    }

    /// Start `program args` inside namespace `ns`, logging to `log`.
    fn spawn(&mut self, ns: &str, program: &str, args: &[&str], log: &str) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(self.dir.join(format!("{log}.out"))).expect("log"))
            .stderr(std::fs::File::create(self.dir.join(log)).expect("log"))
            .spawn()
            .expect("spawn in netns");
        self.children.push(child);
        self.children.len() - 1
    }

    /// BIRD in namespace B on `config`; its control socket.
    fn start_bird(&mut self, config: &str) -> PathBuf {
        let conf = self.dir.join("bird.conf");
        std::fs::write(&conf, config).expect("bird.conf");
        let ctl = self.dir.join("bird.ctl");
        let b = self.b.clone();
        self.spawn(
            &b,
            "bird",
            &[
                "-f",
                "-c",
                conf.to_str().expect("utf8"),
                "-s",
                ctl.to_str().expect("utf8"),
            ],
            "bird.log",
        );
        ctl
    }

    /// Write node n1's `starling.toml` (listening on 192.0.2.1, the lab's
    /// store and admin socket) with `extra` appended.
    fn configure_daemon(&self, extra: &str) {
        std::fs::write(
            self.dir.join("starling.toml"),
            format!(
                "node_name = \"n1\"\ndatastore = \"{}\"\n[bgp]\nlisten = [\"192.0.2.1\"]\n\
                 [admin]\nsocket = \"{}\"\n{extra}",
                self.dir.join("store").display(),
                self.dir.join("admin.sock").display()
            ),
        )
        .expect("config");
    }

    /// Run the daemon in namespace A on that configuration, logging to
    /// `log`; its index among the children.
    fn start_daemon(&mut self, log: &str) -> usize {
        let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache");
        let config = self.dir.join("starling.toml");
        let a = self.a.clone();
        self.spawn(
            &a,
            "env",
            &[
                &format!("STARLING_CACHE_DIR={cache}"),
                env!("CARGO_BIN_EXE_starling"),
                "run",
                "-c",
                config.to_str().expect("utf8"),
            ],
            log,
        )
    }

    /// Starling's routes in namespace A's main table: destination → JSON.
    fn kernel_routes(&self) -> Vec<Value> {
        let text = ip(&[
            "-n", &self.a, "-j", "route", "show", "table", "main", "proto", "199",
        ]);
        serde_json::from_str(&text).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn starling(dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    common::starling(&dir.join("store"), args, stdin)
}

/// GET /metrics from inside the namespace.
fn scrape(ns: &str, port: u16) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c"])
        .arg(format!(
            "import urllib.request,sys\n\
             try: sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=2).read().decode())\n\
             except Exception: pass"
        ))
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn kernel_summary(routes: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = routes
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["dst"].as_str().unwrap_or_default(),
                r["gateway"]
                    .as_str()
                    .or(r["type"].as_str())
                    .unwrap_or("unicast")
            )
        })
        .collect();
    out.sort();
    out
}

/// Node n1 at 192.0.2.1 (AS 64512, no mesh) and BIRD, AS 65001, as its
/// BGPPeer.
const NODE_AND_TOR: &str = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n\
     spec: {nodeToNodeMeshEnabled: false, asNumber: 64512}\n---\n\
     apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\n\
     spec: {bgp: {ipv4Address: 192.0.2.1/24}}\n---\n\
     apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\n\
     spec: {peerIP: 192.0.2.2, asNumber: 65001}\n";

#[test]
fn the_daemon_installs_best_paths_and_its_blocks_and_adopts_them_on_restart() {
    if !Path::new("/run/netns").exists() && std::fs::create_dir_all("/run/netns").is_err() {
        panic!("network namespaces need root (CI runs as root)");
    }
    let mut lab = Lab::new();
    let dir = lab.dir.clone();
    let a = lab.a.clone();

    let bird_ctl = lab.start_bird(
        "router id 192.0.2.2;\nprotocol device {}\n\
         protocol static { ipv4; route 203.0.113.0/24 blackhole; }\n\
         protocol bgp starling {\n  local 192.0.2.2 as 65001;\n  neighbor 192.0.2.1 as 64512;\n\
           connect retry time 1;\n  error wait time 1, 2;\n  ipv4 { import all; export all; };\n}\n",
    );

    let resources = format!(
        "{NODE_AND_TOR}---\n\
         apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: pods}}\n\
         spec: {{cidr: 10.244.0.0/16}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {{name: n1-10-244-3-0-26}}\n\
         spec: {{node: n1, cidr: 10.244.3.0/26, state: confirmed}}\n"
    );
    let out = starling(&dir, &["apply", "-f", "-"], Some(&resources));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics_port = 9179;
    lab.configure_daemon(&format!(
        "[fib]\ntable = 254\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    ));
    let daemon = lab.start_daemon("daemon.log");

    let want = ["10.244.3.0/26 blackhole", "203.0.113.0/24 192.0.2.2"];
    let mut kernel = Vec::new();
    wait_for("the kernel routes", Duration::from_secs(30), || {
        kernel = kernel_summary(&lab.kernel_routes());
        kernel == want
    });
    // The block reached BIRD too, through Calico's export policy.
    let bird = Command::new("birdc")
        .arg("-s")
        .arg(&bird_ctl)
        .args(["show", "route", "10.244.3.0/26"])
        .output()
        .expect("birdc");
    assert!(String::from_utf8_lossy(&bird.stdout).contains("10.244.3.0/26"));

    // SIGTERM keeps the routes (forwarding survives a restart)...
    let pid = lab.children[daemon].id().to_string();
    // `ip netns exec` replaces itself with `env`, which replaces itself
    // with starling: the child's pid is the daemon's.
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = lab.children[daemon].wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(kernel_summary(&lab.kernel_routes()), want);

    // A route of ours that no peer will announce again: the next run must
    // keep it until its sessions have synced, then sweep it.
    ip(&[
        "-n",
        &a,
        "route",
        "add",
        "198.51.100.128/25",
        "via",
        "192.0.2.2",
        "proto",
        "199",
    ]);

    // ... and the next run adopts them: no route is added, replaced or
    // deleted, by the daemon's count and by the kernel's own notifications,
    // but the stale one.
    // Line-buffered: `ip monitor` into a file would otherwise hold its
    // lines back.
    let _monitor = lab.spawn(
        &a,
        "stdbuf",
        &["-oL", "ip", "-o", "monitor", "route"],
        "monitor.log",
    );
    // The monitor is listening once it reports a marker route of ours.
    let monitor_log = dir.join("monitor.log.out");
    wait_for("the route monitor", Duration::from_secs(10), || {
        // Added and removed each try: an unchanged route is not news.
        for verb in ["add", "del"] {
            let _ = Command::new("ip")
                .args(["-n", &a, "route", verb, "blackhole", "198.51.100.0/24"])
                .status();
        }
        std::fs::read_to_string(&monitor_log).is_ok_and(|l| l.contains("198.51.100.0/24"))
    });
    lab.start_daemon("daemon2.log");
    let mut scraped = String::new();
    wait_for(
        "the restarted daemon to learn BIRD's route again and write the FIB",
        Duration::from_secs(30),
        || {
            scraped = scrape(&a, metrics_port);
            metric(&scraped, "starling_bgp_loc_rib_prefixes") == Some(2.0)
                && metric(&scraped, "starling_fib_writes_total").is_some_and(|w| w >= 1.0)
        },
    );
    wait_for(
        "the stale route to be swept",
        Duration::from_secs(30),
        || {
            scraped = scrape(&a, metrics_port);
            metric(&scraped, "starling_fib_operations_total{op=\"delete\"}") == Some(1.0)
        },
    );
    for op in ["add", "replace"] {
        assert_eq!(
            metric(
                &scraped,
                &format!("starling_fib_operations_total{{op=\"{op}\"}}")
            ),
            Some(0.0),
            "{op}\n{scraped}"
        );
    }
    assert_eq!(metric(&scraped, "starling_fib_routes"), Some(2.0));
    // Where the bytes are: every part that holds these routes says so.
    for part in ["rib_index", "rib_table", "rib_attributes", "fib_installed"] {
        assert!(
            metric(
                &scraped,
                &format!("starling_memory_bytes{{part=\"{part}\"}}")
            )
            .is_some_and(|b| b > 0.0),
            "{part}\n{scraped}"
        );
    }
    assert!(
        metric(&scraped, "starling_fib_write_duration_seconds_count").is_some_and(|n| n >= 1.0),
        "{scraped}"
    );

    let seen = std::fs::read_to_string(&monitor_log).unwrap_or_default();
    let churn: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains("10.244.3.0/26") || l.contains("203.0.113.0/24"))
        .collect();
    assert!(
        churn.is_empty(),
        "kernel route changes on restart: {churn:?}"
    );

    // Someone deletes BIRD's route from the kernel: the route monitor
    // notices and the daemon puts it back at once (the periodic check is
    // minutes away).
    ip(&["-n", &a, "route", "del", "203.0.113.0/24", "proto", "199"]);
    wait_for(
        "the deleted route to be repaired",
        Duration::from_secs(5),
        || kernel_summary(&lab.kernel_routes()) == want,
    );
    wait_for("the repair to be counted", Duration::from_secs(5), || {
        metric(&scrape(&a, metrics_port), "starling_fib_repairs_total") == Some(1.0)
    });
    assert_eq!(kernel_summary(&lab.kernel_routes()), want);
}

/// A write of many routes (a full table arriving) pauses the daemon's
/// route monitor, whose echoes would cost the kernel a copy each: the
/// monitor is back afterwards, and a route deleted behind the daemon's
/// back is repaired, as after a small write.
#[test]
fn after_a_large_write_the_monitor_still_repairs() {
    const ROUTES: usize = 30_000;
    let mut lab = Lab::new();
    let dir = lab.dir.clone();
    let a = lab.a.clone();
    let statics: String = (0..ROUTES)
        .map(|i| format!("route 10.{}.{}.0/24 blackhole;\n", 100 + i / 256, i % 256))
        .collect();
    lab.start_bird(&format!(
        "router id 192.0.2.2;\nprotocol device {{}}\nprotocol static {{ ipv4; {statics} }}\n\
         protocol bgp starling {{\n  local 192.0.2.2 as 65001;\n  neighbor 192.0.2.1 as 64512;\n\
           connect retry time 1;\n  ipv4 {{ import none; export all; }};\n}}\n"
    ));
    let resources = NODE_AND_TOR;
    let out = starling(&dir, &["apply", "-f", "-"], Some(resources));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics_port = 9179;
    lab.configure_daemon(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    ));
    lab.start_daemon("daemon.log");
    wait_for("every route in the kernel", Duration::from_secs(60), || {
        lab.kernel_routes().len() == ROUTES
    });

    // The table is in. Someone deletes a route of ours: it comes back.
    ip(&["-n", &a, "route", "del", "10.100.7.0/24", "proto", "199"]);
    wait_for(
        "the deleted route to be repaired",
        Duration::from_secs(10),
        || {
            lab.kernel_routes()
                .iter()
                .any(|r| r["dst"].as_str() == Some("10.100.7.0/24"))
        },
    );
    wait_for("the repair to be counted", Duration::from_secs(5), || {
        metric(&scrape(&a, metrics_port), "starling_fib_repairs_total").is_some_and(|n| n >= 1.0)
    });
    assert_eq!(lab.kernel_routes().len(), ROUTES);
}

/// Calico's `reachableBy`: a peer on an address the node has no route to
/// (BIRD's loopback, 198.51.100.7) is reached through a host route via the
/// gateway the BGPPeer names. The session comes up only because of that
/// route; the route goes to the kernel and to no peer; and it goes away
/// with the BGPPeer.
#[test]
fn a_peer_reachable_by_a_gateway_gets_its_host_route() {
    let mut lab = Lab::new();
    let dir = lab.dir.clone();
    ip(&["-n", &lab.b, "addr", "add", "198.51.100.7/32", "dev", "lo"]);
    let bird_ctl = lab.start_bird(
        "router id 198.51.100.7;\nprotocol device {}\n\
         protocol static { ipv4; route 203.0.113.0/24 blackhole; }\n\
         protocol bgp starling {\n  local 198.51.100.7 as 65001;\n  neighbor 192.0.2.1 as 64512;\n\
           multihop;\n  connect retry time 1;\n  error wait time 1, 2;\n\
           ipv4 { import all; export all; };\n}\n",
    );
    let resources = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n\
         spec: {nodeToNodeMeshEnabled: false, asNumber: 64512}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\n\
         spec: {bgp: {ipv4Address: 192.0.2.1/24}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\n\
         spec: {peerIP: 198.51.100.7, asNumber: 65001, reachableBy: 192.0.2.2}\n";
    let out = starling(&dir, &["apply", "-f", "-"], Some(resources));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.configure_daemon("[metrics]\nenabled = false\n");
    lab.start_daemon("daemon.log");
    // The host route first, then the session it carries, then BIRD's
    // route: its next hop, BIRD's loopback, is on no link, so the kernel
    // gets the host route's gateway instead (BIRD's `gateway recursive`).
    let want = ["198.51.100.7 192.0.2.2", "203.0.113.0/24 192.0.2.2"];
    let mut kernel = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while kernel != want {
        assert!(
            Instant::now() < deadline,
            "kernel: {kernel:?}\ndaemon log:\n{}",
            std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
        kernel = kernel_summary(&lab.kernel_routes());
    }
    let birdc = |args: &[&str]| {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&bird_ctl)
            .args(args)
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sent = birdc(&["show", "route", "protocol", "starling"]);
    assert!(
        !sent.contains("198.51.100.7"),
        "the host route was advertised:\n{sent}"
    );

    // Without the BGPPeer, the route goes too.
    let out = starling(&dir, &["delete", "bgppeer", "tor"], None);
    assert!(out.status.success());
    wait_for("the kernel routes to go", Duration::from_secs(30), || {
        lab.kernel_routes().is_empty()
    });
}
