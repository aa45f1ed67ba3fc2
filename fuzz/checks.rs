//! The properties the fuzz targets check, in one place: `fuzz/fuzz_targets/*` run them under
//! libFuzzer (`make fuzz`), and `tests/fuzz_corpus.rs` replays every input of `fuzz/corpus/` and any
//! crash in `fuzz/artifacts/` through them as an ordinary test (`make test`).

use keyrot::domain::targets::TargetSpec;
use keyrot::domain::{ManagedSecret, RotationEvent};
use secrecy::SecretString;

/// The rotation event parser: any JSON payload is an event or a clear error, never a panic.
pub fn event(data: &[u8]) {
    if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) {
        match RotationEvent::from_payload(&payload) {
            Ok(event) => {
                assert!(!event.secret_id.is_empty() && !event.client_request_token.is_empty())
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    }
}

/// The managed-secret and target parsers: any SecretString is a parsed secret or an error that names
/// the secret and never quotes the key.
pub fn secret(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("api_key").and_then(|k| k.as_str()).map(str::to_owned))
        .filter(|k| k.len() >= 12 && !"fuzzsecret AWSCURRENT".contains(k.as_str()));
    match ManagedSecret::parse(
        "fuzzsecret",
        "AWSCURRENT",
        &SecretString::from(text.to_owned()),
    ) {
        Ok(secret) => {
            if let Err(err) = TargetSpec::parse_all("fuzzsecret", &secret.targets) {
                assert!(err.to_string().contains("fuzzsecret"));
            }
        }
        Err(err) => {
            let message = err.to_string();
            assert!(message.contains("fuzzsecret"), "{message}");
            if let Some(key) = key {
                assert!(!message.contains(&key), "an error quoted the key");
            }
        }
    }
}
