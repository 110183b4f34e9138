//! What the tail asks of a game's log format: a [`LineParser`] turns one line into its
//! printed time, a severity and the message. Game adapters provide one; the tail knows
//! no game.

use std::borrow::Cow;

use languard_shared::wire::LogLevel;
use serde::{Deserialize, Serialize};

/// A calendar date as printed in a log line (server local time, no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// The wall-clock time printed at the start of a log line. It has no zone, so it is
/// kept as printed instead of being converted to an instant; the line's instant is
/// when the tail read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineTime {
    /// Only when the format prints one.
    pub date: Option<LineDate>,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    pub time: Option<LineTime>,
    pub level: LogLevel,
    /// The message after the time prefix, without the line ending; borrowed from the
    /// input when it is valid UTF-8.
    pub text: Cow<'a, str>,
}

/// A game's log line format. Called on the tail's blocking thread for every line, so
/// it must be cheap and must never fail (a line it does not understand is a message).
pub trait LineParser: Send + Sync + std::fmt::Debug {
    /// Parses one line (without its line ending).
    fn parse<'a>(&self, line: &'a [u8]) -> ParsedLine<'a>;
}

/// Lines as they are: no time prefix, everything [`LogLevel::Info`]. For logs whose
/// format the agent does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlainLines;

impl LineParser for PlainLines {
    fn parse<'a>(&self, line: &'a [u8]) -> ParsedLine<'a> {
        ParsedLine {
            time: None,
            level: LogLevel::Info,
            text: String::from_utf8_lossy(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_keep_the_whole_line_and_decode_lossily() {
        let p = PlainLines.parse(b" 9:15:02 Error: x\xff");
        assert_eq!(p.time, None);
        assert_eq!(p.level, LogLevel::Info);
        assert_eq!(p.text, " 9:15:02 Error: x\u{FFFD}");
    }
}
