//! End-to-end tests of the simulator over real HTTP, as keyrot's clients see it.
//! One test binary with modules keeps link time down.

mod anthropic;
mod bin;
mod control;
mod faults;
mod openai;
mod render;
mod vercel;
mod vercel_schema;

use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;

pub fn client() -> Client {
    Client::new()
}

/// Sends the request and returns the status with the JSON body (`Null` when empty).
pub async fn send(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    read(response).await
}

pub async fn read(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}
