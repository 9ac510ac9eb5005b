//! `starling plugin new`: a plugin project to start from, in Rust, Python
//! or JavaScript, that builds (`starling plugin build`) and passes its own
//! fixture (`starling plugin test`) as it comes: nodes labelled
//! `reflector: "true"` become route reflectors, one cluster id for all.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// The project's directory, created; its last part names the plugin.
    dir: PathBuf,
    /// The language the plugin is written in.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Rust: the Starling checkout whose `plugins/sdk` the plugin depends
    /// on (default: the one this binary was built from, if it is there).
    #[arg(long, value_name = "CHECKOUT")]
    sdk: Option<PathBuf>,
}

/// The fixture every new project starts with (the kit runs Calico's
/// built-in plugin for the roles the new one does not fill).
const FIXTURE: &str = r#"description: nodes labelled reflector "true" reflect for the others, which peer with them
resources:
  - {apiVersion: projectcalico.org/v3, kind: BGPConfiguration, metadata: {name: default}, spec: {asNumber: 64512, nodeToNodeMeshEnabled: false}}
  - {apiVersion: projectcalico.org/v3, kind: Node, metadata: {name: rr, labels: {reflector: "true"}}, spec: {bgp: {ipv4Address: 192.0.2.1/24}}}
  - {apiVersion: projectcalico.org/v3, kind: Node, metadata: {name: w1}, spec: {bgp: {ipv4Address: 192.0.2.11/24}}}
  - {apiVersion: projectcalico.org/v3, kind: BGPPeer, metadata: {name: to-reflectors}, spec: {nodeSelector: all(), peerSelector: reflector == 'true'}}
only: true
sessions:
  - {node: rr, name: Node_192_0_2_11, rr_client: true, rr_cluster_id: 244.0.0.1}
  - {node: w1, name: Node_192_0_2_1, rr_client: false}
"#;

const RUST_LIB: &str = r#"//! NAME: nodes labelled `reflector: "true"` are route reflectors, with one
//! cluster id. Edit from here; docs/plugins.md explains each part.

use starling_plugin_sdk::*;

#[derive(Debug)]
pub struct Plugin {
    reflectors: Vec<String>,
}

impl Snapshot for Plugin {
    /// The resources in; refuse them with `Err(problems)`.
    fn load(objects: Vec<Object>) -> Result<Self, Vec<Problem>> {
        let mut reflectors: Vec<String> = objects
            .iter()
            .filter(|o| o.kind == "Node" && o.labels.get("reflector").is_some_and(|v| v == "true"))
            .map(|o| o.name.clone())
            .collect();
        reflectors.sort();
        Ok(Plugin { reflectors })
    }

    fn nodes(&self) -> Vec<String> {
        self.reflectors.clone()
    }

    fn roles() -> Vec<Role> {
        vec![Role::RouteReflection]
    }
}

impl RouteReflection for Plugin {
    fn reflectors(&self) -> Vec<(String, String)> {
        self.reflectors
            .iter()
            .map(|node| (node.clone(), "244.0.0.1".to_owned()))
            .collect()
    }
}

impl AsAssignment for Plugin {}
impl PeerSelection for Plugin {}
impl RoutePolicy for Plugin {}
impl NodeIdentity for Plugin {}
impl Origination for Plugin {}

export_plugin!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_nodes_reflect() {
        let plugin = Plugin::load(vec![
            Object::new("Node", "rr", "{}").with_labels([("reflector", "true")]),
            Object::new("Node", "w1", "{}"),
        ])
        .expect("load");
        assert_eq!(
            plugin.reflectors(),
            vec![("rr".to_owned(), "244.0.0.1".to_owned())]
        );
    }
}
"#;

