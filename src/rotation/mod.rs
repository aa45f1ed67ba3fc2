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
mod database_tests;
#[cfg(test)]
mod staged_tests;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::audit::{Action, AuditEvent, Outcome};
use crate::domain::event::secret_name_of;
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPENDING, Stage};
use crate::domain::{ManagedSecret, RotationEvent, SecretDescription, Step, Trigger};
use crate::error::{Error, Result, Transience};
use crate::patience::Patience;
use crate::ports::{
    Alert, AlertKind, Alerts, AuditLog, Clock, Family, Metric, Metrics, Ports, SecretStore,
    Severity,
};
use crate::revocation::REVOCATION_CHECK;

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
    /// How long after its mint a key the provider rejects is still given time to propagate.
    pub fresh_key_patience: std::time::Duration,
    /// The first pause before validating a just-minted key again (doubled each time).
    pub fresh_key_retry: std::time::Duration,
    /// A retryable failure alerts only once its step has kept failing this long.
    pub failing_alert_after: chrono::Duration,
    /// How long a key revoked at once (grace 0) is asked again until the provider refuses it.
    pub revocation_check: Patience,
    /// Where keyrot's own credentials live (`KEYROT_ADMIN_PREFIX`): no other secret rotates as one.
    pub admin_prefix: String,
}

