//! Lenient fields read in one pass.
//!
//! The wire model's rule (see [`crate::wire`]): a field outside a record's identity that is
//! missing, `null`, of another JSON type or of another shape is empty, and its record is kept.
//! serde_with's [`DefaultOnError`](serde_with::DefaultOnError) keeps that rule for any type by first buffering the field's
//! value (as serde's private `Content`) and then trying to read it; for a scalar that costs an
//! allocation and a second pass per field, and a list page of 1000 pull requests has tens of
//! thousands of them.
//!
//! A scalar does not need the buffer: [`Lenient`] reads an optional string, integer or boolean
//! with a visitor that takes any JSON value, keeps it when it has the expected type and range,
//! and skips anything else (an object or an array is walked with [`IgnoredAny`], never built).
//! The result is the same as `DefaultOnError`'s for every input; only the cost differs.
//! Nested objects, whose own required fields could fail, keep the buffer
//! ([`LenientField`] is implemented for them through `DefaultOnError`, by [`buffered`]). Timestamps, in any of
//! their forms, are read in one pass too ([`LenientMillis`]).

use crate::timestamps::parse_iso8601;
use serde::Deserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_with::DeserializeAs;
use std::fmt;
use std::marker::PhantomData;

/// A field type that can be read leniently: an unreadable value is its `Default`.
pub trait LenientField: Sized + Default {
    /// Reads the field; an error only for input that is not JSON at all.
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// `#[serde_as(as = "Lenient")]`: the field read as its [`LenientField`] implementation says.
pub struct Lenient;

impl<'de, T: LenientField> DeserializeAs<'de, T> for Lenient {
    fn deserialize_as<D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        T::read(d)
    }
}

/// A scalar that can come from one JSON value of the right type and range.
trait Scalar: Sized {
    /// What the field holds, for error messages.
    const EXPECTING: &'static str;
    /// From a JSON string.
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    /// From a non-negative JSON integer.
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    /// From a negative JSON integer.
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    /// From a JSON boolean.
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    /// From a JSON number with a fraction or an exponent.
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
}

impl Scalar for String {
    const EXPECTING: &'static str = "a string";
    fn from_str(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}

impl Scalar for u64 {
    const EXPECTING: &'static str = "an unsigned integer";
    fn from_u64(n: u64) -> Option<Self> {
        Some(n)
    }
}

impl Scalar for u32 {
    const EXPECTING: &'static str = "an unsigned 32-bit integer";
    fn from_u64(n: u64) -> Option<Self> {
        u32::try_from(n).ok()
    }
}

impl Scalar for i64 {
    const EXPECTING: &'static str = "an integer";
    fn from_u64(n: u64) -> Option<Self> {
        i64::try_from(n).ok()
    }
    fn from_i64(n: i64) -> Option<Self> {
        Some(n)
    }
}

impl Scalar for bool {
    const EXPECTING: &'static str = "a boolean";
    fn from_bool(b: bool) -> Option<Self> {
        Some(b)
    }
}

/// Takes any JSON value; `Some` only for a scalar of `T`'s type and range.
struct ScalarVisitor<T>(PhantomData<T>);

impl<'de, T: Scalar> Visitor<'de> for ScalarVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "any JSON value, used when it is {}", T::EXPECTING)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(T::from_bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(match u64::try_from(v) {
            Ok(n) => T::from_u64(n),
            Err(_) => T::from_i64(v),
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(T::from_u64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(T::from_f64(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(T::from_str(v))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// `Option<scalar>` fields: one pass.
macro_rules! one_pass {
    ($($t:ty),* $(,)?) => {$(
        impl LenientField for Option<$t> {
            fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ScalarVisitor::<$t>(PhantomData))
            }
        }
    )*};
}

one_pass!(String, u64, u32, i64, bool, Millis);

/// `#[serde_as(as = "LenientId")]` for an `Option<u64>` Bitbucket id outside a record's
/// identity (a project's, a repository's, a user's, an activity's), in one pass: read as
/// [`Lenient`] reads a `u64`, and empty past a Java `long` (`i64::MAX`), the range of every
/// Bitbucket id. Such a number is no real id: read as missing, it can neither collide with
/// another nor make its record impossible to store.
pub struct LenientId;

impl<'de> DeserializeAs<'de, Option<u64>> for LenientId {
    fn deserialize_as<D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let n = d.deserialize_any(ScalarVisitor::<u64>(PhantomData))?;
        Ok(n.filter(|n| i64::try_from(*n).is_ok()))
    }
}

/// Implements [`LenientField`] for nested objects: buffered, so that one whose own required fields fail (or whose keys repeat)
/// is empty instead of failing its record.
macro_rules! buffered {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::lenient::LenientField for $t {
            fn read<'de, D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <::serde_with::DefaultOnError<::serde_with::Same> as ::serde_with::DeserializeAs<
                    'de,
                    $t,
                >>::deserialize_as(d)
            }
        }
    )*};
}

pub(crate) use buffered;

/// Lists: an unreadable list is empty, and an unreadable (or `null`) entry is dropped while its
/// neighbours are kept (serde_with's `VecSkipError` inside `DefaultOnError`).
impl<T: serde::de::DeserializeOwned> LenientField for Vec<T> {
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <serde_with::DefaultOnError<serde_with::VecSkipError<serde_with::Same>> as DeserializeAs<
            'de,
            Vec<T>,
        >>::deserialize_as(d)
    }
}

