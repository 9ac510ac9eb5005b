//! Host bindings generated from `wit/starling-policy`, one module per
//! supported API version (only 0.1 so far).

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../../wit/starling-policy",
});
