//! In-memory fakes of every port, shared by the unit tests of the rotation and the grace keeper.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::domain::audit::{AuditEvent, Expected, Revocation, RevocationStatus};
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, NewKey, SecretDescription};
use crate::domain::{RotationEvent, Step};
use crate::error::{Error, Result};
use crate::ports::{
    Alert, Alerts, AuditHistory, AuditLog, Clock, DeploymentState, KeyIssuer, MintedKey,
    PutOutcome, SecretAdmin, SecretStore, Target,
};
use crate::rotation::{Invocation, Progress, Rotator, RotatorSettings};

pub(crate) const NAME: &str = "prod/generic";
pub(crate) const OLD_KEY: &str = "sk_live_OLDOLDOLDOLDOLDOLDOLD0ld1";

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
    /// The next UpdateSecretVersionStage of this stage fails (Secrets Manager unavailable).
    pub(crate) fail_next_move_of: RefCell<Option<&'static str>>,
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

    pub(crate) fn version_with_stage(&self, stage: &str) -> Option<String> {
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
                self.move_stage(NAME, AWSCURRENT, Some(&version), current.as_deref())
                    .await?;
            }
            Some((n, version)) => {
                *self.current_moves_before_describe.borrow_mut() = Some((n - 1, version));
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
        stage: &str,
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
        let versions = self.versions.borrow();
        Ok(versions
            .get(version_id)
            .filter(|v| v.stages.is_empty())
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
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<()> {
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

#[derive(Default)]
pub(crate) struct FakeIssuer {
    pub(crate) minted: Cell<u32>,
    pub(crate) rejected: RefCell<BTreeSet<String>>,
    pub(crate) revoked: RefCell<Vec<String>>,
    pub(crate) validated: RefCell<Vec<String>>,
    pub(crate) leftovers_removed: RefCell<Vec<String>>,
    pub(crate) last_used: Cell<Option<DateTime<Utc>>>,
    pub(crate) minted_keys: RefCell<Vec<MintedKey>>,
    /// The next revocations fail.
    pub(crate) fail_revocations: Cell<u32>,
}

impl KeyIssuer for FakeIssuer {
    async fn mint(
        &self,
        _secret_name: &str,
        _current: &ManagedSecret,
        token: &str,
    ) -> Result<NewKey> {
        let n = self.minted.get() + 1;
        self.minted.set(n);
        Ok(NewKey {
            api_key: SecretString::from(format!("sk_live_NEWKEY{n:04}{token}XXXXXXXX")),
            key_id: Some(format!("key_{n}")),
            api_key_id: None,
            leftovers: Vec::new(),
        })
    }

    async fn remove_leftovers(
        &self,
        _secret_name: &str,
        _current: &ManagedSecret,
        _token: &str,
        kept: &NewKey,
    ) -> Result<()> {
        self.leftovers_removed
            .borrow_mut()
            .push(kept.key_id.clone().unwrap_or_default());
        Ok(())
    }

    async fn identify(
        &self,
        _secret_name: &str,
        _settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<Option<String>> {
        Ok(Some(format!(
            "apikey_{}",
            crate::domain::keys::fingerprint(key)
        )))
    }

    async fn validate(
        &self,
        secret_name: &str,
        _settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<()> {
        self.validated
            .borrow_mut()
            .push(key.expose_secret().to_owned());
        if self.rejected.borrow().contains(key.expose_secret()) {
            return Err(Error::KeyRejected {
                secret: secret_name.into(),
                provider: "generic".into(),
                hint: crate::domain::keys::redacted(key),
                detail: "HTTP 401".into(),
            });
        }
        Ok(())
    }

    async fn last_used(&self, _revocation: &Revocation) -> Result<Option<DateTime<Utc>>> {
        Ok(self.last_used.get())
    }

    async fn minted_keys(
        &self,
        _secret_name: &str,
        _settings: &ManagedSecret,
    ) -> Result<Vec<MintedKey>> {
        Ok(self.minted_keys.borrow().clone())
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<RevocationStatus> {
        if self.fail_revocations.get() > 0 {
            self.fail_revocations.set(self.fail_revocations.get() - 1);
            return Err(Error::external(
                "provider",
                "revoke",
                "HTTP 503",
                crate::error::Transience::Retryable,
            ));
        }
        self.revoked
            .borrow_mut()
            .push(revocation.old_version_id.clone());
        Ok(RevocationStatus::Revoked)
    }
}

/// Targets in memory: what each holds, the pushes, and deployments that build for a few polls.
#[derive(Default)]
pub(crate) struct FakeTargets {
    pub(crate) held: RefCell<BTreeMap<String, String>>,
    pub(crate) pushes: Cell<u32>,
    /// (deployment id, target label, key deployed)
    pub(crate) deployments: RefCell<Vec<(String, String, String)>>,
    pub(crate) polls: RefCell<BTreeMap<String, u32>>,
    /// Polls a deployment answers Building before it is Ready.
    pub(crate) build_polls: Cell<u32>,
    /// The next deployments end in ERROR.
    pub(crate) fail_deployments: Cell<u32>,
    pub(crate) failed: RefCell<BTreeSet<String>>,
}

impl FakeTargets {
    pub(crate) fn served(&self, label: &str) -> Option<String> {
        // What the newest deployment that reached Ready serves.
        let polls = self.polls.borrow();
        self.deployments
            .borrow()
            .iter()
            .rev()
            .find(|(id, l, _)| {
                l == label
                    && !self.failed.borrow().contains(id)
                    && polls.get(id).copied().unwrap_or(0) > self.build_polls.get()
            })
            .map(|(_, _, key)| key.clone())
    }
}

impl Target for FakeTargets {
    async fn held_fingerprint(
        &self,
        _secret_name: &str,
        target: &TargetSpec,
    ) -> Result<Option<String>> {
        Ok(self
            .held
            .borrow()
            .get(&target.label())
            .map(|key| crate::domain::keys::fingerprint(&SecretString::from(key.clone()))))
    }

    async fn push(
        &self,
        _secret_name: &str,
        target: &TargetSpec,
        key: &SecretString,
    ) -> Result<()> {
        self.pushes.set(self.pushes.get() + 1);
        self.held
            .borrow_mut()
            .insert(target.label(), key.expose_secret().to_owned());
        Ok(())
    }

    async fn redeploy(&self, _secret_name: &str, target: &TargetSpec) -> Result<String> {
        let mut deployments = self.deployments.borrow_mut();
        let id = format!("dpl_{}", deployments.len() + 1);
        let key = self
            .held
            .borrow()
            .get(&target.label())
            .cloned()
            .unwrap_or_default();
        if self.fail_deployments.get() > 0 {
            self.fail_deployments.set(self.fail_deployments.get() - 1);
            self.failed.borrow_mut().insert(id.clone());
        }
        deployments.push((id.clone(), target.label(), key));
        Ok(id)
    }

    async fn deployment_state(
        &self,
        _secret_name: &str,
        _target: &TargetSpec,
        id: &str,
    ) -> Result<DeploymentState> {
        let mut polls = self.polls.borrow_mut();
        let count = polls.entry(id.to_owned()).or_default();
        *count += 1;
        if *count <= self.build_polls.get() {
            return Ok(DeploymentState::Building);
        }
        if self.failed.borrow().contains(id) {
            return Ok(DeploymentState::Failed("ERROR".into()));
        }
        Ok(DeploymentState::Ready)
    }
}

#[derive(Default)]
pub(crate) struct FakeAudit {
    pub(crate) events: RefCell<Vec<AuditEvent>>,
    pub(crate) guards: RefCell<BTreeSet<String>>,
    pub(crate) revocations: RefCell<BTreeMap<String, Revocation>>,
    pub(crate) deployments: RefCell<BTreeMap<String, String>>,
    pub(crate) alerts_recorded: RefCell<BTreeSet<String>>,
    pub(crate) fail_writes: Cell<bool>,
    /// A version whose record another process (a keeper pass, a rollback) sets to this status just
    /// before the next update of it: the race between an operator command and a keeper pass.
    pub(crate) raced_before_update: RefCell<Option<(String, RevocationStatus)>>,
}

impl FakeAudit {
    pub(crate) fn outcomes(&self) -> Vec<(String, &'static str)> {
        self.events
            .borrow()
            .iter()
            .map(|e| (e.action.clone(), e.outcome.as_str()))
            .collect()
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.fail_writes.get() {
            return Err(Error::external(
                "dynamodb",
                "PutItem",
                "unavailable",
                crate::error::Transience::Retryable,
            ));
        }
        Ok(())
    }
}

impl FakeAudit {
    /// What a process claiming `version`'s record for revocation at `now` leaves.
    pub(crate) fn claim(&self, version: &str, now: DateTime<Utc>) {
        if let Some(record) = self.revocations.borrow_mut().get_mut(version) {
            *record = record.claimed(now);
        }
    }
}

impl AuditLog for FakeAudit {
    async fn record_step_success(&self, event: &AuditEvent, token: &str) -> Result<bool> {
        self.check()?;
        if !self
            .guards
            .borrow_mut()
            .insert(format!("DONE#{token}#{}", event.action))
        {
            return Ok(false);
        }
        self.events.borrow_mut().push(event.clone());
        Ok(true)
    }

    async fn record(&self, event: &AuditEvent) -> Result<()> {
        self.check()?;
        self.events.borrow_mut().push(event.clone());
        Ok(())
    }

    async fn schedule_revocation(&self, revocation: &Revocation) -> Result<bool> {
        let mut revocations = self.revocations.borrow_mut();
        if revocations
            .get(&revocation.old_version_id)
            .is_some_and(|existing| existing.status != RevocationStatus::Cancelled)
        {
            return Ok(false);
        }
        revocations.insert(revocation.old_version_id.clone(), revocation.clone());
        Ok(true)
    }

    async fn revocation(
        &self,
        _secret_name: &str,
        old_version_id: &str,
    ) -> Result<Option<Revocation>> {
        Ok(self.revocations.borrow().get(old_version_id).cloned())
    }

    async fn pending_revocations(&self, before: DateTime<Utc>) -> Result<Vec<Revocation>> {
        Ok(self
            .revocations
            .borrow()
            .values()
            .filter(|r| r.status.is_owed() && r.due < before)
            .cloned()
            .collect())
    }

    async fn revocations_of(&self, _secret_name: &str) -> Result<Vec<Revocation>> {
        Ok(self.revocations.borrow().values().cloned().collect())
    }

    async fn update_revocation(&self, revocation: &Revocation, expected: Expected) -> Result<bool> {
        let mut revocations = self.revocations.borrow_mut();
        if let Some((version, status)) = self
            .raced_before_update
            .borrow_mut()
            .take_if(|(version, _)| *version == revocation.old_version_id)
            && let Some(raced) = revocations.get_mut(&version)
        {
            raced.status = status;
        }
        match revocations.get_mut(&revocation.old_version_id) {
            Some(existing) if existing.as_read() == expected => {
                *existing = revocation.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_alert_once(&self, secret_name: &str, kind: &str, dedupe: &str) -> Result<bool> {
        Ok(self
            .alerts_recorded
            .borrow_mut()
            .insert(format!("{secret_name}#{kind}#{dedupe}")))
    }

    async fn record_deployment(
        &self,
        _secret_name: &str,
        token: &str,
        target: &str,
        deployment_id: &str,
    ) -> Result<bool> {
        let mut deployments = self.deployments.borrow_mut();
        let key = format!("{token}#{target}");
        if deployments.contains_key(&key) {
            return Ok(false);
        }
        deployments.insert(key, deployment_id.to_owned());
        Ok(true)
    }

    async fn deployment(
        &self,
        _secret_name: &str,
        token: &str,
        target: &str,
    ) -> Result<Option<String>> {
        Ok(self
            .deployments
            .borrow()
            .get(&format!("{token}#{target}"))
            .cloned())
    }

    async fn clear_deployment(&self, _secret_name: &str, token: &str, target: &str) -> Result<()> {
        self.deployments
            .borrow_mut()
            .remove(&format!("{token}#{target}"));
        Ok(())
    }

    async fn set_revocation_status(
        &self,
        _secret_name: &str,
        old_version_id: &str,
        status: RevocationStatus,
    ) -> Result<()> {
        if let Some(revocation) = self.revocations.borrow_mut().get_mut(old_version_id) {
            revocation.status = status;
            revocation.claimed_at = None;
        }
        Ok(())
    }
}

impl AuditHistory for FakeAudit {
    async fn history(
        &self,
        _secret_name: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AuditEvent>> {
        Ok(self
            .events
            .borrow()
            .iter()
            .rev()
            .filter(|e| since.is_none_or(|since| e.at >= since))
            .cloned()
            .collect())
    }
}

#[derive(Default)]
pub(crate) struct FakeAlerts {
    pub(crate) sent: RefCell<Vec<Alert>>,
    pub(crate) fail: Cell<bool>,
}

impl Alerts for FakeAlerts {
    async fn send(&self, alert: &Alert) -> Result<()> {
        if self.fail.get() {
            return Err(Error::external(
                "sns",
                "Publish",
                "unavailable",
                crate::error::Transience::Retryable,
            ));
        }
        self.sent.borrow_mut().push(alert.clone());
        Ok(())
    }
}

pub(crate) struct FixedClock(pub(crate) Cell<DateTime<Utc>>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.get()
    }
}

pub(crate) type TestRotator =
    Rotator<FakeStore, FakeIssuer, FakeTargets, FakeAudit, FakeAlerts, FixedClock>;

/// The event Secrets Manager sends for `step` of the rotation `token` of the fakes' secret.
pub(crate) fn event(step: Step, token: &str) -> RotationEvent {
    RotationEvent {
        step,
        secret_id: NAME.into(),
        client_request_token: token.into(),
        rotation_token: None,
    }
}

/// Runs one step as Secrets Manager invokes it.
pub(crate) async fn run(rotator: &TestRotator, step: Step, token: &str) -> Result<Progress> {
    let invocation = Invocation {
        actor: "req-1".into(),
        deadline: None,
    };
    rotator.handle(&event(step, token), &invocation).await
}

/// rotate-secret, then the four steps; a failing step fails the test. Returns each step's progress.
pub(crate) async fn rotate(rotator: &TestRotator, token: &str) -> Vec<Progress> {
    rotator.store.start_rotation(token);
    let mut progress = Vec::new();
    for step in Step::ALL {
        progress.push(
            run(rotator, step, token)
                .await
                .unwrap_or_else(|err| panic!("{step}: {err}")),
        );
    }
    progress
}

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

pub(crate) fn rotator_with(value: Value) -> TestRotator {
    Rotator {
        store: FakeStore::with_current(value),
        issuer: FakeIssuer::default(),
        targets: FakeTargets::default(),
        audit: FakeAudit::default(),
        alerts: FakeAlerts::default(),
        clock: FixedClock(Cell::new(now())),
        settings: RotatorSettings {
            deploy_poll_interval: std::time::Duration::from_millis(1),
            ..RotatorSettings::default()
        },
    }
}

pub(crate) fn rotator() -> TestRotator {
    rotator_with(
        json!({"provider": "generic", "api_key": OLD_KEY, "generic": {"length": 32}, "team": "ml"}),
    )
}
