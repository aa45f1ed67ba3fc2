//! [`KeyIssuer`] for every provider: dispatches each call to the adapter of the secret's provider.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::adapters::anthropic::AnthropicIssuer;
use crate::adapters::credentials::CredentialIssuer;
use crate::adapters::generic::GenericIssuer;
use crate::adapters::github::GitHubIssuer;
use crate::adapters::openai::OpenAiIssuer;
use crate::adapters::postgres::PostgresIssuer;
use crate::adapters::stripe::StripeIssuer;
use crate::domain::audit::{KeyHandle, RevocationStatus};
use crate::domain::credential::{CredentialKind, CredentialSettings};
use crate::domain::secret::Provider;
use crate::domain::{ManagedSecret, NewKey, ProviderSettings};
use crate::error::{Error, Result};
use crate::ports::{KeyIssuer, MintedKey};

pub struct ProviderIssuers {
    pub generic: GenericIssuer,
    pub openai: OpenAiIssuer,
    pub anthropic: AnthropicIssuer,
    pub postgres: PostgresIssuer,
    pub stripe: StripeIssuer,
    pub github: GitHubIssuer,
    pub credentials: CredentialIssuer,
}

impl KeyIssuer for ProviderIssuers {
    async fn mint(
        &self,
        secret_name: &str,
        current: &ManagedSecret,
        account: &str,
    ) -> Result<NewKey> {
        match &current.provider {
            ProviderSettings::Generic(settings) => self.generic.mint(secret_name, settings).await,
            ProviderSettings::OpenAi(settings) => {
                self.openai.mint(secret_name, settings, account).await
            }
            ProviderSettings::Postgres(settings) => self.postgres.mint(secret_name, settings).await,
            ProviderSettings::Credential(
                settings @ CredentialSettings {
                    kind: CredentialKind::OpenAiAdmin,
                    ..
                },
            ) => {
                self.credentials
                    .mint(secret_name, settings, &current.api_key, account)
                    .await
            }
            staged @ (ProviderSettings::Credential(_)
            | ProviderSettings::Anthropic(_)
            | ProviderSettings::Stripe(_)
            | ProviderSettings::GitHub(_)) => Err(Error::protocol(
                secret_name,
                format!(
                    "{} keys cannot be minted: createSecret adopts the key a person staged",
                    staged.provider().title()
                ),
            )),
        }
    }

    async fn install(&self, secret_name: &str, pending: &ManagedSecret) -> Result<()> {
        match &pending.provider {
            ProviderSettings::Postgres(_) => self.postgres.install(secret_name, pending).await,
            _ => Ok(()),
        }
    }

    async fn remove_leftovers(
        &self,
        secret_name: &str,
        current: &ManagedSecret,
        _token: &str,
        kept: &NewKey,
    ) -> Result<()> {
        match &current.provider {
            ProviderSettings::OpenAi(settings) => {
                self.openai
                    .remove_leftovers(secret_name, settings, kept)
                    .await
            }
            ProviderSettings::Credential(_) => {
                self.credentials
                    .remove_leftovers(secret_name, &current.api_key, kept)
                    .await
            }
            _ => Ok(()),
        }
    }

    async fn identify(
        &self,
        secret_name: &str,
        settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<Option<String>> {
        match &settings.provider {
            ProviderSettings::Anthropic(anthropic) => {
                self.anthropic.identify(secret_name, anthropic, key).await
            }
            ProviderSettings::Postgres(_) => self.postgres.identify(secret_name, settings).await,
            ProviderSettings::Credential(CredentialSettings {
                kind: CredentialKind::OpenAiAdmin,
                ..
            }) => self.credentials.identify(secret_name, key).await,
            _ => Ok(None),
        }
    }

    async fn validate(
        &self,
        secret_name: &str,
        settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<()> {
        match &settings.provider {
            ProviderSettings::Generic(generic) => {
                self.generic.validate(secret_name, generic, key).await
            }
            ProviderSettings::OpenAi(_) => self.openai.validate(secret_name, key).await,
            ProviderSettings::Anthropic(_) => self.anthropic.validate(secret_name, key).await,
            ProviderSettings::Stripe(_) => self.stripe.validate(secret_name, key).await,
            ProviderSettings::GitHub(_) => self.github.validate(secret_name, key).await,
            ProviderSettings::Credential(credential) => {
                self.credentials
                    .validate(secret_name, credential.kind, key)
                    .await
            }
            // A database login is the value's role and password; `key` is its connection string.
            ProviderSettings::Postgres(_) => self.postgres.validate(secret_name, settings).await,
        }
    }

    async fn last_used(&self, revocation: &KeyHandle) -> Result<Option<DateTime<Utc>>> {
        match revocation.provider {
            Provider::OpenAi => self.openai.last_used(revocation).await,
            Provider::Anthropic => self.anthropic.last_used(revocation).await,
            Provider::OpenAiAdmin => self.credentials.last_used(revocation).await,
            // The others report no last use, and generic keys have no provider to ask.
            Provider::Generic
            | Provider::Postgres
            | Provider::Stripe
            | Provider::GitHub
            | Provider::AnthropicAdmin
            | Provider::VercelToken
            | Provider::RenderToken => Ok(None),
        }
    }

    async fn minted_keys(
        &self,
        secret_name: &str,
        settings: &ManagedSecret,
    ) -> Result<Vec<MintedKey>> {
        match &settings.provider {
            ProviderSettings::OpenAi(openai) => self.openai.minted_keys(secret_name, openai).await,
            _ => Ok(Vec::new()),
        }
    }

    async fn compare_staged(
        &self,
        secret_name: &str,
        current: &ManagedSecret,
        staged: &SecretString,
    ) -> Result<Vec<String>> {
        let old = &current.api_key;
        match &current.provider {
            ProviderSettings::Stripe(settings) => {
                self.stripe
                    .compare_staged(secret_name, settings, old, staged)
                    .await
            }
            ProviderSettings::GitHub(settings) => {
                self.github
                    .compare_staged(secret_name, settings, old, staged)
                    .await
            }
            ProviderSettings::Credential(credential) => {
                self.credentials
                    .compare_staged(secret_name, credential.kind, old, staged)
                    .await
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn revoke(
        &self,
        revocation: &KeyHandle,
        value: Option<&SecretString>,
    ) -> Result<RevocationStatus> {
        match revocation.provider {
            // keyrot has nothing to revoke at a provider for a generic key: it is retired, and the audit
            // trail records when it left service.
            Provider::Generic => Ok(RevocationStatus::Retired),
            Provider::OpenAi => self.openai.revoke(revocation).await,
            Provider::Anthropic => self.anthropic.revoke(revocation).await,
            Provider::Postgres => self.postgres.revoke(revocation).await,
            Provider::Stripe => self.stripe.revoke(revocation).await,
            Provider::GitHub => self.github.revoke(revocation, value).await,
            Provider::OpenAiAdmin
            | Provider::AnthropicAdmin
            | Provider::VercelToken
            | Provider::RenderToken => self.credentials.revoke(revocation).await,
        }
    }
}
