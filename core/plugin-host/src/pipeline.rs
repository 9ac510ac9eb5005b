//! From a resource snapshot to every node's sessions, through the plugins
//! configured for each role, with the fallbacks the core relies on:
//!
//! - [`Roles::plan`] runs AS assignment and route reflection first, hands
//!   their answers to peer selection as facts, and returns the whole plan or
//!   a typed error;
//! - [`Roles::plan_mending`] plans a datastore's snapshot around what the
//!   plugins refuse in it (see [`crate::mend`]): one bad element another
//!   writer left does not cost a node its sessions;
//! - [`Policy`] plans that way and keeps the last plan that succeeded,
//!   serving it when a later snapshot fails (a plugin trapped, timed out,
//!   ran out of memory, or refused what could not be gone around): a
//!   broken plugin or a bad resource never tears down sessions that are
//!   running;
//! - [`Reloading`] watches a plugin file and swaps in a new build only
//!   after it loads and passes its self-test; otherwise the old one keeps
//!   serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use starling_contract::{
    Direction, Identity, NodeFacts, NodePlan, Object, Originated, Problem, Role, RouteContext,
};

use crate::mend::{LastGood, Mender, Skipped};
use crate::{Evaluation, Host, Plugin, PluginError};

/// Rounds of going around refusals before the snapshot is refused: each
/// round leaves something out, so this only bounds a pathological plugin.
const MENDING_ROUNDS: usize = 64;

/// The plugin chosen for each role. One plugin may fill several.
#[derive(Debug, Clone)]
pub struct Roles {
    pub as_assignment: Plugin,
    pub route_reflection: Plugin,
    pub node_identity: Plugin,
    pub peer_selection: Plugin,
    pub origination: Plugin,
    pub route_policy: Plugin,
}

/// Every node's facts, and the requested nodes' sessions, originated
/// prefixes and route-policy inputs, for one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Sorted by node name.
    pub facts: Vec<NodeFacts>,
    /// One plan per requested node, in the order requested; its sessions
    /// carry both families.
    pub nodes: Vec<NodePlan>,
    /// Per requested node, what it originates.
    pub originated: BTreeMap<String, Vec<Originated>>,
    /// Per requested node and session: digests of what the session's
    /// import and export verdicts depend on (see [`Roles::plan`]).
    pub inputs: PolicyInputs,
    /// What the plan went around (see [`Roles::plan_mending`]): `None`
    /// when the snapshot planned as it was.
    pub mended: Option<Mended>,
}

/// A snapshot as planned once the plugins' refusals were gone around.
#[derive(Debug, Clone, PartialEq)]
pub struct Mended {
    /// The resources the plan was made from: the route policy must be
    /// given these, not the snapshot.
    pub objects: Vec<Object>,
    pub skipped: Vec<Skipped>,
}

/// (node, session name) → (import digest, export digest).
pub type PolicyInputs = BTreeMap<(String, String), (u64, u64)>;

impl Plan {
    pub fn facts(&self, node: &str) -> Option<&NodeFacts> {
        self.facts.iter().find(|f| f.node == node)
    }

    pub fn node(&self, node: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|p| p.node == node)
    }
}

impl Roles {
    /// One plugin for every role (the Calico default set).
    pub fn all(plugin: Plugin) -> Self {
        Roles {
            as_assignment: plugin.clone(),
            route_reflection: plugin.clone(),
            node_identity: plugin.clone(),
            peer_selection: plugin.clone(),
            origination: plugin.clone(),
            route_policy: plugin,
        }
    }

