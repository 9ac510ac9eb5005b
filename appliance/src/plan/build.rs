//! `starling plugin build`: build the plugin project in a directory into a
//! component, whatever its language, and check it against the contract.
//!
//! - **Rust** (`Cargo.toml`): `cargo build --release --target
//!   wasm32-wasip2`; the component is cargo's.
//! - **Python** (`plugin.py`): componentize-py, with Starling's Python SDK
//!   (`plugins/sdk-python`, carried in this binary) and the contract's WIT
//!   written to `build/` beside it; the component is
//!   `build/<directory name>.wasm`.
//! - **JavaScript** (`plugin.js`): componentize-js (StarlingMonkey), the
//!   project's modules and Starling's JS SDK (`plugins/sdk-js`) together
//!   in `build/js/`, `fetch` left out (a plugin gets no `wasi:http`); the
//!   component is `build/<directory name>.wasm`.
//!
//! A Python or JS build replaces `build/<name>.wasm` only once it has
//! passed the check, in one rename: a daemon serving that file hot-loads
//! whole, checked builds only.
//!
//! The tools are found on `PATH`, else where `scripts/setup` installs
//! them; `STARLING_COMPONENTIZE_PY` and `STARLING_COMPONENTIZE_JS` name
//! others.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use starling_plugin_host::{Host, Limits};

/// The newest contract, as plugins are built against it.
pub(crate) const CONTRACT_WIT: &str = include_str!("../../../wit/starling-policy@0.3/policy.wit");

/// Starling's Python SDK: the author's helpers and the export glue.
const PYTHON_SDK: [(&str, &str); 4] = [
    (
        "starling_plugin.py",
        include_str!("../../../plugins/sdk-python/starling_plugin.py"),
    ),
    ("app.py", include_str!("../../../plugins/sdk-python/app.py")),
    (
        "snapshot.py",
        include_str!("../../../plugins/sdk-python/snapshot.py"),
    ),
    (
        "peer_selection.py",
        include_str!("../../../plugins/sdk-python/peer_selection.py"),
    ),
];

/// Starling's JavaScript SDK: the author's helpers and the export glue.
pub(crate) const JS_SDK: [(&str, &str); 2] = [
    (
        "starling-plugin.js",
        include_str!("../../../plugins/sdk-js/starling-plugin.js"),
    ),
    ("app.js", include_str!("../../../plugins/sdk-js/app.js")),
];

#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// The plugin project (default: the current directory).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// A plugin project's language, from the files it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Language {
    Rust,
    Python,
    JavaScript,
}

impl Language {
    pub(crate) fn of(dir: &Path) -> anyhow::Result<Language> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Language::Rust)
        } else if dir.join("plugin.py").is_file() {
            Ok(Language::Python)
        } else if dir.join("plugin.js").is_file() {
            Ok(Language::JavaScript)
        } else {
            bail!(
                "{} is not a plugin project: no Cargo.toml (Rust), plugin.py (Python) or \
                 plugin.js (JavaScript); \
                 `starling plugin new` makes one",
                dir.display()
            )
        }
    }
}

pub(crate) fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    // Python and JS builds go to a staging file, moved over the component
    // only once it passes the self-test: a daemon that serves
    // `build/<name>.wasm` never reads half a build, nor swaps in one that
    // fails. (Cargo writes its own output; the daemon's self-test guards
    // a Rust plugin served from there.)
    let (built, install) = match Language::of(dir)? {
        Language::Rust => (build_rust(dir)?, None),
        language => {
            let component = component_path(dir)?;
            let staged = staging(&component);
            if language == Language::Python {
                build_python(dir, &staged)?;
            } else {
                build_js(dir, &staged)?;
            }
            (staged, Some(component))
        }
    };
    let size = std::fs::metadata(&built)?.len();
    let host = Host::new(Limits::default())?.with_cache(super::cache_dir());
    let component = install.as_deref().unwrap_or(&built);
    let name = component
        .file_stem()
        .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned());
    let refused = match host.load_file(&name, &built) {
        Ok(plugin) if plugin.roles().is_empty() => "it fills no role".to_owned(),
        Ok(plugin) => {
            if let Some(install) = &install {
                std::fs::rename(&built, install).with_context(|| {
                    format!("moving {} to {}", built.display(), install.display())
                })?;
            }
            let roles: Vec<String> = plugin.roles().iter().map(|r| format!("{r:?}")).collect();
            println!(
                "built {} ({:.1} MB): starling:policy@{}, fills {}",
                component.display(),
                size as f64 / 1e6,
                plugin.contract_version(),
                roles.join(", ")
            );
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => format!("it is not a plugin Starling can load: {e}"),
    };
    match &install {
        Some(install) => {
            let _ = std::fs::remove_file(&built);
            eprintln!(
                "error: the build failed its check, {refused}; {} is left as it was",
                install.display()
            );
        }
        None => eprintln!("error: built {}, but {refused}", built.display()),
    }
    Ok(ExitCode::FAILURE)
}

