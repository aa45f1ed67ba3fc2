//! createSecret: obtain a new key and store it as the pending version.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::domain::audit::RevocationStatus;
use crate::domain::keys::{AccountOwner, KeyView, NewKey};
use crate::domain::policy::{AWSPENDING, AWSPREVIOUS, KEYROT_STAGED};
use crate::domain::provenance::{self, KeyIds, KeyRecord};
use crate::domain::secret::Provider;
use crate::domain::staged::{Console, Revoker};
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, ProviderSettings, RotationEvent, SecretDescription, Trigger};
use crate::error::{Error, Result};
use crate::ports::{
    Alert, AlertKind, AuditLog, Clock, Family, KeyIssuer, Ports, PutOutcome, SecretStore, Severity,
    StageMove,
};

use super::{Evidence, Progress, Rotator};
use crate::revocation::revocation_of;

/// Where a rotation's new key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// keyrot minted it through the provider's API: keyrot must revoke it if it goes unused.
    Minted,
    /// A person made it and staged it: it is theirs, and never revoked for losing a race.
    Adopted,
}

/// A new key this attempt obtained, with how and its record.
struct NewCandidate {
    key: NewKey,
    origin: Origin,
    record: KeyRecord,
}

impl From<Origin> for provenance::Origin {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::Minted => provenance::Origin::Minted,
            Origin::Adopted => provenance::Origin::Identified,
        }
    }
}

