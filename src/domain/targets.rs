//! Deployment targets: the places services read the key from (docs/secret-format.md, "Targets").

use serde_json::Value;

use crate::domain::fields::{Fields, IdShape};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Vercel(VercelTarget),
    Render(RenderTarget),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VercelTarget {
    pub project: String,
    pub team_id: Option<String>,
    pub env_key: String,
    /// production, preview, development.
    pub environments: Vec<String>,
    pub sensitive: bool,
    pub redeploy: bool,
    /// With `redeploy` false: how long after a change the service surely runs the new value by
    /// itself (its own deploys or restarts). Without it, only `keyrot confirm` says so.
    pub restart_within_hours: Option<u32>,
    pub token_secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderTarget {
    pub service_id: String,
    pub env_key: String,
    pub deploy: bool,
    /// With `deploy` false: as Vercel's `restart_within_hours`.
    pub restart_within_hours: Option<u32>,
    pub token_secret: String,
}

const VERCEL_ENVIRONMENTS: [&str; 3] = ["production", "preview", "development"];

/// Which redeploy of a target a `DEPLOY#<token>#<record>` item names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeploy {
    /// The one setSecret started with the pending key.
    Rotation,
    /// The one a rollback started to put the current key back.
    Rollback,
}

impl Redeploy {
    pub const ALL: [Redeploy; 2] = [Redeploy::Rotation, Redeploy::Rollback];
}

impl TargetSpec {
    /// A stable, non-secret name for the target: `vercel:<project>:<ENV_KEY>`, used in audit items and
    /// in the `DEPLOY#<token>#<target>` records.
    pub fn label(&self) -> String {
        match self {
            TargetSpec::Vercel(v) => format!("vercel:{}:{}", v.project, v.env_key),
            TargetSpec::Render(r) => format!("render:{}:{}", r.service_id, r.env_key),
        }
    }

    /// The name of this target's `redeploy` record: its label, prefixed `rollback:` for a rollback's.
    pub fn deploy_record(&self, redeploy: Redeploy) -> String {
        match redeploy {
            Redeploy::Rotation => self.label(),
            Redeploy::Rollback => format!("rollback:{}", self.label()),
        }
    }

    /// Whether a changed key reaches the service only through a new deployment that keyrot starts.
    pub fn redeploys(&self) -> bool {
        match self {
            TargetSpec::Vercel(v) => v.redeploy,
            TargetSpec::Render(r) => r.deploy,
        }
    }

    /// For a target keyrot does not redeploy, how long after a change the service surely runs the new
    /// value by itself, if the secret says.
    pub fn restart_within_hours(&self) -> Option<u32> {
        match self {
            TargetSpec::Vercel(v) => v.restart_within_hours,
            TargetSpec::Render(r) => r.restart_within_hours,
        }
    }

    /// Parses the `targets` array of a managed secret; every error names `targets[i].field`.
    pub fn parse_all(secret: &str, targets: &[Value]) -> Result<Vec<TargetSpec>> {
        targets
            .iter()
            .enumerate()
            .map(|(i, target)| Self::parse(secret, i, target))
            .collect()
    }

    fn parse(secret: &str, index: usize, target: &Value) -> Result<TargetSpec> {
        let Some(object) = target.as_object() else {
            return Err(Error::config(
                secret,
                format!("AWSCURRENT value: targets[{index}]"),
                "must be an object",
                "describe each target as {\"type\": \"vercel\"|\"render\", ...}",
            ));
        };
        let target = Fields::new(
            secret,
            format!("AWSCURRENT value: targets[{index}]."),
            object,
        );
        match target.optional_str("type")?.unwrap_or_default().as_str() {
            "vercel" => parse_vercel(&target).map(TargetSpec::Vercel),
            "render" => parse_render(&target).map(TargetSpec::Render),
            _ => Err(target.bad(
                "type",
                "is not a target keyrot knows",
                "set type to vercel or render",
            )),
        }
    }
}

