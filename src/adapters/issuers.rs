//! [`KeyIssuer`] for every provider: dispatches each call to the adapter of the secret's provider.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::adapters::anthropic::AnthropicIssuer;
use crate::adapters::generic::GenericIssuer;
use crate::adapters::openai::OpenAiIssuer;
use crate::adapters::postgres::PostgresIssuer;
use crate::domain::audit::{KeyHandle, RevocationStatus};
use crate::domain::secret::Provider;
use crate::domain::{ManagedSecret, NewKey, ProviderSettings};
use crate::error::{Error, Result};
use crate::ports::{KeyIssuer, MintedKey};

pub struct ProviderIssuers {
    pub generic: GenericIssuer,
    pub openai: OpenAiIssuer,
    pub anthropic: AnthropicIssuer,
    pub postgres: PostgresIssuer,
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
            ProviderSettings::Anthropic(_) => Err(Error::protocol(
                secret_name,
                "Anthropic keys cannot be minted: createSecret adopts the key a person staged",
            )),
            ProviderSettings::Postgres(settings) => self.postgres.mint(secret_name, settings).await,
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
            // A database login is the value's role and password; `key` is its connection string.
            ProviderSettings::Postgres(_) => self.postgres.validate(secret_name, settings).await,
        }
    }

    async fn last_used(&self, revocation: &KeyHandle) -> Result<Option<DateTime<Utc>>> {
        match revocation.provider {
            Provider::OpenAi => self.openai.last_used(revocation).await,
            // Anthropic reports no last use, and generic keys have no provider to ask.
            Provider::Anthropic | Provider::Generic | Provider::Postgres => Ok(None),
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

    async fn revoke(&self, revocation: &KeyHandle) -> Result<RevocationStatus> {
        match revocation.provider {
            // keyrot has nothing to revoke at a provider for a generic key: it is retired, and the audit
            // trail records when it left service.
            Provider::Generic => Ok(RevocationStatus::Retired),
            Provider::OpenAi => self.openai.revoke(revocation).await,
            Provider::Anthropic => self.anthropic.revoke(revocation).await,
            Provider::Postgres => self.postgres.revoke(revocation).await,
        }
    }
}