impl<F: Family> Rotator<'_, F> {
    pub(super) async fn create_secret(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        let current = self.ports.current_value(&event.secret_id, secret).await?;
        evidence.provider = Some(current.provider.name());
        evidence.old_key = Some(current.key_view());
        let admin_prefix = Some(self.settings.admin_prefix.as_str());
        crate::domain::credential::check_rotated(secret, &current.provider, admin_prefix)?;
        // Refuse a malformed target before a key is minted for it.
        TargetSpec::parse_all(&secret.name, &current.targets)?;

        // Secrets Manager repeats createSecret; once the pending version holds a value it is final.
        if let Some(pending) = self.ports.pending_value(event, secret).await? {
            evidence.new_key = Some(pending.key_view());
            return Ok(Progress::AlreadyDone);
        }
        self.check_role_free(secret, &current, evidence.trigger)
            .await?;
        let (new_key, origin) = self.new_key(event, secret, &current, evidence).await?;
        let key = NewCandidate {
            record: self.record_key(event, secret, &current, &new_key, origin, evidence),
            key: new_key,
            origin,
        };
        // The record comes first: a key in a value is revoked later only on its word. A minted key
        // that cannot be recorded is not stored either, so it goes now rather than live unknown.
        if let Err(err) = self.ports.audit.record_key(&key.record).await {
            if origin == Origin::Minted {
                // A revocation that fails here is logged, and the orphan check finds the key.
                let _ = self.discard(secret, event, &current, &key).await;
            }
            return Err(err);
        }
        let stored = match self.store_pending(event, &current, &key.key).await {
            Ok(stored) => stored,
            Err(err) => {
                self.unless_stored(event, secret, &current, &key).await;
                return Err(err);
            }
        };
        match stored {
            PutOutcome::Stored => {
                // Leftovers only cost hygiene, not the rotation: the grace keeper reports orphans anyway.
                if let Err(err) = self
                    .ports
                    .issuer
                    .remove_leftovers(
                        &secret.name,
                        &current,
                        &event.client_request_token,
                        &key.key,
                    )
                    .await
                {
                    tracing::warn!(error = %err, "could not remove leftovers of earlier attempts");
                }
                Ok(Progress::Done)
            }
            PutOutcome::LostRace => {
                tracing::warn!(
                    "pending version was written concurrently; this attempt's key is not used"
                );
                // A minted key that lost must not stay alive unknown to anyone; an adopted key is the
                // same key the winner stored, so it stays.
                if origin == Origin::Minted {
                    self.discard(secret, event, &current, &key).await?;
                }
                evidence.new_key = None;
                Ok(Progress::AlreadyDone)
            }
        }
    }

    /// A database's next role is the one AWSPREVIOUS logs in as: a new password on it ends that
    /// version's grace at once. Refused while the grace lasts, unless the rotation is an emergency
    /// (whose point is to end it).
    async fn check_role_free(
        &self,
        secret: &SecretDescription,
        current: &ManagedSecret,
        trigger: Option<Trigger>,
    ) -> Result<()> {
        let ProviderSettings::Postgres(settings) = &current.provider else {
            return Ok(());
        };
        let Some(previous) = secret.version_with(AWSPREVIOUS) else {
            return Ok(());
        };
        if trigger == Some(Trigger::Emergency) {
            return Ok(());
        }
        let role = settings.next_username();
        let revocation = self.ports.audit.revocation(&secret.name, previous).await?;
        let Some(revocation) = revocation.filter(|r| r.status.is_owed()) else {
            return Ok(());
        };
        if revocation.key_id.as_deref() != Some(role.as_str()) {
            return Ok(());
        }
        Err(Error::config(
            &secret.name,
            "username",
            format!(
                "the next role {role} still serves AWSPREVIOUS (version {previous}) until its grace ends at {}; a new password on it now would end that grace early",
                revocation.due.to_rfc3339()
            ),
            format!(
                "rotate after {}, or now with `keyrot rotate {} --emergency`, which ends the grace",
                revocation.due.to_rfc3339(),
                secret.name
            ),
        ))
    }

    /// The record of the rotation's new key, as this attempt obtained it.
    fn record_key(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        current: &ManagedSecret,
        new_key: &NewKey,
        origin: Origin,
        evidence: &mut Evidence,
    ) -> KeyRecord {
        let view = new_key.key_view();
        evidence.new_key = Some(view.clone());
        KeyRecord::new(
            (&secret.name, &event.client_request_token),
            &current.provider,
            &view,
            KeyIds {
                key_id: new_key.key_id.as_deref(),
                api_key_id: new_key.api_key_id.as_deref(),
            },
            (origin.into(), self.ports.clock.now(), &evidence.actor),
        )
    }

    async fn store_pending(
        &self,
        event: &RotationEvent,
        current: &ManagedSecret,
        new_key: &NewKey,
    ) -> Result<PutOutcome> {
        let value = current.with_new_key(new_key)?;
        self.ports
            .store
            .put_pending(
                &event.secret_id,
                &event.client_request_token,
                &value,
                event.rotation_token.as_deref(),
            )
            .await
    }

    /// After a failed PutSecretValue of a key this attempt minted: reads the pending version back,
    /// and revokes the key unless it was stored after all (the answer was lost). A retry would mint
    /// another key, so a key that was not stored must not outlive the error. When even the read
    /// fails, the key stays known by its record, and the next attempt removes it as a leftover.
    async fn unless_stored(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        current: &ManagedSecret,
        key: &NewCandidate,
    ) {
        if key.origin != Origin::Minted {
            return;
        }
        match self.ports.pending_value(event, secret).await {
            Ok(Some(stored)) if stored.key_view().fingerprint == key.record.fingerprint => {
                tracing::warn!("the pending value was stored although its PutSecretValue failed");
            }
            Ok(_) => {
                let _ = self.discard(secret, event, current, key).await;
            }
            Err(err) => tracing::error!(
                error = %err,
                "a minted key whose store failed could not be checked; the next attempt removes it"
            ),
        }
    }

    /// Revokes a key this attempt minted and will not store.
    async fn discard(
        &self,
        secret: &SecretDescription,
        event: &RotationEvent,
        current: &ManagedSecret,
        key: &NewCandidate,
    ) -> Result<()> {
        let discarded = revocation_of(
            secret,
            &event.client_request_token,
            (&current.provider, key.key.key_view()),
            Some(&key.record),
            self.ports.clock.now(),
        );
        let revoked = self.ports.revoke_unrecorded(&discarded.handle()).await;
        if let Err(err) = &revoked {
            tracing::error!(error = %err, key = %discarded.hint, "a minted key that was not stored could not be revoked; the grace keeper reports it as an orphan");
        }
        revoked.map(|_| ())
    }

    /// The rotation's new key: minted at the provider, or, for a provider with no API that creates
    /// keys (domain::staged), the one a person staged. Refused when it is AWSCURRENT's key, or a staged
    /// key an earlier rotation retired (adopting it would bring back a key that is being revoked).
    async fn new_key(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        current: &ManagedSecret,
        evidence: &mut Evidence,
    ) -> Result<(NewKey, Origin)> {
        let provider = current.provider.provider();
        let (new_key, origin) = match provider.console() {
            Some(console) => {
                let staged = Staged {
                    console,
                    fix: console.stage_fix(provider, &secret.name),
                };
                (
                    self.adopt_staged_key(event, secret, current, &staged, evidence)
                        .await?,
                    Origin::Adopted,
                )
            }
            None => (
                self.ports
                    .issuer
                    .mint(
                        &secret.name,
                        current,
                        &AccountOwner::of(&secret.name, &secret.arn)
                            .account_name(&event.client_request_token),
                    )
                    .await?,
                Origin::Minted,
            ),
        };
        let new_view = new_key.key_view();
        if new_view.fingerprint == current.key_view().fingerprint {
            return Err(Error::config(
                &secret.name,
                "new key",
                "is the key AWSCURRENT already holds",
                "provide a different key; a rotation must replace the key",
            ));
        }
        if origin == Origin::Adopted && self.ports.retired_earlier(&secret.name, &new_view).await? {
            return Err(Error::config(
                &secret.name,
                "KEYROT_STAGED",
                "the staged key is an old key of this secret, revoked or due for revocation",
                provider
                    .console()
                    .map(|console| console.stage_fix(provider, &secret.name))
                    .unwrap_or_default(),
            ));
        }
        Ok((new_key, origin))
    }

    /// The key a person staged under `KEYROT_STAGED`, validated, compared with the current key and
    /// identified at the provider.
    async fn adopt_staged_key(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        current: &ManagedSecret,
        staged: &Staged,
        evidence: &mut Evidence,
    ) -> Result<NewKey> {
        let fix = &staged.fix;
        let Some(staged_version) = secret.version_with(KEYROT_STAGED) else {
            return Err(self.nothing_staged(event, secret, current, staged).await);
        };
        let text = self
            .ports
            .store
            .value(&event.secret_id, KEYROT_STAGED, Some(staged_version))
            .await?
            .ok_or_else(|| {
                Error::config(
                    &secret.name,
                    KEYROT_STAGED,
                    "the staged version holds no value",
                    fix.clone(),
                )
            })?;
        let key = staged_key(&text).ok_or_else(|| {
            Error::config(
                &secret.name,
                KEYROT_STAGED,
                "the staged version holds no key",
                fix.clone(),
            )
        })?;
        if KeyView::of(&key).fingerprint == current.key_view().fingerprint {
            return Err(Error::config(
                &secret.name,
                KEYROT_STAGED,
                "the staged key is the key AWSCURRENT already holds",
                fix.clone(),
            ));
        }
        let issuer = &self.ports.issuer;
        issuer.validate(&secret.name, current, &key).await?;
        let notes = issuer.compare_staged(&secret.name, current, &key).await?;
        evidence.notes.extend(notes);
        let key_id = issuer.identify(&secret.name, current, &key).await?;
        // GitHub revokes by value, so only an Anthropic key is left to a person without its id.
        let by_id = current.provider.provider() == Provider::Anthropic;
        if key_id.is_none() && by_id && staged.console.revoked_by == Revoker::Api {
            tracing::warn!(
                "the staged key's provider id was not found: its revocation will need a person"
            );
        }
        Ok(NewKey {
            api_key: key,
            key_id,
            api_key_id: None,
            leftovers: Vec::new(),
            password: None,
        })
    }

    /// Ends a rotation that found nothing staged: the placeholder's AWSPENDING goes (left, it would
    /// block every later rotation), so do the one-shot tags, which were for this rotation; then a
    /// person is asked for a key. Returns the step's error.
    async fn nothing_staged(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        current: &ManagedSecret,
        staged: &Staged,
    ) -> Error {
        let unblocked = async {
            self.ports
                .store
                .move_stage(
                    &event.secret_id,
                    AWSPENDING,
                    StageMove::Off(&event.client_request_token),
                )
                .await?;
            self.ports
                .clear_one_shot_tags(&event.secret_id, secret, &event.client_request_token)
                .await
        };
        if let Err(err) = unblocked.await {
            return err;
        }
        self.alert_key_needed(secret, &staged.fix).await;
        Error::config(
            &secret.name,
            KEYROT_STAGED,
            format!(
                "no key is staged, and {} has no API that creates one",
                current.provider.provider().title()
            ),
            staged.fix.clone(),
        )
    }

    async fn alert_key_needed(&self, secret: &SecretDescription, fix: &str) {
        let alert = Alert::new(AlertKind::KeyNeeded, Severity::Warning, &secret.name)
            .subject(format!("keyrot: stage a new key for {}", secret.name))
            .text(format!(
                "The rotation of {} needs a new key that a person creates. To fix: {fix}.",
                secret.name
            ))
            .details(json!({
                "event": "key_needed",
                "secret": secret.name,
                "secret_arn": secret.arn,
                "command": format!("keyrot stage {}", secret.name),
                "fix": fix,
            }));
        self.ports.send_quietly(&alert).await;
    }
}

