#![no_main]
// See starling_store::fuzzing::documents for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_store::fuzzing::documents(data));
