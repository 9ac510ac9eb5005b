//! The guest SDK for Starling policy plugins.
//!
//! A plugin is a type that loads a snapshot of resources
//! ([`Snapshot::load`]) and answers the questions of the roles it fills:
//! [`AsAssignment`], [`RouteReflection`], [`NodeIdentity`],
//! [`PeerSelection`], [`Origination`], [`RoutePolicy`]. Implement the
//! traits on plain Rust types, then export the type with
//! [`export_plugin!`] (contract 0.3), or [`export_plugin_v0_2!`] /
//! [`export_plugin_v0_1!`] for a host that predates it:
//!
//! ```ignore
//! struct Rack { /* … */ }
//! impl starling_plugin_sdk::Snapshot for Rack { /* load, nodes, roles */ }
//! impl starling_plugin_sdk::AsAssignment for Rack { /* assign */ }
//! // Roles the plugin does not fill keep their default (empty) answers and
//! // are left out of `roles()`, so the host never asks for them.
//! impl starling_plugin_sdk::RouteReflection for Rack {}
//! impl starling_plugin_sdk::NodeIdentity for Rack {}
//! impl starling_plugin_sdk::PeerSelection for Rack {}
//! impl starling_plugin_sdk::Origination for Rack {}
//! impl starling_plugin_sdk::RoutePolicy for Rack {}
//! starling_plugin_sdk::export_plugin!(Rack);
//! ```
//!
//! Everything here is plain Rust, so plugin logic is unit-tested natively
//! with `cargo test`; only the export glue is specific to `wasm32`. Build
//! with `cargo build --release --target wasm32-wasip2`.
//!
//! Plugins run with no clock, files, sockets, environment or randomness:
//! use `BTreeMap` rather than `HashMap` (whose random seed the sandbox does
//! not provide), and [`log`] rather than printing.

pub mod selector;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

pub use selector::{Selector, SelectorError};
pub use starling_contract::*;

/// Loading a snapshot: the part every plugin has.
pub trait Snapshot: Sized + 'static {
    /// Parse and validate a whole resource set; any problem refuses it.
    fn load(objects: Vec<Object>) -> Result<Self, Vec<Problem>>;
    /// The node names this snapshot knows, sorted.
    fn nodes(&self) -> Vec<String>;
    /// The roles this plugin fills.
    fn roles() -> Vec<Role>;
}

/// Which AS each node speaks as.
pub trait AsAssignment: Snapshot {
    /// `(node, AS)` for every node.
    fn assign(&self) -> Vec<(String, u32)> {
        Vec::new()
    }
}

/// Which nodes reflect routes.
pub trait RouteReflection: Snapshot {
    /// `(node, cluster id)` for every reflector.
    fn reflectors(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Who each node is: its router id and addresses (contract 0.2).
pub trait NodeIdentity: Snapshot {
    /// Every node's identity. Nodes left out have none.
    fn identify(&self) -> Vec<Identity> {
        Vec::new()
    }
}

/// Who each node peers with.
pub trait PeerSelection: Snapshot {
    /// The sessions of `nodes` in `family`, given every node's facts.
    fn plan(
        &self,
        facts: &[NodeFacts],
        nodes: &[String],
        family: Family,
    ) -> Result<Vec<NodePlan>, String> {
        let _ = (facts, nodes, family);
        Err("this plugin does not select peers".to_owned())
    }

    /// The sessions of `nodes`, both families (what contract 0.2 asks).
    /// By default [`PeerSelection::plan`] per family, joined; a plugin
    /// whose sessions carry both families overrides this.
    fn plan_all(&self, facts: &[NodeFacts], nodes: &[String]) -> Result<Vec<NodePlan>, String> {
        let mut plans = self.plan(facts, nodes, Family::Ipv4)?;
        for (all, more) in plans.iter_mut().zip(self.plan(facts, nodes, Family::Ipv6)?) {
            all.router_id = all.router_id.take().or(more.router_id);
            all.listen_port = all.listen_port.or(more.listen_port);
            all.listen_addresses.extend(more.listen_addresses);
            all.sessions.extend(more.sessions);
            all.warnings.extend(more.warnings);
        }
        Ok(plans)
    }
}

/// What each node originates (contract 0.2).
pub trait Origination: Snapshot {
    /// The prefixes `node` originates, each once.
    fn originate(&self, node: &str) -> Result<Vec<Originated>, String> {
        let _ = node;
        Ok(Vec::new())
    }
}

/// Which routes cross a session.
pub trait RoutePolicy: Snapshot {
    /// One verdict per route. The default accepts everything unchanged.
    fn evaluate(&self, context: &RouteContext, sets: &[Attributes], routes: &[Route]) -> Verdicts {
        let _ = (context, sets);
        Verdicts {
            outcome: vec![Verdicts::ACCEPT; routes.len()],
            changed: Vec::new(),
        }
    }

    /// Per context, digests of what its import and export verdicts depend
    /// on (contract 0.2): equal digests promise equal verdicts. `None`,
    /// the default: the SDK digests the whole snapshot and the context, so
    /// any change re-evaluates every session.
    fn inputs(&self, contexts: &[RouteContext]) -> Option<Vec<(u64, u64)>> {
        let _ = contexts;
        None
    }
}

/// Log through the host, which tags the line with the plugin's name.
/// Natively (in unit tests) this goes to stderr.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    wasm::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?}: {message}");
}

/// Everything [`export_plugin!`] needs: a snapshot type with an answer (or
/// the default non-answer) for every role.
pub trait Plugin:
    AsAssignment + RouteReflection + NodeIdentity + PeerSelection + Origination + RoutePolicy
{
}

impl<T> Plugin for T where
    T: AsAssignment + RouteReflection + NodeIdentity + PeerSelection + Origination + RoutePolicy
{
}

/// Export a [`Plugin`] type as the component's implementation of the
/// `starling:policy@0.3.0` world, the newest. Does nothing when not
/// building for `wasm32`, so the same crate also builds and tests
/// natively.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::__export_since_v0_2!($plugin, v0_3, export_plugin_bindings_v0_3);
    };
}

