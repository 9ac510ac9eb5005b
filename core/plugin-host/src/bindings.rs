//! Host bindings generated from `wit/`, one module per supported version
//! of the contract. Older versions' answers are converted into the
//! newest contract types (`starling-contract`) in `convert.rs`.

/// `starling:policy@0.1.0`.
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../../wit/starling-policy",
    });
}

/// `starling:policy@0.2.0`.
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../../wit/starling-policy@0.2",
    });
}

/// `starling:policy@0.3.0`.
pub(crate) mod v0_3 {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../../wit/starling-policy@0.3",
    });
}
