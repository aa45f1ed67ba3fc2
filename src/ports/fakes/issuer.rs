//! A provider in memory: mints numbered keys, rejects the keys a test names, records revocations.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::audit::{KeyHandle, RevocationStatus};
use crate::domain::{ManagedSecret, NewKey};
use crate::error::{Error, Result};
use crate::ports::{KeyIssuer, MintedKey};

#[derive(Default)]
pub(crate) struct FakeIssuer {
    pub(crate) minted: Cell<u32>,
    pub(crate) rejected: RefCell<BTreeSet<String>>,
    pub(crate) revoked: RefCell<Vec<String>>,
    /// The provider ids each revocation named, in order.
    pub(crate) revoked_ids: RefCell<Vec<(Option<String>, Option<String>)>>,
    pub(crate) validated: RefCell<Vec<String>>,
    pub(crate) leftovers_removed: RefCell<Vec<String>>,
    pub(crate) last_used: Cell<Option<DateTime<Utc>>>,
    pub(crate) minted_keys: RefCell<Vec<MintedKey>>,
    /// The next revocations fail.
    pub(crate) fail_revocations: Cell<u32>,
    /// The next validations answer 401, whatever the key (a new key still propagating).
    pub(crate) refuse_next_validations: Cell<u32>,
    /// The next revocations panic (a bug, or an answer nobody foresaw).
    pub(crate) panic_revocations: Cell<u32>,
    /// The next revocations answer success but leave the key working (an id that names another key).
    pub(crate) ineffective_revocations: Cell<u32>,
    /// The fingerprints of the keys revoked for good: the provider refuses them from then on.
    pub(crate) dead: RefCell<BTreeSet<String>>,
    /// A database's roles and the password each logs in with now (set by `install`, locked out by
    /// `revoke`). A role it has never seen accepts any password: it was made before the fake.
    pub(crate) roles: RefCell<BTreeMap<String, String>>,
    /// Keys of another account: a staged one is refused as the wrong account's.
    pub(crate) foreign: RefCell<BTreeSet<String>>,
    /// What comparing a staged key with the current one reports (a GitHub token's scopes).
    pub(crate) staged_notes: RefCell<Vec<String>>,
    /// The keys revoked by their value (GitHub), in order.
    pub(crate) revoked_values: RefCell<Vec<String>>,
}

impl FakeIssuer {
    /// From now on the provider answers 401 to `key`.
    pub(crate) fn reject(&self, key: &str) {
        self.rejected.borrow_mut().insert(key.to_owned());
    }

    /// The versions whose keys were revoked, in order.
    pub(crate) fn revoked_versions(&self) -> Vec<String> {
        self.revoked.borrow().clone()
    }
}

impl KeyIssuer for FakeIssuer {
    async fn mint(
        &self,
        _secret_name: &str,
        current: &ManagedSecret,
        account: &str,
    ) -> Result<NewKey> {
        let n = self.minted.get() + 1;
        self.minted.set(n);
        // Each provider's own id shape, as the value's parser requires.
        let key_id = match &current.provider {
            crate::domain::ProviderSettings::OpenAi(_) => format!("svc_acct_{n}"),
            crate::domain::ProviderSettings::Postgres(settings) => {
                let login = crate::domain::postgres::Login {
                    username: settings.next_username(),
                    password: SecretString::from(format!("PGPASSWORD{n:04}XXXXXXXXXXXX")),
                };
                return Ok(NewKey {
                    api_key: settings.connection_string(&login),
                    key_id: Some(login.username),
                    api_key_id: None,
                    leftovers: Vec::new(),
                    password: Some(login.password),
                });
            }
            _ => format!("key_{n}"),
        };
        Ok(NewKey {
            api_key: SecretString::from(format!("sk_live_NEWKEY{n:04}{account}XXXXXXXX")),
            key_id: Some(key_id),
            api_key_id: None,
            leftovers: Vec::new(),
            password: None,
        })
    }

    async fn install(&self, _secret_name: &str, pending: &ManagedSecret) -> Result<()> {
        if let Some(login) = pending.login() {
            self.roles.borrow_mut().insert(
                login.username.clone(),
                login.password.expose_secret().to_owned(),
            );
        }
        Ok(())
    }

    async fn remove_leftovers(
        &self,
        _secret_name: &str,
        _current: &ManagedSecret,
        _token: &str,
        kept: &NewKey,
    ) -> Result<()> {
        self.leftovers_removed
            .borrow_mut()
            .push(kept.key_id.clone().unwrap_or_default());
        Ok(())
    }

