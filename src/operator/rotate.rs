//! `keyrot rotate`: start a rotation now (manual or emergency), and follow it through the audit trail.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};

use super::Operator;
use crate::domain::ManagedSecret;
use crate::domain::SecretDescription;
use crate::domain::Step;
use crate::domain::Trigger;
use crate::domain::audit::{Action, AuditEvent, Outcome};
use crate::domain::policy::{
    AWSCURRENT, AWSPENDING, TAG_NEXT_GRACE_HOURS, TAG_ONE_SHOT_FOR, TAG_TRIGGER,
};
use crate::domain::targets::TargetSpec;
use crate::error::{Error, Result};
use crate::ports::{
    AuditHistory, AuditLog, Clock, DeploymentState, Family, SecretAdmin, SecretStore, Target,
};

/// What the operator asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RotateRequest {
    pub emergency: bool,
    /// Who asks (the caller's ARN), for the audit trail.
    pub actor: String,
    /// The old key's grace for this rotation only; `None`: the secret's usual grace.
    pub grace_hours: Option<f64>,
}

impl RotateRequest {
    /// The grace this rotation runs with: an emergency defaults to 0.
    pub fn grace_hours(&self) -> Option<f64> {
        self.grace_hours.or(self.emergency.then_some(0.0))
    }
}

/// How long following goes without a word before it says what it waits for.
const HEARTBEAT: StdDuration = StdDuration::from_secs(10);

/// A rotation Secrets Manager accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub secret_name: String,
    /// The rotation's token (the new AWSPENDING version).
    pub token: String,
}

/// How following a rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowEnd {
    /// finishSecret succeeded (or the token became AWSCURRENT).
    Finished,
    /// A step failed in a way no retry repairs.
    Failed,
    /// The token lost AWSPENDING without becoming AWSCURRENT: the rotation was abandoned or cleared.
    Abandoned,
    /// The wait ran out with the rotation still under way.
    TimedOut,
}

/// Refuses a rotation that Secrets Manager would refuse or that could not run: checked before the
/// one-shot tags are written, so that a refusal changes nothing.
fn refuse_unless_rotatable(secret: &SecretDescription) -> Result<()> {
    if !secret.rotation_enabled || secret.rotation_lambda_arn.is_none() {
        return Err(Error::config(
            &secret.name,
            "rotation",
            "is not enabled (no rotation schedule or no rotation Lambda is configured)",
            format!(
                "put it under keyrot's management first: `keyrot onboard {} ...` (or `aws secretsmanager \
                 rotate-secret --secret-id {} --rotation-lambda-arn ROTATOR_ARN --rotation-rules ...`)",
                secret.name, secret.name
            ),
        ));
    }
    if let Some(pending) = secret.version_with(AWSPENDING)
        && !secret.has_stage(pending, AWSCURRENT)
    {
        return Err(Error::config(
            &secret.name,
            AWSPENDING,
            format!("is on version {pending}: a rotation is in progress or stuck"),
            format!(
                "see `keyrot status --secret {}`; if it is stuck, clear it with `keyrot repair {}`",
                secret.name, secret.name
            ),
        ));
    }
    Ok(())
}