fn parse_vercel(target: &Fields<'_>) -> Result<VercelTarget> {
    let environments = match target.get("environments") {
        None => vec!["production".to_owned()],
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|e| match e.as_str() {
                Some(name) if VERCEL_ENVIRONMENTS.contains(&name) => Ok(name.to_owned()),
                _ => Err(target.bad(
                    "environments",
                    "holds an unknown environment",
                    "use production, preview and/or development",
                )),
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(target.bad(
                "environments",
                "must be a non-empty array",
                "use for example [\"production\", \"preview\"]",
            ));
        }
    };
    Ok(VercelTarget {
        project: target.required_id("project", IdShape::VercelProject)?,
        team_id: target.optional_id("team_id", IdShape::VercelTeam)?,
        env_key: env_key(target)?,
        environments,
        sensitive: target.boolean("sensitive", true)?,
        redeploy: target.boolean("redeploy", true)?,
        restart_within_hours: target.optional_hours("restart_within_hours")?,
        token_secret: target.required_str(
            "token_secret",
            "name the secret that holds the Vercel token",
        )?,
    })
}

fn parse_render(target: &Fields<'_>) -> Result<RenderTarget> {
    Ok(RenderTarget {
        service_id: target.required_id("service_id", IdShape::RenderService)?,
        env_key: env_key(target)?,
        deploy: target.boolean("deploy", true)?,
        restart_within_hours: target.optional_hours("restart_within_hours")?,
        token_secret: target.required_str(
            "token_secret",
            "name the secret that holds the Render API key",
        )?,
    })
}

fn env_key(target: &Fields<'_>) -> Result<String> {
    let key = target.required_str(
        "env_key",
        "name the environment variable, such as OPENAI_API_KEY",
    )?;
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit())
    {
        Ok(key)
    } else {
        Err(target.bad(
            "env_key",
            "is not a valid environment variable name",
            "use letters, digits and underscores, such as OPENAI_API_KEY",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_both_targets_with_defaults() {
        let targets = TargetSpec::parse_all(
            "s",
            &[
                json!({"type": "vercel", "project": "prj_1", "team_id": "team_1", "env_key": "OPENAI_API_KEY",
                    "environments": ["production", "preview"], "token_secret": "keyrot-admin/vercel"}),
                json!({"type": "render", "service_id": "srv-1", "env_key": "OPENAI_API_KEY", "token_secret": "t"}),
            ],
        )
        .expect("valid");
        assert_eq!(targets[0].label(), "vercel:prj_1:OPENAI_API_KEY");
        let TargetSpec::Vercel(vercel) = &targets[0] else {
            panic!("vercel")
        };
        assert!(vercel.sensitive && vercel.redeploy);
        assert_eq!(vercel.environments, ["production", "preview"]);
        assert!(targets[1].redeploys());
    }

    #[test]
    fn refusals_name_the_target_and_field() {
        let cases = [
            (json!({"type": "netlify"}), "targets[0].type"),
            (
                json!({"type": "vercel", "env_key": "K", "token_secret": "t"}),
                "targets[0].project: is missing",
            ),
            (
                json!({"type": "vercel", "project": "p", "env_key": "K", "token_secret": "t", "environments": ["staging"]}),
                "targets[0].environments",
            ),
            (
                json!({"type": "render", "service_id": "srv-1", "env_key": "OPENAI-KEY", "token_secret": "t"}),
                "targets[0].env_key",
            ),
            (
                json!({"type": "render", "service_id": "srv-1", "env_key": "K", "token_secret": "t", "deploy": "yes"}),
                "targets[0].deploy",
            ),
            (json!("vercel"), "targets[0]: must be an object"),
        ];
        for (target, expected) in cases {
            let err = TargetSpec::parse_all("prod/x", std::slice::from_ref(&target))
                .expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains(expected) && text.contains("prod/x") && text.contains("fix:"),
                "{target}: {text}"
            );
        }
    }
}
