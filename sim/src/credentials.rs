//! The credentials a platform accepts for its admin API: OpenAI admin keys, Anthropic admin keys,
//! Vercel tokens and Render API keys. Each platform starts with one; a person creates more in the
//! console (`/_sim/credentials`), OpenAI's admin API creates and deletes its own, and a deleted or
//! expired credential is refused from then on.

use serde_json::{Value, json};

use crate::state::{new_id, now};

pub(crate) struct Credential {
    pub(crate) id: String,
    pub(crate) value: String,
    pub(crate) name: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) deleted: bool,
}

pub(crate) struct Credentials {
    id_prefix: &'static str,
    make_value: fn() -> String,
    all: Vec<Credential>,
}

impl Credentials {
    /// One credential to begin with, as the platform's owner made it.
    pub(crate) fn new(id_prefix: &'static str, make_value: fn() -> String) -> Self {
        let mut credentials = Credentials {
            id_prefix,
            make_value,
            all: Vec::new(),
        };
        credentials.create("Initial key", None);
        credentials
    }

    /// The first credential's value: what a deployment starts with.
    pub(crate) fn primary(&self) -> &str {
        &self.all[0].value
    }

    pub(crate) fn create(&mut self, name: &str, expires_in_seconds: Option<i64>) -> &Credential {
        let created_at = now();
        self.all.push(Credential {
            id: new_id(self.id_prefix),
            value: (self.make_value)(),
            name: name.to_owned(),
            created_at,
            expires_at: expires_in_seconds.map(|secs| created_at + secs),
            last_used_at: None,
            deleted: false,
        });
        &self.all[self.all.len() - 1]
    }

    /// Whether `presented` is a live credential, marking it used when it is.
    pub(crate) fn authorize(&mut self, presented: Option<&str>) -> bool {
        let Some(presented) = presented else {
            return false;
        };
        let now = now();
        match self.all.iter_mut().find(|c| c.value == presented) {
            Some(credential) if credential.is_live(now) => {
                credential.last_used_at = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Whether `value` would be accepted, without marking it used.
    pub(crate) fn works(&self, value: &str) -> bool {
        let now = now();
        self.all.iter().any(|c| c.value == value && c.is_live(now))
    }

    /// The live credentials, oldest first.
    pub(crate) fn live(&self) -> impl Iterator<Item = &Credential> {
        let now = now();
        self.all.iter().filter(move |c| c.is_live(now))
    }

    pub(crate) fn by_id(&self, id: &str) -> Option<&Credential> {
        self.all.iter().find(|c| c.id == id && !c.deleted)
    }

    /// Deletes the credential with this id or value; whether one was live.
    pub(crate) fn delete(&mut self, id_or_value: &str) -> bool {
        let now = now();
        match self
            .all
            .iter_mut()
            .find(|c| c.id == id_or_value || c.value == id_or_value)
        {
            Some(credential) if credential.is_live(now) => {
                credential.deleted = true;
                true
            }
            _ => false,
        }
    }

    /// The `/_sim/state` view: ids and names, never values.
    pub(crate) fn snapshot(&self) -> Value {
        let now = now();
        Value::Array(
            self.all
                .iter()
                .map(|c| json!({"id": c.id, "name": c.name, "live": c.is_live(now)}))
                .collect(),
        )
    }
}

impl Credential {
    fn is_live(&self, now: i64) -> bool {
        !self.deleted && self.expires_at.is_none_or(|at| now < at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_or_expired_credential_is_refused_and_the_others_still_work() {
        let mut credentials = Credentials::new("key_", || "v".to_owned() + &new_id(""));
        let first = credentials.primary().to_owned();
        let second = credentials.create("second", None).value.clone();
        let expired = credentials.create("expired", Some(0)).value.clone();
        assert!(credentials.authorize(Some(&first)));
        assert!(credentials.works(&second));
        assert!(!credentials.works(&expired));
        assert!(credentials.delete(&first));
        assert!(!credentials.authorize(Some(&first)));
        assert!(!credentials.delete(&first), "already gone");
        assert!(credentials.works(&second));
        assert_eq!(credentials.live().count(), 1);
    }
}
