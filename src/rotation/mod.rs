//! Secrets Manager's rotation protocol: one function per step (create, set, test, finish), written over
//! the ports in [`crate::ports`]. This module adds what every step shares: the entry checks, the audit
//! event of each attempt and the alert of each outcome.

mod checks;
mod create;
pub(crate) mod deploy;
pub(crate) mod finish;
mod set;
mod test;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::audit::{AuditEvent, Outcome};
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::{ManagedSecret, RotationEvent, SecretDescription, Step, Trigger};
use crate::error::{Error, Result};
use crate::ports::{Alert, Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Severity, Target};

pub use checks::Entry;

/// Deployment-wide settings the steps need.
#[derive(Debug, Clone)]
pub struct RotatorSettings {
    /// Grace in hours when a secret has no `keyrot:grace-hours` tag (`KEYROT_DEFAULT_GRACE_HOURS`).
    pub default_grace_hours: f64,
    /// How often a redeploy is polled while testSecret waits for it.
    pub deploy_poll_interval: std::time::Duration,
    /// How long to wait for redeploys when the invocation has no deadline (the CLI).
    pub max_deploy_wait: chrono::Duration,
    /// Stop waiting this long before the invocation's deadline, to fail cleanly as retryable.
    pub deadline_margin: chrono::Duration,
}

impl Default for RotatorSettings {
    fn default() -> Self {
        RotatorSettings {
            default_grace_hours: 24.0,
            deploy_poll_interval: std::time::Duration::from_secs(2),
            max_deploy_wait: chrono::Duration::minutes(10),
            deadline_margin: chrono::Duration::seconds(10),
        }
    }
}

/// Who invoked the step and until when it may run.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The Lambda request id (or the CLI caller's ARN).
    pub actor: String,
    /// When Lambda will stop the invocation.
    pub deadline: Option<DateTime<Utc>>,
}

/// The rotation function, generic over its ports so that tests can run it in memory.
pub struct Rotator<S, I, T, A, N, C> {
    pub store: S,
    pub issuer: I,
    pub targets: T,
    pub audit: A,
    pub alerts: N,
    pub clock: C,
    pub settings: RotatorSettings,
}

/// Whether a step did its work now or found it already done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Done,
    AlreadyDone,
}

/// What a step learned that the audit event and alerts should carry; filled in as the step goes, so that
/// a step that fails halfway still reports what it knew.
#[derive(Debug, Default)]
pub struct Evidence {
    pub actor: String,
    pub secret: Option<SecretDescription>,
    pub provider: Option<&'static str>,
    pub trigger: Option<Trigger>,
    pub old_key: Option<KeyView>,
    pub new_key: Option<KeyView>,
    pub targets: Vec<String>,
    /// Human-readable facts for the success alert (grace end, revocation).
    pub notes: Vec<String>,
}

