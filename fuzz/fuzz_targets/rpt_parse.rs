//! The RPT (server console log) line parser and RPT file names
//! (`shared/src/arma/rpt.rs`): the log is written by the game and by every mod.
//!
//! Properties: never panics, under every `timeStampFormat`; the level is the
//! classification of the message; the message is the tail of the line (lossily decoded);
//! re-printing a parsed timestamp with the server's own prefix and the message parses
//! back to the same line (so a parsed line never turns into another one when
//! re-emitted); a parsed file name prints back to itself.
#![no_main]

use languard_shared::arma::rpt::{
    self, RptTimestampFormat, classify, format_prefix, parse_line, parse_line_with,
};
use libfuzzer_sys::fuzz_target;

const FORMATS: [RptTimestampFormat; 3] = [
    RptTimestampFormat::None,
    RptTimestampFormat::Short,
    RptTimestampFormat::Full,
];

fn check(line: &[u8], format: Option<RptTimestampFormat>) {
    let parsed = match format {
        Some(f) => parse_line_with(line, f),
        None => parse_line(line),
    };
    assert_eq!(parsed.level, classify(&parsed.message));
    assert!(parsed.message.len() <= line.len() * 3);
    if format == Some(RptTimestampFormat::None) {
        assert!(parsed.time.is_none());
    }
    if let Ok(text) = std::str::from_utf8(line) {
        let body = text.strip_suffix('\n').unwrap_or(text);
        let body = body.strip_suffix('\r').unwrap_or(body);
        assert!(body.ends_with(&*parsed.message), "{parsed:?}");
    }
    if let Some(time) = parsed.time {
        if format == Some(RptTimestampFormat::Short) {
            assert!(time.date.is_none());
        }
        let printed_as = if time.date.is_some() {
            RptTimestampFormat::Full
        } else {
            RptTimestampFormat::Short
        };
        // Re-emitted the way the server ends lines, so a message ending in `\r` or
        // `\n` survives the end-of-line stripping.
        let again = format!("{}{}\r\n", format_prefix(printed_as, &time), parsed.message);
        let reparsed = match format {
            Some(f) => parse_line_with(again.as_bytes(), f),
            None => parse_line(again.as_bytes()),
        };
        assert_eq!(reparsed.time, Some(time), "{again:?}");
        assert_eq!(reparsed.message, parsed.message, "{again:?}");
    }
    let _ = rpt::parse_player_steam_id(&parsed.message);
}

fuzz_target!(|data: &[u8]| {
    check(data, None);
    for f in FORMATS {
        check(data, Some(f));
    }
    if let Ok(name) = std::str::from_utf8(data)
        && let Some((stem, time)) = rpt::parse_rpt_file_name(name)
    {
        let printed = rpt::rpt_file_name(stem, time);
        assert_eq!(printed.len(), name.len());
        assert_eq!(printed[..name.len() - 4], name[..name.len() - 4]);
        assert_eq!(rpt::parse_rpt_file_name(&printed), Some((stem, time)));
    }
});
