//! keyrot's own credentials as secrets it rotates: the OpenAI admin key (minted and deleted through
//! OpenAI's Admin API), and the Anthropic admin key and the Vercel and Render tokens (created by a
//! person and staged). Each lives under the admin prefix, where only its owner may write it, and is
//! rotated only when that owner tags it `keyrot-admin:rotated=true` (docs/security.md, "keyrot's own
//! credentials").

use super::SecretDescription;
use super::secret::{Provider, ProviderSettings};
use crate::error::{Error, Result};

/// The tag by which an admin secret's owner lets keyrot rotate it; IAM grants the rotator its writes
/// on the admin prefix only under this tag.
pub const TAG_ROTATED: &str = "keyrot-admin:rotated";

/// Refuses a value that claims to be one of keyrot's own credentials anywhere but under the admin
/// prefix, tagged by its owner: a managed secret's writer must not get a rotation, an alert or a
/// revocation task that speaks of keyrot's own Vercel token or admin key.
pub fn check_rotated(
    secret: &SecretDescription,
    provider: &ProviderSettings,
    admin_prefix: Option<&str>,
) -> Result<()> {
    let ProviderSettings::Credential(credential) = provider else {
        return Ok(());
    };
    let under = admin_prefix.is_some_and(|prefix| secret.name.starts_with(prefix));
    if under && secret.tags.get(TAG_ROTATED).map(String::as_str) == Some("true") {
        return Ok(());
    }
    Err(Error::config(
        &secret.name,
        "provider",
        format!(
            "is {}, one of keyrot's own credentials, which keyrot rotates only under the admin prefix {} with its owner's tag {TAG_ROTATED}=true",
            credential.kind.provider(),
            admin_prefix.unwrap_or("(KEYROT_ADMIN_PREFIX)")
        ),
        "give this secret the provider of the key it holds; keep keyrot's own credentials under the admin prefix (keyrot onboard --provider ... tags them)",
    ))
}

/// Which of keyrot's own credentials a secret holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    OpenAiAdmin,
    AnthropicAdmin,
    VercelToken,
    RenderToken,
}

/// A credential secret's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSettings {
    pub kind: CredentialKind,
    /// Days until a minted OpenAI admin key expires (`openai_admin.expires_in_days`), a net under a
    /// schedule that stops: well past the rotation schedule and grace.
    pub expires_in_days: u32,
}

impl CredentialSettings {
    /// OpenAI's limit for `expires_in_seconds` is a year; keyrot's default is that year.
    pub const MAX_EXPIRY_DAYS: u32 = 365;
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 4] = [
        CredentialKind::OpenAiAdmin,
        CredentialKind::AnthropicAdmin,
        CredentialKind::VercelToken,
        CredentialKind::RenderToken,
    ];

    pub const fn provider(self) -> Provider {
        match self {
            CredentialKind::OpenAiAdmin => Provider::OpenAiAdmin,
            CredentialKind::AnthropicAdmin => Provider::AnthropicAdmin,
            CredentialKind::VercelToken => Provider::VercelToken,
            CredentialKind::RenderToken => Provider::RenderToken,
        }
    }

    pub fn of(provider: Provider) -> Option<CredentialKind> {
        CredentialKind::ALL
            .into_iter()
            .find(|kind| kind.provider() == provider)
    }

    /// The value's field that holds the credential, the one admin-secret readers look for.
    pub const fn key_field(self) -> &'static str {
        match self {
            CredentialKind::OpenAiAdmin | CredentialKind::AnthropicAdmin => "admin_key",
            CredentialKind::VercelToken | CredentialKind::RenderToken => "token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_one_provider_with_its_own_field() {
        for kind in CredentialKind::ALL {
            assert_eq!(CredentialKind::of(kind.provider()), Some(kind));
        }
        assert_eq!(CredentialKind::of(Provider::OpenAi), None);
        assert_eq!(CredentialKind::OpenAiAdmin.key_field(), "admin_key");
        assert_eq!(CredentialKind::RenderToken.key_field(), "token");
    }

    #[test]
    fn a_credential_rotates_only_under_the_admin_prefix_with_its_owner_s_tag() {
        let provider = ProviderSettings::Credential(CredentialSettings {
            kind: CredentialKind::VercelToken,
            expires_in_days: CredentialSettings::MAX_EXPIRY_DAYS,
        });
        let secret = |name: &str, tagged: bool| SecretDescription {
            name: name.into(),
            tags: if tagged {
                [(TAG_ROTATED.to_owned(), "true".to_owned())].into()
            } else {
                Default::default()
            },
            ..SecretDescription::default()
        };
        let prefix = Some("keyrot-admin/");
        check_rotated(&secret("keyrot-admin/vercel", true), &provider, prefix).expect("its own");
        for (name, tagged) in [("keyrot-admin/vercel", false), ("team-a/vercel", true)] {
            let err = check_rotated(&secret(name, tagged), &provider, prefix)
                .expect_err("not one of keyrot's own credentials")
                .to_string();
            assert!(
                err.contains(name) && err.contains("provider") && err.contains("fix:"),
                "{err}"
            );
        }
        let generic = ProviderSettings::Generic(crate::domain::secret::GenericSettings {
            length: 48,
            prefix: String::new(),
            validate_url: None,
        });
        check_rotated(&secret("team-a/x", false), &generic, prefix).expect("not a credential");
    }
}
