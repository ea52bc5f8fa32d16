//! Shape variations: one field of a valid body rewritten the way real servers, plugins and proxies
//! send it. The simulator serves varied bodies (`--shapes varied`), and the shape-variation
//! property tests rewrite bodies with the same functions.
//!
//! Two families:
//! - **Destroying** ([`Variation::is_destroying`]): the field arrives missing, `null`, as another
//!   JSON type, or in another shape (an object where a scalar was, a string where an object or a
//!   list was). The connector must read such a field as absent and keep the record, so a body
//!   with a destroyed field must give the same records as the body with that field removed.
//! - **Preserving**: unknown fields beside it, `null` entries in a list, an epoch-millisecond
//!   date written as ISO 8601. The connector must read the same records as from the original.

use serde_json::{Map, Value};

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A path into a JSON document.
pub type Path = Vec<Step>;

/// How a field is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variation {
    /// The field is left out.
    Remove,
    /// The field is `null`.
    Null,
    /// The field holds another JSON type (a boolean, or a string where a boolean was).
    OtherType,
    /// The field holds another shape: a scalar wrapped in an object, or an object or a list
    /// replaced by a string.
    OtherShape,
    /// An unknown field appears next to it.
    UnknownSibling,
    /// A list gets `null` entries at both ends (lists only).
    NullEntries,
    /// An epoch-millisecond date is written as ISO 8601 (dates only).
    IsoDate,
}

impl Variation {
    /// Every variation.
    pub const ALL: [Variation; 7] = [
        Variation::Remove,
        Variation::Null,
        Variation::OtherType,
        Variation::OtherShape,
        Variation::UnknownSibling,
        Variation::NullEntries,
        Variation::IsoDate,
    ];

    /// Whether the field's value is lost (the record must then equal the one without the field).
    pub fn is_destroying(self) -> bool {
        matches!(
            self,
            Variation::Remove | Variation::Null | Variation::OtherType | Variation::OtherShape
        )
    }

    /// Whether this variation applies to `value`.
    pub fn applies_to(self, key: Option<&str>, value: &Value) -> bool {
        match self {
            Variation::NullEntries => value.is_array(),
            Variation::IsoDate => is_date_key(key) && value.as_i64().is_some(),
            _ => true,
        }
    }
}

/// Whether a key names a date Bitbucket sends as epoch milliseconds.
pub fn is_date_key(key: Option<&str>) -> bool {
    key.is_some_and(|k| k.ends_with("Date") || k.ends_with("Timestamp"))
}

/// Every field path of `value` (object members at any depth, through arrays), parents first.
pub fn field_paths(value: &Value) -> Vec<Path> {
    fn walk(v: &Value, at: &mut Path, out: &mut Vec<Path>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    at.push(Step::Key(k.clone()));
                    out.push(at.clone());
                    walk(child, at, out);
                    at.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    at.push(Step::Index(i));
                    walk(child, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// The value at `path`.
pub fn get<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(i),
    })
}

/// The parent object of the field at `path`, and the field's key.
fn parent_object<'a>(
    value: &'a mut Value,
    path: &[Step],
) -> Option<(&'a mut Map<String, Value>, String)> {
    let (last, parents) = path.split_last()?;
    let Step::Key(key) = last else { return None };
    let mut v = value;
    for step in parents {
        v = match step {
            Step::Key(k) => v.get_mut(k)?,
            Step::Index(i) => v.get_mut(*i)?,
        };
    }
    Some((v.as_object_mut()?, key.clone()))
}

/// Writes epoch milliseconds as ISO 8601 in UTC, with milliseconds only when there are some.
pub fn iso8601(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    let frac = ms.rem_euclid(1000);
    Some(if frac == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z")
    })
}

/// Applies `variation` to the field at `path`; returns whether it applied.
pub fn apply(value: &mut Value, path: &[Step], variation: Variation) -> bool {
    let Some((parent, key)) = parent_object(value, path) else {
        return false;
    };
    let Some(current) = parent.get(&key) else {
        return false;
    };
    if !variation.applies_to(Some(&key), current) {
        return false;
    }
    let replacement = match variation {
        Variation::Remove => {
            parent.remove(&key);
            return true;
        }
        Variation::Null => Value::Null,
        Variation::OtherType => match current {
            Value::Bool(_) => Value::from("maybe"),
            _ => Value::Bool(true),
        },
        Variation::OtherShape => match current {
            Value::Object(_) | Value::Array(_) => Value::from("[shape changed by a proxy]"),
            scalar => serde_json::json!({ "value": scalar }),
        },
        Variation::UnknownSibling => {
            let mut name = format!("{key}Extension");
            while parent.contains_key(&name) {
                name.push('X');
            }
            parent.insert(
                name,
                serde_json::json!({"addedBy": "a plugin", "list": [null, 1, "two", {"x": null}]}),
            );
            return true;
        }
        Variation::NullEntries => {
            let mut items = vec![Value::Null];
            items.extend(current.as_array().cloned().unwrap_or_default());
            items.push(Value::Null);
            Value::Array(items)
        }
        Variation::IsoDate => match current.as_i64().and_then(iso8601) {
            Some(s) => Value::from(s),
            None => return false,
        },
    };
    parent.insert(key, replacement);
    true
}

