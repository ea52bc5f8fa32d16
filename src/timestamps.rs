//! Timestamps as Bitbucket sends them: epoch milliseconds in REST bodies, and since DC 10.3 also
//! ISO 8601 strings inside webhook payloads (`2026-08-19T17:27:55.266Z`); webhook envelopes carry
//! dates with offsets written without a colon (`2019-03-26T15:47:11+0530`). All become epoch ms.

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::{Iso8601, Rfc3339};

/// Parses an ISO 8601 / RFC 3339 date-time into epoch milliseconds.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    let parsed = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(s, &Iso8601::PARSING))
        .ok()
        .or_else(|| OffsetDateTime::parse(&with_offset_colon(s)?, &Rfc3339).ok())?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

/// `...+0530` → `...+05:30`, for the envelope format RFC 3339 does not accept.
fn with_offset_colon(s: &str) -> Option<String> {
    let tail = s.get(s.len().checked_sub(5)?..)?;
    // Only an ASCII tail can be an offset; checking first keeps every split below on a char boundary.
    if !tail.is_ascii() {
        return None;
    }
    let (sign, digits) = tail.split_at(1);
    if (sign == "+" || sign == "-") && digits.bytes().all(|b| b.is_ascii_digit()) {
        let head = &s[..s.len() - 5];
        Some(format!("{head}{sign}{}:{}", &digits[..2], &digits[2..]))
    } else {
        None
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTime {
    Int(i64),
    Float(f64),
    Text(String),
}

fn to_millis(raw: RawTime) -> Option<i64> {
    match raw {
        RawTime::Int(n) => Some(n),
        // Saturating float-to-int conversion; fractional milliseconds are dropped.
        RawTime::Float(f) if f.is_finite() => Some(f as i64),
        RawTime::Float(_) => None,
        RawTime::Text(s) => s.trim().parse::<i64>().ok().or_else(|| parse_iso8601(&s)),
    }
}

/// A timestamp in any of the accepted forms, for `#[serde_as(as = "...")]`: epoch milliseconds
/// (an integer, a float, or a string of digits) or an ISO 8601 string with `Z` or an offset, with
/// or without fractional seconds. An unreadable value is an error; wrap it in serde_with's
/// `DefaultOnError` where it must not fail the record.
pub struct EpochMillis;

impl<'de> serde_with::DeserializeAs<'de, i64> for EpochMillis {
    fn deserialize_as<D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        to_millis(RawTime::deserialize(d)?)
            .ok_or_else(|| serde::de::Error::custom("unreadable timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[serde_with::serde_as]
    #[derive(Deserialize)]
    struct T {
        #[serde_as(as = "Option<EpochMillis>")]
        #[serde(default)]
        at: Option<i64>,
    }

    fn at(json: &str) -> Result<Option<i64>, serde_json::Error> {
        serde_json::from_str::<T>(json).map(|t| t.at)
    }

    #[test]
    fn accepts_every_form_bitbucket_sends() {
        assert_eq!(
            at(r#"{"at": 1700000000123}"#).unwrap(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            at(r#"{"at": 1700000000123.0}"#).unwrap(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            at(r#"{"at": "1700000000123"}"#).unwrap(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            at(r#"{"at": "2026-08-19T17:27:55.266Z"}"#).unwrap(),
            Some(1_787_160_475_266)
        );
        assert_eq!(
            at(r#"{"at": "2019-03-26T15:47:11+0530"}"#).unwrap(),
            Some(1_553_595_431_000)
        );
        assert_eq!(
            at(r#"{"at": "2019-03-26T15:47:11+05:30"}"#).unwrap(),
            Some(1_553_595_431_000)
        );
        assert_eq!(
            at(r#"{"at": "2026-08-19T17:27:55Z"}"#).unwrap(),
            Some(1_787_160_475_000)
        );
        assert_eq!(
            at(r#"{"at": "2026-08-19T19:27:55.266+02:00"}"#).unwrap(),
            Some(1_787_160_475_266)
        );
        assert_eq!(at(r#"{"at": null}"#).unwrap(), None);
        assert_eq!(at(r#"{}"#).unwrap(), None);
    }

    #[test]
    fn extreme_numbers_saturate_instead_of_wrapping() {
        assert_eq!(
            at(r#"{"at": -9223372036854775808}"#).unwrap(),
            Some(i64::MIN)
        );
        assert_eq!(
            at(r#"{"at": 9223372036854775807}"#).unwrap(),
            Some(i64::MAX)
        );
        assert_eq!(at(r#"{"at": -1}"#).unwrap(), Some(-1));
        // Beyond i64 (u64::MAX, huge floats): read as a float, then saturated.
        assert_eq!(
            at(r#"{"at": 18446744073709551615}"#).unwrap(),
            Some(i64::MAX)
        );
        assert_eq!(at(r#"{"at": 1e300}"#).unwrap(), Some(i64::MAX));
        assert_eq!(at(r#"{"at": -1e300}"#).unwrap(), Some(i64::MIN));
        // A string of digits beyond i64 is not a timestamp.
        assert!(at(r#"{"at": "18446744073709551615"}"#).is_err());
        // The latest date RFC 3339 allows stays well within i64 milliseconds.
        assert_eq!(
            at(r#"{"at": "9999-12-31T23:59:59.999Z"}"#).unwrap(),
            Some(253_402_300_799_999)
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(at(r#"{"at": "yesterday"}"#).is_err());
        assert!(at(r#"{"at": true}"#).is_err());
        assert!(at(r#"{"at": "2019-13-45T99:00:00Z"}"#).is_err());
        // Found by cargo-fuzz: a multi-byte character where an offset's sign would be.
        assert!(at("{\"at\": \"x\u{793}530\"}").is_err());
        assert!(at("{\"at\": \"\u{7c4}0530\"}").is_err());
    }
}
