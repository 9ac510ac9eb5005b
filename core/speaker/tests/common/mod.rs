//! Helpers for interop tests: real daemons on loopback, polled with
//! deadlines (never fixed sleeps), cleaned up on drop.

#![allow(dead_code, unreachable_pub)]

pub mod frr;
pub mod gobgp;
pub mod raw;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "starling-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
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

/// Fail with a pointer to the setup script if a daemon is missing, rather
/// than skipping silently.
pub fn require(binary: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{binary} is not installed: run scripts/setup (Debian packages bird2, gobgpd)"
    );
}

/// A BIRD 2 process with its own config and control socket.
pub struct Bird {
    child: Child,
    pub socket: PathBuf,
    _dir: Scratch,
}

impl Bird {
    pub fn start(config: &str) -> Self {
        require("bird");
        let dir = Scratch::new("bird");
        let conf = dir.0.join("bird.conf");
        let socket = dir.0.join("bird.ctl");
        std::fs::write(&conf, config).expect("write bird.conf");
        let check = Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("bird -p");
        assert!(
            check.status.success(),
            "bird.conf: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("bird")
            .arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bird");
        let bird = Self {
            child,
            socket,
            _dir: dir,
        };
        wait_for("BIRD control socket", Duration::from_secs(10), || {
            bird.socket.exists()
        });
        bird
    }

    /// Run a birdc command and return its output.
    pub fn cli(&self, command: &str) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(command.split_whitespace())
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `ready` until it holds or `limit` passes; panics naming `what`.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free TCP port on `ip` (bound and released; good enough on loopback).
pub fn free_port(ip: [u8; 4]) -> u16 {
    std::net::TcpListener::bind(std::net::SocketAddr::from((ip, 0)))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An instance listening on `ip`, at a port found free. Another socket
/// can take a port `free_port` found before the instance binds it (CI
/// saw it once: AddrInUse in interop_rr); a start that loses that race
/// takes another port, and no test depends on which.
pub async fn start_listening(
    ip: [u8; 4],
    rib: starling_speaker::rib::RibConfig,
) -> (
    starling_speaker::instance::Instance,
    starling_speaker::instance::BestPathStream,
    std::net::SocketAddr,
) {
    for _ in 0..20 {
        let listen = std::net::SocketAddr::from((ip, free_port(ip)));
        match starling_speaker::instance::Instance::start(rib.clone(), &[listen]).await {
            Ok((instance, best)) => return (instance, best, listen),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => panic!("instance on {listen}: {e}"),
        }
    }
    panic!("no port on {ip:?} stayed free long enough to listen on");
}

/// The prefixes in an instance's Loc-RIB, sorted.
pub async fn routes(instance: &starling_speaker::instance::Instance) -> Vec<starling_wire::Prefix> {
    let mut r: Vec<_> = instance
        .routes()
        .await
        .into_iter()
        .map(|(p, _, _)| p)
        .collect();
    r.sort();
    r
}

/// The Loc-RIB's best route for `prefix`.
pub async fn route(
    instance: &starling_speaker::instance::Instance,
    prefix: &str,
) -> Option<starling_speaker::rib::RouteAttrs> {
    let prefix: starling_wire::Prefix = prefix.parse().expect("prefix");
    instance
        .routes()
        .await
        .into_iter()
        .find(|(p, _, _)| *p == prefix)
        .map(|(_, r, _)| r)
}

/// Poll until the Loc-RIB holds exactly `want`.
pub async fn wait_routes(
    instance: &starling_speaker::instance::Instance,
    want: &[&str],
    within: Duration,
) {
    let mut want: Vec<starling_wire::Prefix> =
        want.iter().map(|s| s.parse().expect("prefix")).collect();
    want.sort();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let have = routes(instance).await;
        if have == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "routes {have:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A passive eBGP peer (AS 64512) at 127.0.0.`peer` of an instance in
/// AS 64513 at 127.0.0.`me`.
pub fn passive_peer(me: u8, peer: u8) -> starling_speaker::PeerConfig {
    let mut cfg = starling_speaker::PeerConfig::new(
        std::net::SocketAddr::from(([127, 0, 0, peer], 179)),
        64513,
        64512,
        std::net::Ipv4Addr::new(192, 0, 2, me),
    );
    cfg.passive = true;
    cfg.local_address = Some(std::net::IpAddr::from([127, 0, 0, me]));
    cfg
}

/// Wait until at least `count` peers are Active (registered and waiting
/// for their connection), so a test's connection is not refused.
pub async fn wait_active(instance: &starling_speaker::instance::Instance, count: usize) {
    wait_state(instance, starling_speaker::session::State::Active, count).await;
}

/// Wait until at least `count` peers are in `state`.
pub async fn wait_state(
    instance: &starling_speaker::instance::Instance,
    state: starling_speaker::session::State,
    count: usize,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let peers = instance.peers().await;
        if peers.iter().filter(|p| p.state == state).count() >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {count} peers {state:?}: {:?}",
            peers.iter().map(|p| p.state).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
