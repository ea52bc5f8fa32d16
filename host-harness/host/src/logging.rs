//! Log filtering that keeps secrets out of logs at every level.
//!
//! `ureq_proto` dumps the raw bytes of each request at TRACE level, `Authorization` header
//! included, so it is capped at DEBUG whatever the user asks for. Embedders building their own
//! `tracing` subscriber should filter with [`env_filter`] too.

use tracing_subscriber::EnvFilter;

/// Targets whose verbosity is capped, with the most verbose level allowed.
const CAPPED: &[(&str, Level)] = &[("ureq_proto", Level::Debug)];

/// `tracing` levels, least verbose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "off" => Level::Off,
            "error" => Level::Error,
            "warn" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

/// The level a directive asks for, and for which target (`""`: every target).
fn directive(d: &str) -> Option<(&str, Level)> {
    if d.contains('[') {
        return None;
    }
    match d.split_once('=') {
        Some((target, level)) => Some((target.trim(), Level::parse(level)?)),
        None => match Level::parse(d) {
            Some(level) => Some(("", level)),
            None => Some((d.trim(), Level::Trace)),
        },
    }
}

/// An `EnvFilter` for `spec` (`RUST_LOG` syntax) in which every capped target logs no more
/// than it is asked to and never above its cap. An empty spec means `warn`.
pub fn env_filter(spec: &str) -> EnvFilter {
    let given: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let mut kept: Vec<String> = Vec::new();
    let mut caps: Vec<String> = Vec::new();
    for (target, cap) in CAPPED {
        // The most verbose level any directive asks for that reaches this target.
        let wanted = given
            .iter()
            .filter_map(|d| directive(d))
            .filter(|(t, _)| t.starts_with(target) || target.starts_with(t))
            .map(|(_, level)| level)
            .max();
        if let Some(level) = wanted {
            caps.push(format!("{target}={}", level.min(*cap).name()));
        }
    }
    kept.extend(
        given
            .iter()
            .filter(|d| !CAPPED.iter().any(|(t, _)| d.starts_with(t)))
            .map(|d| d.to_string()),
    );
    if kept.is_empty() {
        kept.push("warn".into());
    }
    let full = kept.into_iter().chain(caps).collect::<Vec<_>>().join(",");
    EnvFilter::try_new(&full).unwrap_or_else(|_| EnvFilter::new("warn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_never_raises_a_level() {
        for (spec, expected) in [
            ("warn", "ureq_proto=warn"),
            ("error,bbdc_host=debug", "ureq_proto=error"),
            ("info", "ureq_proto=info"),
            ("ureq=trace", "ureq_proto=debug"),
        ] {
            let f = env_filter(spec).to_string();
            assert!(f.contains(expected), "{spec} → {f}");
        }
        let f = env_filter("bbdc_host=debug").to_string();
        assert!(!f.contains("ureq_proto"), "{f}");
        let f = env_filter("").to_string();
        assert_eq!(f, "warn");
    }

    #[test]
    fn ureq_proto_is_capped_even_when_asked_for() {
        for spec in [
            "trace",
            "ureq_proto=trace",
            "trace,ureq_proto=trace",
            "ureq_proto::client=trace",
        ] {
            let f = env_filter(spec).to_string();
            assert!(f.contains("ureq_proto=debug"), "{spec} → {f}");
            assert!(!f.contains("ureq_proto=trace"), "{spec} → {f}");
        }
    }
}
