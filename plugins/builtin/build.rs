//! Build the plugin crates for wasm32-wasip2 as part of the normal build,
//! so `cargo build` alone yields a binary with its default plugins inside.
//!
//! The inner cargo uses its own target directory: the outer build holds the
//! lock on the usual one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest crates and the file each produces.
const PLUGINS: &[(&str, &str)] = &[
    ("starling-calico", "starling_calico.wasm"),
    (
        "starling-example-as-per-rack",
        "starling_example_as_per_rack.wasm",
    ),
    (
        "starling-example-prefix-guard",
        "starling_example_prefix_guard.wasm",
    ),
    ("starling-example-fabric", "starling_example_fabric.wasm"),
    ("starling-test-hostile", "starling_test_hostile.wasm"),
    ("starling-test-future", "starling_test_future.wasm"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    for dir in ["plugins", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let target_dir = root.join("target/plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir);
    for (krate, _) in PLUGINS {
        cmd.args(["-p", krate]);
    }
    if std::env::var_os("CARGO_NET_OFFLINE").is_some() {
        cmd.arg("--offline");
    }
    // The outer build's flags (coverage, sanitizers, target features) are
    // for the host, not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("run cargo for the wasm32-wasip2 plugins");
    if !status.success() {
        panic!(
            "building the plugins for wasm32-wasip2 failed; \
             is the target installed? (rustup target add wasm32-wasip2, or scripts/setup)"
        );
    }
    for (_, file) in PLUGINS {
        let built = target_dir.join("wasm32-wasip2/plugin").join(file);
        copy(&built, &out.join(file));
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
