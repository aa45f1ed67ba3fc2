//! The managed-secret and target parsers: any SecretString is a parsed secret or an error that names
//! the secret and never quotes the key.
#![no_main]

use keyrot::domain::ManagedSecret;
use keyrot::domain::targets::TargetSpec;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

fuzz_target!(|data: &[u8]| {
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
});
