//! Random keys and passwords, drawn in the process from the operating system's CSPRNG (`getrandom`,
//! through rand's `OsRng`): the generic provider's keys and a database role's passwords. Letters and
//! digits only, as Secrets Manager's GetRandomPassword draws them with punctuation excluded (keys
//! travel in headers, environment variables and connection strings, where punctuation needs quoting),
//! and, as it does by default, with at least one upper-case letter, one lower-case letter and one digit.
//! docs/secret-format.md says why this is as strong as asking Secrets Manager.

use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::SecretString;

use crate::error::{Error, Result, Transience};

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The largest multiple of 62 a byte holds: bytes from here up are drawn again, so that every
/// character is equally likely (no modulo bias).
const UNBIASED: u8 = 248;

/// `len` characters of `[A-Za-z0-9]`, each class present once `len` is 3 or more.
pub fn alphanumeric(len: usize) -> Result<SecretString> {
    loop {
        let drawn = draw(len)?;
        if len < 3 || has_each_class(&drawn) {
            return String::from_utf8(drawn)
                .map(SecretString::from)
                .map_err(|_| failed("the alphabet is ASCII"));
        }
    }
}

fn draw(len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|err| failed(&err.to_string()))?;
        out.extend(
            bytes
                .iter()
                .filter(|b| **b < UNBIASED)
                .map(|b| ALPHABET[usize::from(*b % 62)])
                .take(len - out.len()),
        );
    }
    Ok(out)
}

fn has_each_class(drawn: &[u8]) -> bool {
    drawn.iter().any(u8::is_ascii_uppercase)
        && drawn.iter().any(u8::is_ascii_lowercase)
        && drawn.iter().any(u8::is_ascii_digit)
}

fn failed(detail: &str) -> Error {
    Error::external("os", "getrandom", detail.to_owned(), Transience::Retryable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn keys_have_the_length_the_alphabet_and_every_class() {
        for len in [3, 16, 48, 4096] {
            let key = alphanumeric(len).expect("random");
            let key = key.expose_secret();
            assert_eq!(key.len(), len);
            assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
            assert!(has_each_class(key.as_bytes()), "{key}");
        }
        let (a, b) = (alphanumeric(48).expect("a"), alphanumeric(48).expect("b"));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn every_character_is_drawn_about_equally_often() {
        let sample = draw(62 * 2000).expect("random");
        let mut counts = [0usize; 128];
        for b in &sample {
            counts[usize::from(*b)] += 1;
        }
        // 2,000 expected per character; a biased draw (modulo 62 over all 256 bytes) gives the first
        // eight characters about 2,500. Six standard deviations either side.
        for c in ALPHABET {
            let n = counts[usize::from(*c)];
            assert!(
                (1_730..=2_270).contains(&n),
                "{} drawn {n} times",
                char::from(*c)
            );
        }
    }
}
