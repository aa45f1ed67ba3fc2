//! `keyrot audit`: the evidence trail as a table, CSV or JSON.

use std::io::Write;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::adapters::dynamodb::{EventsTable, rfc3339_ms};
use crate::cli::context::{Deployment, StackOutputs};
use crate::cli::csv_out::CsvOut;
use crate::domain::audit::AuditEvent;
use crate::error::{Error, Result, Transience};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this secret (its name), newest first.
    #[arg(long)]
    secret: Option<String>,
    /// A calendar month, YYYY-MM (UTC).
    #[arg(long, conflicts_with_all = ["since", "until"], value_parser = month_bounds)]
    month: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// From this time on: RFC 3339 (2026-11-01T00:00:00Z) or a date (2026-11-01).
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Before this time: RFC 3339 or a date.
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// The audit events table; by default KEYROT_EVENTS_TABLE, else the stack's output EventsTableName.
    #[arg(long)]
    table: Option<String>,
}

const TABLE_VAR: &str = "KEYROT_EVENTS_TABLE";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

const COLUMNS: [&str; 14] = [
    "time",
    "secret",
    "action",
    "outcome",
    "trigger",
    "actor",
    "version_id",
    "provider",
    "old_key",
    "new_key",
    "targets",
    "duration_ms",
    "error",
    "secret_arn",
];

pub async fn run(args: AuditArgs, deployment: &Deployment) -> Result<()> {
    let (since, until) = match args.month {
        Some((start, end)) => (Some(start), Some(end)),
        None => (args.since, args.until),
    };
    let sdk = deployment.sdk_config().await;
    let table = match args.table {
        Some(table) => table,
        None => StackOutputs::read_unless_set(&sdk, &deployment.stack, &[TABLE_VAR])
            .await
            .require(TABLE_VAR)?,
    };
    let log = EventsTable::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
    let mut unreadable = Vec::new();
    let events = match &args.secret {
        Some(secret) => log
            .secret_history(secret, since, until)
            .await?
            .reporting(|problem| unreadable.push(problem)),
        None => {
            let mut events = Vec::new();
            for month in months_between(since, until, Utc::now()) {
                let listed = log.month_events(&month, since, until).await?;
                events.extend(listed.reporting(|problem| unreadable.push(problem)));
            }
            events
        }
    };
    // Evidence with a hole in it must say so: each unreadable item is named on stderr.
    for problem in &unreadable {
        eprintln!("warning: {problem}");
    }
    let mut out = std::io::stdout().lock();
    let format = if args.json { Format::Json } else { args.format };
    let written = match format {
        Format::Csv => write_csv(&mut out, &events),
        Format::Json => write_json(&mut out, &events),
        Format::Table => write_table(&mut out, &events),
    };
    written.map_err(|err| Error::external("stdout", "write", err, Transience::Final))
}

fn row(event: &AuditEvent) -> [String; 14] {
    [
        rfc3339_ms(event.at),
        event.secret_name.clone(),
        event.action.to_string(),
        event.outcome.as_str().to_owned(),
        event.trigger.clone(),
        event.actor.clone(),
        event.version_id.clone(),
        event.provider.clone(),
        event
            .old_key_hint
            .as_deref()
            .map(|h| format!("...{h}"))
            .unwrap_or_default(),
        event
            .new_key_hint
            .as_deref()
            .map(|h| format!("...{h}"))
            .unwrap_or_default(),
        event.targets.join(" "),
        event.duration_ms.to_string(),
        event.error.clone().unwrap_or_default(),
        event.secret_arn.clone(),
    ]
}

fn write_csv(out: &mut impl Write, events: &[AuditEvent]) -> std::io::Result<()> {
    let mut writer = CsvOut::new(out);
    writer.row(COLUMNS)?;
    for event in events {
        writer.row(row(event))?;
    }
    writer.flush()
}

fn write_json(out: &mut impl Write, events: &[AuditEvent]) -> std::io::Result<()> {
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|event| {
            let values = row(event);
            let mut object = serde_json::Map::new();
            for (column, value) in COLUMNS.iter().zip(values) {
                object.insert((*column).to_owned(), json!(value));
            }
            object.insert("duration_ms".to_owned(), json!(event.duration_ms));
            object.insert("targets".to_owned(), json!(event.targets));
            serde_json::Value::Object(object)
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &rows)?;
    writeln!(out)
}

