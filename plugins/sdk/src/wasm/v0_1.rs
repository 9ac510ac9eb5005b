//! The `wasm32` side of the SDK: generated bindings and the conversions
//! between them and the plain Rust types plugins are written against.

use crate::{
    Attributes, Direction, Family, LogLevel, NextHopMode, NodeFacts, NodePlan, Object, Plugin,
    Prefix, Problem, Role, Route, RouteContext, SecretRef, Session,
};

wit_bindgen::generate!({
    world: "plugin",
    path: "../../wit/starling-policy",
    pub_export_macro: true,
    export_macro_name: "export_plugin_bindings",
    default_bindings_module: "starling_plugin_sdk::wasm",
});

use exports::starling::policy::peer_selection as ps;
use exports::starling::policy::route_policy as rp;
use exports::starling::policy::snapshot as snap;
use starling::policy::log as host_log;
use starling::policy::types as wit;

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

/// A loaded snapshot, as the component's `model` resource.
#[allow(missing_debug_implementations)]
pub struct Loaded<P>(P);

impl<P: Plugin> snap::GuestModel for Loaded<P> {
    fn load(objects: Vec<wit::Object>) -> Result<snap::Model, Vec<wit::Problem>> {
        install_panic_hook();
        let objects = objects
            .into_iter()
            .map(|o| Object {
                api_version: o.api_version,
                kind: o.kind,
                name: o.name,
                labels: o.labels.into_iter().collect(),
                spec: o.spec,
            })
            .collect();
        match P::load(objects) {
            Ok(p) => Ok(snap::Model::new(Loaded(p))),
            Err(problems) => Err(problems.into_iter().map(problem).collect()),
        }
    }

    fn nodes(&self) -> Vec<String> {
        self.0.nodes()
    }
}

/// Send panic messages to the host log before the trap, so a plugin bug
/// is reported with its reason rather than as a bare `unreachable`.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            host_log::log(host_log::Level::Error, &format!("plugin panicked: {info}"));
        }));
    });
}

fn problem(p: Problem) -> wit::Problem {
    wit::Problem {
        kind: p.kind,
        name: p.name,
        field: p.field,
        reason: p.reason,
    }
}

fn model<'a, P: Plugin>(m: &'a snap::ModelBorrow<'a>) -> &'a P {
    &m.get::<Loaded<P>>().0
}

pub fn roles<P: Plugin>() -> Vec<snap::Role> {
    P::roles()
        .into_iter()
        .map(|r| match r {
            Role::AsAssignment => snap::Role::AsAssignment,
            Role::RouteReflection => snap::Role::RouteReflection,
            Role::PeerSelection => snap::Role::PeerSelection,
            Role::RoutePolicy => snap::Role::RoutePolicy,
        })
        .collect()
}

pub fn assign<P: Plugin>(m: snap::ModelBorrow<'_>) -> Vec<(String, u32)> {
    model::<P>(&m).assign()
}

pub fn reflectors<P: Plugin>(m: snap::ModelBorrow<'_>) -> Vec<(String, String)> {
    model::<P>(&m).reflectors()
}

fn family(f: wit::AddressFamily) -> Family {
    match f {
        wit::AddressFamily::Ipv4 => Family::Ipv4,
        wit::AddressFamily::Ipv6 => Family::Ipv6,
    }
}

fn wit_family(f: Family) -> wit::AddressFamily {
    match f {
        Family::Ipv4 => wit::AddressFamily::Ipv4,
        Family::Ipv6 => wit::AddressFamily::Ipv6,
    }
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
        password: s
            .password
            .map(|SecretRef { name, key }| wit::SecretRef { name, key }),
        graceful_restart_time: s.graceful_restart_time,
        keepalive_time: s.keepalive_time,
        ttl_security: s.ttl_security,
        next_hop: match s.next_hop {
            NextHopMode::Auto => wit::NextHopMode::Auto,
            NextHopMode::SetSelf => wit::NextHopMode::SetSelf,
            NextHopMode::Keep => wit::NextHopMode::Keep,
        },
        allow_local_as: s.allow_local_as,
        filters: s.filters,
        reachable_by: s.reachable_by,
    }
}

fn attributes(a: wit::Attributes) -> Attributes {
    Attributes {
        as_path: a.as_path,
        communities: a.communities,
        large_communities: a.large_communities,
        local_pref: a.local_pref,
        from_peer: a.from_peer,
        interface: a.interface,
    }
}

fn wit_attributes(a: Attributes) -> wit::Attributes {
    wit::Attributes {
        as_path: a.as_path,
        communities: a.communities,
        large_communities: a.large_communities,
        local_pref: a.local_pref,
        from_peer: a.from_peer,
        interface: a.interface,
    }
}

pub fn evaluate<P: Plugin>(
    m: snap::ModelBorrow<'_>,
    c: rp::RouteContext,
    sets: Vec<wit::Attributes>,
    routes: Vec<rp::Route>,
) -> rp::Verdicts {
    let context = RouteContext {
        node: c.node,
        session: c.session,
        family: family(c.family),
        direction: match c.direction {
            rp::Direction::Import => Direction::Import,
            rp::Direction::Export => Direction::Export,
        },
        peer_as: c.peer_as,
        local_as: c.local_as,
        filters: c.filters,
    };
    let sets: Vec<Attributes> = sets.into_iter().map(attributes).collect();
    let routes: Vec<Route> = routes
        .into_iter()
        .map(|r| Route {
            prefix: Prefix {
                family: family(r.prefix.family),
                bits: (u128::from(r.prefix.high) << 64) | u128::from(r.prefix.low),
                length: r.prefix.length,
            },
            attributes: r.attributes,
        })
        .collect();
    let v = model::<P>(&m).evaluate(&context, &sets, &routes);
    rp::Verdicts {
        outcome: v.outcome,
        changed: v.changed.into_iter().map(wit_attributes).collect(),
    }
}