/// A copy of `value` with the field at `path` removed.
pub fn removed(value: &Value, path: &[Step]) -> Value {
    let mut v = value.clone();
    apply(&mut v, path, Variation::Remove);
    v
}

/// The last object key on `path`.
pub fn last_key(path: &[Step]) -> Option<&str> {
    path.iter().rev().find_map(|s| match s {
        Step::Key(k) => Some(k.as_str()),
        Step::Index(_) => None,
    })
}

/// Whether `path` ends in one of `keys` (the last object key on the path).
pub fn last_key_in(path: &[Step], keys: &[&str]) -> bool {
    last_key(path).is_some_and(|k| keys.contains(&k))
}

/// Whether `path` is `prefix` or lies below it (indices match any index where `prefix` says
/// `Index(usize::MAX)`).
pub fn starts_with(path: &[Step], prefix: &[Step]) -> bool {
    path.len() >= prefix.len()
        && path.iter().zip(prefix).all(|(a, b)| match (a, b) {
            (Step::Index(_), Step::Index(usize::MAX)) => true,
            _ => a == b,
        })
}

/// Parses `a.b[].c` (with `[]` for any index) into a path.
pub fn path(spec: &str) -> Path {
    let mut out = Vec::new();
    for part in spec.split('.').filter(|p| !p.is_empty()) {
        let (name, lists) = match part.find("[]") {
            Some(i) => (&part[..i], part[i..].matches("[]").count()),
            None => (part, 0),
        };
        if !name.is_empty() {
            out.push(Step::Key(name.to_owned()));
        }
        out.extend(std::iter::repeat_n(Step::Index(usize::MAX), lists));
    }
    out
}

/// Whether `path` is an ancestor-or-self of any of `protected`: rewriting it would rewrite what
/// they hold.
pub fn covers_any(path: &[Step], protected: &[Path]) -> bool {
    protected.iter().any(|p| starts_with_pattern(p, path))
}

/// Whether the concrete `path` is a prefix of the pattern `pattern` (indices match wildcards).
fn starts_with_pattern(pattern: &[Step], path: &[Step]) -> bool {
    pattern.len() >= path.len()
        && pattern.iter().zip(path).all(|(p, a)| match (p, a) {
            (Step::Index(usize::MAX), Step::Index(_)) => true,
            _ => p == a,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_variation_does_what_it_says() {
        let body = json!({"id": 1, "title": "t", "draft": true, "createdDate": 1_787_160_475_266_i64,
                          "reviewers": [{"user": {"name": "a"}}], "toRef": {"id": "refs/heads/main"}});
        let at = |k: &str| vec![Step::Key(k.into())];
        let mut v = body.clone();
        assert!(apply(&mut v, &at("title"), Variation::Remove));
        assert!(v.get("title").is_none());
        let mut v = body.clone();
        apply(&mut v, &at("draft"), Variation::OtherType);
        assert_eq!(v["draft"], json!("maybe"));
        let mut v = body.clone();
        apply(&mut v, &at("title"), Variation::OtherShape);
        assert_eq!(v["title"], json!({"value": "t"}));
        let mut v = body.clone();
        apply(&mut v, &at("toRef"), Variation::OtherShape);
        assert!(v["toRef"].is_string());
        let mut v = body.clone();
        apply(&mut v, &at("reviewers"), Variation::NullEntries);
        assert_eq!(v["reviewers"].as_array().map(Vec::len), Some(3));
        let mut v = body.clone();
        apply(&mut v, &at("createdDate"), Variation::IsoDate);
        assert_eq!(v["createdDate"], json!("2026-08-19T17:27:55.266Z"));
        assert!(!apply(&mut body.clone(), &at("title"), Variation::IsoDate));
        let mut v = body.clone();
        apply(&mut v, &at("id"), Variation::UnknownSibling);
        assert_eq!(v["id"], json!(1));
        assert!(v.get("idExtension").is_some());
    }

    #[test]
    fn paths_and_patterns() {
        let body = json!({"a": {"b": [{"c": 1}, {"c": 2}]}});
        let paths = field_paths(&body);
        assert_eq!(paths.len(), 4);
        assert!(starts_with(&paths[3], &path("a.b[].c")));
        assert!(covers_any(&path("a"), &[path("a.b[].c")]));
        assert!(covers_any(&paths[2], &[path("a.b[].c")]));
        assert!(!covers_any(&path("x"), &[path("a.b[].c")]));
        assert_eq!(get(&body, &paths[3]), Some(&json!(2)));
    }
}
