//! The `wasm32` side of the SDK: generated bindings for each contract
//! version a plugin may export, and the conversions between them and the
//! plain Rust types plugins are written against. `export_plugin!` exports
//! the newest version (0.2); `export_plugin_v0_1!` the older one.

pub mod v0_1;
pub mod v0_2;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::LogLevel;

/// The component answers as 0.1: its log lines go to 0.1's `log` import
/// (the host links only the version the component exports).
static SPEAKS_V0_1: AtomicBool = AtomicBool::new(false);

pub(crate) fn speaking_v0_1() {
    SPEAKS_V0_1.store(true, Ordering::Relaxed);
}

pub(crate) fn log(level: LogLevel, message: &str) {
    if SPEAKS_V0_1.load(Ordering::Relaxed) {
        v0_1::log(level, message);
    } else {
        v0_2::log(level, message);
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

/// Conversions of the types both contract versions define alike, for the
/// generated module `wit` (types) and `rp` (route policy) in scope.
macro_rules! shared_conversions {
    () => {
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
