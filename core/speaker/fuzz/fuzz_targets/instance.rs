#![no_main]
// See starling_speaker::fuzzing::instance for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    starling_speaker::fuzzing::instance(data);
});
