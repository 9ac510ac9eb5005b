#![no_main]
// See starling_calico::fuzzing::selector for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_calico::fuzzing::selector(data));
