//! Exports for `starling:policy@0.2.0`, the newest contract.

use std::hash::{Hash, Hasher};

use crate::{
    Identity, KernelRoute, LogLevel, NodeAddress, NodeFacts, NodePlan, Originated, Plugin, Role,
    Session,
};

// A world of the SDK's own that includes the contract's: two worlds named
// `plugin` in one crate would export clashing macros.
wit_bindgen::generate!({
    inline: "package starling:sdk; world plugin-v0-2 { include starling:policy/plugin@0.2.0; }",
    world: "plugin-v0-2",
    path: "../../wit/starling-policy@0.2",
    generate_all,
    pub_export_macro: true,
    export_macro_name: "export_plugin_bindings_v0_2",
    default_bindings_module: "starling_plugin_sdk::wasm::v0_2",
});

use exports::starling::policy::node_identity as ni;
use exports::starling::policy::peer_selection as ps;
use exports::starling::policy::route_policy as rp;
use exports::starling::policy::snapshot as snap;
use starling::policy::log as host_log;
use starling::policy::types as wit;

super::shared_conversions!();

pub(crate) fn log(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Trace => host_log::Level::Trace,
        LogLevel::Debug => host_log::Level::Debug,
        LogLevel::Info => host_log::Level::Info,
        LogLevel::Warn => host_log::Level::Warn,
        LogLevel::Error => host_log::Level::Error,
    };
    host_log::log(level, message);
}

/// A loaded snapshot, as the component's `model` resource, with a digest
/// of the resources it was loaded from (see [`inputs`]).
#[allow(missing_debug_implementations)]
pub struct Loaded<P> {
    plugin: P,
    digest: u64,
}

impl<P: Plugin> snap::GuestModel for Loaded<P> {
    fn load(objects: Vec<wit::Object>) -> Result<snap::Model, Vec<wit::Problem>> {
        super::install_panic_hook();
        let mut objects: Vec<crate::Object> = objects.into_iter().map(object).collect();
        objects.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        let digest = digest(&objects);
        match P::load(objects) {
            Ok(plugin) => Ok(snap::Model::new(Loaded { plugin, digest })),
            Err(problems) => Err(problems.into_iter().map(problem).collect()),
        }
    }

    fn nodes(&self) -> Vec<String> {
        self.plugin.nodes()
    }
}

fn model<'a, P: Plugin>(m: &'a snap::ModelBorrow<'a>) -> &'a P {
    &m.get::<Loaded<P>>().plugin
}

/// The SipHash of the standard library with its fixed keys: the same
/// digest for the same value in every run, which is all a plugin without
/// randomness needs.
fn digest(value: &impl Hash) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    value.hash(&mut h);
    h.finish()
}

pub fn roles<P: Plugin>() -> Vec<snap::Role> {
    P::roles()
        .into_iter()
        .map(|r| match r {
            Role::AsAssignment => snap::Role::AsAssignment,
            Role::RouteReflection => snap::Role::RouteReflection,
            Role::PeerSelection => snap::Role::PeerSelection,
            Role::RoutePolicy => snap::Role::RoutePolicy,
            Role::NodeIdentity => snap::Role::NodeIdentity,
            Role::Origination => snap::Role::Origination,
        })
        .collect()
}

fn wit_address(a: NodeAddress) -> wit::NodeAddress {
    wit::NodeAddress {
        address: a.address.to_string(),
        prefix_length: a.prefix_length,
    }
}

pub fn identify<P: Plugin>(m: snap::ModelBorrow<'_>) -> Vec<ni::Identity> {
    model::<P>(&m)
        .identify()
        .into_iter()
        .map(|i: Identity| ni::Identity {
            node: i.node,
            router_id: i.router_id,
            addresses: i.addresses.into_iter().map(wit_address).collect(),
        })
        .collect()
}

pub fn originate<P: Plugin>(
    m: snap::ModelBorrow<'_>,
    node: String,
) -> Result<Vec<wit::Originated>, String> {
    let originated = model::<P>(&m).originate(&node)?;
    Ok(originated
        .into_iter()
        .map(|o: Originated| wit::Originated {
            prefix: wit::Prefix {
                family: wit_family(o.prefix.family),
                high: (o.prefix.bits >> 64) as u64,
                low: o.prefix.bits as u64,
                length: o.prefix.length,
            },
            kernel: match o.kernel {
                KernelRoute::None => wit::KernelRoute::None,
                KernelRoute::Blackhole => wit::KernelRoute::Blackhole,
                KernelRoute::Via(gateway) => wit::KernelRoute::Via(gateway.to_string()),
            },
            communities: o.communities,
            large_communities: o.large_communities,
            reason: o.reason,
        })
        .collect())
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
                router_id: n.router_id,
                addresses: n
                    .addresses
                    .into_iter()
                    .filter_map(|a| {
                        Some(NodeAddress {
                            address: a.address.parse().ok()?,
                            prefix_length: a.prefix_length,
                        })
                    })
                    .collect(),
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
) -> Result<Vec<wit::NodePlan>, String> {
    let facts = &facts.get::<Facts>().0;
    let plans = model::<P>(&m).plan_all(facts, &nodes)?;
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
        families: s.families.into_iter().map(wit_family).collect(),
        extended_next_hop: s.extended_next_hop,
        origin: s.origin,
        peer_ip: s.peer_ip,
        peer_port: s.peer_port,
        interface: s.interface,
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
        bfd: s.bfd.map(|b| wit::BfdSettings {
            min_rx: b.min_rx,
            min_tx: b.min_tx,
            multiplier: b.multiplier,
        }),
        error_wait: s.error_wait,
    }
}

/// The plugin's digests, or, for a plugin that does not say what its
/// verdicts depend on, a digest of the whole snapshot and the context:
/// any change of either re-evaluates the session.
pub fn inputs<P: Plugin>(
    m: snap::ModelBorrow<'_>,
    contexts: Vec<rp::RouteContext>,
) -> Vec<(u64, u64)> {
    let loaded = m.get::<Loaded<P>>();
    let contexts: Vec<crate::RouteContext> = contexts.into_iter().map(context).collect();
    if let Some(digests) = loaded.plugin.inputs(&contexts) {
        return digests;
    }
    contexts
        .iter()
        .map(|c| {
            let d = digest(&(loaded.digest, c));
            (d, d)
        })
        .collect()
}
