//! Calico's BGP model as Starling's default plugin: AS assignment, the
//! route-reflector role, peer selection and route policy exactly as
//! `calico-model.md` (in `../shared/design`) describes Calico, field by
//! field.
//!
//! The logic is plain Rust over [`model::Model`], so it is tested natively;
//! built for `wasm32-wasip2` the same crate is the embedded default plugin.

pub mod model;
pub mod peering;
pub mod policy;
pub mod values;

use starling_plugin_sdk::{
    AsAssignment, Attributes, Family, NodeFacts, NodePlan, Object, PeerSelection, Problem, Role,
    Route, RouteContext, RoutePolicy, RouteReflection, Snapshot, Verdicts,
};

pub use model::Model;

/// The plugin: a loaded, validated Calico resource set.
#[derive(Debug)]
pub struct Calico {
    pub model: Model,
}

impl Calico {
    /// Every node's facts as this plugin alone decides them, for callers
    /// that run it natively (tests, benchmarks); the host composes facts
    /// from whichever plugins fill the roles.
    pub fn facts(&self) -> Vec<NodeFacts> {
        let reflectors: std::collections::BTreeMap<String, String> =
            self.reflectors().into_iter().collect();
        self.assign()
            .into_iter()
            .map(|(node, local_as)| NodeFacts {
                cluster_id: reflectors.get(&node).cloned(),
                node,
                local_as,
            })
            .collect()
    }
}

impl Snapshot for Calico {
    fn load(objects: Vec<Object>) -> Result<Self, Vec<Problem>> {
        Model::load(&objects).map(|model| Calico { model })
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

impl RoutePolicy for Calico {
    fn evaluate(&self, context: &RouteContext, sets: &[Attributes], routes: &[Route]) -> Verdicts {
        policy::evaluate(&self.model, context, sets, routes)
    }
}

starling_plugin_sdk::export_plugin!(Calico);
