//! The event Secrets Manager sends to a rotation function.

use std::fmt;

use serde_json::Value;

use crate::error::{Error, Result};

/// One of the four steps of Secrets Manager's rotation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Create,
    Set,
    Test,
    Finish,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Create, Step::Set, Step::Test, Step::Finish];

    /// The name Secrets Manager uses in the `Step` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "createSecret",
            Step::Set => "setSecret",
            Step::Test => "testSecret",
            Step::Finish => "finishSecret",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.as_str() == name)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{Step, SecretId, ClientRequestToken, RotationToken?}` as Secrets Manager sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationEvent {
    pub step: Step,
    pub secret_id: String,
    pub client_request_token: String,
    /// Present when Secrets Manager rotates on behalf of a caller; passed back on PutSecretValue.
    pub rotation_token: Option<String>,
}

/// The secret's name in an id Secrets Manager sends: the id itself when it is a name, and the name part
/// of an ARN (`arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 characters>`), so
/// that what is audited before DescribeSecret answers is filed where the secret's history is.
pub fn secret_name_of(secret_id: &str) -> &str {
    let Some(rest) = secret_id.strip_prefix("arn:") else {
        return secret_id;
    };
    let mut parts = rest.splitn(6, ':');
    let (_, service, _, _, kind, name) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    );
    match (service, kind, name) {
        (Some("secretsmanager"), Some("secret"), Some(name)) => name
            .rsplit_once('-')
            .filter(|(_, suffix)| suffix.len() == 6)
            .map_or(name, |(name, _)| name),
        _ => secret_id,
    }
}

/// The secret id and the token of a payload that could not be read as a whole, where they are strings:
/// what a refused invocation is audited under.
pub fn refused_ids(payload: &Value) -> Option<(&str, &str)> {
    let id = payload.get("SecretId")?.as_str()?;
    let token = payload
        .get("ClientRequestToken")
        .and_then(Value::as_str)
        .unwrap_or_default();
    (!id.trim().is_empty() && id.len() <= MAX_FIELD_LEN && token.len() <= MAX_FIELD_LEN)
        .then_some((id, token))
}

/// Tokens are version ids (UUIDs, 32-64 characters); ids are ARNs or names of at most 2048 characters.
const MAX_FIELD_LEN: usize = 2048;

impl RotationEvent {
    /// Reads the event from the raw invocation payload, naming the field that is wrong.
    ///
    /// Parsed by hand rather than with a derive so that every refusal says which field and what is
    /// expected, and so that a payload of the wrong shape is an error, never a panic.
    pub fn from_payload(payload: &Value) -> Result<Self> {
        let object = payload.as_object().ok_or_else(|| {
            Error::BadEvent(format!(
                "expected a JSON object with Step, SecretId and ClientRequestToken, got {}",
                json_type(payload)
            ))
        })?;
        let step_name = required_string(object, "Step")?;
        let step = Step::parse(&step_name).ok_or_else(|| {
            Error::BadEvent(format!(
                "unknown Step {:?}: expected one of createSecret, setSecret, testSecret, finishSecret",
                truncate(&step_name)
            ))
        })?;
        let rotation_token = match object.get("RotationToken") {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) if !token.is_empty() => {
                Some(checked_len("RotationToken", token)?)
            }
            Some(other) => {
                return Err(Error::BadEvent(format!(
                    "field RotationToken must be a non-empty string when present, got {}",
                    json_type(other)
                )));
            }
        };
        Ok(RotationEvent {
            step,
            secret_id: required_string(object, "SecretId")?,
            client_request_token: required_string(object, "ClientRequestToken")?,
            rotation_token,
        })
    }
}

fn required_string(object: &serde_json::Map<String, Value>, field: &str) -> Result<String> {
    match object.get(field) {
        Some(Value::String(value)) if !value.trim().is_empty() => checked_len(field, value),
        Some(Value::String(_)) => Err(Error::BadEvent(format!("field {field} is empty"))),
        None | Some(Value::Null) => Err(Error::BadEvent(format!("missing field {field}"))),
        Some(other) => Err(Error::BadEvent(format!(
            "field {field} must be a string, got {}",
            json_type(other)
        ))),
    }
}

fn checked_len(field: &str, value: &str) -> Result<String> {
    if value.len() > MAX_FIELD_LEN {
        return Err(Error::BadEvent(format!(
            "field {field} is {} bytes long; at most {MAX_FIELD_LEN} are allowed",
            value.len()
        )));
    }
    Ok(value.to_owned())
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod naming_tests {
    use super::secret_name_of;

    #[test]
    fn an_arn_is_filed_under_its_secrets_name() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/openai-AbCdEf";
        assert_eq!(secret_name_of(arn), "prod/openai");
        let gov = "arn:aws-us-gov:secretsmanager:us-gov-west-1:1:secret:a-b-c-XyZ123";
        assert_eq!(secret_name_of(gov), "a-b-c");
        assert_eq!(secret_name_of("prod/openai"), "prod/openai");
        assert_eq!(
            secret_name_of("arn:aws:lambda:us-east-1:1:function:f"),
            "arn:aws:lambda:us-east-1:1:function:f"
        );
        // A partial ARN (no random suffix) names the secret whole.
        assert_eq!(
            secret_name_of("arn:aws:secretsmanager:us-east-1:1:secret:x"),
            "x"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(payload: Value) -> Result<RotationEvent> {
        RotationEvent::from_payload(&payload)
    }

    #[test]
    fn parses_every_step_and_the_optional_rotation_token() {
        for step in Step::ALL {
            let event =
                parse(json!({"Step": step.as_str(), "SecretId": "s", "ClientRequestToken": "t"}))
                    .expect("valid event");
            assert_eq!(event.step, step);
            assert_eq!(event.rotation_token, None);
        }
        let event = parse(json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": "t", "RotationToken": "r"}))
            .expect("valid event");
        assert_eq!(event.rotation_token.as_deref(), Some("r"));
    }

    #[test]
    fn refuses_malformed_events_naming_the_field() {
        let cases = [
            (
                json!({"SecretId": "s", "ClientRequestToken": "t"}),
                "missing field Step",
            ),
            (
                json!({"Step": "createSecret", "ClientRequestToken": "t"}),
                "missing field SecretId",
            ),
            (
                json!({"Step": "createSecret", "SecretId": "s"}),
                "missing field ClientRequestToken",
            ),
            (
                json!({"Step": "rotateSecret", "SecretId": "s", "ClientRequestToken": "t"}),
                "unknown Step \"rotateSecret\"",
            ),
            (
                json!({"Step": 3, "SecretId": "s", "ClientRequestToken": "t"}),
                "field Step must be a string, got a number",
            ),
            (
                json!({"Step": "createSecret", "SecretId": "", "ClientRequestToken": "t"}),
                "field SecretId is empty",
            ),
            (
                json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t", "RotationToken": 1}),
                "RotationToken",
            ),
            (
                json!({"Step": "createSecret", "SecretId": "x".repeat(5000), "ClientRequestToken": "t"}),
                "SecretId is 5000 bytes long",
            ),
            (json!(["createSecret"]), "got an array"),
        ];
        for (payload, expected) in cases {
            let err = parse(payload.clone()).expect_err("must be refused");
            assert!(matches!(err, Error::BadEvent(_)));
            assert!(err.to_string().contains(expected), "{payload}: {err}");
        }
    }
}