impl<S, I, T, A, N, C> Rotator<S, I, T, A, N, C>
where
    S: SecretStore,
    I: KeyIssuer,
    T: Target,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    /// Runs one step as Secrets Manager invoked it, audits the attempt and alerts on its outcome.
    ///
    /// The step's own result is what is returned: a failure to write the audit item or publish an alert
    /// is logged, never allowed to turn a finished rotation into a failed one (or the reverse).
    #[tracing::instrument(skip_all, fields(step = %event.step, secret = %event.secret_id))]
    pub async fn handle(&self, event: &RotationEvent, invocation: &Invocation) -> Result<Progress> {
        let started = self.clock.now();
        let mut evidence = Evidence {
            actor: invocation.actor.clone(),
            ..Evidence::default()
        };
        let result = self.run_step(event, invocation, &mut evidence).await;
        let duration_ms = (self.clock.now() - started).num_milliseconds().max(0) as u64;

        match &result {
            Ok(progress) => {
                tracing::info!(?progress, duration_ms, "step succeeded");
                self.audit_success(event, invocation, &evidence, started, duration_ms)
                    .await;
                if event.step == Step::Finish && *progress == Progress::Done {
                    self.alert_success(event, &evidence).await;
                }
            }
            Err(err) => {
                tracing::error!(error = %err, retryable = err.is_retryable(), duration_ms, "step failed");
                let failed = self.audit_event(
                    event,
                    invocation,
                    &evidence,
                    started,
                    duration_ms,
                    Outcome::Failed,
                    Some(err),
                );
                if let Err(audit_err) = self.audit.record(&failed).await {
                    log_audit_failure(&failed.secret_name, &audit_err);
                }
                self.alert_failure(event, &evidence, err).await;
            }
        }
        result.map_err(|source| Error::Step {
            step: event.step.to_string(),
            secret: evidence
                .secret
                .as_ref()
                .map_or_else(|| event.secret_id.clone(), |s| s.name.clone()),
            source: Box::new(source),
        })
    }

    async fn run_step(
        &self,
        event: &RotationEvent,
        invocation: &Invocation,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        let (entry, secret) = self.enter(event, evidence).await?;
        match (event.step, entry) {
            (Step::Finish, Entry::AlreadyCurrent) => {
                self.complete_finish(event, &secret, evidence).await
            }
            (_, Entry::AlreadyCurrent) => Ok(Progress::AlreadyDone),
            (Step::Create, Entry::Pending) => self.create_secret(event, &secret, evidence).await,
            (Step::Set, Entry::Pending) => self.set_secret(event, &secret, evidence).await,
            (Step::Test, Entry::Pending) => {
                self.test_secret(event, invocation, &secret, evidence).await
            }
            (Step::Finish, Entry::Pending) => self.finish_secret(event, &secret, evidence).await,
        }
    }

    async fn audit_success(
        &self,
        event: &RotationEvent,
        invocation: &Invocation,
        evidence: &Evidence,
        started: DateTime<Utc>,
        duration_ms: u64,
    ) {
        let succeeded = self.audit_event(
            event,
            invocation,
            evidence,
            started,
            duration_ms,
            Outcome::Succeeded,
            None,
        );
        // A step that finds its guard already written succeeded before: this attempt is a repeat.
        let written = match self
            .audit
            .record_step_success(&succeeded, &event.client_request_token)
            .await
        {
            Ok(written) => written,
            Err(err) => return log_audit_failure(&succeeded.secret_name, &err),
        };
        if !written {
            let skipped = AuditEvent {
                outcome: Outcome::Skipped,
                ..succeeded
            };
            if let Err(err) = self.audit.record(&skipped).await {
                log_audit_failure(&skipped.secret_name, &err);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_event(
        &self,
        event: &RotationEvent,
        invocation: &Invocation,
        evidence: &Evidence,
        started: DateTime<Utc>,
        duration_ms: u64,
        outcome: Outcome,
        error: Option<&Error>,
    ) -> AuditEvent {
        let (secret_arn, secret_name) = match &evidence.secret {
            Some(secret) => (secret.arn.clone(), secret.name.clone()),
            None => (String::new(), event.secret_id.clone()),
        };
        AuditEvent {
            at: started,
            secret_arn,
            secret_name,
            action: event.step.to_string(),
            outcome,
            version_id: event.client_request_token.clone(),
            provider: evidence.provider.unwrap_or_default().to_owned(),
            old_key_hint: evidence.old_key.as_ref().map(|k| k.last4.clone()),
            new_key_hint: evidence.new_key.as_ref().map(|k| k.last4.clone()),
            trigger: evidence
                .trigger
                .map(Trigger::as_str)
                .unwrap_or_default()
                .to_owned(),
            actor: invocation.actor.clone(),
            targets: evidence.targets.clone(),
            duration_ms,
            error: error.map(ToString::to_string),
            retryable: error.is_some_and(Error::is_retryable),
        }
    }

    async fn alert_success(&self, event: &RotationEvent, evidence: &Evidence) {
        let name = evidence
            .secret
            .as_ref()
            .map_or(event.secret_id.as_str(), |s| s.name.as_str());
        let shown = |key: &Option<KeyView>| {
            key.as_ref()
                .map_or_else(|| "(unknown)".to_owned(), |k| k.redacted.clone())
        };
        let (old, new) = (shown(&evidence.old_key), shown(&evidence.new_key));
        let mut text = format!(
            "The {} key of {name} was rotated: {old} -> {new}.",
            evidence.provider.unwrap_or("API")
        );
        for note in &evidence.notes {
            text.push(' ');
            text.push_str(note);
        }
        let alert = Alert {
            event: "rotation_succeeded",
            severity: Severity::Info,
            secret_name: name.to_owned(),
            subject: truncate_subject(&format!("keyrot: {name} rotated")),
            text,
            details: json!({
                "event": "rotation_succeeded",
                "secret": name,
                "secret_arn": evidence.secret.as_ref().map(|s| s.arn.as_str()),
                "version_id": event.client_request_token,
                "provider": evidence.provider,
                "trigger": evidence.trigger.map(Trigger::as_str),
                "old_key": evidence.old_key.as_ref().map(|k| k.redacted.as_str()),
                "new_key": evidence.new_key.as_ref().map(|k| k.redacted.as_str()),
                "targets": evidence.targets,
                "notes": evidence.notes,
            }),
        };
        self.send_alert(&alert).await;
    }

    async fn alert_failure(&self, event: &RotationEvent, evidence: &Evidence, err: &Error) {
        let name = evidence
            .secret
            .as_ref()
            .map_or(event.secret_id.as_str(), |s| s.name.as_str());
        let fix = if err.is_retryable() {
            "Secrets Manager retries the step by itself; if it keeps failing, check the service named above.".to_owned()
        } else {
            format!(
                "Fix the cause above, then run `keyrot repair {name}` (or `aws secretsmanager rotate-secret --secret-id {name}` once no AWSPENDING version is left)."
            )
        };
        let alert = Alert {
            event: "rotation_failed",
            severity: Severity::Critical,
            secret_name: name.to_owned(),
            subject: truncate_subject(&format!(
                "keyrot: rotation of {name} failed at {}",
                event.step
            )),
            text: format!(
                "Rotation of {name} failed at {}: {err}. {}{fix}",
                event.step,
                notes_text(&evidence.notes)
            ),
            details: json!({
                "event": "rotation_failed",
                "secret": name,
                "secret_arn": evidence.secret.as_ref().map(|s| s.arn.as_str()),
                "step": event.step.as_str(),
                "version_id": event.client_request_token,
                "provider": evidence.provider,
                "cause": err.to_string(),
                "error_kind": err.kind(),
                "retryable": err.is_retryable(),
                "fix": fix,
                "notes": evidence.notes,
                "targets": evidence.targets,
            }),
        };
        self.send_alert(&alert).await;
    }

    async fn send_alert(&self, alert: &Alert) {
        if let Err(err) = self.alerts.send(alert).await {
            tracing::warn!(error = %err, event = alert.event, "alert could not be published");
            crate::adapters::metrics::count("AlertPublishFailed", &alert.secret_name, 1.0);
        }
    }
}

impl<S, I, T, A, N, C> Rotator<S, I, T, A, N, C>
where
    S: SecretStore,
{
    /// The AWSCURRENT version, parsed. Every step that needs it reads it once.
    pub(crate) async fn current_value(
        &self,
        secret_id: &str,
        secret: &SecretDescription,
    ) -> Result<ManagedSecret> {
        let text = self
            .store
            .value(secret_id, AWSCURRENT, None)
            .await?
            .ok_or_else(|| {
                Error::config(
                    &secret.name,
                    "AWSCURRENT value",
                    "holds no SecretString",
                    "put the managed secret's JSON value with `aws secretsmanager put-secret-value --secret-string file://value.json`",
                )
            })?;
        ManagedSecret::parse(&secret.name, AWSCURRENT, &text)
    }

    /// The pending version (the event's token), parsed; `None` while it is the empty placeholder.
    pub(crate) async fn pending_value(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
    ) -> Result<Option<ManagedSecret>> {
        let Some(text) = self
            .store
            .value(
                &event.secret_id,
                AWSPENDING,
                Some(&event.client_request_token),
            )
            .await?
        else {
            return Ok(None);
        };
        ManagedSecret::parse(&secret.name, AWSPENDING, &text).map(Some)
    }
}

/// An audit write that failed must not change the step's result: it is logged and counted (an EMF
/// metric that an alarm, or the grace keeper, can act on).
fn log_audit_failure(secret: &str, err: &Error) {
    tracing::warn!(error = %err, "audit item could not be written; the step's outcome stands");
    crate::adapters::metrics::count("AuditWriteFailed", secret, 1.0);
}

fn notes_text(notes: &[String]) -> String {
    notes.iter().map(|n| format!("{n} ")).collect()
}

/// SNS subjects are limited to 100 characters.
fn truncate_subject(subject: &str) -> String {
    subject.chars().take(100).collect()
}
