//! Revocation tasks: old keys whose grace ended and that nothing holds, but that keyrot cannot revoke
//! itself (Stripe has no API for it; a key keyrot never recorded an id for; a GitHub token whose old
//! value can no longer be read). A person revokes each in the provider's console; the keeper reminds
//! them once a day, with the steps, until `keyrot revoked NAME` records it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::SecretDescription;
use crate::domain::audit::Revocation;
use crate::domain::secret::Provider;
use crate::ports::{Alert, AlertKind, AuditLog, Family, Severity};

use super::{GraceKeeper, KeeperReport, Managed};

impl<F: Family> GraceKeeper<'_, F> {
    /// One `revocation_task` alert a day for every open task of this keeper's secrets.
    pub(super) async fn remind_tasks(
        &self,
        now: DateTime<Utc>,
        managed: &BTreeMap<&str, &Managed>,
        report: &mut KeeperReport,
    ) {
        let tasks = match self.ports.audit.revocation_tasks().await {
            Ok(tasks) => tasks.reporting(|problem| report.errors.push(problem)),
            Err(err) => return report.errors.push(format!("revocation tasks: {err}")),
        };
        for task in tasks.iter().filter(|t| self.in_scope(&t.secret_name)) {
            report.tasks += 1;
            let current = managed
                .get(task.secret_name.as_str())
                .and_then(|item| item.current.as_ref());
            if current.is_some_and(|c| c.key_view().fingerprint == task.fingerprint) {
                // Put back in service (a value written over the rotation): revoking it now would break
                // the secret, so the reminder waits, and a person is told why.
                report.errors.push(format!(
                    "{}: the old key {} of the open revocation task is AWSCURRENT's again; not reminded",
                    task.secret_name, task.hint
                ));
                continue;
            }
            // A deleted secret's old key may live on: its task is reminded all the same.
            let secret = match managed.get(task.secret_name.as_str()) {
                Some(item) => item.secret.clone(),
                None => SecretDescription {
                    arn: task.secret_arn.clone(),
                    name: task.secret_name.clone(),
                    ..SecretDescription::default()
                },
            };
            let dedupe = format!("{}#{}", task.old_version_id, now.format("%Y-%m-%d"));
            self.alert_once(&secret, &dedupe, task_alert(task), report)
                .await;
        }
    }
}

/// Why keyrot left the key to a person, as a clause.
fn why_a_person(task: &Revocation) -> &'static str {
    match task.provider {
        Provider::Stripe => "Stripe has no API that revokes keys",
        Provider::GitHub => {
            "GitHub revokes a token by its value, and the old version no longer holds it"
        }
        _ => {
            "keyrot has no record that it minted, identified or onboarded this key with a provider id (a key made by hand, or an id written into the secret's value), and never acts on ids it did not record"
        }
    }
}

/// The alert of one open task: what to revoke, where and how, and the command that records it.
pub(crate) fn task_alert(task: &Revocation) -> Alert {
    let (name, hint, version) = (&task.secret_name, &task.hint, &task.old_version_id);
    let steps = match task.provider.console() {
        Some(console) => console.revoke_task(name, hint, version),
        None => format!(
            "Revoke it in the {} console, then record it with `keyrot revoked {name} --version {version}`, which checks that the key is refused.",
            task.provider.title()
        ),
    };
    Alert::new(AlertKind::RevocationTask, Severity::Warning, name)
        .subject(format!("keyrot: revoke the old key {hint} of {name}"))
        .text(format!(
            "The old key {hint} of {name} must be revoked by a person: {}. Its grace ended at {} and nothing keyrot knows of uses it. {steps} This reminder repeats daily until then.",
            why_a_person(task),
            task.due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ))
        .details(json!({"event": "revocation_task", "secret": name, "version_id": version,
            "key": hint, "provider": task.provider.as_str(),
            "console": task.provider.console().map(|c| c.revoke_url),
            "command": format!("keyrot revoked {name} --version {version}")}))
}
