//! Operator actions over the same ports as the rotation: stage a key a person made, roll back to the
//! previous key during its grace period, repair a stuck rotation. The CLI calls these.

mod orphans;
mod repair;
mod rollback;
mod rotate;
mod stage;
mod validate;

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

pub use orphans::OrphanDeletion;
pub use repair::Repaired;
pub use rollback::RolledBack;
pub use rotate::{FollowEnd, RotateRequest, Started};
pub use stage::Staged;
pub use validate::{Holds, TargetHolding, Validation};

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
    /// redeploy is READY. Returns the targets changed. With `redeploy_all`, a target that already
    /// holds the key is redeployed too: after an interrupted attempt, a target may hold the key in its
    /// variables while its live deployment (whose redeploy failed or was never started) serves another.
    pub(crate) async fn put_key_on_targets(
        &self,
        secret: &SecretDescription,
        targets: &[TargetSpec],
        key: &SecretString,
        redeploy_all: bool,
    ) -> Result<Vec<String>> {
        let fingerprint = KeyView::of(key).fingerprint;
        let mut changed = Vec::new();
        let mut deployments = Vec::new();
        for target in targets {
            let holds = self
                .targets
                .held_fingerprint(&secret.name, target)
                .await?
                .as_deref()
                == Some(fingerprint.as_str());
            if !holds {
                self.targets.push(&secret.name, target, key).await?;
                changed.push(target.label());
            }
            if (!holds || redeploy_all) && target.redeploys() {
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
