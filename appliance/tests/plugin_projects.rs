//! Plugin projects as an author has them: started by `starling plugin
//! new`, built by `starling plugin build` (cargo, or the real
//! componentize-py that `scripts/setup` installs), tested by `starling
//! plugin test`. The Python examples are held to their Rust twins'
//! fixtures, and a hostile Python plugin to the sandbox a hostile Rust one
//! is.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use starling_plugin_host::contract::Object;
use starling_plugin_host::{ErrorKind, Host, Limits, Plugin};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A copy of the project at `project` (relative to the repository), built
/// there: the source tree stays as it was.
fn build(test: &str, project: &str) -> PathBuf {
    build_in(&copy_project(test, project))
}

/// A copy of the project's sources in the target directory, one per test:
/// tests run in parallel, and two building the same example in one place
/// would delete each other's build.
fn copy_project(test: &str, project: &str) -> PathBuf {
    let source = Path::new(REPO).join(project);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("plugin-projects")
        .join(test)
        .join(project);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("project dir");
    for entry in std::fs::read_dir(&source).expect("project") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "py" || e == "js") {
            std::fs::copy(&path, dir.join(path.file_name().expect("file"))).expect("copy");
        }
    }
    dir
}

/// `starling plugin build DIR`, which must succeed: the component built.
fn build_in(dir: &Path) -> PathBuf {
    let out = common::starling(dir, &["plugin", "build", dir.to_str().expect("utf8")], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "starling plugin build {}: {stdout}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("starling:policy@0.3.0"), "{stdout}");
    let name = dir.file_name().expect("name").to_string_lossy();
    dir.join("build")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

#[test]
fn the_python_and_js_examples_pass_their_rust_twins_fixtures() {
    for (project, fixtures) in [
        (
            "plugins/examples/python/as-per-rack",
            "plugins/examples/as-per-rack/fixtures",
        ),
        (
            "plugins/examples/python/zone-reflectors",
            "plugins/examples/zone-reflectors/fixtures",
        ),
        (
            "plugins/examples/js/as-per-rack",
            "plugins/examples/as-per-rack/fixtures",
        ),
        (
            "plugins/examples/js/zone-reflectors",
            "plugins/examples/zone-reflectors/fixtures",
        ),
        (
            "plugins/examples/python/prefix-guard",
            "plugins/examples/prefix-guard/fixtures",
        ),
        (
            "plugins/examples/js/prefix-guard",
            "plugins/examples/prefix-guard/fixtures",
        ),
    ] {
        let component = build("examples", project);
        let fixtures = Path::new(REPO).join(fixtures);
        let out = common::starling(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            &[
                "plugin",
                "test",
                component.to_str().expect("utf8"),
                "--fixtures",
                fixtures.to_str().expect("utf8"),
            ],
            None,
        );
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{project}: {report}");
        assert!(report.contains(" passed, 0 failed"), "{report}");
        assert!(
            !report.lines().any(|l| l.starts_with("0 fixtures")),
            "{report}"
        );
    }
}

fn object(kind: &str, name: &str, spec: &str) -> Object {
    Object::new(kind, name, spec)
}

fn hostile(mode: &str) -> Vec<Object> {
    vec![
        object("Node", "a", "{}"),
        object("Hostile", "h", &format!(r#"{{"mode": "{mode}"}}"#)),
    ]
}

/// `assign` in `mode`: its answer, or how it failed, and how long it took.
fn assign(
    plugin: &Plugin,
    mode: &str,
) -> (
    Result<Vec<(String, u32)>, starling_plugin_host::PluginError>,
    Duration,
) {
    let started = Instant::now();
    let result = plugin.evaluate(&hostile(mode)).and_then(|mut e| e.assign());
    (result, started.elapsed())
}

/// The hostile plugin of `project`, loaded with the Rust plugins' limits
/// but for memory (an interpreter's heap starts at 10–20 MiB); each
/// misbehaviour in `failing` must fail as one of its (kind, message)
/// pairs, within 5 s, and leave the plugin serving.
fn held_by_the_sandbox(
    project: &str,
    failing: &[(&str, Vec<(ErrorKind, &str)>)],
) -> (Host, Plugin) {
    let component = build("hostile", project);
    let host = Host::new(Limits {
        call_deadline: Duration::from_millis(500),
        memory: 96 << 20,
        ..Limits::default()
    })
    .expect("host")
    .with_cache(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"));
    let plugin = host.load_file("hostile", &component).expect("load");
    let serves = |after: &str| {
        let (fine, _) = assign(&plugin, "");
        assert_eq!(
            fine.expect(after),
            [("a".to_owned(), 65000)],
            "{project}: after {after}"
        );
    };
    serves("nothing");
    for (mode, wants) in failing {
        let (result, took) = assign(&plugin, mode);
        let err = result.expect_err(mode);
        assert!(
            wants
                .iter()
                .any(|(kind, says)| err.kind() == *kind && err.to_string().contains(says)),
            "{project}, {mode}: {err}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{project}, {mode}: took {took:?}"
        );
        serves(mode);
    }
    // The clocks are virtual: near the epoch, the same in every evaluation.
    let clock = assign(&plugin, "clock").0.expect("clock");
    let reading: u64 = clock[0].0.parse().expect("a number");
    assert!(
        reading < 1_000_000_000,
        "{project}: the clock read {reading}"
    );
    assert_eq!(assign(&plugin, "clock").0.expect("clock"), clock);
    // print goes to the log, within its budget.
    let before = plugin.metrics().snapshot().dropped_log_lines;
    assign(&plugin, "print-flood").0.expect("print");
    let dropped = plugin.metrics().snapshot().dropped_log_lines - before;
    assert_eq!(
        dropped,
        2_000 - u64::from(host.limits().log_lines),
        "{project}"
    );
    (host, plugin)
}

const TIMEOUT: (ErrorKind, &str) = (ErrorKind::Timeout, "deadline");
const OOM: (ErrorKind, &str) = (ErrorKind::OutOfMemory, "ran out of memory");

#[test]
fn a_hostile_python_plugin_is_held_by_the_sandbox() {
    let (_, plugin) = held_by_the_sandbox(
        "plugins/testing/hostile-python",
        &[
            ("loop", vec![TIMEOUT]),
            ("memory", vec![OOM]),
            // Two million answers: the interpreter may run out of time
            // before it runs out of memory.
            ("huge", vec![OOM, TIMEOUT]),
            (
                "exception",
                vec![(ErrorKind::Trap, "ValueError: hostile plugin asked to raise")],
            ),
            ("stack", vec![(ErrorKind::Trap, "RecursionError")]),
        ],
    );
    // What it reaches for, it does not get.
    for mode in ["env", "file"] {
        assert_eq!(
            assign(&plugin, mode).0.expect(mode),
            [(String::new(), 1)],
            "{mode}"
        );
    }
    assert_eq!(assign(&plugin, "net").0.expect("net"), [(String::new(), 0)]);
    let (slept, took) = assign(&plugin, "sleep");
    assert_eq!(slept.expect("sleep"), [("3600".to_owned(), 1)]);
    assert!(
        took < Duration::from_secs(2),
        "an hour's sleep took {took:?}"
    );
}

#[test]
fn a_hostile_js_plugin_is_held_by_the_sandbox() {
    held_by_the_sandbox(
        "plugins/testing/hostile-js",
        &[
            ("loop", vec![TIMEOUT]),
            ("memory", vec![OOM, (ErrorKind::Trap, "out of memory")]),
            (
                "huge",
                vec![OOM, TIMEOUT, (ErrorKind::Trap, "out of memory")],
            ),
            (
                "exception",
                vec![(ErrorKind::Trap, "TypeError: hostile plugin asked to throw")],
            ),
            ("stack", vec![(ErrorKind::Trap, "recursion")]),
        ],
    );
    // No network: `plugin build` leaves fetch's wasi:http out of the
    // component (a component that imported it would not have loaded).
}

#[test]
fn a_python_plugin_that_imports_more_than_it_is_given_is_refused_by_name() {
    // The contract with one more import: an interface of the plugin's own
    // choosing, which no host gives.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-plugins/greedy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("wit")).expect("dir");
    let contract =
        std::fs::read_to_string(Path::new(REPO).join("wit/starling-policy@0.3/policy.wit"))
            .expect("contract");
    let greedy = contract
        .replace(
            "world plugin {",
            "interface exfiltrate {\n    send: func(data: string);\n}\n\nworld plugin {\n    import exfiltrate;",
        );
    assert_ne!(greedy, contract);
    std::fs::write(dir.join("wit/policy.wit"), greedy).expect("wit");
    let zone = build("greedy", "plugins/examples/python/zone-reflectors");
    let sdk = zone.parent().expect("build").join("starling-sdk");
    let project = zone.parent().and_then(Path::parent).expect("project");
    let component = dir.join("greedy.wasm");
    let tool = std::env::var("STARLING_COMPONENTIZE_PY")
        .unwrap_or_else(|_| "/opt/starling-py/bin/componentize-py".to_owned());
    let status = std::process::Command::new(tool)
        .arg("-d")
        .arg(dir.join("wit"))
        .args(["-w", "plugin", "componentize", "-p"])
        .arg(project)
        .arg("-p")
        .arg(&sdk)
        .arg("app")
        .arg("-o")
        .arg(&component)
        .status()
        .expect("componentize-py");
    assert!(status.success());
    let host = Host::new(Limits::default()).expect("host");
    let err = host.load_file("greedy", &component).expect_err("refused");
    assert!(
        err.to_string()
            .contains("imports `starling:policy/exfiltrate@0.3.0`, which no plugin is given"),
        "{err}"
    );
}

#[test]
fn a_new_project_builds_and_passes_its_own_fixture_in_each_language() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("new-projects");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("dir");
    for (lang, component) in [
        ("python", "build/fresh_python.wasm"),
        ("js", "build/fresh_js.wasm"),
        ("rust", "target/wasm32-wasip2/release/fresh_rust.wasm"),
    ] {
        let dir = root.join(format!("fresh-{lang}"));
        let dir_arg = dir.to_str().expect("utf8");
        let steps: [&[&str]; 3] = [
            &["plugin", "new", "--lang", lang, dir_arg],
            &["plugin", "build", dir_arg],
            &[
                "plugin",
                "test",
                &format!("{dir_arg}/{component}"),
                "--fixtures",
                &format!("{dir_arg}/fixtures"),
            ],
        ];
        for args in steps {
            let out = common::starling(&root, args, None);
            assert!(
                out.status.success(),
                "{lang}: starling {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(dir.join("README.md").is_file(), "{lang}");
    }
}

#[test]
fn an_interpreted_route_policy_says_when_its_verdicts_may_change() {
    // Neither twin says what its verdicts depend on: the SDKs' default
    // digests the whole snapshot and the context, as the Rust SDK does.
    let host = Host::new(Limits::default())
        .expect("host")
        .with_cache(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"));
    let context = |session: &str| starling_plugin_host::contract::RouteContext {
        node: "a".to_owned(),
        session: session.to_owned(),
        family: starling_plugin_host::contract::Family::Ipv4,
        direction: starling_plugin_host::contract::Direction::Export,
        peer_as: 65000,
        local_as: 64512,
        filters: Vec::new(),
    };
    let contexts = [
        context("Global_198_51_100_1"),
        context("Global_198_51_100_2"),
    ];
    let guard = |v4: u32| {
        object(
            "PrefixGuard",
            "edge",
            &format!(r#"{{"maxLengthV4": {v4}}}"#),
        )
    };
    for project in [
        "plugins/examples/python/prefix-guard",
        "plugins/examples/js/prefix-guard",
    ] {
        let plugin = host
            .load_file("guard", &build("verdicts", project))
            .expect("load");
        let digests = |objects: &[Object]| {
            let mut e = plugin.evaluate(objects).expect("load");
            e.inputs(&contexts).expect("inputs").expect("0.3 says")
        };
        let first = digests(&[guard(24)]);
        assert_eq!(first.len(), 2, "{project}");
        assert_ne!(first[0], first[1], "{project}: two sessions, one digest");
        assert_eq!(digests(&[guard(24)]), first, "{project}: same snapshot");
        assert_ne!(digests(&[guard(23)]), first, "{project}: an edited guard");
    }
}

/// Swap `file` for `contents` in one step, as an install would: a daemon
/// that watches it never reads half a build.
fn replace_file(file: &Path, contents: &[u8]) {
    let next = file.with_extension("next");
    std::fs::write(&next, contents).expect("write the new build");
    std::fs::rename(&next, file).expect("swap the new build in");
}

/// The Python zone reflectors serve a lab's route-reflection role (the
/// walk of docs/plugins.md "Your first plugin in Python" on a lab): with
/// the mesh off, the labelled node reflects for the others; a rebuilt
/// plugin is hot-loaded by every node, and a broken file is refused while
/// the Python build that runs keeps serving.
#[test]
fn a_python_plugin_serves_a_lab_and_is_hot_loaded() {
    use common::lab::{Lab, metric_sum, wait_for};

    let project = copy_project("lab", "plugins/examples/python/zone-reflectors");
    let served = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-python-zone-reflectors.wasm");
    replace_file(&served, &std::fs::read(build_in(&project)).expect("build"));
    let lab = Lab::up(
        "pyrr",
        3,
        &[
            "--plugin",
            &format!("route-reflection={}", served.display()),
        ],
    );
    let established = |node: &str| -> Vec<String> {
        let mut up: Vec<String> = lab
            .sessions(node)
            .into_iter()
            .filter(|(_, state)| state == "Established")
            .map(|(name, _)| name)
            .collect();
        up.sort();
        up
    };
    let cluster_id = |node: &str| -> Option<String> {
        let out = lab.exec_raw(node, &["starling", "node", "status", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["cluster_id"].as_str().map(str::to_owned)
    };
    for node in lab.nodes() {
        wait_for(&format!("{node}'s mesh"), Duration::from_secs(60), || {
            established(&node).len() == 2
        });
    }

    // The plugin's recipe: node-1 is zone a's reflector, the others peer
    // with it alone.
    for label in ["reflector=true", "zone=a"] {
        lab.exec("node-1", &["starling", "label", "node", "node-1", label]);
    }
    let peer = lab.dir.join("peer-with-reflectors.yaml");
    std::fs::write(
        &peer,
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: peer-with-reflectors\n\
         spec:\n  nodeSelector: all()\n  peerSelector: reflector == 'true'\n",
    )
    .expect("yaml");
    lab.exec(
        "node-1",
        &["starling", "apply", "-f", peer.to_str().expect("utf8")],
    );
    lab.exec(
        "node-1",
        &[
            "starling",
            "patch",
            "bgpconfiguration",
            "default",
            "-p",
            r#"{"spec": {"nodeToNodeMeshEnabled": false}}"#,
        ],
    );
    wait_for(
        "node-1 to reflect for zone a",
        Duration::from_secs(60),
        || {
            cluster_id("node-1").as_deref() == Some("244.0.0.1")
                && established("node-2") == ["Node_192_0_2_11"]
                && established("node-3") == ["Node_192_0_2_11"]
        },
    );
    wait_for(
        "node-2 to reach node-3 through the reflector",
        Duration::from_secs(30),
        || lab.ping(2, 3),
    );

    // A rebuilt plugin (another cluster-id scheme) is hot-loaded.
    let source = project.join("plugin.py");
    let text = std::fs::read_to_string(&source).expect("plugin.py");
    assert!(text.contains("f\"244.0."), "{text}");
    std::fs::write(&source, text.replace("f\"244.0.", "f\"244.7.")).expect("plugin.py");
    replace_file(
        &served,
        &std::fs::read(build_in(&project)).expect("rebuild"),
    );
    wait_for(
        "node-1 to run the rebuilt plugin",
        Duration::from_secs(60),
        || cluster_id("node-1").as_deref() == Some("244.7.0.1"),
    );
    for node in ["node-2", "node-3"] {
        wait_for(
            &format!("{node} back with its reflector"),
            Duration::from_secs(60),
            || established(node) == ["Node_192_0_2_11"],
        );
    }

    // A build that fails its check is not installed: the component the
    // project had stays, whole.
    let component = project.join("build/zone_reflectors.wasm");
    let good = std::fs::read(&component).expect("component");
    let text = std::fs::read_to_string(&source).expect("plugin.py");
    std::fs::write(
        &source,
        text.replace("roles = [Role.ROUTE_REFLECTION]", "roles = []"),
    )
    .expect("plugin.py");
    let out = common::starling(
        &project,
        &["plugin", "build", project.to_str().expect("utf8")],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("fills no role") && stderr.contains("left as it was"),
        "{stderr}"
    );
    assert!(
        std::fs::read(&component).expect("component") == good,
        "the failed build replaced the component"
    );
    assert!(
        !project.join("build/.zone_reflectors.wasm.new").exists(),
        "the failed build was left behind"
    );

    // A broken file is refused; the Python build that runs still plans the
    // next change (node-2 becomes zone b's reflector).
    let errors = |node: &str| metric_sum(&lab.scrape(node), "starling_plugin_errors_total");
    let before: Vec<f64> = lab.nodes().iter().map(|n| errors(n)).collect();
    replace_file(&served, b"\0asm this is not a component");
    for (node, before) in lab.nodes().iter().zip(before) {
        wait_for(
            &format!("{node} to refuse the broken file"),
            Duration::from_secs(30),
            || errors(node) > before,
        );
    }
    for label in ["reflector=true", "zone=b"] {
        lab.exec("node-1", &["starling", "label", "node", "node-2", label]);
    }
    wait_for(
        "node-2 to reflect for zone b",
        Duration::from_secs(60),
        || {
            cluster_id("node-2").as_deref() == Some("244.7.1.1")
                && established("node-3") == ["Node_192_0_2_11", "Node_192_0_2_12"]
        },
    );
    assert!(
        lab.ping(3, 1) && lab.ping(2, 3),
        "traffic after the broken build"
    );
}
