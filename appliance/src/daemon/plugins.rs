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

    fn source_list(&self) -> Vec<String> {
        let s = &self.sources;
        vec![
            s.as_assignment.clone(),
            s.route_reflection.clone(),
            s.node_identity.clone(),
            s.peer_selection.clone(),
            s.origination.clone(),
            s.route_policy.clone(),
        ]
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
        let s = &self.sources;
        [
            (&s.as_assignment, Role::AsAssignment),
            (&s.route_reflection, Role::RouteReflection),
            (&s.node_identity, Role::NodeIdentity),
            (&s.peer_selection, Role::PeerSelection),
            (&s.origination, Role::Origination),
            (&s.route_policy, Role::RoutePolicy),
        ]
        .into_iter()
        .filter(|(configured, _)| configured.as_str() == source)
        .map(|(_, role)| role)
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
        let s = &self.sources;
        format!(
            "as_assignment={} route_reflection={} node_identity={} peer_selection={} \
             origination={} route_policy={}",
            s.as_assignment,
            s.route_reflection,
            s.node_identity,
            s.peer_selection,
            s.origination,
            s.route_policy
        )
    }

    pub(super) fn host(&self) -> &Host {
        &self.host
    }
}
