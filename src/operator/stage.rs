//! `keyrot stage`: a key a person created (Anthropic, Stripe and GitHub have no API that creates keys)
//! is validated, compared with the current key, and stored under `KEYROT_STAGED`, for the next
//! rotation's createSecret to adopt.

use secrecy::SecretString;

use super::Operator;
use super::repair::STUCK_AFTER;
use crate::domain::Trigger;
use crate::domain::audit::{Action, AuditEvent, Outcome};
use crate::domain::keys::{KeyView, NewKey};
use crate::domain::policy::{AWSCURRENT, AWSPENDING, KEYROT_STAGED};
use crate::domain::{ManagedSecret, SecretDescription};
use crate::error::{Error, Result};
use crate::ports::{Clock, Family, KeyIssuer, SecretStore, StageMove};

/// What `stage` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub version_id: String,
    pub key: String,
    /// What a person should know of the key beside the current one (a GitHub token's scopes).
    pub notes: Vec<String>,
    /// What became of an empty AWSPENDING placeholder, if there was one.
    pub placeholder: Placeholder,
}

/// An empty AWSPENDING version (rotate-secret's placeholder, before createSecret stores a key) found
/// while staging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    None,
    /// Older than [`STUCK_AFTER`]: a rotation that had no key and was given up; cleared, so that the
    /// next rotation can start.
    Cleared(String),
    /// Younger: a rotation under way, whose createSecret (or Secrets Manager's retry of it) adopts
    /// this key. Clearing it could take the label from the key that createSecret is storing.
    UnderWay(String),
}

impl<F: Family> Operator<'_, F> {
    pub async fn stage_key(
        &self,
        secret_id: &str,
        key: SecretString,
        actor: &str,
    ) -> Result<Staged> {
        let secret = self.ports.store.describe(secret_id).await?;
        let current = self.ports.current_value(secret_id, &secret).await?;
        let view = KeyView::of(&key);
        refuse_unstageable(&secret, &current, &view)?;
        self.refuse_during_rotation(&secret, secret_id).await?;
        self.refuse_unusable(&secret, &current, &key, &view).await?;
        let notes = self
            .ports
            .issuer
            .compare_staged(&secret.name, &current, &key)
            .await?;
        let value = current.with_new_key(&NewKey {
            api_key: key,
            key_id: None,
            api_key_id: None,
            leftovers: Vec::new(),
            password: None,
        })?;
        let version_id = self.ports.store.put_staged(secret_id, &value).await?;
        let placeholder = self.clear_placeholder(&secret, secret_id).await?;
        let event = AuditEvent::new(
            self.ports.clock.now(),
            (&secret.arn, &secret.name),
            Action::Stage,
            Outcome::Succeeded,
            &version_id,
        )
        .provider(current.provider.name())
        .keys(Some(&current.key_view()), Some(&view))
        .triggered(Some(Trigger::Manual))
        .by(actor);
        self.ports.record_quietly(&event).await;
        tracing::info!(label = %KEYROT_STAGED, version = %version_id, "key staged");
        Ok(Staged {
            version_id,
            key: view.redacted,
            notes,
            placeholder,
        })
    }

    /// Refuses a key an earlier rotation retired (the rotation would refuse it), and one the provider
    /// rejects now (it would fail the rotation later), changing nothing.
    async fn refuse_unusable(
        &self,
        secret: &SecretDescription,
        current: &ManagedSecret,
        key: &SecretString,
        view: &KeyView,
    ) -> Result<()> {
        let name = &secret.name;
        if self.ports.retired_earlier(name, view).await? {
            return Err(Error::config(
                name,
                "staged key",
                format!(
                    "{} is an old key of this secret, revoked or due for revocation: the rotation would refuse it",
                    view.redacted
                ),
                format!(
                    "create a new key in the provider's console and stage that one with `keyrot stage {name}`"
                ),
            ));
        }
        match self.ports.issuer.validate(name, current, key).await {
            Err(Error::KeyRejected {
                provider,
                hint,
                detail,
                ..
            }) => Err(Error::config(
                name,
                "staged key",
                format!("the {provider} key {hint} was rejected by {provider} ({detail})"),
                format!(
                    "check that the key was copied whole and is active in the provider's console \
                     (or create a new one), then run `keyrot stage {name}` again"
                ),
            )),
            other => other,
        }
    }

    /// Refuses while a rotation has adopted a key (its AWSPENDING holds a value): finishSecret would
    /// take this one's label, or the next rotation find it gone.
    async fn refuse_during_rotation(
        &self,
        secret: &SecretDescription,
        secret_id: &str,
    ) -> Result<()> {
        let Some(pending) = secret
            .version_with(AWSPENDING)
            .filter(|v| !secret.has_stage(v, AWSCURRENT))
        else {
            return Ok(());
        };
        if self
            .ports
            .store
            .value(secret_id, AWSPENDING, Some(pending))
            .await?
            .is_none()
        {
            return Ok(());
        }
        let name = &secret.name;
        Err(Error::config(
            name,
            "AWSPENDING",
            format!("a rotation is under way (version {pending}) with the key it adopted"),
            format!(
                "let it finish (keyrot status --secret {name}), or clear it with keyrot repair {name}, then stage the key"
            ),
        ))
    }

    /// Removes AWSPENDING from the empty placeholder of a rotation given up with nothing staged (older
    /// than [`STUCK_AFTER`]), so the next rotation can start. A younger one is left to its rotation.
    async fn clear_placeholder(
        &self,
        secret: &SecretDescription,
        secret_id: &str,
    ) -> Result<Placeholder> {
        let Some(pending) = secret
            .version_with(AWSPENDING)
            .filter(|v| !secret.has_stage(v, AWSCURRENT))
        else {
            return Ok(Placeholder::None);
        };
        let store = &self.ports.store;
        let created = store.version_created(secret_id, pending).await?;
        let young = created.is_none_or(|at| self.ports.clock.now() - at < STUCK_AFTER);
        if young {
            return Ok(Placeholder::UnderWay(pending.to_owned()));
        }
        if store
            .value(secret_id, AWSPENDING, Some(pending))
            .await?
            .is_some()
        {
            return Ok(Placeholder::None);
        }
        store
            .move_stage(secret_id, AWSPENDING, StageMove::Off(pending))
            .await?;
        Ok(Placeholder::Cleared(pending.to_owned()))
    }
}

/// Only the providers with no API that creates keys (domain::staged) adopt a staged key; OpenAI,
/// database and generic rotations make their own, so a key staged there would stay alive with nobody to
/// adopt or revoke it. The key AWSCURRENT holds is no new key either.
fn refuse_unstageable(
    secret: &SecretDescription,
    current: &ManagedSecret,
    view: &KeyView,
) -> Result<()> {
    let name = &secret.name;
    if !current.provider.provider().is_staged() {
        let provider = current.provider.name();
        return Err(Error::config(
            name,
            "provider",
            format!(
                "is {provider}: only Anthropic, Stripe and GitHub secrets adopt a staged key (keyrot makes {provider} keys itself)"
            ),
            format!(
                "revoke the key you created at the provider, and rotate with `keyrot rotate {name}` instead"
            ),
        ));
    }
    if view.fingerprint == current.key_view().fingerprint {
        return Err(Error::config(
            name,
            "staged key",
            "is the key AWSCURRENT already holds",
            "create a new key at the provider and stage that one",
        ));
    }
    Ok(())
}
