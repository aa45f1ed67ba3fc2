//! `keyrot orphans --delete`: delete the keys keyrot minted that nobody knows, each audited.

use super::Operator;
use crate::domain::Trigger;
use crate::domain::audit::{Action, AuditEvent, KeyHandle, Outcome, RevocationStatus};
use crate::domain::secret::Provider;
use crate::error::Result;
use crate::keeper::Orphan;
use crate::ports::{Clock, Family};

/// One deletion's result.
#[derive(Debug)]
pub struct OrphanDeletion {
    pub orphan: Orphan,
    pub result: Result<RevocationStatus>,
}

impl<F: Family> Operator<'_, F> {
    /// Deletes every orphan, going on past failures (one project's refusal says nothing about the
    /// next), and audits each attempt as a `revoke` by `actor`.
    pub async fn delete_orphans(&self, orphans: Vec<Orphan>, actor: &str) -> Vec<OrphanDeletion> {
        let mut done = Vec::new();
        for orphan in orphans {
            let started = self.ports.clock.now();
            // Orphans are OpenAI service accounts (the only keys keyrot mints by API).
            let key = KeyHandle {
                secret_name: orphan.secret.clone(),
                old_version_id: format!("orphan:{}", orphan.key.id),
                provider: Provider::OpenAi,
                project_id: Some(orphan.key.scope.clone()),
                key_id: Some(orphan.key.id.clone()),
                api_key_id: None,
                admin_key_secret: Some(orphan.admin_key_secret.clone()),
                fingerprint: None,
            };
            let result = self.ports.revoke_unrecorded(&key).await;
            let outcome = if result.is_ok() {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            };
            let event = AuditEvent::new(
                started,
                ("", &orphan.secret),
                Action::Revoke,
                outcome,
                &key.old_version_id,
            )
            .provider(key.provider.as_str())
            .triggered(Some(Trigger::Manual))
            .by(actor)
            .took(started, self.ports.clock.now())
            .error(result.as_ref().err().map(ToString::to_string));
            self.ports.record_quietly(&event).await;
            done.push(OrphanDeletion { orphan, result });
        }
        done
    }
}
