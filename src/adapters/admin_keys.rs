//! Admin keys and platform tokens live in their own secrets, named by the managed secret's fields; this
//! reads them. The value is either the bare key or a JSON object with an `admin_key` (or `api_key`/`token`)
//! field.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use secrecy::{ExposeSecret, SecretString};

use crate::adapters::aws::{error_code, sdk_error};
use crate::domain::policy::AWSCURRENT;
use crate::error::{Error, Result};

/// How long a credential read is reused: one invocation reads each credential once, and a rotated admin
/// key or token is picked up within a minute.
const REUSE_FOR: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct AdminKeys {
    client: Client,
    recent: Arc<Mutex<HashMap<String, (Instant, SecretString)>>>,
}

impl AdminKeys {
    pub fn new(client: Client) -> Self {
        AdminKeys {
            client,
            recent: Arc::default(),
        }
    }

    fn reuse(&self, admin_secret: &str) -> Option<SecretString> {
        let recent = self.recent.lock().ok()?;
        let (read_at, credential) = recent.get(admin_secret)?;
        (read_at.elapsed() < REUSE_FOR)
            .then(|| SecretString::from(credential.expose_secret().to_owned()))
    }

    /// Reads the credential in `admin_secret`, which the managed secret `secret_name` names in `field`.
    pub async fn read(
        &self,
        secret_name: &str,
        field: &str,
        admin_secret: &str,
    ) -> Result<SecretString> {
        if let Some(credential) = self.reuse(admin_secret) {
            return Ok(credential);
        }
        let fix = || {
            format!("create the secret {admin_secret} holding the credential, or correct {field}")
        };
        let result = self
            .client
            .get_secret_value()
            .secret_id(admin_secret)
            .version_stage(AWSCURRENT)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) if error_code(&err) == Some("ResourceNotFoundException") => {
                return Err(Error::config(
                    secret_name,
                    field,
                    format!("names {admin_secret}, which does not exist"),
                    fix(),
                ));
            }
            Err(err) if error_code(&err) == Some("AccessDeniedException") => {
                return Err(Error::config(
                    secret_name,
                    field,
                    format!("names {admin_secret}, which keyrot may not read"),
                    format!(
                        "allow secretsmanager:GetSecretValue on {admin_secret} to keyrot's role"
                    ),
                ));
            }
            Err(err) => {
                return Err(sdk_error(
                    "secretsmanager",
                    &format!("GetSecretValue({admin_secret})"),
                    &err,
                ));
            }
        };
        let raw = SecretString::from(out.secret_string().unwrap_or_default().to_owned());
        let credential = credential_from(&raw).ok_or_else(|| {
            Error::config(
                secret_name,
                field,
                format!("{admin_secret} holds no credential"),
                fix(),
            )
        })?;
        if let Ok(mut recent) = self.recent.lock() {
            let copy = SecretString::from(credential.expose_secret().to_owned());
            recent.insert(admin_secret.to_owned(), (Instant::now(), copy));
        }
        Ok(credential)
    }
}

/// The credential in a secret's value: the value itself, or the `admin_key`/`api_key`/`token` of a JSON
/// object.
fn credential_from(raw: &SecretString) -> Option<SecretString> {
    let text = raw.expose_secret().trim();
    if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        return ["admin_key", "api_key", "token"]
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
        assert_eq!(read(r#"{"other": "x"}"#), None);
        assert_eq!(read("  "), None);
    }
}