    async fn identify(
        &self,
        _secret_name: &str,
        settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<Option<String>> {
        // Stripe and GitHub keys have no id keyrot revokes by, as with the real adapters.
        use crate::domain::secret::Provider;
        if matches!(
            settings.provider.provider(),
            Provider::Stripe | Provider::GitHub
        ) {
            return Ok(None);
        }
        Ok(Some(format!(
            "apikey_{}",
            crate::domain::keys::fingerprint(key)
        )))
    }

    async fn validate(
        &self,
        secret_name: &str,
        settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<()> {
        self.validated
            .borrow_mut()
            .push(key.expose_secret().to_owned());
        let wrong_password = settings.login().is_some_and(|login| {
            self.roles
                .borrow()
                .get(&login.username)
                .is_some_and(|now| now != login.password.expose_secret())
        });
        let propagating = self.refuse_next_validations.get() > 0;
        if propagating {
            self.refuse_next_validations
                .set(self.refuse_next_validations.get() - 1);
        }
        let dead = self
            .dead
            .borrow()
            .contains(&crate::domain::keys::fingerprint(key));
        if propagating
            || dead
            || wrong_password
            || self.rejected.borrow().contains(key.expose_secret())
        {
            return Err(Error::KeyRejected {
                secret: secret_name.into(),
                provider: "generic".into(),
                hint: crate::domain::keys::redacted(key),
                detail: "HTTP 401".into(),
            });
        }
        Ok(())
    }

    async fn last_used(&self, _revocation: &KeyHandle) -> Result<Option<DateTime<Utc>>> {
        Ok(self.last_used.get())
    }

    async fn minted_keys(
        &self,
        _secret_name: &str,
        _settings: &ManagedSecret,
    ) -> Result<Vec<MintedKey>> {
        Ok(self.minted_keys.borrow().clone())
    }

    async fn compare_staged(
        &self,
        secret_name: &str,
        _current: &ManagedSecret,
        staged: &SecretString,
    ) -> Result<Vec<String>> {
        if self.foreign.borrow().contains(staged.expose_secret()) {
            return Err(Error::config(
                secret_name,
                crate::domain::policy::KEYROT_STAGED,
                "the staged key belongs to another account than the current key",
                "create the key in the current key's account",
            ));
        }
        Ok(self.staged_notes.borrow().clone())
    }

    async fn revoke(
        &self,
        revocation: &KeyHandle,
        value: Option<&SecretString>,
    ) -> Result<RevocationStatus> {
        if self.panic_revocations.get() > 0 {
            self.panic_revocations.set(self.panic_revocations.get() - 1);
            panic!(
                "the fake provider panics while revoking {}",
                revocation.old_version_id
            );
        }
        if self.fail_revocations.get() > 0 {
            self.fail_revocations.set(self.fail_revocations.get() - 1);
            return Err(Error::external(
                "provider",
                "revoke",
                "HTTP 503",
                crate::error::Transience::Retryable,
            ));
        }
        // As the real adapters: Stripe has no revocation API, GitHub revokes by value, and without an
        // id an OpenAI or Anthropic key is a person's to revoke.
        use crate::domain::secret::Provider;
        match (revocation.provider, value) {
            (Provider::Stripe, _) | (Provider::GitHub, None) => {
                return Ok(RevocationStatus::Manual);
            }
            (Provider::GitHub, Some(value)) => {
                self.revoked_values
                    .borrow_mut()
                    .push(value.expose_secret().to_owned());
            }
            (Provider::Generic, _) => {}
            _ if revocation.key_id.is_none() && revocation.api_key_id.is_none() => {
                return Ok(RevocationStatus::Manual);
            }
            _ => {}
        }
        if self.ineffective_revocations.get() > 0 {
            self.ineffective_revocations
                .set(self.ineffective_revocations.get() - 1);
        } else if revocation.provider == crate::domain::secret::Provider::Postgres {
            let role = revocation.key_id.clone().unwrap_or_default();
            self.roles.borrow_mut().insert(role, "LOCKED-OUT".into());
        } else if let Some(fingerprint) = &revocation.fingerprint {
            self.dead.borrow_mut().insert(fingerprint.clone());
        }
        self.revoked
            .borrow_mut()
            .push(revocation.old_version_id.clone());
        self.revoked_ids
            .borrow_mut()
            .push((revocation.key_id.clone(), revocation.api_key_id.clone()));
        Ok(RevocationStatus::Revoked)
    }
}
