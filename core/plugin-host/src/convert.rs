//! Conversions between the generated binding types of each contract
//! version and the contract's plain Rust types, which the rest of
//! Starling uses. What every version shares is written once (`shared!`),
//! as is what 0.2 introduced and 0.3 kept (`since_v0_2!`); where a version
//! changed a type, it converts its own.

use starling_contract as sdk;

/// Conversions of the types both versions define alike, for the binding
/// module `crate::bindings::$version`.
macro_rules! shared {
    ($version:ident) => {
        use crate::bindings::$version as b;
        use b::exports::starling::policy::route_policy as rp;
        use b::starling::policy::types as wit;

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

        pub(crate) fn family(f: sdk::Family) -> wit::AddressFamily {
            match f {
                sdk::Family::Ipv4 => wit::AddressFamily::Ipv4,
                sdk::Family::Ipv6 => wit::AddressFamily::Ipv6,
            }
        }

        pub(crate) fn sdk_family(f: wit::AddressFamily) -> sdk::Family {
            match f {
                wit::AddressFamily::Ipv4 => sdk::Family::Ipv4,
                wit::AddressFamily::Ipv6 => sdk::Family::Ipv6,
            }
        }

        fn next_hop(n: wit::NextHopMode) -> sdk::NextHopMode {
            match n {
                wit::NextHopMode::Auto => sdk::NextHopMode::Auto,
                wit::NextHopMode::SetSelf => sdk::NextHopMode::SetSelf,
                wit::NextHopMode::Keep => sdk::NextHopMode::Keep,
            }
        }

        fn secret(r: wit::SecretRef) -> sdk::SecretRef {
            sdk::SecretRef {
                name: r.name,
                key: r.key,
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

        pub(crate) fn prefix(p: &sdk::Prefix) -> wit::Prefix {
            wit::Prefix {
                family: family(p.family),
                high: (p.bits >> 64) as u64,
                low: p.bits as u64,
                length: p.length,
            }
        }

        pub(crate) fn route(r: &sdk::Route) -> rp::Route {
            rp::Route {
                prefix: prefix(&r.prefix),
                attributes: r.attributes,
            }
        }
    };
}

pub(crate) mod v0_1 {
    use super::sdk;
    shared!(v0_1);
    use b::exports::starling::policy::snapshot as snap;

    pub(crate) fn role(r: snap::Role) -> sdk::Role {
        match r {
            snap::Role::AsAssignment => sdk::Role::AsAssignment,
            snap::Role::RouteReflection => sdk::Role::RouteReflection,
            snap::Role::PeerSelection => sdk::Role::PeerSelection,
            snap::Role::RoutePolicy => sdk::Role::RoutePolicy,
        }
    }

    /// 0.1 facts know no identity.
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
            listen_addresses: Vec::new(),
            sessions: p.sessions.into_iter().map(session).collect(),
            warnings: p.warnings,
        }
    }

    /// A 0.1 session carries its own family only.
    fn session(s: wit::Session) -> sdk::Session {
        let family = sdk_family(s.family);
        sdk::Session {
            name: s.name,
            family,
            families: vec![family],
            origin: s.origin,
            peer_ip: s.peer_ip,
            peer_port: s.peer_port,
            peer_as: s.peer_as,
            local_as: s.local_as,
            source_address: s.source_address,
            passive: s.passive,
            rr_client: s.rr_client,
            rr_cluster_id: s.rr_cluster_id,
            password: s.password.map(secret),
            graceful_restart_time: s.graceful_restart_time,
            keepalive_time: s.keepalive_time,
            ttl_security: s.ttl_security,
            next_hop: next_hop(s.next_hop),
            allow_local_as: s.allow_local_as,
            filters: s.filters,
            reachable_by: s.reachable_by,
            ..sdk::Session::default()
        }
    }
}

