//! `starling lab` from tests: a lab that is torn down however the test
//! ends (and keeps its nodes' logs when the test failed), with the views of
//! a node that tests assert on.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A lab that is torn down however the test ends.
pub(crate) struct Lab {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) nodes: usize,
}

impl Lab {
    pub(crate) fn up(name: &str, nodes: usize, extra: &[&str]) -> Self {
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

    pub(crate) fn starling_lab(&self, args: &[&str]) -> Output {
        let (verb, rest) = args.split_first().expect("a verb");
        Command::new(env!("CARGO_BIN_EXE_starling"))
            .args(["lab", verb, "--name", &self.name, "--dir"])
            .arg(&self.dir)
            .args(rest)
            .output()
            .expect("starling lab")
    }

    /// `starling lab exec NODE -- ARGS`, which must succeed.
    pub(crate) fn exec(&self, node: &str, args: &[&str]) -> String {
        let out = self.exec_raw(node, args);
        assert!(
            out.status.success(),
            "{node}: {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn exec_raw(&self, node: &str, args: &[&str]) -> Output {
        let mut full = vec!["exec", node, "--"];
        full.extend_from_slice(args);
        self.starling_lab(&full)
    }

    pub(crate) fn nodes(&self) -> Vec<String> {
        (1..=self.nodes).map(|i| format!("node-{i}")).collect()
    }

    /// `starling node status -o json` of a node: (peer type, state) per
    /// session, as Calico's table names them.
    pub(crate) fn sessions(&self, node: &str) -> Vec<(String, String)> {
        let out = self.exec_raw(node, &["starling", "node", "status", "-o", "json"]);
        super::session_states(&serde_json::from_slice(&out.stdout).unwrap_or_default())
    }

    /// The node's kernel routes from Starling: destination → "via X" or
    /// "blackhole".
    pub(crate) fn fib(&self, node: &str) -> Vec<String> {
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

    /// The node's Prometheus metrics (its daemon listens on 127.0.0.1:9179
    /// inside the node; empty while the daemon is down).
    pub(crate) fn scrape(&self, node: &str) -> String {
        let out = self.exec_raw(
            node,
            &[
                "python3",
                "-c",
                "import urllib.request,sys\n\
                 try: sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9179/metrics', timeout=2).read().decode())\n\
                 except Exception: pass",
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Ping from node `from`'s workload to node `to`'s.
    pub(crate) fn ping(&self, from: usize, to: usize) -> bool {
        self.ping_in(from, to, false)
    }

    /// Ping from node `from`'s workload to node `to`'s, over IPv6 if `v6`
    /// (a dual-stack lab's workloads are at 2001:db8:244:N::10).
    pub(crate) fn ping_in(&self, from: usize, to: usize, v6: bool) -> bool {
        let (family, source, target) = if v6 {
            (
                "-6",
                format!("2001:db8:244:{from}::10"),
                format!("2001:db8:244:{to}::10"),
            )
        } else {
            ("-4", format!("10.244.{from}.10"), format!("10.244.{to}.10"))
        };
        self.exec_raw(
            &format!("node-{from}"),
            &[
                "ping", family, "-c", "2", "-i", "0.2", "-W", "1", "-I", &source, &target,
            ],
        )
        .status
        .success()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep what the nodes said: the lab directory goes with `down`.
            let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("lab-failed-{}", self.name));
            let _ = Command::new("cp")
                .arg("-r")
                .arg(&self.dir)
                .arg(&keep)
                .status();
            // (Nothing here may panic: a panic while panicking aborts.)
            for node in self.nodes() {
                let out = self.exec_raw(&node, &["ip", "route"]);
                eprintln!("{node} routes:\n{}", String::from_utf8_lossy(&out.stdout));
            }
            eprintln!("logs kept in {}", keep.display());
        }
        let out = self.starling_lab(&["down"]);
        if !out.status.success() {
            eprintln!("lab down: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The peer rows of `starling node status`: address, type, state.
pub(crate) fn rows(table: &str) -> Vec<Vec<String>> {
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

pub(crate) fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Convergence times, for whoever reads the test log.
    eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
}

/// The sum of every series of `name` (all label sets).
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
