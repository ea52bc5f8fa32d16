//! Diff statistics counted while streaming, without keeping any source code.
//!
//! The diff JSON (`{diffs: [{hunks: [{segments: [{type, lines: [...]}]}]}], truncated}`) is read
//! through serde visitors straight from the HTTP body stream: `lines` elements are skipped with
//! `IgnoredAny` (serde_json does not buffer a skipped string), so only counters live in memory and
//! no line of code is kept, returned or logged, whatever the diff's size.

use crate::host::{BodyStream, HttpError};
use crate::model::DiffStats;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::io::Read;

/// Bytes asked of the host per read.
const CHUNK: u32 = 64 * 1024;

/// Why a diff could not be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// The body stream failed.
    #[error("reading the diff failed: {0}")]
    Transport(HttpError),
    /// The body is not a Bitbucket diff.
    #[error("malformed diff: {0}")]
    Malformed(String),
}

/// Adapts a [`BodyStream`] to `std::io::Read`, remembering the host's error.
struct StreamReader<'a> {
    body: &'a mut dyn BodyStream,
    chunk: Vec<u8>,
    pos: usize,
    error: Option<HttpError>,
}

impl Read for StreamReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.body.read(CHUNK) {
                Ok(Some(c)) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Ok(None) => return Ok(0),
                Err(e) => {
                    self.error = Some(e);
                    return Err(std::io::Error::other("body stream failed"));
                }
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Counts a diff read from a host body stream.
pub fn count_stream(body: &mut dyn BodyStream) -> Result<DiffStats, DiffError> {
    let mut reader = StreamReader {
        body,
        chunk: Vec::new(),
        pos: 0,
        error: None,
    };
    let result = count_reader(&mut reader);
    match (result, reader.error.take()) {
        (Err(_), Some(e)) => Err(DiffError::Transport(e)),
        (r, _) => r,
    }
}

/// Counts a diff from any reader.
pub fn count_reader(reader: impl Read) -> Result<DiffStats, DiffError> {
    let mut stats = DiffStats::default();
    let mut de = serde_json::Deserializer::from_reader(reader);
    let was_object = Level::Root
        .seed(&mut stats)
        .deserialize(&mut de)
        .and_then(|object| de.end().map(|()| object))
        .map_err(|e| DiffError::Malformed(e.to_string()))?;
    if !was_object {
        return Err(DiffError::Malformed("the diff is not a JSON object".into()));
    }
    Ok(stats)
}

/// Where in the diff document a map is.
#[derive(Clone, Copy)]
enum Level {
    Root,
    File,
    Hunk,
    Segment,
}

impl Level {
    fn seed(self, stats: &mut DiffStats) -> MapSeed<'_> {
        MapSeed { level: self, stats }
    }

    /// The key whose value is the array of the next level down.
    fn child_key(self) -> &'static str {
        match self {
            Level::Root => "diffs",
            Level::File => "hunks",
            Level::Hunk => "segments",
            Level::Segment => "lines",
        }
    }

    fn child(self) -> Option<Level> {
        match self {
            Level::Root => Some(Level::File),
            Level::File => Some(Level::Hunk),
            Level::Hunk => Some(Level::Segment),
            Level::Segment => None,
        }
    }
}

/// Visitor methods for JSON shapes a visitor does not read: each listed shape answers `$value`,
/// nested arrays and objects skipped unread first. One rule for "another shape is absent".
macro_rules! other_shapes_answer {
    ($value:expr; $($shape:ident),*) => { $( other_shapes_answer!(@ $shape $value); )* };
    (@ unit $v:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok($v) }
    };
    (@ bool $v:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($v) }
    };
    (@ i64 $v:expr) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($v) }
    };
    (@ u64 $v:expr) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($v) }
    };
    (@ f64 $v:expr) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($v) }
    };
    (@ str $v:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($v) }
    };
    (@ seq $v:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($v)
        }
    };
    (@ map $v:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($v)
        }
    };
}

/// Keys the counter cares about; everything else is skipped unread.
enum Key {
    Children,
    Truncated,
    Type,
    Other,
}

struct KeySeed(Level);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
        Ok(if k == self.0.child_key() {
            Key::Children
        } else if k == "truncated" {
            Key::Truncated
        } else if k == "type" {
            Key::Type
        } else {
            Key::Other
        })
    }
}

/// A segment's `type`, read without keeping anything else.
#[derive(Clone, Copy, PartialEq)]
enum SegmentType {
    Added,
    Removed,
    Other,
}

struct SegmentTypeSeed;

impl<'de> DeserializeSeed<'de> for SegmentTypeSeed {
    type Value = SegmentType;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<SegmentType, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SegmentTypeSeed {
    type Value = SegmentType;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a segment type")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<SegmentType, E> {
        Ok(match v {
            "ADDED" => SegmentType::Added,
            "REMOVED" => SegmentType::Removed,
            _ => SegmentType::Other,
        })
    }
    other_shapes_answer!(SegmentType::Other; unit, bool, i64, u64, f64, seq, map);
}

