//! The planner: a datastore snapshot in, this node's plan out — its AS,
//! router id and cluster id, its addresses, the sessions it should have,
//! what it originates, and the route policy plugin with the resources it
//! decides on and what its decisions depend on. Everything comes from
//! the plugins: the daemon reads no resource itself. The plugins run on a
//! blocking thread, never on the tasks that drive BGP sessions; a
//! snapshot they refuse leaves the last good plan running.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use starling_plugin_host::Plugin;
use starling_plugin_host::contract::{Object, Originated, Problem, Session};
use starling_plugin_host::mend::Skipped;
use starling_plugin_host::pipeline::{Outcome, Policy, Roles};
use starling_speaker::rib::RibConfig;
use starling_store::{ResourceSet, to_object};

/// This node's plan for one snapshot.
#[derive(Debug)]
pub(super) struct Planned {
    /// The resources the plan was made from (Secrets are not among them):
    /// the snapshot, less what the plugins refused in it.
    pub(super) objects: Vec<Object>,
    /// What the plan left out of the snapshot.
    pub(super) skipped: Vec<Skipped>,
    /// The plugins' warnings about this node's plan, those included.
    pub(super) warnings: Vec<String>,
    /// How many nodes of the cluster reflect routes.
    pub(super) reflectors: usize,
    /// The Secrets, for session passwords.
    pub(super) secrets: ResourceSet,
    pub(super) rib: RibConfig,
    /// Where the plan asks this node to accept connections.
    pub(super) listen: Listen,
    /// The sessions of this node, both families.
    pub(super) sessions: Vec<Session>,
    pub(super) route_plugin: Plugin,
    /// Per session name, digests of what the route policy's import and
    /// export verdicts for it depend on.
    pub(super) policy_inputs: BTreeMap<String, (u64, u64)>,
    /// What this node originates.
    pub(super) originated: Vec<Originated>,
    /// This node's addresses with their subnets, for third-party next
    /// hops on them.
    pub(super) subnets: Vec<(IpAddr, u8)>,
    /// Every node's addresses: sessions to them are the cluster's own.
    pub(super) node_addresses: HashSet<IpAddr>,
}

/// The port and addresses a plan asks its node to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listen {
    pub(super) port: u16,
    /// Empty: every address.
    pub(super) addresses: Vec<IpAddr>,
}

/// Why a snapshot brought no new plan; the last one keeps running.
#[derive(Debug)]
pub(super) enum NoPlan {
    /// The plugins refused the snapshot.
    Refused(String),
    /// No Node resource names this node yet.
    UnknownNode,
    /// No router id configured, and the node has no IPv4 address.
    NoRouterId,
}

#[derive(Debug)]
pub(super) struct Planner {
    /// Taken while the plugins run on their blocking thread.
    policy: Option<Policy>,
    node: String,
    /// The configured router id, over the one the plan derives.
    router_id: Option<Ipv4Addr>,
}

impl Planner {
    pub(super) fn new(roles: Roles, node: String, router_id: Option<Ipv4Addr>) -> Self {
        let policy = Policy::new(roles, Some(vec![node.clone()]));
        Self {
            policy: Some(policy),
            node,
            router_id,
        }
    }

    /// Plan with these plugins from now on.
    pub(super) fn set_roles(&mut self, roles: Roles) {
        if let Some(policy) = &mut self.policy {
            policy.set_roles(roles);
        }
    }

    /// Plan `docs`, the datastore's whole content but for `unreadable`.
    pub(super) async fn plan(
        &mut self,
        docs: &[serde_json::Value],
        unreadable: Vec<Problem>,
    ) -> anyhow::Result<Result<Planned, NoPlan>> {
        let mut secrets = ResourceSet::default();
        let objects: Vec<Object> = docs
            .iter()
            .filter(|d| {
                if d["kind"] == "Secret" {
                    let _ = secrets.add_secret(d);
                    false
                } else {
                    true
                }
            })
            .map(to_object)
            .collect();
        let mut policy = self
            .policy
            .take()
            .ok_or_else(|| anyhow::anyhow!("the plugins failed on an earlier snapshot"))?;
        let (policy, outcome, objects) = tokio::task::spawn_blocking(move || {
            let outcome = policy.update_with(&objects, &unreadable);
            (policy, outcome, objects)
        })
        .await?;
        let route_plugin = policy.roles().route_policy.clone();
        self.policy = Some(policy);
        let plan = match outcome {
            Outcome::Planned(plan) => plan,
            Outcome::KeptLastGood { error, .. } => {
                return Ok(Err(NoPlan::Refused(error.to_string())));
            }
        };
        let (Some(facts), Some(node_plan)) = (plan.facts(&self.node), plan.node(&self.node)) else {
            return Ok(Err(NoPlan::UnknownNode));
        };
        let router_id = self.router_id.or_else(|| {
            [&node_plan.router_id, &facts.router_id]
                .into_iter()
                .find_map(|id| id.as_deref()?.parse().ok())
        });
        let Some(router_id) = router_id else {
            return Ok(Err(NoPlan::NoRouterId));
        };
        let mut rib = RibConfig::new(facts.local_as, router_id);
        rib.cluster_id = facts.cluster_id.as_deref().and_then(|c| c.parse().ok());
        let policy_inputs = plan
            .inputs
            .iter()
            .filter(|((node, _), _)| *node == self.node)
            .map(|((_, session), digests)| (session.clone(), *digests))
            .collect();
        let (objects, skipped) = match &plan.mended {
            Some(m) => (m.objects.clone(), m.skipped.clone()),
            None => (objects, Vec::new()),
        };
        Ok(Ok(Planned {
            objects,
            skipped,
            warnings: node_plan.warnings.clone(),
            reflectors: plan.facts.iter().filter(|f| f.cluster_id.is_some()).count(),
            secrets,
            rib,
            listen: Listen {
                port: node_plan.listen_port.unwrap_or(179),
                addresses: node_plan.listen_addresses.clone(),
            },
            sessions: node_plan.sessions.clone(),
            route_plugin,
            policy_inputs,
            originated: plan.originated.get(&self.node).cloned().unwrap_or_default(),
            subnets: facts
                .addresses
                .iter()
                .map(|a| (a.address, a.prefix_length))
                .collect(),
            node_addresses: plan
                .facts
                .iter()
                .flat_map(|f| f.addresses.iter().map(|a| a.address))
                .collect(),
        }))
    }
}