/// A rotation of a provider whose keys a person creates: its console, and the fix that asks for a key.
struct Staged {
    console: &'static Console,
    fix: String,
}

/// The key of a staged version: a managed-secret document's `api_key` (a credential's `admin_key` or
/// `token`), or the bare key.
pub(super) fn staged_key(text: &SecretString) -> Option<SecretString> {
    let raw = text.expose_secret().trim();
    if raw.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(raw).ok()?;
        let field = value
            .get("provider")
            .and_then(serde_json::Value::as_str)
            .and_then(Provider::parse)
            .map_or("api_key", Provider::key_field);
        let key = value.get(field)?.as_str()?.trim();
        return (!key.is_empty()).then(|| SecretString::from(key.to_owned()));
    }
    (!raw.is_empty()).then(|| SecretString::from(raw.to_owned()))
}

impl<F: Family> Ports<F> {
    /// Whether `key` is one an earlier rotation of this secret took out of service (its revocation is
    /// owed or done): bringing it back would revive a key that is being revoked.
    pub(crate) async fn retired_earlier(&self, secret_name: &str, key: &KeyView) -> Result<bool> {
        Ok(self
            .audit
            .revocations_of(secret_name)
            .await?
            .complete(secret_name, "revocation records")?
            .iter()
            .any(|r| r.fingerprint == key.fingerprint && r.status != RevocationStatus::Cancelled))
    }
}
