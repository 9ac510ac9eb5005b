//! Exports for `starling:policy@0.2.0`: a plugin written against the
//! newest SDK, answering as 0.2 did (no listen addresses, no error-wait
//! ceiling).

use std::hash::{Hash, Hasher};

use crate::{
    Identity, KernelRoute, NodeAddress, NodeFacts, NodePlan, Originated, Plugin, Role, Session,
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

super::since_v0_2!(version: 2, node_plan: |p| [], session: |s| []);