/// A flag (`truncated`): `true` only when it is the boolean `true`.
struct FlagSeed;

impl<'de> DeserializeSeed<'de> for FlagSeed {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlagSeed {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a flag")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    other_shapes_answer!(false; unit, i64, u64, f64, str, seq, map);
}

/// Reads one map of the diff at `level`, updating `stats`; answers whether it was a map (a
/// `null` or another shape in its place is skipped and counts for nothing).
struct MapSeed<'a> {
    level: Level,
    stats: &'a mut DiffStats,
}

impl<'de> DeserializeSeed<'de> for MapSeed<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MapSeed<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a diff object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut lines = 0u64;
        let mut kind = SegmentType::Other;
        while let Some(key) = map.next_key_seed(KeySeed(self.level))? {
            match key {
                Key::Children => match self.level.child() {
                    Some(child) => map.next_value_seed(SeqSeed {
                        level: child,
                        stats: &mut *self.stats,
                    })?,
                    None => lines = map.next_value_seed(CountSeed)?,
                },
                Key::Truncated => {
                    if map.next_value_seed(FlagSeed)? {
                        self.stats.truncated = true;
                    }
                }
                Key::Type if matches!(self.level, Level::Segment) => {
                    kind = map.next_value_seed(SegmentTypeSeed)?
                }
                Key::Type | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match kind {
            SegmentType::Added => self.stats.additions = self.stats.additions.saturating_add(lines),
            SegmentType::Removed => {
                self.stats.deletions = self.stats.deletions.saturating_add(lines)
            }
            SegmentType::Other => {}
        }
        Ok(true)
    }

    other_shapes_answer!(false; unit, bool, i64, u64, f64, str, seq);
}

/// Reads an array of maps at `level` (anything else in its place is empty).
struct SeqSeed<'a> {
    level: Level,
    stats: &'a mut DiffStats,
}

impl<'de> DeserializeSeed<'de> for SeqSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SeqSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of diff objects")
    }

    other_shapes_answer!((); unit, bool, i64, u64, f64, str, map);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(was_map) = seq.next_element_seed(self.level.seed(&mut *self.stats))? {
            if was_map && matches!(self.level, Level::File) {
                self.stats.files_changed = self.stats.files_changed.saturating_add(1);
            }
        }
        Ok(())
    }
}

/// Counts the non-null elements of an array without reading them (anything else is none).
struct CountSeed;

