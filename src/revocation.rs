//! The revocation protocol, written once. Every process that ends a key's life goes through here:
//! finishSecret with grace 0, the grace keeper, a rollback (which cancels), repair (which records), the
//! lost race of createSecret and `keyrot orphans --delete` (which revoke a key no record describes).
//!
//! A record is `pending` until its grace ends. Revoking claims it first (pending to `revoking`), so a
//! rollback can no longer cancel it and bring the key back while the provider revokes it; the claimant
//! then settles it (revoked, retired, manual) or releases it (pending again, the attempt counted). Every
//! write names the status and the claim it read, so of two processes acting on one record only the
//! first one's write lands; the other learns it lost and does nothing more.

use chrono::{DateTime, Utc};

use crate::domain::audit::{KeyHandle, Revocation, RevocationStatus};
use crate::domain::keys::{KeyView, fingerprint};
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Stage};
use crate::domain::provenance::KeyRecord;
use crate::domain::secret::Provider;
use crate::domain::{ManagedSecret, ProviderSettings, SecretDescription};
use crate::error::{Error, Result};
use crate::patience::Patience;
use crate::ports::{
    Alert, AlertKind, AuditLog, Clock, Family, KeyIssuer, Ports, SecretStore, Severity,
};

#[cfg(test)]
mod tests;

/// How long a revoked key is asked again until its provider refuses it: a revocation takes a few
/// seconds to reach every server of a provider.
pub const REVOCATION_CHECK: Patience = Patience::new(
    std::time::Duration::from_secs(30),
    std::time::Duration::from_secs(1),
);

/// How an attempt to revoke a recorded key ended.
#[derive(Debug)]
pub(crate) enum Revoke {
    /// Another process settled or claimed the record after it was read: nothing was done.
    Lost,
    /// The claim could not be written: nothing was done, and the record is still due.
    Unclaimed(Error),
    /// Holding the claim, the caller's last look said the key must stay (it is AWSCURRENT again): the
    /// claim was released (`released` is the write's result) and the provider not called.
    Declined { released: Result<bool> },
    /// The provider failed: the claim was released with the attempt counted, for a retry.
    Failed {
        record: Revocation,
        error: Error,
        released: Result<bool>,
    },
    /// The provider said it revoked the key, yet the key still works (the recorded id named another
    /// key, or one already gone): the claim was released with the attempt counted, so the record
    /// stays owed, and a person must find the key.
    StillWorks {
        record: Revocation,
        released: Result<bool>,
    },
    /// The provider revoked (or retired) the key. `settled` is the write of the outcome: `Ok(false)`
    /// means the record changed under the claim (another process took it over).
    Revoked {
        record: Revocation,
        status: RevocationStatus,
        verified: Verified,
        settled: Result<bool>,
    },
}

/// Whether a revoked key was seen refused afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verified {
    /// The provider answers 401 to the old key now.
    Refused,
    /// Nothing could be asked: a retired generic key, a key a person revokes, or an old value that
    /// could no longer be read.
    NotAsked,
}

/// What a revocation's own check of the provider found.
enum Check {
    Verified(Verified),
    StillWorks,
}

impl<F: Family> Ports<F> {
    /// The revocation of the key of `old`, which `version_id` of `secret` held, with the provider ids
    /// keyrot recorded for that key (docs/security.md, provenance).
    pub(crate) async fn revocation_for(
        &self,
        secret: &SecretDescription,
        version_id: &str,
        old: &ManagedSecret,
        due: DateTime<Utc>,
    ) -> Result<Revocation> {
        let view = old.key_view();
        let record = self
            .audit
            .key_record(&secret.name, &view.fingerprint)
            .await?;
        Ok(revocation_of(
            secret,
            version_id,
            (&old.provider, view),
            record.as_ref(),
            due,
        ))
    }

    /// Whether keyrot's record of the key vouches for every id `handle` would revoke. A handle without
    /// ids asks the provider for nothing (it is a person's to revoke), so it needs no record.
    async fn vouched(&self, handle: &KeyHandle, fingerprint: &str) -> Result<bool> {
        if handle.key_id.is_none() && handle.api_key_id.is_none() {
            return Ok(true);
        }
        let record = self
            .audit
            .key_record(&handle.secret_name, fingerprint)
            .await?;
        Ok(record.is_some_and(|record| record.vouches_for(handle)))
    }

