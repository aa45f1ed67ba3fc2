//! CloudWatch Embedded Metric Format: a metric is a JSON log line, so counting needs no API call (and
//! works against stand-ins that do not speak PutMetricData).

use serde_json::{Map, Value, json};

use crate::ports::{Metric, Metrics};

pub const NAMESPACE: &str = "keyrot";

/// Metrics as EMF lines on stdout.
pub struct EmfMetrics;

impl Metrics for EmfMetrics {
    fn count(&self, metric: Metric, secret: &str, value: f64) {
        count(metric.as_str(), secret, value);
    }

    fn gauge(&self, metric: Metric, unit: &str, secret: &str, value: f64) {
        gauge(metric.as_str(), unit, secret, value);
    }

    fn counts(&self, metrics: &[(Metric, f64)]) {
        let named: Vec<(&str, f64)> = metrics.iter().map(|(m, v)| (m.as_str(), *v)).collect();
        counts(&named);
    }
}

/// Writes one EMF line counting `value` of `metric` for `secret` (a dimension), to stdout, where the
/// Lambda runtime sends it to CloudWatch Logs.
pub fn count(metric: &str, secret: &str, value: f64) {
    println!(
        "{}",
        line(
            &[(metric, "Count", value)],
            Some(secret),
            chrono::Utc::now().timestamp_millis()
        )
    );
}

/// Writes one EMF line with a per-secret value, such as DaysSinceRotation.
pub fn gauge(metric: &str, unit: &str, secret: &str, value: f64) {
    println!(
        "{}",
        line(
            &[(metric, unit, value)],
            Some(secret),
            chrono::Utc::now().timestamp_millis()
        )
    );
}

/// Writes one EMF line of fleet-wide counts (no dimension).
pub fn counts(metrics: &[(&str, f64)]) {
    let metrics: Vec<(&str, &str, f64)> = metrics.iter().map(|(m, v)| (*m, "Count", *v)).collect();
    println!(
        "{}",
        line(&metrics, None, chrono::Utc::now().timestamp_millis())
    );
}

fn line(metrics: &[(&str, &str, f64)], secret: Option<&str>, timestamp_ms: i64) -> String {
    let dimensions: Vec<Vec<&str>> = if secret.is_some() {
        vec![vec!["Secret"]]
    } else {
        vec![vec![]]
    };
    let mut document = Map::new();
    document.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    if let Some(secret) = secret {
        document.insert("Secret".to_owned(), json!(secret));
    }
    for (name, _, value) in metrics {
        document.insert((*name).to_owned(), json!(value));
    }
    Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_its_metrics_and_carries_their_values() {
        let parsed: Value = serde_json::from_str(&line(
            &[("AuditWriteFailed", "Count", 1.0)],
            Some("prod/x"),
            5,
        ))
        .expect("JSON");
        assert_eq!(
            parsed["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "AuditWriteFailed"
        );
        assert_eq!(parsed["AuditWriteFailed"], 1.0);
        assert_eq!(parsed["Secret"], "prod/x");
        let fleet: Value = serde_json::from_str(&line(
            &[("Revoked", "Count", 2.0), ("Stuck", "Count", 0.0)],
            None,
            5,
        ))
        .expect("JSON");
        assert_eq!(
            fleet["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert_eq!(fleet["Revoked"], 2.0);
        assert!(fleet.get("Secret").is_none());
    }
}
