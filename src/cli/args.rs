//! Value parsers for arguments: a malformed value is a usage error (exit code 2) that clap reports
//! before the command runs, so it can never be found halfway through a command's writes.

/// Hours of grace: a finite number, 0 or more (fractions allowed: 0.01 is 36 s). The upper bound is
/// the one the tag parser accepts (`SecretDescription::policy`), so what is written can be read back.
pub fn hours(text: &str) -> Result<f64, String> {
    let hours: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of hours (such as 24 or 0.5)"))?;
    if !hours.is_finite() || !(0.0..=100_000.0).contains(&hours) {
        return Err(format!(
            "{text:?} is not a number of hours from 0 to 100000 (0 revokes the old key at once)"
        ));
    }
    Ok(hours)
}

/// A Secrets Manager schedule expression: `rate(N days)` (1 to 1000, like AutomaticallyAfterDays),
/// `rate(N hours)` (4 or more: Secrets Manager rotates at most every four hours) or `cron(...)` with the
/// six fields AWS cron expressions have.
pub fn schedule(text: &str) -> Result<String, String> {
    let expression = text.trim();
    let usage = || {
        format!(
            "{text:?} is not a schedule expression: use 'rate(30 days)', 'rate(12 hours)' (4 or more) or \
             'cron(0 4 1 * ? *)' (minutes hours day-of-month month day-of-week year)"
        )
    };
    if let Some(inner) = expression
        .strip_prefix("rate(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let mut words = inner.split_whitespace();
        let (Some(count), Some(unit), None) = (words.next(), words.next(), words.next()) else {
            return Err(usage());
        };
        let count: u32 = count.parse().map_err(|_| usage())?;
        let valid = match unit {
            "day" => count == 1,
            "days" => (1..=1000).contains(&count),
            // Secrets Manager rotates at most every four hours.
            "hours" => (4..=24_000).contains(&count),
            _ => false,
        };
        return if valid {
            Ok(expression.to_owned())
        } else {
            Err(usage())
        };
    }
    if let Some(inner) = expression
        .strip_prefix("cron(")
        .and_then(|rest| rest.strip_suffix(')'))
        && inner.split_whitespace().count() == 6
    {
        return Ok(expression.to_owned());
    }
    Err(usage())
}

/// A deployment target on the command line: `ID:ENV_KEY` (a Vercel project or a Render service, and
/// the environment variable that holds the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetArg {
    pub id: String,
    pub env_key: String,
}

pub fn target(text: &str) -> Result<TargetArg, String> {
    let usage = || format!("{text:?} is not ID:ENV_KEY (for example prj_abc123:OPENAI_API_KEY)");
    let (id, env_key) = text.split_once(':').ok_or_else(usage)?;
    let (id, env_key) = (id.trim(), env_key.trim());
    let plain = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !plain(id) || !plain(env_key) {
        return Err(usage());
    }
    Ok(TargetArg {
        id: id.to_owned(),
        env_key: env_key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_finite_and_not_negative() {
        assert_eq!(hours("0"), Ok(0.0));
        assert_eq!(hours("0.01"), Ok(0.01));
        assert_eq!(hours("24"), Ok(24.0));
        for bad in ["-1", "NaN", "inf", "-0.5", "abc", "", "1e9"] {
            assert!(hours(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn schedules_look_like_rate_or_cron() {
        for good in [
            "rate(30 days)",
            "rate(1 day)",
            "rate(12 hours)",
            "cron(0 4 1 * ? *)",
        ] {
            assert_eq!(schedule(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "30 days",
            "rate(0 days)",
            "rate(1001 days)",
            "rate(30 weeks)",
            "rate(thirty days)",
            "rate(2 day)",
            "rate(1 hour)",
            "rate(2 hours)",
            "cron(0 4 * *)",
            "cron()",
            "every month",
        ] {
            assert!(schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_are_id_colon_env_key() {
        assert_eq!(
            target("prj_1:OPENAI_API_KEY"),
            Ok(TargetArg {
                id: "prj_1".into(),
                env_key: "OPENAI_API_KEY".into()
            })
        );
        for bad in [
            "prj_1",
            ":KEY",
            "prj_1:",
            "prj 1:KEY",
            "prj_1:KEY:extra",
            "prj/1:KEY",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}
