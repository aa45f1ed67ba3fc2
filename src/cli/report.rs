//! `keyrot report`: the compliance report of one month: every managed secret, its rotations, failures,
//! emergency rotations, whether its key was overdue, and the mean time between rotations.

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use crate::cli::audit::month_bounds;
use crate::cli::context::{Deployment, Session, print_json};
use crate::cli::csv_out::CsvOut;
use crate::cli::policy;
use crate::domain::Step;
use crate::domain::audit::{AuditEvent, Outcome, Revocation};
use crate::domain::tier::Tiers;
use crate::error::{Error, Result, Transience};
use crate::ports::AuditLog;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Md,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The month, YYYY-MM (UTC).
    #[arg(long, value_parser = month_bounds)]
    month: (DateTime<Utc>, DateTime<Utc>),
    /// Markdown for people, CSV for spreadsheets and evidence folders, JSON for tools.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    format: Format,
    /// The same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

/// One secret's line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub secret: String,
    /// The secret's tier at the time of the report, `-` when the deployment defines none for it.
    pub tier: String,
    pub provider: String,
    pub rotations: usize,
    pub failures: usize,
    pub emergency: usize,
    /// Key age at the end of the month beyond `keyrot:max-age-days`.
    pub overdue: bool,
    pub mean_days_between_rotations: Option<f64>,
    /// Old keys left to a person (revocation tasks) that nobody has recorded as revoked yet.
    pub open_tasks: Vec<Revocation>,
}

fn is_rotation(event: &AuditEvent) -> bool {
    event.step() == Some(Step::Finish) && event.outcome == Outcome::Succeeded
}

/// The report line from a secret's history up to the end of the month (any order).
pub fn line(
    secret: &str,
    provider: &str,
    history: &[AuditEvent],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    created: Option<DateTime<Utc>>,
    max_age_days: f64,
) -> Line {
    let in_month: Vec<&AuditEvent> = history
        .iter()
        .filter(|e| e.at >= start && e.at < end)
        .collect();
    let mut rotations: Vec<DateTime<Utc>> = history
        .iter()
        .filter(|e| is_rotation(e) && e.at < end)
        .map(|e| e.at)
        .collect();
    rotations.sort();
    let gaps: Vec<f64> = rotations
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds() as f64 / 86_400.0)
        .collect();
    let last_change = rotations.last().copied().or(created);
    Line {
        secret: secret.to_owned(),
        tier: "-".to_owned(),
        provider: provider.to_owned(),
        rotations: in_month.iter().filter(|e| is_rotation(e)).count(),
        failures: in_month
            .iter()
            .filter(|e| e.outcome == Outcome::Failed && e.step().is_some())
            .count(),
        emergency: in_month
            .iter()
            .filter(|e| is_rotation(e) && e.trigger == "emergency")
            .count(),
        overdue: last_change
            .is_some_and(|at| (end - at).num_seconds() as f64 / 86_400.0 > max_age_days),
        mean_days_between_rotations: (!gaps.is_empty())
            .then(|| gaps.iter().sum::<f64>() / gaps.len() as f64),
        open_tasks: Vec::new(),
    }
}

pub async fn run(args: ReportArgs, deployment: &Deployment) -> Result<()> {
    let (start, end) = args.month;
    let tiers = policy::tiers()?;
    let session = Session::connect(deployment).await?;
    let managed = session.keeper().managed_secrets().await?;
    let tasks = session
        .ports
        .audit
        .revocation_tasks()
        .await?
        .reporting(|problem| eprintln!("warning: {problem}"));
    let mut lines = Vec::new();
    for item in &managed {
        let history = session
            .ports
            .audit
            .events()
            .secret_history(&item.secret.name, None, Some(end))
            .await?
            .reporting(|problem| eprintln!("warning: {problem}"));
        let max_age = item
            .secret
            .policy(24.0)
            .map(|p| p.max_age_days)
            .unwrap_or(90.0);
        let provider = item.current.as_ref().map_or("-", |c| c.provider.name());
        let mut line = line(
            &item.secret.name,
            provider,
            &history,
            start,
            end,
            item.secret.created,
            max_age,
        );
        line.tier = policy::tier_of(&tiers, &item.secret)
            .0
            .map_or_else(|| "-".to_owned(), |t| t.name.clone());
        line.open_tasks = tasks
            .iter()
            .filter(|task| task.secret_name == item.secret.name)
            .cloned()
            .collect();
        lines.push(line);
    }
    let rank = |tier: &str| {
        tiers
            .all()
            .iter()
            .position(|t| t.name == tier)
            .unwrap_or(usize::MAX)
    };
    lines.sort_by(|a, b| (rank(&a.tier), &a.secret).cmp(&(rank(&b.tier), &b.secret)));
    let month = start.format("%Y-%m").to_string();
    let format = if args.json { Format::Json } else { args.format };
    let written = match format {
        Format::Json => return print_json(&json_report(&month, &lines)),
        Format::Md => {
            print!("{}", markdown(&month, &lines));
            print!("{}", tier_table(&tiers));
            Ok(())
        }
        Format::Csv => csv_out(&lines),
    };
    written.map_err(|err| Error::external("stdout", "write", err, Transience::Final))
}

fn mean(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |d| format!("{d:.1}"))
}

