//! `keyrot orphans --delete`: delete the keys keyrot minted that nobody knows, each audited.

use crate::domain::audit::{AuditEvent, Outcome, Revocation, RevocationStatus};
use crate::error::Result;
use crate::keeper::Orphan;
use crate::ports::{Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Target};
use crate::rotation::Rotator;

/// One deletion's result.
#[derive(Debug)]
pub struct OrphanDeletion {
    pub orphan: Orphan,
    pub result: Result<RevocationStatus>,
}

impl<S, I, T, A, N, C> Rotator<S, I, T, A, N, C>
where
    S: SecretStore,
    I: KeyIssuer,
    T: Target,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    /// Deletes every orphan, going on past failures (one project's refusal says nothing about the
    /// next), and audits each attempt as a `revoke` by `actor`.
    pub async fn delete_orphans(&self, orphans: Vec<Orphan>, actor: &str) -> Vec<OrphanDeletion> {
        let mut done = Vec::new();
        for orphan in orphans {
            let started = self.clock.now();
            // Orphans are OpenAI service accounts (the only keys keyrot mints by API); the record is
            // built only to tell the issuer which account to delete, and is not stored.
            let revocation = Revocation {
                secret_name: orphan.secret.clone(),
                secret_arn: String::new(),
                old_version_id: format!("orphan:{}", orphan.key.id),
                provider: "openai".into(),
                project_id: Some(orphan.key.scope.clone()),
                key_id: Some(orphan.key.id.clone()),
                api_key_id: None,
                admin_key_secret: Some(orphan.admin_key_secret.clone()),
                fingerprint: String::new(),
                hint: orphan.key.name.clone(),
                due: started,
                attempts: 0,
                postponements: 0,
                status: RevocationStatus::Pending,
                claimed_at: None,
            };
            let result = self.issuer.revoke(&revocation).await;
            let event = AuditEvent {
                at: started,
                secret_arn: String::new(),
                secret_name: orphan.secret.clone(),
                action: "revoke".to_owned(),
                outcome: if result.is_ok() {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                },
                version_id: revocation.old_version_id.clone(),
                provider: revocation.provider.clone(),
                old_key_hint: None,
                new_key_hint: None,
                trigger: "manual".to_owned(),
                actor: actor.to_owned(),
                targets: Vec::new(),
                duration_ms: (self.clock.now() - started).num_milliseconds().max(0) as u64,
                error: result.as_ref().err().map(ToString::to_string),
                retryable: false,
            };
            if let Err(err) = self.audit.record(&event).await {
                tracing::warn!(error = %err, secret = %orphan.secret, key_id = %orphan.key.id,
                    "audit item of an orphan's deletion could not be written");
            }
            done.push(OrphanDeletion { orphan, result });
        }
        done
    }
}
