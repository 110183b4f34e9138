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
/// Integration point: `languard_shared::arma::launch::parse_args` once it exists.
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
        "1",
        "after a reply to a command that printed no console message, send 'Connected to BE Master' to that admin (rcon 2.4.9 needs a message after each reply)",
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
            startup_delay: Duration::from_millis(500),
            max_part: 1000,
            drop_every: 0,
            followup: true,
            ascii_names: false,
            session_timeout: Duration::from_secs(45),
            msg_resend: Duration::from_millis(2000),
        }
    }
}

/// A knob that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("invalid value {value:?} for simulator option {name}")]
pub struct KnobError {
    pub name: String,
    pub value: String,
}

impl SimOptions {
    /// Reads knobs from `-sim-<name>=` flags, then `ARMA3SIM_<NAME>` variables.
    pub fn from_sources(
        launch: &LaunchArgs,
        env: &HashMap<String, String>,
    ) -> Result<Self, KnobError> {
        let get = |name: &str| -> Option<String> {
            if let Some(a) = launch
                .args
                .iter()
                .rev()
                .find(|a| a.key == format!("sim-{name}"))
            {
                return Some(a.value.clone().unwrap_or_else(|| "1".into()));
            }
            let var = format!("ARMA3SIM_{}", name.to_ascii_uppercase().replace('-', "_"));
            env.get(&var).cloned()
        };
        let err = |name: &str, value: &str| KnobError {
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
        let number = |name: &str| -> Result<Option<u64>, KnobError> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() || v.trim() == "off" => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| err(name, &v)),
            }
        };
        let mut o = SimOptions::default();
        if let Some(b) = boolean("windows")? {
            o.windows = b;
        }
        o.seed = number("seed")?;
        if let Some(n) = number("players")? {
            o.players = u32::try_from(n).unwrap_or(u32::MAX).min(250);
        }
        if let Some(n) = number("player-interval-ms")? {
            o.player_interval = Duration::from_millis(n.max(10));
        }
        if let Some(n) = number("chat-interval-ms")? {
            o.chat_interval = (n > 0).then(|| Duration::from_millis(n.max(10)));
        }
        o.crash_after = number("crash-after-secs")?.map(Duration::from_secs);
        if let Some(b) = boolean("ignore-shutdown")? {
            o.ignore_shutdown = b;
        }
        o.hang_after = number("hang-after-secs")?.map(Duration::from_secs);
        if let Some(n) = number("rpt-spam")? {
            o.rpt_spam = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(n) = number("startup-delay-ms")? {
            o.startup_delay = Duration::from_millis(n);
        }
        if let Some(n) = number("max-part")? {
            o.max_part = usize::try_from(n).unwrap_or(1000).clamp(1, 60_000);
        }
        if let Some(n) = number("drop-every")? {
            o.drop_every = u32::try_from(n).unwrap_or(0);
        }
        if let Some(b) = boolean("followup")? {
            o.followup = b;
        }
        if let Some(b) = boolean("ascii-names")? {
            o.ascii_names = b;
        }
        if let Some(n) = number("session-timeout-secs")? {
            o.session_timeout = Duration::from_secs(n.max(1));
        }
        if let Some(n) = number("msg-resend-ms")? {
            o.msg_resend = Duration::from_millis(n.max(10));
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
    }
}
