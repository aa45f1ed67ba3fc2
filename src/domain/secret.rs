//! The managed secret's value (docs/secret-format.md).
//!
//! The JSON is read by hand, field by field, rather than with a derive: serde's own messages quote the
//! offending value, and the offending value may be a key. Every refusal names the secret, the field and
//! the fix, and quotes nothing from the document but field names.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::domain::credential::{CredentialKind, CredentialSettings};
use crate::domain::fields::{Fields, IdShape};
use crate::domain::keys::NewKey;
use crate::domain::postgres::{Login, PostgresSettings};
use crate::error::{Error, Result};

/// Which provider issues the secret's keys, with the settings its block carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSettings {
    OpenAi(OpenAiSettings),
    Anthropic(AnthropicSettings),
    Generic(GenericSettings),
    /// A database password with alternating users (`"engine": "postgres"`, domain::postgres).
    Postgres(PostgresSettings),
    /// A Stripe secret or restricted key a person creates in the Dashboard (domain::staged).
    Stripe(StripeSettings),
    /// A GitHub token a person creates in their settings (domain::staged).
    GitHub(GitHubSettings),
    /// One of keyrot's own credentials, under the admin prefix (domain::credential).
    Credential(CredentialSettings),
}

/// The account a staged Stripe key must belong to (`"stripe": {"account": "acct_..."}`), when the value
/// records one; otherwise the account of the key AWSCURRENT holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StripeSettings {
    pub account: Option<String>,
}

/// The user a staged GitHub token must belong to (`"github": {"login": "..."}`), when the value records
/// one; otherwise the user of the token AWSCURRENT holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubSettings {
    pub login: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiSettings {
    pub project_id: String,
    pub admin_key_secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicSettings {
    pub admin_key_secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericSettings {
    /// Length of the random part; `prefix` goes in front of it.
    pub length: u32,
    pub prefix: String,
    /// Called with the key as a bearer token to validate it; no URL means no validation is possible.
    pub validate_url: Option<String>,
}

impl GenericSettings {
    pub const DEFAULT_LENGTH: u32 = 48;
    pub const MIN_LENGTH: u32 = 16;
    /// GetRandomPassword's own limit, kept when keyrot began drawing keys itself.
    pub const MAX_LENGTH: u32 = 4096;
}

/// Which provider issues a key: what a revocation record names, and what its revocation dispatches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Generic,
    Postgres,
    Stripe,
    GitHub,
    OpenAiAdmin,
    AnthropicAdmin,
    VercelToken,
    RenderToken,
}

impl Provider {
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Generic => "generic",
            Provider::Postgres => "postgres",
            Provider::Stripe => "stripe",
            Provider::GitHub => "github",
            Provider::OpenAiAdmin => "openai-admin",
            Provider::AnthropicAdmin => "anthropic-admin",
            Provider::VercelToken => "vercel-token",
            Provider::RenderToken => "render-token",
        }
    }

    /// The value's field that holds the key (a database's `password` is read apart).
    pub fn key_field(self) -> &'static str {
        CredentialKind::of(self).map_or("api_key", CredentialKind::key_field)
    }

    pub const ALL: [Provider; 10] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Generic,
        Provider::Postgres,
        Provider::Stripe,
        Provider::GitHub,
        Provider::OpenAiAdmin,
        Provider::AnthropicAdmin,
        Provider::VercelToken,
        Provider::RenderToken,
    ];

    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|provider| provider.as_str() == name)
    }
}

