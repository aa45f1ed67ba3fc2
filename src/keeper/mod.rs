//! The grace keeper (docs/steps.md, "Grace keeper"): a scheduled pass over every managed secret that revokes
//! old keys whose grace ended, warns before rotations, and flags overdue, stuck and orphaned keys. It
//! works through the rotator's ports, so it is tested in memory like the steps.

mod orphans;

pub use orphans::Orphan;
mod revoke;
mod tasks;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::Duration;
use futures::FutureExt;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::domain::Trigger;
use crate::domain::audit::{Action, AuditEvent, Outcome};
use crate::domain::credential::{TAG_ROTATED, check_rotated};
use crate::domain::policy::AWSCURRENT;
use crate::domain::{ManagedSecret, SecretDescription};
use crate::error::Result;
use crate::patience::Patience;
use crate::ports::{
    Alert, Alerts, AuditLog, Clock, Family, Metric, Metrics, Ports, SecretStore, Severity,
};

/// Who the keeper's audit events name as their actor.
const KEEPER_ACTOR: &str = "keyrot-grace-keeper";

/// Tunables of a keeper pass.
#[derive(Debug, Clone)]
pub struct KeeperSettings {
    /// The rotator's ARN: secrets rotated by it are managed. Secrets with a `keyrot:` tag are too.
    pub rotator_arn: Option<String>,
    /// Only secrets whose name starts with this are looked at (the IAM policy's managed prefix).
    pub name_prefix: Option<String>,
    /// keyrot's own credentials: the admin prefix's secrets whose owner tagged them
    /// `keyrot-admin:rotated=true` (domain::credential).
    pub credentials: Credentials,
    /// Secrets inspected at once (each inspection is a few calls).
    pub concurrency: usize,
    /// An OpenAI key used more recently than this is not revoked yet.
    pub in_use_window: Duration,
    /// How many times a revocation is postponed for use before it is forced (with a critical alert).
    pub postpone_limit: u32,
    /// Failed attempts after which a revocation failure is alerted.
    pub failures_before_alert: u32,
    /// AWSPENDING on a non-current version for longer than this is a stuck rotation.
    pub stuck_after: Duration,
    /// A keyrot-named key younger than this may belong to a createSecret in flight.
    pub orphan_min_age: Duration,
    /// Grace in hours when a secret has no `keyrot:grace-hours` tag (`KEYROT_DEFAULT_GRACE_HOURS`).
    pub default_grace_hours: f64,
    /// How long a key just revoked is asked again until the provider refuses it.
    pub revocation_check: Patience,
}

impl KeeperSettings {
    /// Whether `secret` is keyrot's: in scope, and rotated by our rotator or tagged `keyrot:`.
    pub fn manages(&self, secret: &SecretDescription) -> bool {
        let credential = self.is_credential_name(&secret.name)
            && secret.tags.get(TAG_ROTATED).map(String::as_str) == Some("true");
        if !credential
            && !self
                .name_prefix
                .as_deref()
                .is_none_or(|prefix| secret.name.starts_with(prefix))
        {
            return false;
        }
        let by_rotator = match (&self.rotator_arn, &secret.rotation_lambda_arn) {
            (Some(ours), Some(theirs)) => same_function(ours, theirs),
            _ => false,
        };
        by_rotator || secret.tags.keys().any(|k| k.starts_with("keyrot:"))
    }
}

impl KeeperSettings {
    pub(crate) fn is_credential_name(&self, name: &str) -> bool {
        self.credentials
            .prefix()
            .is_some_and(|prefix| name.starts_with(prefix))
    }

    /// Whether a secret of this name may be keyrot's: under the managed prefix, or a credential's.
    fn in_scope(&self, name: &str) -> bool {
        self.is_credential_name(name)
            || self
                .name_prefix
                .as_deref()
                .is_none_or(|prefix| name.starts_with(prefix))
    }
}

impl Default for KeeperSettings {
    fn default() -> Self {
        KeeperSettings {
            rotator_arn: None,
            name_prefix: None,
            credentials: Credentials::Ignored,
            concurrency: 16,
            in_use_window: Duration::hours(1),
            postpone_limit: 24,
            failures_before_alert: 3,
            stuck_after: Duration::hours(1),
            orphan_min_age: Duration::hours(1),
            default_grace_hours: 24.0,
            revocation_check: crate::revocation::REVOCATION_CHECK,
        }
    }
}

/// How a pass sees keyrot's own credentials under the admin prefix.
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// Not at all.
    #[default]
    Ignored,
    /// By name and tags only: the CLI's read policy never opens an admin secret.
    Listed(String),
    /// With their values, as the grace keeper reads them.
    Read(String),
}

impl Credentials {
    fn prefix(&self) -> Option<&str> {
        match self {
            Credentials::Ignored => None,
            Credentials::Listed(prefix) | Credentials::Read(prefix) => Some(prefix),
        }
    }
}

