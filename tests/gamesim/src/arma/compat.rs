//! The thin seam to `languard-shared`'s Arma helpers (GUID derivation, RPT prefixes and
//! file names), adapted to `time::OffsetDateTime`.

use languard_shared::arma::rpt::{RptDate, RptDateTime, RptTime};
use time::OffsetDateTime;

pub use languard_shared::arma::config::TimeStampFormat;
pub use languard_shared::arma::guid::be_guid;

/// server.cfg's value, case-insensitive; anything unknown is `None` (no prefix).
pub fn timestamp_format_from_cfg(s: &str) -> TimeStampFormat {
    match s.trim().to_ascii_lowercase().as_str() {
        "short" => TimeStampFormat::Short,
        "full" => TimeStampFormat::Full,
        _ => TimeStampFormat::None,
    }
}

fn date_of(t: OffsetDateTime) -> RptDate {
    RptDate {
        year: u16::try_from(t.year()).unwrap_or(0),
        month: u8::from(t.month()),
        day: t.day(),
    }
}

/// The RPT line prefix: `""`, `" H:MM:SS "` or `"YYYY/MM/DD, HH:MM:SS "`.
pub fn format_prefix(format: TimeStampFormat, t: OffsetDateTime) -> String {
    languard_shared::arma::rpt::format_prefix(
        format,
        &RptTime {
            date: Some(date_of(t)),
            hour: t.hour(),
            minute: t.minute(),
            second: t.second(),
        },
    )
}

/// `arma3server_x64_YYYY-MM-DD_HH-MM-SS.rpt` (or `arma3server_…` for the 32-bit exe).
pub fn rpt_file_name(x64: bool, t: OffsetDateTime) -> String {
    languard_shared::arma::rpt::rpt_file_name(
        if x64 {
            "arma3server_x64"
        } else {
            "arma3server"
        },
        RptDateTime {
            date: date_of(t),
            hour: t.hour(),
            minute: t.minute(),
            second: t.second(),
        },
    )
}

/// Local time when the offset can be determined, UTC otherwise.
pub fn now_local() -> OffsetDateTime {
    OffsetDateTime::now_local().unwrap_or_else(|_| OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn guid_vector() {
        assert_eq!(
            be_guid(76561198017965694),
            "f8960b9fd7cf711046c1df2ab8d534b2"
        );
    }

    #[test]
    fn prefixes() {
        let t = datetime!(2022-11-13 0:26:15 UTC);
        assert_eq!(format_prefix(TimeStampFormat::Short, t), " 0:26:15 ");
        assert_eq!(
            format_prefix(TimeStampFormat::Full, t),
            "2022/11/13, 00:26:15 "
        );
        assert_eq!(format_prefix(TimeStampFormat::None, t), "");
        assert_eq!(
            rpt_file_name(true, t),
            "arma3server_x64_2022-11-13_00-26-15.rpt"
        );
        assert_eq!(timestamp_format_from_cfg("FULL"), TimeStampFormat::Full);
    }
}
