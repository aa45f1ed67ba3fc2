//! [`SecretStore`] on AWS Secrets Manager.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::DateTime as AwsDateTime;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::adapters::aws::{error_code, sdk_error};
use crate::domain::SecretDescription;
use crate::domain::policy::Stage;
use crate::error::{Error, Result};
use crate::ports::{PutOutcome, SecretStore, StageMove};

const SYSTEM: &str = "secretsmanager";

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        SecretsManagerStore { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the secret with `value` as AWSCURRENT, or, when it exists, puts `value` as its new
    /// AWSCURRENT version. Returns whether it created the secret.
    pub async fn create_or_put(&self, name: &str, value: &SecretString) -> Result<bool> {
        let created = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value.expose_secret())
            .send()
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(err) if error_code(&err) == Some("ResourceExistsException") => {
                self.client
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(value.expose_secret())
                    .send()
                    .await
                    .map_err(|err| sdk_error(SYSTEM, &format!("PutSecretValue({name})"), &err))?;
                Ok(false)
            }
            Err(err) => Err(sdk_error(SYSTEM, &format!("CreateSecret({name})"), &err)),
        }
    }

    pub async fn tag(&self, secret_id: &str, tags: &[(&str, String)]) -> Result<()> {
        let tags = tags
            .iter()
            .map(|(key, value)| {
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(*key)
                    .value(value)
                    .build()
            })
            .collect();
        self.client
            .tag_resource()
            .secret_id(secret_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, &format!("TagResource({secret_id})"), &err))?;
        Ok(())
    }

    /// RotateSecret: with `schedule`, (re)configures rotation; returns the id of the new pending version.
    pub async fn rotate(
        &self,
        secret_id: &str,
        rotator_arn: Option<&str>,
        schedule: Option<Schedule>,
        immediately: bool,
        token: Option<&str>,
    ) -> Result<Option<String>> {
        let rules = schedule.map(|schedule| match schedule {
            Schedule::EveryDays(days) => {
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .automatically_after_days(days)
                    .build()
            }
            Schedule::Expression(expression) => {
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .schedule_expression(expression)
                    .build()
            }
        });
        let out = self
            .client
            .rotate_secret()
            .secret_id(secret_id)
            .set_rotation_lambda_arn(rotator_arn.map(str::to_owned))
            .set_rotation_rules(rules)
            .rotate_immediately(immediately)
            .set_client_request_token(token.map(str::to_owned))
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, &format!("RotateSecret({secret_id})"), &err))?;
        Ok(out.version_id().map(str::to_owned))
    }
}

/// A rotation schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    EveryDays(i64),
    /// `rate(30 days)` or `cron(...)`.
    Expression(String),
}

