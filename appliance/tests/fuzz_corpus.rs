//! The parser fuzz targets on stable (`tests/fuzz`): every input of their
//! corpora (seeds, plus whatever the fuzzers found and `cargo fuzz cmin`
//! kept) through the same entry points the targets use — the resource file
//! reader, the Calico model, label selectors, and the netlink datagram
//! walk of the FIB programmer.

use std::path::Path;

fn replay<T>(target: &str, check: fn(&[u8]) -> T) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz/corpus")
        .join(target);
    starling_wire::fuzzing::replay_corpus(&dir, target, check)
}

#[test]
fn documents_corpus() {
    replay("documents", starling_store::fuzzing::documents);
}

#[test]
fn calico_corpus() {
    replay("calico", starling_calico::fuzzing::calico);
}

#[test]
fn selector_corpus() {
    replay("selector", starling_calico::fuzzing::selector);
}

#[test]
fn netlink_corpus() {
    replay("netlink", starling_fib::fuzzing::datagram);
}

/// The seeds are what the targets are meant to see: the netlink seeds
/// hold routes of ours, the Calico seeds load and plan.
#[test]
fn the_seeds_reach_the_code_under_test() {
    let seed = |path: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fuzz/corpus")
                .join(path),
        )
        .expect("seed")
    };
    assert_eq!(
        starling_fib::fuzzing::datagram(&seed("netlink/dump")),
        3,
        "the dump seed's routes, read as ours"
    );
    assert!(starling_calico::fuzzing::calico(&seed("calico/explicit_peering.global.json")) > 0);
}
