//! The guest SDK for Starling policy plugins.
//!
//! A plugin is a type that loads a snapshot of resources
//! ([`Snapshot::load`]) and answers the questions of the roles it fills:
//! [`AsAssignment`], [`RouteReflection`], [`PeerSelection`],
//! [`RoutePolicy`]. Implement the traits on plain Rust types, then export
//! the type with [`export_plugin!`]:
//!
//! ```ignore
//! struct Rack { /* … */ }
//! impl starling_plugin_sdk::Snapshot for Rack { /* load, nodes, roles */ }
//! impl starling_plugin_sdk::AsAssignment for Rack { /* assign */ }
//! // Roles the plugin does not fill keep their default (empty) answers and
//! // are left out of `roles()`, so the host never asks for them.
//! impl starling_plugin_sdk::RouteReflection for Rack {}
//! impl starling_plugin_sdk::PeerSelection for Rack {}
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
pub trait Plugin: AsAssignment + RouteReflection + PeerSelection + RoutePolicy {}

impl<T: AsAssignment + RouteReflection + PeerSelection + RoutePolicy> Plugin for T {}

/// Export a [`Plugin`] type as the component's implementation of the
/// `starling:policy/plugin` world. Does nothing when not building for
/// `wasm32`, so the same crate also builds and tests natively.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::wasm::exports::starling::policy as exports;
            struct StarlingExport;
            impl exports::snapshot::Guest for StarlingExport {
                type Model = $crate::wasm::Loaded<$plugin>;
                fn roles() -> Vec<exports::snapshot::Role> {
                    $crate::wasm::roles::<$plugin>()
                }
            }
            impl exports::as_assignment::Guest for StarlingExport {
                fn assign(m: exports::snapshot::ModelBorrow<'_>) -> Vec<(String, u32)> {
                    $crate::wasm::assign::<$plugin>(m)
                }
            }
            impl exports::route_reflection::Guest for StarlingExport {
                fn reflectors(m: exports::snapshot::ModelBorrow<'_>) -> Vec<(String, String)> {
                    $crate::wasm::reflectors::<$plugin>(m)
                }
            }
            impl exports::peer_selection::Guest for StarlingExport {
                type Facts = $crate::wasm::Facts;
                fn plan(
                    m: exports::snapshot::ModelBorrow<'_>,
                    facts: exports::peer_selection::FactsBorrow<'_>,
                    nodes: Vec<String>,
                    family: $crate::wasm::starling::policy::types::AddressFamily,
                ) -> Result<Vec<$crate::wasm::starling::policy::types::NodePlan>, String> {
                    $crate::wasm::plan::<$plugin>(m, facts, nodes, family)
                }
            }
            impl exports::route_policy::Guest for StarlingExport {
                fn evaluate(
                    m: exports::snapshot::ModelBorrow<'_>,
                    context: exports::route_policy::RouteContext,
                    sets: Vec<$crate::wasm::starling::policy::types::Attributes>,
                    routes: Vec<exports::route_policy::Route>,
                ) -> exports::route_policy::Verdicts {
                    $crate::wasm::evaluate::<$plugin>(m, context, sets, routes)
                }
            }
    $crate::wasm::export_plugin_bindings!(StarlingExport with_types_in $crate::wasm);
        };
    };
}
