//! Secrets Manager in memory: versions with their labels, tags, and switches for the races and
//! failures tests need.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::NAME;
use crate::domain::SecretDescription;
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Stage};
use crate::error::{Error, Result, Transience};
use crate::ports::{PutOutcome, SecretAdmin, SecretStore, StageMove};

#[derive(Clone, Default)]
pub(crate) struct Version {
    pub(crate) value: Option<String>,
    pub(crate) stages: Vec<String>,
}

#[derive(Default)]
pub(crate) struct FakeStore {
    pub(crate) rotation_enabled: Cell<bool>,
    pub(crate) versions: RefCell<BTreeMap<String, Version>>,
    pub(crate) tags: RefCell<BTreeMap<String, String>>,
    pub(crate) calls: RefCell<Vec<String>>,
    /// Makes the next put behave as if a concurrent delivery stored another value first.
    pub(crate) lose_next_put: Cell<bool>,
    /// The next put fails with this error; `stored` says whether the value was stored before the
    /// answer was lost.
    pub(crate) fail_next_put: Cell<Option<(Transience, Stored)>>,
    pub(crate) last_rotated: Cell<Option<DateTime<Utc>>>,
    pub(crate) next_rotation: Cell<Option<DateTime<Utc>>>,
    /// Creation time of versions (default: long ago).
    pub(crate) created: RefCell<BTreeMap<String, DateTime<Utc>>>,
    /// Yield to other tasks at every call, so that concurrent deliveries of a step interleave.
    pub(crate) interleave: Cell<bool>,
    /// The next RotateSecret fails (as when Secrets Manager finds a rotation under way).
    pub(crate) fail_next_rotate: Cell<bool>,
    /// The next RotateSecret starts the rotation, but its answer is lost (a timeout).
    pub(crate) lose_next_rotate_answer: Cell<bool>,
    /// Just before the Nth DescribeSecret from now answers, AWSCURRENT moves to this version (a
    /// rollback by another process, between two reads of the same pass).
    pub(crate) current_moves_before_describe: RefCell<Option<(u32, String)>>,
    /// Just before the Nth DescribeSecret from now answers, a rotation starts: AWSPENDING on this new
    /// version (another operator's `rotate`, or the schedule, between two reads).
    pub(crate) pending_before_describe: RefCell<Option<(u32, String)>>,
    /// The next UpdateSecretVersionStage of this stage fails (Secrets Manager unavailable).
    pub(crate) fail_next_move_of: RefCell<Option<Stage>>,
    /// Rotations RotateSecret started, to name their tokens.
    pub(crate) rotations_started: Cell<u32>,
}

impl FakeStore {
    async fn pause(&self) {
        if self.interleave.get() {
            tokio::task::yield_now().await;
        }
    }
}

impl FakeStore {
    /// TagResource of one tag.
    pub(crate) fn set_tag(&self, key: &str, value: &str) {
        self.tags
            .borrow_mut()
            .insert(key.to_owned(), value.to_owned());
    }

    /// Whether the secret has no tags left (the one-shot tags cleared).
    pub(crate) fn untagged(&self) -> bool {
        self.tags.borrow().is_empty()
    }

    pub(crate) fn with_current(value: Value) -> Self {
        let store = FakeStore::default();
        store.rotation_enabled.set(true);
        store.versions.borrow_mut().insert(
            "v0".into(),
            Version {
                value: Some(value.to_string()),
                stages: vec![AWSCURRENT.into()],
            },
        );
        store
    }

    /// What rotate-secret does: a placeholder version labelled AWSPENDING.
    pub(crate) fn start_rotation(&self, token: &str) {
        let mut versions = self.versions.borrow_mut();
        for version in versions.values_mut() {
            version.stages.retain(|s| s != AWSPENDING);
        }
        versions.insert(
            token.into(),
            Version {
                value: None,
                stages: vec![AWSPENDING.into()],
            },
        );
    }

    pub(crate) fn stages(&self) -> BTreeMap<String, Vec<String>> {
        self.versions
            .borrow()
            .iter()
            .filter(|(_, v)| !v.stages.is_empty())
            .map(|(id, v)| (id.clone(), v.stages.clone()))
            .collect()
    }

    pub(crate) fn value_of(&self, version: &str) -> Option<Value> {
        let versions = self.versions.borrow();
        let text = versions.get(version)?.value.as_ref()?;
        serde_json::from_str(text).ok()
    }

