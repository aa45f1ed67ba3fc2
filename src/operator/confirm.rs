//! `keyrot confirm`: a person's word that every service keyrot does not redeploy (a target with
//! `redeploy` or `deploy` false) runs the current key, which lets the old keys' revocations go ahead.

use crate::domain::audit::{
    Action, AuditEvent, Confirmation, Outcome, Revocation, RevocationStatus,
};
use crate::domain::policy::AWSCURRENT;
use crate::domain::targets::TargetSpec;
use crate::error::{Error, Result};
use crate::ports::{AuditLog, Clock, Family, SecretStore, Target};

use super::Operator;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    /// The versions whose revocation no longer waits for a person.
    pub versions: Vec<String>,
    /// The targets the confirmation is about.
    pub targets: Vec<String>,
}

impl<F: Family> Operator<'_, F> {
    /// Records the confirmation on every revocation of the secret still pending without one. Refused,
    /// changing nothing, when no target waits for one, when such a target's variable does not hold the
    /// current key (a person cannot vouch for a service that was never given it), or when nothing
    /// waits.
    pub async fn confirm(&self, secret_id: &str, actor: &str) -> Result<Confirmed> {
        let secret = self.ports.store.describe(secret_id).await?;
        let current = self.ports.current_value(secret_id, &secret).await?;
        let name = secret.name.as_str();
        let targets: Vec<TargetSpec> = TargetSpec::parse_all(name, &current.targets)?
            .into_iter()
            .filter(|target| !target.redeploys())
            .collect();
        if targets.is_empty() {
            return Err(refusal(
                name,
                "has no target with redeploy (or deploy) false, so no revocation waits for a confirmation",
            ));
        }
        let fingerprint = current.key_view().fingerprint;
        self.holding_current(name, &targets, &fingerprint).await?;
        let waiting = self.waiting_for_confirmation(name).await?;
        let now = self.ports.clock.now();
        let mut versions = Vec::new();
        for read in &waiting {
            let confirmed = Revocation {
                confirmed: Some(Confirmation {
                    at: now,
                    by: actor.to_owned(),
                }),
                ..read.clone()
            };
            // A record settled meanwhile needs no confirmation any more.
            if self
                .ports
                .rewrite_revocation(read, confirmed)
                .await?
                .is_some()
            {
                versions.push(read.old_version_id.clone());
            }
        }
        let labels: Vec<String> = targets.iter().map(TargetSpec::label).collect();
        let event = AuditEvent::new(
            now,
            (&secret.arn, name),
            Action::Confirm,
            Outcome::Succeeded,
            secret.version_with(AWSCURRENT).unwrap_or_default(),
        )
        .provider(current.provider.name())
        .by(actor)
        .targets(labels.clone())
        .error(Some(format!(
            "confirmed that the services of {} run the current key; revocations of {} may go ahead",
            labels.join(", "),
            versions.join(", ")
        )));
        self.ports.record_quietly(&event).await;
        Ok(Confirmed {
            versions,
            targets: labels,
        })
    }
}

impl<F: Family> Operator<'_, F> {
    /// Refuses unless every target's variable holds the key with `fingerprint` (AWSCURRENT's): a
    /// person cannot vouch for a service that was never given the key.
    async fn holding_current(
        &self,
        name: &str,
        targets: &[TargetSpec],
        fingerprint: &str,
    ) -> Result<()> {
        for target in targets {
            if !self.ports.targets.holds(name, target, fingerprint).await? {
                return Err(refusal(
                    name,
                    &format!(
                        "target {} does not hold the current key, so its service cannot run it (check with `keyrot validate {name}`)",
                        target.label()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The secret's revocations still pending without a confirmation; refused when there is none.
    async fn waiting_for_confirmation(&self, name: &str) -> Result<Vec<Revocation>> {
        let waiting: Vec<Revocation> = self
            .ports
            .audit
            .revocations_of(name)
            .await?
            .complete(name, "revocation records")?
            .into_iter()
            .filter(|r| r.status == RevocationStatus::Pending && r.confirmed.is_none())
            .collect();
        if waiting.is_empty() {
            return Err(refusal(
                name,
                "has no pending revocation that waits for a confirmation",
            ));
        }
        Ok(waiting)
    }
}

fn refusal(name: &str, problem: &str) -> Error {
    Error::config(
        name,
        "keyrot confirm",
        format!("cannot confirm: {name} {problem}"),
        "nothing was changed; see docs/steps.md (targets keyrot does not redeploy)",
    )
}
