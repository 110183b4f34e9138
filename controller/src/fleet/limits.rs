//! What an agent may put into the controller's store and consoles.
//!
//! The link trusts an agent to speak only for its own servers (checked in [`super::ingest`]),
//! not to be well-behaved: a compromised agent could send megabyte-long names, control
//! characters that rewrite a terminal or a log viewer, times from 1970 or the year 2999 (a
//! row from the future outlives every retention run) and NaN or negative metrics. So every
//! value that came from an agent passes through here once, before rows or live messages
//! are built from it. Values are cut or clamped, never refused: a refused event would be
//! replayed by the agent forever, a clamped one is stored and acknowledged exactly once.

use std::time::Duration;

use languard_shared::wire::event::{Event, EventEnvelope, LogLine, ServerStatus};
use languard_shared::wire::player::{ChatChannel, Player, PlayerEvent};

/// Longest stored log line, bytes (the agent may send up to 1 MiB: no game line worth
/// reading is that long, and every stored byte is indexed).
pub const MAX_LOG_TEXT: usize = 16 * 1024;
/// Appended to a log line cut at [`MAX_LOG_TEXT`], so a reader knows text is missing.
pub const TRUNCATED_MARK: &str = " …[truncated]";
/// Most lines of one log event (our agent sends at most 1000); the rest is dropped.
pub const MAX_LINES_PER_EVENT: usize = 10_000;
/// Most events the link hands to one ingest transaction from one agent message; a
/// larger message is split (nothing is lost, each part is committed on its own).
pub const MAX_EVENTS_PER_BATCH: usize = 10_000;
/// How far in the past a record time may lie: older times become this bound. Far longer
/// than any outage the agent's outbox rides out; anything older falls to retention anyway.
pub const MAX_PAST: Duration = Duration::from_secs(30 * 24 * 3600);
/// How far an agent's clock may run ahead of ours: later times become now + this.
pub const MAX_FUTURE: Duration = Duration::from_secs(5 * 60);
/// Longest agent build string, characters.
pub const MAX_AGENT_VERSION: usize = 64;
/// Longest player handle, name, account or admin name, characters.
pub const MAX_LABEL: usize = 128;
/// Longest chat channel name, characters.
pub const MAX_CHANNEL: usize = 64;
/// Longest chat message or kick reason, characters.
pub const MAX_MESSAGE: usize = 2048;
/// Longest status detail (error reason, crash detail), characters.
pub const MAX_DETAIL: usize = 4096;
/// Highest CPU figure taken, percent (1000 fully busy cores); above is no measurement.
pub const MAX_CPU_PERCENT: f64 = 100_000.0;

/// The window record times are clamped to, in wire milliseconds around `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Earliest time kept.
    pub earliest: i64,
    /// Latest time kept.
    pub latest: i64,
}

impl TimeWindow {
    /// [`MAX_PAST`] before to [`MAX_FUTURE`] after `now_ms`.
    pub fn around(now_ms: i64) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            earliest: now_ms.saturating_sub(ms(MAX_PAST)),
            latest: now_ms.saturating_add(ms(MAX_FUTURE)),
        }
    }

    /// A record time (when the agent saw something): inside the window.
    pub fn record(&self, ms: i64) -> i64 {
        ms.clamp(self.earliest, self.latest)
    }

    /// A "since" time (a state may have been entered long ago): not in the future.
    pub fn since(&self, ms: i64) -> i64 {
        ms.min(self.latest)
    }
}

