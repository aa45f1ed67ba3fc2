//! The checks every step makes before it acts (design.md, "Steps").

use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::{RotationEvent, SecretDescription, Step};
use crate::error::{Error, Result};
use crate::ports::{Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Target};

use super::{Evidence, Rotator};

/// Where the event's token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The token carries AWSPENDING: the rotation is under way.
    Pending,
    /// The token is already AWSCURRENT: the rotation finished (or finishSecret crashed after promoting it).
    AlreadyCurrent,
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
    /// DescribeSecret, then refuse what the protocol forbids: rotation disabled, a token that is not a
    /// version of the secret, or a version that is neither pending nor already current.
    pub(super) async fn enter(
        &self,
        event: &RotationEvent,
        evidence: &mut Evidence,
    ) -> Result<(Entry, SecretDescription)> {
        let described = self.store.describe(&event.secret_id).await?;
        // Kept in the evidence before any check, so that even a refusal is audited with the secret's ARN.
        let secret = evidence.secret.insert(described);
        let name = secret.name.clone();
        let token = event.client_request_token.as_str();
        let policy = secret.policy(self.settings.default_grace_hours)?;
        evidence.trigger = Some(secret.trigger(&policy, self.clock.now()));
        let entry = {
            if !secret.rotation_enabled {
                return Err(Error::protocol(
                    &name,
                    "rotation is not enabled; enable it with `aws secretsmanager rotate-secret --secret-id <name> --rotation-lambda-arn <keyrot-rotator ARN> --rotation-rules AutomaticallyAfterDays=90`",
                ));
            }
            if !secret.versions.contains_key(token) {
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
}
