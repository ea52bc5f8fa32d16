//! The wall clock as the host's records and de-duplication windows count it.

/// Now, in milliseconds since the Unix epoch (0 before it, `i64::MAX` past the range).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
