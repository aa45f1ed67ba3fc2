//! Fault injection: make chosen calls fail, stall or lose their connection so
//! tests can exercise keyrot's retry and recovery paths.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::{openai, render, vercel};

/// A rule that disturbs some of the calls matching `method` and `path_prefix`.
///
/// Matching calls are counted from the moment the fault is injected; the fault
/// fires for calls number `nth ..= nth + times - 1` (1-based). An `nth` of 0 is
/// read as 1; a `times` of 0 never fires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// `None` matches any method; otherwise compared case-insensitively.
    #[serde(default)]
    pub method: Option<String>,
    /// Matched against the request path (no query), e.g. `"/v1/models"`.
    pub path_prefix: String,
    #[serde(default = "one")]
    pub nth: u32,
    #[serde(default = "one")]
    pub times: u32,
    pub kind: FaultKind,
}

fn one() -> u32 {
    1
}

/// What a firing fault does. On the control API this is written
/// `{"status":{"code":429,"retry_after_secs":1}}`, `{"delay":{"millis":500}}`, `"drop"`, `"drop_after"`
/// or `{"answer":{"code":200,"body":{...}}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status and an error body in the shape of the provider
    /// owning the path (OpenAI's for OpenAI and Anthropic), plus `Retry-After`
    /// when given; the request never reaches the provider logic.
    Status {
        code: u16,
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// Sleep, then handle the request normally.
    Delay { millis: u64 },
    /// Close the connection without sending any HTTP response.
    Drop,
    /// Handle the request (its effects happen), then close the connection without sending the
    /// response: the answer lost on the way back, which leaves the client unsure whether it acted.
    DropAfter,
    /// Answer with this status and JSON body instead of the provider (which never sees the request):
    /// a malformed answer, or one that lies (`has_more: true` with no cursor, a field left out).
    Answer { code: u16, body: serde_json::Value },
}

struct ActiveFault {
    fault: Fault,
    /// Matching calls seen since injection.
    seen: u32,
}

impl ActiveFault {
    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .fault
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        method_ok && path.starts_with(&self.fault.path_prefix)
    }

    fn fires_now(&self) -> bool {
        let first = self.fault.nth.max(1);
        self.seen >= first && self.seen - first < self.fault.times
    }
}

#[derive(Default)]
pub(crate) struct Faults {
    active: Vec<ActiveFault>,
}

impl Faults {
    pub(crate) fn inject(&mut self, fault: Fault) {
        self.active.push(ActiveFault { fault, seen: 0 });
    }

    pub(crate) fn clear(&mut self) {
        self.active.clear();
    }

    /// Counts this call against every matching fault (so each fault's `nth`
    /// stays independent of the others) and returns what the first firing
    /// one, in injection order, wants done.
    pub(crate) fn on_call(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let mut chosen = None;
        for active in &mut self.active {
            if !active.matches(method, path) {
                continue;
            }
            active.seen = active.seen.saturating_add(1);
            if chosen.is_none() && active.fires_now() {
                chosen = Some(active.fault.kind.clone());
            }
        }
        chosen
    }
}

/// The response for a `FaultKind::Answer` fault: exactly the status and body given.
pub(crate) fn answer_response(code: u16, body: &serde_json::Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body.clone())).into_response()
}

