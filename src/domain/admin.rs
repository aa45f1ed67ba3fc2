//! What an admin or token secret may serve. The binding belongs to whoever may tag the admin secret,
//! never to a managed secret's writer: a value can name an admin secret, but only the admin secret's
//! own tags say whether it serves that value's secret, and which provider resources it may touch.
//!
//! - `keyrot-admin:serves`: the managed-secret name prefixes it serves, separated by spaces
//!   (`prod/ llm/`). Without it, the admin secret serves nothing.
//! - `keyrot-admin:scope` (optional): the provider resource ids it may touch, separated by spaces
//!   (`proj_...`, `prj_...`, `team_...`, `srv-...`). Without it, any resource of that credential.
//!
//! Admin secrets live under their own prefix (`KEYROT_ADMIN_PREFIX`, default `keyrot-admin/`), apart
//! from the managed secrets, and a managed secret (tagged `keyrot:` or rotated by keyrot) is never read
//! as an admin credential, unless its owner tagged it `keyrot-admin:rotated=true`: one of keyrot's own
//! credentials, which serves only requests for its own kind (domain::credential).

use std::collections::BTreeMap;

use crate::domain::credential::{CredentialKind, TAG_ROTATED};
use crate::error::{Error, Result};

pub const TAG_SERVES: &str = "keyrot-admin:serves";
pub const TAG_SCOPE: &str = "keyrot-admin:scope";
pub const DEFAULT_ADMIN_PREFIX: &str = "keyrot-admin/";

/// One read of an admin credential, as the managed secret asks for it.
#[derive(Debug, Clone, Copy)]
pub struct AdminRequest<'a> {
    /// The managed secret whose value names the admin secret.
    pub managed: &'a str,
    /// The field of the value that names it (`openai.admin_key_secret`, `targets[].token_secret`).
    pub field: &'a str,
    pub admin_secret: &'a str,
    /// The provider resources the call will touch (a project, a team, a service).
    pub resources: &'a [&'a str],
    /// The kind of credential the call sends (an OpenAI admin key, a Vercel token); `None` for a
    /// database's master credentials.
    pub wants: Option<CredentialKind>,
}

/// What keyrot knows of an admin secret before reading its value: its tags and whether keyrot manages
/// it.
#[derive(Debug, Clone, Default)]
pub struct AdminSecret {
    pub tags: BTreeMap<String, String>,
    /// Rotated by keyrot's rotator (or tagged `keyrot:`): a managed secret, whose key its writer chose.
    pub managed: bool,
}

impl AdminSecret {
    /// Whether its owner let keyrot rotate it as one of keyrot's own credentials.
    pub fn is_rotated_credential(&self) -> bool {
        self.tags.get(TAG_ROTATED).map(String::as_str) == Some("true")
    }
}

impl AdminRequest<'_> {
    /// Refuses a request the admin secret's name, kind or tags do not allow; says which tag or name to
    /// change, with the command.
    pub fn check(&self, admin_prefix: &str, admin: &AdminSecret) -> Result<()> {
        let (managed, field, name) = (self.managed, self.field, self.admin_secret);
        if !secret_name_of(name).starts_with(admin_prefix) {
            return Err(Error::config(
                managed,
                field,
                format!("names {name}, which is not under the admin prefix {admin_prefix}"),
                format!(
                    "keep admin keys and tokens under {admin_prefix} (KEYROT_ADMIN_PREFIX) and name one there"
                ),
            ));
        }
        let rotated = admin.managed || admin.tags.keys().any(|key| key.starts_with("keyrot:"));
        if rotated && !admin.is_rotated_credential() {
            return Err(Error::config(
                managed,
                field,
                format!(
                    "names {name}, a secret keyrot manages: its key is never used as an admin credential"
                ),
                format!(
                    "name the secret that holds the provider's admin key or the platform's token (if {name} is one of keyrot's own credentials, its owner tags it {TAG_ROTATED}=true)"
                ),
            ));
        }
        let serves: Vec<&str> = admin
            .tags
            .get(TAG_SERVES)
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default();
        if !serves.iter().any(|prefix| managed.starts_with(prefix)) {
            return Err(Error::config(
                managed,
                field,
                format!(
                    "names {name}, whose {TAG_SERVES} tag does not include a prefix of {managed}"
                ),
                format!(
                    "if {name} may serve {managed}, add its prefix to the tag: aws secretsmanager tag-resource \
                     --secret-id {name} --tags Key={TAG_SERVES},Value=\"{}\"",
                    with_prefix(&serves, managed)
                ),
            ));
        }
        let Some(scope) = admin.tags.get(TAG_SCOPE) else {
            return Ok(());
        };
        let scope: Vec<&str> = scope.split_whitespace().collect();
        match self.resources.iter().find(|r| !scope.contains(r)) {
            None => Ok(()),
            Some(resource) => Err(Error::config(
                managed,
                field,
                format!("names {name}, whose {TAG_SCOPE} tag does not include {resource}"),
                format!(
                    "if {name} may touch {resource}, add it to the tag: aws secretsmanager tag-resource \
                     --secret-id {name} --tags Key={TAG_SCOPE},Value=\"{} {resource}\"",
                    scope.join(" ")
                ),
            )),
        }
    }
}