/// What one pass did, returned by the Lambda and written as EMF counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeeperReport {
    pub secrets: usize,
    pub revoked: usize,
    pub postponed: usize,
    pub failed: usize,
    pub upcoming: usize,
    pub overdue: usize,
    pub stuck: usize,
    pub orphans: usize,
    /// Old keys a person must revoke (revocation tasks), reminded once a day.
    pub tasks: usize,
    /// AWSPREVIOUS versions found without a revocation record, and recorded.
    pub previous_recorded: usize,
    pub alerts_sent: usize,
    /// Critical alerts parked earlier (their Publish failed) and delivered by this pass.
    pub parked_delivered: usize,
    /// Problems that stopped one part of the pass (the rest went on); never key values.
    pub errors: Vec<String>,
}

/// One managed secret as the pass sees it: its description and its current value.
pub struct Managed {
    pub secret: SecretDescription,
    pub current: Option<ManagedSecret>,
}

pub struct GraceKeeper<'a, F: Family> {
    pub ports: &'a Ports<F>,
    pub settings: KeeperSettings,
}

impl<'a, F: Family> GraceKeeper<'a, F> {
    pub fn new(ports: &'a Ports<F>, settings: KeeperSettings) -> Self {
        GraceKeeper { ports, settings }
    }
}

