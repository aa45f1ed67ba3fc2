//! Orphans: keys keyrot minted that no version and no pending revocation knows about (a createSecret
//! that died after minting, a revocation that silently failed). Deleting one is an operator's decision
//! (`keyrot orphans --delete`); the keeper alerts.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::ProviderSettings;
use crate::domain::keys::{AccountOwner, legacy_owns};
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::domain::targets::TargetSpec;
use crate::ports::{
    Alert, AlertKind, AuditLog, Clock, Family, KeyIssuer, MintedKey, SecretStore, Severity, Target,
};

use super::{GraceKeeper, KeeperReport, KeeperSettings, Managed};

/// A key keyrot minted that nobody knows, with the secret it was minted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub key: MintedKey,
    pub secret: String,
    /// The admin secret that can delete it.
    pub admin_key_secret: String,
}

/// Secrets sharing a project share its list of service accounts: it is listed once per project.
fn projects_of(managed: &[Managed]) -> BTreeMap<(String, String), Vec<&Managed>> {
    let mut projects: BTreeMap<(String, String), Vec<&Managed>> = BTreeMap::new();
    for item in managed {
        if let Some(ProviderSettings::OpenAi(openai)) = item.current.as_ref().map(|c| &c.provider) {
            projects
                .entry((openai.project_id.clone(), openai.admin_key_secret.clone()))
                .or_default()
                .push(item);
        }
    }
    projects
}

/// Why orphans cannot be told apart now: a managed secret whose current value is unreadable may own
/// any keyrot-named key in any project, and calling its live key an orphan could get it deleted.
/// keyrot's own credentials own no project's keys (and the CLI never opens them).
fn unreadable(settings: &KeeperSettings, managed: &[Managed]) -> Option<crate::error::Error> {
    let item = managed
        .iter()
        .find(|item| item.current.is_none() && !settings.is_credential_name(&item.secret.name))?;
    Some(crate::error::Error::config(
        &item.secret.name,
        "AWSCURRENT",
        "the current value could not be read or parsed, so the keys it owns are unknown",
        "fix the secret's value (see `keyrot validate NAME`), then look for orphans again",
    ))
}

fn admin_secret_of(item: &Managed) -> Option<String> {
    match item.current.as_ref().map(|c| &c.provider) {
        Some(ProviderSettings::OpenAi(openai)) => Some(openai.admin_key_secret.clone()),
        _ => None,
    }
}