impl<F: Family> Operator<'_, F>
where
    F::Store: SecretAdmin,
    F::Audit: AuditHistory,
{
    /// Sets the one-shot tags and calls RotateSecret. Refuses, changing nothing, when rotation is not
    /// configured or a rotation is already under way; when RotateSecret fails anyway, puts the tags
    /// back as they were, since finishSecret (which removes them) will not run for this attempt and
    /// the next scheduled rotation would otherwise inherit them.
    pub async fn start_rotation(&self, secret_id: &str, request: RotateRequest) -> Result<Started> {
        let secret = self.ports.store.describe(secret_id).await?;
        refuse_unless_rotatable(&secret)?;
        let trigger = if request.emergency {
            "emergency"
        } else {
            "manual"
        };
        // The rotation's version id is chosen here, so that the one-shot tags name the rotation they
        // are for (a scheduled one Secrets Manager starts in between ignores them), and so that
        // whether a RotateSecret whose answer was lost started it can be told from the versions.
        let token = uuid::Uuid::new_v4().to_string();
        let mut tags = vec![
            (TAG_TRIGGER, trigger.to_owned()),
            (TAG_ONE_SHOT_FOR, token.clone()),
        ];
        if let Some(hours) = request.grace_hours() {
            tags.push((TAG_NEXT_GRACE_HOURS, format!("{hours}")));
        }
        let before: Vec<(&str, Option<String>)> = tags
            .iter()
            .map(|(key, _)| (*key, secret.tags.get(*key).cloned()))
            .collect();
        let id = secret.arn_or_name();
        self.ports.store.set_tags(&id, &tags).await?;
        let started = Started {
            secret_name: secret.name.clone(),
            token: token.clone(),
        };
        let err = match self
            .ports
            .store
            .rotate_now(&id, secret.rotation_lambda_arn.as_deref(), &token)
            .await
        {
            Ok(_) => {
                self.record_started(&secret, &started, &request).await;
                return Ok(started);
            }
            Err(err) => err,
        };
        // A lost answer (a timeout, say) does not mean no rotation started: one that did has the
        // version `token`, and its steps will consume the tags.
        match self.ports.store.describe(&id).await {
            Ok(now) if now.versions.contains_key(&token) => {
                tracing::warn!(error = %err, token, "RotateSecret failed, yet the rotation started");
                self.record_started(&secret, &started, &request).await;
                Ok(started)
            }
            Ok(_) => Err(self.tags_put_back(&secret.name, &id, &before, err).await),
            // Whether it started is unknown: the tags stay (a rotation under way needs them), and
            // the operator is told how to check and how to remove them.
            Err(describe) => Err(Error::config(
                &secret.name,
                format!("tags {TAG_TRIGGER}, {TAG_NEXT_GRACE_HOURS}"),
                format!(
                    "RotateSecret failed ({err}) and whether it started rotation {token} is unknown \
                     (DescribeSecret failed: {describe}); the one-shot tags stay for that rotation"
                ),
                format!(
                    "check with `keyrot status --secret {}`; if no rotation is under way, put the tags back: {}",
                    secret.name,
                    restore_commands(&secret.name, &before)
                ),
            )),
        }
    }

    /// Audits `rotate`: who started which rotation, and with what grace.
    async fn record_started(
        &self,
        secret: &SecretDescription,
        started: &Started,
        request: &RotateRequest,
    ) {
        let trigger = if request.emergency {
            Trigger::Emergency
        } else {
            Trigger::Manual
        };
        let grace = match request.grace_hours() {
            Some(hours) => format!("started with a one-shot grace of {hours} h"),
            None => "started with the secret's usual grace".to_owned(),
        };
        let now = self.ports.clock.now();
        let event = AuditEvent::new(
            now,
            (&secret.arn, &secret.name),
            Action::Rotate,
            Outcome::Succeeded,
            &started.token,
        )
        .triggered(Some(trigger))
        .by(&request.actor)
        .error(Some(grace));
        self.ports.record_quietly(&event).await;
    }

    /// After a RotateSecret that started nothing: the one-shot tags back as they were, and the error
    /// that says so (or, when that failed too, the commands that do it).
    async fn tags_put_back(
        &self,
        name: &str,
        id: &str,
        before: &[(&str, Option<String>)],
        err: Error,
    ) -> Error {
        match self.restore_tags(id, before).await {
            Ok(()) => Error::protocol(
                name,
                format!(
                    "RotateSecret failed ({err}); the one-shot tags were put back as they were"
                ),
            ),
            Err(restore) => Error::config(
                name,
                format!("tags {TAG_TRIGGER}, {TAG_NEXT_GRACE_HOURS}"),
                format!(
                    "RotateSecret failed ({err}) and the one-shot tags could not be put back ({restore}); \
                     the next scheduled rotation would use them"
                ),
                restore_commands(name, before),
            ),
        }
    }

    async fn restore_tags(&self, secret_id: &str, before: &[(&str, Option<String>)]) -> Result<()> {
        let absent: Vec<&str> = before
            .iter()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| *key)
            .collect();
        let earlier: Vec<(&str, String)> = before
            .iter()
            .filter_map(|(key, value)| Some((*key, value.clone()?)))
            .collect();
        if !absent.is_empty() {
            self.ports.store.untag(secret_id, &absent).await?;
        }
        if !earlier.is_empty() {
            self.ports.store.set_tags(secret_id, &earlier).await?;
        }
        Ok(())
    }

    /// Follows the rotation `token` through its audit events, calling `say` with one line per step
    /// outcome. A failure that Secrets Manager retries (the error is retryable and the token still
    /// carries AWSPENDING) does not end the wait; success, a final failure, the token losing
    /// AWSPENDING without becoming AWSCURRENT, or `limit` do.
    pub async fn follow_rotation(
        &self,
        secret_name: &str,
        token: &str,
        since: DateTime<Utc>,
        limit: StdDuration,
        poll: StdDuration,
        say: &mut dyn FnMut(String),
    ) -> Result<FollowEnd> {
        let started = Instant::now();
        let deadline = started + limit;
        let mut last_said = started;
        let mut shown = 0;
        // Set once a step failed retryably: from then on the token's labels say whether it goes on.
        let mut retrying = false;
        loop {
            let mut events = self
                .ports
                .audit
                .history(secret_name, Some(since))
                .await?
                .reporting(|problem| tracing::warn!(%problem, "an audit item could not be read"));
            events.reverse();
            let mine: Vec<_> = events
                .into_iter()
                .filter(|e| e.version_id == token && e.step().is_some())
                .collect();
            for event in mine.iter().skip(shown) {
                last_said = Instant::now();
                match self.said(secret_name, token, event, say).await? {
                    Said::End(end) => return Ok(end),
                    Said::Retrying => retrying = true,
                    Said::GoOn => {}
                }
            }
            shown = mine.len();
            if last_said.elapsed() >= HEARTBEAT {
                last_said = Instant::now();
                let builds = self.builds(secret_name, token).await;
                say(format!(
                    "  ... waiting ({} s){}",
                    started.elapsed().as_secs(),
                    if builds.is_empty() {
                        String::new()
                    } else {
                        format!("; redeploys: {}", builds.join(", "))
                    }
                ));
            }
            if retrying && let Some(end) = self.settled_by_labels(secret_name, token, say).await? {
                return Ok(end);
            }
            if Instant::now() >= deadline {
                let state = if retrying {
                    "still being retried by Secrets Manager"
                } else {
                    "still running"
                };
                say(format!(
                    "Stopped waiting after {} s with the rotation {state}; follow it with \
                     `keyrot audit --secret {secret_name}` or `keyrot status --secret {secret_name}`.",
                    limit.as_secs()
                ));
                return Ok(FollowEnd::TimedOut);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// The redeploys this rotation started and how each stands, as `target state`; empty when none
    /// is known yet (or the pending value cannot be read: following goes on regardless).
    async fn builds(&self, secret_name: &str, token: &str) -> Vec<String> {
        let Ok(Some(text)) = self
            .ports
            .store
            .value(secret_name, AWSPENDING, Some(token))
            .await
        else {
            return Vec::new();
        };
        let Ok(pending) = ManagedSecret::parse(secret_name, AWSPENDING, &text) else {
            return Vec::new();
        };
        let Ok(targets) = TargetSpec::parse_all(secret_name, &pending.targets) else {
            return Vec::new();
        };
        let mut builds = Vec::new();
        for target in &targets {
            let label = target.label();
            let Ok(Some(id)) = self
                .ports
                .audit
                .deployment(secret_name, token, &label)
                .await
            else {
                continue;
            };
            let state = match self
                .ports
                .targets
                .deployment_state(secret_name, target, &id)
                .await
            {
                Ok(DeploymentState::Building) => "building".to_owned(),
                Ok(DeploymentState::Ready) => "ready".to_owned(),
                Ok(DeploymentState::Failed(word)) => format!("failed ({word})"),
                Err(_) => "unknown".to_owned(),
            };
            builds.push(format!("{label} {state}"));
        }
        builds
    }

    /// Says one step's outcome and what it means for the rotation.
    async fn said(
        &self,
        secret_name: &str,
        token: &str,
        event: &AuditEvent,
        say: &mut dyn FnMut(String),
    ) -> Result<Said> {
        let mark = match event.outcome {
            Outcome::Succeeded => "done",
            Outcome::Skipped => "already done",
            Outcome::Failed => "FAILED",
        };
        say(format!(
            "  {:<13} {mark} ({} ms)",
            event.action, event.duration_ms
        ));
        if event.outcome != Outcome::Failed {
            if event.step() == Some(Step::Finish) {
                say(format!("Rotation of {secret_name} finished."));
                return Ok(Said::End(FollowEnd::Finished));
            }
            return Ok(Said::GoOn);
        }
        if let Some(error) = &event.error {
            say(format!("  cause: {error}"));
        }
        let secret = self.ports.store.describe(secret_name).await?;
        if secret.has_stage(token, AWSCURRENT) {
            return Ok(Said::GoOn);
        }
        if !secret.has_stage(token, AWSPENDING) {
            say(format!(
                "The rotation was abandoned: version {token} is no longer AWSPENDING."
            ));
            return Ok(Said::End(FollowEnd::Abandoned));
        }
        if !event.retryable {
            say(format!(
                "The rotation failed and a retry cannot help; fix the cause above, then run \
                 `keyrot repair {secret_name}` so that the next rotation can start."
            ));
            return Ok(Said::End(FollowEnd::Failed));
        }
        say(
            "  The failure is retryable and the rotation is still pending: Secrets Manager \
             retries the step; still following."
                .to_owned(),
        );
        Ok(Said::Retrying)
    }

    /// After a retryable failure, the labels tell whether the rotation ended: the finish event may be
    /// missing (an audit write can fail), and the labels are the truth.
    async fn settled_by_labels(
        &self,
        secret_name: &str,
        token: &str,
        say: &mut dyn FnMut(String),
    ) -> Result<Option<FollowEnd>> {
        let secret = self.ports.store.describe(secret_name).await?;
        if secret.has_stage(token, AWSCURRENT) {
            say(format!("Rotation of {secret_name} finished."));
            return Ok(Some(FollowEnd::Finished));
        }
        if !secret.has_stage(token, AWSPENDING) {
            say(format!(
                "The rotation was abandoned: version {token} lost AWSPENDING without becoming AWSCURRENT."
            ));
            return Ok(Some(FollowEnd::Abandoned));
        }
        Ok(None)
    }
}

/// What one step's outcome means for a rotation being followed.
enum Said {
    End(FollowEnd),
    /// A retryable failure: Secrets Manager runs the step again.
    Retrying,
    GoOn,
}

/// The AWS CLI commands that put the one-shot tags back by hand.
fn restore_commands(name: &str, before: &[(&str, Option<String>)]) -> String {
    let absent: Vec<&str> = before
        .iter()
        .filter(|(_, value)| value.is_none())
        .map(|(key, _)| *key)
        .collect();
    let earlier: Vec<String> = before
        .iter()
        .filter_map(|(key, value)| Some(format!("Key={key},Value={}", value.as_ref()?)))
        .collect();
    let mut commands = Vec::new();
    if !absent.is_empty() {
        commands.push(format!(
            "aws secretsmanager untag-resource --secret-id {name} --tag-keys {}",
            absent.join(" ")
        ));
    }
    if !earlier.is_empty() {
        commands.push(format!(
            "aws secretsmanager tag-resource --secret-id {name} --tags {}",
            earlier.join(" ")
        ));
    }
    commands.join("; then ")
}
