//! [`Alerts`] on one SNS topic: a short subject, `MessageStructure=json` with a human body for people
//! (`default`, `email`), the machine JSON for programs (`sqs`, `lambda`), and for `https` (the protocol
//! AWS Chatbot, now Amazon Q Developer in chat applications, subscribes with) a custom notification in its
//! schema, which renders in Slack and Teams and carries the machine JSON too; and the message attributes
//! `event`, `secret` and `severity` for subscription filters.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use serde_json::json;

use crate::adapters::aws::sdk_error;
use crate::error::{Error, Result, Transience};
use crate::ports::{Alert, Alerts};

#[derive(Clone)]
pub struct SnsAlerts {
    client: Client,
    topic_arn: String,
}

impl SnsAlerts {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsAlerts {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

/// The JSON document SNS expects with `MessageStructure=json`.
pub fn message_document(alert: &Alert) -> String {
    let machine = alert.details.to_string();
    json!({
        "default": alert.text,
        "email": alert.text,
        "sqs": machine,
        "lambda": machine,
        "https": chat_notification(alert, &machine).to_string(),
    })
    .to_string()
}

/// The alert as a chat custom notification (docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html):
/// the subject as title, the text as description, one thread per secret, and the machine JSON in
/// `additionalContext.details` (whose values must be strings).
fn chat_notification(alert: &Alert, machine: &str) -> serde_json::Value {
    json!({
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": subject(alert),
            "description": alert.text,
            "keywords": [alert.event.as_str(), alert.severity.as_str()],
        },
        "metadata": {
            "threadId": alert.secret_name,
            "summary": subject(alert),
            "eventType": alert.event.as_str(),
            "relatedResources": [alert.secret_name],
            "additionalContext": {
                "secret": alert.secret_name,
                "severity": alert.severity.as_str(),
                "details": machine,
            },
        },
    })
}

/// SNS refuses a subject over 100 characters (and one with a line break).
const SUBJECT_LIMIT: usize = 100;

fn subject(alert: &Alert) -> String {
    alert
        .subject
        .chars()
        .filter(|c| !c.is_control())
        .take(SUBJECT_LIMIT)
        .collect()
}

fn attribute(value: &str) -> Result<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|err| Error::external("sns", "build message attribute", err, Transience::Final))
}

impl Alerts for SnsAlerts {
    async fn send(&self, alert: &Alert) -> Result<()> {
        // The SDK's standard retry policy retries throttling and 5xx answers; what still fails is
        // returned and logged by the caller, never failing the rotation.
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(alert))
            .message_structure("json")
            .message(message_document(alert))
            .message_attributes("event", attribute(alert.event.as_str())?)
            .message_attributes("secret", attribute(&alert.secret_name)?)
            .message_attributes("severity", attribute(alert.severity.as_str())?)
            .send()
            .await
            .map_err(|err| sdk_error("sns", &format!("Publish({})", alert.event), &err))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{AlertKind, Severity};

    #[test]
    fn people_get_the_human_text_and_programs_the_machine_json() {
        let alert = Alert {
            event: AlertKind::RotationSucceeded,
            severity: Severity::Info,
            secret_name: "prod/openai".into(),
            subject: "keyrot: prod/openai rotated".into(),
            text: "The openai key of prod/openai was rotated: sk-...0ld1 -> sk-...x7K2.".into(),
            details: json!({"event": "rotation_succeeded", "secret": "prod/openai", "new_key": "sk-...x7K2"}),
        };
        let document: serde_json::Value =
            serde_json::from_str(&message_document(&alert)).expect("JSON");
        for human in ["default", "email"] {
            assert_eq!(document[human], alert.text.as_str(), "{human}");
        }
        for machine in ["sqs", "lambda"] {
            let body: serde_json::Value =
                serde_json::from_str(document[machine].as_str().expect("a string body"))
                    .expect("machine JSON");
            assert_eq!(body, alert.details, "{machine}");
        }
    }

    /// What Amazon Q Developer in chat applications (AWS Chatbot) renders: its custom-notification
    /// schema, version 1.0 and source custom, with the machine JSON kept in the context.
    #[test]
    fn https_subscribers_such_as_chat_get_a_custom_notification_with_the_details() {
        let alert = Alert {
            event: AlertKind::RotationFailed,
            severity: Severity::Critical,
            secret_name: "prod/openai".into(),
            subject: "keyrot: prod/openai rotation failed".into(),
            text: "setSecret failed: Vercel refused the token. Fix: ...".into(),
            details: json!({"event": "rotation_failed", "secret": "prod/openai", "step": "setSecret"}),
        };
        let document: serde_json::Value =
            serde_json::from_str(&message_document(&alert)).expect("JSON");
        let chat: serde_json::Value =
            serde_json::from_str(document["https"].as_str().expect("a string body")).expect("JSON");
        assert_eq!(chat["version"], "1.0");
        assert_eq!(chat["source"], "custom");
        assert_eq!(chat["content"]["textType"], "client-markdown");
        assert_eq!(chat["content"]["title"], alert.subject.as_str());
        assert_eq!(chat["content"]["description"], alert.text.as_str());
        assert_eq!(chat["metadata"]["threadId"], "prod/openai");
        assert_eq!(chat["metadata"]["eventType"], "rotation_failed");
        let context = chat["metadata"]["additionalContext"]
            .as_object()
            .expect("additionalContext");
        assert!(
            context.values().all(serde_json::Value::is_string),
            "strings only"
        );
        let details: serde_json::Value =
            serde_json::from_str(context["details"].as_str().expect("details")).expect("JSON");
        assert_eq!(details, alert.details);
    }

    #[test]
    fn the_subject_is_cut_to_what_sns_accepts() {
        let alert =
            Alert::new(AlertKind::RotationFailed, Severity::Critical, "prod/x").subject(format!(
                "keyrot: rotation of {} failed\nat setSecret",
                "x".repeat(200)
            ));
        let cut = subject(&alert);
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.starts_with("keyrot: rotation of xxx") && !cut.contains('\n'));
    }
}
