//! [`KeyIssuer`] for every provider: dispatches each call to the adapter of the secret's provider.

use secrecy::SecretString;

use crate::adapters::generic::GenericIssuer;
use crate::domain::audit::{Revocation, RevocationStatus};
use crate::domain::{ManagedSecret, NewKey, ProviderSettings};
use crate::error::{Error, Result};
use crate::ports::KeyIssuer;

pub struct ProviderIssuers {
    pub generic: GenericIssuer,
}

impl KeyIssuer for ProviderIssuers {
    async fn mint(
        &self,
        secret_name: &str,
        current: &ManagedSecret,
        _token: &str,
    ) -> Result<NewKey> {
        match &current.provider {
            ProviderSettings::Generic(settings) => self.generic.mint(secret_name, settings).await,
            other => Err(not_in_this_build(secret_name, other.name())),
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
            other => Err(not_in_this_build(secret_name, other.name())),
        }
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<RevocationStatus> {
        match revocation.provider.as_str() {
            // keyrot has nothing to revoke at a provider for a generic key: it is retired, and the audit
            // trail records when it left service.
            "generic" => Ok(RevocationStatus::Retired),
            other => Err(not_in_this_build(&revocation.secret_name, other)),
        }
    }
}

fn not_in_this_build(secret_name: &str, provider: &str) -> Error {
    Error::config(
        secret_name,
        "provider",
        format!("{provider} keys cannot be issued by this build of keyrot yet"),
        "deploy a keyrot build with the provider's adapter, or use provider generic",
    )
}
