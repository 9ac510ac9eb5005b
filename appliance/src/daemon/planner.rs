//! The planner: a datastore snapshot in, this node's plan out — its AS,
//! router id and cluster id, the sessions it should have, and the route
//! policy plugin with the resources it decides on. The plugins run on a
//! blocking thread, never on the tasks that drive BGP sessions; a
//! snapshot they refuse leaves the last good plan running.

use std::net::Ipv4Addr;

use starling_plugin_host::Plugin;
use starling_plugin_host::contract::{Family, Object, Session};
use starling_plugin_host::pipeline::{Outcome, Policy, Roles};
use starling_speaker::rib::RibConfig;
use starling_store::{ResourceSet, to_object};

/// This node's plan for one snapshot.
#[derive(Debug)]
pub(super) struct Planned {
    /// The resources the plugins saw (Secrets are not among them).
    pub(super) objects: Vec<Object>,
    /// The Secrets, for session passwords.
    pub(super) secrets: ResourceSet,
    pub(super) rib: RibConfig,
    pub(super) listen_port: u16,
    /// The sessions of this node, both families.
    pub(super) sessions: Vec<Session>,
    pub(super) route_plugin: Plugin,
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
        let policy = Policy::new(
            roles,
            Some(vec![node.clone()]),
            vec![Family::Ipv4, Family::Ipv6],
        );
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

    /// Plan `docs`, the datastore's whole content.
    pub(super) async fn plan(
        &mut self,
        docs: &[serde_json::Value],
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
            let outcome = policy.update(&objects);
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
        let Some(facts) = plan.facts(&self.node) else {
            return Ok(Err(NoPlan::UnknownNode));
        };
        let node_plans: Vec<_> = plan
            .nodes
            .values()
            .filter_map(|plans| plans.first())
            .collect();
        let router_id = self.router_id.or_else(|| {
            node_plans
                .iter()
                .find_map(|p| p.router_id.as_deref()?.parse().ok())
        });
        let Some(router_id) = router_id else {
            return Ok(Err(NoPlan::NoRouterId));
        };
        let mut rib = RibConfig::new(facts.local_as, router_id);
        rib.cluster_id = facts.cluster_id.as_deref().and_then(|c| c.parse().ok());
        Ok(Ok(Planned {
            objects,
            secrets,
            rib,
            listen_port: node_plans.iter().find_map(|p| p.listen_port).unwrap_or(179),
            sessions: node_plans
                .iter()
                .flat_map(|p| p.sessions.iter().cloned())
                .collect(),
            route_plugin,
        }))
    }
}
