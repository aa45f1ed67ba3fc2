//! A fault proxy for tests: forwards every request to its upstream (moto, or the simulator), numbers
//! them across every proxy that shares one [`FaultPlan`], and turns the request of a chosen number into
//! a fault on the wire: an error answer in the upstream's own shape, a delay, a connection reset before
//! anything was forwarded, or an answer lost after the upstream acted on the request.
//!
//! The accept loop is the simulator's (see `server.rs`): a connection task races the hyper connection
//! against a "hang up" signal, so a fault can close the socket with no answer written.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What a faulty request meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFault {
    /// An error answer instead of forwarding (the upstream never sees the request), in the shape of
    /// the upstream's protocol: AWS JSON, AWS query (SNS), or the provider's JSON.
    Error(WireError),
    /// Waits this long, then forwards: a client whose timeout is shorter gives up first.
    Delay(Duration),
    /// Closes the connection before forwarding: nothing reached the upstream.
    Reset,
    /// Forwards, lets the upstream act, then closes the connection without the answer.
    LoseAnswer,
    /// Holds the request unforwarded, with no answer, until the plan is cleared: the harness kills
    /// the caller's process meanwhile ([`FaultPlan::until_fired`] says when).
    Hold,
    /// Forwards, lets the upstream act, then holds the answer back as [`WireFault::Hold`] does: the
    /// caller dies having changed something it never heard of.
    ForwardAndHold,
}

/// The error answers a fault can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// 503: the service is unavailable for a moment.
    Unavailable,
    /// Throttled: AWS's ThrottlingException, a provider's 429 with `Retry-After: 1`.
    Throttled,
    /// Refused for good: AWS's AccessDeniedException, a provider's 403.
    Denied,
    /// The credentials are refused: AWS's UnrecognizedClientException, a provider's 401.
    Unauthorized,
    /// Not there: AWS's ResourceNotFoundException, a provider's 404.
    NotFound,
    /// The encryption key refuses: Secrets Manager's DecryptionFailure, DynamoDB's
    /// KMSAccessDeniedException (AWS only; a provider answers 403).
    Kms,
}

/// One request a proxy of the plan saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its number, from 0, across every proxy of the plan since it was last cleared.
    pub number: usize,
    /// The proxy's name (`moto`, `sim`).
    pub upstream: String,
    pub method: String,
    pub path: String,
    /// What it asks: AWS's `X-Amz-Target` or query `Action`, else the method and path.
    pub operation: String,
    /// The status answered; 0 while in flight, or when no answer was sent.
    pub status: u16,
}

/// The numbering and the one fault of a scenario, shared by its proxies.
#[derive(Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
    /// Raised when the fault fires, for [`FaultPlan::until_fired`].
    fired: Notify,
    /// Raised by [`FaultPlan::clear`]: held requests hang up.
    released: Notify,
}

#[derive(Default)]
struct PlanState {
    seen: Vec<Seen>,
    fault: Option<(At, WireFault)>,
    /// The fault also meets every later request of the same upstream and operation.
    persistent: bool,
    fired: Option<usize>,
}