/// Where a Python or JS project's component goes: `build/<dir name>.wasm`.
fn component_path(dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(dir
        .join("build")
        .join(format!("{}.wasm", project_name(dir)?)))
}

/// The file a build writes before its check: `build/.<name>.wasm.new`.
fn staging(component: &Path) -> PathBuf {
    let name = component.file_name().unwrap_or_default().to_string_lossy();
    component.with_file_name(format!(".{name}.new"))
}

fn build_rust(dir: &Path) -> anyhow::Result<PathBuf> {
    let metadata = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .context("running cargo (is Rust installed?)")?;
    if !metadata.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&metadata.stderr).trim()
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)?;
    let manifest = std::fs::canonicalize(dir.join("Cargo.toml"))?;
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .context("Cargo.toml has no [package]")?;
    let name = package["name"].as_str().unwrap_or_default().to_owned();
    let target = PathBuf::from(metadata["target_directory"].as_str().unwrap_or("target"));
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            &name,
        ])
        .current_dir(dir)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_"))))
}

/// Build into `out`.
fn build_python(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let tool = find_tool(
        "STARLING_COMPONENTIZE_PY",
        "componentize-py",
        "/opt/starling-py/bin/componentize-py",
    )
    .context(
        "componentize-py not found: `pip install componentize-py==0.25.1` \
         (scripts/setup installs it in /opt/starling-py), or set STARLING_COMPONENTIZE_PY",
    )?;
    let build = dir.join("build");
    let (sdk, wit) = (build.join("starling-sdk"), build.join("wit"));
    for d in [&sdk, &wit] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    for (file, text) in PYTHON_SDK {
        std::fs::write(sdk.join(file), text)?;
    }
    std::fs::write(wit.join("policy.wit"), CONTRACT_WIT)?;
    let mut componentize = Command::new(&tool);
    componentize
        .arg("-d")
        .arg(&wit)
        .args(["-w", "plugin", "componentize", "-p"])
        .arg(dir)
        .arg("-p")
        .arg(&sdk)
        .arg("app")
        .arg("-o")
        .arg(out);
    run_tool(componentize, "componentize-py")
}

/// Build into `out`.
fn build_js(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let tool = find_tool(
        "STARLING_COMPONENTIZE_JS",
        "componentize-js",
        "/opt/starling-js/node_modules/.bin/componentize-js",
    )
    .context(
        "componentize-js not found: `npm install @bytecodealliance/componentize-js@0.23.0` \
         (scripts/setup installs it in /opt/starling-js), or set STARLING_COMPONENTIZE_JS",
    )?;
    let build = dir.join("build");
    let (js, wit) = (build.join("js"), build.join("wit"));
    let _ = std::fs::remove_dir_all(&js);
    for d in [&js, &wit] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    // The project's modules and the SDK in one directory: plugin.js
    // imports "./starling-plugin.js", app.js imports "./plugin.js".
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "js" || e == "mjs") {
            std::fs::copy(&path, js.join(path.file_name().unwrap_or_default()))?;
        }
    }
    for (file, text) in JS_SDK {
        std::fs::write(js.join(file), text)?;
    }
    std::fs::write(wit.join("policy.wit"), CONTRACT_WIT)?;
    let mut componentize = Command::new(&tool);
    componentize
        .arg(js.join("app.js"))
        .arg("--wit")
        .arg(&wit)
        .args(["--world-name", "plugin"])
        .args(["--disable", "http", "fetch-event"])
        .arg("-o")
        .arg(out);
    run_tool(componentize, "componentize-js")
}

/// Run a build tool, its output on the terminal; its failure an error.
fn run_tool(mut command: Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what} ({:?})", command.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The project directory's name, as a file name for its component.
fn project_name(dir: &Path) -> anyhow::Result<String> {
    let dir = std::fs::canonicalize(dir)?;
    Ok(dir.file_name().map_or_else(
        || "plugin".to_owned(),
        |n| n.to_string_lossy().replace('-', "_"),
    ))
}

/// `$variable`, else `name` on `PATH`, else `fallback`.
fn find_tool(variable: &str, name: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from(fallback)).filter(|p| p.is_file()))
}
