//! Launch arguments: the real server's `-key=value` / `-flag` style (keys matched
//! case-insensitively, surrounding quotes stripped), plus the simulator's own knobs
//! (`-sim-<name>=v` flags and `ARMA3SIM_<NAME>` environment variables; flags win).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// One parsed `-key[=value]` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The key, lowercased, without the leading dash.
    pub key: String,
    /// The value after `=`, quotes stripped; `None` for a bare flag.
    pub value: Option<String>,
}

/// Parses argv (without the program name). Arguments that do not start with a dash
/// (after quote stripping) are ignored, like the real server does with stray words.
///
/// The simulator deliberately keeps its own parser instead of the shared launch-args
/// model: it must be as tolerant as the real exe (unknown keys, stray words, quoted
/// `"-key=value"` tokens, `--key`), so that it accepts whatever command line the
/// agent builds and the tests can observe what the agent sent, rather than a strict
/// model rejecting or normalising it first.
pub fn parse_args(argv: &[String]) -> Vec<Arg> {
    argv.iter()
        .filter_map(|raw| {
            let a = strip_quotes(raw.trim());
            let body = a.strip_prefix('-')?;
            let body = body.strip_prefix('-').unwrap_or(body);
            let (key, value) = match body.split_once('=') {
                Some((k, v)) => (k, Some(strip_quotes(v).to_string())),
                None => (body, None),
            };
            if key.is_empty() {
                return None;
            }
            Some(Arg {
                key: key.to_ascii_lowercase(),
                value,
            })
        })
        .collect()
}

fn strip_quotes(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// The real launch parameters the simulator understands.
#[derive(Debug, Clone, Default)]
pub struct LaunchArgs {
    pub args: Vec<Arg>,
}

impl LaunchArgs {
    pub fn new(argv: &[String]) -> Self {
        LaunchArgs {
            args: parse_args(argv),
        }
    }

    /// The last value given for `key` (case-insensitive).
    pub fn value(&self, key: &str) -> Option<&str> {
        let key = key.to_ascii_lowercase();
        self.args
            .iter()
            .rev()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_deref())
    }

    /// Whether the bare flag (or `-flag=1`/`true`) was given.
    pub fn flag(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        self.args.iter().any(|a| {
            a.key == key
                && a.value
                    .as_deref()
                    .is_none_or(|v| !matches!(v, "0" | "false" | "no"))
        })
    }

    pub fn path(&self, key: &str) -> Option<PathBuf> {
        self.value(key).filter(|v| !v.is_empty()).map(PathBuf::from)
    }

    /// `-mod=a;b;` style lists, empty entries dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.value(key)
            .map(|v| {
                v.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The game port (`-port=`, default 2302).
    pub fn port(&self) -> u16 {
        self.value("port")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(2302)
    }
}

/// Documentation of every simulator knob: (name, default, meaning).
pub const SIM_KNOBS: &[(&str, &str, &str)] = &[
    (
        "windows",
        "0",
        "Windows mode: write <profiles>/arma3server_x64_YYYY-MM-DD_HH-MM-SS.rpt (CRLF) instead of RPT on stdout",
    ),
    (
        "seed",
        "random",
        "seed for players, names, chat (deterministic runs)",
    ),
    ("players", "4", "max simulated players (0 = none)"),
    ("player-interval-ms", "3000", "pacing of joins/leaves"),
    (
        "chat-interval-ms",
        "2500",
        "pacing of simulated chat (0 = no chat)",
    ),
    (
        "crash-after-secs",
        "off",
        "log a crash and exit with code 139",
    ),
    (
        "ignore-shutdown",
        "0",
        "ignore #shutdown, SIGTERM and SIGINT (only SIGKILL ends it)",
    ),
    (
        "hang-after-secs",
        "off",
        "stay alive but stop answering RCon/A2S and stop logging",
    ),
    ("rpt-spam", "0", "extra RPT noise lines per second"),
    (
        "startup-delay-ms",
        "500",
        "start to 'Host identity created.' (RCon and A2S ready)",
    ),
    (
        "max-part",
        "1000",
        "multi-part chunk size of RCon answers (bytes)",
    ),
    (
        "drop-every",
        "0",
        "drop every Nth outgoing RCon datagram (0 = never)",
    ),
    (
        "followup",
        "0",
        "after a reply to a command that printed no console message, send 'Connected to BE Master' to that admin; NOT real-server behaviour, only for PyPI rcon 2.4.9 whose run() waits for a message after each reply",
    ),
    (
        "rpt-spam-numbered",
        "0",
        "append ` [n]` (a per-process counter from 0) to every rpt-spam line, so tests can prove each line arrived exactly once; NOT real-server output",
    ),
    (
        "ascii-names",
        "0",
        "only ASCII player names (PyPI rcon 2.4.9 decodes ASCII and crashes on UTF-8)",
    ),
    (
        "session-timeout-secs",
        "45",
        "RCon session dropped after this long without a command packet",
    ),
    (
        "msg-resend-ms",
        "2000",
        "RCon server message resend interval (5 unacked resends forget the admin)",
    ),
];

/// The simulator's own switches.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub windows: bool,
    pub seed: Option<u64>,
    pub players: u32,
    pub player_interval: Duration,
    pub chat_interval: Option<Duration>,
    pub crash_after: Option<Duration>,
    pub ignore_shutdown: bool,
    pub hang_after: Option<Duration>,
    pub rpt_spam: u32,
    pub rpt_spam_numbered: bool,
    pub startup_delay: Duration,
    pub max_part: usize,
    pub drop_every: u32,
    pub followup: bool,
    pub ascii_names: bool,
    pub session_timeout: Duration,
    pub msg_resend: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            windows: false,
            seed: None,
            players: 4,
            player_interval: Duration::from_millis(3000),
            chat_interval: Some(Duration::from_millis(2500)),
            crash_after: None,
            ignore_shutdown: false,
            hang_after: None,
            rpt_spam: 0,
            rpt_spam_numbered: false,
            startup_delay: Duration::from_millis(500),
            max_part: 1000,
            drop_every: 0,
            followup: false,
            ascii_names: false,
            session_timeout: Duration::from_secs(45),
            msg_resend: Duration::from_millis(2000),
        }
    }
}

