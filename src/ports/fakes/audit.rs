//! The DynamoDB table in memory: events, step guards, revocation records, deployments, alert dedupe.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::domain::Step;
use crate::domain::audit::{AuditEvent, Expected, Revocation, RevocationStatus};
use crate::domain::provenance::KeyRecord;
use crate::error::{Error, Result};
use crate::ports::{Alert, AlertKind, AuditHistory, AuditLog, Listed, ParkedAlert};

#[derive(Default)]
pub(crate) struct FakeAudit {
    pub(crate) events: RefCell<Vec<AuditEvent>>,
    pub(crate) guards: RefCell<BTreeSet<String>>,
    pub(crate) revocations: RefCell<BTreeMap<String, Revocation>>,
    pub(crate) deployments: RefCell<BTreeMap<String, String>>,
    pub(crate) alerts_recorded: RefCell<BTreeSet<String>>,
    /// First failures by (secret, what).
    pub(crate) failures: RefCell<BTreeMap<(String, String), DateTime<Utc>>>,
    /// Key records by (secret, fingerprint).
    pub(crate) keys: RefCell<BTreeMap<(String, String), KeyRecord>>,
    /// Audit events cannot be written.
    pub(crate) fail_writes: Cell<bool>,
    /// Key records cannot be written.
    pub(crate) fail_key_records: Cell<bool>,
    /// A version whose record another process (a keeper pass, a rollback) sets to this status just
    /// before the next update of it: the race between an operator command and a keeper pass.
    pub(crate) raced_before_update: RefCell<Option<(String, RevocationStatus)>>,
    /// Records of the table that cannot be read, as their listings report them.
    pub(crate) unreadable: RefCell<Vec<String>>,
    /// Critical alerts parked after a failed Publish, by id.
    pub(crate) parked: RefCell<BTreeMap<String, ParkedAlert>>,
}

impl FakeAudit {
    /// `items` as a listing, with the records a test made unreadable.
    fn listed<T>(&self, items: impl Iterator<Item = T>) -> Listed<T> {
        let unreadable: Vec<String> = self.unreadable.borrow().clone();
        Listed::of(items.map(Ok).chain(unreadable.into_iter().map(Err)))
    }

    /// Sets a revocation's status as another process would have (tests set the scene with it).
    pub(crate) async fn set_revocation_status(
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

    /// The status of the revocation record of `version`, if there is one.
    pub(crate) fn status_of(&self, version: &str) -> Option<RevocationStatus> {
        self.revocations.borrow().get(version).map(|r| r.status)
    }

    /// The revocation record of `version`.
    pub(crate) fn revocation_of(&self, version: &str) -> Option<Revocation> {
        self.revocations.borrow().get(version).cloned()
    }

    /// Another process sets the record of `version` to `status` (a keeper pass, a rollback).
    pub(crate) fn set_status(&self, version: &str, status: RevocationStatus) {
        if let Some(record) = self.revocations.borrow_mut().get_mut(version) {
            record.status = status;
        }
    }

    pub(crate) fn outcomes(&self) -> Vec<(String, &'static str)> {
        self.events
            .borrow()
            .iter()
            .map(|e| (e.action.to_string(), e.outcome.as_str()))
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
    async fn record_key(&self, record: &KeyRecord) -> Result<bool> {
        if self.fail_key_records.get() {
            return Err(Error::external(
                "dynamodb",
                "PutItem",
                "unavailable",
                crate::error::Transience::Retryable,
            ));
        }
        let key = (record.secret_name.clone(), record.fingerprint.clone());
        let mut keys = self.keys.borrow_mut();
        if keys.contains_key(&key) {
            return Ok(false);
        }
        keys.insert(key, record.clone());
        Ok(true)
    }

    async fn first_failure(
        &self,
        secret_name: &str,
        what: &str,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        Ok(*self
            .failures
            .borrow_mut()
            .entry((secret_name.to_owned(), what.to_owned()))
            .or_insert(at))
    }

    async fn key_record(&self, secret_name: &str, fingerprint: &str) -> Result<Option<KeyRecord>> {
        Ok(self
            .keys
            .borrow()
            .get(&(secret_name.to_owned(), fingerprint.to_owned()))
            .cloned())
    }

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

    async fn step_succeeded(&self, _secret_name: &str, token: &str, step: Step) -> Result<bool> {
        self.check()?;
        Ok(self
            .guards
            .borrow()
            .contains(&format!("DONE#{token}#{}", step.as_str())))
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

    async fn pending_revocations(&self, before: DateTime<Utc>) -> Result<Listed<Revocation>> {
        let revocations = self.revocations.borrow();
        let due = revocations
            .values()
            .filter(|r| r.status.is_owed() && r.due < before);
        Ok(self.listed(due.cloned()))
    }

    async fn revocations_of(&self, _secret_name: &str) -> Result<Listed<Revocation>> {
        Ok(self.listed(self.revocations.borrow().values().cloned()))
    }

    async fn revocation_tasks(&self) -> Result<Listed<Revocation>> {
        let revocations = self.revocations.borrow();
        let open = revocations
            .values()
            .filter(|r| r.status == RevocationStatus::Manual);
        Ok(self.listed(open.cloned()))
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

    async fn park_alert(&self, alert: &Alert, at: DateTime<Utc>) -> Result<()> {
        let mut parked = self.parked.borrow_mut();
        let id = format!("ALERT#{}#{}", at.to_rfc3339(), parked.len());
        parked.insert(
            id.clone(),
            ParkedAlert {
                id,
                parked_at: at,
                alert: alert.clone(),
            },
        );
        Ok(())
    }

    async fn parked_alerts(&self) -> Result<Listed<ParkedAlert>> {
        Ok(Listed::of(self.parked.borrow().values().cloned().map(Ok)))
    }

    async fn unpark_alert(&self, id: &str) -> Result<()> {
        self.parked.borrow_mut().remove(id);
        Ok(())
    }

    async fn record_alert_once(
        &self,
        secret_name: &str,
        kind: AlertKind,
        dedupe: &str,
    ) -> Result<bool> {
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
}

impl AuditHistory for FakeAudit {
    async fn history(
        &self,
        _secret_name: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Listed<AuditEvent>> {
        let events = self.events.borrow();
        let since = events
            .iter()
            .rev()
            .filter(|e| since.is_none_or(|since| e.at >= since));
        Ok(self.listed(since.cloned()))
    }
}
