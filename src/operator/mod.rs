//! Operator actions over the same ports as the rotation: stage a key a person made, roll back to the
//! previous key during its grace period, repair a stuck rotation. The CLI calls these.

mod repair;
mod rollback;
mod stage;

#[cfg(test)]
mod tests;

use secrecy::SecretString;

use crate::domain::SecretDescription;
use crate::domain::keys::KeyView;
use crate::domain::targets::TargetSpec;
use crate::error::{Error, Result};
use crate::ports::{Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Target};
use crate::rotation::deploy::Wait;
use crate::rotation::{Invocation, Rotator};

pub use repair::Repaired;
pub use rollback::RolledBack;
pub use stage::Staged;

impl<S, I, T, A, N, C> Rotator<S, I, T, A, N, C>
where
    S: SecretStore,
    I: KeyIssuer,
    T: Target,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    /// Puts `key` on every target that does not hold it, redeploys those, and waits until every
    /// redeploy is READY. Returns the targets changed.
    pub(crate) async fn put_key_on_targets(
        &self,
        secret: &SecretDescription,
        targets: &[TargetSpec],
        key: &SecretString,
    ) -> Result<Vec<String>> {
        let fingerprint = KeyView::of(key).fingerprint;
        let mut changed = Vec::new();
        let mut deployments = Vec::new();
        for target in targets {
            if self
                .targets
                .held_fingerprint(&secret.name, target)
                .await?
                .as_deref()
                == Some(fingerprint.as_str())
            {
                continue;
            }
            self.targets.push(&secret.name, target, key).await?;
            changed.push(target.label());
            if target.redeploys() {
                deployments.push((target, self.targets.redeploy(&secret.name, target).await?));
            }
        }
        match self
            .wait_for_deployments(secret, &Invocation::default(), &deployments)
            .await?
        {
            Wait::Ready => Ok(changed),
            Wait::Failed { target, state } => Err(Error::protocol(
                &secret.name,
                format!(
                    "the redeploy of {target} ended {state}; its live deployment still serves the key it had"
                ),
            )),
        }
    }
}