impl<F: Family> GraceKeeper<'_, F> {
    /// The orphaned keys among the managed secrets' projects (what `keyrot orphans` lists).
    pub async fn orphans(&self) -> crate::error::Result<Vec<Orphan>> {
        let now = self.ports.clock.now();
        let managed = self.managed_secrets().await?;
        if let Some(unread) = unreadable(&self.settings, &managed) {
            return Err(unread);
        }
        let mut found = Vec::new();
        for secrets in projects_of(&managed).values() {
            for (key, owner) in self.orphans_in(now, secrets).await? {
                found.push(Orphan {
                    secret: owner.secret.name.clone(),
                    admin_key_secret: admin_secret_of(owner).unwrap_or_default(),
                    key,
                });
            }
        }
        Ok(found)
    }

    pub(super) async fn find_orphans(
        &self,
        now: DateTime<Utc>,
        managed: &[Managed],
        report: &mut KeeperReport,
    ) {
        if let Some(unread) = unreadable(&self.settings, managed) {
            return report
                .errors
                .push(format!("orphan check skipped: {unread}"));
        }
        for secrets in projects_of(managed).values() {
            match self.orphans_in(now, secrets).await {
                Ok(orphans) => {
                    for (orphan, owner) in orphans {
                        report.orphans += 1;
                        self.alert_orphan(&orphan, owner, report).await;
                    }
                }
                Err(err) => report.errors.push(format!("orphan check: {err}")),
            }
        }
    }

    /// The project's keyrot-named keys that nobody knows, each with the secret it was minted for.
    async fn orphans_in<'m>(
        &self,
        now: DateTime<Utc>,
        secrets: &[&'m Managed],
    ) -> crate::error::Result<Vec<(MintedKey, &'m Managed)>> {
        let Some(first) = secrets.first() else {
            return Ok(Vec::new());
        };
        let Some(current) = &first.current else {
            return Ok(Vec::new());
        };
        let minted = self
            .ports
            .issuer
            .minted_keys(&first.secret.name, current)
            .await?;
        let mut known: BTreeSet<String> = secrets
            .iter()
            .filter_map(|m| m.current.as_ref().and_then(|c| c.key_id.clone()))
            .collect();
        let young = |key: &MintedKey| now - key.created_at < self.settings.orphan_min_age;
        if minted
            .iter()
            .all(|key| known.contains(&key.id) || young(key))
        {
            return Ok(Vec::new());
        }
        // Something is unexplained: consult what costs more to read, the pending versions and the
        // revocations still owed.
        for item in secrets {
            let secret = &item.secret;
            let pending = secret
                .version_with(AWSPENDING)
                .filter(|v| !secret.has_stage(v, AWSCURRENT));
            if let Some(pending) = pending
                && let Some(text) = self
                    .ports
                    .store
                    .value(&secret.arn_or_name(), AWSPENDING, Some(pending))
                    .await?
                && let Ok(value) =
                    crate::domain::ManagedSecret::parse(&secret.name, AWSPENDING, &text)
            {
                known.extend(value.key_id);
            }
            // A record that cannot be read may be the one that knows a key: no orphan is called then.
            let revocations = self.ports.audit.revocations_of(&secret.name).await?;
            for revocation in revocations.complete(&secret.name, "revocation records")? {
                // A pending revocation will delete the key; a revoked one should be gone already.
                if revocation.status.is_owed() {
                    known.extend(revocation.key_id);
                }
            }
            known.extend(self.keys_in_service(item).await?);
        }
        // Only a key named for one of these secrets is theirs to judge: another stack, another prefix
        // or a secret keyrot no longer manages may share the project.
        Ok(minted
            .into_iter()
            .filter(|key| !known.contains(&key.id) && !young(key))
            .filter_map(|key| Some((owner_of(secrets, &key.name)?, key)))
            .map(|(owner, key)| (key, owner))
            .collect())
    }

    /// The ids of keys `item` still serves beyond AWSCURRENT: AWSPREVIOUS's (in its grace, or replaced
    /// by a value put over it), and every key a target holds, by the key record of its fingerprint.
    /// Calling one of these an orphan would send a person to delete a key in service.
    async fn keys_in_service(&self, item: &Managed) -> crate::error::Result<Vec<String>> {
        let secret = &item.secret;
        let mut ids = Vec::new();
        if let Some(previous) = secret.version_with(AWSPREVIOUS)
            && let Some(text) = self
                .ports
                .store
                .value(&secret.arn_or_name(), AWSPREVIOUS, Some(previous))
                .await?
            && let Ok(value) = crate::domain::ManagedSecret::parse(&secret.name, AWSPREVIOUS, &text)
        {
            ids.extend(value.key_id);
        }
        let Some(current) = &item.current else {
            return Ok(ids);
        };
        for target in TargetSpec::parse_all(&secret.name, &current.targets)? {
            let Some(held) = self
                .ports
                .targets
                .held_fingerprint(&secret.name, &target)
                .await?
            else {
                continue;
            };
            if let Some(record) = self.ports.audit.key_record(&secret.name, &held).await? {
                ids.extend(record.key_id);
            }
        }
        Ok(ids)
    }

    async fn alert_orphan(&self, orphan: &MintedKey, owner: &Managed, report: &mut KeeperReport) {
        let secret = &owner.secret;
        let alert = Alert::new(AlertKind::OrphanKey, Severity::Warning, &secret.name)
            .subject(format!("keyrot: orphaned key {} in {}", orphan.id, orphan.scope))
            .text(format!(
                "The service account {} ({}) in project {} holds a key that keyrot minted but that no version of {} and no pending revocation knows. List and delete such keys with `keyrot orphans --delete`.",
                orphan.id, orphan.name, orphan.scope, secret.name
            ))
            .details(json!({"event": "orphan_key", "secret": secret.name, "key_id": orphan.id, "name": orphan.name,
                "project_id": orphan.scope, "created_at": orphan.created_at.to_rfc3339(), "command": "keyrot orphans --delete"}));
        self.alert_once(secret, &orphan.id, alert, report).await;
    }
}

/// The managed secret a minted account's name says it belongs to: exactly one by the name's tag, or, for
/// an account named by an earlier release, the one secret whose name spells it (none when two do).
fn owner_of<'m>(secrets: &[&'m Managed], account: &str) -> Option<&'m Managed> {
    let exact = secrets
        .iter()
        .find(|m| AccountOwner::of(&m.secret.name, &m.secret.arn).owns(account));
    if let Some(owner) = exact {
        return Some(*owner);
    }
    let mut legacy = secrets
        .iter()
        .filter(|m| legacy_owns(&m.secret.name, account));
    match (legacy.next(), legacy.next()) {
        (Some(owner), None) => Some(*owner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Managed, owner_of};
    use crate::domain::keys::AccountOwner;
    use crate::domain::policy::SecretDescription;

    fn managed(name: &str) -> Managed {
        Managed {
            secret: SecretDescription {
                arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"),
                name: name.into(),
                ..SecretDescription::default()
            },
            current: None,
        }
    }

    #[test]
    fn a_minted_account_has_one_owner_even_where_names_spell_alike() {
        let (slash, dot) = (managed("prod/openai"), managed("prod.openai"));
        let both = [&slash, &dot];
        for owner in both {
            let account =
                AccountOwner::of(&owner.secret.name, &owner.secret.arn).account_name("0123abcd-ef");
            let found = owner_of(&both, &account).map(|m| m.secret.name.as_str());
            assert_eq!(found, Some(owner.secret.name.as_str()), "{account}");
        }
        // An account an earlier release named is ambiguous between the two, so neither may judge it.
        assert!(owner_of(&both, "keyrot-prod-openai-0123abcd").is_none());
        let found =
            owner_of(&[&slash], "keyrot-prod-openai-0123abcd").map(|m| m.secret.name.as_str());
        assert_eq!(
            found,
            Some("prod/openai"),
            "unambiguous legacy names still have their owner"
        );
        assert!(owner_of(&both, "keyrot-staging-openai-0123abcd").is_none());
    }
}
