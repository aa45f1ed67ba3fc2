//! Per-secret watches: rotation due soon, key overdue, rotation stuck, and the DaysSinceRotation metric.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::domain::ProviderSettings;
use crate::domain::policy::{AWSCURRENT, AWSPENDING, KEYROT_STAGED};
use crate::ports::{Alert, Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Severity, Target};

use super::revoke::subject;
use super::{GraceKeeper, KeeperReport, Managed};

impl<S, I, T, A, N, C> GraceKeeper<'_, S, I, T, A, N, C>
where
    S: SecretStore,
    I: KeyIssuer,
    T: Target,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    pub(super) async fn watch(
        &self,
        now: DateTime<Utc>,
        item: &Managed,
        report: &mut KeeperReport,
    ) {
        let secret = &item.secret;
        let policy = match secret.policy(self.ports.settings.default_grace_hours) {
            Ok(policy) => policy,
            Err(err) => return report.errors.push(err.to_string()),
        };
        let age_days = secret.days_since_rotation(now);
        if let Some(days) = age_days {
            crate::adapters::metrics::gauge(
                "DaysSinceRotation",
                "None",
                &secret.name,
                (days * 100.0).round() / 100.0,
            );
        }
        let today = now.format("%Y-%m-%d").to_string();

        if let Some(next) = secret.next_rotation_due() {
            let until = next - now;
            if until > Duration::zero()
                && until <= Duration::milliseconds((policy.alert_days * 86_400_000.0) as i64)
            {
                report.upcoming += 1;
                let when = next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let needs_key = matches!(
                    item.current.as_ref().map(|c| &c.provider),
                    Some(ProviderSettings::Anthropic(_))
                ) && secret.version_with(KEYROT_STAGED).is_none();
                let alert = if needs_key {
                    Alert {
                        event: "key_needed",
                        severity: Severity::Warning,
                        secret_name: secret.name.clone(),
                        subject: subject(&format!(
                            "keyrot: stage a new key for {} before {}",
                            secret.name,
                            &when[..10]
                        )),
                        text: format!(
                            "{} rotates at {when}, and Anthropic keys are created by a person. Create a key in the Anthropic Console, then run `keyrot stage {}` with the key on stdin.",
                            secret.name, secret.name
                        ),
                        details: json!({"event": "key_needed", "secret": secret.name, "next_rotation": when,
                            "command": format!("keyrot stage {}", secret.name)}),
                    }
                } else {
                    Alert {
                        event: "rotation_upcoming",
                        severity: Severity::Info,
                        secret_name: secret.name.clone(),
                        subject: subject(&format!(
                            "keyrot: {} rotates on {}",
                            secret.name,
                            &when[..10]
                        )),
                        text: format!("{} is scheduled to rotate at {when}.", secret.name),
                        details: json!({"event": "rotation_upcoming", "secret": secret.name, "next_rotation": when}),
                    }
                };
                // Once per scheduled rotation: the date it is due names it.
                self.alert_once(secret, &when[..10], alert, report).await;
            }
        }

        if let Some(days) = age_days.filter(|days| *days > policy.max_age_days) {
            report.overdue += 1;
            let alert = Alert {
                event: "rotation_overdue",
                severity: Severity::Critical,
                secret_name: secret.name.clone(),
                subject: subject(&format!("keyrot: the key of {} is overdue", secret.name)),
                text: format!(
                    "The key of {} is {:.0} days old; policy allows {:.0}. Rotate it with `keyrot rotate {}` or `aws secretsmanager rotate-secret --secret-id {}`.",
                    secret.name,
                    days.floor(),
                    policy.max_age_days,
                    secret.name,
                    secret.name
                ),
                details: json!({"event": "rotation_overdue", "secret": secret.name, "age_days": days.floor(), "max_age_days": policy.max_age_days}),
            };
            self.alert_once(secret, &today, alert, report).await;
        }

        if let Some(pending) = secret
            .version_with(AWSPENDING)
            .filter(|v| !secret.has_stage(v, AWSCURRENT))
        {
            let created = match self
                .ports
                .store
                .version_created(&secret.arn_or_name(), pending)
                .await
            {
                Ok(created) => created,
                Err(err) => return report.errors.push(format!("{}: {err}", secret.name)),
            };
            if created.is_some_and(|at| now - at > self.settings.stuck_after) {
                report.stuck += 1;
                let alert = Alert {
                    event: "rotation_stuck",
                    severity: Severity::Critical,
                    secret_name: secret.name.clone(),
                    subject: subject(&format!("keyrot: rotation of {} is stuck", secret.name)),
                    text: format!(
                        "A rotation of {} has been pending (version {pending}) for over {} minutes, which blocks every later rotation. Clear it with `keyrot repair {}`.",
                        secret.name,
                        self.settings.stuck_after.num_minutes(),
                        secret.name
                    ),
                    details: json!({"event": "rotation_stuck", "secret": secret.name, "version_id": pending,
                        "command": format!("keyrot repair {}", secret.name)}),
                };
                self.alert_once(secret, &format!("{pending}#{today}"), alert, report)
                    .await;
            }
        }
    }
}
