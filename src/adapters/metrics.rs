//! CloudWatch Embedded Metric Format: a metric is a JSON log line, so counting needs no API call (and
//! works against stand-ins that do not speak PutMetricData).

use serde_json::json;

pub const NAMESPACE: &str = "keyrot";

/// Writes one EMF line counting `value` of `metric` for `secret` (a dimension), to stdout, where the
/// Lambda runtime sends it to CloudWatch Logs.
pub fn count(metric: &str, secret: &str, value: f64) {
    println!(
        "{}",
        line(metric, secret, value, chrono::Utc::now().timestamp_millis())
    );
}

fn line(metric: &str, secret: &str, value: f64, timestamp_ms: i64) -> String {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Secret"]],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        "Secret": secret,
        metric: value,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_its_metric_and_carries_its_value() {
        let parsed: serde_json::Value =
            serde_json::from_str(&line("AuditWriteFailed", "prod/x", 1.0, 5)).expect("JSON");
        assert_eq!(
            parsed["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "AuditWriteFailed"
        );
        assert_eq!(parsed["AuditWriteFailed"], 1.0);
        assert_eq!(parsed["Secret"], "prod/x");
    }
}
