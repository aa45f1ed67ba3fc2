//! Provenance: how a key became a secret's key. keyrot revokes a key at a provider only on the word
//! of a record it wrote when the key became this secret's (it minted the key, identified it at the
//! provider, or an operator onboarded it), never on ids it later finds in the secret's value: whoever
//! may write that value could otherwise name any key the admin credential reaches.

use chrono::{DateTime, Utc};

use crate::domain::audit::KeyHandle;
use crate::domain::keys::KeyView;
use crate::domain::secret::{Provider, ProviderSettings};

/// Who vouches for a key's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// createSecret minted it through the provider's API.
    Minted,
    /// createSecret adopted a staged key and found its id through the provider's admin API.
    Identified,
    /// An operator onboarded it (`keyrot onboard`), naming its ids.
    Onboarded,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Minted => "minted",
            Origin::Identified => "identified",
            Origin::Onboarded => "onboarded",
        }
    }

    pub fn parse(text: &str) -> Option<Origin> {
        [Origin::Minted, Origin::Identified, Origin::Onboarded]
            .into_iter()
            .find(|origin| origin.as_str() == text)
    }
}

/// The provider ids of one key of one secret, as keyrot learnt them. Found by the key's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub secret_name: String,
    pub fingerprint: String,
    pub provider: Provider,
    pub project_id: Option<String>,
    pub key_id: Option<String>,
    pub api_key_id: Option<String>,
    pub origin: Origin,
    /// The version the key was made for (a rotation's token), or the onboarded version.
    pub version_id: String,
    pub at: DateTime<Utc>,
    /// The Lambda request id or the operator's ARN.
    pub by: String,
}

/// The ids a key came with, from whichever source (a mint's answer, an onboarding's flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyIds<'a> {
    pub key_id: Option<&'a str>,
    pub api_key_id: Option<&'a str>,
}

impl KeyRecord {
    /// The record of `key`, made for `version_id` of `secret_name` with `provider`'s settings.
    pub fn new(
        (secret_name, version_id): (&str, &str),
        provider: &ProviderSettings,
        key: &KeyView,
        ids: KeyIds<'_>,
        (origin, at, by): (Origin, DateTime<Utc>, &str),
    ) -> KeyRecord {
        let project_id = match provider {
            ProviderSettings::OpenAi(openai) => Some(openai.project_id.clone()),
            _ => None,
        };
        KeyRecord {
            secret_name: secret_name.to_owned(),
            fingerprint: key.fingerprint.clone(),
            provider: provider.provider(),
            project_id,
            key_id: ids.key_id.map(str::to_owned),
            api_key_id: ids.api_key_id.map(str::to_owned),
            origin,
            version_id: version_id.to_owned(),
            at,
            by: by.to_owned(),
        }
    }

    /// Whether this record names exactly the key `handle` would revoke: the same secret, provider,
    /// project and ids. A handle that differs in any of them was not built from this record.
    pub fn vouches_for(&self, handle: &KeyHandle) -> bool {
        self.secret_name == handle.secret_name
            && self.provider == handle.provider
            && self.project_id == handle.project_id
            && self.key_id == handle.key_id
            && self.api_key_id == handle.api_key_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn record() -> KeyRecord {
        let provider = ProviderSettings::OpenAi(crate::domain::secret::OpenAiSettings {
            project_id: "proj_a".into(),
            admin_key_secret: "keyrot-admin/openai".into(),
        });
        let key = KeyView::of(&SecretString::from("sk-svcacct-0123456789abcdefWXYZ"));
        let ids = KeyIds {
            key_id: Some("svc_acct_1"),
            api_key_id: Some("key_1"),
        };
        KeyRecord::new(
            ("prod/openai", "v1"),
            &provider,
            &key,
            ids,
            (Origin::Minted, Utc::now(), "req-1"),
        )
    }

    fn handle() -> KeyHandle {
        KeyHandle {
            secret_name: "prod/openai".into(),
            old_version_id: "v1".into(),
            provider: Provider::OpenAi,
            project_id: Some("proj_a".into()),
            key_id: Some("svc_acct_1".into()),
            api_key_id: Some("key_1".into()),
            admin_key_secret: Some("keyrot-admin/openai".into()),
            fingerprint: None,
        }
    }

    #[test]
    fn a_record_vouches_only_for_the_ids_it_recorded() {
        let record = record();
        assert!(record.vouches_for(&handle()));
        let others = [
            KeyHandle {
                key_id: Some("svc_acct_2".into()),
                ..handle()
            },
            KeyHandle {
                api_key_id: None,
                ..handle()
            },
            KeyHandle {
                project_id: Some("proj_b".into()),
                ..handle()
            },
            KeyHandle {
                secret_name: "dev/openai".into(),
                ..handle()
            },
            KeyHandle {
                provider: Provider::Anthropic,
                ..handle()
            },
        ];
        for other in others {
            assert!(!record.vouches_for(&other), "{other:?}");
        }
    }

    #[test]
    fn origins_round_trip_through_their_names() {
        for origin in [Origin::Minted, Origin::Identified, Origin::Onboarded] {
            assert_eq!(Origin::parse(origin.as_str()), Some(origin));
        }
        assert_eq!(Origin::parse("written"), None);
    }
}
