//! Replays every input in the fuzz corpora (seeds, plus whatever the
//! fuzzers found and `cargo fuzz cmin` kept) on stable, through the same
//! entry points the fuzz targets use.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{} fails; replay it with cargo fuzz run {target}",
            path.display()
        );
        count += 1;
    }
    assert!(count > 0, "corpus for {target} is empty");
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
