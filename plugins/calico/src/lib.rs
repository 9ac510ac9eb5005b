//! Calico's BGP model as Starling's default plugin: AS assignment, the
//! route-reflector role, peer selection and route policy exactly as
//! `calico-model.md` (in `../shared/design`) describes Calico, field by
//! field.
//!
//! The logic is plain Rust over [`model::Model`], so it is tested natively;
//! built for `wasm32-wasip2` the same crate is the embedded default plugin.

#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod model;
pub mod peering;
pub mod policy;
pub mod values;

use starling_plugin_sdk::{
    AsAssignment, Attributes, Family, Identity, NodeFacts, NodeIdentity, NodePlan, Object,
    Originated, Origination, PeerSelection, Problem, Role, Route, RouteContext, RoutePolicy,
    RouteReflection, Snapshot, Verdicts,
};

pub use model::Model;

/// The plugin: a loaded, validated Calico resource set.
#[derive(Debug)]
pub struct Calico {
    pub model: Model,
    /// What the route policy's verdicts depend on.
    pub policy_basis: identity::PolicyBasis,
}

impl Calico {
    /// Every node's facts as this plugin alone decides them, for callers
    /// that run it natively (tests, benchmarks); the host composes facts
    /// from whichever plugins fill the roles.
    pub fn facts(&self) -> Vec<NodeFacts> {
        let reflectors: std::collections::BTreeMap<String, String> =
            self.reflectors().into_iter().collect();
        let mut identities: std::collections::BTreeMap<String, Identity> = self
            .identify()
            .into_iter()
            .map(|i| (i.node.clone(), i))
            .collect();
        self.assign()
            .into_iter()
            .map(|(node, local_as)| {
                let identity = identities.remove(&node).unwrap_or_default();
                NodeFacts {
                    cluster_id: reflectors.get(&node).cloned(),
                    router_id: identity.router_id,
                    addresses: identity.addresses,
                    node,
                    local_as,
                }
            })
            .collect()
    }
}

impl Snapshot for Calico {
    fn load(objects: Vec<Object>) -> Result<Self, Vec<Problem>> {
        let model = Model::load(&objects)?;
        Ok(Calico {
            model,
            policy_basis: identity::PolicyBasis::of(&objects),
        })
    }

    fn nodes(&self) -> Vec<String> {
        self.model.nodes.keys().cloned().collect()
    }

    fn roles() -> Vec<Role> {
        vec![
            Role::AsAssignment,
            Role::RouteReflection,
            Role::PeerSelection,
            Role::RoutePolicy,
            Role::NodeIdentity,
            Role::Origination,
        ]
    }
}

impl AsAssignment for Calico {
    /// The node's own `asNumber`, else the `default` BGPConfiguration's,
    /// else 64512.
    fn assign(&self) -> Vec<(String, u32)> {
        let default = self.model.config.default_as();
        self.model
            .nodes
            .values()
            .map(|n| (n.name.clone(), n.asn.unwrap_or(default)))
            .collect()
    }
}

impl RouteReflection for Calico {
    /// Nodes with a `routeReflectorClusterID`.
    fn reflectors(&self) -> Vec<(String, String)> {
        self.model
            .nodes
            .values()
            .filter_map(|n| Some((n.name.clone(), n.cluster_id.clone()?)))
            .collect()
    }
}

impl PeerSelection for Calico {
    fn plan(
        &self,
        facts: &[NodeFacts],
        nodes: &[String],
        family: Family,
    ) -> Result<Vec<NodePlan>, String> {
        let planner = peering::Planner::new(&self.model, facts, family);
        nodes
            .iter()
            .map(|name| match self.model.nodes.get(name) {
                Some(node) => Ok(planner.plan(node)),
                None => Err(format!("no Node named '{name}'")),
            })
            .collect()
    }
}

impl NodeIdentity for Calico {
    fn identify(&self) -> Vec<Identity> {
        identity::identify(&self.model)
    }
}

impl Origination for Calico {
    fn originate(&self, node: &str) -> Result<Vec<Originated>, String> {
        Ok(identity::originate(&self.model, node))
    }
}

impl RoutePolicy for Calico {
    fn evaluate(&self, context: &RouteContext, sets: &[Attributes], routes: &[Route]) -> Verdicts {
        policy::evaluate(&self.model, context, sets, routes)
    }

    fn inputs(&self, contexts: &[RouteContext]) -> Option<Vec<(u64, u64)>> {
        Some(self.policy_basis.inputs(contexts))
    }
}

starling_plugin_sdk::export_plugin!(Calico);
