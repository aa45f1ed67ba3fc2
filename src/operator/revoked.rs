//! `keyrot revoked`: a person's record that they revoked an old key keyrot had left to them (a
//! revocation task, keeper/tasks.rs). While the old version still holds the key, the provider is asked
//! first: a key that still works is not recorded as revoked.

use crate::domain::audit::{Action, AuditEvent, Outcome, Revocation, RevocationStatus};
use crate::error::{Error, Result};
use crate::ports::{AuditLog, Clock, Family, KeyIssuer, SecretStore};

use super::Operator;

/// What `revoked` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRevoked {
    pub version_id: String,
    pub key: String,
    /// Whether the provider was seen refusing the key (false: its old value could no longer be read).
    pub verified: bool,
}

impl<F: Family> Operator<'_, F> {
    /// Settles the open task of `name` (the one of `version`, when it has several) as revoked, once the
    /// provider refuses the key. Refused, changing nothing, when no task is open, when the choice is
    /// ambiguous, or when the key still works.
    pub async fn record_revoked(
        &self,
        name: &str,
        version: Option<&str>,
        actor: &str,
    ) -> Result<RecordedRevoked> {
        let task = self.open_task(name, version).await?;
        self.refuse_in_service(name, &task).await?;
        let verified = self.refused_now(&task).await?;
        let settled = task.settled(RevocationStatus::Revoked);
        if self
            .ports
            .rewrite_revocation(&task, settled)
            .await?
            .is_none()
        {
            return Err(refusal(
                name,
                format!(
                    "the revocation of version {} changed while it was recorded",
                    task.old_version_id
                ),
                "see `keyrot status --secret NAME` and run the command again if the task is still open",
            ));
        }
        let checked = if verified {
            "the provider refuses it"
        } else {
            "its old value could no longer be read, so whether the provider refuses it was not checked"
        };
        let event = AuditEvent::new(
            self.ports.clock.now(),
            (&task.secret_arn, name),
            Action::Revoke,
            Outcome::Succeeded,
            &task.old_version_id,
        )
        .provider(task.provider.as_str())
        .by(actor)
        .error(Some(format!(
            "revoked by a person, recorded by {actor}; {checked}"
        )));
        self.ports.record_quietly(&event).await;
        Ok(RecordedRevoked {
            version_id: task.old_version_id,
            key: task.hint,
            verified,
        })
    }

    /// The one open task of `name`, or the one of `version`.
    async fn open_task(&self, name: &str, version: Option<&str>) -> Result<Revocation> {
        let mut open: Vec<Revocation> = self
            .ports
            .audit
            .revocations_of(name)
            .await?
            .complete(name, "revocation records")?
            .into_iter()
            .filter(|r| r.status == RevocationStatus::Manual)
            .filter(|r| version.is_none_or(|v| r.old_version_id == v))
            .collect();
        match (open.len(), version) {
            (1, _) => Ok(open.remove(0)),
            (0, Some(version)) => Err(refusal(
                name,
                format!("version {version} has no open revocation task"),
                "list the open tasks with `keyrot status --secret NAME`",
            )),
            (0, None) => Err(refusal(
                name,
                "no revocation task is open".to_owned(),
                "nothing is waiting for a person; `keyrot status --secret NAME` shows each old key's state",
            )),
            _ => {
                let versions: Vec<&str> = open.iter().map(|r| r.old_version_id.as_str()).collect();
                Err(refusal(
                    name,
                    format!(
                        "{} revocation tasks are open (versions {})",
                        open.len(),
                        versions.join(", ")
                    ),
                    "name the one you revoked with --version",
                ))
            }
        }
    }

    /// Refuses when the task's key is AWSCURRENT's again: it must not be revoked, and saying it was
    /// would hide that.
    async fn refuse_in_service(&self, name: &str, task: &Revocation) -> Result<()> {
        let secret = self.ports.store.describe(name).await?;
        let current = self.ports.current_value(name, &secret).await?;
        if current.key_view().fingerprint != task.fingerprint {
            return Ok(());
        }
        Err(refusal(
            name,
            format!(
                "the old key {} is the key AWSCURRENT holds again: it is in service",
                task.hint
            ),
            "do not revoke it; rotate first (`keyrot rotate NAME`), and its task closes after that rotation",
        ))
    }

    /// Whether the provider refuses the task's key now; an error when it still accepts it. `false`
    /// when the key can no longer be read to ask.
    async fn refused_now(&self, task: &Revocation) -> Result<bool> {
        let Some(old) = self.ports.revoked_value(task).await else {
            return Ok(false);
        };
        match self
            .ports
            .issuer
            .validate(&task.secret_name, &old, &old.api_key)
            .await
        {
            Err(Error::KeyRejected { .. }) => Ok(true),
            Ok(()) => Err(refusal(
                &task.secret_name,
                format!(
                    "the old key {} still works at {}",
                    task.hint,
                    task.provider.title()
                ),
                "revoke it as the revocation_task alert says, then run this again",
            )),
            Err(other) => Err(other),
        }
    }
}

fn refusal(name: &str, problem: String, fix: &str) -> Error {
    Error::config(
        name,
        "keyrot revoked",
        format!("cannot record the revocation: {problem}"),
        format!("nothing was changed; {}", fix.replace("NAME", name)),
    )
}