impl<'de> DeserializeSeed<'de> for CountSeed {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountSeed {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of lines")
    }
    other_shapes_answer!(0; unit, bool, i64, u64, f64, str, map);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0u64;
        while let Some(line) = seq.next_element::<Option<IgnoredAny>>()? {
            if line.is_some() {
                n = n.saturating_add(1);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn count(v: serde_json::Value) -> DiffStats {
        count_reader(v.to_string().as_bytes()).unwrap()
    }

    fn seg(kind: &str, n: usize) -> serde_json::Value {
        let lines: Vec<_> = (0..n).map(|i| json!({"source": i, "destination": i, "line": format!("code line {i}"), "truncated": false})).collect();
        json!({"type": kind, "lines": lines, "truncated": false})
    }

    fn path(p: &str) -> serde_json::Value {
        json!({"components": p.split('/').collect::<Vec<_>>(), "name": p, "toString": p})
    }

    #[test]
    fn counts_added_and_removed_lines_and_files() {
        let d = json!({
            "fromHash": "a", "toHash": "b", "contextLines": 0, "whitespace": "SHOW",
            "diffs": [
                {"source": path("src/a.rs"), "destination": path("src/a.rs"), "hunks": [
                    {"sourceLine": 1, "sourceSpan": 3, "destinationLine": 1, "destinationSpan": 4,
                     "segments": [seg("REMOVED", 2), seg("ADDED", 3), seg("CONTEXT", 5)], "truncated": false}
                ], "truncated": false},
                {"source": null, "destination": path("src/new.rs"), "hunks": [{"segments": [seg("ADDED", 10)]}]},
                {"source": path("old.rs"), "destination": null, "hunks": [{"segments": [seg("REMOVED", 4)]}]}
            ],
            "truncated": false
        });
        assert_eq!(
            count(d),
            DiffStats {
                additions: 13,
                deletions: 6,
                files_changed: 3,
                truncated: false
            }
        );
    }

    #[test]
    fn a_rename_counts_once_and_binary_files_count() {
        let d = json!({"diffs": [
            {"source": path("a/old.rs"), "destination": path("a/new.rs"), "hunks": []},
            {"source": path("img.png"), "destination": path("img.png"), "binary": true}
        ]});
        assert_eq!(
            count(d),
            DiffStats {
                additions: 0,
                deletions: 0,
                files_changed: 2,
                truncated: false
            }
        );
    }

    #[test]
    fn truncation_at_any_level_is_flagged() {
        for d in [
            json!({"diffs": [], "truncated": true}),
            json!({"diffs": [{"hunks": [], "truncated": true}]}),
            json!({"diffs": [{"hunks": [{"segments": [], "truncated": true}]}]}),
            json!({"diffs": [{"hunks": [{"segments": [{"type": "ADDED", "lines": [], "truncated": true}]}]}]}),
        ] {
            assert!(count(d.clone()).truncated, "{d}");
        }
    }

    #[test]
    fn segment_type_may_come_after_lines_and_nulls_are_empty() {
        let d = json!({"diffs": [{"hunks": [{"segments": [{"lines": [{"line": "x"}, {"line": "y"}], "type": "ADDED"}]}, {"segments": null}]}, {"hunks": null}]});
        assert_eq!(
            count(d),
            DiffStats {
                additions: 2,
                deletions: 0,
                files_changed: 2,
                truncated: false
            }
        );
    }

    #[test]
    fn null_entries_and_other_shapes_count_for_nothing_and_fail_nothing() {
        let d = json!({"diffs": [
            null,
            {"source": "a.rs", "destination": {"toString": 5}, "hunks": [null, {"segments": [
                null,
                {"type": "ADDED", "lines": [{"line": "x"}, null, {"line": "y"}], "truncated": "no"},
                {"type": {"id": "REMOVED"}, "lines": [{"line": "z"}]},
                {"type": "REMOVED", "lines": {"line": "w"}},
                {"type": "REMOVED", "lines": [{"line": "v"}], "truncated": null}
            ]}], "truncated": {"why": true}},
            "not a file",
            {"hunks": 7}
        ], "truncated": 1});
        assert_eq!(
            count(d),
            DiffStats {
                additions: 2,
                deletions: 1,
                files_changed: 2,
                truncated: false
            }
        );
        assert_eq!(count(json!({"diffs": 5})), DiffStats::default());
    }

    #[test]
    fn empty_diff_and_garbage() {
        assert_eq!(count(json!({})), DiffStats::default());
        assert!(matches!(
            count_reader(&b"{\"diffs\": [ {"[..]),
            Err(DiffError::Malformed(_))
        ));
        assert!(matches!(
            count_reader(&b"<html>"[..]),
            Err(DiffError::Malformed(_))
        ));
        assert!(matches!(
            count_reader(&b"[1, 2]"[..]),
            Err(DiffError::Malformed(_))
        ));
        assert!(matches!(
            count_reader(&b"{} trailing"[..]),
            Err(DiffError::Malformed(_))
        ));
    }

    struct Failing(u8);
    impl BodyStream for Failing {
        fn read(&mut self, _max: u32) -> Result<Option<Vec<u8>>, HttpError> {
            if self.0 == 0 {
                self.0 = 1;
                Ok(Some(b"{\"diffs\": [".to_vec()))
            } else {
                Err(HttpError::Connection("reset".into()))
            }
        }
    }

    #[test]
    fn a_cut_stream_is_a_transport_error() {
        assert_eq!(
            count_stream(&mut Failing(0)),
            Err(DiffError::Transport(HttpError::Connection("reset".into())))
        );
    }

    /// A body stream that produces a huge diff on the fly, never holding it whole.
    struct Generated {
        files: u32,
        lines_per_file: u32,
        file: u32,
        done: bool,
    }

    impl BodyStream for Generated {
        fn read(&mut self, _max: u32) -> Result<Option<Vec<u8>>, HttpError> {
            if self.done {
                return Ok(None);
            }
            let mut out = Vec::new();
            if self.file == 0 {
                out.extend_from_slice(b"{\"diffs\":[");
            }
            if self.file < self.files {
                if self.file > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(
                    b"{\"hunks\":[{\"segments\":[{\"type\":\"ADDED\",\"lines\":[",
                );
                for i in 0..self.lines_per_file {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(
                        b"{\"line\":\"SECRET-SOURCE-LINE with some length to it\"}",
                    );
                }
                out.extend_from_slice(b"]}]}]}");
                self.file += 1;
            } else {
                out.extend_from_slice(b"],\"truncated\":false}");
                self.done = true;
            }
            Ok(Some(out))
        }
    }

    #[test]
    fn counts_a_large_streamed_diff() {
        let mut g = Generated {
            files: 200,
            lines_per_file: 2000,
            file: 0,
            done: false,
        };
        let stats = count_stream(&mut g).unwrap();
        assert_eq!(
            stats,
            DiffStats {
                additions: 400_000,
                deletions: 0,
                files_changed: 200,
                truncated: false
            }
        );
    }
}