/// Records and tests compare providers with their stored names.
impl PartialEq<&str> for Provider {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ProviderSettings {
    pub fn provider(&self) -> Provider {
        match self {
            ProviderSettings::OpenAi(_) => Provider::OpenAi,
            ProviderSettings::Anthropic(_) => Provider::Anthropic,
            ProviderSettings::Generic(_) => Provider::Generic,
            ProviderSettings::Postgres(_) => Provider::Postgres,
            ProviderSettings::Stripe(_) => Provider::Stripe,
            ProviderSettings::GitHub(_) => Provider::GitHub,
            ProviderSettings::Credential(credential) => credential.kind.provider(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.provider().as_str()
    }
}

/// A parsed version of a managed secret.
pub struct ManagedSecret {
    /// Everything in the document but `api_key` (or a database's `password`), kept verbatim so the next
    /// version carries unknown fields.
    fields: Map<String, Value>,
    pub provider: ProviderSettings,
    /// What the secret's consumers and targets receive, and what fingerprints and hints describe: the
    /// API key, or a database's connection string (which holds its password).
    pub api_key: SecretString,
    /// The provider's id of the key: for a database, the role this version logs in as.
    pub key_id: Option<String>,
    pub api_key_id: Option<String>,
    /// Deployment targets, as configured; validated by the targets layer.
    pub targets: Vec<Value>,
    /// A database role's password (the `password` field); `None` for API keys.
    password: Option<SecretString>,
}

impl std::fmt::Debug for ManagedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedSecret")
            .field("provider", &self.provider)
            .field("api_key", &crate::domain::keys::redacted(&self.api_key))
            .field("key_id", &self.key_id)
            .field("api_key_id", &self.api_key_id)
            .field("targets", &self.targets.len())
            .finish()
    }
}

const PROVIDERS: &str = "openai, anthropic, stripe, github, generic, postgres, or for keyrot's own credentials openai-admin, anthropic-admin, vercel-token or render-token";
/// No provider issues longer keys; a longer value is a mistake, not a key.
const MAX_KEY_LEN: usize = 4096;

impl ManagedSecret {
    /// Parses one version's SecretString. `secret` and `stage` only label the errors.
    pub fn parse(secret: &str, stage: impl std::fmt::Display, text: &SecretString) -> Result<Self> {
        let path = format!("{stage} value: ");
        let mut fields = document_of(secret, &path, text)?;
        if is_database(&fields) {
            return Self::parse_database(secret, path, fields);
        }
        if fields.contains_key("engine") && !fields.contains_key("provider") {
            return Err(Error::config(
                secret,
                format!("{path}engine"),
                "names a database keyrot does not rotate",
                "keyrot rotates \"engine\": \"postgres\" values; rotate other databases with AWS's own rotation templates",
            ));
        }
        let key_field = fields
            .get("provider")
            .and_then(Value::as_str)
            .and_then(Provider::parse)
            .map_or("api_key", Provider::key_field);
        let api_key = take_key(secret, &path, &mut fields, key_field)?;
        let doc = Fields::new(secret, path, &fields);
        let provider = provider_of(&doc)?;
        let (key_id, api_key_id) = key_ids(&doc, &provider)?;
        if let ProviderSettings::Credential(_) = provider {
            refuse_in_credential(&doc, key_field)?;
        }
        let targets = targets_of(&doc)?;
        Ok(ManagedSecret {
            fields,
            provider,
            api_key,
            key_id,
            api_key_id,
            targets,
            password: None,
        })
    }

    /// A database value, in AWS's multi-user format: its key is the connection string targets receive.
    fn parse_database(secret: &str, path: String, mut fields: Map<String, Value>) -> Result<Self> {
        let password = crate::domain::postgres::take_password(secret, &path, &mut fields)?;
        let doc = Fields::new(secret, path, &fields);
        let settings = PostgresSettings::parse(&doc)?;
        let targets = targets_of(&doc)?;
        let login = Login {
            username: settings.username.clone(),
            password,
        };
        Ok(ManagedSecret {
            api_key: settings.connection_string(&login),
            key_id: Some(login.username),
            api_key_id: None,
            targets,
            password: Some(login.password),
            provider: ProviderSettings::Postgres(settings),
            fields,
        })
    }

    /// How people see this version's key: its password for a database (see [`KeyView::shown_by`]).
    pub fn key_view(&self) -> crate::domain::keys::KeyView {
        crate::domain::keys::KeyView::shown_by(&self.api_key, self.password.as_ref())
    }

    /// The role and password a database value logs in with; `None` for an API key.
    pub fn login(&self) -> Option<Login> {
        let ProviderSettings::Postgres(settings) = &self.provider else {
            return None;
        };
        let password = self.password.as_ref()?;
        Some(Login {
            username: settings.username.clone(),
            password: SecretString::from(password.expose_secret().to_owned()),
        })
    }

