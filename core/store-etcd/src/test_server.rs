//! A real etcd server for tests: the Debian `etcd-server` package's
//! binary on a loopback address of its own, its own data directory,
//! killed on drop.
//!
//! Why an address of its own: finding "free" ports by binding port 0 and
//! releasing them races with every other test doing the same (two servers
//! were once handed one port, and etcd exited at start). 127.0.0.0/8 is
//! all loopback on Linux, so each server takes the next unused address
//! in a range keyed by the process id and listens on etcd's well-known
//! ports there, which nothing else in the test process binds. Should a
//! start still lose a bind (another process on the same address), it
//! moves to the next address and tries again.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;
/// Starts that lose a bind before the test gives up.
const BIND_ATTEMPTS: u32 = 8;

/// One etcd member on a loopback address of its own.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    dir: PathBuf,
    address: Ipv4Addr,
    /// A second client address ([`EtcdServer::start_twice_reachable`]).
    second: Option<Ipv4Addr>,
}

/// The next loopback address for a test server in this process:
/// 127.A.B.C with A.B from the process id and C counting up (B moves on
/// when C runs out), never 127.0.0.x, which fixed-address tests use.
pub fn own_loopback() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let a = 100 + (pid % 150) as u8;
    let b = ((pid / 150) as u8).wrapping_add((n / 250) as u8);
    let c = 2 + (n % 250) as u8;
    Ipv4Addr::new(127, a, b, c)
}

/// Why a start failed.
enum StartError {
    /// The server could not bind its address: try another.
    AddressInUse,
    Failed(String),
}

impl EtcdServer {
    /// Start etcd with its data under `dir` (emptied first) and wait until
    /// it serves.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, false)
    }

    /// [`EtcdServer::start`], serving clients on a second address too: a
    /// test can cut one client off (a firewall rule on the first
    /// address) while others still reach the cluster.
    pub fn start_twice_reachable(dir: &Path) -> Self {
        Self::start_with(dir, true)
    }

    fn start_with(dir: &Path, twice: bool) -> Self {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("etcd test dir");
        let mut server = EtcdServer {
            child: None,
            dir: dir.to_owned(),
            address: own_loopback(),
            second: twice.then(own_loopback),
        };
        for _ in 0..BIND_ATTEMPTS {
            match server.spawn() {
                Ok(()) => return server,
                Err(StartError::AddressInUse) => {
                    server.address = own_loopback();
                    server.second = twice.then(own_loopback);
                }
                Err(StartError::Failed(why)) => panic!("{why}"),
            }
        }
        panic!(
            "etcd found no free loopback address in {BIND_ATTEMPTS} tries; log: {}",
            server.log_path().display()
        );
    }

    /// `http://ADDRESS:2379`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{CLIENT_PORT}", self.address)
    }

    /// `http://SECOND_ADDRESS:2379`, for a server started
    /// [`EtcdServer::start_twice_reachable`].
    pub fn second_endpoint(&self) -> Option<String> {
        self.second.map(|a| format!("http://{a}:{CLIENT_PORT}"))
    }

    /// The address clients reach it on first.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// Freeze the server (SIGSTOP): connections stay open and nothing
    /// answers, as with a hung host.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Let a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("a running etcd").id();
        let status = Command::new("kill")
            .args([which, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {which} {pid}");
    }

    /// Kill the server (SIGKILL, as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same address and data.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(StartError::AddressInUse | StartError::Failed(_)) = self.spawn() {
            panic!("etcd did not restart; log: {}", self.log_path().display());
        }
    }

    /// Where the server logs; kept when a test fails (see `Drop`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        let peer = format!("http://{}:{PEER_PORT}", self.address);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("etcd log file");
        let child = Command::new("etcd")
            .arg("--name=test")
            .arg(format!("--data-dir={}", self.dir.join("data").display()))
            .arg(format!(
                "--listen-client-urls={}",
                [Some(self.endpoint()), self.second_endpoint()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(",")
            ))
            .arg(format!("--advertise-client-urls={}", self.endpoint()))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd (Debian package etcd-server; scripts/setup installs it)");
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = (self.address, CLIENT_PORT);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                if log.contains("address already in use") {
                    return Err(StartError::AddressInUse);
                }
                return Err(StartError::Failed(format!(
                    "etcd on {} exited ({status}); log: {}\n{}",
                    self.address,
                    self.log_path().display(),
                    tail(&log, 20)
                )));
            }
            if health_ok(health) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "etcd not serving on {}:{CLIENT_PORT} within 20 s; log: {}",
                    self.address,
                    self.log_path().display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// etcd's `/health` says `"health":"true"` once it has a leader.
fn health_ok(addr: (Ipv4Addr, u16)) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            // The failure message points at the log: keep it.
            eprintln!("etcd test server: kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
