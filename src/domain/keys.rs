//! Non-secret views of a key: the fingerprint that identifies it and the hint that shows it to people.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A key value with the provider-side ids needed to find, audit and revoke it later.
pub struct NewKey {
    pub api_key: SecretString,
    /// The provider's id for revoking this key (OpenAI service account id, Anthropic `apikey_...`).
    pub key_id: Option<String>,
    /// OpenAI only: the project API key id, for last-use lookups.
    pub api_key_id: Option<String>,
    /// Provider ids of other keys minted for the same rotation by attempts that died, still alive; to be
    /// removed once this key is stored.
    pub leftovers: Vec<String>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("hint", &redacted(&self.api_key))
            .field("key_id", &self.key_id)
            .field("api_key_id", &self.api_key_id)
            .finish()
    }
}

/// What may be shown of a key: its last four characters (audit items) and its redacted form (alerts).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyView {
    pub last4: String,
    pub redacted: String,
    pub fingerprint: String,
}

impl KeyView {
    pub fn of(key: &SecretString) -> Self {
        KeyView {
            last4: last4(key),
            redacted: redacted(key),
            fingerprint: fingerprint(key),
        }
    }
}

/// The first 12 hex characters of the key's SHA-256: enough to tell keys apart, useless to an attacker.
pub fn fingerprint(key: &SecretString) -> String {
    let digest = Sha256::digest(key.expose_secret().as_bytes());
    hex::encode(&digest[..6])
}

/// The last four characters, the only part of a key that audit items carry.
pub fn last4(key: &SecretString) -> String {
    let chars: Vec<char> = key.expose_secret().chars().collect();
    if chars.len() < 16 {
        // Four characters of a short key are too large a share of it to publish.
        return String::new();
    }
    chars[chars.len() - 4..].iter().collect()
}

/// How people see a key in alerts and CLI output: `sk-...x7K2`.
pub fn redacted(key: &SecretString) -> String {
    let value = key.expose_secret();
    let tail = last4(key);
    if tail.is_empty() {
        return "...".to_owned();
    }
    let prefix: String = match value.find('-') {
        Some(dash) if dash <= 6 => value[..=dash].to_owned(),
        _ => String::new(),
    };
    format!("{prefix}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_never_reveal_more_than_the_last_four_characters() {
        let key = SecretString::from("sk-svcacct-abcdefghijklmnopqrstx7K2");
        assert_eq!(last4(&key), "x7K2");
        assert_eq!(redacted(&key), "sk-...x7K2");
        let fp = fingerprint(&key);
        assert_eq!(fp.len(), 12);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(
            fp,
            fingerprint(&SecretString::from("sk-svcacct-abcdefghijklmnopqrstx7K3"))
        );
        assert_eq!(redacted(&SecretString::from("short")), "...");
        assert_eq!(
            redacted(&SecretString::from("abcdefghijklmnopqrstuvwxyz")),
            "...wxyz"
        );
    }

    #[test]
    fn debug_of_a_new_key_shows_only_the_hint() {
        let key = NewKey {
            api_key: SecretString::from("sk-live-0123456789abcdefWXYZ"),
            key_id: Some("svc_acct_1".into()),
            api_key_id: None,
            leftovers: Vec::new(),
        };
        let shown = format!("{key:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("WXYZ"));
    }
}

/// The service account name for a rotation: keyrot's prefix, the secret, the token's first 8 characters.
pub fn service_account_name(secret_name: &str, token: &str) -> String {
    let secret: String = secret_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    format!(
        "keyrot-{secret}-{}",
        token.chars().take(8).collect::<String>()
    )
}

/// Whether a service account named `account` is one keyrot mints for `secret_name`
/// (`keyrot-<secret>-<token8>`), and if so how long its secret part is, to prefer the most specific
/// owner when one secret's name extends another's.
pub(crate) fn minted_for(secret_name: &str, account: &str) -> Option<usize> {
    let prefix = service_account_name(secret_name, "");
    let token = account.strip_prefix(&prefix)?;
    (1..=8)
        .contains(&token.chars().count())
        .then_some(prefix.len())
}

#[cfg(test)]
mod naming_tests {
    use super::{minted_for, service_account_name};

    #[test]
    fn a_minted_account_belongs_to_the_secret_its_name_spells() {
        assert!(minted_for("prod/openai", "keyrot-prod-openai-0123abcd").is_some());
        // A name ending in '-' (or any character the account name turns into '-').
        assert!(minted_for("team-", "keyrot-team--0123abcd").is_some());
        assert!(minted_for("team/", "keyrot-team--0123abcd").is_some());
        assert!(
            minted_for("team", "keyrot-team--0123abcd").is_none(),
            "token too long"
        );
        assert!(
            minted_for("prod/openai", "keyrot-prod-openai-").is_none(),
            "no token"
        );
        assert!(minted_for("prod/openai", "someone-elses-account").is_none());
        let a = minted_for("a", "keyrot-a-b-1234");
        let a_b = minted_for("a-b", "keyrot-a-b-1234");
        assert!(a_b > a, "the longer name is the owner: {a_b:?} > {a:?}");
    }

    #[test]
    fn service_account_names_are_safe_and_name_the_rotation() {
        assert_eq!(
            service_account_name("prod/openai", "0123456789abcdef"),
            "keyrot-prod-openai-01234567"
        );
        let long = service_account_name(&"x".repeat(300), "t");
        assert!(long.len() < 64, "{long}");
    }
}
