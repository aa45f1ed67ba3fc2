//! State shared by the HTTP handlers and the [`crate::Simulator`] handle, plus
//! the small helpers (ids, clock, fingerprints) every provider uses.

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::Call;
use crate::anthropic::Anthropic;
use crate::faults::Faults;
use crate::github::GitHub;
use crate::openai::OpenAi;
use crate::render::Render;
use crate::stripe::Stripe;
use crate::vercel::Vercel;

/// Everything the simulator knows. Each provider has its own lock so a slow
/// test poking at one provider never serialises behind the other.
pub(crate) struct Shared {
    pub(crate) openai: Mutex<OpenAi>,
    pub(crate) anthropic: Mutex<Anthropic>,
    pub(crate) vercel: Mutex<Vercel>,
    pub(crate) render: Mutex<Render>,
    pub(crate) stripe: Mutex<Stripe>,
    pub(crate) github: Mutex<GitHub>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) calls: Mutex<Vec<Call>>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            openai: Mutex::new(OpenAi::new()),
            anthropic: Mutex::new(Anthropic::new()),
            vercel: Mutex::new(Vercel::new()),
            render: Mutex::new(Render::new()),
            stripe: Mutex::new(Stripe::new()),
            github: Mutex::new(GitHub::default()),
            faults: Mutex::new(Faults::default()),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn openai(&self) -> MutexGuard<'_, OpenAi> {
        lock(&self.openai)
    }

    pub(crate) fn anthropic(&self) -> MutexGuard<'_, Anthropic> {
        lock(&self.anthropic)
    }

    /// Builds finish by the clock, not by a background task: every access
    /// first settles the builds whose time has come, so handlers, seeding
    /// calls and `/_sim/state` all see the same, current, deployment states.
    pub(crate) fn vercel(&self) -> MutexGuard<'_, Vercel> {
        let mut vercel = lock(&self.vercel);
        vercel.settle();
        vercel
    }

    /// Settles finished builds first, like [`Shared::vercel`].
    pub(crate) fn render(&self) -> MutexGuard<'_, Render> {
        let mut render = lock(&self.render);
        render.settle();
        render
    }

    pub(crate) fn stripe(&self) -> MutexGuard<'_, Stripe> {
        lock(&self.stripe)
    }

    pub(crate) fn github(&self) -> MutexGuard<'_, GitHub> {
        lock(&self.github)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub(crate) fn calls(&self) -> MutexGuard<'_, Vec<Call>> {
        lock(&self.calls)
    }
}

/// A test that panics while holding a lock must not take every later
/// assertion down with it: the data is still consistent enough for a simulator.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// `len` random characters of `[A-Za-z0-9]`, the alphabet of every id.
pub(crate) fn random_alphanumeric(len: usize) -> String {
    random_from(ALPHANUMERIC, len)
}

/// `len` random characters of `[a-z0-9]`: Render ids and Vercel deployment
/// hostnames, which are lowercase.
pub(crate) fn random_lowercase(len: usize) -> String {
    random_from(LOWER_ALPHANUMERIC, len)
}

/// `len` random characters of `[A-Za-z0-9_-]`, the alphabet of Anthropic key bodies.
pub(crate) fn random_url_safe(len: usize) -> String {
    random_from(URL_SAFE, len)
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// Id with a provider prefix, e.g. `proj_` + 24 characters.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", random_alphanumeric(24))
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Unix time in milliseconds, the unit of every Vercel timestamp.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The first 12 hex characters of the value's SHA-256: enough to tell keys
/// apart in `/_sim/state` without showing them (keyrot's own fingerprint).
pub(crate) fn fingerprint(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .take(6)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Formats unix milliseconds as RFC 3339 in UTC with milliseconds
/// (`2025-09-29T00:00:00.250Z`), as Render writes its timestamps.
pub(crate) fn rfc3339_millis(unix_millis: i64) -> String {
    let seconds = rfc3339(unix_millis.div_euclid(1000));
    let base = seconds.strip_suffix('Z').unwrap_or(&seconds);
    format!("{base}.{:03}Z", unix_millis.rem_euclid(1000))
}

/// Formats unix seconds as RFC 3339 in UTC (`2025-09-29T00:00:00Z`).
/// Hand-rolled so the simulator does not need a date crate for one format.
pub(crate) fn rfc3339(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// Unix seconds of an RFC 3339 time in UTC as keyrot writes it (`2025-09-29T00:00:00Z`); `None` for
/// anything else.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.strip_suffix('Z')?.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> { text.get(range)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Howard Hinnant's `days_from_civil`, the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian
/// calendar; Howard Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Reads a `limit` query parameter: `default` when absent, an error message
/// when it is not an integer in `1..=max`.
pub(crate) fn parse_limit(
    raw: Option<&String>,
    default: usize,
    max: usize,
) -> Result<usize, String> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
        _ => Err(format!(
            "Invalid 'limit': expected an integer between 1 and {max}, got '{raw}'."
        )),
    }
}

/// Index just past the item whose id is `after`, for cursor pagination.
/// `None` when the cursor names no item the list ever held.
pub(crate) fn start_after<T>(
    items: &[T],
    after: Option<&str>,
    id: impl Fn(&T) -> &str,
) -> Option<usize> {
    match after {
        None => Some(0),
        Some(cursor) => items
            .iter()
            .position(|item| id(item) == cursor)
            .map(|i| i + 1),
    }
}

#[cfg(test)]
mod rfc3339_tests {
    use super::*;

    #[test]
    fn parses_what_it_formats() {
        for secs in [0, 1_764_633_600, 1_796_169_599, 951_782_400] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-12-01 00:00:00"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_759_104_000), "2025-09-29T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 46_923), "2000-02-29T13:02:03Z");
        assert_eq!(
            rfc3339_millis(1_759_104_000_250),
            "2025-09-29T00:00:00.250Z"
        );
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn fingerprint_is_the_first_twelve_hex_characters_of_sha256() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(fingerprint("abc"), "ba7816bf8f01");
    }

    #[test]
    fn random_strings_use_their_alphabet() {
        let id = random_alphanumeric(200);
        assert_eq!(id.len(), 200);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let body = random_url_safe(200);
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
    }
}
