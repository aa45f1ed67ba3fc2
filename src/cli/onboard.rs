//! `keyrot onboard`: put a secret under keyrot's management in design.md's format, after checking that
//! its key and admin credentials work.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::adapters::secrets_manager::Schedule;
use crate::cli::args::{self, TargetArg};
use crate::cli::context::{Operator, read_key};
use crate::domain::ManagedSecret;
use crate::domain::keys::KeyView;
use crate::domain::policy::TAG_GRACE_HOURS;
use crate::domain::targets::TargetSpec;
use crate::error::{Error, Result};
use crate::ports::{KeyIssuer, Target};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Provider {
    Openai,
    Anthropic,
    Generic,
}

#[derive(Debug, Args)]
pub struct OnboardArgs {
    /// The secret's name (created when it does not exist).
    name: String,
    #[arg(long, value_enum)]
    provider: Provider,
    /// OpenAI: the project the key belongs to (proj_...).
    #[arg(long, required_if_eq("provider", "openai"))]
    project_id: Option<String>,
    /// OpenAI/Anthropic: the secret that holds the admin key.
    #[arg(long, required_if_eq_any([("provider", "openai"), ("provider", "anthropic")]))]
    admin_key_secret: Option<String>,
    /// OpenAI: the project API key id (key_...) of the current key, so keyrot can revoke it later.
    #[arg(long)]
    api_key_id: Option<String>,
    /// Generic: length of the random part of new keys.
    #[arg(long)]
    length: Option<u32>,
    /// Generic: prefix of new keys.
    #[arg(long)]
    prefix: Option<String>,
    /// Generic: URL that answers 2xx to a valid key sent as a bearer token.
    #[arg(long)]
    validate_url: Option<String>,
    /// A Vercel target, PROJECT:ENV_KEY (repeatable).
    #[arg(long = "vercel", value_name = "PROJECT:ENV_KEY", value_parser = args::target)]
    vercel: Vec<TargetArg>,
    /// Vercel team id of the --vercel targets.
    #[arg(long)]
    vercel_team: Option<String>,
    /// The secret that holds the Vercel token.
    #[arg(long, default_value = "keyrot/admin/vercel")]
    vercel_token_secret: String,
    /// Vercel environments to write, comma-separated.
    #[arg(long, default_value = "production,preview", value_delimiter = ',')]
    vercel_env: Vec<String>,
    /// A Render target, SERVICE_ID:ENV_KEY (repeatable).
    #[arg(long = "render", value_name = "SERVICE:ENV_KEY", value_parser = args::target)]
    render: Vec<TargetArg>,
    /// The secret that holds the Render API key.
    #[arg(long, default_value = "keyrot/admin/render")]
    render_token_secret: String,
    /// Rotation schedule as an expression: 'rate(30 days)', 'rate(12 hours)' (4 or more) or
    /// 'cron(0 4 1 * ? *)'.
    #[arg(
        long,
        conflicts_with = "every_days",
        required_unless_present = "every_days",
        value_parser = args::schedule
    )]
    schedule: Option<String>,
    /// Rotation schedule in days, 1 to 1000 (Secrets Manager's limits).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1000))]
    every_days: Option<i64>,
    /// Grace period of old keys, in hours, 0 or more (tag keyrot:grace-hours).
    #[arg(long, default_value_t = 24.0, value_parser = args::hours)]
    grace_hours: f64,
    /// Read the current key from this file instead of standard input.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// The rotator Lambda's ARN; by default KEYROT_ROTATOR_ARN, else the stack's output RotatorArn.
    #[arg(long)]
    rotator_arn: Option<String>,
    /// Rotate right away instead of only testing the configuration.
    #[arg(long)]
    rotate_now: bool,
}

