#![no_main]
// See starling_wire::fuzzing::open for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_wire::fuzzing::open(data));
