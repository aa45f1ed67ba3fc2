//! `keyrot validate`: the provider's verdict on one version's key, and which key every target holds.

use super::Operator;
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Stage};
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, SecretDescription};
use crate::error::{Error, Result};
use crate::ports::{Family, KeyIssuer, SecretStore, Target};

/// Which of the secret's keys a target holds, by fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Current,
    Previous,
    Pending,
    /// A key none of the labelled versions holds.
    Unknown,
    /// No key keyrot can recognise (absent, set by hand, different per environment).
    Nothing,
}

impl Holds {
    pub fn as_str(self) -> &'static str {
        match self {
            Holds::Current => "current",
            Holds::Previous => "previous",
            Holds::Pending => "pending",
            Holds::Unknown => "unknown",
            Holds::Nothing => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHolding {
    pub target: String,
    pub fingerprint: Option<String>,
    pub holds: Holds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub secret_name: String,
    pub stage: Stage,
    pub version: String,
    pub key: KeyView,
    pub provider: &'static str,
    /// `None` when the provider accepts the key, else why it refused it.
    pub rejected: Option<String>,
    pub targets: Vec<TargetHolding>,
}

impl Validation {
    /// Every target serves AWSCURRENT's key, whichever stage was checked: during a grace period the
    /// targets rightly hold the current key, not the previous one being checked.
    pub fn targets_on_current(&self) -> bool {
        self.targets.iter().all(|t| t.holds == Holds::Current)
    }

    /// The exit status: the checked key works and every target holds AWSCURRENT's key.
    pub fn ok(&self) -> bool {
        self.rejected.is_none() && self.targets_on_current()
    }
}

impl<F: Family> Operator<'_, F> {
    /// Checks the key of the version labelled `stage` at its provider and reports which key every
    /// target (as AWSCURRENT's value lists them) holds.
    pub async fn validate_stage(&self, secret_id: &str, stage: Stage) -> Result<Validation> {
        let secret = self.ports.store.describe(secret_id).await?;
        let version = secret
            .version_with(stage)
            .ok_or_else(|| {
                Error::config(
                    &secret.name,
                    "--stage",
                    format!("no version is labelled {stage}"),
                    format!(
                        "pick a stage the secret has (`keyrot status --secret {}` shows them)",
                        secret.name
                    ),
                )
            })?
            .to_owned();
        // AWSCURRENT's value is read either way: it lists the targets and names the current key.
        let current = self.ports.current_value(secret_id, &secret).await?;
        let other = if stage == AWSCURRENT {
            None
        } else {
            Some(
                self.staged_value(&secret, secret_id, stage, &version)
                    .await?,
            )
        };
        let checked = other.as_ref().unwrap_or(&current);
        let rejected = match self
            .ports
            .issuer
            .validate(&secret.name, checked, &checked.api_key)
            .await
        {
            Ok(()) => None,
            Err(Error::KeyRejected { detail, .. }) => Some(detail),
            Err(err) => return Err(err),
        };
        let known = self.known_keys(&secret, secret_id, &current).await?;
        let targets = self.holdings(&secret, &current, &known).await?;
        Ok(Validation {
            secret_name: secret.name.clone(),
            stage,
            version,
            key: checked.key_view(),
            provider: checked.provider.name(),
            rejected,
            targets,
        })
    }

    /// The value of `version`, labelled `stage`; refused while it holds none.
    async fn staged_value(
        &self,
        secret: &SecretDescription,
        secret_id: &str,
        stage: Stage,
        version: &str,
    ) -> Result<ManagedSecret> {
        self.ports
            .version_value(secret_id, secret, stage, version)
            .await?
            .ok_or_else(|| {
                Error::config(
                    &secret.name,
                    "--stage",
                    format!("the {stage} version {version} holds no value yet"),
                    "a rotation's createSecret has not stored its key; check again once it has",
                )
            })
    }

    /// The fingerprints of the labelled versions, to name the key each target holds. A version whose
    /// value cannot be read as keyrot's format simply matches nothing.
    async fn known_keys(
        &self,
        secret: &SecretDescription,
        secret_id: &str,
        current: &ManagedSecret,
    ) -> Result<Vec<(Holds, String)>> {
        let mut known = vec![(Holds::Current, current.key_view().fingerprint)];
        for (label, holds) in [(AWSPREVIOUS, Holds::Previous), (AWSPENDING, Holds::Pending)] {
            let Some(other) = secret
                .version_with(label)
                .filter(|v| !secret.has_stage(v, AWSCURRENT))
            else {
                continue;
            };
            if let Some(text) = self
                .ports
                .store
                .value(secret_id, label, Some(other))
                .await?
                && let Ok(value) = ManagedSecret::parse(&secret.name, label, &text)
            {
                known.push((holds, value.key_view().fingerprint));
            }
        }
        Ok(known)
    }

    /// Which of the `known` keys every target of `current` holds.
    async fn holdings(
        &self,
        secret: &SecretDescription,
        current: &ManagedSecret,
        known: &[(Holds, String)],
    ) -> Result<Vec<TargetHolding>> {
        let mut targets = Vec::new();
        for target in TargetSpec::parse_all(&secret.name, &current.targets)? {
            let fingerprint = self
                .ports
                .targets
                .held_fingerprint(&secret.name, &target)
                .await?;
            let holds = match &fingerprint {
                None => Holds::Nothing,
                Some(fp) => known
                    .iter()
                    .find(|(_, known)| known == fp)
                    .map_or(Holds::Unknown, |(holds, _)| *holds),
            };
            targets.push(TargetHolding {
                target: target.label(),
                fingerprint,
                holds,
            });
        }
        Ok(targets)
    }
}
