//! testSecret: the pending key must still work before it becomes AWSCURRENT.

use crate::domain::keys::KeyView;
use crate::domain::{RotationEvent, SecretDescription};
use crate::error::Result;
use crate::ports::{Alerts, AuditLog, Clock, KeyIssuer, SecretStore};

use super::{Evidence, Progress, Rotator};

impl<S, I, A, N, C> Rotator<S, I, A, N, C>
where
    S: SecretStore,
    I: KeyIssuer,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    pub(super) async fn test_secret(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        match self.pending_value(event, secret).await? {
            Some(pending) => {
                evidence.provider = Some(pending.provider.name());
                evidence.new_key = Some(KeyView::of(&pending.api_key));
                self.issuer
                    .validate(&secret.name, &pending, &pending.api_key)
                    .await?;
            }
            None => {
                // RotateImmediately=false: Secrets Manager tests the configuration on an empty placeholder,
                // so what can be tested is the current key and the access to the provider.
                let current = self.current_value(event, secret).await?;
                evidence.provider = Some(current.provider.name());
                evidence.old_key = Some(KeyView::of(&current.api_key));
                self.issuer
                    .validate(&secret.name, &current, &current.api_key)
                    .await?;
            }
        }
        Ok(Progress::Done)
    }
}