    /// Records `wanted` for its version. When a record already stands for it (the grace keeper found
    /// the version first, or an earlier process left one), brings that record's due time to
    /// `wanted`'s while it is still pending and unclaimed, so that what a rotation promises is what
    /// happens. Returns the record as it stands.
    pub(crate) async fn schedule(&self, wanted: &Revocation) -> Result<Revocation> {
        if self.record_revocation(wanted).await? {
            return Ok(wanted.clone());
        }
        let Some(existing) = self
            .audit
            .revocation(&wanted.secret_name, &wanted.old_version_id)
            .await?
        else {
            return Ok(wanted.clone());
        };
        let reconcilable = existing.status == RevocationStatus::Pending
            && existing.claimed_at.is_none()
            && existing.due != wanted.due;
        if !reconcilable {
            return Ok(existing);
        }
        let next = Revocation {
            due: wanted.due,
            ..existing.clone()
        };
        Ok(self
            .rewrite_revocation(&existing, next)
            .await?
            .unwrap_or(existing))
    }

    /// Records a key's revocation unless one stands for its version; returns whether it wrote.
    pub(crate) async fn record_revocation(&self, record: &Revocation) -> Result<bool> {
        self.audit.schedule_revocation(record).await
    }

    /// Writes `next` over `read` if the record is still as read. `Ok(None)`: another process changed
    /// it first, and `next` was not written.
    pub(crate) async fn rewrite_revocation(
        &self,
        read: &Revocation,
        next: Revocation,
    ) -> Result<Option<Revocation>> {
        let written = self.audit.update_revocation(&next, read.as_read()).await?;
        Ok(written.then_some(next))
    }

    /// Cancels the revocation `read` describes: its key is in service again.
    pub(crate) async fn cancel_revocation(&self, read: &Revocation) -> Result<Option<Revocation>> {
        self.rewrite_revocation(read, read.settled(RevocationStatus::Cancelled))
            .await
    }

    /// Claims `read`, asks `still_owed` (holding the claim) whether the key may go, revokes it at the
    /// provider, checks for `patience` that the provider now refuses it, and settles or releases the
    /// claim.
    pub(crate) async fn revoke_recorded(
        &self,
        read: &Revocation,
        patience: Patience,
        still_owed: impl AsyncFnOnce(&Revocation) -> bool,
    ) -> Revoke {
        let claimed = match self
            .rewrite_revocation(read, read.claimed(self.clock.now()))
            .await
        {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return Revoke::Lost,
            Err(err) => return Revoke::Unclaimed(err),
        };
        if !still_owed(&claimed).await {
            return self.decline(&claimed).await;
        }
        let revoked = match self.at_provider(&claimed).await {
            Some(revoked) => revoked,
            None => return self.decline(&claimed).await,
        };
        let sent = matches!(revoked, Ok(RevocationStatus::Revoked));
        let checked = match revoked {
            Ok(RevocationStatus::Revoked) => self.check_refused(&claimed, patience).await,
            Ok(status) => Ok((status, Check::Verified(Verified::NotAsked))),
            Err(error) => Err(error),
        };
        match checked {
            Ok((_, Check::StillWorks)) => {
                let record = claimed.sent_but_unsettled(self.clock.now());
                let released = self
                    .audit
                    .update_revocation(&record, claimed.as_read())
                    .await;
                Revoke::StillWorks { record, released }
            }
            Ok((status, Check::Verified(verified))) => {
                let record = claimed.settled(status);
                let settled = self
                    .audit
                    .update_revocation(&record, claimed.as_read())
                    .await;
                Revoke::Revoked {
                    record,
                    status,
                    verified,
                    settled,
                }
            }
            Err(error) => {
                let record = if sent {
                    claimed.sent_but_unsettled(self.clock.now())
                } else {
                    claimed.failed_attempt()
                };
                let released = self
                    .audit
                    .update_revocation(&record, claimed.as_read())
                    .await;
                Revoke::Failed {
                    record,
                    error,
                    released,
                }
            }
        }
    }