impl<F: Family> GraceKeeper<'_, F> {
    /// One pass. A failure in one part (one secret, one revocation) is reported and the pass goes on.
    #[tracing::instrument(skip_all)]
    pub async fn run(&self) -> Result<KeeperReport> {
        let now = self.ports.clock.now();
        let mut report = KeeperReport::default();
        let managed = self.managed_secrets().await?;
        report.secrets = managed.len();
        let by_name: BTreeMap<&str, &Managed> = managed
            .iter()
            .map(|m| (m.secret.name.as_str(), m))
            .collect();

        self.deliver_parked(&mut report).await;
        self.revoke_due(now, &by_name, &mut report).await;
        self.remind_tasks(now, &by_name, &mut report).await;
        for item in &managed {
            isolated(&item.secret.name, &mut report, async |part| {
                self.watch(now, item, part).await
            })
            .await;
        }
        self.find_orphans(now, &managed, &mut report).await;

        self.ports.metrics.counts(&[
            (Metric::Revoked, report.revoked as f64),
            (Metric::Postponed, report.postponed as f64),
            (Metric::RevocationFailed, report.failed as f64),
            (Metric::Overdue, report.overdue as f64),
            (Metric::Stuck, report.stuck as f64),
            (Metric::Orphans, report.orphans as f64),
        ]);
        tracing::info!(?report, "grace keeper pass finished");
        Ok(report)
    }

    /// The secrets keyrot manages, each with its current value read (bounded concurrency).
    pub(crate) async fn managed_secrets(&self) -> Result<Vec<Managed>> {
        let mut listed = self
            .ports
            .store
            .list(self.settings.name_prefix.as_deref())
            .await?;
        if let (Some(_), Some(credentials)) = (
            &self.settings.name_prefix,
            self.settings.credentials.prefix(),
        ) {
            listed.extend(self.ports.store.list(Some(credentials)).await?);
        }
        let managed: Vec<SecretDescription> =
            listed.into_iter().filter(|s| self.is_managed(s)).collect();
        let results: Vec<Managed> = stream::iter(managed)
            .map(|secret| async move {
                if let Credentials::Listed(prefix) = &self.settings.credentials
                    && secret.name.starts_with(prefix.as_str())
                {
                    return Managed { secret, current: None };
                }
                let current = match self.ports.store.value(&secret.arn_or_name(), AWSCURRENT, None).await {
                    Ok(Some(text)) => ManagedSecret::parse(&secret.name, AWSCURRENT, &text)
                        .and_then(|current| {
                            check_rotated(&secret, &current.provider, self.settings.credentials.prefix())?;
                            Ok(current)
                        })
                        .map_err(|err| tracing::warn!(secret = %secret.name, error = %err, "unreadable current value"))
                        .ok(),
                    Ok(None) => None,
                    Err(err) => {
                        tracing::warn!(secret = %secret.name, error = %err, "could not read the current value");
                        None
                    }
                };
                Managed { secret, current }
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        Ok(results)
    }

    fn in_scope(&self, secret_name: &str) -> bool {
        self.settings.in_scope(secret_name)
    }

    fn is_managed(&self, secret: &SecretDescription) -> bool {
        self.settings.manages(secret)
    }

    /// Sends an alert once per (`kind`, `dedupe`) and audits it; returns whether it went out. A
    /// critical alert is at-least-once: sent even when its once-marker cannot be written, and parked
    /// for the next pass when its Publish fails.
    pub(crate) async fn alert_once(
        &self,
        secret: &SecretDescription,
        dedupe: &str,
        alert: Alert,
        report: &mut KeeperReport,
    ) -> bool {
        let critical = alert.severity == Severity::Critical;
        match self
            .ports
            .audit
            .record_alert_once(&secret.name, alert.event, dedupe)
            .await
        {
            Ok(true) => {}
            Ok(false) => return false,
            Err(err) => {
                report.errors.push(format!(
                    "{}: alert {} not recorded: {err}",
                    secret.name, alert.event
                ));
                if !critical {
                    return false;
                }
            }
        }
        let outcome = match self.ports.alerts.send(&alert).await {
            Ok(()) => Outcome::Succeeded,
            Err(err) => {
                report.errors.push(format!(
                    "{}: alert {} not published: {err}",
                    secret.name, alert.event
                ));
                self.ports.park_if_critical(&alert).await;
                Outcome::Failed
            }
        };
        self.audit(
            secret,
            Action::Alert,
            outcome,
            dedupe,
            Some(alert.event.to_string()),
        )
        .await;
        report.alerts_sent += usize::from(outcome == Outcome::Succeeded);
        outcome == Outcome::Succeeded
    }

    /// Delivers the critical alerts whose Publish failed when they were raised (by the rotator, the
    /// CLI or an earlier pass), and forgets each once it went out. One that fails again stays parked.
    async fn deliver_parked(&self, report: &mut KeeperReport) {
        let parked = match self.ports.audit.parked_alerts().await {
            Ok(parked) => parked,
            Err(err) => return report.errors.push(format!("parked alerts: {err}")),
        };
        report.errors.extend(parked.unreadable);
        // The outbox is the table's: a keeper scoped to a prefix delivers only its own secrets' alerts.
        for parked in parked
            .items
            .into_iter()
            .filter(|parked| self.in_scope(&parked.alert.secret_name))
        {
            let alert = &parked.alert;
            if let Err(err) = self.ports.alerts.send(alert).await {
                report.errors.push(format!(
                    "{}: parked alert {} still not published: {err}",
                    alert.secret_name, alert.event
                ));
                continue;
            }
            report.alerts_sent += 1;
            report.parked_delivered += 1;
            // A parked alert that cannot be forgotten goes out again next pass: at least once.
            if let Err(err) = self.ports.audit.unpark_alert(&parked.id).await {
                report.errors.push(format!(
                    "{}: parked alert {} delivered but not forgotten: {err}",
                    alert.secret_name, alert.event
                ));
            }
        }
    }

    /// Writes an audit event of the keeper's own (`alert`, `revoke`); a failure is logged only.
    pub(crate) async fn audit(
        &self,
        secret: &SecretDescription,
        action: Action,
        outcome: Outcome,
        version: &str,
        note: Option<String>,
    ) {
        let event = AuditEvent::new(
            self.ports.clock.now(),
            (&secret.arn, &secret.name),
            action,
            outcome,
            version,
        )
        .triggered(Some(Trigger::Scheduled))
        .by(KEEPER_ACTOR)
        .error(note);
        self.ports.record_quietly(&event).await;
    }
}

impl KeeperReport {
    /// Adds what one part of the pass did to the pass's report.
    fn absorb(&mut self, part: KeeperReport) {
        // Destructured, so that a new count cannot be left out of the sum.
        let KeeperReport {
            secrets,
            revoked,
            postponed,
            failed,
            upcoming,
            overdue,
            stuck,
            orphans,
            tasks,
            previous_recorded,
            alerts_sent,
            parked_delivered,
            errors,
        } = part;
        self.secrets += secrets;
        self.revoked += revoked;
        self.postponed += postponed;
        self.failed += failed;
        self.upcoming += upcoming;
        self.overdue += overdue;
        self.stuck += stuck;
        self.orphans += orphans;
        self.tasks += tasks;
        self.previous_recorded += previous_recorded;
        self.alerts_sent += alerts_sent;
        self.parked_delivered += parked_delivered;
        self.errors.extend(errors);
    }
}

/// Runs one secret's part of the pass. A panic in it (a bug, or an answer nobody foresaw) is reported
/// for that secret, and the pass goes on with the next: one secret never costs the others their pass.
pub(crate) async fn isolated(
    secret: &str,
    report: &mut KeeperReport,
    part: impl AsyncFnOnce(&mut KeeperReport),
) {
    let mut own = KeeperReport::default();
    let outcome = std::panic::AssertUnwindSafe(part(&mut own))
        .catch_unwind()
        .await;
    report.absorb(own);
    if outcome.is_err() {
        tracing::error!(
            secret,
            "a part of the keeper pass panicked; the pass goes on"
        );
        report.errors.push(format!(
            "{secret}: this secret's part of the pass failed unexpectedly"
        ));
    }
}

/// Two Lambda ARNs name the same function, whatever alias or version either carries.
fn same_function(a: &str, b: &str) -> bool {
    let base = |arn: &str| arn.split(':').take(7).collect::<Vec<_>>().join(":");
    base(a) == base(b)
}