impl Default for RotatorSettings {
    fn default() -> Self {
        RotatorSettings {
            default_grace_hours: 24.0,
            deploy_poll_interval: std::time::Duration::from_secs(2),
            max_deploy_wait: chrono::Duration::minutes(10),
            deadline_margin: chrono::Duration::seconds(10),
            fresh_key_patience: std::time::Duration::from_secs(30),
            fresh_key_retry: std::time::Duration::from_secs(1),
            failing_alert_after: chrono::Duration::minutes(15),
            revocation_check: REVOCATION_CHECK,
            admin_prefix: crate::domain::admin::DEFAULT_ADMIN_PREFIX.to_owned(),
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

/// The rotation function, generic over its family of ports so that tests can run it in memory.
pub struct Rotator<'a, F: Family> {
    pub ports: &'a Ports<F>,
    pub settings: RotatorSettings,
}

impl<'a, F: Family> Rotator<'a, F> {
    pub fn new(ports: &'a Ports<F>, settings: RotatorSettings) -> Self {
        Rotator { ports, settings }
    }
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

impl<F: Family> Rotator<'_, F> {
    /// Runs one step as Secrets Manager invoked it, audits the attempt and alerts on its outcome.
    ///
    /// The step's own result is what is returned: a failure to write the audit item or publish an alert
    /// is logged, never allowed to turn a finished rotation into a failed one (or the reverse).
    #[tracing::instrument(skip_all, fields(step = %event.step, secret = %event.secret_id))]
    pub async fn handle(&self, event: &RotationEvent, invocation: &Invocation) -> Result<Progress> {
        let started = self.ports.clock.now();
        let mut evidence = Evidence {
            actor: invocation.actor.clone(),
            ..Evidence::default()
        };
        let result = self.run_step(event, invocation, &mut evidence).await;
        let attempt = self.audit_event(event, &evidence, started);
        let result = match result {
            Ok(progress) => {
                self.succeeded(event, &evidence, attempt.clone(), progress)
                    .await
            }
            Err(err) => Err(err),
        };
        if let Err(err) = &result {
            tracing::error!(error = %err, retryable = err.is_retryable(), duration_ms = attempt.duration_ms, "step failed");
            self.ports.record_quietly(&attempt.failure(err)).await;
            self.alert_failure(event, &evidence, err).await;
        }
        result.map_err(|source| Error::Step {
            step: event.step.to_string(),
            secret: evidence.secret.as_ref().map_or_else(
                || secret_name_of(&event.secret_id).to_owned(),
                |s| s.name.clone(),
            ),
            source: Box::new(source),
        })
    }

    /// Audits an invocation refused before any step ran (its payload could not be read) under the
    /// secret it names, so that the refusal shows in that secret's history.
    pub async fn record_refused(&self, (secret_id, token): (&str, &str), err: &Error, actor: &str) {
        let now = self.ports.clock.now();
        let arn = if secret_id.starts_with("arn:") {
            secret_id
        } else {
            ""
        };
        let event = AuditEvent::new(
            now,
            (arn, secret_name_of(secret_id)),
            Action::Invoke,
            Outcome::Failed,
            token,
        )
        .by(actor)
        .took(now, now)
        .failure(err);
        self.ports.record_quietly(&event).await;
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

    /// A step that did its work is done once its success is on the audit trail. Every step is
    /// idempotent, so one whose event could not be written fails retryably: Secrets Manager's retry
    /// finds the work done and writes the event. finishSecret alerts the first time its success is
    /// recorded, so a retry that finds nothing left to do still sends the alert the first one could not.
    async fn succeeded(
        &self,
        event: &RotationEvent,
        evidence: &Evidence,
        attempt: AuditEvent,
        progress: Progress,
    ) -> Result<Progress> {
        let (duration_ms, name) = (attempt.duration_ms, attempt.secret_name.clone());
        let first = self.audit_success(event, attempt).await.map_err(|err| {
            self.ports.audit_failed(&name, &err);
            Error::external(
                "dynamodb",
                "record the step's success",
                format!(
                    "the step did its work, but its audit event could not be written ({err}); Secrets Manager's retry writes it"
                ),
                Transience::Retryable,
            )
        })?;
        tracing::info!(?progress, duration_ms, "step succeeded");
        if event.step == Step::Finish && (progress == Progress::Done || first) {
            self.alert_success(event, evidence).await;
        }
        Ok(progress)
    }

    /// Records the attempt's `succeeded` event with the step's guard, and returns whether this was the
    /// first record of the step's success. A step that finds its guard already written succeeded
    /// before, and this attempt is recorded as a `skipped` repeat.
    async fn audit_success(&self, event: &RotationEvent, attempt: AuditEvent) -> Result<bool> {
        let written = self
            .ports
            .audit
            .record_step_success(&attempt, &event.client_request_token)
            .await?;
        if !written {
            let skipped = AuditEvent {
                outcome: Outcome::Skipped,
                ..attempt
            };
            self.ports.record_quietly(&skipped).await;
        }
        Ok(written)
    }

    /// The audit event of this attempt as it succeeded (a failure adds its error), from `started` to
    /// now.
    fn audit_event(
        &self,
        event: &RotationEvent,
        evidence: &Evidence,
        started: DateTime<Utc>,
    ) -> AuditEvent {
        let (secret_arn, secret_name) = match &evidence.secret {
            Some(secret) => (secret.arn.as_str(), secret.name.as_str()),
            None if event.secret_id.starts_with("arn:") => {
                (event.secret_id.as_str(), secret_name_of(&event.secret_id))
            }
            None => ("", event.secret_id.as_str()),
        };
        AuditEvent::new(
            started,
            (secret_arn, secret_name),
            Action::Step(event.step),
            Outcome::Succeeded,
            &event.client_request_token,
        )
        .provider(evidence.provider.unwrap_or_default())
        .keys(evidence.old_key.as_ref(), evidence.new_key.as_ref())
        .triggered(evidence.trigger)
        .by(&evidence.actor)
        .targets(evidence.targets.clone())
        .took(started, self.ports.clock.now())
        .error((!evidence.notes.is_empty()).then(|| evidence.notes.join(" ")))
    }

    async fn alert_success(&self, event: &RotationEvent, evidence: &Evidence) {
        let name = evidence
            .secret
            .as_ref()
            .map_or(secret_name_of(&event.secret_id), |s| s.name.as_str());
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
        let alert = Alert::new(AlertKind::RotationSucceeded, Severity::Info, name)
            .subject(format!("keyrot: {name} rotated"))
            .text(text)
            .details(json!({
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
            }));
        self.ports.send_quietly(&alert).await;
    }

    /// A retryable failure (a build that outlasts an invocation, a provider's bad minute) is audited
    /// and logged, and pages only once its step has kept failing for `failing_alert_after`, then once.
    /// When that cannot be told (the table is unavailable), it alerts rather than stay silent.
    async fn keeps_failing(&self, name: &str, event: &RotationEvent) -> bool {
        let now = self.ports.clock.now();
        let what = format!("{}#{}", event.client_request_token, event.step);
        match self.ports.audit.first_failure(name, &what, now).await {
            Ok(first) if now - first >= self.settings.failing_alert_after => self
                .ports
                .audit
                .record_alert_once(name, AlertKind::RotationFailed, &what)
                .await
                .unwrap_or(true),
            Ok(_) => false,
            Err(err) => {
                tracing::warn!(error = %err, "could not tell how long this step has been failing");
                true
            }
        }
    }

    async fn alert_failure(&self, event: &RotationEvent, evidence: &Evidence, err: &Error) {
        let name = evidence
            .secret
            .as_ref()
            .map_or(secret_name_of(&event.secret_id), |s| s.name.as_str());
        if err.is_retryable() && !self.keeps_failing(name, event).await {
            return;
        }
        let fix = if err.is_retryable() {
            "Secrets Manager retries the step by itself; if it keeps failing, check the service named above.".to_owned()
        } else {
            format!(
                "Fix the cause above, then run `keyrot repair {name}` (or `aws secretsmanager rotate-secret --secret-id {name}` once no AWSPENDING version is left)."
            )
        };
        let alert = Alert::new(AlertKind::RotationFailed, Severity::Critical, name)
            .subject(format!(
                "keyrot: rotation of {name} failed at {}",
                event.step
            ))
            .text(format!(
                "Rotation of {name} failed at {}: {err}. {}{fix}",
                event.step,
                notes_text(&evidence.notes)
            ))
            .details(json!({
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
            }));
        self.ports.send_quietly(&alert).await;
    }
}

impl<F: Family> Ports<F> {
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
        self.version_value(
            &event.secret_id,
            secret,
            AWSPENDING,
            &event.client_request_token,
        )
        .await
    }

    /// The value of `version`, which carries `stage`, parsed; `None` while it holds no value.
    pub(crate) async fn version_value(
        &self,
        secret_id: &str,
        secret: &SecretDescription,
        stage: Stage,
        version: &str,
    ) -> Result<Option<ManagedSecret>> {
        let Some(text) = self.store.value(secret_id, stage, Some(version)).await? else {
            return Ok(None);
        };
        ManagedSecret::parse(&secret.name, stage, &text).map(Some)
    }
}

fn notes_text(notes: &[String]) -> String {
    notes.iter().map(|n| format!("{n} ")).collect()
}

impl<F: Family> Ports<F> {
    /// An audit write that failed must not change the outcome of what it records: it is logged and
    /// counted (a metric that an alarm can act on).
    pub(crate) fn audit_failed(&self, secret: &str, err: &Error) {
        tracing::warn!(error = %err, "audit item could not be written; the outcome stands");
        self.metrics.count(Metric::AuditWriteFailed, secret, 1.0);
    }

    /// Writes `event`; a failure is logged and counted, never returned.
    pub(crate) async fn record_quietly(&self, event: &AuditEvent) {
        if let Err(err) = self.audit.record(event).await {
            self.audit_failed(&event.secret_name, &err);
        }
    }

    /// Publishes `alert`; a failure is logged and counted, never returned. A critical alert that
    /// could not be published is parked for the grace keeper's next pass: those are at-least-once,
    /// the others at-most-once.
    pub(crate) async fn send_quietly(&self, alert: &Alert) {
        if let Err(err) = self.alerts.send(alert).await {
            tracing::warn!(error = %err, event = %alert.event, "alert could not be published");
            self.metrics
                .count(Metric::AlertPublishFailed, &alert.secret_name, 1.0);
            self.park_if_critical(alert).await;
        }
    }

    /// Parks `alert` when it is critical; a failure to park is logged.
    pub(crate) async fn park_if_critical(&self, alert: &Alert) {
        if alert.severity != Severity::Critical {
            return;
        }
        match self.audit.park_alert(alert, self.clock.now()).await {
            Ok(()) => {
                tracing::info!(event = %alert.event, "critical alert parked for the grace keeper's next pass")
            }
            Err(err) => {
                tracing::error!(error = %err, event = %alert.event, "a critical alert could be neither published nor parked");
            }
        }
    }
}
