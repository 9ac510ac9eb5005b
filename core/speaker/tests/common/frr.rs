//! A real FRR bgpd for interop tests (Debian `frr`, run standalone with
//! `-Z`: no zebra), killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Scratch, require, wait_for};

const BGPD: &str = "/usr/lib/frr/bgpd";

/// A standalone FRR bgpd (no zebra) with its own config and vty socket.
pub struct Frr {
    child: Child,
    dir: Scratch,
}

impl Frr {
    pub fn start(config: &str) -> Self {
        require(BGPD);
        require("vtysh");
        let dir = Scratch::new("frr");
        let conf = dir.0.join("bgpd.conf");
        std::fs::write(&conf, config).expect("write bgpd.conf");
        let child = Command::new(BGPD)
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.0.join("bgpd.pid"))
            .arg("--vty_socket")
            .arg(&dir.0)
            .args([
                "-S", "-Z", "-n", "-p", "0", "-P", "0", "-u", "root", "-g", "root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bgpd");
        let frr = Self { child, dir };
        wait_for("FRR's vty socket", Duration::from_secs(10), || {
            frr.dir.0.join("bgpd.vty").exists()
        });
        frr
    }

    pub fn vtysh(&self, command: &str) -> String {
        let out = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(&self.dir.0)
            .args(["-d", "bgpd", "-c", command])
            .output()
            .expect("vtysh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
