//! Errors as one line of text with their causes. The library's errors carry their cause as
//! [`std::error::Error::source`] and say only their own context in `Display`, so a cause is
//! never printed twice; where an error becomes a message (a log line, a report, a WIT string),
//! [`chain`] writes the whole chain.

/// `err` and each of its sources, outermost first, joined by `": "`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("opening the store")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_written_once_outermost_first() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(chain(&e), "opening the store: disk full");
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