/// The response for a `FaultKind::Status` fault, in the error shape of the
/// provider that owns `path`, so each keyrot client meets the body it would
/// get from the real service. OpenAI's shape covers OpenAI and Anthropic,
/// as it always has: that is what those clients already parse.
pub(crate) fn status_response(path: &str, code: u16, retry_after_secs: Option<u64>) -> Response {
    // A code HTTP cannot carry (outside 100..=999) still has to fail the call somehow.
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("Simulated fault: HTTP {}", status.as_u16());
    let error = match Provider::of(path) {
        Provider::Vercel => vercel::error(status, vercel_code(status), &message),
        Provider::Render => render::error(status, &message),
        Provider::OpenAiOrAnthropic => {
            let (kind, error_code) = match status.as_u16() {
                429 => ("requests", Some("rate_limit_exceeded")),
                500..=599 => ("server_error", None),
                _ => ("invalid_request_error", None),
            };
            openai::error(status, &message, kind, None, error_code)
        }
    };
    let mut response = error.into_response();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[derive(Debug, PartialEq)]
enum Provider {
    OpenAiOrAnthropic,
    Vercel,
    Render,
}

impl Provider {
    /// Vercel versions each endpoint on its own (`/v6/`, `/v9/`, `/v10/`,
    /// `/v13/`); OpenAI, Anthropic and Render all live under `/v1/`, where only
    /// Render has `services`.
    fn of(path: &str) -> Self {
        if path.starts_with("/v1/services/") {
            return Self::Render;
        }
        let version = path
            .strip_prefix("/v")
            .and_then(|rest| rest.split('/').next())
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        match version {
            Some(v) if v != "1" => Self::Vercel,
            _ => Self::OpenAiOrAnthropic,
        }
    }
}

/// The `error.code` Vercel uses for each kind of failure.
fn vercel_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 | 403 => "forbidden",
        404 => "not_found",
        429 => "rate_limited",
        500..=599 => "internal_server_error",
        _ => "simulated_fault",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(method: Option<&str>, prefix: &str, nth: u32, times: u32) -> Fault {
        Fault {
            method: method.map(str::to_owned),
            path_prefix: prefix.to_owned(),
            nth,
            times,
            kind: FaultKind::Drop,
        }
    }

    #[test]
    fn fires_from_nth_for_times_matching_calls() {
        let mut faults = Faults::default();
        faults.inject(fault(Some("get"), "/v1/models", 2, 2));
        let fired: Vec<bool> = (0..5)
            .map(|_| faults.on_call("GET", "/v1/models").is_some())
            .collect();
        assert_eq!(fired, [false, true, true, false, false]);
    }

    #[test]
    fn non_matching_calls_are_not_counted() {
        let mut faults = Faults::default();
        faults.inject(fault(Some("POST"), "/v1/organization", 1, 1));
        assert!(faults.on_call("GET", "/v1/organization/x").is_none());
        assert!(faults.on_call("POST", "/v1/models").is_none());
        assert!(faults.on_call("POST", "/v1/organization/x").is_some());
        assert!(faults.on_call("POST", "/v1/organization/x").is_none());
    }

    #[test]
    fn zero_times_never_fires_and_clear_removes_all() {
        let mut faults = Faults::default();
        faults.inject(fault(None, "/", 1, 0));
        assert!(faults.on_call("GET", "/v1/models").is_none());
        faults.inject(fault(None, "/", 1, 5));
        faults.clear();
        assert!(faults.on_call("GET", "/v1/models").is_none());
    }

    #[test]
    fn fault_bodies_take_the_shape_of_the_provider_owning_the_path() {
        assert_eq!(Provider::of("/v1/models"), Provider::OpenAiOrAnthropic);
        assert_eq!(
            Provider::of("/v1/organizations/api_keys"),
            Provider::OpenAiOrAnthropic
        );
        assert_eq!(Provider::of("/v1/services/srv-1/deploys"), Provider::Render);
        assert_eq!(Provider::of("/v10/projects/p/env"), Provider::Vercel);
        assert_eq!(Provider::of("/v6/deployments"), Provider::Vercel);
        assert_eq!(Provider::of("/version"), Provider::OpenAiOrAnthropic);
        assert_eq!(Provider::of("/"), Provider::OpenAiOrAnthropic);
    }

    #[test]
    fn control_api_json_shapes_parse() {
        let parsed: Fault = serde_json::from_str(
            r#"{"method":null,"path_prefix":"/v1/models","nth":1,"times":1,"kind":{"status":{"code":429,"retry_after_secs":1}}}"#,
        )
        .unwrap();
        assert!(matches!(
            parsed.kind,
            FaultKind::Status {
                code: 429,
                retry_after_secs: Some(1)
            }
        ));
        let parsed: Fault =
            serde_json::from_str(r#"{"path_prefix":"/","kind":{"delay":{"millis":500}}}"#).unwrap();
        assert!(matches!(parsed.kind, FaultKind::Delay { millis: 500 }));
        assert_eq!((parsed.nth, parsed.times), (1, 1));
        let parsed: Fault = serde_json::from_str(r#"{"path_prefix":"/","kind":"drop"}"#).unwrap();
        assert!(matches!(parsed.kind, FaultKind::Drop));
    }
}
