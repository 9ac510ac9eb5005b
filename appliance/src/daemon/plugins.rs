//! The daemon's plugins: built-in ones, and files that are reloaded when
//! they change (a new build that fails to load keeps the old one).

use std::collections::BTreeMap;
use std::path::Path;

use starling_plugin_host::contract::Role;
use starling_plugin_host::pipeline::{Reloading, Roles};
use starling_plugin_host::{Host, Plugin};

use super::config;

pub(super) struct PluginSet {
    host: Host,
    sources: config::Plugins,
    builtin: BTreeMap<String, Plugin>,
    files: BTreeMap<String, Reloading>,
}

impl PluginSet {
    pub(super) fn load(host: &Host, sources: &config::Plugins) -> anyhow::Result<Self> {
        let mut set = PluginSet {
            host: host.clone(),
            sources: sources.clone(),
            builtin: BTreeMap::new(),
            files: BTreeMap::new(),
        };
        for source in set.source_list() {
            if let Some(bytes) = starling_plugins::builtin(&source) {
                if !set.builtin.contains_key(source.as_str()) {
                    set.builtin
                        .insert(source.clone(), host.load(&source, bytes)?);
                }
            } else if !set.files.contains_key(source.as_str()) {
                let name = Path::new(&source)
                    .file_stem()
                    .map_or_else(|| source.clone(), |s| s.to_string_lossy().into_owned());
                set.files
                    .insert(source.clone(), Reloading::open(host, &name, &source)?);
            }
        }
        set.roles()?.check()?;
        Ok(set)
    }

    /// Each role with its configuration key and the plugin named for it.
    fn assignments(&self) -> [(&'static str, &str, Role); 6] {
        let s = &self.sources;
        [
            ("as_assignment", &s.as_assignment, Role::AsAssignment),
            (
                "route_reflection",
                &s.route_reflection,
                Role::RouteReflection,
            ),
            ("node_identity", &s.node_identity, Role::NodeIdentity),
            ("peer_selection", &s.peer_selection, Role::PeerSelection),
            ("origination", &s.origination, Role::Origination),
            ("route_policy", &s.route_policy, Role::RoutePolicy),
        ]
    }

    fn source_list(&self) -> Vec<String> {
        self.assignments()
            .iter()
            .map(|(_, source, _)| (*source).to_owned())
            .collect()
    }

    fn plugin(&self, source: &str) -> anyhow::Result<Plugin> {
        self.builtin
            .get(source)
            .cloned()
            .or_else(|| self.files.get(source).map(|r| r.current().clone()))
            .ok_or_else(|| anyhow::anyhow!("plugin '{source}' is not loaded"))
    }

    pub(super) fn roles(&self) -> anyhow::Result<Roles> {
        let s = &self.sources;
        Ok(Roles {
            as_assignment: self.plugin(&s.as_assignment)?,
            route_reflection: self.plugin(&s.route_reflection)?,
            node_identity: self.plugin(&s.node_identity)?,
            peer_selection: self.plugin(&s.peer_selection)?,
            origination: self.plugin(&s.origination)?,
            route_policy: self.plugin(&s.route_policy)?,
        })
    }

    /// Every distinct plugin, for metrics.
    pub(super) fn all(&self) -> Vec<Plugin> {
        self.builtin
            .values()
            .cloned()
            .chain(self.files.values().map(|r| r.current().clone()))
            .collect()
    }

    /// The roles `source` is configured to serve.
    fn roles_of(&self, source: &str) -> Vec<Role> {
        self.assignments()
            .into_iter()
            .filter(|(_, configured, _)| *configured == source)
            .map(|(_, _, role)| role)
            .collect()
    }

    /// Reload plugin files that changed. `true` when a new build serves.
    /// A build that does not load, or no longer fills a role it serves,
    /// is refused before the swap: the previous build keeps serving.
    pub(super) fn reload_changed(&mut self) -> bool {
        let mut changed = false;
        let roles: BTreeMap<String, Vec<Role>> = self
            .files
            .keys()
            .map(|path| (path.clone(), self.roles_of(path)))
            .collect();
        for (path, slot) in &mut self.files {
            match slot.check_for_roles(&roles[path]) {
                Ok(true) => changed = true,
                Ok(false) => {}
                Err(e) => tracing::error!(plugin = path, "kept the running plugin: {e}"),
            }
        }
        changed
    }

    /// Which plugin serves which role, for the log.
    pub(super) fn describe(&self) -> String {
        self.assignments()
            .iter()
            .map(|(key, source, _)| format!("{key}={source}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(super) fn host(&self) -> &Host {
        &self.host
    }
}