/// DescribeSecret and ListSecrets answer with the same fields in two SDK types; one mapping serves both.
macro_rules! description {
    ($out:expr, $fallback_name:expr) => {{
        let out = $out;
        let rules = out.rotation_rules();
        SecretDescription {
            arn: out.arn().unwrap_or_default().to_owned(),
            name: out.name().unwrap_or($fallback_name).to_owned(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            rotation_lambda_arn: out.rotation_lambda_arn().map(str::to_owned),
            rotate_every_days: rules.and_then(|r| r.automatically_after_days()),
            schedule_expression: rules
                .and_then(|r| r.schedule_expression())
                .map(str::to_owned),
            created: out.created_date().and_then(to_chrono),
            last_rotated: out.last_rotated_date().and_then(to_chrono),
            next_rotation: out.next_rotation_date().and_then(to_chrono),
            versions: out
                .secret_versions_to_stages_map()
                .map(|map| {
                    map.iter()
                        .map(|(id, stages)| (id.clone(), stages.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            tags: out
                .tags()
                .iter()
                .filter_map(|tag| {
                    Some((
                        tag.key()?.to_owned(),
                        tag.value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect(),
        }
    }};
}

// After the macro, which must come first in the file.
impl SecretsManagerStore {
    /// What DescribeSecret tells of the secret, or `None` when there is no such secret.
    pub async fn describe_if_exists(&self, name: &str) -> Result<Option<SecretDescription>> {
        match self.client.describe_secret().secret_id(name).send().await {
            Ok(out) => Ok(Some(description!(&out, name))),
            Err(err) if error_code(&err) == Some("ResourceNotFoundException") => Ok(None),
            Err(err) => Err(sdk_error(SYSTEM, &format!("DescribeSecret({name})"), &err)),
        }
    }
}

/// The two SDK shapes name their version map differently.
trait VersionStages {
    fn secret_versions_to_stages_map(
        &self,
    ) -> Option<&std::collections::HashMap<String, Vec<String>>>;
}

impl VersionStages for aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput {
    fn secret_versions_to_stages_map(
        &self,
    ) -> Option<&std::collections::HashMap<String, Vec<String>>> {
        self.version_ids_to_stages()
    }
}

impl VersionStages for aws_sdk_secretsmanager::types::SecretListEntry {
    fn secret_versions_to_stages_map(
        &self,
    ) -> Option<&std::collections::HashMap<String, Vec<String>>> {
        self.secret_versions_to_stages()
    }
}

impl SecretStore for SecretsManagerStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription> {
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, &format!("DescribeSecret({secret_id})"), &err))?;
        Ok(description!(&out, secret_id))
    }

    async fn list(&self, name_prefix: Option<&str>) -> Result<Vec<SecretDescription>> {
        // The name filter is a case-sensitive prefix match: the pages then hold only the prefix's
        // secrets, however many others the account has.
        let filter = name_prefix.map(|prefix| {
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(prefix)
                .build()
        });
        let pages = self
            .client
            .list_secrets()
            .set_filters(filter.map(|filter| vec![filter]))
            .max_results(100)
            .into_paginator()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|err| sdk_error(SYSTEM, "ListSecrets", &err))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.secret_list())
            .map(|entry| description!(entry, ""))
            .collect())
    }

    async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        let pages = self
            .client
            .list_secret_version_ids()
            .secret_id(secret_id)
            .into_paginator()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|err| {
                sdk_error(SYSTEM, &format!("ListSecretVersionIds({secret_id})"), &err)
            })?;
        Ok(pages
            .iter()
            .flat_map(|page| page.versions())
            .find(|v| v.version_id() == Some(version_id))
            .and_then(|v| v.created_date())
            .and_then(to_chrono))
    }

    async fn value(
        &self,
        secret_id: &str,
        stage: Stage,
        version_id: Option<&str>,
    ) -> Result<Option<SecretString>> {
        let operation = || format!("GetSecretValue({secret_id}, {stage})");
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            // The placeholder that rotate-secret creates has no value: Secrets Manager says "not found".
            Err(err) if error_code(&err) == Some("ResourceNotFoundException") => return Ok(None),
            Err(err) => return Err(sdk_error(SYSTEM, &operation(), &err)),
        };
        match (out.secret_string(), out.secret_binary()) {
            (Some(text), _) => Ok(Some(SecretString::from(text.to_owned()))),
            (None, Some(_)) => Err(Error::config(
                out.name().unwrap_or(secret_id),
                format!("{stage} value"),
                "is stored as SecretBinary",
                "store the managed secret's JSON as SecretString (put-secret-value --secret-string)",
            )),
            (None, None) => Ok(None),
        }
    }

    async fn unlabelled_value(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<SecretString>> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_id(version_id)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .secret_string()
                .map(|text| SecretString::from(text.to_owned()))),
            Err(err) if error_code(&err) == Some("ResourceNotFoundException") => Ok(None),
            Err(err) => Err(sdk_error(
                SYSTEM,
                &format!("GetSecretValue({secret_id}, version {version_id})"),
                &err,
            )),
        }
    }

    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
        rotation_token: Option<&str>,
    ) -> Result<PutOutcome> {
        let result = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value.expose_secret())
            .version_stages(crate::domain::policy::AWSPENDING)
            .set_rotation_token(rotation_token.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Stored),
            // The version already holds another value: a concurrent createSecret stored its key first.
            Err(err) if error_code(&err) == Some("ResourceExistsException") => {
                Ok(PutOutcome::LostRace)
            }
            Err(err) => Err(sdk_error(
                SYSTEM,
                &format!("PutSecretValue({secret_id})"),
                &err,
            )),
        }
    }

    async fn put_staged(&self, secret_id: &str, value: &SecretString) -> Result<String> {
        let out = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(value.expose_secret())
            .version_stages(crate::domain::policy::KEYROT_STAGED)
            .send()
            .await
            .map_err(|err| {
                sdk_error(
                    SYSTEM,
                    &format!("PutSecretValue({secret_id}, KEYROT_STAGED)"),
                    &err,
                )
            })?;
        Ok(out.version_id().unwrap_or_default().to_owned())
    }

    async fn move_stage(
        &self,
        secret_id: &str,
        stage: Stage,
        movement: StageMove<'_>,
    ) -> Result<()> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage.as_str())
            .set_move_to_version_id(movement.to().map(str::to_owned))
            .set_remove_from_version_id(movement.from().map(str::to_owned))
            .send()
            .await
            .map_err(|err| {
                sdk_error(
                    SYSTEM,
                    &format!("UpdateSecretVersionStage({secret_id}, {stage})"),
                    &err,
                )
            })?;
        Ok(())
    }

    async fn untag(&self, secret_id: &str, tag_keys: &[&str]) -> Result<()> {
        self.client
            .untag_resource()
            .secret_id(secret_id)
            .set_tag_keys(Some(tag_keys.iter().map(|k| (*k).to_owned()).collect()))
            .send()
            .await
            .map_err(|err| sdk_error(SYSTEM, &format!("UntagResource({secret_id})"), &err))?;
        Ok(())
    }
}

fn to_chrono(time: &AwsDateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}