fn document(args: &OnboardArgs, key: &SecretString) -> Value {
    let mut targets = Vec::new();
    for target in &args.vercel {
        targets.push(json!({"type": "vercel", "project": target.id, "team_id": args.vercel_team, "env_key": target.env_key,
            "environments": args.vercel_env, "sensitive": true, "redeploy": true, "token_secret": args.vercel_token_secret}));
    }
    for target in &args.render {
        targets.push(
            json!({"type": "render", "service_id": target.id, "env_key": target.env_key, "deploy": true,
            "token_secret": args.render_token_secret}),
        );
    }
    let mut value = json!({"api_key": key.expose_secret(), "targets": targets});
    match args.provider {
        Provider::Openai => {
            value["provider"] = json!("openai");
            value["openai"] =
                json!({"project_id": args.project_id, "admin_key_secret": args.admin_key_secret});
            if let Some(id) = &args.api_key_id {
                value["api_key_id"] = json!(id);
            }
        }
        Provider::Anthropic => {
            value["provider"] = json!("anthropic");
            value["anthropic"] = json!({"admin_key_secret": args.admin_key_secret});
        }
        Provider::Generic => {
            value["provider"] = json!("generic");
            let mut generic = json!({});
            if let Some(length) = args.length {
                generic["length"] = json!(length);
            }
            if let Some(prefix) = &args.prefix {
                generic["prefix"] = json!(prefix);
            }
            if let Some(url) = &args.validate_url {
                generic["validate_url"] = json!(url);
            }
            value["generic"] = generic;
        }
    }
    value
}

pub async fn run(args: OnboardArgs, stack: &str) -> Result<()> {
    let key = read_key(args.key_file.as_deref())?;
    let operator = Operator::connect(stack).await?;
    // Known before anything is checked or written, so that a missing rotator changes nothing.
    let rotator_arn = operator.rotator_arn(&args.name, args.rotator_arn.as_deref())?;
    let ports = &operator.ports;
    let text = SecretString::from(document(&args, &key).to_string());
    // The same parser the rotator uses: what onboard writes, the rotator reads.
    let managed = ManagedSecret::parse(&args.name, "new", &text)?;
    let targets = TargetSpec::parse_all(&args.name, &managed.targets)?;
    ports
        .issuer
        .validate(&args.name, &managed, &managed.api_key)
        .await?;
    // Listing what keyrot minted exercises the admin key (OpenAI); identifying the key does (Anthropic).
    ports.issuer.minted_keys(&args.name, &managed).await?;
    let key_id = ports
        .issuer
        .identify(&args.name, &managed, &managed.api_key)
        .await?;
    let text = match key_id {
        Some(id) => {
            let mut value: Value = serde_json::from_str(text.expose_secret()).map_err(|err| {
                Error::protocol(
                    &args.name,
                    format!("could not re-read the new value: {err}"),
                )
            })?;
            value["key_id"] = json!(id);
            SecretString::from(value.to_string())
        }
        None => text,
    };

    // Reading what each target holds exercises its token (and finds its project or service), so a
    // bad token or id refuses here, with nothing written, rather than in the first rotation.
    for target in &targets {
        ports.targets.held_fingerprint(&args.name, target).await?;
    }

    let created = ports.store.create_or_put(&args.name, &text).await?;
    ports
        .store
        .tag(
            &args.name,
            &[(TAG_GRACE_HOURS, format!("{}", args.grace_hours))],
        )
        .await?;
    let schedule = match (&args.schedule, args.every_days) {
        (Some(expression), _) => Schedule::Expression(expression.clone()),
        (None, Some(days)) => Schedule::EveryDays(days),
        (None, None) => Schedule::EveryDays(90),
    };
    ports
        .store
        .rotate(
            &args.name,
            Some(&rotator_arn),
            Some(schedule),
            args.rotate_now,
        )
        .await?;
    println!(
        "{} {} ({}, key {}); rotation enabled with {}{}.",
        if created { "Created" } else { "Updated" },
        args.name,
        managed.provider.name(),
        KeyView::of(&managed.api_key).redacted,
        rotator_arn,
        if args.rotate_now {
            ", rotating now"
        } else {
            "; Secrets Manager tests the configuration now (no rotation yet)"
        }
    );
    Ok(())
}
