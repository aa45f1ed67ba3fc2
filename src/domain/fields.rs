//! The one parse cursor every parser of a managed secret's value reads through: the value itself, its
//! provider blocks and its targets. Each read names the secret and the field's whole path in its error
//! (`AWSCURRENT value: targets[0].env_key`) and the fix, and quotes nothing of the document but field
//! names: the document holds a key.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The shape of a provider's id. Ids from a secret's value end up in the paths of requests made with
/// keyrot's admin credentials, so each must look exactly like the provider's own ids: its prefix, then
/// letters and digits only (no `/`, `.`, `?`, `#` or `%` that could walk a path elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdShape {
    OpenAiProject,
    OpenAiServiceAccount,
    OpenAiApiKey,
    OpenAiAdminKey,
    AnthropicKey,
    VercelProject,
    VercelTeam,
    RenderService,
    StripeAccount,
}

impl IdShape {
    pub fn prefix(self) -> &'static str {
        match self {
            IdShape::OpenAiProject => "proj_",
            IdShape::OpenAiServiceAccount => "svc_acct_",
            IdShape::OpenAiApiKey | IdShape::OpenAiAdminKey => "key_",
            IdShape::AnthropicKey => "apikey_",
            IdShape::VercelProject => "prj_",
            IdShape::VercelTeam => "team_",
            IdShape::RenderService => "srv-",
            IdShape::StripeAccount => "acct_",
        }
    }

    fn what(self) -> &'static str {
        match self {
            IdShape::OpenAiProject => "an OpenAI project id",
            IdShape::OpenAiServiceAccount => "an OpenAI service account id",
            IdShape::OpenAiApiKey => "an OpenAI project API key id",
            IdShape::OpenAiAdminKey => "an OpenAI admin API key id",
            IdShape::AnthropicKey => "an Anthropic API key id",
            IdShape::VercelProject => "a Vercel project id",
            IdShape::VercelTeam => "a Vercel team id",
            IdShape::RenderService => "a Render service id",
            IdShape::StripeAccount => "a Stripe account id",
        }
    }

    /// Whether `id` has this shape: the prefix, then 1 to 64 ASCII letters and digits.
    pub fn fits(self, id: &str) -> bool {
        id.strip_prefix(self.prefix()).is_some_and(|rest| {
            (1..=64).contains(&rest.len()) && rest.chars().all(|c| c.is_ascii_alphanumeric())
        })
    }
}