/// The name in a secret's ARN (`arn:aws:secretsmanager:region:account:secret:NAME-AbCdEf`, the name
/// with Secrets Manager's six-character suffix), or the name itself. A database value names its master
/// secret by ARN (`masterarn`), and the prefix rule reads the name in it.
pub fn secret_name_of(arn_or_name: &str) -> &str {
    let mut parts = arn_or_name.splitn(7, ':');
    match (parts.next(), parts.nth(4), parts.next()) {
        (Some("arn"), Some("secret"), Some(name)) => name,
        _ => arn_or_name,
    }
}

impl AdminRequest<'_> {
    /// Refuses a rotated credential whose value holds another kind than the request sends: a Vercel
    /// token is never sent to OpenAI. `provider` is the value's `provider` field, if any.
    pub fn check_kind(&self, admin: &AdminSecret, provider: Option<&str>) -> Result<()> {
        let Some(wants) = self.wants else {
            return Ok(());
        };
        if !admin.is_rotated_credential() || provider == Some(wants.provider().as_str()) {
            return Ok(());
        }
        let (managed, field, name) = (self.managed, self.field, self.admin_secret);
        Err(Error::config(
            managed,
            field,
            format!(
                "names {name}, which holds a {} credential, not the {} credential {field} needs",
                provider.unwrap_or("(no provider)"),
                wants.provider()
            ),
            format!(
                "name the secret that holds the {} credential",
                wants.provider().title()
            ),
        ))
    }

    /// The check of a credential secret read as its own key (its rotation revokes the old key with
    /// the new one): under the admin prefix, and tagged by its owner for keyrot to rotate.
    pub fn check_own(&self, admin_prefix: &str, admin: &AdminSecret) -> Result<()> {
        let name = self.admin_secret;
        if secret_name_of(name).starts_with(admin_prefix) && admin.is_rotated_credential() {
            return Ok(());
        }
        Err(Error::config(
            self.managed,
            "provider",
            format!(
                "is one of keyrot's own credentials, but {name} is not under {admin_prefix} tagged {TAG_ROTATED}=true"
            ),
            format!(
                "keep the credential under {admin_prefix} and tag it: aws secretsmanager tag-resource --secret-id {name} --tags Key={TAG_ROTATED},Value=true"
            ),
        ))
    }

    /// Refuses an admin secret without a `keyrot-admin:scope` tag, for credentials that reach further
    /// than a provider's project: a database's master user can set any role's password, so its secret
    /// names the roles it serves, and a managed value cannot name another.
    pub fn check_scope_tagged(&self, admin: &AdminSecret) -> Result<()> {
        if admin.tags.contains_key(TAG_SCOPE) {
            return Ok(());
        }
        let (managed, field, name) = (self.managed, self.field, self.admin_secret);
        Err(Error::config(
            managed,
            field,
            format!("names {name}, which has no {TAG_SCOPE} tag naming the roles it may rotate"),
            format!(
                "tag it with the application roles it serves: aws secretsmanager tag-resource \
                 --secret-id {name} --tags Key={TAG_SCOPE},Value=\"{}\"",
                self.resources.join(" ")
            ),
        ))
    }
}

/// The `keyrot-admin:serves` value with the managed secret's own prefix (up to its last `/`) added.
fn with_prefix(serves: &[&str], managed: &str) -> String {
    let own = managed
        .rfind('/')
        .map_or(managed, |slash| &managed[..=slash]);
    let mut all: Vec<&str> = serves.to_vec();
    all.push(own);
    all.join(" ")
}