/// A knob that could not be understood or is outside its sane range.
#[derive(Debug, thiserror::Error)]
pub enum KnobError {
    #[error("invalid value {value:?} for simulator option {name}")]
    Invalid { name: String, value: String },
    #[error("value {value} for simulator option {name} is out of range (allowed: {allowed})")]
    OutOfRange {
        name: String,
        value: u64,
        allowed: String,
    },
}

/// Sane ranges of the numeric knobs (inclusive); out-of-range values are refused at
/// parse time so no later arithmetic (`Duration::mul_f64`, `Duration * u32`) can
/// overflow. `chat-interval-ms` additionally allows 0 (= no chat).
pub const KNOB_RANGES: &[(&str, u64, u64)] = &[
    ("players", 0, 250),
    ("player-interval-ms", 10, 86_400_000),
    ("chat-interval-ms", 10, 86_400_000),
    ("crash-after-secs", 0, 31_536_000),
    ("hang-after-secs", 0, 31_536_000),
    ("rpt-spam", 0, 1_000_000),
    ("startup-delay-ms", 0, 600_000),
    ("max-part", 1, 60_000),
    ("drop-every", 0, 1_000_000),
    ("session-timeout-secs", 1, 86_400),
    ("msg-resend-ms", 10, 3_600_000),
];