    /// The document of the next version: this one with the new key and its ids, all else unchanged.
    pub fn with_new_key(&self, new_key: &NewKey) -> Result<SecretString> {
        let mut fields = self.fields.clone();
        if let ProviderSettings::Postgres(_) = self.provider {
            database_login(&mut fields, new_key)?;
            return serialise(fields);
        }
        for (name, value) in [
            ("key_id", &new_key.key_id),
            ("api_key_id", &new_key.api_key_id),
        ] {
            match value {
                Some(id) => fields.insert(name.to_owned(), Value::String(id.clone())),
                None => fields.remove(name),
            };
        }
        fields.insert(
            self.provider.provider().key_field().to_owned(),
            Value::String(new_key.api_key.expose_secret().to_owned()),
        );
        serialise(fields)
    }
}

/// A database value's next login: the role in `username` and its password, in AWS's own fields.
fn database_login(fields: &mut Map<String, Value>, new_key: &NewKey) -> Result<()> {
    let (Some(role), Some(password)) = (&new_key.key_id, &new_key.password) else {
        return Err(Error::protocol(
            "(new version)",
            "a database's new login needs its role and password",
        ));
    };
    fields.insert("username".to_owned(), Value::String(role.clone()));
    fields.insert(
        "password".to_owned(),
        Value::String(password.expose_secret().to_owned()),
    );
    Ok(())
}

fn serialise(fields: Map<String, Value>) -> Result<SecretString> {
    let text = serde_json::to_string(&Value::Object(fields)).map_err(|err| {
        Error::protocol(
            "(new version)",
            format!("could not serialise the new value: {err}"),
        )
    })?;
    Ok(SecretString::from(text))
}

/// Whether a value is a database's: AWS's `"engine": "postgres"`, or `"provider": "postgres"`.
fn is_database(fields: &Map<String, Value>) -> bool {
    let named = |field: &str| fields.get(field).and_then(Value::as_str) == Some("postgres");
    named("engine") || named("provider")
}

fn targets_of(doc: &Fields<'_>) -> Result<Vec<Value>> {
    match doc.get("targets") {
        None => Ok(Vec::new()),
        Some(Value::Array(targets)) => Ok(targets.clone()),
        Some(_) => Err(doc.bad(
            "targets",
            "must be an array",
            "make targets a JSON array of target objects",
        )),
    }
}

/// The whole document, which must be a JSON object.
fn document_of(secret: &str, path: &str, text: &SecretString) -> Result<Map<String, Value>> {
    let bad = |problem: String, fix: &str| {
        Error::config(secret, format!("{path}SecretString"), problem, fix)
    };
    // serde_json's syntax errors carry a position, never the text around it.
    let document: Value = serde_json::from_str(text.expose_secret()).map_err(|err| {
        bad(
            format!("not valid JSON ({err})"),
            "store a JSON object as docs/secret-format.md describes",
        )
    })?;
    match document {
        Value::Object(fields) => Ok(fields),
        _ => Err(bad(
            "is JSON but not an object".into(),
            "store a JSON object with provider and api_key",
        )),
    }
}

/// Takes the key (`api_key`, or a credential's `admin_key` or `token`) out of the document (the rest
/// is kept verbatim for the next version).
fn take_key(
    secret: &str,
    path: &str,
    fields: &mut Map<String, Value>,
    field: &str,
) -> Result<SecretString> {
    let bad = |problem: String, fix: &str| {
        Error::config(
            secret,
            format!("{path}{field}"),
            problem,
            fix.replace("api_key", field),
        )
    };
    match fields.remove(field) {
        Some(Value::String(key)) if key.len() > MAX_KEY_LEN => Err(bad(
            format!(
                "is {} bytes long; API keys are at most {MAX_KEY_LEN}",
                key.len()
            ),
            "put the provider's API key itself in api_key",
        )),
        Some(Value::String(key)) if !key.trim().is_empty() => Ok(SecretString::from(key)),
        Some(Value::String(_)) => Err(bad(
            "is empty".into(),
            "put the provider's current API key in api_key",
        )),
        None | Some(Value::Null) => Err(bad(
            "is missing".into(),
            "put the provider's current API key in api_key",
        )),
        Some(_) => Err(bad(
            "must be a string".into(),
            "put the API key in api_key as a string",
        )),
    }
}

/// The provider's ids of the current key: they name what a revocation deletes, so they must have the
/// provider's own shape. A generic key has nothing to revoke at a provider: its ids are free text.
fn key_ids(
    doc: &Fields<'_>,
    provider: &ProviderSettings,
) -> Result<(Option<String>, Option<String>)> {
    Ok(match provider {
        ProviderSettings::OpenAi(_) => (
            doc.optional_id("key_id", IdShape::OpenAiServiceAccount)?,
            doc.optional_id("api_key_id", IdShape::OpenAiApiKey)?,
        ),
        ProviderSettings::Anthropic(_) => (
            doc.optional_id("key_id", IdShape::AnthropicKey)?,
            doc.optional_str("api_key_id")?,
        ),
        ProviderSettings::Credential(CredentialSettings {
            kind: CredentialKind::OpenAiAdmin,
            ..
        }) => (doc.optional_id("key_id", IdShape::OpenAiAdminKey)?, None),
        // Stripe and GitHub have no ids keyrot could revoke by: their keys are found by value.
        ProviderSettings::Credential(_)
        | ProviderSettings::Generic(_)
        | ProviderSettings::Stripe(_)
        | ProviderSettings::GitHub(_) => {
            (doc.optional_str("key_id")?, doc.optional_str("api_key_id")?)
        }
        // A database value is parsed apart (`parse_database`): its role is its id.
        ProviderSettings::Postgres(settings) => (Some(settings.username.clone()), None),
    })
}

/// The `provider` and its block.
fn provider_of(doc: &Fields<'_>) -> Result<ProviderSettings> {
    let set = format!("set provider to {PROVIDERS}");
    let name = match doc.get("provider") {
        Some(Value::String(name)) => name.as_str(),
        None => return Err(doc.bad("provider", "is missing", set)),
        Some(_) => return Err(doc.bad("provider", "must be a string", set)),
    };
    if let Some(kind) = Provider::parse(name).and_then(CredentialKind::of) {
        let expires_in_days = match kind {
            CredentialKind::OpenAiAdmin => expiry_days(doc)?,
            _ => CredentialSettings::MAX_EXPIRY_DAYS,
        };
        return Ok(ProviderSettings::Credential(CredentialSettings {
            kind,
            expires_in_days,
        }));
    }
    let block = |fix: &str| {
        doc.block(name)?
            .ok_or_else(|| doc.bad(name, format!("is missing for provider {name}"), fix))
    };
    match name {
        "openai" => {
            let fix = "add \"openai\": {\"project_id\": \"proj_...\", \"admin_key_secret\": \"<name of the secret holding the admin key>\"}";
            let block = block(fix)?;
            Ok(ProviderSettings::OpenAi(OpenAiSettings {
                project_id: block.required_id("project_id", IdShape::OpenAiProject)?,
                admin_key_secret: block.required_str("admin_key_secret", fix)?,
            }))
        }
        "anthropic" => {
            let fix = "add \"anthropic\": {\"admin_key_secret\": \"<name of the secret holding the admin key>\"}";
            let block = block(fix)?;
            Ok(ProviderSettings::Anthropic(AnthropicSettings {
                admin_key_secret: block.required_str("admin_key_secret", fix)?,
            }))
        }
        "generic" => Ok(ProviderSettings::Generic(parse_generic(
            doc.block("generic")?,
        )?)),
        "stripe" => Ok(ProviderSettings::Stripe(StripeSettings {
            account: match doc.block("stripe")? {
                Some(block) => block.optional_id("account", IdShape::StripeAccount)?,
                None => None,
            },
        })),
        "github" => Ok(ProviderSettings::GitHub(GitHubSettings {
            login: match doc.block("github")? {
                Some(block) => block.optional_str("login")?,
                None => None,
            },
        })),
        _ => Err(doc.bad("provider", "names a provider keyrot does not know", set)),
    }
}

/// A credential's value holds the credential once, in its own field, and goes nowhere else: another key
/// field would be read by some reader instead of the rotated one, and a target would copy keyrot's own
/// credential out of the admin prefix.
fn refuse_in_credential(doc: &Fields<'_>, key_field: &str) -> Result<()> {
    let stray = ["api_key", "admin_key", "token"]
        .into_iter()
        .find(|field| *field != key_field && doc.get(field).is_some());
    if let Some(field) = stray {
        return Err(doc.bad(
            field,
            format!("is not read for keyrot's own credentials, which keep theirs in {key_field}"),
            format!("remove {field}, and keep the credential in {key_field} only"),
        ));
    }
    if doc.get("targets").is_some() {
        return Err(doc.bad(
            "targets",
            "is not allowed for keyrot's own credentials: they never leave the admin prefix",
            "remove targets",
        ));
    }
    Ok(())
}

/// `openai_admin.expires_in_days`: 1 to 365, the year OpenAI allows when absent.
fn expiry_days(doc: &Fields<'_>) -> Result<u32> {
    let Some(block) = doc.block("openai_admin")? else {
        return Ok(CredentialSettings::MAX_EXPIRY_DAYS);
    };
    let max = CredentialSettings::MAX_EXPIRY_DAYS;
    match block.get("expires_in_days") {
        None => Ok(max),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(days) if (1..=u64::from(max)).contains(&days) => Ok(days as u32),
            _ => Err(block.bad(
                "expires_in_days",
                format!("{n} is out of range"),
                format!("use a whole number of days from 1 to {max}, well past the rotation schedule and grace"),
            )),
        },
        Some(_) => Err(block.bad(
            "expires_in_days",
            "must be a number",
            "use a whole number of days such as 120",
        )),
    }
}

