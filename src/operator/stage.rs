//! `keyrot stage`: a key a person created (Anthropic has no API that creates keys) is validated and
//! stored under `KEYROT_STAGED`, for the next rotation's createSecret to adopt.

use secrecy::SecretString;

use crate::domain::ProviderSettings;
use crate::domain::audit::{AuditEvent, Outcome};
use crate::domain::keys::{KeyView, NewKey};
use crate::domain::policy::{AWSCURRENT, AWSPENDING, KEYROT_STAGED};
use crate::error::{Error, Result};
use crate::ports::{Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Target};
use crate::rotation::Rotator;

/// What `stage` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub version_id: String,
    pub key: String,
    /// The empty AWSPENDING placeholder a rotation with nothing staged left behind, now cleared.
    pub cleared_pending: Option<String>,
}

impl<S, I, T, A, N, C> Rotator<S, I, T, A, N, C>
where
    S: SecretStore,
    I: KeyIssuer,
    T: Target,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    pub async fn stage_key(
        &self,
        secret_id: &str,
        key: SecretString,
        actor: &str,
    ) -> Result<Staged> {
        let secret = self.store.describe(secret_id).await?;
        let current = self.current_value(secret_id, &secret).await?;
        // Only Anthropic's createSecret adopts a staged key; OpenAI and generic rotations mint their
        // own, so a key staged there would stay alive with nobody to adopt or revoke it.
        if !matches!(current.provider, ProviderSettings::Anthropic(_)) {
            return Err(Error::config(
                &secret.name,
                "provider",
                format!(
                    "is {}: only Anthropic secrets adopt a staged key (keyrot mints {} keys itself)",
                    current.provider.name(),
                    current.provider.name()
                ),
                format!(
                    "revoke the key you created at the provider, and rotate with `keyrot rotate {}` instead",
                    secret.name
                ),
            ));
        }
        let view = KeyView::of(&key);
        if view.fingerprint == KeyView::of(&current.api_key).fingerprint {
            return Err(Error::config(
                &secret.name,
                "staged key",
                "is the key AWSCURRENT already holds",
                "create a new key at the provider and stage that one",
            ));
        }
        if self.retired_earlier(&secret.name, &view).await? {
            return Err(Error::config(
                &secret.name,
                "staged key",
                format!(
                    "{} is an old key of this secret, revoked or due for revocation: the rotation would refuse it",
                    view.redacted
                ),
                format!(
                    "create a new key in the provider's console and stage that one with `keyrot stage {}`",
                    secret.name
                ),
            ));
        }
        // A key that does not work now would fail the rotation later: refuse it here, changing nothing.
        match self.issuer.validate(&secret.name, &current, &key).await {
            Ok(()) => {}
            Err(Error::KeyRejected {
                provider,
                hint,
                detail,
                ..
            }) => {
                return Err(Error::config(
                    &secret.name,
                    "staged key",
                    format!("the {provider} key {hint} was rejected by {provider} ({detail})"),
                    format!(
                        "check that the key was copied whole and is active in the provider's console \
                         (or create a new one), then run `keyrot stage {}` again",
                        secret.name
                    ),
                ));
            }
            Err(err) => return Err(err),
        }
        let value = current.with_new_key(&NewKey {
            api_key: key,
            key_id: None,
            api_key_id: None,
            leftovers: Vec::new(),
        })?;
        let version_id = self.store.put_staged(secret_id, &value).await?;

        let mut cleared_pending = None;
        let pending = secret
            .version_with(AWSPENDING)
            .filter(|v| !secret.has_stage(v, AWSCURRENT));
        if let Some(pending) = pending
            && self
                .store
                .value(secret_id, AWSPENDING, Some(pending))
                .await?
                .is_none()
        {
            self.store
                .move_stage(secret_id, AWSPENDING, None, Some(pending))
                .await?;
            cleared_pending = Some(pending.to_owned());
        }
        let event = AuditEvent {
            at: self.clock.now(),
            secret_arn: secret.arn.clone(),
            secret_name: secret.name.clone(),
            action: "stage".to_owned(),
            outcome: Outcome::Succeeded,
            version_id: version_id.clone(),
            provider: current.provider.name().to_owned(),
            old_key_hint: Some(KeyView::of(&current.api_key).last4),
            new_key_hint: Some(view.last4.clone()),
            trigger: "manual".to_owned(),
            actor: actor.to_owned(),
            targets: Vec::new(),
            duration_ms: 0,
            error: None,
            retryable: false,
        };
        if let Err(err) = self.audit.record(&event).await {
            tracing::warn!(error = %err, "audit item could not be written");
        }
        tracing::info!(label = KEYROT_STAGED, version = %version_id, "key staged");
        Ok(Staged {
            version_id,
            key: view.redacted,
            cleared_pending,
        })
    }
}
