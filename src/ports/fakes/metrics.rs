//! CloudWatch metrics in memory: what was counted.

use std::cell::RefCell;

use crate::ports::{Metric, Metrics};

#[derive(Default)]
pub(crate) struct FakeMetrics {
    /// (metric, secret or "" for fleet-wide counts, value)
    pub(crate) written: RefCell<Vec<(Metric, String, f64)>>,
}

impl FakeMetrics {
    /// The total counted of `metric`, over every secret.
    pub(crate) fn total(&self, metric: Metric) -> f64 {
        self.written
            .borrow()
            .iter()
            .filter(|(m, _, _)| *m == metric)
            .map(|(_, _, v)| v)
            .sum()
    }
}

impl Metrics for FakeMetrics {
    fn count(&self, metric: Metric, secret: &str, value: f64) {
        self.written
            .borrow_mut()
            .push((metric, secret.to_owned(), value));
    }

    fn gauge(&self, metric: Metric, _unit: &str, secret: &str, value: f64) {
        self.count(metric, secret, value);
    }

    fn counts(&self, metrics: &[(Metric, f64)]) {
        for (metric, value) in metrics {
            self.count(*metric, "", *value);
        }
    }
}
