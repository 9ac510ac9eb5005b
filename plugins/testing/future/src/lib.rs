//! A plugin from the future: it implements `starling:policy@0.4.0`, which
//! this host does not support, so loading it must be refused with a clear
//! reason rather than half-work.

// The generated export glue is unsafe by nature (raw ABI entry points).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        inline: "
            package starling:policy@0.4.0;
            interface snapshot {
                enum role { as-assignment, route-reflection, peer-selection, route-policy, bfd }
                roles: func() -> list<role>;
            }
            world plugin {
                export snapshot;
            }
        ",
    });

    struct Future;

    impl exports::starling::policy::snapshot::Guest for Future {
        fn roles() -> Vec<exports::starling::policy::snapshot::Role> {
            Vec::new()
        }
    }

    export!(Future);
}
