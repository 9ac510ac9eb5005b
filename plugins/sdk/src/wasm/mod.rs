//! The `wasm32` side of the SDK: generated bindings for each contract
//! version a plugin may export, and the conversions between them and the
//! plain Rust types plugins are written against. `export_plugin!` exports
//! the newest version (0.3); `export_plugin_v0_2!` and `export_plugin_v0_1!`
//! the older ones.

pub mod v0_1;
pub mod v0_2;
pub mod v0_3;

use std::sync::atomic::{AtomicU8, Ordering};

use crate::LogLevel;

/// The contract version the component answers as (1, 2 or 3): its log
/// lines go to that version's `log` import, the only one the host links.
/// Set by the first call of the exports, which are one version's.
static SPEAKS: AtomicU8 = AtomicU8::new(3);

pub(crate) fn speaking(version: u8) {
    SPEAKS.store(version, Ordering::Relaxed);
}

pub(crate) fn log(level: LogLevel, message: &str) {
    match SPEAKS.load(Ordering::Relaxed) {
        1 => v0_1::log(level, message),
        2 => v0_2::log(level, message),
        _ => v0_3::log(level, message),
    }
}

/// Send panic messages to the host log before the trap, so a plugin bug
/// is reported with its reason rather than as a bare `unreachable`.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            crate::log(LogLevel::Error, &format!("plugin panicked: {info}"));
        }));
    });
}

/// The `log` import and the conversions of the types every contract
/// version defines alike, for the generated modules `host_log`, `wit`
/// (types) and `rp` (route policy) in scope.
macro_rules! shared_conversions {
    () => {
        pub(crate) fn log(level: crate::LogLevel, message: &str) {
            use crate::LogLevel;
            let level = match level {
                LogLevel::Trace => host_log::Level::Trace,
                LogLevel::Debug => host_log::Level::Debug,
                LogLevel::Info => host_log::Level::Info,
                LogLevel::Warn => host_log::Level::Warn,
                LogLevel::Error => host_log::Level::Error,
            };
            host_log::log(level, message);
        }

        fn object(o: wit::Object) -> crate::Object {
            crate::Object {
                api_version: o.api_version,
                kind: o.kind,
                name: o.name,
                labels: o.labels.into_iter().collect(),
                spec: o.spec,
            }
        }

        fn problem(p: crate::Problem) -> wit::Problem {
            wit::Problem {
                kind: p.kind,
                name: p.name,
                field: p.field,
                reason: p.reason,
            }
        }

        fn family(f: wit::AddressFamily) -> crate::Family {
            match f {
                wit::AddressFamily::Ipv4 => crate::Family::Ipv4,
                wit::AddressFamily::Ipv6 => crate::Family::Ipv6,
            }
        }

        fn wit_family(f: crate::Family) -> wit::AddressFamily {
            match f {
                crate::Family::Ipv4 => wit::AddressFamily::Ipv4,
                crate::Family::Ipv6 => wit::AddressFamily::Ipv6,
            }
        }

        fn wit_next_hop(n: crate::NextHopMode) -> wit::NextHopMode {
            match n {
                crate::NextHopMode::Auto => wit::NextHopMode::Auto,
                crate::NextHopMode::SetSelf => wit::NextHopMode::SetSelf,
                crate::NextHopMode::Keep => wit::NextHopMode::Keep,
            }
        }

        fn wit_secret(r: crate::SecretRef) -> wit::SecretRef {
            wit::SecretRef {
                name: r.name,
                key: r.key,
            }
        }

        fn attributes(a: wit::Attributes) -> crate::Attributes {
            crate::Attributes {
                as_path: a.as_path,
                communities: a.communities,
                large_communities: a.large_communities,
                local_pref: a.local_pref,
                from_peer: a.from_peer,
                interface: a.interface,
            }
        }

        fn wit_attributes(a: crate::Attributes) -> wit::Attributes {
            wit::Attributes {
                as_path: a.as_path,
                communities: a.communities,
                large_communities: a.large_communities,
                local_pref: a.local_pref,
                from_peer: a.from_peer,
                interface: a.interface,
            }
        }

        fn context(c: rp::RouteContext) -> crate::RouteContext {
            crate::RouteContext {
                node: c.node,
                session: c.session,
                family: family(c.family),
                direction: match c.direction {
                    rp::Direction::Import => crate::Direction::Import,
                    rp::Direction::Export => crate::Direction::Export,
                },
                peer_as: c.peer_as,
                local_as: c.local_as,
                filters: c.filters,
            }
        }

        fn prefix(p: wit::Prefix) -> crate::Prefix {
            crate::Prefix {
                family: family(p.family),
                bits: (u128::from(p.high) << 64) | u128::from(p.low),
                length: p.length,
            }
        }

        pub fn evaluate<P: crate::Plugin>(
            m: snap::ModelBorrow<'_>,
            c: rp::RouteContext,
            sets: Vec<wit::Attributes>,
            routes: Vec<rp::Route>,
        ) -> rp::Verdicts {
            let sets: Vec<crate::Attributes> = sets.into_iter().map(attributes).collect();
            let routes: Vec<crate::Route> = routes
                .into_iter()
                .map(|r| crate::Route {
                    prefix: prefix(r.prefix),
                    attributes: r.attributes,
                })
                .collect();
            let v = model::<P>(&m).evaluate(&context(c), &sets, &routes);
            rp::Verdicts {
                outcome: v.outcome,
                changed: v.changed.into_iter().map(wit_attributes).collect(),
            }
        }

        pub fn assign<P: crate::Plugin>(m: snap::ModelBorrow<'_>) -> Vec<(String, u32)> {
            model::<P>(&m).assign()
        }

        pub fn reflectors<P: crate::Plugin>(m: snap::ModelBorrow<'_>) -> Vec<(String, String)> {
            model::<P>(&m).reflectors()
        }
    };
}
pub(crate) use shared_conversions;

