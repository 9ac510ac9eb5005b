//! The plugins that ship inside the `starling` binary, built for
//! `wasm32-wasip2` by this crate's build script.

/// Calico's BGP model: the default for every role.
pub const CALICO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/starling_calico.wasm"));

/// Example: AS number from a `rack` label, eBGP to the rack's ToR.
pub const EXAMPLE_AS_PER_RACK: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/starling_example_as_per_rack.wasm"
));

/// Example: an export policy that refuses too-specific prefixes.
pub const EXAMPLE_PREFIX_GUARD: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/starling_example_prefix_guard.wasm"
));

/// Example plugin set: a fabric model of its own (`FabricNode`), every
/// role, contract 0.2.
pub const EXAMPLE_FABRIC: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/starling_example_fabric.wasm"));

/// For the host's tests only: a plugin that misbehaves on request.
#[doc(hidden)]
pub const TEST_HOSTILE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/starling_test_hostile.wasm"));

/// For the host's tests only: a plugin built against `starling:policy@0.3.0`.
#[doc(hidden)]
pub const TEST_FUTURE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/starling_test_future.wasm"));

/// The embedded plugins by name, as configuration refers to them.
pub const BUILTIN: &[(&str, &[u8])] = &[
    ("calico", CALICO),
    ("as-per-rack", EXAMPLE_AS_PER_RACK),
    ("prefix-guard", EXAMPLE_PREFIX_GUARD),
    ("fabric", EXAMPLE_FABRIC),
];

/// The embedded plugin called `name`, if there is one.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}