/// Whether the admin prefix and the managed prefix overlap: a secret under both would be an admin
/// credential whose writer could be a managed secret's. Without a managed prefix, nothing overlaps by
/// name, and the check that a managed secret is never read as an admin one stands alone.
pub fn prefixes_overlap(admin_prefix: &str, managed_prefix: Option<&str>) -> bool {
    managed_prefix.is_some_and(|managed| {
        admin_prefix.starts_with(managed) || managed.starts_with(admin_prefix)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(tags: &[(&str, &str)]) -> AdminSecret {
        AdminSecret {
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            managed: false,
        }
    }

    #[test]
    fn an_arn_is_checked_by_the_name_in_it() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keyrot-admin/db-AbCdEf";
        assert_eq!(secret_name_of(arn), "keyrot-admin/db-AbCdEf");
        assert_eq!(secret_name_of("keyrot-admin/db"), "keyrot-admin/db");
        let elsewhere =
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-master-AbCdEf";
        let err = request(elsewhere, &[])
            .check(DEFAULT_ADMIN_PREFIX, &admin(&[(TAG_SERVES, "prod/")]))
            .expect_err("outside the admin prefix");
        assert!(
            err.to_string().contains("not under the admin prefix"),
            "{err}"
        );
        request(arn, &[])
            .check(DEFAULT_ADMIN_PREFIX, &admin(&[(TAG_SERVES, "prod/")]))
            .expect("an admin secret by ARN");
    }

    fn request<'a>(admin_secret: &'a str, resources: &'a [&'a str]) -> AdminRequest<'a> {
        AdminRequest {
            wants: Some(CredentialKind::OpenAiAdmin),
            managed: "prod/openai",
            field: "openai.admin_key_secret",
            admin_secret,
            resources,
        }
    }

    #[test]
    fn an_admin_secret_serves_the_prefixes_its_tag_names() {
        let tagged = admin(&[(TAG_SERVES, "llm/ prod/")]);
        request("keyrot-admin/openai", &["proj_1"])
            .check(DEFAULT_ADMIN_PREFIX, &tagged)
            .expect("served");
    }

    #[test]
    fn without_the_tag_it_serves_nothing_and_the_fix_is_the_command() {
        let err = request("keyrot-admin/openai", &[])
            .check(DEFAULT_ADMIN_PREFIX, &admin(&[]))
            .expect_err("refused")
            .to_string();
        for part in [
            "prod/openai",
            "openai.admin_key_secret",
            "keyrot-admin/openai",
            "aws secretsmanager tag-resource --secret-id keyrot-admin/openai",
            "Value=\"prod/\"",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        let other_team = admin(&[(TAG_SERVES, "dev/")]);
        let err = request("keyrot-admin/openai", &[])
            .check(DEFAULT_ADMIN_PREFIX, &other_team)
            .expect_err("another team's")
            .to_string();
        assert!(err.contains("Value=\"dev/ prod/\""), "{err}");
    }

    #[test]
    fn a_scope_limits_the_resources() {
        let scoped = admin(&[(TAG_SERVES, "prod/"), (TAG_SCOPE, "proj_1 proj_2")]);
        request("keyrot-admin/openai", &["proj_2"])
            .check(DEFAULT_ADMIN_PREFIX, &scoped)
            .expect("in scope");
        let err = request("keyrot-admin/openai", &["proj_9"])
            .check(DEFAULT_ADMIN_PREFIX, &scoped)
            .expect_err("out of scope")
            .to_string();
        assert!(err.contains("proj_9") && err.contains(TAG_SCOPE), "{err}");
    }

    #[test]
    fn a_credential_keyrot_rotates_serves_only_when_its_owner_tagged_it_and_only_its_kind() {
        let mut rotated = admin(&[(TAG_SERVES, "prod/"), ("keyrot:tier", "prod")]);
        rotated.managed = true;
        let err = request("keyrot-admin/openai", &[])
            .check(DEFAULT_ADMIN_PREFIX, &rotated)
            .expect_err("rotated by keyrot, not tagged by its owner");
        assert!(
            err.to_string().contains("keyrot-admin:rotated=true"),
            "{err}"
        );

        rotated.tags.insert(TAG_ROTATED.into(), "true".into());
        let ask = request("keyrot-admin/openai", &[]);
        ask.check(DEFAULT_ADMIN_PREFIX, &rotated)
            .expect("one of keyrot's own credentials");
        ask.check_kind(&rotated, Some("openai-admin"))
            .expect("its kind");
        let err = ask
            .check_kind(&rotated, Some("vercel-token"))
            .expect_err("a Vercel token is never sent to OpenAI")
            .to_string();
        assert!(err.contains("holds a vercel-token credential"), "{err}");
        ask.check_own(DEFAULT_ADMIN_PREFIX, &rotated)
            .expect("its own key");
        let err = request("prod/openai-admin", &[])
            .check_own(DEFAULT_ADMIN_PREFIX, &rotated)
            .expect_err("outside the admin prefix");
        assert!(err.to_string().contains("tag-resource"), "{err}");
        ask.check_own(DEFAULT_ADMIN_PREFIX, &admin(&[]))
            .expect_err("not tagged for rotation");
    }

    #[test]
    fn a_managed_secret_or_one_outside_the_prefix_is_never_an_admin_credential() {
        let tagged = admin(&[(TAG_SERVES, "prod/")]);
        let err = request("prod/other-service", &[])
            .check(DEFAULT_ADMIN_PREFIX, &tagged)
            .expect_err("outside")
            .to_string();
        assert!(
            err.contains("not under the admin prefix keyrot-admin/"),
            "{err}"
        );
        let managed = AdminSecret {
            managed: true,
            ..tagged.clone()
        };
        let err = request("keyrot-admin/openai", &[])
            .check(DEFAULT_ADMIN_PREFIX, &managed)
            .expect_err("managed")
            .to_string();
        assert!(err.contains("a secret keyrot manages"), "{err}");
        let keyrot_tagged = admin(&[(TAG_SERVES, "prod/"), ("keyrot:grace-hours", "1")]);
        assert!(
            request("keyrot-admin/openai", &[])
                .check(DEFAULT_ADMIN_PREFIX, &keyrot_tagged)
                .is_err()
        );
    }

    #[test]
    fn the_two_prefixes_must_not_overlap() {
        assert!(prefixes_overlap("keyrot/admin/", Some("keyrot/")));
        assert!(!prefixes_overlap("keyrot-admin/", None));
        assert!(!prefixes_overlap("keyrot-admin/", Some("keyrot/")));
    }
}