/// A short single-line text: control characters (newlines included) removed, at most
/// `max` characters.
pub fn label(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// A free text that may span lines: control characters other than newline and tab
/// removed, at most `max` characters.
pub fn text(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .take(max)
        .collect()
}

/// A log line's text, cut to [`MAX_LOG_TEXT`] bytes at a character boundary with
/// [`TRUNCATED_MARK`] appended. Control characters stay: a log is shown as the game
/// wrote it (escaped by whoever displays it); the store replaces NUL.
pub fn log_text(mut s: String) -> String {
    if s.len() <= MAX_LOG_TEXT {
        return s;
    }
    let mut cut = MAX_LOG_TEXT - TRUNCATED_MARK.len();
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(TRUNCATED_MARK);
    s
}

/// A CPU figure, or `None` when it is no measurement (NaN, infinite, negative, absurd).
pub fn cpu_percent(v: f32) -> Option<f64> {
    let v = f64::from(v);
    (v.is_finite() && (0.0..=MAX_CPU_PERCENT).contains(&v)).then_some(v)
}

/// A status report within limits: `since` not in the future, `detail` cut.
pub fn status(mut s: ServerStatus, window: &TimeWindow) -> ServerStatus {
    s.since = window.since(s.since);
    s.detail = s.detail.as_deref().map(|d| text(d, MAX_DETAIL));
    s
}

fn player(mut p: Player) -> Player {
    p.key = label(&p.key, MAX_LABEL);
    p.name = label(&p.name, MAX_LABEL);
    p.account = p.account.as_deref().map(|a| label(a, MAX_LABEL));
    p
}

fn opt_label(s: Option<String>) -> Option<String> {
    s.as_deref().map(|a| label(a, MAX_LABEL))
}

/// A player event within limits: names, handles and accounts are labels, chat and
/// reasons are cut messages on one line.
pub fn player_event(e: PlayerEvent) -> PlayerEvent {
    match e {
        PlayerEvent::Joined { player: p } => PlayerEvent::Joined { player: player(p) },
        PlayerEvent::Identified {
            key,
            name,
            account,
            verified,
        } => PlayerEvent::Identified {
            key: label(&key, MAX_LABEL),
            name: label(&name, MAX_LABEL),
            account: label(&account, MAX_LABEL),
            verified,
        },
        PlayerEvent::Left { key, name, account } => PlayerEvent::Left {
            key: label(&key, MAX_LABEL),
            name: label(&name, MAX_LABEL),
            account: opt_label(account),
        },
        PlayerEvent::Kicked {
            key,
            name,
            account,
            reason,
        } => PlayerEvent::Kicked {
            key: label(&key, MAX_LABEL),
            name: label(&name, MAX_LABEL),
            account: opt_label(account),
            reason: label(&reason, MAX_MESSAGE),
        },
        PlayerEvent::Chat {
            channel,
            name,
            text,
        } => PlayerEvent::Chat {
            channel: match channel {
                ChatChannel::Other(c) => ChatChannel::Other(label(&c, MAX_CHANNEL)),
                c => c,
            },
            name: label(&name, MAX_LABEL),
            text: label(&text, MAX_MESSAGE),
        },
        PlayerEvent::AdminLogin { admin, address } => PlayerEvent::AdminLogin {
            admin: label(&admin, MAX_LABEL),
            address,
        },
    }
}

/// What [`envelope`] had to drop.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Log lines beyond [`MAX_LINES_PER_EVENT`].
    pub lines: usize,
}

/// An event envelope within limits: times clamped to `window`, texts cut, log events
/// at most [`MAX_LINES_PER_EVENT`] lines (the excess is counted in `dropped`). Metrics
/// figures are checked where they become rows ([`cpu_percent`]).
pub fn envelope(
    mut env: EventEnvelope,
    window: &TimeWindow,
    dropped: &mut Dropped,
) -> EventEnvelope {
    env.at = window.record(env.at);
    env.event = match env.event {
        Event::Status(s) => Event::Status(status(s, window)),
        Event::Log { server, mut lines } => {
            if lines.len() > MAX_LINES_PER_EVENT {
                dropped.lines += lines.len() - MAX_LINES_PER_EVENT;
                lines.truncate(MAX_LINES_PER_EVENT);
            }
            let lines = lines
                .into_iter()
                .map(|l| LogLine {
                    at: window.record(l.at),
                    level: l.level,
                    text: log_text(l.text),
                })
                .collect();
            Event::Log { server, lines }
        }
        Event::Player { server, event } => Event::Player {
            server,
            event: player_event(event),
        },
        Event::Gap {
            records,
            lines,
            first,
            last,
        } => Event::Gap {
            records,
            lines,
            first: window.record(first),
            last: window.record(last),
        },
        m @ Event::Metrics { .. } => m,
    };
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_text_is_cut_at_a_char_boundary_with_a_marker() {
        let short = "x".repeat(MAX_LOG_TEXT);
        assert_eq!(log_text(short.clone()), short);
        // Multi-byte characters straddle the cut point whatever its exact value.
        let long = "é€😀".repeat(MAX_LOG_TEXT);
        let cut = log_text(long.clone());
        assert!(cut.len() <= MAX_LOG_TEXT, "{}", cut.len());
        assert!(cut.len() > MAX_LOG_TEXT - TRUNCATED_MARK.len() - 4);
        assert!(cut.ends_with(TRUNCATED_MARK));
        assert!(long.starts_with(cut.strip_suffix(TRUNCATED_MARK).unwrap()));
    }

    #[test]
    fn labels_lose_control_characters_and_length() {
        assert_eq!(label("1.2.3\u{1b}[2J\r\nroot\0", 64), "1.2.3[2Jroot");
        assert_eq!(label(&"v".repeat(1000), 64).chars().count(), 64);
        assert_eq!(text("a\nb\u{7}\tc", 10), "a\nb\tc");
        assert_eq!(label("Zoë", 2), "Zo");
    }

    #[test]
    fn times_are_clamped_to_the_window_and_cpu_must_be_a_measurement() {
        let now = 1_800_000_000_000;
        let w = TimeWindow::around(now);
        assert_eq!(w.record(0), now - 30 * 24 * 3600 * 1000);
        assert_eq!(w.record(i64::MIN), w.earliest);
        assert_eq!(w.record(i64::MAX), now + 5 * 60 * 1000);
        assert_eq!(w.record(now - 1000), now - 1000);
        assert_eq!(w.since(0), 0, "a state may have been entered long ago");
        assert_eq!(w.since(i64::MAX), w.latest);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, 1e9] {
            assert_eq!(cpu_percent(bad), None, "{bad}");
        }
        assert_eq!(cpu_percent(12.5), Some(12.5));
        assert_eq!(cpu_percent(0.0), Some(0.0));
    }
}