fn parse_generic(block: Option<Fields<'_>>) -> Result<GenericSettings> {
    let Some(block) = block else {
        return Ok(GenericSettings {
            length: GenericSettings::DEFAULT_LENGTH,
            prefix: String::new(),
            validate_url: None,
        });
    };
    let range = GenericSettings::MIN_LENGTH as u64..=GenericSettings::MAX_LENGTH as u64;
    let length = match block.get("length") {
        None => GenericSettings::DEFAULT_LENGTH,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if range.contains(&n) => n as u32,
            _ => {
                return Err(block.bad(
                    "length",
                    format!("{n} is out of range"),
                    format!(
                        "use a whole number from {} to {}",
                        GenericSettings::MIN_LENGTH,
                        GenericSettings::MAX_LENGTH
                    ),
                ));
            }
        },
        Some(_) => {
            return Err(block.bad(
                "length",
                "must be a number",
                "use a whole number such as 48",
            ));
        }
    };
    let prefix = block.optional_str("prefix")?.unwrap_or_default();
    if prefix.len() > 64 || prefix.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(block.bad(
            "prefix",
            "must be at most 64 printable ASCII characters without spaces",
            "use a short prefix such as sk_live_",
        ));
    }
    let validate_url = block.optional_str("validate_url")?;
    if let Some(url) = &validate_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(block.bad(
            "validate_url",
            "is not an http(s) URL",
            "use a URL such as https://api.example.com/v1/me, or leave validate_url out",
        ));
    }
    Ok(GenericSettings {
        length,
        prefix,
        validate_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<ManagedSecret> {
        ManagedSecret::parse(
            "prod/llm",
            "AWSCURRENT",
            &SecretString::from(value.to_string()),
        )
    }

    #[test]
    fn parses_each_provider_block() {
        let openai = parse(
            json!({"provider": "openai", "api_key": "sk-1234567890abcdef",
            "openai": {"project_id": "proj_1", "admin_key_secret": "keyrot-admin/openai"}}),
        )
        .expect("openai");
        assert_eq!(
            openai.provider,
            ProviderSettings::OpenAi(OpenAiSettings {
                project_id: "proj_1".into(),
                admin_key_secret: "keyrot-admin/openai".into()
            })
        );
        let generic =
            parse(json!({"provider": "generic", "api_key": "k"})).expect("generic with defaults");
        assert_eq!(
            generic.provider,
            ProviderSettings::Generic(GenericSettings {
                length: 48,
                prefix: String::new(),
                validate_url: None
            })
        );
        let anthropic = parse(json!({"provider": "anthropic", "api_key": "k",
            "anthropic": {"admin_key_secret": "a"}}))
        .expect("anthropic");
        assert_eq!(anthropic.provider.name(), "anthropic");
    }

    #[test]
    fn refusals_name_the_field_and_the_fix_and_never_quote_the_key() {
        let key = "sk-THIS-IS-THE-SECRET-VALUE";
        let cases = [
            (json!({"api_key": key}), "provider: is missing"),
            (
                json!({"provider": "mistral", "api_key": key}),
                "provider: names a provider keyrot does not know",
            ),
            (
                json!({"provider": 7, "api_key": key}),
                "provider: must be a string",
            ),
            (json!({"provider": "generic"}), "api_key: is missing"),
            (
                json!({"provider": "generic", "api_key": ""}),
                "api_key: is empty",
            ),
            (
                json!({"provider": "generic", "api_key": 12}),
                "api_key: must be a string",
            ),
            (
                json!({"provider": "openai", "api_key": key}),
                "openai: is missing",
            ),
            (
                json!({"provider": "openai", "api_key": key, "openai": {"project_id": "proj_1"}}),
                "openai.admin_key_secret: is missing",
            ),
            (
                json!({"provider": "openai", "api_key": key, "openai": "p"}),
                "openai: must be an object",
            ),
            (
                json!({"provider": "anthropic", "api_key": key, "anthropic": {}}),
                "anthropic.admin_key_secret: is missing",
            ),
            (
                json!({"provider": "generic", "api_key": key, "generic": {"length": 3}}),
                "generic.length: 3 is out of range",
            ),
            (
                json!({"provider": "generic", "api_key": key, "generic": {"length": "48"}}),
                "generic.length: must be a number",
            ),
            (
                json!({"provider": "generic", "api_key": key, "generic": {"prefix": "a b"}}),
                "generic.prefix",
            ),
            (
                json!({"provider": "generic", "api_key": key, "generic": {"validate_url": "ftp://x"}}),
                "generic.validate_url",
            ),
            (
                json!({"provider": "generic", "api_key": key, "targets": {}}),
                "targets: must be an array",
            ),
            (
                json!({"provider": "generic", "api_key": key, "key_id": 5}),
                "key_id: must be a string",
            ),
            (
                json!(["not", "an", "object"]),
                "SecretString: is JSON but not an object",
            ),
        ];
        for (value, expected) in cases {
            let err = parse(value.clone()).expect_err("must be refused");
            let text = err.to_string();
            assert!(text.contains("secret prod/llm"), "{text}");
            assert!(text.contains(expected), "{value}: {text}");
            assert!(text.contains("fix:"), "{text}");
            assert!(!text.contains("SECRET-VALUE"), "{text}");
        }
        let err = ManagedSecret::parse(
            "s",
            "AWSCURRENT",
            &SecretString::from(format!("{{\"api_key\": \"{key}\"")),
        )
        .expect_err("not JSON");
        assert!(err.to_string().contains("not valid JSON"));
        assert!(!err.to_string().contains("SECRET-VALUE"));
    }

    #[test]
    fn a_database_value_is_read_in_aws_format_and_its_next_login_written_there() {
        let current = parse(
            json!({"engine": "postgres", "username": "app", "password": "PW-CURRENT-0000",
            "host": "db.internal", "port": 5432, "dbname": "shop", "masterarn": "keyrot-admin/db",
            "postgres": {"sslmode": "disable"}}),
        )
        .expect("AWS's multi-user format needs no provider field");
        assert_eq!(current.provider.provider(), Provider::Postgres);
        assert_eq!(current.key_id.as_deref(), Some("app"));
        assert_eq!(
            current.api_key.expose_secret(),
            "postgres://app:PW-CURRENT-0000@db.internal:5432/shop?sslmode=require",
            "targets receive the connection string"
        );
        let next = current
            .with_new_key(&NewKey {
                api_key: SecretString::from("postgres://..."),
                key_id: Some("app_clone".into()),
                api_key_id: None,
                leftovers: Vec::new(),
                password: Some(SecretString::from("PW-NEXT-1111")),
            })
            .expect("serialises");
        let value: Value = serde_json::from_str(next.expose_secret()).expect("json");
        assert_eq!(value["username"], "app_clone");
        assert_eq!(value["password"], "PW-NEXT-1111");
        assert_eq!(value["engine"], "postgres");
        assert_eq!(value["postgres"]["sslmode"], "disable");
        assert!(
            value.get("api_key").is_none() && value.get("key_id").is_none(),
            "{value}"
        );
        let mysql = parse(json!({"engine": "mysql", "username": "app", "password": "x"}))
            .expect_err("not a database keyrot rotates");
        assert!(
            mysql.to_string().contains("engine: names a database"),
            "{mysql}"
        );
    }

    #[test]
    fn keyrot_s_own_credentials_keep_their_key_where_admin_secret_readers_look() {
        let admin = parse(
            json!({"provider": "openai-admin", "admin_key": "sk-admin-OLD-0000",
            "key_id": "key_1", "openai_admin": {"expires_in_days": 120}}),
        )
        .expect("an OpenAI admin key");
        assert_eq!(
            admin.provider,
            ProviderSettings::Credential(CredentialSettings {
                kind: CredentialKind::OpenAiAdmin,
                expires_in_days: 120
            })
        );
        assert_eq!(admin.key_id.as_deref(), Some("key_1"));
        let next = admin
            .with_new_key(&NewKey {
                api_key: SecretString::from("sk-admin-NEW-1111"),
                key_id: Some("key_2".into()),
                api_key_id: None,
                leftovers: Vec::new(),
                password: None,
            })
            .expect("serialises");
        let value: Value = serde_json::from_str(next.expose_secret()).expect("json");
        assert_eq!(value["admin_key"], "sk-admin-NEW-1111");
        assert_eq!(value["key_id"], "key_2");
        assert!(value.get("api_key").is_none(), "{value}");

        let token = parse(json!({"provider": "vercel-token", "token": "vcp_1"})).expect("token");
        assert_eq!(token.provider.provider(), Provider::VercelToken);
        for (value, expected) in [
            (
                json!({"provider": "render-token", "api_key": "rnd_1"}),
                "AWSCURRENT value: token: is missing",
            ),
            (
                json!({"provider": "openai-admin", "admin_key": "k", "openai_admin": {"expires_in_days": 400}}),
                "openai_admin.expires_in_days: 400 is out of range",
            ),
            (
                json!({"provider": "openai-admin", "admin_key": "k", "key_id": "sa_1"}),
                "key_id",
            ),
            (
                json!({"provider": "vercel-token", "token": "vcp_new", "api_key": "vcp_old"}),
                "api_key: is not read for keyrot's own credentials",
            ),
            (
                json!({"provider": "render-token", "token": "rnd_1", "targets": []}),
                "targets: is not allowed",
            ),
        ] {
            let err = parse(value.clone()).expect_err("refused").to_string();
            assert!(err.contains(expected), "{value}: {err}");
            assert!(err.contains("fix:"), "{err}");
        }
    }

    #[test]
    fn the_next_version_keeps_unknown_fields_and_replaces_the_key_and_its_ids() {
        let current = parse(
            json!({"provider": "generic", "api_key": "old-key-0000000000",
            "key_id": "old", "team": {"owner": "ml-platform"}, "generic": {"length": 32}}),
        )
        .expect("valid");
        let next = current
            .with_new_key(&NewKey {
                api_key: SecretString::from("new-key-1111111111"),
                key_id: None,
                api_key_id: Some("key_2".into()),
                leftovers: Vec::new(),
                password: None,
            })
            .expect("serialises");
        let value: Value = serde_json::from_str(next.expose_secret()).expect("json");
        assert_eq!(value["api_key"], "new-key-1111111111");
        assert_eq!(value["team"]["owner"], "ml-platform");
        assert_eq!(value["generic"]["length"], 32);
        assert_eq!(value["api_key_id"], "key_2");
        assert!(
            value.get("key_id").is_none(),
            "the old key's id must not describe the new key"
        );
    }
}
