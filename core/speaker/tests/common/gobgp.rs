//! A real GoBGP daemon for interop tests (Debian `gobgpd`), killed on
//! drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Scratch, require, wait_for};

/// A GoBGP daemon with its own config and API address.
pub struct GoBgp {
    child: Child,
    api: String,
    _dir: Scratch,
}

impl GoBgp {
    pub fn start(config: &str, api: &str) -> Self {
        require("gobgpd");
        let dir = Scratch::new("gobgp");
        let conf = dir.0.join("gobgp.toml");
        std::fs::write(&conf, config).expect("write gobgp.toml");
        let child = Command::new("gobgpd")
            .arg("-f")
            .arg(&conf)
            .args(["--api-hosts", api, "--pprof-disable", "-l", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gobgpd");
        let g = Self {
            child,
            api: api.to_owned(),
            _dir: dir,
        };
        wait_for("GoBGP API", Duration::from_secs(10), || {
            g.cli(&["global"]).0
        });
        g
    }

    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let (host, port) = self.api.split_once(':').expect("host:port");
        let out = Command::new("gobgp")
            .args(["-u", host, "-p", port])
            .args(args)
            .output()
            .expect("gobgp");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for GoBgp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
