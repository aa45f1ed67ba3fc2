//! `keyrot onboard`: put a secret under keyrot's management in keyrot's format (docs/secret-format.md), after checking that
//! its key and admin credentials work.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::adapters::secrets_manager::Schedule;
use crate::cli::args::{self, TargetArg};
use crate::cli::context::{Deployment, Session, read_key};
use crate::cli::policy;
use crate::domain::ManagedSecret;
use crate::domain::ProviderSettings;
use crate::domain::Trigger;
use crate::domain::admin::{TAG_SERVES, secret_name_of};
use crate::domain::audit::{Action, AuditEvent, Outcome};
use crate::domain::credential::{CredentialKind, TAG_ROTATED};
use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::provenance::{KeyIds, KeyRecord, Origin};
use crate::domain::targets::TargetSpec;
use crate::domain::tier::Tier;
use crate::error::{Error, Result};
use crate::ports::Ports;
use crate::ports::{AuditLog, Clock, KeyIssuer, SecretStore, Target};
use crate::wiring::Aws;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Provider {
    Openai,
    Anthropic,
    Generic,
    /// A PostgreSQL role's password, with alternating users (the key on stdin is the password).
    Postgres,
    /// A Stripe secret or restricted key, staged by a person at each rotation.
    Stripe,
    /// A GitHub personal access token, staged by a person at each rotation.
    Github,
    /// keyrot's own OpenAI admin key (under the admin prefix), minted through the Admin API.
    OpenaiAdmin,
    /// keyrot's own Anthropic admin key (under the admin prefix), staged by a person.
    AnthropicAdmin,
    /// keyrot's own Vercel token (under the admin prefix), staged by a person.
    VercelToken,
    /// keyrot's own Render API key (under the admin prefix), staged by a person.
    RenderToken,
}

