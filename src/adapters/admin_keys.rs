//! Admin keys and platform tokens live in their own secrets, named by the managed secret's fields; this
//! reads them, once the admin secret's own name and tags allow it to serve the managed secret
//! (`domain::admin`). The value is either the bare key or a JSON object with an `admin_key` (or
//! `api_key`/`token`) field.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use secrecy::{ExposeSecret, SecretString};

use crate::adapters::aws::{error_code, sdk_error};
use crate::domain::admin::{AdminRequest, AdminSecret, secret_name_of};
use crate::domain::credential::CredentialKind;
use crate::domain::policy::AWSCURRENT;
use crate::domain::secret::Provider;
use crate::error::{Error, Result};

/// How long a credential read is reused: one invocation reads each credential once, and a rotated admin
/// key or token (or a changed `keyrot-admin:` tag) is picked up within a minute.
const REUSE_FOR: Duration = Duration::from_secs(60);

/// An admin secret as last read: its tags and kind, and its value.
struct Read {
    at: Instant,
    secret: AdminSecret,
    value: SecretString,
}

#[derive(Clone)]
pub struct AdminKeys {
    client: Client,
    /// Where admin secrets live (`KEYROT_ADMIN_PREFIX`).
    prefix: String,
    /// The names of keyrot's rotation functions: a secret one of them rotates is managed.
    rotators: Vec<String>,
    recent: Arc<Mutex<HashMap<String, Read>>>,
}

impl AdminKeys {
    /// `rotators` are the ARNs or names of keyrot's rotation functions.
    pub fn new(client: Client, prefix: &str, rotators: &[String]) -> Self {
        AdminKeys {
            client,
            prefix: prefix.to_owned(),
            rotators: rotators
                .iter()
                .map(|r| function_name(r).to_owned())
                .collect(),
            recent: Arc::default(),
        }
    }

    /// Reads the credential the request names, once the admin secret's name, kind and
    /// `keyrot-admin:` tags allow it to serve the request's managed secret and resources.
    pub async fn read(&self, request: AdminRequest<'_>) -> Result<SecretString> {
        let value = self.read_value(request).await?;
        credential_from(&value).ok_or_else(|| {
            let name = request.admin_secret;
            Error::config(
                request.managed,
                request.field,
                format!("{name} holds no credential"),
                format!(
                    "create the secret {name} holding the credential, or correct {}",
                    request.field
                ),
            )
        })
    }

    /// Reads the credential of a secret that holds one of keyrot's own credentials, as its own
    /// rotation uses it (the new key revokes the old): its owner must have tagged it for rotation.
    pub async fn read_own(&self, secret: &str, kind: CredentialKind) -> Result<SecretString> {
        let request = AdminRequest {
            managed: secret,
            field: kind.key_field(),
            admin_secret: secret,
            resources: &[],
            wants: Some(kind),
        };
        // Never from the last minute's reads: right after finishSecret, only AWSCURRENT itself says
        // which key is the new one.
        let (described, value) = self.fetch_unchecked(request).await?;
        request.check_kind(&described, provider_of(&value).as_deref())?;
        credential_from(&value).ok_or_else(|| {
            Error::config(
                secret,
                kind.key_field(),
                "holds no credential",
                format!("put the current credential in {}", kind.key_field()),
            )
        })
    }

    /// Reads the whole value of the admin secret the request names (a database's master credentials),
    /// under the same checks as [`AdminKeys::read`].
    pub async fn read_value(&self, request: AdminRequest<'_>) -> Result<SecretString> {
        Ok(self.checked(request).await?.1)
    }

    /// [`AdminKeys::read_value`] of an admin secret that must carry a `keyrot-admin:scope` tag (a
    /// database's master credentials), so that only the resources it lists are touched.
    pub async fn read_scoped_value(&self, request: AdminRequest<'_>) -> Result<SecretString> {
        let (secret, value) = self.checked(request).await?;
        request.check_scope_tagged(&secret)?;
        Ok(value)
    }

    /// The admin secret's tags and value, once its name, kind and tags allow the request.
    async fn checked(&self, request: AdminRequest<'_>) -> Result<(AdminSecret, SecretString)> {
        if !secret_name_of(request.admin_secret).starts_with(&self.prefix) {
            // Refused before any call: the check names the prefix and the fix.
            request.check(&self.prefix, &AdminSecret::default())?;
        }
        let (secret, value) = match self.reuse(request.admin_secret) {
            Some(read) => read,
            None => self.fetch(request).await?,
        };
        request.check(&self.prefix, &secret)?;
        request.check_kind(&secret, provider_of(&value).as_deref())?;
        Ok((secret, value))
    }

    fn reuse(&self, admin_secret: &str) -> Option<(AdminSecret, SecretString)> {
        let recent = self.recent.lock().ok()?;
        let read = recent.get(admin_secret)?;
        (read.at.elapsed() < REUSE_FOR).then(|| {
            (
                read.secret.clone(),
                SecretString::from(read.value.expose_secret().to_owned()),
            )
        })
    }

    /// DescribeSecret (its tags and rotation), then GetSecretValue, of the request's admin secret.
    async fn fetch(&self, request: AdminRequest<'_>) -> Result<(AdminSecret, SecretString)> {
        let secret = self.describe(request).await?;
        // Checked before the value is read: a secret that may not serve this request is never opened.
        request.check(&self.prefix, &secret)?;
        self.read_current(request, secret).await
    }

