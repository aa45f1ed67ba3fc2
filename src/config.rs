//! Configuration from the environment (README.md, "Configuration").

use crate::adapters::url_policy::{PlainHttp, check_base_url};
use crate::domain::admin::{DEFAULT_ADMIN_PREFIX, prefixes_overlap};
use crate::error::{Error, Result};

/// The variables the deployed stack's outputs can stand in for, with the output that holds each. The
/// CLI reads the outputs when one of the first [`STACK_REQUIRED`] is unset; the others then come
/// along, so that the CLI sees the secrets and admin secrets the functions see and uses their default
/// grace.
pub const STACK_OUTPUTS: [(&str, &str); 7] = [
    ("KEYROT_AUDIT_TABLE", "TableName"),
    ("KEYROT_EVENTS_TABLE", "EventsTableName"),
    ("KEYROT_ALERT_TOPIC_ARN", "TopicArn"),
    ("KEYROT_ROTATOR_ARN", "RotatorArn"),
    ("KEYROT_MANAGED_PREFIX", "ManagedPrefix"),
    ("KEYROT_ADMIN_PREFIX", "AdminPrefix"),
    ("KEYROT_DEFAULT_GRACE_HOURS", "DefaultGraceInHours"),
];

/// How many of [`STACK_OUTPUTS`], from the first, the CLI needs from somewhere.
pub const STACK_REQUIRED: usize = 4;

#[derive(Debug, Clone)]
pub struct Config {
    /// The state table: step guards, revocations, key records, deployments, alert dedupe.
    pub audit_table: String,
    /// The audit events' own table, to which the functions may only add (`KEYROT_EVENTS_TABLE`).
    pub events_table: String,
    pub alert_topic_arn: String,
    pub default_grace_hours: f64,
    pub openai_base_url: String,
    pub anthropic_base_url: String,
    pub vercel_base_url: String,
    pub render_base_url: String,
    pub stripe_base_url: String,
    pub github_base_url: String,
    /// The rotator's ARN, by which the grace keeper recognises the secrets keyrot rotates.
    pub rotator_arn: Option<String>,
    /// Only secrets whose names start with this are the grace keeper's (`KEYROT_MANAGED_PREFIX`).
    pub managed_prefix: Option<String>,
    /// Where admin keys and tokens live (`KEYROT_ADMIN_PREFIX`, default `keyrot-admin/`), apart from
    /// the managed secrets: a named admin secret outside it is refused.
    pub admin_prefix: String,
    /// Whether a `generic.validate_url` may be plain http to a loopback host
    /// (`KEYROT_ALLOW_HTTP_VALIDATE_URL=1`, for local tests only); never in a deployment.
    pub validate_url_http: PlainHttp,
    /// How long one HTTP request to AWS or a provider may take before it is given up and, where that
    /// is safe, tried again (`KEYROT_REQUEST_TIMEOUT_SECS`, default 20).
    pub request_timeout: std::time::Duration,
}

impl Config {
    /// keyrot's rotation functions, by ARN or name: the configured rotator, and this function itself
    /// when it is the rotator (Lambda names the running function in `AWS_LAMBDA_FUNCTION_NAME`).
    pub fn rotators(&self) -> Vec<String> {
        self.rotator_arn
            .iter()
            .cloned()
            .chain(std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok())
            .collect()
    }

    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so that tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &str, what: &str| {
            get(name).ok_or_else(|| {
                Error::config(
                    "(configuration)",
                    name,
                    "is not set",
                    format!("set {name} to {what}"),
                )
            })
        };
        let default_grace_hours = match get("KEYROT_DEFAULT_GRACE_HOURS") {
            None => 24.0,
            Some(raw) => match raw.parse::<f64>() {
                Ok(hours) if hours.is_finite() && hours >= 0.0 => hours,
                _ => {
                    return Err(Error::config(
                        "(configuration)",
                        "KEYROT_DEFAULT_GRACE_HOURS",
                        "is not a number of hours (0 or more)",
                        "set it to a number such as 24, or unset it",
                    ));
                }
            },
        };
        // A base URL override is the operator's, for local stand-ins: https, or http to loopback.
        let url = |name: &str, default: &str| -> Result<String> {
            let url = get(name)
                .unwrap_or_else(|| default.to_owned())
                .trim_end_matches('/')
                .to_owned();
            check_base_url(name, &url)?;
            Ok(url)
        };
        let managed_prefix = get("KEYROT_MANAGED_PREFIX");
        let admin_prefix =
            get("KEYROT_ADMIN_PREFIX").unwrap_or_else(|| DEFAULT_ADMIN_PREFIX.to_owned());
        if prefixes_overlap(&admin_prefix, managed_prefix.as_deref()) {
            return Err(Error::config(
                "(configuration)",
                "KEYROT_ADMIN_PREFIX",
                format!(
                    "{admin_prefix} overlaps the managed prefix {}: a secret under both would be an admin \
                     credential a managed secret's writer could write",
                    managed_prefix.as_deref().unwrap_or_default()
                ),
                "keep admin secrets under a prefix of their own, such as keyrot-admin/ (the default)",
            ));
        }
        let validate_url_http = plain_http(get("KEYROT_ALLOW_HTTP_VALIDATE_URL").as_deref())?;
        let request_timeout = request_timeout(get("KEYROT_REQUEST_TIMEOUT_SECS").as_deref())?;
        Ok(Config {
            audit_table: required("KEYROT_AUDIT_TABLE", "the name of keyrot's DynamoDB table")?,
            events_table: required(
                "KEYROT_EVENTS_TABLE",
                "the name of keyrot's audit events table (the stack's EventsTableName)",
            )?,
            alert_topic_arn: required("KEYROT_ALERT_TOPIC_ARN", "the ARN of keyrot's SNS topic")?,
            default_grace_hours,
            openai_base_url: url("KEYROT_OPENAI_BASE_URL", "https://api.openai.com/v1")?,
            anthropic_base_url: url("KEYROT_ANTHROPIC_BASE_URL", "https://api.anthropic.com")?,
            vercel_base_url: url("KEYROT_VERCEL_BASE_URL", "https://api.vercel.com")?,
            render_base_url: url("KEYROT_RENDER_BASE_URL", "https://api.render.com")?,
            stripe_base_url: url("KEYROT_STRIPE_BASE_URL", "https://api.stripe.com")?,
            github_base_url: url("KEYROT_GITHUB_BASE_URL", "https://api.github.com")?,
            rotator_arn: get("KEYROT_ROTATOR_ARN"),
            managed_prefix,
            admin_prefix,
            validate_url_http,
            request_timeout,
        })
    }
}