impl FaultPlan {
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan::default())
    }

    fn state(&self) -> MutexGuard<'_, PlanState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The request numbered `number` (from 0, counted from the last [`Self::clear`]) meets `fault`.
    pub fn inject(&self, number: usize, fault: WireFault) {
        let mut state = self.state();
        state.fault = Some((At::Number(number), fault));
        state.persistent = false;
        state.fired = None;
    }

    /// As [`Self::inject`], and every later request of the same upstream and operation meets it too:
    /// a fault that lasts (a permission missing, a service down), so that retries cannot get past it.
    pub fn inject_lasting(&self, number: usize, fault: WireFault) {
        let mut state = self.state();
        state.fault = Some((At::Number(number), fault));
        state.persistent = true;
        state.fired = None;
    }

    /// The first request for `operation` (as [`Seen::operation`] names it, such as
    /// `secretsmanager.RotateSecret`) meets `fault`, whatever its number.
    pub fn inject_on(&self, operation: &str, fault: WireFault) {
        let mut state = self.state();
        state.fault = Some((At::Operation(operation.to_owned()), fault));
        state.persistent = false;
        state.fired = None;
    }

    /// Forgets the requests seen and the fault: numbering starts again at 0.
    pub fn clear(&self) {
        *self.state() = PlanState::default();
        self.released.notify_waiters();
    }

    /// Returns once the fault has fired (at once if it already has). A [`WireFault::ForwardAndHold`]
    /// fires when the upstream has answered.
    pub async fn until_fired(&self) {
        loop {
            let fired = self.fired.notified();
            if self.has_fired() {
                return;
            }
            fired.await;
        }
    }

    /// Whether the fault has fired; a [`WireFault::ForwardAndHold`] once its upstream has answered.
    fn has_fired(&self) -> bool {
        let state = self.state();
        let Some(seen) = state.fired.and_then(|n| state.seen.get(n)) else {
            return false;
        };
        !matches!(state.fault, Some((_, WireFault::ForwardAndHold))) || seen.status != 0
    }

    /// Every request seen since the last clear, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// The request the fault hit, once it has.
    pub fn fired(&self) -> Option<Seen> {
        let state = self.state();
        state.fired.and_then(|n| state.seen.get(n).cloned())
    }

    fn arrive(
        &self,
        upstream: &str,
        method: &str,
        path: &str,
        operation: String,
    ) -> (usize, Option<WireFault>) {
        let mut state = self.state();
        let number = state.seen.len();
        state.seen.push(Seen {
            number,
            upstream: upstream.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            operation,
            status: 0,
        });
        let fault = match (state.fault.clone(), state.fired) {
            (Some((at, fault)), None) if at.is(number, &state.seen[number].operation) => {
                state.fired = Some(number);
                Some(fault)
            }
            (Some((_, fault)), Some(first)) if state.persistent => {
                let first = &state.seen[first];
                (first.upstream == upstream && state.seen[number].operation == first.operation)
                    .then_some(fault)
            }
            _ => None,
        };
        (number, fault)
    }

    fn answered(&self, number: usize, status: u16) {
        if let Some(seen) = self.state().seen.get_mut(number) {
            seen.status = status;
        }
    }
}

/// Which request a fault is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    Number(usize),
    Operation(String),
}

impl At {
    fn is(&self, number: usize, operation: &str) -> bool {
        match self {
            At::Number(at) => *at == number,
            At::Operation(at) => at == operation,
        }
    }
}

/// One proxy in front of one upstream. Stops when dropped.
pub struct FaultProxy {
    url: String,
    server: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct Forwarder {
    name: String,
    upstream: String,
    plan: Arc<FaultPlan>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` (`http://host:port`, no path).
    pub async fn start(
        name: &str,
        upstream: &str,
        plan: Arc<FaultPlan>,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let forwarder = Forwarder {
            name: name.to_owned(),
            upstream: upstream.trim_end_matches('/').to_owned(),
            plan,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        };
        let server = tokio::spawn(accept(listener, forwarder));
        Ok(FaultProxy { url, server })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

async fn accept(listener: TcpListener, forwarder: Forwarder) {
    crate::server::accept_each(listener, move |stream| serve(stream, forwarder.clone())).await;
}

async fn serve(stream: TcpStream, forwarder: Forwarder) {
    let hang_up = Arc::new(Notify::new());
    let service = {
        let hang_up = hang_up.clone();
        service_fn(move |request| {
            let forwarder = forwarder.clone();
            let hang_up = hang_up.clone();
            async move { Ok::<_, Infallible>(forwarder.handle(request, &hang_up).await) }
        })
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        () = hang_up.notified() => {}
    }
}

impl Forwarder {
    async fn handle(&self, request: Request<Incoming>, hang_up: &Notify) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path().to_owned();
        let operation =
            operation(&parts.headers, &body).unwrap_or_else(|| format!("{} {path}", parts.method));
        let secrets_manager = operation.starts_with("secretsmanager.");
        let (number, fault) = self
            .plan
            .arrive(&self.name, parts.method.as_str(), &path, operation);
        let protocol = Protocol::of(&parts.headers, &body);
        let response = match fault {
            Some(WireFault::Error(error)) => error_answer(protocol, error, secrets_manager),
            Some(WireFault::Reset) => return hang_up_now(hang_up).await,
            Some(WireFault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                self.forward(parts, body).await
            }
            Some(WireFault::LoseAnswer) => {
                let acted = self.forward(parts, body).await;
                self.plan.answered(number, acted.status().as_u16());
                return hang_up_now(hang_up).await;
            }
            Some(WireFault::Hold) => {
                self.plan.fired.notify_waiters();
                return self.hold(hang_up).await;
            }
            Some(WireFault::ForwardAndHold) => {
                let acted = self.forward(parts, body).await;
                self.plan.answered(number, acted.status().as_u16());
                self.plan.fired.notify_waiters();
                return self.hold(hang_up).await;
            }
            None => self.forward(parts, body).await,
        };
        self.plan.answered(number, response.status().as_u16());
        response
    }

    async fn forward(
        &self,
        parts: axum::http::request::Parts,
        body: Bytes,
    ) -> Response<Full<Bytes>> {
        let target = format!(
            "{}{}",
            self.upstream,
            parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
        );
        let mut request = Request::builder().method(parts.method).uri(target);
        for (name, value) in &parts.headers {
            request = request.header(name, value);
        }
        let Ok(request) = request.body(Full::new(body)) else {
            return plain(
                StatusCode::BAD_GATEWAY,
                "the proxy could not build the request",
            );
        };
        match self.client.request(request).await {
            Ok(answer) => {
                let (parts, body) = answer.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                Response::from_parts(parts, Full::new(body))
            }
            Err(err) => plain(
                StatusCode::BAD_GATEWAY,
                &format!("upstream unreachable: {err}"),
            ),
        }
    }
}

impl Forwarder {
    /// Answers nothing until the plan is cleared (or a minute has passed), then hangs up.
    async fn hold(&self, hang_up: &Notify) -> Response<Full<Bytes>> {
        let released = self.plan.released.notified();
        let _ = tokio::time::timeout(Duration::from_secs(60), released).await;
        hang_up_now(hang_up).await
    }
}

/// Closes the connection: the connection task drops this future along with the socket.
async fn hang_up_now(hang_up: &Notify) -> Response<Full<Bytes>> {
    hang_up.notify_one();
    std::future::pending().await
}

/// The protocol of a request, for the shape of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `X-Amz-Target`: Secrets Manager, DynamoDB (JSON 1.0 and 1.1).
    AwsJson,
    /// A form body with `Action=`: SNS, STS, CloudFormation.
    AwsQuery,
    /// Anything else: a provider's JSON API.
    Provider,
}

impl Protocol {
    fn of(headers: &axum::http::HeaderMap, body: &Bytes) -> Protocol {
        if headers.contains_key("x-amz-target") {
            Protocol::AwsJson
        } else if query_action(body).is_some() {
            Protocol::AwsQuery
        } else {
            Protocol::Provider
        }
    }
}

fn operation(headers: &axum::http::HeaderMap, body: &Bytes) -> Option<String> {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_action(body).map(|action| format!("query.{action}")))
}

