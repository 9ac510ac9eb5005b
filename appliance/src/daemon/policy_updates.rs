//! The route policy a plan gives the speaker, and what a new plan means
//! for routes already exchanged: which peers must resend their routes
//! (their import verdicts may differ) and whether every peer's exports
//! must be evaluated again. The route-policy plugin says what each
//! session's verdicts depend on, as digests; the daemon only compares
//! them, so an unrelated datastore change costs no ROUTE-REFRESH and no
//! re-export of a full table, without the daemon knowing what a filter
//! is.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use starling_plugin_host::Plugin;
use starling_plugin_host::contract::Object;
use starling_speaker::instance::Instance;

use super::route_policy::{PluginPolicy, SessionContext};

/// What the last route policy was made of.
#[derive(Debug, Default)]
pub(super) struct RoutePolicyUpdates {
    /// Per peer, the digest of what its import verdicts depend on.
    import_inputs: HashMap<IpAddr, u64>,
    /// Per peer, the digest of what its export verdicts depend on: when
    /// none changes, a new plan's policy exports what the last one did,
    /// and the table is not exported again.
    export_inputs: HashMap<IpAddr, u64>,
    plugin: Option<Plugin>,
}

impl RoutePolicyUpdates {
    /// Give `instance` the route policy of a new plan: `plugin` deciding
    /// for the sessions in `contexts` over `objects`, with `digests` per
    /// session name. Peers whose import digest changed are asked for their
    /// routes again; exports are evaluated again only if some export
    /// digest changed. A session the plan no longer has (it is retiring)
    /// keeps its digests.
    pub(super) fn apply(
        &mut self,
        instance: &Instance,
        node: &str,
        plugin: Plugin,
        objects: Vec<Object>,
        contexts: HashMap<IpAddr, SessionContext>,
        digests: &BTreeMap<String, (u64, u64)>,
    ) {
        let replaced = self
            .plugin
            .as_ref()
            .is_none_or(|p| !Plugin::same(p, &plugin));
        let mut imports = HashMap::new();
        let mut exports = HashMap::new();
        for (address, context) in &contexts {
            let old = (
                self.import_inputs.get(address).copied(),
                self.export_inputs.get(address).copied(),
            );
            let (import, export) = match (digests.get(&context.name), old) {
                (Some(&new), _) => new,
                (None, (Some(import), Some(export))) => (import, export),
                // Neither planned nor known: nothing to compare with.
                (None, _) => continue,
            };
            imports.insert(*address, import);
            exports.insert(*address, export);
        }
        let refresh: Vec<IpAddr> = imports
            .iter()
            .filter(|(a, d)| {
                self.import_inputs.get(a).is_some_and(|old| old != *d)
                    || (replaced && self.import_inputs.contains_key(a))
            })
            .map(|(a, _)| *a)
            .collect();
        let reexport = replaced
            || exports
                .iter()
                .any(|(a, d)| self.export_inputs.get(a).is_some_and(|old| old != d));
        self.import_inputs = imports;
        self.export_inputs = exports;
        self.plugin = Some(plugin.clone());
        let policy = Arc::new(PluginPolicy::new(
            node.to_owned(),
            plugin,
            objects,
            contexts,
        )) as Arc<dyn starling_speaker::policy::RoutePolicy>;
        if reexport {
            instance.set_route_policy(Some(policy), refresh);
        } else {
            instance.set_route_policy_keeping_exports(Some(policy), refresh);
        }
    }
}