/// `#[serde_as(as = "LenientMillis")]` for an `Option<i64>` timestamp, in one pass: epoch
/// milliseconds as an integer, a float or a string of digits, or an ISO 8601 string (see
/// [`crate::timestamps`]); anything else is `None`.
pub struct LenientMillis;

impl<'de> DeserializeAs<'de, Option<i64>> for LenientMillis {
    fn deserialize_as<D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let millis = d.deserialize_any(ScalarVisitor::<Millis>(PhantomData))?;
        Ok(millis.map(|Millis(v)| v))
    }
}

/// A timestamp in epoch milliseconds, as a wire field holds it: `Option<Millis>` is read in
/// one pass, as [`LenientMillis`] reads an `Option<i64>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl From<Millis> for i64 {
    fn from(m: Millis) -> i64 {
        m.0
    }
}

impl Scalar for Millis {
    const EXPECTING: &'static str = "a timestamp";
    fn from_str(s: &str) -> Option<Self> {
        s.trim()
            .parse::<i64>()
            .ok()
            .or_else(|| parse_iso8601(s))
            .map(Millis)
    }
    fn from_u64(n: u64) -> Option<Self> {
        // Saturating, as a float past the range is.
        Some(Millis(i64::try_from(n).unwrap_or(i64::MAX)))
    }
    fn from_i64(n: i64) -> Option<Self> {
        Some(Millis(n))
    }
    fn from_f64(f: f64) -> Option<Self> {
        // Saturating float-to-int conversion; fractional milliseconds are dropped.
        f.is_finite().then_some(Millis(f as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamps::EpochMillis;
    use serde::Deserialize;
    use serde_json::{Value, json};
    use serde_with::{DefaultOnError, serde_as};

    /// Every kind of JSON value, at the edges of each scalar's range.
    fn values() -> Vec<Value> {
        vec![
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(7),
            json!(-7),
            json!(u32::MAX),
            json!(u64::from(u32::MAX) + 1),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(1_700_000_000_123.0),
            json!(-2.0e300),
            json!(""),
            json!("text"),
            json!("  42 "),
            json!("2026-08-19T17:27:55.266Z"),
            json!("2019-03-26T15:47:11+0530"),
            json!([]),
            json!([1, "a", {"b": [null]}]),
            json!({}),
            json!({"a": {"b": [1, 2, {"c": "d"}]}, "e": null}),
        ]
    }

    #[serde_as]
    #[derive(Deserialize, Debug, PartialEq)]
    struct OnePass {
        #[serde_as(as = "Lenient")]
        #[serde(default)]
        s: Option<String>,
        #[serde_as(as = "Lenient")]
        #[serde(default)]
        u: Option<u64>,
        #[serde_as(as = "Lenient")]
        #[serde(default)]
        n: Option<u32>,
        #[serde_as(as = "Lenient")]
        #[serde(default)]
        i: Option<i64>,
        #[serde_as(as = "Lenient")]
        #[serde(default)]
        b: Option<bool>,
        #[serde_as(as = "LenientMillis")]
        #[serde(default)]
        t: Option<i64>,
    }

    #[serde_as]
    #[derive(Deserialize, Debug, PartialEq)]
    struct Buffered {
        #[serde_as(as = "DefaultOnError")]
        #[serde(default)]
        s: Option<String>,
        #[serde_as(as = "DefaultOnError")]
        #[serde(default)]
        u: Option<u64>,
        #[serde_as(as = "DefaultOnError")]
        #[serde(default)]
        n: Option<u32>,
        #[serde_as(as = "DefaultOnError")]
        #[serde(default)]
        i: Option<i64>,
        #[serde_as(as = "DefaultOnError")]
        #[serde(default)]
        b: Option<bool>,
        #[serde_as(as = "DefaultOnError<Option<EpochMillis>>")]
        #[serde(default)]
        t: Option<i64>,
    }

    #[test]
    fn one_pass_reads_every_value_as_buffering_does() {
        for v in values() {
            let body = json!({"s": v, "u": v, "n": v, "i": v, "b": v, "t": v, "x": v}).to_string();
            let one: OnePass = serde_json::from_str(&body).expect("one pass never fails");
            let buffered: Buffered = serde_json::from_str(&body).expect("buffered never fails");
            let one = (one.s, one.u, one.n, one.i, one.b, one.t);
            let buffered = (
                buffered.s, buffered.u, buffered.n, buffered.i, buffered.b, buffered.t,
            );
            assert_eq!(one, buffered, "{v}");
        }
        // Missing fields are empty too.
        let empty: OnePass = serde_json::from_str("{}").expect("empty object");
        assert_eq!(
            (empty.s, empty.u, empty.b, empty.t),
            (None, None, None, None)
        );
    }

    #[test]
    fn values_of_the_expected_type_are_kept() {
        let body = r#"{"s": "a\"b", "u": 12, "n": 7, "i": -3, "b": true, "t": "1700000000123"}"#;
        let one: OnePass = serde_json::from_str(body).expect("reads");
        assert_eq!(
            one,
            OnePass {
                s: Some("a\"b".into()),
                u: Some(12),
                n: Some(7),
                i: Some(-3),
                b: Some(true),
                t: Some(1_700_000_000_123),
            }
        );
    }

    #[test]
    fn input_that_is_not_json_is_still_an_error() {
        assert!(serde_json::from_str::<OnePass>(r#"{"s": [1, }"#).is_err());
    }
}
