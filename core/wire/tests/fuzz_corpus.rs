//! Replays every input in the fuzz corpora (seeds, plus whatever the
//! fuzzers found and `cargo fuzz cmin` kept) on stable, through the same
//! entry points the fuzz targets use.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    starling_wire::fuzzing::replay_corpus(&dir, target, check);
}

#[test]
fn message_corpus() {
    replay("message", starling_wire::fuzzing::message);
}

#[test]
fn update_corpus() {
    replay("update", starling_wire::fuzzing::update);
}

#[test]
fn open_corpus() {
    replay("open", starling_wire::fuzzing::open);
}

#[test]
fn build_round_trip_corpus() {
    replay("build_round_trip", starling_wire::fuzzing::build_round_trip);
}
