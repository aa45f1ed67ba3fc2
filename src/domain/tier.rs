//! Tiers: the rotation policy a security lead writes down ("prod-critical every 30 days with 24 h of
//! grace"), as named sets of schedule and grace. A secret's tier is its `keyrot:tier` tag; its schedule
//! stays the secret's own rotation rules, so Secrets Manager keeps driving it, and its grace and maximum
//! age are its `keyrot:` tags, which `keyrot onboard --tier` and `keyrot policy set --tier` write. A
//! deployment may redefine the tiers with `KEYROT_TIERS` (docs/tags.md, "Tiers").

use crate::error::{Error, Result};

pub const TAG_TIER: &str = "keyrot:tier";
/// The tier of a secret without the tag, unless `KEYROT_DEFAULT_TIER` names another.
pub const DEFAULT_TIER: &str = "prod";

/// One tier: how often its keys rotate, how long an old key lives on, how old a key may get.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub name: String,
    pub every_days: i64,
    pub grace_hours: f64,
}

impl Tier {
    /// The age past which a key is overdue: its interval, plus the day within which Secrets Manager's
    /// rotation window may start a scheduled rotation.
    pub fn max_age_days(&self) -> f64 {
        Tier::max_age_for(self.every_days)
    }

    /// The maximum age of a key rotated every `days`.
    pub fn max_age_for(days: i64) -> f64 {
        days as f64 + 1.0
    }
}

/// The deployment's tiers, in the order the policy lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiers {
    tiers: Vec<Tier>,
    default: String,
}

const BUILT_IN: &str = "prod-critical=30d/24h,prod=90d/48h,staging=90d/168h,dev=180d/336h";

impl Default for Tiers {
    fn default() -> Self {
        // The built-in table is well formed (a unit test parses it).
        Tiers::parse(BUILT_IN, None).unwrap_or(Tiers {
            tiers: Vec::new(),
            default: DEFAULT_TIER.to_owned(),
        })
    }
}

impl Tiers {
    /// `KEYROT_TIERS` (`name=<days>d/<hours>h,...`, the built-in table when unset) and
    /// `KEYROT_DEFAULT_TIER` (`prod` when unset), refused naming the variable and the fix.
    pub fn from_settings(tiers: Option<&str>, default: Option<&str>) -> Result<Tiers> {
        Tiers::parse(tiers.unwrap_or(BUILT_IN), default)
    }

    fn parse(text: &str, default: Option<&str>) -> Result<Tiers> {
        let bad = |problem: String| {
            Error::config(
                "(deployment)",
                "KEYROT_TIERS",
                problem,
                "write each tier as name=<days>d/<hours>h, separated by commas: prod=90d/48h,dev=180d/336h",
            )
        };
        let mut tiers: Vec<Tier> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let tier = parse_tier(entry).ok_or_else(|| bad(format!("cannot read {entry:?}")))?;
            if tiers.iter().any(|t| t.name == tier.name) {
                return Err(bad(format!("names the tier {} twice", tier.name)));
            }
            tiers.push(tier);
        }
        let default = default.unwrap_or(DEFAULT_TIER).trim().to_owned();
        let tiers = Tiers { tiers, default };
        if tiers.get(&tiers.default).is_none() {
            return Err(Error::config(
                "(deployment)",
                "KEYROT_DEFAULT_TIER",
                format!(
                    "names {}, which is not a tier ({})",
                    tiers.default,
                    tiers.names()
                ),
                "set KEYROT_DEFAULT_TIER to one of the tiers, or define that tier in KEYROT_TIERS",
            ));
        }
        Ok(tiers)
    }

    pub fn get(&self, name: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.name == name)
    }

    /// The tier `name`, refused for `secret` naming `field` and the tiers there are.
    pub fn named(&self, secret: &str, field: &str, name: &str) -> Result<&Tier> {
        self.get(name).ok_or_else(|| {
            Error::config(
                secret,
                field,
                format!("{name:?} is not a tier of this deployment"),
                format!("use one of {} (KEYROT_TIERS defines them)", self.names()),
            )
        })
    }

    /// The tier of a secret tagged `tag` (or not tagged): the deployment's default when untagged.
    pub fn of(&self, tag: Option<&str>) -> Option<&Tier> {
        self.get(tag.unwrap_or(&self.default))
    }

    pub fn all(&self) -> &[Tier] {
        &self.tiers
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.tiers.iter().map(|t| t.name.as_str()).collect();
        names.join(", ")
    }
}

/// `prod=90d/48h`.
fn parse_tier(entry: &str) -> Option<Tier> {
    let (name, rest) = entry.split_once('=')?;
    let (days, hours) = rest.split_once('/')?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let every_days: i64 = days.trim().strip_suffix('d')?.parse().ok()?;
    let grace_hours: f64 = hours.trim().strip_suffix('h')?.parse().ok()?;
    let sane = (1..=1000).contains(&every_days) && (0.0..=8760.0).contains(&grace_hours);
    (valid && sane).then(|| Tier {
        name: name.to_owned(),
        every_days,
        grace_hours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_tiers_are_the_policy_s() {
        let tiers = Tiers::default();
        let table: Vec<(&str, i64, f64)> = tiers
            .all()
            .iter()
            .map(|t| (t.name.as_str(), t.every_days, t.grace_hours))
            .collect();
        assert_eq!(
            table,
            [
                ("prod-critical", 30, 24.0),
                ("prod", 90, 48.0),
                ("staging", 90, 168.0),
                ("dev", 180, 336.0)
            ]
        );
        assert_eq!(tiers.of(None).map(|t| t.name.as_str()), Some("prod"));
        assert_eq!(
            tiers.get("prod-critical").map(Tier::max_age_days),
            Some(31.0)
        );
    }

    #[test]
    fn a_deployment_redefines_them_and_bad_text_names_the_variable() {
        let tiers = Tiers::from_settings(Some("gold=14d/12h, bronze=365d/0h"), Some("bronze"))
            .expect("tiers");
        assert_eq!(tiers.of(None).map(|t| t.every_days), Some(365));
        for bad in [
            "gold=14/12h",
            "gold=14d",
            "=14d/1h",
            "gold=0d/1h",
            "a=1d/1h,a=2d/1h",
        ] {
            let err = Tiers::from_settings(Some(bad), Some("gold")).expect_err(bad);
            assert!(err.to_string().contains("KEYROT_TIERS"), "{err}");
        }
        let err = Tiers::from_settings(None, Some("platinum")).expect_err("unknown default");
        assert!(err.to_string().contains("KEYROT_DEFAULT_TIER"), "{err}");
    }

    #[test]
    fn an_unknown_tier_names_the_secret_the_field_and_the_tiers() {
        let err = Tiers::default()
            .named("prod/openai", "--tier", "gold")
            .expect_err("unknown");
        let text = err.to_string();
        assert!(
            text.contains("prod/openai")
                && text.contains("--tier")
                && text.contains("prod-critical, prod, staging, dev"),
            "{text}"
        );
    }
}