    /// The key `version` holds (empty when it holds none).
    pub(crate) fn api_key_of(&self, version: &str) -> String {
        self.value_of(version)
            .and_then(|value| value["api_key"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub(crate) fn version_with_stage(&self, stage: Stage) -> Option<String> {
        self.stages()
            .into_iter()
            .find(|(_, s)| s.iter().any(|l| l == stage))
            .map(|(id, _)| id)
    }

    pub(crate) fn count(&self, call: &str) -> usize {
        self.calls
            .borrow()
            .iter()
            .filter(|c| c.as_str() == call)
            .count()
    }
}

impl SecretStore for FakeStore {
    async fn describe(&self, _secret_id: &str) -> Result<SecretDescription> {
        self.pause().await;
        self.calls.borrow_mut().push("DescribeSecret".into());
        let due = self.current_moves_before_describe.borrow_mut().take();
        match due {
            Some((1, version)) => {
                let current = self.version_with_stage(AWSCURRENT);
                self.move_stage(
                    NAME,
                    AWSCURRENT,
                    match current.as_deref() {
                        Some(from) => StageMove::Across { from, to: &version },
                        None => StageMove::Onto(&version),
                    },
                )
                .await?;
            }
            Some((n, version)) => {
                *self.current_moves_before_describe.borrow_mut() = Some((n - 1, version));
            }
            None => {}
        }
        let due = self.pending_before_describe.borrow_mut().take();
        match due {
            Some((1, version)) => self.start_rotation(&version),
            Some((n, version)) => {
                *self.pending_before_describe.borrow_mut() = Some((n - 1, version))
            }
            None => {}
        }
        Ok(SecretDescription {
            arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{NAME}-AbCdEf"),
            name: NAME.into(),
            rotation_enabled: self.rotation_enabled.get(),
            rotate_every_days: Some(30),
            versions: self.stages(),
            tags: self.tags.borrow().clone(),
            last_rotated: self.last_rotated.get(),
            next_rotation: self.next_rotation.get(),
            created: Some(DateTime::<Utc>::UNIX_EPOCH),
            rotation_lambda_arn: Some(
                "arn:aws:lambda:us-east-1:123456789012:function:keyrot-rotator".into(),
            ),
            ..SecretDescription::default()
        })
    }

    async fn list(&self, name_prefix: Option<&str>) -> Result<Vec<SecretDescription>> {
        self.calls.borrow_mut().push("ListSecrets".into());
        let secret = self.describe(NAME).await?;
        Ok(
            if name_prefix.is_none_or(|prefix| secret.name.starts_with(prefix)) {
                vec![secret]
            } else {
                Vec::new()
            },
        )
    }

    async fn version_created(
        &self,
        _secret_id: &str,
        version_id: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        Ok(Some(
            self.created
                .borrow()
                .get(version_id)
                .copied()
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        ))
    }

    async fn value(
        &self,
        _secret_id: &str,
        stage: Stage,
        version_id: Option<&str>,
    ) -> Result<Option<SecretString>> {
        self.pause().await;
        self.calls.borrow_mut().push("GetSecretValue".into());
        let versions = self.versions.borrow();
        let found = versions.iter().find(|(id, v)| {
            v.stages.iter().any(|s| s == stage) && version_id.is_none_or(|want| want == id.as_str())
        });
        Ok(found
            .and_then(|(_, v)| v.value.clone())
            .map(SecretString::from))
    }

    async fn unlabelled_value(
        &self,
        _secret_id: &str,
        version_id: &str,
    ) -> Result<Option<SecretString>> {
        // As GetSecretValue by VersionId: any version, labelled or not.
        let versions = self.versions.borrow();
        Ok(versions
            .get(version_id)
            .and_then(|v| v.value.clone())
            .map(SecretString::from))
    }

    async fn put_pending(
        &self,
        _secret_id: &str,
        token: &str,
        value: &SecretString,
        _rt: Option<&str>,
    ) -> Result<PutOutcome> {
        self.pause().await;
        self.calls.borrow_mut().push("PutSecretValue".into());
        let mut versions = self.versions.borrow_mut();
        let version = versions.entry(token.into()).or_default();
        if let Some((transience, stored)) = self.fail_next_put.take() {
            if stored == Stored::Yes {
                version.value = Some(value.expose_secret().to_owned());
            }
            return Err(Error::external(
                "secretsmanager",
                "PutSecretValue",
                "the request failed",
                transience,
            ));
        }
        if self.lose_next_put.replace(false) {
            version.value = Some(
                json!({"provider": "generic", "api_key": "sk_live_WINNERWINNERWINNERWIN1"})
                    .to_string(),
            );
            return Ok(PutOutcome::LostRace);
        }
        match &version.value {
            Some(existing) if existing != value.expose_secret() => Ok(PutOutcome::LostRace),
            _ => {
                version.value = Some(value.expose_secret().to_owned());
                if !version.stages.iter().any(|s| s == AWSPENDING) {
                    version.stages.push(AWSPENDING.into());
                }
                Ok(PutOutcome::Stored)
            }
        }
    }

    async fn put_staged(&self, _secret_id: &str, value: &SecretString) -> Result<String> {
        self.calls
            .borrow_mut()
            .push("PutSecretValue(staged)".into());
        let mut versions = self.versions.borrow_mut();
        for version in versions.values_mut() {
            version
                .stages
                .retain(|s| s != crate::domain::policy::KEYROT_STAGED);
        }
        let id = format!("staged-{}", versions.len());
        versions.insert(
            id.clone(),
            Version {
                value: Some(value.expose_secret().to_owned()),
                stages: vec![crate::domain::policy::KEYROT_STAGED.into()],
            },
        );
        Ok(id)
    }

    async fn move_stage(
        &self,
        _secret_id: &str,
        stage: Stage,
        movement: StageMove<'_>,
    ) -> Result<()> {
        let (from, to) = (movement.from(), movement.to());
        self.calls
            .borrow_mut()
            .push(format!("UpdateSecretVersionStage({stage})"));
        if self
            .fail_next_move_of
            .borrow()
            .is_some_and(|failing| failing == stage)
        {
            self.fail_next_move_of.replace(None);
            return Err(Error::external(
                "secretsmanager",
                "UpdateSecretVersionStage",
                "ServiceUnavailable",
                crate::error::Transience::Retryable,
            ));
        }
        let mut versions = self.versions.borrow_mut();
        if let Some(from) = from {
            let version = versions
                .get_mut(from)
                .filter(|v| v.stages.iter().any(|s| s == stage))
                .ok_or_else(|| Error::protocol(NAME, format!("{stage} is not on {from}")))?;
            version.stages.retain(|s| s != stage);
        }
        if let Some(to) = to {
            if stage == AWSCURRENT {
                for version in versions.values_mut() {
                    version.stages.retain(|s| s != AWSPREVIOUS);
                }
                if let Some(from) = from {
                    versions
                        .entry(from.into())
                        .or_default()
                        .stages
                        .push(AWSPREVIOUS.into());
                }
            }
            versions
                .entry(to.into())
                .or_default()
                .stages
                .push(stage.into());
        }
        Ok(())
    }

    async fn untag(&self, _secret_id: &str, tag_keys: &[&str]) -> Result<()> {
        self.calls.borrow_mut().push("UntagResource".into());
        let mut tags = self.tags.borrow_mut();
        for key in tag_keys {
            tags.remove(*key);
        }
        Ok(())
    }
}

impl SecretAdmin for FakeStore {
    async fn set_tags(&self, _secret_id: &str, tags: &[(&str, String)]) -> Result<()> {
        self.calls.borrow_mut().push("TagResource".into());
        let mut stored = self.tags.borrow_mut();
        for (key, value) in tags {
            stored.insert((*key).to_owned(), value.clone());
        }
        Ok(())
    }

    async fn rotate_now(
        &self,
        _secret_id: &str,
        _rotator_arn: Option<&str>,
        token: &str,
    ) -> Result<Option<String>> {
        self.calls.borrow_mut().push("RotateSecret".into());
        if self.fail_next_rotate.replace(false) {
            return Err(Error::external(
                "secretsmanager",
                format!("RotateSecret({NAME})"),
                "InvalidRequestException: A previous rotation isn't complete.",
                crate::error::Transience::Final,
            ));
        }
        self.rotations_started.set(self.rotations_started.get() + 1);
        let token = token.to_owned();
        self.start_rotation(&token);
        if self.lose_next_rotate_answer.replace(false) {
            return Err(Error::external(
                "secretsmanager",
                format!("RotateSecret({NAME})"),
                "timed out",
                crate::error::Transience::Retryable,
            ));
        }
        Ok(Some(token))
    }
}

/// Whether a failed put stored its value before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    Yes,
    No,
}
