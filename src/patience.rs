//! Asking a provider again while it catches up: a key minted moments ago that it does not accept yet,
//! a key revoked moments ago that it still accepts.

use std::time::{Duration, Instant};

/// How long to keep asking, and the first pause between two asks (each later pause doubles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    pub budget: Duration,
    pub first_pause: Duration,
}

impl Patience {
    pub const fn new(budget: Duration, first_pause: Duration) -> Self {
        Patience {
            budget,
            first_pause,
        }
    }

    /// Asks until `settled` says the answer stands, or until the next pause would outlast the budget;
    /// returns the last answer.
    pub async fn ask<T>(self, mut ask: impl AsyncFnMut() -> T, settled: impl Fn(&T) -> bool) -> T {
        let started = Instant::now();
        let mut pause = self.first_pause;
        loop {
            let answer = ask().await;
            if settled(&answer) || started.elapsed() + pause > self.budget {
                return answer;
            }
            tracing::info!(
                pause_ms = pause.as_millis() as u64,
                "the provider has not caught up yet; asking again"
            );
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::Patience;

    #[tokio::test]
    async fn asks_until_settled_or_out_of_time() {
        let asked = Cell::new(0);
        let patience = Patience::new(Duration::from_millis(50), Duration::from_millis(1));
        let answer = patience
            .ask(
                async || {
                    asked.set(asked.get() + 1);
                    asked.get()
                },
                |n| *n == 3,
            )
            .await;
        assert_eq!((answer, asked.get()), (3, 3));

        asked.set(0);
        let answer = patience
            .ask(
                async || {
                    asked.set(asked.get() + 1);
                    asked.get()
                },
                |_| false,
            )
            .await;
        assert!(
            answer > 1 && answer < 10,
            "gave up after a bounded number of asks: {answer}"
        );

        let none = Patience::new(Duration::ZERO, Duration::from_millis(1));
        asked.set(0);
        none.ask(async || asked.set(asked.get() + 1), |_| false)
            .await;
        assert_eq!(asked.get(), 1, "no patience: asked once");
    }
}
