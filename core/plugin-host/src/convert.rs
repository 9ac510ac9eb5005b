//! Conversions between the generated binding types and the SDK's plain
//! Rust types, which the rest of Starling uses.

use starling_contract as sdk;

use crate::bindings::exports::starling::policy::route_policy as rp;
use crate::bindings::exports::starling::policy::snapshot as snap;
use crate::bindings::starling::policy::types as wit;

pub(crate) fn object(o: &sdk::Object) -> wit::Object {
    wit::Object {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        name: o.name.clone(),
        labels: o
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        spec: o.spec.clone(),
    }
}

pub(crate) fn problem(p: wit::Problem) -> sdk::Problem {
    sdk::Problem {
        kind: p.kind,
        name: p.name,
        field: p.field,
        reason: p.reason,
    }
}

pub(crate) fn role(r: snap::Role) -> sdk::Role {
    match r {
        snap::Role::AsAssignment => sdk::Role::AsAssignment,
        snap::Role::RouteReflection => sdk::Role::RouteReflection,
        snap::Role::PeerSelection => sdk::Role::PeerSelection,
        snap::Role::RoutePolicy => sdk::Role::RoutePolicy,
    }
}

pub(crate) fn family(f: sdk::Family) -> wit::AddressFamily {
    match f {
        sdk::Family::Ipv4 => wit::AddressFamily::Ipv4,
        sdk::Family::Ipv6 => wit::AddressFamily::Ipv6,
    }
}

fn sdk_family(f: wit::AddressFamily) -> sdk::Family {
    match f {
        wit::AddressFamily::Ipv4 => sdk::Family::Ipv4,
        wit::AddressFamily::Ipv6 => sdk::Family::Ipv6,
    }
}

pub(crate) fn facts(f: &sdk::NodeFacts) -> wit::NodeFacts {
    wit::NodeFacts {
        node: f.node.clone(),
        local_as: f.local_as,
        cluster_id: f.cluster_id.clone(),
    }
}

pub(crate) fn node_plan(p: wit::NodePlan) -> sdk::NodePlan {
    sdk::NodePlan {
        node: p.node,
        router_id: p.router_id,
        listen_port: p.listen_port,
        sessions: p.sessions.into_iter().map(session).collect(),
        warnings: p.warnings,
    }
}

fn session(s: wit::Session) -> sdk::Session {
    sdk::Session {
        name: s.name,
        family: sdk_family(s.family),
        origin: s.origin,
        peer_ip: s.peer_ip,
        peer_port: s.peer_port,
        peer_as: s.peer_as,
        local_as: s.local_as,
        source_address: s.source_address,
        passive: s.passive,
        rr_client: s.rr_client,
        rr_cluster_id: s.rr_cluster_id,
        password: s.password.map(|r| sdk::SecretRef {
            name: r.name,
            key: r.key,
        }),
        graceful_restart_time: s.graceful_restart_time,
        keepalive_time: s.keepalive_time,
        ttl_security: s.ttl_security,
        next_hop: match s.next_hop {
            wit::NextHopMode::Auto => sdk::NextHopMode::Auto,
            wit::NextHopMode::SetSelf => sdk::NextHopMode::SetSelf,
            wit::NextHopMode::Keep => sdk::NextHopMode::Keep,
        },
        allow_local_as: s.allow_local_as,
        filters: s.filters,
        reachable_by: s.reachable_by,
    }
}

pub(crate) fn attributes(a: &sdk::Attributes) -> wit::Attributes {
    wit::Attributes {
        as_path: a.as_path.clone(),
        communities: a.communities.clone(),
        large_communities: a.large_communities.clone(),
        local_pref: a.local_pref,
        from_peer: a.from_peer,
        interface: a.interface.clone(),
    }
}

pub(crate) fn sdk_attributes(a: wit::Attributes) -> sdk::Attributes {
    sdk::Attributes {
        as_path: a.as_path,
        communities: a.communities,
        large_communities: a.large_communities,
        local_pref: a.local_pref,
        from_peer: a.from_peer,
        interface: a.interface,
    }
}

pub(crate) fn context(c: &sdk::RouteContext) -> rp::RouteContext {
    rp::RouteContext {
        node: c.node.clone(),
        session: c.session.clone(),
        family: family(c.family),
        direction: match c.direction {
            sdk::Direction::Import => rp::Direction::Import,
            sdk::Direction::Export => rp::Direction::Export,
        },
        peer_as: c.peer_as,
        local_as: c.local_as,
        filters: c.filters.clone(),
    }
}

pub(crate) fn route(r: &sdk::Route) -> rp::Route {
    rp::Route {
        prefix: wit::Prefix {
            family: family(r.prefix.family),
            high: (r.prefix.bits >> 64) as u64,
            low: r.prefix.bits as u64,
            length: r.prefix.length,
        },
        attributes: r.attributes,
    }
}