fn query_action(body: &Bytes) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

fn error_answer(
    protocol: Protocol,
    error: WireError,
    is_secrets_manager: bool,
) -> Response<Full<Bytes>> {
    let (status, code, message) = match (protocol, error) {
        (Protocol::Provider, WireError::Unavailable) => {
            (503, "server_error", "injected: unavailable")
        }
        (Protocol::Provider, WireError::Throttled) => {
            (429, "rate_limit_exceeded", "injected: slow down")
        }
        (Protocol::Provider, WireError::Denied | WireError::Kms) => {
            (403, "forbidden", "injected: not allowed")
        }
        (Protocol::Provider, WireError::Unauthorized) => {
            (401, "invalid_api_key", "injected: unknown credentials")
        }
        (Protocol::Provider, WireError::NotFound) => (404, "not_found", "injected: no such thing"),
        (_, WireError::Unavailable) => (503, "ServiceUnavailable", "injected: unavailable"),
        (_, WireError::Throttled) => (400, "ThrottlingException", "injected: rate exceeded"),
        (_, WireError::Denied) => (400, "AccessDeniedException", "injected: not authorized"),
        (_, WireError::Unauthorized) => (
            400,
            "UnrecognizedClientException",
            "injected: the security token is invalid",
        ),
        (_, WireError::NotFound) => (400, "ResourceNotFoundException", "injected: not found"),
        (Protocol::AwsJson, WireError::Kms) if is_secrets_manager => {
            (400, "DecryptionFailure", "injected: KMS refused to decrypt")
        }
        (_, WireError::Kms) => (400, "KMSAccessDeniedException", "injected: KMS refused"),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, body) = match protocol {
        Protocol::AwsJson => (
            "application/x-amz-json-1.1",
            serde_json::json!({"__type": code, "message": message}).to_string(),
        ),
        Protocol::AwsQuery => {
            let code = if code == "AccessDeniedException" {
                "AuthorizationError"
            } else {
                code
            };
            (
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
                ),
            )
        }
        Protocol::Provider => (
            "application/json",
            serde_json::json!({"error": {"message": message, "type": code, "code": code}})
                .to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if protocol == Protocol::AwsJson
        && let Ok(value) = HeaderValue::from_str(code)
    {
        headers.insert("x-amzn-errortype", value);
    }
    if error == WireError::Throttled && protocol == Protocol::Provider {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}