const PYTHON_PLUGIN: &str = r#""""NAME: nodes labelled `reflector: "true"` are route reflectors, with one
cluster id. Edit from here; docs/plugins.md explains each part."""

from starling_plugin import Role, export, labels


class Plugin:
    roles = [Role.ROUTE_REFLECTION]

    def __init__(self, objects):
        """The resources in; raise starling_plugin.Refused([...]) to refuse them."""
        self.chosen = sorted(
            o.name for o in objects if o.kind == "Node" and labels(o).get("reflector") == "true"
        )

    def nodes(self):
        return self.chosen

    def reflectors(self):
        return [(node, "244.0.0.1") for node in self.chosen]


export(Plugin)
"#;

const JS_PLUGIN: &str = r#"// NAME: nodes labelled `reflector: "true"` are route reflectors, with one
// cluster id. Edit from here; docs/plugins.md explains each part.

import { Role, exportPlugin, labels } from "./starling-plugin.js";

class Plugin {
  static roles = [Role.ROUTE_REFLECTION];

  /** The resources in; throw new Refused([...]) to refuse them. */
  constructor(objects) {
    this.chosen = objects
      .filter((o) => o.kind === "Node" && labels(o).reflector === "true")
      .map((o) => o.name)
      .sort();
  }

  nodes() {
    return this.chosen;
  }

  reflectors() {
    return this.chosen.map((node) => [node, "244.0.0.1"]);
  }
}

exportPlugin(Plugin);
"#;

const README: &str = r#"# NAME

A Starling policy plugin (LANG), made by `starling plugin new`.

```sh
starling plugin build                        # the component: COMPONENT
starling plugin test COMPONENT --fixtures fixtures/
TEST_LINE
```

Try it on resources: `starling plan -f cluster.yaml --plugin
route-reflection=COMPONENT`. Serve it from a daemon: name the file in
`/etc/starling/starling.toml` (`[plugins] route_reflection = "..."`); a
rebuilt file is reloaded, after a self-test, without a restart.

See docs/plugins.md in the Starling repository: the roles, the contract,
the sandbox, and how to write fixtures.
"#;

pub(crate) fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .context("give the project a directory name")?;
    std::fs::create_dir_all(dir.join("fixtures"))?;
    write(dir, "fixtures/reflectors.yaml", FIXTURE)?;
    let (lang, component, test_line) = match args.lang {
        Lang::Rust => {
            let checkout = match &args.sdk {
                Some(c) => c.clone(),
                None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
            };
            let sdk = std::fs::canonicalize(checkout.join("plugins/sdk")).with_context(|| {
                format!(
                    "no Starling SDK at {}/plugins/sdk: pass --sdk with a Starling checkout",
                    checkout.display()
                )
            })?;
            write(dir, "Cargo.toml", &cargo_toml(&name, &sdk))?;
            std::fs::create_dir_all(dir.join("src"))?;
            write(dir, "src/lib.rs", &RUST_LIB.replace("NAME", &name))?;
            write(dir, ".gitignore", "/target\n")?;
            // The component bindings need the versions the host was built
            // with: start from the checkout's lock file.
            if let Ok(lock) = std::fs::read_to_string(checkout.join("Cargo.lock")) {
                write(dir, "Cargo.lock", &lock)?;
            }
            let crate_name = name.replace('-', "_");
            (
                "Rust",
                format!("target/wasm32-wasip2/release/{crate_name}.wasm"),
                "cargo test                                   # the unit tests, natively",
            )
        }
        Lang::Python => {
            write(dir, "plugin.py", &PYTHON_PLUGIN.replace("NAME", &name))?;
            write(dir, ".gitignore", "/build\n__pycache__/\n")?;
            (
                "Python",
                format!("build/{}.wasm", name.replace('-', "_")),
                "",
            )
        }
        Lang::Js => {
            write(dir, "plugin.js", &JS_PLUGIN.replace("NAME", &name))?;
            // The SDK beside the code, for editors; `plugin build` writes
            // its own copy into build/ in any case.
            write(dir, "starling-plugin.js", super::build::JS_SDK[0].1)?;
            write(dir, ".gitignore", "/build\n")?;
            (
                "JavaScript",
                format!("build/{}.wasm", name.replace('-', "_")),
                "",
            )
        }
    };
    let readme = README
        .replace("NAME", &name)
        .replace("LANG", lang)
        .replace("COMPONENT", &component)
        .replace(
            "TEST_LINE\n",
            &if test_line.is_empty() {
                String::new()
            } else {
                format!("{test_line}\n")
            },
        );
    write(dir, "README.md", &readme)?;
    println!(
        "created {} ({lang}): cd {0} && starling plugin build && starling plugin test {component} --fixtures fixtures/",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["rlib", "cdylib"]   # rlib: native unit tests; cdylib: the component

[dependencies]
starling-plugin-sdk = {{ path = "{}" }}

# A project of its own, even inside another workspace's tree.
[workspace]

[profile.release]
opt-level = "s"
"#,
        sdk.display()
    )
}

fn write(dir: &Path, file: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
