//! The fuzz corpora replayed as an ordinary test: every input in `fuzz/corpus/<target>/` (kept
//! minimal with `cargo fuzz cmin`) and every crash a fuzz run left in `fuzz/artifacts/<target>/` goes
//! through the property its target checks (`fuzz/checks.rs`). Building and running the fuzzers
//! themselves is `make fuzz`.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file of the target's corpus and artifacts; returns how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = 0;
    for folder in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let data = std::fs::read(&path).expect("a readable input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its property", path.display());
            inputs += 1;
        }
    }
    inputs
}

#[test]
fn every_event_input_the_fuzzer_kept_is_an_event_or_a_clear_error() {
    let inputs = replay("event", checks::event);
    println!("event: {inputs} inputs replayed");
    assert!(inputs >= 100, "the event corpus holds {inputs} inputs");
}

#[test]
fn every_secret_input_the_fuzzer_kept_parses_or_names_the_secret_without_the_key() {
    let inputs = replay("secret", checks::secret);
    println!("secret: {inputs} inputs replayed");
    assert!(inputs >= 100, "the secret corpus holds {inputs} inputs");
}
