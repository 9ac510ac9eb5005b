//! How `starling run` starts: a bad configuration is refused with the key
//! named and nothing started; the log is text for people or JSON lines,
//! and never coloured into a pipe; it listens where the plan says.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::daemon::*;
use serde_json::Value;

#[test]
fn a_bad_configuration_names_the_key_and_starts_nothing() {
    let dir = Scratch::new("badconfig");
    let config = dir.0.join("starling.toml");
    std::fs::write(&config, "node_name = \"n1\"\n[fib]\ntable = 255\n").expect("config");
    let out = starling(&dir.0, &["run", "-c", config.to_str().expect("utf8")], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fib.table: 255 is reserved"), "{stderr}");
    std::fs::write(&config, "node_name = \"n1\"\nlisten_port = 179\n").expect("config");
    let out = starling(&dir.0, &["run", "-c", config.to_str().expect("utf8")], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field `listen_port`"), "{stderr}");
}

/// The daemon's first log lines, from `starling run` with `args`, read
/// until "starling running" appears (or 20 s pass).
fn first_log_lines(dir: &Path, config: &Path, args: &[&str]) -> Vec<String> {
    use std::io::BufRead;
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_starling"))
            .args(["run", "-c"])
            .arg(config)
            .args(args)
            .env("STARLING_CACHE_DIR", dir.join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starling run"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        let done = line.contains("starling running");
        lines.push(line);
        if done {
            break;
        }
    }
    assert!(
        lines.iter().any(|l| l.contains("starling running")),
        "no start line: {lines:?}"
    );
    lines
}

#[test]
fn the_log_is_json_lines_when_asked_and_never_coloured_into_a_pipe() {
    let dir = Scratch::new("log-format");
    let config = daemon_config(&dir.0, "127.0.0.139", None, "[metrics]\nenabled = false\n");
    let json = first_log_lines(&dir.0, &config, &["--log-format", "json"]);
    for line in &json {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    let running: Value = serde_json::from_str(json.last().expect("a line")).expect("json");
    assert_eq!(running["level"], "INFO");
    assert_eq!(running["fields"]["node"], "n1");

    // The same from the configuration file.
    let from_file = daemon_config(
        &dir.0,
        "127.0.0.139",
        None,
        "[metrics]\nenabled = false\n[log]\nformat = \"json\"\n",
    );
    let lines = first_log_lines(&dir.0, &from_file, &[]);
    assert!(lines.iter().all(|l| l.starts_with('{')), "{lines:?}");

    // Text into a pipe: no colour codes.
    let plain = daemon_config(&dir.0, "127.0.0.139", None, "[metrics]\nenabled = false\n");
    let text = first_log_lines(&dir.0, &plain, &[]);
    assert!(text.iter().all(|l| !l.contains('\u{1b}')), "{text:?}");
    assert!(!text[0].starts_with('{'));
}

/// Calico's `bindMode: NodeIP` (contract 0.3's listen addresses): the
/// daemon accepts BGP connections on the node's address only, from the
/// start and across changes of the mode, without a restart.
#[test]
fn bind_mode_node_ip_listens_on_the_node_address_only() {
    let dir = Scratch::new("bind-mode");
    let node = [127, 0, 0, 160];
    let other = [127, 0, 0, 161];
    let port = free_port(node);
    let resources = format!(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: n1}}\n\
         spec: {{bgp: {{ipv4Address: 127.0.0.160/8}}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
         spec: {{asNumber: 64512, listenPort: {port}, bindMode: NodeIP}}\n"
    );
    starling_ok(&dir.0, &["apply", "-f", "-"], Some(&resources));
    // No `bgp.listen`: where to listen is the plan's to say.
    let config = dir.0.join("starling.toml");
    std::fs::write(
        &config,
        format!(
            "node_name = \"n1\"\ndatastore = \"{}\"\n[fib]\nmode = \"off\"\n\
             [metrics]\nenabled = false\n[admin]\nsocket = \"{}\"\n",
            dir.0.join("store").display(),
            dir.0.join("admin.sock").display()
        ),
    )
    .expect("config");
    let _daemon = run_daemon(&dir.0, &config);
    let accepts = |ip: [u8; 4]| {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from((ip, port)),
            Duration::from_secs(1),
        )
        .is_ok()
    };
    wait_for(
        "a listener on the node's address",
        Duration::from_secs(30),
        || accepts(node),
    );
    assert!(!accepts(other), "bound to more than the node's address");

    let mode = |mode: &str| {
        starling_ok(
            &dir.0,
            &[
                "patch",
                "bgpconfiguration",
                "default",
                "-p",
                &format!(r#"{{"spec": {{"bindMode": "{mode}"}}}}"#),
            ],
            None,
        );
    };
    mode("None");
    wait_for("every address", Duration::from_secs(15), || {
        accepts(node) && accepts(other)
    });
    mode("NodeIP");
    wait_for(
        "the node's address only again",
        Duration::from_secs(15),
        || accepts(node) && !accepts(other),
    );
}