impl SimOptions {
    /// Reads knobs from `-sim-<name>=` flags (also spelt `-sim_<name_with_underscores>=`,
    /// the form a manager's "extra launch parameters" field accepts), then
    /// `ARMA3SIM_<NAME>` variables.
    pub fn from_sources(
        launch: &LaunchArgs,
        env: &HashMap<String, String>,
    ) -> Result<Self, KnobError> {
        let get = |name: &str| -> Option<String> {
            if let Some(a) = launch.args.iter().rev().find(|a| {
                a.key == format!("sim-{name}") || a.key == format!("sim_{}", name.replace('-', "_"))
            }) {
                return Some(a.value.clone().unwrap_or_else(|| "1".into()));
            }
            let var = format!("ARMA3SIM_{}", name.to_ascii_uppercase().replace('-', "_"));
            env.get(&var).cloned()
        };
        let err = |name: &str, value: &str| KnobError::Invalid {
            name: name.into(),
            value: value.into(),
        };
        let boolean = |name: &str| -> Result<Option<bool>, KnobError> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                    "" | "1" | "true" | "yes" | "on" => Ok(Some(true)),
                    "0" | "false" | "no" | "off" => Ok(Some(false)),
                    _ => Err(err(name, &v)),
                },
            }
        };
        let raw_number = |name: &str| -> Result<Option<u64>, KnobError> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() || v.trim() == "off" => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| err(name, &v)),
            }
        };
        // A number checked against KNOB_RANGES (`zero_ok`: 0 is allowed as "off").
        let ranged = |name: &str, zero_ok: bool| -> Result<Option<u64>, KnobError> {
            let Some(n) = raw_number(name)? else {
                return Ok(None);
            };
            let (lo, hi) = KNOB_RANGES
                .iter()
                .find(|(k, _, _)| *k == name)
                .map(|(_, lo, hi)| (*lo, *hi))
                .unwrap_or((0, u64::MAX));
            if (zero_ok && n == 0) || (lo..=hi).contains(&n) {
                Ok(Some(n))
            } else {
                Err(KnobError::OutOfRange {
                    name: name.into(),
                    value: n,
                    allowed: if zero_ok {
                        format!("0 or {lo}..={hi}")
                    } else {
                        format!("{lo}..={hi}")
                    },
                })
            }
        };
        let small = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let mut o = SimOptions::default();
        if let Some(b) = boolean("windows")? {
            o.windows = b;
        }
        o.seed = raw_number("seed")?;
        if let Some(n) = ranged("players", false)? {
            o.players = small(n);
        }
        if let Some(n) = ranged("player-interval-ms", false)? {
            o.player_interval = Duration::from_millis(n);
        }
        if let Some(n) = ranged("chat-interval-ms", true)? {
            o.chat_interval = (n > 0).then(|| Duration::from_millis(n));
        }
        o.crash_after = ranged("crash-after-secs", false)?.map(Duration::from_secs);
        if let Some(b) = boolean("ignore-shutdown")? {
            o.ignore_shutdown = b;
        }
        o.hang_after = ranged("hang-after-secs", false)?.map(Duration::from_secs);
        if let Some(n) = ranged("rpt-spam", false)? {
            o.rpt_spam = small(n);
        }
        if let Some(n) = ranged("startup-delay-ms", false)? {
            o.startup_delay = Duration::from_millis(n);
        }
        if let Some(n) = ranged("max-part", false)? {
            o.max_part = usize::try_from(n).unwrap_or(1000);
        }
        if let Some(n) = ranged("drop-every", false)? {
            o.drop_every = small(n);
        }
        if let Some(b) = boolean("rpt-spam-numbered")? {
            o.rpt_spam_numbered = b;
        }
        if let Some(b) = boolean("followup")? {
            o.followup = b;
        }
        if let Some(b) = boolean("ascii-names")? {
            o.ascii_names = b;
        }
        if let Some(n) = ranged("session-timeout-secs", false)? {
            o.session_timeout = Duration::from_secs(n);
        }
        if let Some(n) = ranged("msg-resend-ms", false)? {
            o.msg_resend = Duration::from_millis(n);
        }
        Ok(o)
    }
}

