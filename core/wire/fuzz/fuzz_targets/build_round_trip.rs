#![no_main]
// See starling_wire::fuzzing::build_round_trip for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_wire::fuzzing::build_round_trip(data));
