//! The HTTP server: a hand-rolled accept loop serving each connection with
//! hyper, and the per-request wrapper that applies faults and logs calls.
//!
//! `axum::serve` is not used because a `Drop` fault must close the TCP
//! connection without writing any response, and axum gives a handler no way
//! to do that. Here each connection task races the hyper connection against a
//! "hang up" signal; when a handler raises it, the connection future (and
//! with it the socket) is dropped on the spot.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::Call;
use crate::faults::{self, FaultKind};
use crate::state::Shared;
use crate::{anthropic, control, github, openai, render, stripe, vercel};

/// Paths under this prefix are the simulator's own control API.
const CONTROL_PREFIX: &str = "/_sim/";

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    router: Router,
}

/// Serves the simulator's routes on every connection `listener` accepts (see [`accept_each`]).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let app = App {
        router: router(shared.clone()),
        shared,
    };
    accept_each(listener, move |stream| {
        serve_connection(stream, app.clone())
    })
    .await;
}

/// Accepts connections until the task running it is aborted, each served by a task of its own that
/// `serve` makes; aborting also drops the `JoinSet`, which aborts every open connection with it. The
/// simulator, the fault proxy and the Runtime API stand-in all accept this way.
pub(crate) async fn accept_each<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve(stream));
                }
                // Accept errors are transient (out of file descriptors, a peer
                // that reset before we got to it); pause instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, app: App) {
    let hang_up = Arc::new(Notify::new());
    let service = {
        let hang_up = hang_up.clone();
        service_fn(move |request| {
            let app = app.clone();
            let hang_up = hang_up.clone();
            async move { Ok::<_, Infallible>(app.handle(request, &hang_up).await) }
        })
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        // An error only means the client went away mid-exchange; nothing to clean up.
        _ = connection => {}
        // Dropping `connection` closes the socket with no response written.
        () = hang_up.notified() => {}
    }
}

impl App {
    async fn handle(&self, request: Request<Incoming>, hang_up: &Notify) -> Response {
        let path = request.uri().path().to_owned();
        if path.starts_with(CONTROL_PREFIX) {
            return self.route(request).await;
        }
        let method = request.method().as_str().to_owned();

        // Logged on arrival so the log is in the order requests were received,
        // even when a delayed request finishes after a later one.
        let index = {
            let mut calls = self.shared.calls();
            calls.push(Call {
                method: method.clone(),
                path: path.clone(),
                status: 0,
            });
            calls.len() - 1
        };

        let fault = self.shared.faults().on_call(&method, &path);
        let response = match fault {
            None => self.route(request).await,
            Some(FaultKind::Status {
                code,
                retry_after_secs,
            }) => faults::status_response(&path, code, retry_after_secs),
            Some(FaultKind::Answer { code, body }) => faults::answer_response(code, &body),
            Some(FaultKind::Delay { millis }) => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                self.route(request).await
            }
            Some(FaultKind::DropAfter) => {
                let response = self.route(request).await;
                if let Some(call) = self.shared.calls().get_mut(index) {
                    call.status = response.status().as_u16();
                }
                hang_up.notify_one();
                return std::future::pending().await;
            }
            Some(FaultKind::Drop) => {
                // The connection task drops this future along with the socket;
                // the call keeps status 0 in the log because nothing was answered.
                hang_up.notify_one();
                return std::future::pending().await;
            }
        };

        // The log only ever grows, so `index` still names this call.
        if let Some(call) = self.shared.calls().get_mut(index) {
            call.status = response.status().as_u16();
        }
        response
    }

    async fn route(&self, request: Request<Incoming>) -> Response {
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .merge(openai::routes())
        .merge(anthropic::routes())
        .merge(vercel::routes())
        .merge(render::routes())
        .merge(stripe::routes())
        .merge(github::routes())
        .merge(control::routes())
        .fallback(unknown_route)
        // The real APIs answer a wrong method on a known path like an unknown URL.
        .method_not_allowed_fallback(unknown_route)
        .with_state(shared)
}

/// Both providers serve `/v1/models`; tell them apart the way their SDKs
/// authenticate: Anthropic sends `x-api-key`, OpenAI sends a bearer token.
async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let is_anthropic =
        headers.contains_key("x-api-key") && !headers.contains_key(header::AUTHORIZATION);
    if is_anthropic {
        anthropic::models(&shared, &headers).into_response()
    } else {
        openai::models(&shared, &headers).into_response()
    }
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    openai::error(
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({method} {})", uri.path()),
        "invalid_request_error",
        None,
        None,
    )
    .into_response()
}
