//! Text from a server or a client made safe to print: control characters (ANSI and OSC escape
//! sequences, carriage returns, newlines) and bidirectional overrides are shown as `\u{..}`,
//! never interpreted by a terminal, and anything a client sent is cut to a prefix before it
//! reaches a log line.

use std::fmt;

/// Longest prefix of client-sent text (a header, an id) a log line carries.
pub const LOG_PREFIX_CHARS: usize = 120;

/// Whether a character must be shown escaped: C0 and C1 controls, DEL, and the Unicode
/// bidirectional embeddings, overrides and isolates that can reorder what a terminal shows.
fn hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` for a terminal or a log, with at most `max_chars` characters of it (the rest is
/// replaced by a count).
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a> {
    text: &'a str,
    max_chars: usize,
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (i, c)) in self.text.char_indices().enumerate() {
            if n == self.max_chars {
                return write!(f, "…({} more bytes)", self.text.len() - i);
            }
            if hidden(c) {
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// All of `text`, escaped.
pub fn shown(text: &str) -> Printable<'_> {
    Printable {
        text,
        max_chars: usize::MAX,
    }
}

/// At most [`LOG_PREFIX_CHARS`] characters of `text`, escaped: for what a client sent.
pub fn prefix(text: &str) -> Printable<'_> {
    Printable {
        text,
        max_chars: LOG_PREFIX_CHARS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_interpreted() {
        let hostile = "bad\u{1b}[31mred\u{1b}]0;title\u{7}\r\nnext\u{202e}";
        let out = shown(hostile).to_string();
        assert!(!out.chars().any(hidden), "{out:?}");
        assert_eq!(
            out,
            "bad\\u{1b}[31mred\\u{1b}]0;title\\u{7}\\u{d}\\u{a}next\\u{202e}"
        );
        assert_eq!(shown("Ünïcode ✓").to_string(), "Ünïcode ✓");
    }

    #[test]
    fn a_prefix_is_cut_and_says_how_much_is_left() {
        let long = "x".repeat(500_000);
        let out = prefix(&long).to_string();
        assert!(out.len() < 200, "{} bytes", out.len());
        assert!(out.ends_with(&format!("…({} more bytes)", 500_000 - LOG_PREFIX_CHARS)));
        assert_eq!(prefix("short").to_string(), "short");
    }
}
