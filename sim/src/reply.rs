//! The handlers' return type. Errors carry just a status and a JSON body
//! (each provider builds its own body shape) and become a response at the edge.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub(crate) type Reply = Result<Json<Value>, ApiError>;

/// An error answer. Kept small (rather than a whole `Response`) so the
/// `Result`s threading it through `?` stay cheap to move.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