impl Provider {
    /// The credential kind of keyrot's own credentials; `None` for a managed secret's provider.
    fn credential(self) -> Option<CredentialKind> {
        match self {
            Provider::OpenaiAdmin => Some(CredentialKind::OpenAiAdmin),
            Provider::AnthropicAdmin => Some(CredentialKind::AnthropicAdmin),
            Provider::VercelToken => Some(CredentialKind::VercelToken),
            Provider::RenderToken => Some(CredentialKind::RenderToken),
            _ => None,
        }
    }
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
    /// Stripe: the account the key belongs to (acct_...) [default: the one Stripe names for the key].
    #[arg(long)]
    stripe_account: Option<String>,
    /// GitHub: the user the token belongs to [default: the one GitHub names for the token].
    #[arg(long)]
    github_login: Option<String>,
    /// Postgres: the role the application logs in as [default: the existing value's].
    #[arg(long)]
    username: Option<String>,
    /// Postgres: the database's host (the master secret's own).
    #[arg(long)]
    host: Option<String>,
    /// Postgres: the database's port [default: 5432].
    #[arg(long)]
    port: Option<u16>,
    /// Postgres: the application's database.
    #[arg(long)]
    dbname: Option<String>,
    /// Postgres: the ARN or name of the admin secret with the master credentials (masterarn).
    #[arg(long)]
    master_secret: Option<String>,
    /// Postgres: require (default), verify-full, or disable (only if the master secret allows it).
    #[arg(long)]
    sslmode: Option<String>,
    /// Postgres: what targets receive, with {username}, {password}, {host}, {port}, {dbname}.
    #[arg(long)]
    url_template: Option<String>,
    /// A Vercel target, PROJECT:ENV_KEY (repeatable).
    #[arg(long = "vercel", value_name = "PROJECT:ENV_KEY", value_parser = args::target)]
    vercel: Vec<TargetArg>,
    /// Vercel team id of the --vercel targets.
    #[arg(long)]
    vercel_team: Option<String>,
    /// The secret that holds the Vercel token [default for a new target: keyrot-admin/vercel].
    #[arg(long)]
    vercel_token_secret: Option<String>,
    /// Vercel environments to write, comma-separated [default for a new target: production,preview].
    #[arg(long, value_delimiter = ',')]
    vercel_env: Option<Vec<String>>,
    /// A Render target, SERVICE_ID:ENV_KEY (repeatable).
    #[arg(long = "render", value_name = "SERVICE:ENV_KEY", value_parser = args::target)]
    render: Vec<TargetArg>,
    /// The secret that holds the Render API key [default for a new target: keyrot-admin/render].
    #[arg(long)]
    render_token_secret: Option<String>,
    /// Rotation schedule as an expression: 'rate(30 days)', 'rate(12 hours)' (4 or more) or
    /// 'cron(0 4 1 * ? *)'.
    #[arg(
        long,
        conflicts_with = "every_days",
        required_unless_present_any = ["every_days", "tier"],
        value_parser = args::schedule
    )]
    schedule: Option<String>,
    /// The secret's tier: its schedule, grace and maximum age (prod-critical, prod, staging, dev, or
    /// the tiers KEYROT_TIERS defines). --every-days, --schedule and --grace-hours override it.
    #[arg(long)]
    tier: Option<String>,
    /// Rotation schedule in days, 1 to 1000 (Secrets Manager's limits).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1000))]
    every_days: Option<i64>,
    /// Grace period of old keys, in hours, 0 or more (tag keyrot:grace-hours). Without it, a secret
    /// keeps the grace it has; a new one gets the deployment's default (KEYROT_DEFAULT_GRACE_HOURS).
    #[arg(long, value_parser = args::hours, allow_negative_numbers = true)]
    grace_hours: Option<f64>,
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
            "environments": args.vercel_env, "token_secret": args.vercel_token_secret}));
    }
    for target in &args.render {
        targets.push(
            json!({"type": "render", "service_id": target.id, "env_key": target.env_key,
            "token_secret": args.render_token_secret}),
        );
    }
    if let Provider::Postgres = args.provider {
        // AWS's multi-user format; a flag not given (null) keeps the existing value's field.
        return json!({"engine": "postgres", "password": key.expose_secret(), "targets": targets,
            "username": args.username, "host": args.host, "port": args.port, "dbname": args.dbname,
            "masterarn": args.master_secret,
            "postgres": {"sslmode": args.sslmode, "url_template": args.url_template}});
    }
    if let Some(kind) = args.provider.credential() {
        let mut value = json!({"provider": kind.provider().as_str()});
        value[kind.key_field()] = json!(key.expose_secret());
        return value;
    }
    let mut value = json!({"api_key": key.expose_secret(), "targets": targets});
    match args.provider {
        // Returned above.
        Provider::Postgres
        | Provider::OpenaiAdmin
        | Provider::AnthropicAdmin
        | Provider::VercelToken
        | Provider::RenderToken => {}
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
        Provider::Stripe => {
            value["provider"] = json!("stripe");
            value["stripe"] = json!({"account": args.stripe_account});
        }
        Provider::Github => {
            value["provider"] = json!("github");
            value["github"] = json!({"login": args.github_login});
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

/// What onboarding an existing secret writes: `onboarded` laid over the `existing` value, so that every
/// field onboard does not set is kept as it is (docs/secret-format.md: unknown fields survive from version to
/// version). Targets named again keep their unknown fields too; with no target flags, the targets already
/// configured stay. A field onboard leaves null (a flag not given) keeps the existing value. When the key
/// itself changes, the ids that named the old key (`key_id`, `api_key_id`) go with it.
fn merged(existing: Option<&Value>, mut onboarded: Value) -> Value {
    let Some(Value::Object(existing)) = existing else {
        if let Some(targets) = onboarded.get_mut("targets").and_then(Value::as_array_mut) {
            targets.iter_mut().for_each(with_defaults);
        }
        return onboarded;
    };
    let mut value = existing.clone();
    let key_field = KEY_FIELDS
        .into_iter()
        .find(|field| onboarded.get(field).is_some());
    // The onboarded key is the only one the value keeps: a reader of another key field would find
    // the old key there.
    if let Some(kept) = key_field {
        for field in KEY_FIELDS.into_iter().filter(|field| *field != kept) {
            value.remove(field);
        }
    }
    if key_field.and_then(|field| value.get(field)) != key_field.and_then(|f| onboarded.get(f)) {
        value.remove("key_id");
        value.remove("api_key_id");
    }
    if onboarded["targets"].as_array().is_some_and(Vec::is_empty) {
        if let Some(fields) = onboarded.as_object_mut() {
            fields.remove("targets");
        }
    } else if let Some(new_targets) = onboarded.get_mut("targets").and_then(Value::as_array_mut) {
        let old_targets = value
            .get("targets")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for target in new_targets.iter_mut() {
            match old_targets.iter().find(|old| same_target(old, target)) {
                Some(old) => *target = overlay(old.clone(), target.take()),
                None => with_defaults(target),
            }
        }
    }
    overlay(Value::Object(value), onboarded)
}

/// The fields a value may keep its key in (a database's `password` apart).
const KEY_FIELDS: [&str; 3] = ["api_key", "admin_key", "token"];

/// `top` written over `base`, object by object; a null in `top` leaves `base`'s value.
fn overlay(base: Value, top: Value) -> Value {
    match (base, top) {
        (Value::Object(mut base), Value::Object(top)) => {
            for (field, value) in top {
                let merged = match base.remove(&field) {
                    Some(old) if value.is_object() || value.is_null() => overlay(old, value),
                    _ => value,
                };
                if !merged.is_null() {
                    base.insert(field, merged);
                }
            }
            Value::Object(base)
        }
        (base, Value::Null) => base,
        (_, top) => top,
    }
}

/// A new target gets a default for each option onboard was not given; a target the secret already
/// had keeps its own settings, so onboarding again never resets them.
fn with_defaults(target: &mut Value) {
    if let Some(target) = target.as_object_mut() {
        target.retain(|_, field| !field.is_null());
        let defaults = match target.get("type").and_then(Value::as_str) {
            Some("vercel") => json!({"environments": ["production", "preview"], "sensitive": true,
                "redeploy": true, "token_secret": "keyrot-admin/vercel"}),
            Some("render") => json!({"deploy": true, "token_secret": "keyrot-admin/render"}),
            _ => return,
        };
        if let Value::Object(defaults) = defaults {
            for (field, default) in defaults {
                target.entry(field).or_insert(default);
            }
        }
    }
}

fn same_target(a: &Value, b: &Value) -> bool {
    ["type", "project", "service_id", "env_key"]
        .iter()
        .all(|field| a.get(field) == b.get(field))
}

/// Everything the first rotation would need, exercised now so that a bad key, admin key, token or id
/// refuses here with nothing written: the key itself, the admin key (listing what keyrot minted for
/// OpenAI; identifying the key for Anthropic, whose id is returned), and each target's token (reading
/// what the target holds also finds its project or service).
async fn check_before_writing(
    ports: &Ports<Aws>,
    name: &str,
    managed: &ManagedSecret,
    targets: &[TargetSpec],
) -> Result<Option<String>> {
    ports
        .issuer
        .validate(name, managed, &managed.api_key)
        .await?;
    ports.issuer.minted_keys(name, managed).await?;
    let id = ports
        .issuer
        .identify(name, managed, &managed.api_key)
        .await?;
    for target in targets {
        ports.targets.held_fingerprint(name, target).await?;
    }
    Ok(id)
}

/// A staged key must come from the account of the key it replaces: the value records that account
/// (Stripe) or user (GitHub) as the provider names it now. One given by a flag or the existing value
/// must be the key's own.
async fn record_owner(
    ports: &Ports<Aws>,
    name: &str,
    managed: &ManagedSecret,
    value: &mut Value,
) -> Result<()> {
    let issuer = &ports.issuer;
    let (block, field, given, found) = match &managed.provider {
        ProviderSettings::Stripe(stripe) => {
            let found = issuer.stripe.account_of(name, &managed.api_key).await?;
            ("stripe", "account", stripe.account.clone(), found)
        }
        ProviderSettings::GitHub(github) => {
            let info = issuer.github.token_info(name, &managed.api_key).await?;
            ("github", "login", github.login.clone(), Some(info.login))
        }
        _ => return Ok(()),
    };
    match (given, found) {
        (Some(given), Some(found)) if given != found => Err(Error::config(
            name,
            format!("{block}.{field}"),
            format!("is {given}, but the key belongs to {found}"),
            format!("give the key of {given}, or onboard with --{block}-{field} {found}"),
        )),
        (None, Some(found)) => {
            value[block] = json!({ field: found });
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The admin and token secrets a value names.
fn admin_secrets<'a>(managed: &'a ManagedSecret, targets: &'a [TargetSpec]) -> Vec<&'a str> {
    let provider = match &managed.provider {
        ProviderSettings::OpenAi(openai) => Some(openai.admin_key_secret.as_str()),
        ProviderSettings::Anthropic(anthropic) => Some(anthropic.admin_key_secret.as_str()),
        ProviderSettings::Generic(_)
        | ProviderSettings::Stripe(_)
        | ProviderSettings::GitHub(_)
        | ProviderSettings::Credential(_) => None,
        ProviderSettings::Postgres(postgres) => Some(postgres.master_secret.as_str()),
    };
    let tokens = targets.iter().map(|target| match target {
        TargetSpec::Vercel(vercel) => vercel.token_secret.as_str(),
        TargetSpec::Render(render) => render.token_secret.as_str(),
    });
    let mut all: Vec<&str> = provider.into_iter().chain(tokens).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Lets the admin secret `admin` serve `name`: adds `name`'s prefix to its `keyrot-admin:serves` tag
/// when the caller may tag it, and says so. Anything it cannot do is left for the checks that follow,
/// which refuse with the command that would allow it.
async fn serve(ports: &Ports<Aws>, admin_prefix: &str, admin: &str, name: &str) {
    if !secret_name_of(admin).starts_with(admin_prefix) {
        return;
    }
    let Ok(Some(described)) = ports.store.describe_if_exists(admin).await else {
        return;
    };
    let serves = described.tags.get(TAG_SERVES).cloned().unwrap_or_default();
    if serves
        .split_whitespace()
        .any(|prefix| name.starts_with(prefix))
    {
        return;
    }
    let own = name.rfind('/').map_or(name, |slash| &name[..=slash]);
    let value = format!("{serves} {own}").trim().to_owned();
    match ports.store.tag(admin, &[(TAG_SERVES, value.clone())]).await {
        Ok(()) => println!("Tagged {admin} {TAG_SERVES}=\"{value}\", so that it serves {name}."),
        Err(err) => eprintln!(
            "Could not tag {admin} to serve {name} ({err}); its owner can: aws secretsmanager \
             tag-resource --secret-id {admin} --tags Key={TAG_SERVES},Value=\"{value}\""
        ),
    }
}

/// Audits `onboard`: who put which key under keyrot, with which targets and schedule.
async fn audit_onboard(
    session: &Session,
    name: &str,
    managed: &ManagedSecret,
    targets: &[TargetSpec],
    change: String,
) {
    let ports = &session.ports;
    let arn = match ports.store.describe_if_exists(name).await {
        Ok(Some(described)) => described.arn,
        _ => String::new(),
    };
    let event = AuditEvent::new(
        ports.clock.now(),
        (&arn, name),
        Action::Onboard,
        Outcome::Succeeded,
        "onboard",
    )
    .provider(managed.provider.name())
    .keys(None, Some(&managed.key_view()))
    .triggered(Some(Trigger::Manual))
    .by(&session.actor)
    .targets(targets.iter().map(TargetSpec::label).collect())
    .error(Some(change));
    ports.record_quietly(&event).await;
}

/// Records the onboarded key's provider ids, as this operator gives them (`--api-key-id`) or the
/// provider identified them: the only ids keyrot will later revoke it by. A record that stands for the
/// key (keyrot minted it, or it was onboarded before) keeps its word.
async fn vouch(
    session: &Session,
    args: &OnboardArgs,
    managed: &ManagedSecret,
    key_id: Option<&str>,
) -> Result<()> {
    let ports = &session.ports;
    let record = KeyRecord::new(
        (&args.name, "onboard"),
        &managed.provider,
        &managed.key_view(),
        KeyIds {
            key_id,
            api_key_id: args.api_key_id.as_deref(),
        },
        (Origin::Onboarded, ports.clock.now(), &session.actor),
    );
    if !ports.audit.record_key(&record).await? {
        println!(
            "keyrot already has a record of this key's provider ids for {}; that record stands.",
            args.name
        );
    }
    Ok(())
}

/// Refuses a key another managed secret already holds: each rotation would revoke it under the other
/// secret's services.
async fn refuse_shared_key(session: &Session, name: &str, managed: &ManagedSecret) -> Result<()> {
    let key = managed.key_view().fingerprint;
    let holder = session
        .keeper()
        .managed_secrets()
        .await?
        .into_iter()
        .filter(|item| item.secret.name != name)
        .find(|item| {
            item.current
                .as_ref()
                .is_some_and(|current| current.key_view().fingerprint == key)
        });
    match holder {
        Some(item) => Err(Error::config(
            name,
            "api_key",
            format!(
                "is the key {} already holds: rotating either secret would revoke the key the other serves",
                item.secret.name
            ),
            "create a new key for this secret at the provider (one key per managed secret), and onboard that one",
        )),
        None => Ok(()),
    }
}

/// The AWSCURRENT value of the secret when it exists. Refuses while a rotation is under way (a pending
/// version with a key of its own), since a rotation finishing after onboard would replace its key.
async fn existing_value(ports: &Ports<Aws>, name: &str) -> Result<Option<Value>> {
    let Some(description) = ports.store.describe_if_exists(name).await? else {
        return Ok(None);
    };
    let current = ports.store.value(name, AWSCURRENT, None).await?;
    let pending = match description.version_with(AWSPENDING) {
        Some(version) if description.version_with(AWSCURRENT) != Some(version) => {
            ports.store.value(name, AWSPENDING, Some(version)).await?
        }
        _ => None,
    };
    let current_text = current.as_ref().map(|text| text.expose_secret());
    if let Some(pending) = &pending
        && Some(pending.expose_secret()) != current_text
    {
        return Err(Error::config(
            name,
            "AWSPENDING",
            "a rotation is under way: its pending version holds a new key that would replace the onboarded one",
            format!(
                "let the rotation finish (keyrot status --secret {name}), or clear it with keyrot repair {name}, then onboard again"
            ),
        ));
    }
    // A value that is not a JSON object (a bare key, say) has no fields to keep.
    Ok(current_text.and_then(|text| serde_json::from_str(text).ok()))
}

/// Turns rotation on with the schedule asked for (every 90 days by default); returns it, as words.
/// The secret's tier, grace and schedule as the flags give them (90 days without any), rotation
/// enabled; returns them in words.
async fn apply_policy(
    ports: &Ports<Aws>,
    args: &OnboardArgs,
    tier: Option<&Tier>,
    rotator_arn: &str,
) -> Result<String> {
    let choice = policy::Choice {
        tier,
        schedule: args.schedule.as_deref(),
        every_days: args.every_days,
        grace_hours: args.grace_hours,
        ..policy::Choice::default()
    };
    let fallback = Some(Schedule::EveryDays(90));
    let rotation = (rotator_arn, fallback);
    let schedule = policy::apply(ports, &args.name, &choice, rotation, args.rotate_now).await?;
    Ok(policy::describe(tier, &schedule, &choice.overrides()))
}

pub async fn run(args: OnboardArgs, deployment: &Deployment) -> Result<()> {
    let tiers = policy::tiers()?;
    let tier = match &args.tier {
        Some(name) => Some(tiers.named(&args.name, "--tier", name)?),
        None => None,
    };
    let key = read_key(args.key_file.as_deref())?;
    let session = Session::connect(deployment).await?;
    // Known before anything is checked or written, so that a missing rotator changes nothing.
    let rotator_arn = session.rotator_arn(&args.name, args.rotator_arn.as_deref())?;
    let ports = &session.ports;
    refuse_credential_outside(&args, &session.config.admin_prefix)?;
    let existing = existing_value(ports, &args.name).await?;
    let kept_targets = existing
        .as_ref()
        .filter(|_| args.vercel.is_empty() && args.render.is_empty())
        .and_then(|value| value.get("targets")?.as_array().map(Vec::len))
        .unwrap_or(0);
    let mut value = merged(existing.as_ref(), document(&args, &key));
    // The same parser the rotator uses: what onboard writes, the rotator reads.
    let managed = ManagedSecret::parse(&args.name, "new", &SecretString::from(value.to_string()))?;
    let targets = TargetSpec::parse_all(&args.name, &managed.targets)?;
    refuse_shared_key(&session, &args.name, &managed).await?;
    if args.provider.credential().is_some() {
        refuse_credential_copy(ports, &session.config.admin_prefix, &args.name, &managed).await?;
    }
    for admin in admin_secrets(&managed, &targets) {
        serve(ports, &session.config.admin_prefix, admin, &args.name).await;
    }
    let key_id = check_before_writing(ports, &args.name, &managed, &targets).await?;
    record_owner(ports, &args.name, &managed, &mut value).await?;
    // A database value names its role in username already: AWS's format has no key_id.
    if let Some(id) = key_id.as_ref().filter(|_| managed.login().is_none()) {
        value["key_id"] = json!(id);
    }
    vouch(&session, &args, &managed, key_id.as_deref()).await?;
    let text = SecretString::from(value.to_string());
    let created = ports.store.create_or_put(&args.name, &text).await?;
    if args.provider.credential().is_some() {
        // The owner's consent, which IAM asks for before the rotator may write an admin secret.
        ports
            .store
            .tag(&args.name, &[(TAG_ROTATED, "true".to_owned())])
            .await?;
    }
    let schedule = apply_policy(ports, &args, tier, &rotator_arn).await?;
    let change = format!(
        "{} by keyrot onboard; {schedule}{}{}",
        if created { "created" } else { "updated" },
        args.grace_hours
            .map(|hours| format!("; keyrot:grace-hours={hours}"))
            .unwrap_or_default(),
        if args.rotate_now {
            "; rotating now"
        } else {
            ""
        },
    );
    audit_onboard(&session, &args.name, &managed, &targets, change).await;
    println!(
        "{} {} ({}, key {}); {schedule}, by {}{}.",
        if created { "Created" } else { "Updated" },
        args.name,
        managed.provider.name(),
        managed.key_view().redacted,
        rotator_arn,
        if args.rotate_now {
            ", rotating now"
        } else {
            "; Secrets Manager tests the configuration now (no rotation yet)"
        }
    );
    if kept_targets > 0 {
        println!(
            "Kept the {kept_targets} target(s) already configured (no --vercel or --render was given)."
        );
    }
    for note in unredeployed_notes(&args.name, &targets) {
        println!("{note}");
    }
    Ok(())
}

/// Refuses one of keyrot's own credentials that another admin secret also holds: after the first
/// rotation its old key is deleted (or left for a person to delete), under whatever the copy serves.
async fn refuse_credential_copy(
    ports: &Ports<Aws>,
    admin_prefix: &str,
    name: &str,
    managed: &ManagedSecret,
) -> Result<()> {
    let key = managed.key_view().fingerprint;
    for other in ports.store.list(Some(admin_prefix)).await? {
        if other.name == secret_name_of(name) {
            continue;
        }
        let Ok(Some(text)) = ports
            .store
            .value(&other.arn_or_name(), AWSCURRENT, None)
            .await
        else {
            continue;
        };
        let same = crate::adapters::admin_keys::credential_from(&text)
            .is_some_and(|held| crate::domain::keys::KeyView::of(&held).fingerprint == key);
        if same {
            return Err(Error::config(
                name,
                "key",
                format!(
                    "is the credential {} holds too: once rotated, the old key would be revoked under what {} serves",
                    other.name, other.name
                ),
                format!(
                    "onboard {} itself (keyrot onboard {} --provider ...), or point the managed secrets at {name} and delete {} first",
                    other.name, other.name, other.name
                ),
            ));
        }
    }
    Ok(())
}

/// keyrot's own credentials live under the admin prefix, where only their owner writes them, and
/// nowhere else: a managed secret's writer must not hold the key that serves other secrets.
fn refuse_credential_outside(args: &OnboardArgs, admin_prefix: &str) -> Result<()> {
    let Some(kind) = args.provider.credential() else {
        return Ok(());
    };
    if secret_name_of(&args.name).starts_with(admin_prefix) {
        return Ok(());
    }
    Err(Error::config(
        &args.name,
        "--provider",
        format!(
            "is {}, one of keyrot's own credentials, which live under the admin prefix {admin_prefix}",
            kind.provider()
        ),
        format!("onboard the secret that holds it under {admin_prefix} (KEYROT_ADMIN_PREFIX)"),
    ))
}

/// What a person must know of each target keyrot does not redeploy: its old keys wait for them.
fn unredeployed_notes(name: &str, targets: &[TargetSpec]) -> Vec<String> {
    targets
        .iter()
        .filter(|target| !target.redeploys())
        .map(|target| {
            let wait = target
                .restart_within_hours()
                .map(|hours| format!(", or for {hours} hours after each new key (restart_within_hours)"))
                .unwrap_or_default();
            format!(
                "Note: keyrot does not redeploy {}, so it cannot tell when that service runs a new key. After each rotation the old key stays valid until you run `keyrot confirm {name}` once the service runs the new one{wait}.",
                target.label()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onboarded(key: &str, targets: Value) -> Value {
        json!({"provider": "openai", "api_key": key, "targets": targets,
            "openai": {"project_id": "proj_1", "admin_key_secret": "keyrot-admin/openai"}})
    }

    fn existing() -> Value {
        json!({"provider": "openai", "api_key": "sk-old", "key_id": "svc_acct_old", "api_key_id": "key_old",
            "owner": "payments-team",
            "openai": {"project_id": "proj_0", "admin_key_secret": "keyrot-admin/openai", "org": "org_1"},
            "targets": [{"type": "vercel", "project": "prj_1", "env_key": "OPENAI_API_KEY",
                "team_id": "team_1", "note": "web"}]})
    }

    #[test]
    fn defaults_fill_new_targets_only_and_never_reset_a_target_named_again() {
        let existing = json!({"provider": "generic", "api_key": "gk-1", "targets": [
            {"type": "vercel", "project": "prj_1", "env_key": "API_KEY", "redeploy": false,
             "environments": ["production"], "token_secret": "team/vercel"}]});
        let onboarded = json!({"provider": "generic", "api_key": "gk-1", "targets": [
            {"type": "vercel", "project": "prj_1", "env_key": "API_KEY", "environments": null,
             "token_secret": null, "team_id": null},
            {"type": "render", "service_id": "srv-1", "env_key": "API_KEY", "token_secret": null}]});
        let value = merged(Some(&existing), onboarded);
        assert_eq!(
            value["targets"],
            json!([
                {"type": "vercel", "project": "prj_1", "env_key": "API_KEY", "redeploy": false,
                 "environments": ["production"], "token_secret": "team/vercel"},
                {"type": "render", "service_id": "srv-1", "env_key": "API_KEY", "deploy": true,
                 "token_secret": "keyrot-admin/render"}
            ])
        );
    }

    #[test]
    fn a_new_secret_is_what_onboard_says() {
        let value = onboarded("sk-new", json!([]));
        assert_eq!(merged(None, value.clone()), value);
        assert_eq!(merged(Some(&json!("a bare key")), value.clone()), value);
    }

    #[test]
    fn fields_onboard_does_not_set_are_kept_and_the_old_keys_ids_go_with_it() {
        let value = merged(Some(&existing()), onboarded("sk-new", json!([])));
        assert_eq!(value["owner"], "payments-team");
        assert_eq!(
            value["openai"]["org"], "org_1",
            "unknown fields of the block kept"
        );
        assert_eq!(
            value["openai"]["project_id"], "proj_1",
            "what onboard sets wins"
        );
        assert_eq!(value["api_key"], "sk-new");
        assert!(value.get("key_id").is_none() && value.get("api_key_id").is_none());
        assert_eq!(
            value["targets"],
            existing()["targets"],
            "no target flags: targets kept"
        );
    }

    #[test]
    fn the_same_key_keeps_its_ids_and_a_target_named_again_keeps_its_unknown_fields() {
        let targets = json!([
            {"type": "vercel", "project": "prj_1", "env_key": "OPENAI_API_KEY", "team_id": null, "sensitive": true},
            {"type": "render", "service_id": "srv-1", "env_key": "OPENAI_API_KEY"}
        ]);
        let value = merged(Some(&existing()), onboarded("sk-old", targets));
        assert_eq!(value["key_id"], "svc_acct_old");
        assert_eq!(value["api_key_id"], "key_old");
        let targets = value["targets"].as_array().expect("targets");
        assert_eq!(targets.len(), 2, "the flags say which targets there are");
        assert_eq!(targets[0]["note"], "web");
        assert_eq!(
            targets[0]["team_id"], "team_1",
            "a flag not given keeps the value"
        );
        assert_eq!(targets[0]["sensitive"], true);
        assert_eq!(targets[1]["service_id"], "srv-1");
    }
}