    /// Revokes the claimed key at its provider; `None` when it must stay after all (a later version of
    /// a database logs in as its role, and is not yet current).
    async fn at_provider(&self, claimed: &Revocation) -> Option<Result<RevocationStatus>> {
        let handle = claimed.handle();
        match self.vouched(&handle, &claimed.fingerprint).await {
            // No record of keyrot's names these ids for this key: they were written into a value, and
            // only a person may act on them.
            Ok(false) => Some(Ok(RevocationStatus::Manual)),
            Ok(true) => match self.role_in_use(&handle).await {
                Ok(None) => match self.value_to_revoke(claimed).await {
                    Ok(old) => {
                        let value = old.as_ref().map(|old| &old.api_key);
                        Some(self.issuer.revoke(&handle, value).await)
                    }
                    // A read that failed says nothing of the value: the attempt fails and is retried.
                    Err(error) => Some(Err(error)),
                },
                // Setting the later version's password already ended this one: nothing to lock out,
                // and the check that follows sees the old password refused.
                Ok(Some(AWSCURRENT)) => Some(Ok(RevocationStatus::Revoked)),
                Ok(Some(_)) => None,
                Err(error) => Some(Err(error)),
            },
            Err(error) => Some(Err(error)),
        }
    }

    /// After the provider said it revoked `claimed`'s key: whether it now refuses the key, asked again
    /// for `patience` while the revocation propagates. A 404 on delete is taken as "already gone", so
    /// without this a wrong id would record `revoked` while the key works on.
    async fn check_refused(
        &self,
        claimed: &Revocation,
        patience: Patience,
    ) -> Result<(RevocationStatus, Check)> {
        let revoked = RevocationStatus::Revoked;
        let Some(old) = self.revoked_value(claimed).await else {
            return Ok((revoked, Check::Verified(Verified::NotAsked)));
        };
        let answer = patience
            .ask(
                async || {
                    self.issuer
                        .validate(&claimed.secret_name, &old, &old.api_key)
                        .await
                },
                |answer| match answer {
                    Ok(()) => false,
                    Err(error) => !error.is_retryable(),
                },
            )
            .await;
        match answer {
            Err(Error::KeyRejected { .. }) => Ok((revoked, Check::Verified(Verified::Refused))),
            Ok(()) => Ok((revoked, Check::StillWorks)),
            Err(error) => Err(error),
        }
    }

    /// The value that held a revoked key, while its version is still AWSPREVIOUS and holds that key.
    /// Generic keys are retired, not revoked: no provider can answer for them.
    pub(crate) async fn revoked_value(&self, revocation: &Revocation) -> Option<ManagedSecret> {
        if revocation.provider == Provider::Generic {
            return None;
        }
        let text = self
            .store
            .value(
                &revocation.secret_arn_or_name(),
                AWSPREVIOUS,
                Some(&revocation.old_version_id),
            )
            .await
            .ok()??;
        let old = ManagedSecret::parse(&revocation.secret_name, AWSPREVIOUS, &text).ok()?;
        (fingerprint(&old.api_key) == revocation.fingerprint).then_some(old)
    }

    /// Releases a claim whose key must stay for now, unrevoked.
    async fn decline(&self, claimed: &Revocation) -> Revoke {
        let released = self
            .audit
            .update_revocation(
                &claimed.settled(RevocationStatus::Pending),
                claimed.as_read(),
            )
            .await;
        Revoke::Declined { released }
    }

    /// A database's roles alternate: the stage whose version logs in as the role `handle` would lock
    /// out (AWSCURRENT or AWSPENDING, after a rotation within the grace period), if any. Locking that
    /// role out would lock out the later version.
    async fn role_in_use(&self, handle: &KeyHandle) -> Result<Option<Stage>> {
        if handle.provider != Provider::Postgres {
            return Ok(None);
        }
        for stage in [AWSCURRENT, AWSPENDING] {
            let Some(text) = self.store.value(&handle.secret_name, stage, None).await? else {
                continue;
            };
            let value = ManagedSecret::parse(&handle.secret_name, stage, &text)?;
            if value.key_id.is_some() && value.key_id == handle.key_id {
                return Ok(Some(stage));
            }
        }
        Ok(None)
    }

