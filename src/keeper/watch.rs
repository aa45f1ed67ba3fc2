//! Per-secret watches: rotation due soon, key overdue, rotation stuck, and the DaysSinceRotation metric.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, KEYROT_STAGED};
use crate::domain::{ManagedSecret, Policy, SecretDescription};
use crate::error::Result;
use crate::ports::{Alert, AlertKind, AuditLog, Family, Metric, Metrics, SecretStore, Severity};

use super::{GraceKeeper, KeeperReport, Managed};

impl<F: Family> GraceKeeper<'_, F> {
    pub(super) async fn watch(
        &self,
        now: DateTime<Utc>,
        item: &Managed,
        report: &mut KeeperReport,
    ) {
        let secret = &item.secret;
        let policy = match secret.policy(self.settings.default_grace_hours) {
            Ok(policy) => policy,
            Err(err) => return report.errors.push(err.to_string()),
        };
        let age_days = secret.days_since_rotation(now);
        if let Some(days) = age_days {
            self.ports.metrics.gauge(
                Metric::DaysSinceRotation,
                "None",
                &secret.name,
                (days * 100.0).round() / 100.0,
            );
        }
        self.upcoming(now, item, &policy, report).await;
        if let Some(days) = age_days.filter(|days| *days > policy.max_age_days) {
            self.overdue(now, secret, &policy, days, report).await;
        }
        self.stuck(now, secret, report).await;
        self.previous_unrecorded(now, item, &policy, report).await;
    }

    /// An AWSPREVIOUS version without a revocation record (a finishSecret that died after moving the
    /// label and was never retried, or a value put over a rotated one) would keep its key alive for
    /// ever. Records its revocation, due after the secret's grace from now; the revocation then waits,
    /// as every other does, until no target holds the key.
    async fn previous_unrecorded(
        &self,
        now: DateTime<Utc>,
        item: &Managed,
        policy: &Policy,
        report: &mut KeeperReport,
    ) {
        let secret = &item.secret;
        let Some(previous) = secret.version_with(AWSPREVIOUS) else {
            return;
        };
        let recorded: Result<bool> = async {
            if self
                .ports
                .audit
                .revocation(&secret.name, previous)
                .await?
                .is_some()
            {
                return Ok(false);
            }
            let id = secret.arn_or_name();
            let Some(text) = self
                .ports
                .store
                .value(&id, AWSPREVIOUS, Some(previous))
                .await?
            else {
                return Ok(false);
            };
            let old = ManagedSecret::parse(&secret.name, AWSPREVIOUS, &text)?;
            let same_key = item.current.as_ref().is_some_and(|current| {
                current.key_view().fingerprint == old.key_view().fingerprint
            });
            if same_key {
                return Ok(false);
            }
            let due = now + policy.grace();
            let revocation = self
                .ports
                .revocation_for(secret, previous, &old, due)
                .await?;
            self.ports.record_revocation(&revocation).await
        }
        .await;
        match recorded {
            Ok(true) => {
                tracing::warn!(secret = %secret.name, version = %previous, "AWSPREVIOUS had no revocation record; recorded");
                report.previous_recorded += 1;
            }
            Ok(false) => {}
            Err(err) => report.errors.push(format!(
                "{}: the AWSPREVIOUS version's revocation could not be checked: {err}",
                secret.name
            )),
        }
    }

    /// `rotation_upcoming` (or `key_needed` for a staged provider's secret with nothing staged) once per
    /// scheduled rotation, within the policy's alert days before it.
    async fn upcoming(
        &self,
        now: DateTime<Utc>,
        item: &Managed,
        policy: &Policy,
        report: &mut KeeperReport,
    ) {
        let secret = &item.secret;
        let Some(next) = secret.next_rotation_due() else {
            return;
        };
        let until = next - now;
        let window = Duration::milliseconds((policy.alert_days * 86_400_000.0) as i64);
        if until <= Duration::zero() || until > window {
            return;
        }
        report.upcoming += 1;
        let name = &secret.name;
        let when = next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let console = item
            .current
            .as_ref()
            .map(|current| current.provider.provider())
            .and_then(|provider| Some((provider, provider.console()?)))
            .filter(|_| secret.version_with(KEYROT_STAGED).is_none());
        let alert = if let Some((provider, console)) = console {
            Alert::new(AlertKind::KeyNeeded, Severity::Warning, name)
                .subject(format!("keyrot: stage a new key for {name} before {}", &when[..10]))
                .text(format!(
                    "{name} rotates at {when}, and {title} keys are created by a person. Open {url} and {steps}; then run `keyrot stage {name}` with the key on stdin.",
                    title = provider.title(),
                    url = console.create_url,
                    steps = console.create_steps,
                ))
                .details(json!({"event": "key_needed", "secret": name, "next_rotation": when,
                    "provider": provider.as_str(), "console": console.create_url,
                    "command": format!("keyrot stage {name}")}))
        } else {
            Alert::new(AlertKind::RotationUpcoming, Severity::Info, name)
                .subject(format!("keyrot: {name} rotates on {}", &when[..10]))
                .text(format!("{name} is scheduled to rotate at {when}."))
                .details(
                    json!({"event": "rotation_upcoming", "secret": name, "next_rotation": when}),
                )
        };
        // Once per scheduled rotation: the date it is due names it.
        self.alert_once(secret, &when[..10], alert, report).await;
    }

    /// `rotation_overdue` once a day while the key is older than the policy allows.
    async fn overdue(
        &self,
        now: DateTime<Utc>,
        secret: &SecretDescription,
        policy: &Policy,
        days: f64,
        report: &mut KeeperReport,
    ) {
        report.overdue += 1;
        let name = &secret.name;
        let alert = Alert::new(AlertKind::RotationOverdue, Severity::Critical, name)
            .subject(format!("keyrot: the key of {name} is overdue"))
            .text(format!(
                "The key of {name} is {:.0} days old; policy allows {:.0}. Rotate it with `keyrot rotate {name}` or `aws secretsmanager rotate-secret --secret-id {name}`.",
                days.floor(),
                policy.max_age_days,
            ))
            .details(json!({"event": "rotation_overdue", "secret": name, "age_days": days.floor(),
                "max_age_days": policy.max_age_days}));
        self.alert_once(secret, &now.format("%Y-%m-%d").to_string(), alert, report)
            .await;
    }

    /// `rotation_stuck` once a day while AWSPENDING sits on a non-current version for longer than
    /// the configured time.
    async fn stuck(
        &self,
        now: DateTime<Utc>,
        secret: &SecretDescription,
        report: &mut KeeperReport,
    ) {
        let Some(pending) = secret
            .version_with(AWSPENDING)
            .filter(|v| !secret.has_stage(v, AWSCURRENT))
        else {
            return;
        };
        let created = match self
            .ports
            .store
            .version_created(&secret.arn_or_name(), pending)
            .await
        {
            Ok(created) => created,
            Err(err) => return report.errors.push(format!("{}: {err}", secret.name)),
        };
        if created.is_none_or(|at| now - at <= self.settings.stuck_after) {
            return;
        }
        report.stuck += 1;
        let name = &secret.name;
        let alert = Alert::new(AlertKind::RotationStuck, Severity::Critical, name)
            .subject(format!("keyrot: rotation of {name} is stuck"))
            .text(format!(
                "A rotation of {name} has been pending (version {pending}) for over {} minutes, which blocks every later rotation. Clear it with `keyrot repair {name}`.",
                self.settings.stuck_after.num_minutes(),
            ))
            .details(json!({"event": "rotation_stuck", "secret": name, "version_id": pending,
                "command": format!("keyrot repair {name}")}));
        let today = now.format("%Y-%m-%d");
        self.alert_once(secret, &format!("{pending}#{today}"), alert, report)
            .await;
    }
}