/// The default of `KEYROT_REQUEST_TIMEOUT_SECS`: long enough for a slow provider answer, short
/// enough that a hung connection leaves the invocation time to try again.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `KEYROT_REQUEST_TIMEOUT_SECS`: seconds, more than 0 and at most 300 (a rotation function's timeout).
fn request_timeout(setting: Option<&str>) -> Result<std::time::Duration> {
    let Some(raw) = setting else {
        return Ok(REQUEST_TIMEOUT);
    };
    match raw.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 300.0 => {
            Ok(std::time::Duration::from_secs_f64(secs))
        }
        _ => Err(Error::config(
            "(configuration)",
            "KEYROT_REQUEST_TIMEOUT_SECS",
            format!("{raw:?} is not a number of seconds between 0 and 300"),
            "set it to a number such as 20, or unset it for the default of 20 seconds",
        )),
    }
}

/// `KEYROT_ALLOW_HTTP_VALIDATE_URL`: whether a validate URL may be plain http to loopback.
fn plain_http(setting: Option<&str>) -> Result<PlainHttp> {
    match setting {
        None | Some("0") => Ok(PlainHttp::Never),
        Some("1") => Ok(PlainHttp::LoopbackOnly),
        Some(_) => Err(Error::config(
            "(configuration)",
            "KEYROT_ALLOW_HTTP_VALIDATE_URL",
            "is neither 1 nor 0",
            "unset it (the default, for every deployment), or set it to 1 for local tests",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Config> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn reads_required_settings_and_defaults_the_rest() {
        let config = from(&[
            ("KEYROT_AUDIT_TABLE", "keyrot-audit"),
            ("KEYROT_EVENTS_TABLE", "keyrot-events"),
            ("KEYROT_ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"),
            ("KEYROT_OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
        ])
        .expect("valid");
        assert_eq!(config.default_grace_hours, 24.0);
        assert_eq!(config.openai_base_url, "http://127.0.0.1:9/v1");
        assert_eq!(config.vercel_base_url, "https://api.vercel.com");
        assert_eq!(config.request_timeout, std::time::Duration::from_secs(20));
    }

    #[test]
    fn the_request_timeout_is_seconds_between_0_and_300() {
        let with = |timeout: &str| {
            from(&[
                ("KEYROT_AUDIT_TABLE", "t"),
                ("KEYROT_EVENTS_TABLE", "e"),
                ("KEYROT_ALERT_TOPIC_ARN", "t"),
                ("KEYROT_REQUEST_TIMEOUT_SECS", timeout),
            ])
        };
        let config = with(" 2.5 ").expect("a fraction of seconds");
        assert_eq!(
            config.request_timeout,
            std::time::Duration::from_millis(2500)
        );
        for bad in ["0", "-1", "301", "inf", "NaN", "1e6", "soon"] {
            let err = with(bad).expect_err(bad);
            let text = err.to_string();
            assert!(
                text.contains("KEYROT_REQUEST_TIMEOUT_SECS") && text.contains("fix"),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn missing_or_bad_settings_name_the_variable() {
        let err = from(&[("KEYROT_ALERT_TOPIC_ARN", "t")]).expect_err("no table");
        assert!(err.to_string().contains("KEYROT_AUDIT_TABLE"), "{err}");
        let err = from(&[("KEYROT_AUDIT_TABLE", "t"), ("KEYROT_ALERT_TOPIC_ARN", "t")])
            .expect_err("no events table");
        assert!(err.to_string().contains("KEYROT_EVENTS_TABLE"), "{err}");
        let err = from(&[
            ("KEYROT_AUDIT_TABLE", "t"),
            ("KEYROT_EVENTS_TABLE", "e"),
            ("KEYROT_ALERT_TOPIC_ARN", "t"),
            ("KEYROT_DEFAULT_GRACE_HOURS", "soon"),
        ])
        .expect_err("bad grace");
        assert!(
            err.to_string().contains("KEYROT_DEFAULT_GRACE_HOURS"),
            "{err}"
        );
    }
}
