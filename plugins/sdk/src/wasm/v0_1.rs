//! Exports for `starling:policy@0.1.0`: a plugin written against the
//! newest SDK, answering as 0.1 did (a plan per family, no node identity,
//! no origination, no policy inputs).

use crate::{NodeFacts, NodePlan, Plugin, Role, Session};

// A world of the SDK's own that includes the contract's: two worlds named
// `plugin` in one crate would export clashing macros.
wit_bindgen::generate!({
    inline: "package starling:sdk; world plugin-v0-1 { include starling:policy/plugin@0.1.0; }",
    world: "plugin-v0-1",
    path: "../../wit/starling-policy",
    generate_all,
    pub_export_macro: true,
    export_macro_name: "export_plugin_bindings_v0_1",
    default_bindings_module: "starling_plugin_sdk::wasm::v0_1",
});

use exports::starling::policy::peer_selection as ps;
use exports::starling::policy::route_policy as rp;
use exports::starling::policy::snapshot as snap;
use starling::policy::log as host_log;
use starling::policy::types as wit;

super::shared_conversions!();

/// A loaded snapshot, as the component's `model` resource.
#[allow(missing_debug_implementations)]
pub struct Loaded<P>(P);

impl<P: Plugin> snap::GuestModel for Loaded<P> {
    fn load(objects: Vec<wit::Object>) -> Result<snap::Model, Vec<wit::Problem>> {
        super::speaking(1);
        super::install_panic_hook();
        match P::load(objects.into_iter().map(object).collect()) {
            Ok(p) => Ok(snap::Model::new(Loaded(p))),
            Err(problems) => Err(problems.into_iter().map(problem).collect()),
        }
    }

    fn nodes(&self) -> Vec<String> {
        self.0.nodes()
    }
}

fn model<'a, P: Plugin>(m: &'a snap::ModelBorrow<'a>) -> &'a P {
    &m.get::<Loaded<P>>().0
}

/// The roles 0.1 can name.
pub fn roles<P: Plugin>() -> Vec<snap::Role> {
    super::speaking(1);
    P::roles()
        .into_iter()
        .filter_map(|r| match r {
            Role::AsAssignment => Some(snap::Role::AsAssignment),
            Role::RouteReflection => Some(snap::Role::RouteReflection),
            Role::PeerSelection => Some(snap::Role::PeerSelection),
            Role::RoutePolicy => Some(snap::Role::RoutePolicy),
            Role::NodeIdentity | Role::Origination => None,
        })
        .collect()
}

/// The `facts` resource: node facts, sorted by node name once.
#[derive(Debug)]
pub struct Facts(Vec<NodeFacts>);

impl ps::GuestFacts for Facts {
    fn new(facts: Vec<wit::NodeFacts>) -> Self {
        let mut facts: Vec<NodeFacts> = facts
            .into_iter()
            .map(|n| NodeFacts {
                node: n.node,
                local_as: n.local_as,
                cluster_id: n.cluster_id,
                ..NodeFacts::default()
            })
            .collect();
        facts.sort_by(|a, b| a.node.cmp(&b.node));
        Facts(facts)
    }
}

pub fn plan<P: Plugin>(
    m: snap::ModelBorrow<'_>,
    facts: ps::FactsBorrow<'_>,
    nodes: Vec<String>,
    f: wit::AddressFamily,
) -> Result<Vec<wit::NodePlan>, String> {
    let facts = &facts.get::<Facts>().0;
    let plans = model::<P>(&m).plan(facts, &nodes, family(f))?;
    Ok(plans.into_iter().map(node_plan).collect())
}

fn node_plan(p: NodePlan) -> wit::NodePlan {
    wit::NodePlan {
        node: p.node,
        router_id: p.router_id,
        listen_port: p.listen_port,
        sessions: p.sessions.into_iter().map(session).collect(),
        warnings: p.warnings,
    }
}

fn session(s: Session) -> wit::Session {
    wit::Session {
        name: s.name,
        family: wit_family(s.family),
        origin: s.origin,
        peer_ip: s.peer_ip,
        peer_port: s.peer_port,
        peer_as: s.peer_as,
        local_as: s.local_as,
        source_address: s.source_address,
        passive: s.passive,
        rr_client: s.rr_client,
        rr_cluster_id: s.rr_cluster_id,
        password: s.password.map(wit_secret),
        graceful_restart_time: s.graceful_restart_time,
        keepalive_time: s.keepalive_time,
        ttl_security: s.ttl_security,
        next_hop: wit_next_hop(s.next_hop),
        allow_local_as: s.allow_local_as,
        filters: s.filters,
        reachable_by: s.reachable_by,
    }
}