    /// Revokes a key no record describes: one minted by an attempt that lost its race, or an orphan.
    pub(crate) async fn revoke_unrecorded(&self, key: &KeyHandle) -> Result<RevocationStatus> {
        // Only minted keys go unrecorded, and they are revoked by id.
        self.issuer.revoke(key, None).await
    }

    /// The old value, for a provider that revokes a key by its value (GitHub); read for no other.
    /// `Ok(None)` when the version is gone or holds another key; an error when it could not be read.
    async fn value_to_revoke(&self, claimed: &Revocation) -> Result<Option<ManagedSecret>> {
        if claimed.provider != Provider::GitHub {
            return Ok(None);
        }
        // By its id alone: the version may have lost AWSPREVIOUS to a later rotation since.
        let secret_id = claimed.secret_arn_or_name();
        let text = self
            .store
            .unlabelled_value(&secret_id, &claimed.old_version_id)
            .await?;
        let Some(text) = text else {
            return Ok(None);
        };
        let old = ManagedSecret::parse(&claimed.secret_name, AWSPREVIOUS, &text).ok();
        Ok(old.filter(|old| fingerprint(&old.api_key) == claimed.fingerprint))
    }
}

/// What revoking a key later needs to know, without the key itself. The provider ids come from the
/// key's record (`record`), never from the value that held the key: without a record, no id is known
/// and a person revokes the key.
pub(crate) fn revocation_of(
    secret: &SecretDescription,
    version_id: &str,
    (provider, view): (&ProviderSettings, KeyView),
    record: Option<&KeyRecord>,
    due: DateTime<Utc>,
) -> Revocation {
    let (project_id, admin_key_secret) = match provider {
        ProviderSettings::OpenAi(openai) => (
            Some(openai.project_id.clone()),
            Some(openai.admin_key_secret.clone()),
        ),
        ProviderSettings::Anthropic(anthropic) => (None, Some(anthropic.admin_key_secret.clone())),
        ProviderSettings::Generic(_)
        | ProviderSettings::Stripe(_)
        | ProviderSettings::GitHub(_) => (None, None),
        ProviderSettings::Postgres(postgres) => (None, Some(postgres.master_secret.clone())),
        // A credential is revoked with the key that replaced it: the secret's own AWSCURRENT.
        ProviderSettings::Credential(_) => (None, Some(secret.name.clone())),
    };
    Revocation {
        secret_name: secret.name.clone(),
        secret_arn: secret.arn.clone(),
        old_version_id: version_id.to_owned(),
        provider: provider.provider(),
        project_id: record.map_or(project_id, |record| record.project_id.clone()),
        key_id: record.and_then(|record| record.key_id.clone()),
        api_key_id: record.and_then(|record| record.api_key_id.clone()),
        admin_key_secret,
        fingerprint: view.fingerprint,
        hint: view.redacted,
        due,
        attempts: 0,
        postponements: 0,
        status: RevocationStatus::Pending,
        claimed_at: None,
        confirmed: None,
        revoke_sent_at: None,
    }
}

/// The alert for a key the provider still accepts after keyrot revoked it by its recorded id.
pub(crate) fn still_works_alert(record: &Revocation) -> Alert {
    let (name, hint) = (&record.secret_name, &record.hint);
    let ids = [record.key_id.as_deref(), record.api_key_id.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    Alert::new(AlertKind::RevocationFailed, Severity::Critical, name)
        .subject(format!("keyrot: the old key of {name} still works after its revocation"))
        .text(format!(
            "keyrot revoked the old key {hint} of {name} (version {}) at {} by the id it recorded ({ids}), but the provider still accepts the key: that id names another key or one already gone. The key stays owed and keyrot tries again on every keeper pass. Find the key by its hint {hint} in the provider's console and revoke it by hand; the next pass sees it refused and closes the record.",
            record.old_version_id, record.provider.as_str()
        ))
        .details(serde_json::json!({"event": "revocation_failed", "secret": name, "version_id": record.old_version_id,
            "key": hint, "key_ids": ids, "provider": record.provider.as_str(), "cause": "key_still_works",
            "attempts": record.attempts}))
}
