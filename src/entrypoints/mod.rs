//! What the binaries call: each entry point builds its adapters from configuration and hands events to
//! the library.

pub mod grace_keeper;
pub mod rotator;

/// Logs as JSON lines (CloudWatch Logs Insights reads them), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(true)
        .without_time()
        .init();
}
