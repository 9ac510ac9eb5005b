//! From a resource snapshot to every node's sessions, through the plugins
//! configured for each role, with the fallbacks the core relies on:
//!
//! - [`Roles::plan`] runs AS assignment and route reflection first, hands
//!   their answers to peer selection as facts, and returns the whole plan or
//!   a typed error;
//! - [`Policy`] keeps the last plan that succeeded and serves it when a
//!   later snapshot fails (a plugin trapped, timed out, ran out of memory,
//!   or refused the resources): a broken plugin or a bad resource never
//!   tears down sessions that are running;
//! - [`Reloading`] watches a plugin file and swaps in a new build only
//!   after it loads and passes its self-test; otherwise the old one keeps
//!   serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use starling_contract::{Family, NodeFacts, NodePlan, Object, Role};

use crate::{Evaluation, Host, Plugin, PluginError};

/// The plugin chosen for each role. One plugin may fill several.
#[derive(Debug, Clone)]
pub struct Roles {
    pub as_assignment: Plugin,
    pub route_reflection: Plugin,
    pub peer_selection: Plugin,
    pub route_policy: Plugin,
}

/// Every node's facts and sessions for one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Sorted by node name.
    pub facts: Vec<NodeFacts>,
    /// Per family, one plan per requested node, in the order requested.
    pub nodes: BTreeMap<Family, Vec<NodePlan>>,
}

impl Plan {
    pub fn facts(&self, node: &str) -> Option<&NodeFacts> {
        self.facts.iter().find(|f| f.node == node)
    }
}

impl Roles {
    /// One plugin for every role (the Calico default set).
    pub fn all(plugin: Plugin) -> Self {
        Roles {
            as_assignment: plugin.clone(),
            route_reflection: plugin.clone(),
            peer_selection: plugin.clone(),
            route_policy: plugin,
        }
    }

    /// Check that each plugin fills the role it was given.
    pub fn check(&self) -> Result<(), PluginError> {
        for (plugin, role) in [
            (&self.as_assignment, Role::AsAssignment),
            (&self.route_reflection, Role::RouteReflection),
            (&self.peer_selection, Role::PeerSelection),
            (&self.route_policy, Role::RoutePolicy),
        ] {
            if !plugin.fills(role) {
                return Err(PluginError::MissingRole {
                    plugin: plugin.name().to_owned(),
                    role,
                });
            }
        }
        Ok(())
    }

    /// Plan `nodes` (every node the peer-selection plugin knows when
    /// `None`) in each of `families`. Requested nodes the snapshot does not
    /// know are left out.
    pub fn plan(
        &self,
        objects: &[Object],
        nodes: Option<&[String]>,
        families: &[Family],
    ) -> Result<Plan, PluginError> {
        // One evaluation per distinct plugin: the snapshot is loaded once.
        let mut evaluations: Vec<Evaluation> = Vec::new();
        let mut index = |plugin: &Plugin| -> Result<usize, PluginError> {
            if let Some(i) = evaluations
                .iter()
                .position(|e| Plugin::same(e.plugin(), plugin))
            {
                return Ok(i);
            }
            evaluations.push(plugin.evaluate(objects)?);
            Ok(evaluations.len() - 1)
        };
        let peering = index(&self.peer_selection)?;
        let asn = index(&self.as_assignment)?;
        let rr = index(&self.route_reflection)?;

        let known = evaluations[peering].nodes()?;
        let assigned: BTreeMap<String, u32> = evaluations[asn].assign()?.into_iter().collect();
        let reflectors: BTreeMap<String, String> =
            evaluations[rr].reflectors()?.into_iter().collect();
        let mut facts = Vec::with_capacity(known.len());
        for node in &known {
            let Some(&local_as) = assigned.get(node) else {
                return Err(PluginError::BadAnswer {
                    plugin: self.as_assignment.name().to_owned(),
                    call: "assign",
                    message: format!("no AS for node '{node}'"),
                });
            };
            facts.push(NodeFacts {
                node: node.clone(),
                local_as,
                cluster_id: reflectors.get(node).cloned(),
            });
        }
        // Nodes the snapshot does not know get no plan (a daemon may start
        // before its Node resource exists); callers check `facts`.
        let wanted: Vec<String> = match nodes {
            Some(n) => n.iter().filter(|n| known.contains(n)).cloned().collect(),
            None => known,
        };
        let mut plans = BTreeMap::new();
        for family in families {
            plans.insert(
                *family,
                evaluations[peering].plan(&facts, &wanted, *family)?,
            );
        }
        Ok(Plan {
            facts,
            nodes: plans,
        })
    }
}

/// What [`Policy::update`] produced.
#[derive(Debug)]
pub enum Outcome {
    /// The snapshot planned cleanly.
    Planned(Arc<Plan>),
    /// The snapshot failed; the last good plan (if any) stays in force.
    KeptLastGood {
        error: PluginError,
        plan: Option<Arc<Plan>>,
    },
}

/// Plans snapshots and remembers the last one that worked.
#[derive(Debug)]
pub struct Policy {
    roles: Roles,
    nodes: Option<Vec<String>>,
    families: Vec<Family>,
    last_good: Option<Arc<Plan>>,
}

impl Policy {
    pub fn new(roles: Roles, nodes: Option<Vec<String>>, families: Vec<Family>) -> Self {
        Policy {
            roles,
            nodes,
            families,
            last_good: None,
        }
    }

    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// Swap plugins (after a reload); the last good plan is kept until the
    /// new plugins produce one.
    pub fn set_roles(&mut self, roles: Roles) {
        self.roles = roles;
    }

    pub fn last_good(&self) -> Option<&Arc<Plan>> {
        self.last_good.as_ref()
    }

    pub fn update(&mut self, objects: &[Object]) -> Outcome {
        match self
            .roles
            .plan(objects, self.nodes.as_deref(), &self.families)
        {
            Ok(plan) => {
                let plan = Arc::new(plan);
                self.last_good = Some(plan.clone());
                Outcome::Planned(plan)
            }
            Err(error) => {
                tracing::warn!("keeping the last good plan: {error}");
                Outcome::KeptLastGood {
                    error,
                    plan: self.last_good.clone(),
                }
            }
        }
    }
}

/// A plugin loaded from a file, reloaded when the file changes.
#[derive(Debug)]
pub struct Reloading {
    host: Host,
    name: String,
    path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
    current: Plugin,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Reloading {
    pub fn open(host: &Host, name: &str, path: impl Into<PathBuf>) -> Result<Self, PluginError> {
        let path = path.into();
        let stamp = stamp(&path);
        let current = host.load_file(name, &path)?;
        Ok(Reloading {
            host: host.clone(),
            name: name.to_owned(),
            path,
            stamp,
            current,
        })
    }

    pub fn current(&self) -> &Plugin {
        &self.current
    }

    /// Reload if the file changed. `Ok(true)`: a new build is serving.
    /// `Err`: the new build was refused and the old one keeps serving (the
    /// same broken file is not retried until it changes again).
    pub fn check(&mut self) -> Result<bool, PluginError> {
        let now = stamp(&self.path);
        if now == self.stamp {
            return Ok(false);
        }
        self.stamp = now;
        match self.host.load_file(&self.name, &self.path) {
            Ok(plugin) => {
                tracing::info!(plugin = self.name, path = %self.path.display(), "plugin reloaded");
                self.current = plugin;
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(plugin = self.name, "refusing the changed plugin: {e}");
                self.current.metrics().error(e.kind());
                Err(e)
            }
        }
    }
}
