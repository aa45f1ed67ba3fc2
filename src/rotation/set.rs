//! setSecret: make sure the pending key works at the provider before anything depends on it.

use crate::domain::keys::KeyView;
use crate::domain::{RotationEvent, SecretDescription};
use crate::error::{Error, Result};
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
    pub(super) async fn set_secret(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        let pending = self.pending_value(event, secret).await?.ok_or_else(|| {
            Error::protocol(
                &secret.name,
                format!(
                    "the pending version {} holds no value, so createSecret has not run for it; let Secrets Manager run createSecret first",
                    event.client_request_token
                ),
            )
        })?;
        evidence.provider = Some(pending.provider.name());
        evidence.new_key = Some(KeyView::of(&pending.api_key));
        self.issuer
            .validate(&secret.name, &pending, &pending.api_key)
            .await?;
        Ok(Progress::Done)
    }
}
