#![no_main]
// See starling_fib::fuzzing::datagram for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    starling_fib::fuzzing::datagram(data);
});
