//! E.164 telephone numbers as Vonage writes them: digits only, no `+`, 7 to 15 digits.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct E164(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum E164Error {
    #[error("must contain only digits (an optional leading '+' is accepted)")]
    NotDigits,
    #[error("must have 7 to 15 digits, found {0}")]
    Length(usize),
    #[error("must not start with 0 (E.164 numbers begin with a country code)")]
    LeadingZero,
}

impl E164 {
    pub const MIN_DIGITS: usize = 7;
    pub const MAX_DIGITS: usize = 15;

    pub fn parse(s: &str) -> Result<Self, E164Error> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(E164Error::NotDigits);
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) {
            return Err(E164Error::Length(digits.len()));
        }
        if digits.starts_with('0') {
            return Err(E164Error::LeadingZero);
        }
        Ok(Self(digits.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A dialling prefix as trunks declare it: 1 to 15 digits, no `+`.
pub fn parse_prefix(s: &str) -> Result<String, E164Error> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(E164Error::NotDigits);
    }
    if digits.len() > E164::MAX_DIGITS {
        return Err(E164Error::Length(digits.len()));
    }
    Ok(digits.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_digits_and_plus() {
        assert_eq!(E164::parse("+14155550100").map(|n| n.to_string()), Ok("14155550100".into()));
        assert_eq!(E164::parse("447700900123").map(|n| n.to_string()), Ok("447700900123".into()));
    }

    #[test]
    fn refuses_bad_numbers() {
        assert_eq!(E164::parse("12ab5550100"), Err(E164Error::NotDigits));
        assert_eq!(E164::parse(""), Err(E164Error::NotDigits));
        assert_eq!(E164::parse("+"), Err(E164Error::NotDigits));
        assert_eq!(E164::parse("123456"), Err(E164Error::Length(6)));
        assert_eq!(E164::parse("1234567890123456"), Err(E164Error::Length(16)));
        assert_eq!(E164::parse("0155550100"), Err(E164Error::LeadingZero));
        assert_eq!(E164::parse("1 415 555 0100"), Err(E164Error::NotDigits));
    }

    #[test]
    fn prefixes() {
        assert_eq!(parse_prefix("+44"), Ok("44".into()));
        assert_eq!(parse_prefix("1x"), Err(E164Error::NotDigits));
    }
}
