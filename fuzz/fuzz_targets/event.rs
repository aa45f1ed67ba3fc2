//! The rotation event parser: any JSON payload is an event or a clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) {
        match keyrot::domain::RotationEvent::from_payload(&payload) {
            Ok(event) => {
                assert!(!event.secret_id.is_empty() && !event.client_request_token.is_empty())
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    }
});
