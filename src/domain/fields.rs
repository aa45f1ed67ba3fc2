//! The one parse cursor every parser of a managed secret's value reads through: the value itself, its
//! provider blocks and its targets. Each read names the secret and the field's whole path in its error
//! (`AWSCURRENT value: targets[0].env_key`) and the fix, and quotes nothing of the document but field
//! names: the document holds a key.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

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

    pub(crate) fn boolean(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(value)) => Ok(*value),
            Some(_) => Err(self.bad(field, "must be true or false", "use a JSON boolean")),
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
