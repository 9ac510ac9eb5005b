//! What the CLI says about itself: shell completions and the man page,
//! both generated from the same clap definition the binary parses with.

use std::process::{Command, Output};

fn starling(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_starling"))
        .args(args)
        .output()
        .expect("starling");
    assert!(
        out.status.success(),
        "starling {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn completions_cover_every_verb_and_bash_parses_them() {
    let verbs = [
        "apply",
        "get",
        "patch",
        "node",
        "plan",
        "lab",
        "completions",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let script = String::from_utf8(starling(&["completions", shell]).stdout).expect("utf8");
        for verb in verbs {
            assert!(script.contains(verb), "{shell} completion lacks {verb}");
        }
    }
    let dir = std::env::temp_dir().join(format!("starling-completion-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("starling.bash");
    std::fs::write(&file, starling(&["completions", "bash"]).stdout).expect("write");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash -n");
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn the_man_page_is_roff_naming_every_verb() {
    let page = String::from_utf8(starling(&["man"]).stdout).expect("utf8");
    assert!(page.contains(".TH starling 1"), "{page}");
    for verb in [
        "apply",
        "run",
        "plan",
        "decode",
        "lab",
        "completions",
        "man",
    ] {
        assert!(page.contains(verb), "man page lacks {verb}");
    }
}