/// The exports of contract 0.2 and of later versions that keep its shape
/// (0.3), for the generated modules `wit`, `snap`, `ni`, `ps` and `rp` in
/// scope: `$version` is the version's number for [`speaking`]; the fields
/// listed are what the version added to the node plan and the session,
/// as read from the plain type by the expressions given.
macro_rules! since_v0_2 {
    (
        version: $version:expr,
        node_plan: |$p:ident| [$($plan_field:ident: $plan_value:expr),* $(,)?],
        session: |$s:ident| [$($session_field:ident: $session_value:expr),* $(,)?] $(,)?
    ) => {
    /// A loaded snapshot, as the component's `model` resource, with a digest
    /// of the resources it was loaded from (see [`inputs`]).
    #[allow(missing_debug_implementations)]
    pub struct Loaded<P> {
        plugin: P,
        digest: u64,
    }

    impl<P: Plugin> snap::GuestModel for Loaded<P> {
        fn load(objects: Vec<wit::Object>) -> Result<snap::Model, Vec<wit::Problem>> {
            super::speaking($version);
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
        super::speaking($version);
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

    fn node_plan($p: NodePlan) -> wit::NodePlan {
        wit::NodePlan {
            $($plan_field: $plan_value,)*
            node: $p.node,
            router_id: $p.router_id,
            listen_port: $p.listen_port,
            sessions: $p.sessions.into_iter().map(session).collect(),
            warnings: $p.warnings,
        }
    }

    fn session($s: Session) -> wit::Session {
        wit::Session {
            $($session_field: $session_value,)*
            name: $s.name,
            families: $s.families.into_iter().map(wit_family).collect(),
            extended_next_hop: $s.extended_next_hop,
            origin: $s.origin,
            peer_ip: $s.peer_ip,
            peer_port: $s.peer_port,
            interface: $s.interface,
            peer_as: $s.peer_as,
            local_as: $s.local_as,
            source_address: $s.source_address,
            passive: $s.passive,
            rr_client: $s.rr_client,
            rr_cluster_id: $s.rr_cluster_id,
            password: $s.password.map(wit_secret),
            graceful_restart_time: $s.graceful_restart_time,
            keepalive_time: $s.keepalive_time,
            ttl_security: $s.ttl_security,
            next_hop: wit_next_hop($s.next_hop),
            allow_local_as: $s.allow_local_as,
            filters: $s.filters,
            reachable_by: $s.reachable_by,
            bfd: $s.bfd.map(|b| wit::BfdSettings {
                min_rx: b.min_rx,
                min_tx: b.min_tx,
                multiplier: b.multiplier,
            }),
            error_wait: $s.error_wait,
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
    };
}
pub(crate) use since_v0_2;