    /// [`AdminKeys::fetch`] for a credential's own read, whose caller checks it by its own rule.
    async fn fetch_unchecked(
        &self,
        request: AdminRequest<'_>,
    ) -> Result<(AdminSecret, SecretString)> {
        let secret = self.describe(request).await?;
        request.check_own(&self.prefix, &secret)?;
        self.read_current(request, secret).await
    }

    async fn describe(&self, request: AdminRequest<'_>) -> Result<AdminSecret> {
        let name = request.admin_secret;
        let described = self
            .client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|err| refusal(request, "DescribeSecret", &err))?;
        let secret = AdminSecret {
            tags: described
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
                .collect(),
            managed: described
                .rotation_lambda_arn()
                .is_some_and(|arn| self.rotators.iter().any(|r| r == function_name(arn))),
        };
        Ok(secret)
    }

    async fn read_current(
        &self,
        request: AdminRequest<'_>,
        secret: AdminSecret,
    ) -> Result<(AdminSecret, SecretString)> {
        let name = request.admin_secret;
        let out = self
            .client
            .get_secret_value()
            .secret_id(name)
            .version_stage(AWSCURRENT)
            .send()
            .await
            .map_err(|err| refusal(request, "GetSecretValue", &err))?;
        let value = SecretString::from(out.secret_string().unwrap_or_default().to_owned());
        if let Ok(mut recent) = self.recent.lock() {
            let copy = SecretString::from(value.expose_secret().to_owned());
            recent.insert(
                name.to_owned(),
                Read {
                    at: Instant::now(),
                    secret: secret.clone(),
                    value: copy,
                },
            );
        }
        Ok((secret, value))
    }
}

/// A Secrets Manager error on an admin secret, said in the managed secret's terms.
fn refusal<E, R>(
    request: AdminRequest<'_>,
    operation: &str,
    err: &aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> Error
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (managed, field, name) = (request.managed, request.field, request.admin_secret);
    match error_code(err) {
        Some("ResourceNotFoundException") => Error::config(
            managed,
            field,
            format!("names {name}, which does not exist"),
            format!("create the secret {name} holding the credential, or correct {field}"),
        ),
        Some("AccessDeniedException") => Error::config(
            managed,
            field,
            format!("names {name}, which keyrot may not read"),
            format!(
                "allow secretsmanager:DescribeSecret and GetSecretValue on {name} to keyrot's role"
            ),
        ),
        _ => sdk_error("secretsmanager", &format!("{operation}({name})"), err),
    }
}

/// The function name in a Lambda ARN (`arn:aws:lambda:region:account:function:NAME[:alias]`), or the
/// name itself.
fn function_name(arn_or_name: &str) -> &str {
    let mut parts = arn_or_name.split(':');
    match (parts.nth(5), parts.next()) {
        (Some("function"), Some(name)) => name,
        _ => arn_or_name,
    }
}

/// The `provider` a JSON value names, if any: a rotated credential's kind.
fn provider_of(raw: &SecretString) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(raw.expose_secret().trim()).ok()?;
    value.get("provider")?.as_str().map(str::to_owned)
}

/// The credential in a secret's value: the value itself, or the `admin_key`/`api_key`/`token` of a JSON
/// object; for one of keyrot's own credentials, the field its `provider` keeps it in.
pub fn credential_from(raw: &SecretString) -> Option<SecretString> {
    let text = raw.expose_secret().trim();
    if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let own = value
            .get("provider")
            .and_then(|p| p.as_str())
            .and_then(Provider::parse)
            .and_then(CredentialKind::of)
            .map(CredentialKind::key_field);
        let fields: &[&str] = match &own {
            Some(field) => std::slice::from_ref(field),
            None => &["admin_key", "api_key", "token"],
        };
        return fields
            .iter()
            .find_map(|field| value.get(*field).and_then(|v| v.as_str()))
            .filter(|key| !key.trim().is_empty())
            .map(|key| SecretString::from(key.trim().to_owned()));
    }
    (!text.is_empty()).then(|| SecretString::from(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_is_known_by_its_name_whatever_its_alias() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:1:function:keyrot-rotator:live"),
            "keyrot-rotator"
        );
        assert_eq!(function_name("keyrot-rotator"), "keyrot-rotator");
    }

    #[test]
    fn accepts_a_bare_key_or_a_json_object() {
        let read = |raw: &str| {
            credential_from(&SecretString::from(raw.to_owned()))
                .map(|k| k.expose_secret().to_owned())
        };
        assert_eq!(read(" sk-admin-1 \n").as_deref(), Some("sk-admin-1"));
        assert_eq!(
            read(r#"{"admin_key": "sk-admin-2"}"#).as_deref(),
            Some("sk-admin-2")
        );
        assert_eq!(read(r#"{"token": "vcp_3"}"#).as_deref(), Some("vcp_3"));
        assert_eq!(
            read(r#"{"provider": "vercel-token", "api_key": "vcp_old", "token": "vcp_new"}"#)
                .as_deref(),
            Some("vcp_new"),
            "a credential's own field, whatever else the value holds"
        );
        assert_eq!(read(r#"{"other": "x"}"#), None);
        assert_eq!(read("  "), None);
    }
}
