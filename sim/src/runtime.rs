//! A stand-in for the Lambda Runtime API, so that tests can run the real function binaries as Lambda
//! runs them: the process asks `GET /2018-06-01/runtime/invocation/next` for work and posts the
//! invocation's `response` or `error` (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).
//!
//! A test queues an event with [`RuntimeApi::invoke`] and awaits its [`Outcome`]. A process killed in
//! the middle of an invocation never answers; the test then stops awaiting, as Lambda gives up at the
//! deadline, and invokes again on a new process.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function answered for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST .../response`, with the body it posted.
    Response(String),
    /// `POST .../error`: the `errorType` and `errorMessage` it reported.
    Error { error_type: String, message: String },
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Response(_))
    }
}

struct Queued {
    id: String,
    event: String,
    /// Unix milliseconds, as `Lambda-Runtime-Deadline-Ms` carries it.
    deadline_ms: i64,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    next_id: Mutex<u64>,
    function_arn: Mutex<String>,
    /// `/next` requests waiting for an event, and a signal each time one starts waiting.
    polling: Mutex<usize>,
    polled: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running Runtime API on `127.0.0.1`. Stops when dropped.
pub struct RuntimeApi {
    address: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Listens on `127.0.0.1:0`; events carry `function_arn` as the invoked function.
    pub async fn start(function_arn: &str) -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let address = listener.local_addr()?.to_string();
        let shared = Arc::new(Shared::default());
        function_arn.clone_into(&mut lock(&shared.function_arn));
        let server = tokio::spawn(accept(listener, shared.clone()));
        Ok(RuntimeApi {
            address,
            shared,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Returns once a process is waiting for work at `/next`: started, and done with any invocation.
    pub async fn until_polled(&self) {
        loop {
            let polled = self.shared.polled.notified();
            if *lock(&self.shared.polling) > 0 {
                return;
            }
            polled.await;
        }
    }

    /// Queues `event` for the next `/next` and waits for the function's answer. Dropping the future
    /// abandons the invocation (the function's late answer, if any, is then ignored).
    pub async fn invoke(&self, event: &serde_json::Value, deadline_ms: i64) -> Outcome {
        let id = {
            let mut next = lock(&self.shared.next_id);
            *next += 1;
            format!("invocation-{next}")
        };
        let (answer, outcome) = oneshot::channel();
        lock(&self.shared.waiting).insert(id.clone(), answer);
        lock(&self.shared.queue).push_back(Queued {
            id,
            event: event.to_string(),
            deadline_ms,
        });
        self.shared.arrived.notify_one();
        outcome.await.unwrap_or_else(|_| Outcome::Error {
            error_type: "Runtime.Abandoned".to_owned(),
            message: "the runtime API stopped".to_owned(),
        })
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    crate::server::accept_each(listener, move |stream| serve(stream, shared.clone())).await;
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    // An error only means the function's process went away (a test killed it).
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default();
    match (parts.method, path.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["", "invocation", "next"]) => next(shared).await,
        (Method::POST, ["", "invocation", id, "response"]) => {
            let text = String::from_utf8_lossy(&body).into_owned();
            answer(shared, id, Outcome::Response(text))
        }
        (Method::POST, ["", "invocation", id, "error"]) => {
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let field = |name: &str| error[name].as_str().unwrap_or_default().to_owned();
            let outcome = Outcome::Error {
                error_type: field("errorType"),
                message: field("errorMessage"),
            };
            answer(shared, id, outcome)
        }
        (Method::POST, ["", "init", "error"]) => reply(StatusCode::ACCEPTED, String::new()),
        _ => reply(
            StatusCode::NOT_FOUND,
            format!("no route {}", parts.uri.path()),
        ),
    }
}

/// Waits for a queued event and hands it over, as Lambda does, with its request id and deadline.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    let _polling = Polling::new(shared);
    next_event(shared).await
}

/// Counts a waiting `/next` for as long as it waits, however its wait ends.
struct Polling<'a>(&'a Shared);

impl<'a> Polling<'a> {
    fn new(shared: &'a Shared) -> Self {
        *lock(&shared.polling) += 1;
        shared.polled.notify_waiters();
        Polling(shared)
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        *lock(&self.0.polling) -= 1;
    }
}

async fn next_event(shared: &Shared) -> Response<Full<Bytes>> {
    loop {
        let arrived = shared.arrived.notified();
        if let Some(queued) = lock(&shared.queue).pop_front() {
            let arn = lock(&shared.function_arn).clone();
            return Response::builder()
                .header("Lambda-Runtime-Aws-Request-Id", &queued.id)
                .header("Lambda-Runtime-Deadline-Ms", queued.deadline_ms.to_string())
                .header("Lambda-Runtime-Invoked-Function-Arn", arn)
                .header(
                    "Lambda-Runtime-Trace-Id",
                    "Root=1-00000000-000000000000000000000000",
                )
                .header("Content-Type", "application/json")
                .body(Full::new(Bytes::from(queued.event)))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
        }
        arrived.await;
    }
}

fn answer(shared: &Shared, id: &str, outcome: Outcome) -> Response<Full<Bytes>> {
    if let Some(waiting) = lock(&shared.waiting).remove(id) {
        // The test may have abandoned it; a late answer is then nobody's.
        let _ = waiting.send(outcome);
    }
    reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#.to_owned())
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