/// Export a [`Plugin`] type as `starling:policy@0.2.0`, for a host that
/// predates 0.3 (Starling's host loads every version). Listen addresses
/// and the error-wait ceiling are not part of 0.2 and are left out.
#[macro_export]
macro_rules! export_plugin_v0_2 {
    ($plugin:ty) => {
        $crate::__export_since_v0_2!($plugin, v0_2, export_plugin_bindings_v0_2);
    };
}

/// The export glue of 0.2 and the versions that keep its shape.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_since_v0_2 {
    ($plugin:ty, $version:ident, $bindings:ident) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use v::exports::starling::policy as exports;
            use v::starling::policy::types as wit;
            use $crate::wasm::$version as v;
            struct StarlingExport;
            impl exports::snapshot::Guest for StarlingExport {
                type Model = v::Loaded<$plugin>;
                fn roles() -> Vec<exports::snapshot::Role> {
                    v::roles::<$plugin>()
                }
            }
            impl exports::as_assignment::Guest for StarlingExport {
                fn assign(m: exports::snapshot::ModelBorrow<'_>) -> Vec<(String, u32)> {
                    v::assign::<$plugin>(m)
                }
            }
            impl exports::route_reflection::Guest for StarlingExport {
                fn reflectors(m: exports::snapshot::ModelBorrow<'_>) -> Vec<(String, String)> {
                    v::reflectors::<$plugin>(m)
                }
            }
            impl exports::node_identity::Guest for StarlingExport {
                fn identify(
                    m: exports::snapshot::ModelBorrow<'_>,
                ) -> Vec<exports::node_identity::Identity> {
                    v::identify::<$plugin>(m)
                }
            }
            impl exports::peer_selection::Guest for StarlingExport {
                type Facts = v::Facts;
                fn plan(
                    m: exports::snapshot::ModelBorrow<'_>,
                    facts: exports::peer_selection::FactsBorrow<'_>,
                    nodes: Vec<String>,
                ) -> Result<Vec<wit::NodePlan>, String> {
                    v::plan::<$plugin>(m, facts, nodes)
                }
            }
            impl exports::origination::Guest for StarlingExport {
                fn originate(
                    m: exports::snapshot::ModelBorrow<'_>,
                    node: String,
                ) -> Result<Vec<wit::Originated>, String> {
                    v::originate::<$plugin>(m, node)
                }
            }
            impl exports::route_policy::Guest for StarlingExport {
                fn evaluate(
                    m: exports::snapshot::ModelBorrow<'_>,
                    context: exports::route_policy::RouteContext,
                    sets: Vec<wit::Attributes>,
                    routes: Vec<exports::route_policy::Route>,
                ) -> exports::route_policy::Verdicts {
                    v::evaluate::<$plugin>(m, context, sets, routes)
                }
                fn inputs(
                    m: exports::snapshot::ModelBorrow<'_>,
                    contexts: Vec<exports::route_policy::RouteContext>,
                ) -> Vec<(u64, u64)> {
                    v::inputs::<$plugin>(m, contexts)
                }
            }
    v::$bindings!(StarlingExport with_types_in $crate::wasm::$version);
        };
    };
}

/// Export a [`Plugin`] type as `starling:policy@0.1.0`, for a host that
/// predates 0.2 (Starling's host loads every version). Node identity and
/// origination are not part of 0.1 and are left out.
#[macro_export]
macro_rules! export_plugin_v0_1 {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use v::exports::starling::policy as exports;
            use v::starling::policy::types as wit;
            use $crate::wasm::v0_1 as v;
            struct StarlingExport;
            impl exports::snapshot::Guest for StarlingExport {
                type Model = v::Loaded<$plugin>;
                fn roles() -> Vec<exports::snapshot::Role> {
                    v::roles::<$plugin>()
                }
            }
            impl exports::as_assignment::Guest for StarlingExport {
                fn assign(m: exports::snapshot::ModelBorrow<'_>) -> Vec<(String, u32)> {
                    v::assign::<$plugin>(m)
                }
            }
            impl exports::route_reflection::Guest for StarlingExport {
                fn reflectors(m: exports::snapshot::ModelBorrow<'_>) -> Vec<(String, String)> {
                    v::reflectors::<$plugin>(m)
                }
            }
            impl exports::peer_selection::Guest for StarlingExport {
                type Facts = v::Facts;
                fn plan(
                    m: exports::snapshot::ModelBorrow<'_>,
                    facts: exports::peer_selection::FactsBorrow<'_>,
                    nodes: Vec<String>,
                    family: wit::AddressFamily,
                ) -> Result<Vec<wit::NodePlan>, String> {
                    v::plan::<$plugin>(m, facts, nodes, family)
                }
            }
            impl exports::route_policy::Guest for StarlingExport {
                fn evaluate(
                    m: exports::snapshot::ModelBorrow<'_>,
                    context: exports::route_policy::RouteContext,
                    sets: Vec<wit::Attributes>,
                    routes: Vec<exports::route_policy::Route>,
                ) -> exports::route_policy::Verdicts {
                    v::evaluate::<$plugin>(m, context, sets, routes)
                }
            }
    v::export_plugin_bindings_v0_1!(StarlingExport with_types_in $crate::wasm::v0_1);
        };
    };
}
