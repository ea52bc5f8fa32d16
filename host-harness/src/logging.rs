//! Log filtering that keeps secrets out of logs at every level.
//!
//! `ureq_proto` dumps the raw bytes of each request at TRACE level, `Authorization` header
//! included, so it is capped at DEBUG whatever the user asks for. Embedders building their own
//! `tracing` subscriber should filter with [`env_filter`] too.

use tracing_subscriber::EnvFilter;

/// Targets whose most verbose output would contain credentials, and the level they are capped at.
const CAPPED: &[(&str, &str)] = &[("ureq_proto", "debug")];

/// An `EnvFilter` for `spec` (e.g. `BBDC_LOG=trace`), with the capped targets capped.
pub fn env_filter(spec: &str) -> EnvFilter {
    let kept: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !CAPPED.iter().any(|(t, _)| d.starts_with(t)))
        .collect();
    let capped: Vec<String> = CAPPED.iter().map(|(t, l)| format!("{t}={l}")).collect();
    let full = kept
        .into_iter()
        .map(str::to_owned)
        .chain(capped)
        .collect::<Vec<_>>()
        .join(",");
    EnvFilter::try_new(&full).unwrap_or_else(|_| {
        EnvFilter::new(
            CAPPED
                .iter()
                .map(|(t, l)| format!("warn,{t}={l}"))
                .collect::<String>(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ureq_proto_is_capped_even_when_asked_for() {
        for spec in [
            "trace",
            "ureq_proto=trace",
            "trace,ureq_proto=trace",
            "info",
        ] {
            let f = env_filter(spec).to_string();
            assert!(f.contains("ureq_proto=debug"), "{spec} → {f}");
            assert!(!f.contains("ureq_proto=trace"), "{spec} → {f}");
        }
    }
}
