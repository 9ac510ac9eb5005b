//! The daemon under test: scratch directories, a BIRD peer, a
//! `starling.toml`, the running daemon, and what tests ask of it (node
//! status, a scrape). Shared by every test binary that runs `starling run`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("daemon-{name}"));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("scratch");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The failure may point at a log in here: keep it.
            eprintln!("kept {} (the test failed)", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub(crate) struct Reaped(pub(crate) Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port(ip: [u8; 4]) -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::from(ip), 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub(crate) fn starling(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    super::starling(&dir.join("store"), args, stdin)
}

/// `starling` against the etcd at `endpoint`, as `DATASTORE_TYPE` and
/// `ETCD_ENDPOINTS` say.
pub(crate) fn starling_on_etcd(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let env: [(&str, &std::ffi::OsStr); 2] = [
        ("DATASTORE_TYPE", "etcdv3".as_ref()),
        ("ETCD_ENDPOINTS", endpoint.as_ref()),
    ];
    super::starling_with(&env, args, stdin)
}

/// [`starling_on_etcd`] that must succeed.
pub(crate) fn starling_on_etcd_ok(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let out = starling_on_etcd(endpoint, args, stdin);
    assert!(
        out.status.success(),
        "starling {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `starling` that must succeed.
pub(crate) fn starling_ok(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let out = starling(dir, args, stdin);
    assert!(
        out.status.success(),
        "starling {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Send a signal (`-HUP`, `-TERM`) to the daemon.
pub(crate) fn signal(pid: &str, which: &str) {
    let sent = Command::new("kill").args([which, pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill {which} {pid}");
}

/// Every metric the Grafana dashboard queries is one the daemon exports
/// and docs/metrics.md documents.
pub(crate) fn dashboard_and_docs_match(metrics: &str) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs");
    let dashboard = std::fs::read_to_string(format!("{root}/grafana/starling-dashboard.json"))
        .expect("dashboard");
    serde_json::from_str::<Value>(&dashboard).expect("the dashboard is JSON");
    let docs = std::fs::read_to_string(format!("{root}/metrics.md")).expect("metrics.md");
    let mut names: Vec<&str> = dashboard
        .match_indices("starling_")
        .map(|(i, _)| {
            let rest = &dashboard[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|n| *n != "starling_")
        .map(|n| n.trim_end_matches("_bucket"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() > 10, "{names:?}");
    for name in names {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "the dashboard queries {name}, which the daemon does not export"
        );
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} is not documented in docs/metrics.md"
        );
    }
}

/// Where a test's daemon serves metrics: its own loopback address, which
/// no other test binds, at the usual port (a port found "free" on a
/// shared address can be taken again before the daemon binds it).
pub(crate) fn metrics_at(ip: [u8; 4]) -> std::net::SocketAddr {
    std::net::SocketAddr::from((ip, 9179))
}

/// GET /metrics.
pub(crate) fn scrape(at: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(at) else {
        return String::new();
    };
    let _ =
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

/// `starling routes`: the daemon's Loc-RIB as the table it prints.
pub(crate) fn loc_rib(dir: &Path, socket: &Path) -> String {
    let socket = socket.to_str().expect("utf8");
    let out = starling(dir, &["routes", "--socket", socket], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The daemon's status answer (`starling node status -o json`); null
/// when there is none.
pub(crate) fn node_status(dir: &Path, socket: &Path) -> Value {
    let Some(socket) = socket.to_str() else {
        return Value::Null;
    };
    let out = starling(
        dir,
        &["node", "status", "-o", "json", "--socket", socket],
        None,
    );
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

pub(crate) fn session_state(dir: &Path, socket: &Path) -> Option<String> {
    let v = node_status(dir, socket);
    Some(v["sessions"][0]["state"].as_str()?.to_owned())
}

/// BIRD at `me` in AS 65001, originating 203.0.113.0/24, expecting
/// Starling (AS 64512) at `starling`.
pub(crate) fn bird(dir: &Path, me: ([u8; 4], u16), starling: ([u8; 4], u16)) -> Reaped {
    bird_with(dir, me, starling, "")
}

/// [`bird`] with more lines in its BGP protocol (`hold time 3;`).
pub(crate) fn bird_with(
    dir: &Path,
    me: ([u8; 4], u16),
    starling: ([u8; 4], u16),
    protocol: &str,
) -> Reaped {
    let (ip, port) = (std::net::Ipv4Addr::from(me.0), me.1);
    let (peer, peer_port) = (std::net::Ipv4Addr::from(starling.0), starling.1);
    let bird_conf = dir.join("bird.conf");
    std::fs::write(
        &bird_conf,
        format!(
            "router id 192.0.2.{};\nprotocol device {{}}\n\
             protocol static {{ ipv4; route 203.0.113.0/24 blackhole; }}\n\
             protocol bgp starling {{\n  local {ip} port {port} as 65001;\n\
               neighbor {peer} port {peer_port} as 64512;\n  multihop;\n  strict bind;\n\
               connect retry time 1;\n  error wait time 1, 2;\n  {protocol}\n  ipv4 {{ import all; export all; }};\n}}\n",
            me.0[3]
        ),
    )
    .expect("bird.conf");
    Reaped(
        Command::new("bird")
            .args(["-f", "-c"])
            .arg(&bird_conf)
            .arg("-s")
            .arg(dir.join("bird.ctl"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bird (scripts/setup installs bird2)"),
    )
}

/// The resources for node n1 at `ip:port` peering with BIRD, as an
/// operator would apply them.
pub(crate) fn resources(ip: &str, port: u16, bird_ip: &str, bird_port: u16) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
         spec: {{nodeToNodeMeshEnabled: false, asNumber: 64512}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: node.n1}}\n\
         spec: {{listenPort: {port}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: n1}}\n\
         spec: {{bgp: {{ipv4Address: {ip}/32}}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: bird}}\n\
         spec: {{peerIP: '{bird_ip}:{bird_port}', asNumber: 65001}}\n"
    )
}

/// A `starling.toml` for node n1 listening on `ip`, admin socket
/// `dir/admin.sock`, kernel left alone. `datastore` is the TOML value
/// (default: the embedded store under `dir`); `extra` is appended (more
/// `[bgp]` keys, `[metrics]`).
pub(crate) fn daemon_config(dir: &Path, ip: &str, datastore: Option<&str>, extra: &str) -> PathBuf {
    let config = dir.join("starling.toml");
    let datastore = datastore.map_or_else(
        || format!("\"{}\"", dir.join("store").display()),
        str::to_owned,
    );
    std::fs::write(
        &config,
        format!(
            "node_name = \"n1\"\ndatastore = {datastore}\n[fib]\nmode = \"off\"\n\
             [admin]\nsocket = \"{}\"\n[bgp]\nlisten = [\"{ip}\"]\n{extra}",
            dir.join("admin.sock").display()
        ),
    )
    .expect("config");
    config
}

pub(crate) fn run_daemon(dir: &Path, config: &Path) -> Reaped {
    Reaped(
        Command::new(env!("CARGO_BIN_EXE_starling"))
            .args(["run", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log"))
            .spawn()
            .expect("starling run"),
    )
}
