//! Running the real `starling` binary from tests.

#![allow(dead_code)] // each test binary uses part of this

pub(crate) mod daemon;
pub(crate) mod lab;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `starling node status -o json`'s sessions as (name, state).
pub(crate) fn session_states(status: &serde_json::Value) -> Vec<(String, String)> {
    status["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Run `starling` with `args` on the datastore at `datastore`, feeding it
/// `stdin`; compiled plugins are cached under the test target directory.
pub(crate) fn starling(datastore: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    starling_with(
        &[("STARLING_DATASTORE", datastore.as_os_str())],
        args,
        stdin,
    )
}

/// Run `starling` with these environment variables (the datastore's).
pub(crate) fn starling_with(
    env: &[(&str, &std::ffi::OsStr)],
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_starling"))
        .args(args)
        .envs(env.iter().copied())
        .env(
            "STARLING_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn starling");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for starling")
}
