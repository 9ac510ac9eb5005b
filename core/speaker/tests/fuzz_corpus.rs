//! The session and instance fuzz targets on stable: every input of their
//! corpora (seeds, plus whatever the fuzzers found and `cargo fuzz cmin`
//! kept), and a few thousand scripts from a fixed-seed generator, through
//! the same entry points the fuzz targets use
//! (`starling_speaker::fuzzing`).

use std::path::Path;

fn replay<T>(target: &str, check: fn(&[u8]) -> T) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    starling_wire::fuzzing::replay_corpus(&dir, target, check);
}

/// Scripts from a fixed seed (xorshift64*): the same ones every run, so a
/// failure reproduces; the seed and length are in the message.
fn generated<T>(check: fn(&[u8]) -> T, scripts: u64) {
    for seed in 1..=scripts {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let len = 16 + (seed % 240) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect();
        let outcome = std::panic::catch_unwind(|| {
            check(&data);
        });
        assert!(outcome.is_ok(), "seed {seed} ({len} bytes): {data:02x?}");
    }
}

/// The seeds drive the harnesses where the invariants matter: a session
/// to Established, routes from peers into the Loc-RIB.
#[test]
fn the_seeds_reach_established_and_the_rib() {
    let seed = |name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus")
                .join(name),
        )
        .expect("seed")
    };
    assert!(starling_speaker::fuzzing::session(&seed(
        "session/established-then-junk"
    )));
    assert!(starling_speaker::fuzzing::instance(&seed("instance/announce-down-remove")) > 0);
}

#[test]
fn session_corpus_and_generated_scripts() {
    replay("session", starling_speaker::fuzzing::session);
    generated(starling_speaker::fuzzing::session, 3_000);
}

#[test]
fn instance_corpus_and_generated_scripts() {
    replay("instance", starling_speaker::fuzzing::instance);
    generated(starling_speaker::fuzzing::instance, 3_000);
}
