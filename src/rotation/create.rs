//! createSecret: obtain a new key and store it as the pending version.

use crate::domain::keys::KeyView;
use crate::domain::{ManagedSecret, RotationEvent, SecretDescription};
use crate::error::{Error, Result};
use crate::ports::{Alerts, AuditLog, Clock, KeyIssuer, PutOutcome, SecretStore};

use super::{Evidence, Progress, Rotator};

impl<S, I, A, N, C> Rotator<S, I, A, N, C>
where
    S: SecretStore,
    I: KeyIssuer,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    pub(super) async fn create_secret(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        let current = self.current_value(event, secret).await?;
        evidence.provider = Some(current.provider.name());
        evidence.old_key = Some(KeyView::of(&current.api_key));
        ensure_no_targets(secret, &current)?;

        // Secrets Manager repeats createSecret; once the pending version holds a value it is final.
        if let Some(pending) = self.pending_value(event, secret).await? {
            evidence.new_key = Some(KeyView::of(&pending.api_key));
            return Ok(Progress::AlreadyDone);
        }

        let new_key = self
            .issuer
            .mint(&secret.name, &current, &event.client_request_token)
            .await?;
        let new_view = KeyView::of(&new_key.api_key);
        if new_view.fingerprint == KeyView::of(&current.api_key).fingerprint {
            return Err(Error::config(
                &secret.name,
                "new key",
                "is the key AWSCURRENT already holds",
                "provide a different key; a rotation must replace the key",
            ));
        }
        evidence.new_key = Some(new_view);
        let value = current.with_new_key(&new_key)?;
        match self
            .store
            .put_pending(
                &event.secret_id,
                &event.client_request_token,
                &value,
                event.rotation_token.as_deref(),
            )
            .await?
        {
            PutOutcome::Stored => Ok(Progress::Done),
            PutOutcome::LostRace => {
                // A concurrent delivery of this step stored its own key first; ours must not stay alive
                // unknown to anyone.
                tracing::warn!(
                    "pending version was written concurrently; discarding the key minted here"
                );
                let discarded = super::finish::revocation_of(
                    secret,
                    &event.client_request_token,
                    &current.provider,
                    &(&new_key).into(),
                    self.clock.now(),
                );
                self.issuer.revoke(&discarded).await?;
                evidence.new_key = None;
                Ok(Progress::AlreadyDone)
            }
        }
    }
}

/// Deployment targets arrive with their adapters; until then a secret that names targets is refused
/// rather than rotated behind the targets' back (they would keep a key that is later revoked).
fn ensure_no_targets(secret: &SecretDescription, current: &ManagedSecret) -> Result<()> {
    if current.targets.is_empty() {
        return Ok(());
    }
    Err(Error::config(
        &secret.name,
        "AWSCURRENT value: targets",
        "names deployment targets, which this build of keyrot cannot update yet",
        "remove the targets from the secret, or deploy a keyrot build with Vercel/Render support",
    ))
}
