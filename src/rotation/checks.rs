//! The checks every step makes before it acts (docs/steps.md, "Entry checks").

use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::{ManagedSecret, RotationEvent, SecretDescription, Step};
use crate::error::{Error, Result};
use crate::ports::{Clock, Family, SecretStore};

use super::{Evidence, Rotator};

/// Where the event's token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The token carries AWSPENDING: the rotation is under way.
    Pending,
    /// The token is already AWSCURRENT: the rotation finished (or finishSecret crashed after promoting it).
    AlreadyCurrent,
}

impl<F: Family> Rotator<'_, F> {
    /// DescribeSecret, then refuse what the protocol forbids: rotation disabled, a token that is not a
    /// version of the secret, or a version that is neither pending nor already current.
    pub(super) async fn enter(
        &self,
        event: &RotationEvent,
        evidence: &mut Evidence,
    ) -> Result<(Entry, SecretDescription)> {
        let described = self.ports.store.describe(&event.secret_id).await?;
        // Kept in the evidence before any check, so that even a refusal is audited with the secret's ARN.
        let secret = evidence.secret.insert(described);
        let name = secret.name.clone();
        let token = event.client_request_token.as_str();
        let policy = secret.policy_of_rotation(self.settings.default_grace_hours, token)?;
        evidence.trigger = Some(secret.trigger(&policy, self.ports.clock.now()));
        let entry = {
            if !secret.rotation_enabled {
                return Err(Error::protocol(
                    &name,
                    "rotation is not enabled; enable it with `aws secretsmanager rotate-secret --secret-id <name> --rotation-lambda-arn <keyrot-rotator ARN> --rotation-rules AutomaticallyAfterDays=90`",
                ));
            }
            if !secret.versions.contains_key(token) {
                let abandoned = secret.clone();
                self.retire_abandoned_version(event, &abandoned).await;
                return Err(Error::protocol(
                    &name,
                    format!(
                        "ClientRequestToken {token} is not a version of this secret; start rotations with `aws secretsmanager rotate-secret`"
                    ),
                ));
            }
            if secret.version_with(AWSCURRENT).is_none() {
                return Err(Error::protocol(
                    &name,
                    "no version is labelled AWSCURRENT; restore one with `aws secretsmanager update-secret-version-stage --version-stage AWSCURRENT --move-to-version-id <id>`",
                ));
            }
            if secret.has_stage(token, AWSCURRENT) {
                Entry::AlreadyCurrent
            } else if secret.has_stage(token, AWSPENDING) {
                Entry::Pending
            } else {
                if secret
                    .versions
                    .get(token)
                    .is_some_and(|stages| stages.is_empty())
                {
                    let abandoned = secret.clone();
                    self.retire_abandoned_version(event, &abandoned).await;
                }
                return Err(Error::protocol(
                    &name,
                    format!(
                        "version {token} is not labelled AWSPENDING, so it is not the rotation under way; {}",
                        if event.step == Step::Create {
                            "start a new rotation with `aws secretsmanager rotate-secret`"
                        } else {
                            "run `keyrot repair` if a rotation is stuck"
                        }
                    ),
                ));
            }
        };
        Ok((entry, secret.clone()))
    }

    /// A rotation overtaken by another (its version lost AWSPENDING) may have minted a key that nobody
    /// will use: record its revocation as due now, once, so it is not left alive and unknown. An adopted
    /// (Anthropic) key is a person's, who may stage it again, and is left alone.
    async fn retire_abandoned_version(&self, event: &RotationEvent, secret: &SecretDescription) {
        let token = &event.client_request_token;
        let result: Result<()> = async {
            let Some(text) = self.ports.store.unlabelled_value(&event.secret_id, token).await? else {
                return Ok(());
            };
            let abandoned = ManagedSecret::parse(&secret.name, "abandoned version", &text)?;
            // A key a person staged is theirs, and may be staged again: never revoked for an abandoned rotation.
            if abandoned.key_id.is_none() || abandoned.provider.provider().is_staged() {
                return Ok(());
            }
            let now = self.ports.clock.now();
            let revocation = self.ports.revocation_for(secret, token, &abandoned, now).await?;
            if self.ports.record_revocation(&revocation).await? {
                tracing::warn!(version = %token, "the key of an abandoned rotation is due for revocation");
            }
            Ok(())
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "could not record the revocation of an abandoned rotation's key");
        }
    }
}