/// Conversions of the types 0.2 introduced and later versions keep; a
/// version's additions to the node plan and the session are read by the
/// closures given.
macro_rules! since_v0_2 {
    (
        $version:ident,
        listen_addresses: |$p:ident| $listen:expr,
        error_wait_longest: |$s:ident| $longest:expr $(,)?
    ) => {
        use std::net::IpAddr;

        use super::sdk;
        shared!($version);
        use b::exports::starling::policy::node_identity as ni;
        use b::exports::starling::policy::snapshot as snap;

        pub(crate) fn role(r: snap::Role) -> sdk::Role {
            match r {
                snap::Role::AsAssignment => sdk::Role::AsAssignment,
                snap::Role::RouteReflection => sdk::Role::RouteReflection,
                snap::Role::PeerSelection => sdk::Role::PeerSelection,
                snap::Role::RoutePolicy => sdk::Role::RoutePolicy,
                snap::Role::NodeIdentity => sdk::Role::NodeIdentity,
                snap::Role::Origination => sdk::Role::Origination,
            }
        }

        fn node_address(a: &sdk::NodeAddress) -> wit::NodeAddress {
            wit::NodeAddress {
                address: a.address.to_string(),
                prefix_length: a.prefix_length,
            }
        }

        /// A plugin's address, checked: an address that does not parse, or a
        /// prefix length past the family's width, is an unusable answer.
        fn sdk_node_address(a: wit::NodeAddress) -> Result<sdk::NodeAddress, String> {
            let address: IpAddr = a
                .address
                .parse()
                .map_err(|_| format!("'{}' is not an IP address", a.address))?;
            let width = if address.is_ipv4() { 32 } else { 128 };
            if a.prefix_length > width {
                return Err(format!("{}/{} is not a subnet", a.address, a.prefix_length));
            }
            Ok(sdk::NodeAddress {
                address,
                prefix_length: a.prefix_length,
            })
        }

        pub(crate) fn identity(i: ni::Identity) -> Result<sdk::Identity, String> {
            Ok(sdk::Identity {
                node: i.node,
                router_id: i.router_id,
                addresses: i
                    .addresses
                    .into_iter()
                    .map(sdk_node_address)
                    .collect::<Result<_, _>>()?,
            })
        }

        pub(crate) fn facts(f: &sdk::NodeFacts) -> wit::NodeFacts {
            wit::NodeFacts {
                node: f.node.clone(),
                local_as: f.local_as,
                cluster_id: f.cluster_id.clone(),
                router_id: f.router_id.clone(),
                addresses: f.addresses.iter().map(node_address).collect(),
            }
        }

        pub(crate) fn node_plan($p: wit::NodePlan) -> Result<sdk::NodePlan, String> {
            let listen_addresses: Vec<IpAddr> = $listen?;
            let p = $p;
            Ok(sdk::NodePlan {
                node: p.node,
                router_id: p.router_id,
                listen_port: p.listen_port,
                listen_addresses,
                sessions: p
                    .sessions
                    .into_iter()
                    .map(session)
                    .collect::<Result<_, _>>()?,
                warnings: p.warnings,
            })
        }

        /// A session: its own family is its peer address's (IPv6 on an
        /// interface); it must carry at least one family, each once.
        fn session($s: wit::Session) -> Result<sdk::Session, String> {
            let error_wait_longest: Option<u32> = $longest;
            let s = $s;
            let mut families: Vec<sdk::Family> = s.families.into_iter().map(sdk_family).collect();
            families.sort();
            families.dedup();
            if families.is_empty() {
                return Err(format!("session '{}' carries no family", s.name));
            }
            let family = match s.peer_ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => sdk::Family::Ipv4,
                Ok(IpAddr::V6(_)) => sdk::Family::Ipv6,
                Err(_) if s.interface.is_some() && s.peer_ip.is_empty() => sdk::Family::Ipv6,
                Err(_) => {
                    return Err(format!(
                        "session '{}': peer '{}' is not an IP address",
                        s.name, s.peer_ip
                    ));
                }
            };
            Ok(sdk::Session {
                name: s.name,
                family,
                families,
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
                password: s.password.map(secret),
                graceful_restart_time: s.graceful_restart_time,
                keepalive_time: s.keepalive_time,
                ttl_security: s.ttl_security,
                next_hop: next_hop(s.next_hop),
                allow_local_as: s.allow_local_as,
                filters: s.filters,
                reachable_by: s.reachable_by,
                bfd: s.bfd.map(|b| sdk::Bfd {
                    min_rx: b.min_rx,
                    min_tx: b.min_tx,
                    multiplier: b.multiplier,
                }),
                error_wait: s.error_wait,
                error_wait_longest,
            })
        }

        pub(crate) fn originated(o: wit::Originated) -> Result<sdk::Originated, String> {
            let p = o.prefix;
            let prefix = sdk::Prefix {
                family: sdk_family(p.family),
                bits: (u128::from(p.high) << 64) | u128::from(p.low),
                length: p.length,
            };
            let width = prefix.width();
            if prefix.length > width || (width == 32 && prefix.bits >> 32 != 0) {
                return Err(format!("{prefix} is not a prefix"));
            }
            let kernel = match o.kernel {
                wit::KernelRoute::None => sdk::KernelRoute::None,
                wit::KernelRoute::Blackhole => sdk::KernelRoute::Blackhole,
                wit::KernelRoute::Via(gateway) => {
                    sdk::KernelRoute::Via(gateway.parse().map_err(|_| {
                        format!("{prefix}: gateway '{gateway}' is not an IP address")
                    })?)
                }
            };
            Ok(sdk::Originated {
                prefix,
                kernel,
                communities: o.communities,
                large_communities: o.large_communities,
                reason: o.reason,
            })
        }
    };
}

pub(crate) mod v0_2 {
    since_v0_2!(
        v0_2,
        listen_addresses: |p| Ok::<_, String>(Vec::new()),
        error_wait_longest: |s| None,
    );
}

pub(crate) mod v0_3 {
    since_v0_2!(
        v0_3,
        listen_addresses: |p| p
            .listen_addresses
            .iter()
            .map(|a| a
                .parse::<IpAddr>()
                .map_err(|_| format!("listen address '{a}' is not an IP address")))
            .collect::<Result<Vec<_>, String>>(),
        error_wait_longest: |s| s.error_wait_longest,
    );
}
