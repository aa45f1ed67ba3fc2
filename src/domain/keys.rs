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
    /// A database role's new password (`key_id` names the role); `api_key` is then the connection string.
    pub password: Option<SecretString>,
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

    /// `key` as fingerprinted, shown by `shown` where that is what people recognise: a database's
    /// connection string is fingerprinted whole (targets hold it) and shown by its password, whose tail
    /// is the part that changes (a connection string's tail is its `sslmode`).
    /// A password has no public prefix the way `sk-` is one: only its tail is shown.
    pub fn shown_by(key: &SecretString, password: Option<&SecretString>) -> Self {
        let Some(password) = password else {
            return KeyView::of(key);
        };
        KeyView {
            last4: last4(password),
            redacted: format!("...{}", last4(password)),
            fingerprint: fingerprint(key),
        }
    }
}

impl NewKey {
    /// How people see this key (see [`KeyView::shown_by`]).
    pub fn key_view(&self) -> KeyView {
        KeyView::shown_by(&self.api_key, self.password.as_ref())
    }
}

/// The first 12 hex characters of the key's SHA-256: enough to tell keys apart, useless to an attacker.
pub fn fingerprint(key: &SecretString) -> String {
    let digest = Sha256::digest(key.expose_secret().as_bytes());
    hex::encode(&digest[..6])
}

/// Whether `text` has the shape of a [`fingerprint`]: 12 lowercase hex characters.
pub fn is_fingerprint(text: &str) -> bool {
    text.len() == 12
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
            password: None,
        };
        let shown = format!("{key:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("WXYZ"));
    }
}

/// The secret a minted service account belongs to, exactly: a readable part of its name for people, and
/// a tag (the first 12 hex characters of the SHA-256 of its ARN) that no other secret shares. The name
/// alone is lossy (`prod/openai` and `prod.openai` spell the same account name, and long names are cut),
/// and the ARN also tells apart same-named secrets of another account or region sharing the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOwner {
    readable: String,
    tag: String,
}

impl AccountOwner {
    /// The owner `arn` names (or the secret's name where no ARN is known, as in unit tests).
    pub fn of(secret_name: &str, arn: &str) -> Self {
        let exact = if arn.is_empty() { secret_name } else { arn };
        AccountOwner {
            readable: readable(secret_name, 30),
            tag: hex::encode(&Sha256::digest(exact.as_bytes())[..6]),
        }
    }

    /// The service account name for a rotation: `keyrot-<readable>-<tag>-<token8>`, under 64 characters.
    pub fn account_name(&self, token: &str) -> String {
        format!("{}{}", self.prefix(), token8(token))
    }

    /// Whether `account` is named for one of this secret's rotations.
    pub fn owns(&self, account: &str) -> bool {
        account
            .strip_prefix(&self.prefix())
            .is_some_and(|token| token.chars().count() == 8)
    }

    fn prefix(&self) -> String {
        format!("keyrot-{}-{}-", self.readable, self.tag)
    }
}

/// The account name releases before 0.3 gave (`keyrot-<secret, lossy, 48>-<token8>`). Such an account
/// belongs to a secret only when exactly one managed secret spells it, which the caller decides.
pub(crate) fn legacy_owns(secret_name: &str, account: &str) -> bool {
    account
        .strip_prefix(&format!("keyrot-{}-", readable(secret_name, 48)))
        .is_some_and(|token| token.chars().count() == 8)
}

/// The characters an account name allows, others turned into `-`, cut at `limit`.
fn readable(secret_name: &str, limit: usize) -> String {
    secret_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(limit)
        .collect()
}

fn token8(token: &str) -> String {
    token.chars().take(8).collect()
}

#[cfg(test)]
mod naming_tests {
    use super::{AccountOwner, legacy_owns};

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/openai-AbCdEf";

    #[test]
    fn an_account_belongs_to_exactly_the_secret_it_was_minted_for() {
        let owner = AccountOwner::of("prod/openai", ARN);
        let name = owner.account_name("0123456789abcdef");
        assert!(owner.owns(&name), "{name}");
        // Names that spell the same account name under the old, lossy rule.
        let dotted = AccountOwner::of("prod.openai", &ARN.replace("prod/openai", "prod.openai"));
        assert!(!dotted.owns(&name), "{name}");
        // The same name in another account or region.
        let elsewhere =
            AccountOwner::of("prod/openai", &ARN.replace("123456789012", "210987654321"));
        assert!(!elsewhere.owns(&name));
        // Long names that share their first 30 characters.
        let long_a = AccountOwner::of(&format!("{}a", "x".repeat(40)), "");
        let long_b = AccountOwner::of(&format!("{}b", "x".repeat(40)), "");
        assert!(!long_b.owns(&long_a.account_name("01234567")));
        assert!(!owner.owns(&format!("{name}9")), "token too long");
        assert!(!owner.owns("someone-elses-account"));
    }

    #[test]
    fn account_names_are_safe_short_and_name_the_rotation() {
        let name = AccountOwner::of("prod/openai", ARN).account_name("0123456789abcdef");
        assert!(name.starts_with("keyrot-prod-openai-"), "{name}");
        assert!(name.ends_with("-01234567"), "{name}");
        let long = AccountOwner::of(&"x/".repeat(150), ARN).account_name("t0123456789");
        assert!(long.len() < 64, "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn legacy_names_are_recognized_by_their_secret_part() {
        assert!(legacy_owns("prod/openai", "keyrot-prod-openai-0123abcd"));
        assert!(
            legacy_owns("prod.openai", "keyrot-prod-openai-0123abcd"),
            "lossy: the caller must see it is ambiguous"
        );
        assert!(!legacy_owns("prod/openai", "keyrot-prod-openai-0123"));
        assert!(!legacy_owns("a", "keyrot-a-b-1234abcd"));
    }
}