/// One JSON object of a managed secret's value, with where it stands in the document.
pub(crate) struct Fields<'a> {
    secret: &'a str,
    /// The path of this object, with its trailing separator (`AWSCURRENT value: openai.`).
    path: String,
    object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(secret: &'a str, path: String, object: &'a Map<String, Value>) -> Self {
        Fields {
            secret,
            path,
            object,
        }
    }

    /// The full name of `field`, as errors print it.
    pub(crate) fn path_of(&self, field: &str) -> String {
        format!("{}{field}", self.path)
    }

    /// The refusal of `field`: the secret, the field's path, what is wrong and the fix.
    pub(crate) fn bad(
        &self,
        field: &str,
        problem: impl std::fmt::Display,
        fix: impl Into<String>,
    ) -> Error {
        Error::config(self.secret, self.path_of(field), problem, fix)
    }

    pub(crate) fn get(&self, field: &str) -> Option<&'a Value> {
        self.object.get(field).filter(|value| !value.is_null())
    }

    /// A string field that may be absent; an empty one counts as absent.
    pub(crate) fn optional_str(&self, field: &str) -> Result<Option<String>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(value)) if value.trim().is_empty() => Ok(None),
            Some(Value::String(value)) => Ok(Some(value.clone())),
            Some(_) => Err(self.bad(
                field,
                "must be a string",
                format!("make {field} a string or remove it"),
            )),
        }
    }

    /// A string field that must be there and not be empty.
    pub(crate) fn required_str(&self, field: &str, fix: &str) -> Result<String> {
        match self.get(field) {
            Some(Value::String(value)) if !value.trim().is_empty() => Ok(value.clone()),
            Some(Value::String(_)) => Err(self.bad(field, "is empty", fix)),
            None => Err(self.bad(field, "is missing", fix)),
            Some(_) => Err(self.bad(field, "must be a string", fix)),
        }
    }

    /// A string field that must hold an id of `shape`.
    pub(crate) fn required_id(&self, field: &str, shape: IdShape) -> Result<String> {
        let fix = format!(
            "set {field} to {} ({}...), as the provider shows it",
            shape.what(),
            shape.prefix()
        );
        let id = self.required_str(field, &fix)?;
        self.shaped(field, id, shape, &fix)
    }

    /// A string field that may be absent, or holds an id of `shape`.
    pub(crate) fn optional_id(&self, field: &str, shape: IdShape) -> Result<Option<String>> {
        let fix = format!(
            "set {field} to {} ({}...) or remove it",
            shape.what(),
            shape.prefix()
        );
        match self.optional_str(field)? {
            Some(id) => self.shaped(field, id, shape, &fix).map(Some),
            None => Ok(None),
        }
    }

    fn shaped(&self, field: &str, id: String, shape: IdShape, fix: &str) -> Result<String> {
        if shape.fits(&id) {
            return Ok(id);
        }
        Err(self.bad(
            field,
            format!(
                "is not {}: it must be {} followed by letters and digits only",
                shape.what(),
                shape.prefix()
            ),
            fix,
        ))
    }

    pub(crate) fn boolean(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(value)) => Ok(*value),
            Some(_) => Err(self.bad(field, "must be true or false", "use a JSON boolean")),
        }
    }

    /// A whole number of hours that may be absent: from 1 to 8760 (a year).
    pub(crate) fn optional_hours(&self, field: &str) -> Result<Option<u32>> {
        let range = "give a whole number of hours from 1 to 8760, such as 24";
        match self.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(hours @ 1..=8760) => Ok(Some(hours as u32)),
                _ => Err(self.bad(field, "is out of range", range)),
            },
            Some(_) => Err(self.bad(field, "must be a number of hours", range)),
        }
    }

    /// An object field that may be absent, as a cursor of its own whose paths go on from this one's.
    pub(crate) fn block(&self, field: &str) -> Result<Option<Fields<'a>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(Some(Fields::new(
                self.secret,
                format!("{}{field}.", self.path),
                object,
            ))),
            Some(_) => Err(self.bad(
                field,
                "must be an object",
                format!("make {field} a JSON object"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_must_look_exactly_like_the_providers_own() {
        assert!(IdShape::OpenAiProject.fits("proj_abc123"));
        assert!(IdShape::RenderService.fits("srv-d0abc123"));
        for walk in [
            "proj_",
            "proj_../admin_api_keys/key_1?",
            "proj_abc/../../x",
            "proj_abc%2e%2e",
            "proj_abc#x",
            "proj_abc?x=1",
            "proj_abc def",
            "prj_abc",
            "PROJ_abc",
            &format!("proj_{}", "a".repeat(65)),
        ] {
            assert!(!IdShape::OpenAiProject.fits(walk), "{walk}");
        }
    }

    #[test]
    fn a_misshapen_id_is_refused_by_secret_field_and_fix() {
        let object = json!({"project_id": "../admin_api_keys/key_1?"});
        let fields = Fields::new(
            "prod/x",
            "AWSCURRENT value: openai.".into(),
            object.as_object().expect("object"),
        );
        let err = fields
            .required_id("project_id", IdShape::OpenAiProject)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("prod/x"), "{err}");
        assert!(err.contains("openai.project_id"), "{err}");
        assert!(err.contains("proj_"), "{err}");
        assert!(
            !err.contains("admin_api_keys"),
            "the value is not quoted: {err}"
        );
    }
}