fn write_table(out: &mut impl Write, events: &[AuditEvent]) -> std::io::Result<()> {
    const SHOWN: [usize; 7] = [0, 1, 2, 3, 4, 8, 9];
    let rows: Vec<[String; 14]> = events.iter().map(row).collect();
    let widths: Vec<usize> = SHOWN
        .iter()
        .map(|&c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
                .max(COLUMNS[c].len())
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(SHOWN.iter().map(|&c| COLUMNS[c]).collect()))?;
    for (values, event) in rows.iter().zip(events) {
        writeln!(
            out,
            "{}",
            line(SHOWN.iter().map(|&c| values[c].as_str()).collect())
        )?;
        if let Some(error) = &event.error {
            writeln!(out, "    error: {error}")?;
        }
    }
    if events.is_empty() {
        writeln!(out, "(no events)")?;
    }
    Ok(())
}

/// Clap value parser: an RFC 3339 time or a date (midnight UTC). Its errors make clap exit with 2.
fn parse_time(text: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| Utc.from_utc_datetime(&time))
        .ok_or_else(|| {
            "expected an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)".to_owned()
        })
}

/// Clap value parser: `YYYY-MM` to its first instant and the first instant of the next month.
pub(crate) fn month_bounds(
    month: &str,
) -> std::result::Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let expected = || "expected a month as YYYY-MM, such as 2026-11".to_owned();
    let start = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| month.len() == 7)
        .ok_or_else(expected)?;
    let next = if start.month() == 12 {
        NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)
    };
    let to_utc = |date: NaiveDate| date.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
    match (to_utc(start), next.and_then(to_utc)) {
        (Some(start), Some(end)) => Ok((start, end)),
        _ => Err(expected()),
    }
}

/// The `YYYY-MM` partitions a time range touches (the current month when no range is given).
fn months_between(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let first = since.unwrap_or(now);
    let last = until
        .map(|u| u - chrono::Duration::milliseconds(1))
        .unwrap_or(now)
        .max(first);
    let (mut year, mut month) = (first.year(), first.month());
    let mut months = Vec::new();
    while (year, month) <= (last.year(), last.month()) {
        months.push(format!("{year:04}-{month:02}"));
        (year, month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
    }
    months
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::Outcome;

    fn event(error: Option<&str>) -> AuditEvent {
        AuditEvent {
            at: Utc
                .with_ymd_and_hms(2026, 11, 3, 10, 0, 0)
                .single()
                .unwrap_or_default(),
            secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:prod/openai-AbC".into(),
            secret_name: "prod/openai".into(),
            action: crate::domain::audit::Action::Step(crate::domain::Step::Set),
            outcome: Outcome::Failed,
            version_id: "0123abcd-0000".into(),
            provider: "openai".into(),
            old_key_hint: None,
            new_key_hint: Some("x7K2".into()),
            trigger: "scheduled".into(),
            actor: "req-1".into(),
            targets: vec!["vercel:prj_1".into()],
            duration_ms: 42,
            error: error.map(str::to_owned),
            retryable: false,
        }
    }

    #[test]
    fn csv_has_a_header_and_quotes_commas_quotes_and_newlines() {
        let mut out = Vec::new();
        write_csv(&mut out, &[event(Some("HTTP 401, \"invalid\"\nkey"))]).expect("write");
        let mut reader = csv::Reader::from_reader(out.as_slice());
        assert_eq!(
            reader.headers().expect("header").iter().collect::<Vec<_>>(),
            COLUMNS
        );
        let rows: Vec<csv::StringRecord> = reader
            .records()
            .collect::<std::result::Result<_, _>>()
            .expect("parses");
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][12], "HTTP 401, \"invalid\"\nkey");
        assert_eq!(&rows[0][9], "...x7K2");
    }

    #[test]
    fn months_and_ranges_are_read_strictly() {
        let (start, end) = month_bounds("2026-12").expect("valid");
        assert_eq!(rfc3339_ms(start), "2026-12-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(end), "2027-01-01T00:00:00.000Z");
        for bad in ["2026-13", "26-11", "2026-1", "november"] {
            let err = month_bounds(bad).expect_err("refused");
            assert!(err.contains("YYYY-MM"), "{err}");
        }
        let since = parse_time("2026-10-15").expect("date");
        let until = parse_time("2027-01-01T00:00:00Z").expect("time");
        assert_eq!(
            months_between(Some(since), Some(until), Utc::now()),
            ["2026-10", "2026-11", "2026-12"]
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn the_table_shows_errors_under_their_event() {
        let mut out = Vec::new();
        write_table(&mut out, &[event(Some("boom"))]).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("time"), "{text}");
        assert!(
            text.contains("setSecret") && text.contains("    error: boom"),
            "{text}"
        );
    }
}