/// The `--help` text.
pub fn help_text() -> String {
    let mut s = String::from(
        "arma3server-sim: a stand-in for the Arma 3 dedicated server (arma3server_x64)\n\n\
         Usage: arma3server-sim [-port=2302] [-config=server.cfg] [-cfg=basic.cfg] [-profiles=dir]\n\
         \x20      [-name=n] [-mod=a;b;] [-serverMod=c;] [-bepath=dir] [-ip=addr] [-limitFPS=n]\n\
         \x20      [-autoInit] [-loadMissionToMemory] [-noLogs] [-sim-<knob>=value ...]\n\n\
         Real parameters are matched case-insensitively; unknown ones are accepted and only\n\
         echoed in the RPT header. BattlEye RCon is configured by <bepath or profiles/BattlEye>/\n\
         beserver_x64.cfg (beserver.cfg when run as 'arma3server'): RConPort, RConPassword, RConIP,\n\
         MaxPing, RestrictRCon. Without RConPassword there is no RCon at all.\n\n\
         Simulator knobs (-sim-<name>=v or env ARMA3SIM_<NAME>; the flag wins):\n",
    );
    for (name, default, what) in SIM_KNOBS {
        s.push_str(&format!("  {name:<22} default {default:<7} {what}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_real_style() {
        let l = LaunchArgs::new(&argv(&[
            "-PORT=2312",
            "\"-mod=@a;@b;\"",
            "-serverMod=@c",
            "-autoinit",
            "-config=\"server.cfg\"",
            "stray",
        ]));
        assert_eq!(l.port(), 2312);
        assert_eq!(l.list("mod"), vec!["@a", "@b"]);
        assert_eq!(l.list("servermod"), vec!["@c"]);
        assert!(l.flag("autoInit"));
        assert!(!l.flag("noLogs"));
        assert_eq!(l.value("config"), Some("server.cfg"));
    }

    #[test]
    fn knobs_flags_win_over_env() {
        let l = LaunchArgs::new(&argv(&["-sim-players=7", "-sim-windows"]));
        let mut env = HashMap::new();
        env.insert("ARMA3SIM_PLAYERS".to_string(), "2".to_string());
        env.insert("ARMA3SIM_DROP_EVERY".to_string(), "3".to_string());
        env.insert("ARMA3SIM_CHAT_INTERVAL_MS".to_string(), "0".to_string());
        let o = SimOptions::from_sources(&l, &env).unwrap();
        assert_eq!(o.players, 7);
        assert!(o.windows);
        assert_eq!(o.drop_every, 3);
        assert!(o.chat_interval.is_none());
        let bad = LaunchArgs::new(&argv(&["-sim-players=lots"]));
        assert!(SimOptions::from_sources(&bad, &HashMap::new()).is_err());
        assert!(!SimOptions::default().followup);
    }

    #[test]
    fn knobs_out_of_range_are_refused() {
        let opts =
            |a: &str| SimOptions::from_sources(&LaunchArgs::new(&argv(&[a])), &HashMap::new());
        for bad in [
            "-sim-player-interval-ms=18446744073709551615",
            "-sim-player-interval-ms=5",
            "-sim-chat-interval-ms=99999999999",
            "-sim-chat-interval-ms=3",
            "-sim-players=251",
            "-sim-startup-delay-ms=100000000000",
            "-sim-max-part=0",
            "-sim-drop-every=99999999999",
            "-sim-rpt-spam=4294967296",
            "-sim-crash-after-secs=18446744073709551615",
        ] {
            let e = opts(bad).unwrap_err();
            assert!(matches!(e, KnobError::OutOfRange { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        assert!(
            opts("-sim-chat-interval-ms=0")
                .unwrap()
                .chat_interval
                .is_none()
        );
        assert_eq!(
            opts("-sim-player-interval-ms=86400000")
                .unwrap()
                .player_interval,
            Duration::from_millis(86_400_000)
        );
        assert_eq!(
            opts("-sim-seed=18446744073709551615").unwrap().seed,
            Some(u64::MAX)
        );
    }
}