    /// Check that each plugin fills the role it was given.
    pub fn check(&self) -> Result<(), PluginError> {
        for (plugin, role) in [
            (&self.as_assignment, Role::AsAssignment),
            (&self.route_reflection, Role::RouteReflection),
            (&self.node_identity, Role::NodeIdentity),
            (&self.peer_selection, Role::PeerSelection),
            (&self.origination, Role::Origination),
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
    /// `None`). Requested nodes the snapshot does not know are left out.
    ///
    /// AS assignment, route reflection and node identity run first and
    /// become the facts peer selection is given; then, per requested node,
    /// its sessions, what it originates, and the route policy's inputs for
    /// each session. A 0.1 route policy cannot say what its verdicts
    /// depend on: its digests cover the whole snapshot, so any change
    /// re-evaluates everything (correct, and as costly as that sounds).
    pub fn plan(&self, objects: &[Object], nodes: Option<&[String]>) -> Result<Plan, PluginError> {
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
        let identity = index(&self.node_identity)?;
        let origination = index(&self.origination)?;
        let policy = index(&self.route_policy)?;

        let known = evaluations[peering].nodes()?;
        let facts = self.facts(&mut evaluations, &known, asn, rr, identity)?;
        // Nodes the snapshot does not know get no plan (a daemon may start
        // before its Node resource exists); callers check `facts`.
        let wanted: Vec<String> = match nodes {
            Some(n) => n.iter().filter(|n| known.contains(n)).cloned().collect(),
            None => known,
        };
        let plans = evaluations[peering].plan(&facts, &wanted)?;
        let mut originated = BTreeMap::new();
        for node in &wanted {
            originated.insert(node.clone(), evaluations[origination].originate(node)?);
        }
        let inputs = policy_inputs(&mut evaluations[policy], objects, &plans)?;
        Ok(Plan {
            facts,
            nodes: plans,
            originated,
            inputs,
            mended: None,
        })
    }

    /// Plan as [`Roles::plan`] does, going around what the plugins refuse
    /// rather than refusing the whole (see [`crate::mend`]): for a
    /// datastore, where other writers put what `starling apply` would
    /// have refused. `last_good` gives each resource's version from the
    /// last snapshot that planned; `unreadable` names stored resources
    /// that could not even be read, which stand in for themselves by that
    /// version if there is one. What was gone around is in
    /// [`Plan::mended`], and each requested node's plan warns of it.
    pub fn plan_mending(
        &self,
        objects: &[Object],
        nodes: Option<&[String]>,
        last_good: &LastGood,
        unreadable: &[Problem],
    ) -> Result<Plan, PluginError> {
        let mut mender = Mender::new(last_good);
        let mut objects = std::borrow::Cow::Borrowed(objects);
        if !unreadable.is_empty() {
            mender.stand_in(objects.to_mut(), unreadable);
        }
        let mut refusal: Option<(String, Vec<Problem>)> = None;
        for _ in 0..MENDING_ROUNDS {
            if let Some((_, problems)) = &refusal
                && !mender.mend(objects.to_mut(), problems)
            {
                break;
            }
            match self.plan(&objects, nodes) {
                Ok(mut plan) => {
                    if !mender.skipped.is_empty() {
                        for node in &mut plan.nodes {
                            node.warnings.extend(
                                mender
                                    .skipped
                                    .iter()
                                    .map(|s| format!("left out of the plan: {s}")),
                            );
                        }
                        plan.mended = Some(Mended {
                            objects: objects.into_owned(),
                            skipped: mender.skipped,
                        });
                    }
                    return Ok(plan);
                }
                Err(PluginError::Invalid { plugin, problems }) => {
                    refusal = Some((plugin, problems));
                }
                Err(e) => return Err(e),
            }
        }
        let (plugin, problems) = refusal.unwrap_or_default();
        Err(PluginError::Invalid { plugin, problems })
    }

    /// Every known node's AS, reflector role and identity.
    fn facts(
        &self,
        evaluations: &mut [Evaluation],
        known: &[String],
        asn: usize,
        rr: usize,
        identity: usize,
    ) -> Result<Vec<NodeFacts>, PluginError> {
        let assigned: BTreeMap<String, u32> = evaluations[asn].assign()?.into_iter().collect();
        let reflectors: BTreeMap<String, String> =
            evaluations[rr].reflectors()?.into_iter().collect();
        let mut identities: BTreeMap<String, Identity> = evaluations[identity]
            .identify()?
            .into_iter()
            .map(|i| (i.node.clone(), i))
            .collect();
        let mut facts = Vec::with_capacity(known.len());
        for node in known {
            let Some(&local_as) = assigned.get(node) else {
                return Err(PluginError::BadAnswer {
                    plugin: self.as_assignment.name().to_owned(),
                    call: "assign",
                    message: format!("no AS for node '{node}'"),
                });
            };
            let identity = identities.remove(node).unwrap_or_default();
            facts.push(NodeFacts {
                node: node.clone(),
                local_as,
                cluster_id: reflectors.get(node).cloned(),
                router_id: identity.router_id,
                addresses: identity.addresses,
            });
        }
        Ok(facts)
    }
}

/// The route policy's digests for every planned session, keyed by node
/// and session name.
fn policy_inputs(
    evaluation: &mut Evaluation,
    objects: &[Object],
    plans: &[NodePlan],
) -> Result<PolicyInputs, PluginError> {
    let mut keys = Vec::new();
    let mut contexts = Vec::new();
    for plan in plans {
        for s in &plan.sessions {
            keys.push((plan.node.clone(), s.name.clone()));
            contexts.push(RouteContext {
                node: plan.node.clone(),
                session: s.name.clone(),
                family: s.family,
                direction: Direction::Import,
                peer_as: s.peer_as,
                local_as: s.local_as,
                filters: s.filters.clone(),
            });
        }
    }
    let digests = match evaluation.inputs(&contexts)? {
        Some(digests) => digests,
        None => {
            let everything = snapshot_digest(objects);
            contexts
                .iter()
                .map(|c| {
                    let d = digest(&(everything, c));
                    (d, d)
                })
                .collect()
        }
    };
    Ok(keys.into_iter().zip(digests).collect())
}

/// A digest of every resource, for a plugin that cannot say which ones
/// its verdicts depend on.
fn snapshot_digest(objects: &[Object]) -> u64 {
    let mut sorted: Vec<&Object> = objects.iter().collect();
    sorted.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    digest(&sorted)
}

fn digest(value: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    // Compared within one process only: any stable hasher will do.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
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
    last_good: Option<Arc<Plan>>,
    /// The resources of the last snapshot that planned, as planned.
    last_good_objects: LastGood,
}

impl Policy {
    pub fn new(roles: Roles, nodes: Option<Vec<String>>) -> Self {
        Policy {
            roles,
            nodes,
            last_good: None,
            last_good_objects: LastGood::new(),
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

    /// Plan a datastore snapshot, going around what the plugins refuse
    /// in it (see [`Roles::plan_mending`]).
    pub fn update(&mut self, objects: &[Object]) -> Outcome {
        self.update_with(objects, &[])
    }

    /// [`Policy::update`], for a snapshot that could not read `unreadable`.
    pub fn update_with(&mut self, objects: &[Object], unreadable: &[Problem]) -> Outcome {
        let planned = self.roles.plan_mending(
            objects,
            self.nodes.as_deref(),
            &self.last_good_objects,
            unreadable,
        );
        match planned {
            Ok(plan) => {
                let planned_from = plan.mended.as_ref().map_or(objects, |m| &m.objects);
                self.last_good_objects = planned_from
                    .iter()
                    .map(|o| ((o.kind.clone(), o.name.clone()), o.clone()))
                    .collect();
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
        self.check_for_roles(&[])
    }

    /// [`Reloading::check`] for a plugin that serves `roles`: a new build
    /// that no longer fills one of them is refused before it is swapped
    /// in, like one that does not load.
    pub fn check_for_roles(&mut self, roles: &[Role]) -> Result<bool, PluginError> {
        let now = stamp(&self.path);
        if now == self.stamp {
            return Ok(false);
        }
        self.stamp = now;
        let loaded = self
            .host
            .load_file(&self.name, &self.path)
            .and_then(
                |plugin| match roles.iter().find(|role| !plugin.fills(**role)) {
                    Some(role) => Err(PluginError::MissingRole {
                        plugin: plugin.name().to_owned(),
                        role: *role,
                    }),
                    None => Ok(plugin),
                },
            );
        match loaded {
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