pub fn markdown(month: &str, lines: &[Line]) -> String {
    let mut out = format!("# keyrot compliance report, {month}\n\n");
    let total = |f: fn(&Line) -> usize| lines.iter().map(f).sum::<usize>();
    out.push_str(&format!(
        "{} managed secrets; {} rotations, {} failed steps, {} emergency rotations; {} keys overdue at month end; {} old keys wait for a person to revoke them.\n\n",
        lines.len(),
        total(|l| l.rotations),
        total(|l| l.failures),
        total(|l| l.emergency),
        lines.iter().filter(|l| l.overdue).count(),
        total(|l| l.open_tasks.len()),
    ));
    out.push_str("| secret | tier | provider | rotations | failed steps | emergency | overdue | mean days between rotations | open revocation tasks |\n");
    out.push_str("| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: |\n");
    for l in lines {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            l.secret,
            l.tier,
            l.provider,
            l.rotations,
            l.failures,
            l.emergency,
            if l.overdue { "yes" } else { "no" },
            mean(l.mean_days_between_rotations),
            l.open_tasks.len(),
        ));
    }
    let open: Vec<&Revocation> = lines.iter().flat_map(|l| &l.open_tasks).collect();
    if !open.is_empty() {
        out.push_str("\n## Open revocation tasks\n\nOld keys keyrot could not revoke itself; each is alive until a person revokes it and records it with `keyrot revoked`.\n\n");
        out.push_str("| secret | provider | old key | version | grace ended |\n| --- | --- | --- | --- | --- |\n");
        for task in open {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                task.secret_name,
                task.provider,
                task.hint,
                task.old_version_id,
                task.due.format("%Y-%m-%d %H:%M UTC"),
            ));
        }
    }
    out
}

/// The policy per tier, as the deployment defines it.
pub fn tier_table(tiers: &Tiers) -> String {
    let mut out = String::from(
        "\n## Policy per tier\n\n| tier | rotation | grace | maximum key age |\n| --- | ---: | ---: | ---: |\n",
    );
    for tier in tiers.all() {
        let default = if tier.name == tiers.default_name() {
            " (default)"
        } else {
            ""
        };
        out.push_str(&format!(
            "| {}{default} | every {} days | {} h | {} days |\n",
            tier.name,
            tier.every_days,
            tier.grace_hours,
            tier.max_age_days()
        ));
    }
    out
}

pub fn json_report(month: &str, lines: &[Line]) -> Value {
    json!({
        "month": month,
        "secrets": lines.iter().map(|l| json!({
            "secret": l.secret,
            "tier": l.tier,
            "provider": l.provider,
            "rotations": l.rotations,
            "failed_steps": l.failures,
            "emergency_rotations": l.emergency,
            "overdue": l.overdue,
            "mean_days_between_rotations": l.mean_days_between_rotations,
            "open_revocation_tasks": l.open_tasks.iter().map(|t| json!({
                "version_id": t.old_version_id,
                "key": t.hint,
                "grace_ended": t.due.to_rfc3339(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn csv_out(lines: &[Line]) -> std::io::Result<()> {
    let mut writer = CsvOut::new(std::io::stdout().lock());
    writer.row([
        "secret",
        "tier",
        "provider",
        "rotations",
        "failed_steps",
        "emergency_rotations",
        "overdue",
        "mean_days_between_rotations",
        "open_revocation_tasks",
    ])?;
    for l in lines {
        writer.row([
            l.secret.clone(),
            l.tier.clone(),
            l.provider.clone(),
            l.rotations.to_string(),
            l.failures.to_string(),
            l.emergency.to_string(),
            l.overdue.to_string(),
            mean(l.mean_days_between_rotations),
            l.open_tasks.len().to_string(),
        ])?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(day: u32, action: &str, outcome: Outcome, trigger: &str) -> AuditEvent {
        AuditEvent {
            at: Utc
                .with_ymd_and_hms(2026, 10, day, 12, 0, 0)
                .single()
                .unwrap_or_default(),
            secret_arn: String::new(),
            secret_name: "s".into(),
            action: crate::domain::audit::Action::parse(action)
                .unwrap_or(crate::domain::audit::Action::Alert),
            outcome,
            version_id: "v".into(),
            provider: "openai".into(),
            old_key_hint: None,
            new_key_hint: None,
            trigger: trigger.into(),
            actor: "a".into(),
            targets: vec![],
            duration_ms: 1,
            error: None,
            retryable: false,
        }
    }

    #[test]
    fn counts_rotations_failures_emergencies_and_the_mean_interval() {
        let (start, end) = month_bounds("2026-10").expect("month");
        let history = [
            event(1, "finishSecret", Outcome::Succeeded, "scheduled"),
            event(11, "setSecret", Outcome::Failed, "scheduled"),
            event(11, "finishSecret", Outcome::Succeeded, "scheduled"),
            event(31, "finishSecret", Outcome::Succeeded, "emergency"),
            event(20, "revoke", Outcome::Failed, "scheduled"),
        ];
        let l = line("s", "openai", &history, start, end, None, 90.0);
        assert_eq!(
            (l.rotations, l.failures, l.emergency, l.overdue),
            (3, 1, 1, false)
        );
        assert_eq!(l.mean_days_between_rotations, Some(15.0));
        let text = markdown("2026-10", &[l]);
        assert!(
            text.contains("| s | - | openai | 3 | 1 | 1 | no | 15.0 | 0 |"),
            "{text}"
        );
        let stale = line(
            "t",
            "generic",
            &[],
            start,
            end,
            Some(start - chrono::Duration::days(100)),
            90.0,
        );
        assert!(stale.overdue);
    }
}
