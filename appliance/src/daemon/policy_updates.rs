//! The route policy a plan gives the speaker, and what a new plan means
//! for routes already exchanged: which peers must resend their routes
//! (their import rules changed) and whether every peer's exports must be
//! evaluated again. Both are decided by comparing digests of what the
//! decisions depend on, so an unrelated datastore change costs no
//! ROUTE-REFRESH and no re-export of a full table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use starling_plugin_host::Plugin;
use starling_plugin_host::contract::Object;
use starling_speaker::instance::Instance;

use super::route_policy::{PluginPolicy, SessionContext};

/// What the last route policy was made of.
#[derive(Debug, Default)]
pub(super) struct RoutePolicyUpdates {
    /// Per session, a digest of what its import decisions depend on.
    import_inputs: HashMap<IpAddr, u64>,
    /// Per session, a digest of what its export decisions depend on:
    /// when none changes, a new plan's policy exports what the last one
    /// did, and the table is not exported again.
    export_inputs: HashMap<IpAddr, u64>,
    plugin: Option<Plugin>,
}

impl RoutePolicyUpdates {
    /// Give `instance` the route policy of a new plan: `plugin` deciding
    /// for the sessions in `contexts` over `objects`. Peers whose import
    /// inputs changed are asked for their routes again; exports are
    /// evaluated again only if some export input changed.
    pub(super) fn apply(
        &mut self,
        instance: &Instance,
        node: &str,
        plugin: Plugin,
        objects: Vec<Object>,
        contexts: HashMap<IpAddr, SessionContext>,
        docs: &[serde_json::Value],
    ) {
        let replaced = self
            .plugin
            .as_ref()
            .is_none_or(|p| !Plugin::same(p, &plugin));
        let imports = import_fingerprints(&contexts, docs);
        let refresh: Vec<IpAddr> = imports
            .iter()
            .filter(|(a, f)| {
                self.import_inputs.get(a).is_some_and(|old| old != *f)
                    || (replaced && self.import_inputs.contains_key(a))
            })
            .map(|(a, _)| *a)
            .collect();
        self.import_inputs = imports;
        let exports = export_fingerprints(&contexts, docs);
        let reexport = replaced
            || exports
                .iter()
                .any(|(a, f)| self.export_inputs.get(a).is_some_and(|old| old != f));
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

/// Per session: a digest of what its import decisions depend on (its
/// context and the BGPFilters it names).
fn import_fingerprints(
    contexts: &HashMap<IpAddr, SessionContext>,
    docs: &[serde_json::Value],
) -> HashMap<IpAddr, u64> {
    use std::hash::{Hash, Hasher};
    contexts
        .iter()
        .map(|(address, context)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            context.hash(&mut h);
            for doc in docs.iter().filter(|d| {
                d["kind"] == "BGPFilter"
                    && d["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| context.filters.iter().any(|f| f == n))
            }) {
                // Export rules change nothing a peer must resend.
                doc["metadata"]["name"].to_string().hash(&mut h);
                doc["spec"]["importV4"].to_string().hash(&mut h);
                doc["spec"]["importV6"].to_string().hash(&mut h);
            }
            (*address, h.finish())
        })
        .collect()
}

/// What each session's export decisions depend on: its context and
/// everything the plugin sees (Secrets never reach it) but the import
/// rules of BGPFilters. A BGPFilter's resource version is left out too:
/// editing its import rules alone bumps it. So are CalicoNodeStatus
/// resources: their status is our own report, rewritten every period,
/// and like their writes (which plan nothing) it decides no route.
fn export_fingerprints(
    contexts: &HashMap<IpAddr, SessionContext>,
    docs: &[serde_json::Value],
) -> HashMap<IpAddr, u64> {
    use std::hash::{Hash, Hasher};
    let mut snapshot = std::collections::hash_map::DefaultHasher::new();
    for doc in docs
        .iter()
        .filter(|d| d["kind"] != "Secret" && d["kind"] != "CalicoNodeStatus")
    {
        if doc["kind"] == "BGPFilter" {
            let mut exports = doc.clone();
            if let Some(metadata) = exports["metadata"].as_object_mut() {
                metadata.remove("resourceVersion");
            }
            if let Some(spec) = exports["spec"].as_object_mut() {
                spec.remove("importV4");
                spec.remove("importV6");
            }
            exports.to_string().hash(&mut snapshot);
        } else {
            doc.to_string().hash(&mut snapshot);
        }
    }
    let snapshot = snapshot.finish();
    contexts
        .iter()
        .map(|(address, context)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            snapshot.hash(&mut h);
            context.hash(&mut h);
            (*address, h.finish())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use super::*;

    fn filter(version: &str, import: &str, export: &str) -> serde_json::Value {
        serde_json::json!({
            "kind": "BGPFilter",
            "metadata": {"name": "f", "resourceVersion": version},
            "spec": {
                "importV4": [{"action": "Reject", "matchOperator": "In", "cidr": import}],
                "exportV4": [{"action": "Reject", "matchOperator": "In", "cidr": export}],
            },
        })
    }

    #[test]
    fn only_import_rules_change_import_fingerprints() {
        let contexts = contexts();
        let print = |docs: &[serde_json::Value]| import_fingerprints(&contexts, docs);
        let before = print(&[filter("1", "10.0.0.0/8", "10.1.0.0/16")]);
        assert_eq!(
            before,
            print(&[filter("2", "10.0.0.0/8", "10.2.0.0/16")]),
            "an export rule changed"
        );
        assert_ne!(
            before,
            print(&[filter("2", "172.16.0.0/12", "10.1.0.0/16")]),
            "an import rule changed"
        );
    }

    fn contexts() -> HashMap<IpAddr, SessionContext> {
        [(
            IpAddr::from([192, 0, 2, 1]),
            SessionContext {
                name: "tor".to_owned(),
                peer_as: 65001,
                local_as: 64512,
                filters: vec!["f".to_owned()],
            },
        )]
        .into()
    }

    #[test]
    fn only_import_rules_leave_export_fingerprints_alone() {
        let contexts = contexts();
        let pool = serde_json::json!({
            "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/16"},
        });
        let print = |docs: &[serde_json::Value]| export_fingerprints(&contexts, docs);
        let before = print(&[pool.clone(), filter("1", "10.0.0.0/8", "10.1.0.0/16")]);
        assert_eq!(
            before,
            print(&[pool.clone(), filter("2", "172.16.0.0/12", "10.1.0.0/16")]),
            "an import rule changed"
        );
        assert_ne!(
            before,
            print(&[pool.clone(), filter("2", "10.0.0.0/8", "10.2.0.0/16")]),
            "an export rule changed"
        );
        let report = |at: &str| {
            serde_json::json!({
                "kind": "CalicoNodeStatus", "metadata": {"name": "n1", "resourceVersion": at},
                "spec": {"node": "n1", "updatePeriodSeconds": 10},
                "status": {"lastUpdated": at},
            })
        };
        assert_eq!(
            print(&[
                pool.clone(),
                filter("1", "10.0.0.0/8", "10.1.0.0/16"),
                report("1")
            ]),
            print(&[
                pool.clone(),
                filter("1", "10.0.0.0/8", "10.1.0.0/16"),
                report("2")
            ]),
            "our own status report was rewritten"
        );
        let mut other_pool = pool.clone();
        other_pool["spec"]["cidr"] = "10.9.0.0/16".into();
        assert_ne!(
            before,
            print(&[other_pool, filter("1", "10.0.0.0/8", "10.1.0.0/16")]),
            "another resource changed"
        );
    }
}
