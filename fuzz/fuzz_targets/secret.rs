//! The managed-secret and target parsers (`fuzz/checks.rs`, `secret`).
#![no_main]

// Each target uses one of the shared checks.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::secret(data));
