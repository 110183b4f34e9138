//! Launch arguments of `arma3server[_x64]`: a builder producing argv for a
//! shell-less spawn, the port layout, and a parser the simulator uses.
//!
//! Extra parameters: there is **no allow-list**. Arma has dozens of tuning
//! flags (`-enableHT`, `-hugepages`, `-maxMem=`, `-exThreads=`, …) and new ones
//! appear with updates; an allow-list would go stale and block admins. Instead
//! we deny what could undo what we manage: every managed parameter (so
//! `-PORT=1` or `-config=x` is refused, case-insensitively) and `-par=`, which
//! reads further parameters from a file and could smuggle managed ones in.

use std::net::IpAddr;

/// Errors of the launch builder, port checks and argument parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// Game port P needs P..=P+4 inside 1..=65535.
    #[error(
        "game port {0} leaves no room for its four companion ports (P+4 must be <= 65535, P >= 1)"
    )]
    GamePortRange(u16),
    /// The RCon port collides with a derived game port.
    #[error("RCon port {rcon} lies inside the game port range {game}..={}", u32::from(*game) + 4)]
    RconPortConflict {
        /// Game port.
        game: u16,
        /// RCon port.
        rcon: u16,
    },
    /// RCon port 0 is not a port.
    #[error("RCon port must not be 0")]
    RconPortZero,
    /// A value that cannot be passed safely.
    #[error("{param}: {reason}")]
    InvalidValue {
        /// Parameter, e.g. `-mod[2]` or `-profiles`.
        param: String,
        /// Why.
        reason: String,
    },
    /// An extra parameter would override a managed one.
    #[error("extra parameter `{0}` overrides a parameter Languard manages")]
    ManagedParameter(String),
    /// An extra parameter is malformed.
    #[error("extra parameter `{arg}`: {reason}")]
    BadExtra {
        /// The argument.
        arg: String,
        /// Why.
        reason: String,
    },
}

/// The UDP ports one server instance uses: game port P and P+1 (Steam query),
/// P+2 (Steam), P+3 (VoN, reserved), P+4 (BattlEye), plus the RCon port, which
/// must lie outside P..=P+4 (BattlEye requires it to differ from the game's ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GamePorts {
    game: u16,
    rcon: Option<u16>,
}

impl GamePorts {
    /// Checks the layout: `1 <= game`, `game + 4 <= 65535`, RCon outside the range.
    pub fn new(game: u16, rcon: Option<u16>) -> Result<Self, LaunchError> {
        if game == 0 || game > u16::MAX - 4 {
            return Err(LaunchError::GamePortRange(game));
        }
        if let Some(r) = rcon {
            if r == 0 {
                return Err(LaunchError::RconPortZero);
            }
            if (game..=game + 4).contains(&r) {
                return Err(LaunchError::RconPortConflict { game, rcon: r });
            }
        }
        Ok(Self { game, rcon })
    }
    /// Game port (`-port=`).
    pub fn game(&self) -> u16 {
        self.game
    }
    /// Steam query (A2S) port, game+1.
    pub fn query(&self) -> u16 {
        self.game + 1
    }
    /// Steam port, game+2.
    pub fn steam(&self) -> u16 {
        self.game + 2
    }
    /// VoN port (reserved), game+3.
    pub fn von(&self) -> u16 {
        self.game + 3
    }
    /// BattlEye traffic port, game+4.
    pub fn battleye(&self) -> u16 {
        self.game + 4
    }
    /// BattlEye RCon port, if configured.
    pub fn rcon(&self) -> Option<u16> {
        self.rcon
    }
    /// Every port this instance occupies (game..=game+4, then RCon), for
    /// conflict checks between instances on one host.
    pub fn reserved_ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = (self.game..=self.game + 4).collect();
        v.extend(self.rcon);
        v
    }
    /// Whether two instances share any port.
    pub fn overlaps(&self, other: &GamePorts) -> bool {
        let theirs = other.reserved_ports();
        self.reserved_ports().iter().any(|p| theirs.contains(p))
    }
}

/// Parameter names (lowercase, without `-`) the builder manages, plus `par`.
const MANAGED: &[&str] = &[
    "port",
    "config",
    "cfg",
    "profiles",
    "name",
    "mod",
    "servermod",
    "bepath",
    "ip",
    "limitfps",
    "autoinit",
    "loadmissiontomemory",
    "par",
];

/// Builder for the server's argv (without the program name). Each element is
/// one argument such as `-port=2302` or `-mod=@a;@b`; nothing is shell-quoted
/// because we spawn without a shell.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LaunchArgs {
    /// `-port=`.
    pub port: u16,
    /// `-config=`: server.cfg path.
    pub config: Option<String>,
    /// `-cfg=`: basic.cfg path.
    pub cfg: Option<String>,
    /// `-profiles=`: profile/RPT root.
    pub profiles: Option<String>,
    /// `-name=`: profile name.
    pub name: Option<String>,
    /// `-mod=`: client-required mods, joined with `;`.
    pub mods: Vec<String>,
    /// `-serverMod=`: server-only mods.
    pub server_mods: Vec<String>,
    /// `-bepath=`: BattlEye working dir.
    pub bepath: Option<String>,
    /// `-ip=`: bind address.
    pub ip: Option<IpAddr>,
    /// `-limitFPS=`.
    pub limit_fps: Option<u32>,
    /// `-autoInit` (needs `persistent = 1`).
    pub auto_init: bool,
    /// `-loadMissionToMemory`.
    pub load_mission_to_memory: bool,
    /// Further parameters, appended verbatim after validation.
    pub extra: Vec<String>,
}

fn check_plain(param: &str, v: &str) -> Result<(), LaunchError> {
    let bad = |reason: &str| {
        Err(LaunchError::InvalidValue {
            param: param.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if v.is_empty() {
        return bad("must not be empty");
    }
    if v.chars().any(|c| c.is_control()) {
        return bad("contains a control character");
    }
    if v.contains('"') {
        return bad("contains a double quote");
    }
    Ok(())
}

fn check_mod(param: &str, m: &str) -> Result<(), LaunchError> {
    check_plain(param, m)?;
    let bad = |reason: &str| {
        Err(LaunchError::InvalidValue {
            param: param.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if m.contains(';') {
        return bad("contains `;`, the mod list separator");
    }
    if m.starts_with('-') {
        return bad("starts with `-`");
    }
    if m.trim() != m {
        return bad("has leading or trailing whitespace");
    }
    Ok(())
}

/// Checks one extra parameter: `-name` or `-name=value`, name `[A-Za-z0-9_]+`,
/// no control characters, not a managed parameter.
pub fn check_extra(arg: &str) -> Result<(), LaunchError> {
    let bad = |reason: &str| {
        Err(LaunchError::BadExtra {
            arg: arg.to_owned(),
            reason: reason.to_owned(),
        })
    };
    let Some(rest) = arg.strip_prefix('-') else {
        return bad("must start with `-`");
    };
    if arg.chars().any(|c| c.is_control()) {
        return bad("contains a control character");
    }
    let name = rest.split_once('=').map_or(rest, |(n, _)| n);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return bad("parameter name must be letters, digits or `_`");
    }
    if MANAGED.iter().any(|m| m.eq_ignore_ascii_case(name)) {
        return Err(LaunchError::ManagedParameter(arg.to_owned()));
    }
    Ok(())
}

impl LaunchArgs {
    /// Starts a builder for game port `port`.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            ..Self::default()
        }
    }
    /// Sets `-config=`.
    pub fn config(mut self, path: impl Into<String>) -> Self {
        self.config = Some(path.into());
        self
    }
    /// Sets `-cfg=`.
    pub fn cfg(mut self, path: impl Into<String>) -> Self {
        self.cfg = Some(path.into());
        self
    }
    /// Sets `-profiles=`.
    pub fn profiles(mut self, dir: impl Into<String>) -> Self {
        self.profiles = Some(dir.into());
        self
    }
    /// Sets `-name=`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Adds a `-mod=` entry.
    pub fn add_mod(mut self, m: impl Into<String>) -> Self {
        self.mods.push(m.into());
        self
    }
    /// Adds a `-serverMod=` entry.
    pub fn add_server_mod(mut self, m: impl Into<String>) -> Self {
        self.server_mods.push(m.into());
        self
    }
    /// Sets `-bepath=`.
    pub fn bepath(mut self, dir: impl Into<String>) -> Self {
        self.bepath = Some(dir.into());
        self
    }
    /// Sets `-ip=`.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }
    /// Sets `-limitFPS=`.
    pub fn limit_fps(mut self, fps: u32) -> Self {
        self.limit_fps = Some(fps);
        self
    }
    /// Sets `-autoInit`.
    pub fn auto_init(mut self, on: bool) -> Self {
        self.auto_init = on;
        self
    }
    /// Sets `-loadMissionToMemory`.
    pub fn load_mission_to_memory(mut self, on: bool) -> Self {
        self.load_mission_to_memory = on;
        self
    }
    /// Adds an extra parameter (checked by [`check_extra`] in [`build`](Self::build)).
    pub fn extra(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Validates everything and returns argv (without the program name).
    pub fn build(&self) -> Result<Vec<String>, LaunchError> {
        GamePorts::new(self.port, None)?;
        if let Some(name) = &self.name
            && name.contains(['/', '\\'])
        {
            return Err(LaunchError::InvalidValue {
                param: "-name".into(),
                reason: "contains a path separator".into(),
            });
        }
        let mut out = vec![format!("-port={}", self.port)];
        let paths = [
            ("-config", &self.config),
            ("-cfg", &self.cfg),
            ("-profiles", &self.profiles),
            ("-name", &self.name),
        ];
        for (flag, v) in paths {
            if let Some(v) = v {
                check_plain(flag, v)?;
                out.push(format!("{flag}={v}"));
            }
        }
        for (flag, list) in [("-mod", &self.mods), ("-serverMod", &self.server_mods)] {
            for (i, m) in list.iter().enumerate() {
                check_mod(&format!("{flag}[{i}]"), m)?;
            }
            if !list.is_empty() {
                out.push(format!("{flag}={}", list.join(";")));
            }
        }
        if let Some(b) = &self.bepath {
            check_plain("-bepath", b)?;
            out.push(format!("-bepath={b}"));
        }
        if let Some(ip) = self.ip {
            out.push(format!("-ip={ip}"));
        }
        if let Some(fps) = self.limit_fps {
            if fps == 0 || fps > 1000 {
                return Err(LaunchError::InvalidValue {
                    param: "-limitFPS".into(),
                    reason: "must be 1..=1000".into(),
                });
            }
            out.push(format!("-limitFPS={fps}"));
        }
        if self.auto_init {
            out.push("-autoInit".into());
        }
        if self.load_mission_to_memory {
            out.push("-loadMissionToMemory".into());
        }
        for e in &self.extra {
            check_extra(e)?;
            out.push(e.clone());
        }
        Ok(out)
    }
}

/// What [`parse_args`] understood of a command line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedArgs {
    /// `-port=` (2302 when absent is Arma's default; `None` here).
    pub port: Option<u16>,
    /// `-config=`.
    pub config: Option<String>,
    /// `-cfg=`.
    pub cfg: Option<String>,
    /// `-profiles=`.
    pub profiles: Option<String>,
    /// `-name=`.
    pub name: Option<String>,
    /// `-mod=` entries (split on `;`, empty entries dropped).
    pub mods: Vec<String>,
    /// `-serverMod=` entries.
    pub server_mods: Vec<String>,
    /// `-bepath=`.
    pub bepath: Option<String>,
    /// `-ip=` (verbatim; may be empty as in LinuxGSM's `-ip=`).
    pub ip: Option<String>,
    /// `-limitFPS=`.
    pub limit_fps: Option<u32>,
    /// `-autoInit` present.
    pub auto_init: bool,
    /// `-loadMissionToMemory` present.
    pub load_mission_to_memory: bool,
    /// Everything else, verbatim (quotes stripped).
    pub unknown: Vec<String>,
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

fn split_mods(v: &str) -> Vec<String> {
    v.split(';')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses argv (without the program name) the way the server does: `-key=value`
/// and bare `-flag`, keys case-insensitive, an argument wholly in quotes
/// (`"-mod=@a;@b;"`) or with a quoted value (`-mod='@a;@b'`) accepted, trailing
/// `;` in mod lists ignored. Repeated keys: the last wins (mods accumulate).
/// Unknown arguments are kept in [`ParsedArgs::unknown`].
pub fn parse_args<S: AsRef<str>>(argv: &[S]) -> Result<ParsedArgs, LaunchError> {
    let mut out = ParsedArgs::default();
    for raw in argv {
        let arg = unquote(raw.as_ref().trim());
        let Some(rest) = arg.strip_prefix('-') else {
            out.unknown.push(arg.to_owned());
            continue;
        };
        let (key, value) = match rest.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(unquote(v))),
            None => (rest.to_ascii_lowercase(), None),
        };
        let text = |v: Option<&str>| v.map(str::to_owned);
        match (key.as_str(), value) {
            ("port", Some(v)) => {
                out.port = Some(v.trim().parse().map_err(|_| LaunchError::InvalidValue {
                    param: "-port".into(),
                    reason: format!("`{v}` is not a port"),
                })?)
            }
            ("config", v @ Some(_)) => out.config = text(v),
            ("cfg", v @ Some(_)) => out.cfg = text(v),
            ("profiles", v @ Some(_)) => out.profiles = text(v),
            ("name", v @ Some(_)) => out.name = text(v),
            ("mod", Some(v)) => out.mods.extend(split_mods(v)),
            ("servermod", Some(v)) => out.server_mods.extend(split_mods(v)),
            ("bepath", v @ Some(_)) => out.bepath = text(v),
            ("ip", v @ Some(_)) => out.ip = text(v),
            ("limitfps", Some(v)) => {
                out.limit_fps = Some(v.trim().parse().map_err(|_| LaunchError::InvalidValue {
                    param: "-limitFPS".into(),
                    reason: format!("`{v}` is not a number"),
                })?)
            }
            ("autoinit", None) => out.auto_init = true,
            ("loadmissiontomemory", None) => out.load_mission_to_memory = true,
            _ => out.unknown.push(arg.to_owned()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_layout_and_conflicts() {
        let p = GamePorts::new(2302, Some(2310)).unwrap();
        assert_eq!(
            (p.query(), p.steam(), p.von(), p.battleye()),
            (2303, 2304, 2305, 2306)
        );
        assert_eq!(p.reserved_ports(), vec![2302, 2303, 2304, 2305, 2306, 2310]);
        for r in 2302..=2306 {
            assert_eq!(
                GamePorts::new(2302, Some(r)),
                Err(LaunchError::RconPortConflict {
                    game: 2302,
                    rcon: r
                })
            );
        }
        assert!(GamePorts::new(2302, Some(2301)).is_ok());
        assert!(GamePorts::new(2302, Some(2307)).is_ok());
        assert_eq!(
            GamePorts::new(65_531, None).map(|p| p.battleye()),
            Ok(65_535)
        );
        assert_eq!(
            GamePorts::new(65_532, None),
            Err(LaunchError::GamePortRange(65_532))
        );
        assert_eq!(GamePorts::new(0, None), Err(LaunchError::GamePortRange(0)));
        assert_eq!(
            GamePorts::new(2302, Some(0)),
            Err(LaunchError::RconPortZero)
        );
        let a = GamePorts::new(2302, Some(2310)).unwrap();
        assert!(a.overlaps(&GamePorts::new(2306, None).unwrap()));
        assert!(a.overlaps(&GamePorts::new(2310, None).unwrap()));
        assert!(!a.overlaps(&GamePorts::new(2402, Some(2410)).unwrap()));
    }

    #[test]
    fn builds_argv() {
        let argv = LaunchArgs::new(2302)
            .config("/srv/a3/server.cfg")
            .cfg("/srv/a3/basic.cfg")
            .profiles("/srv/a3/profiles dir")
            .name("server")
            .add_mod("@cba_a3")
            .add_mod("mods/@ace")
            .add_server_mod("@admin tools")
            .bepath("/srv/a3/battleye")
            .ip("0.0.0.0".parse().unwrap())
            .limit_fps(50)
            .auto_init(true)
            .load_mission_to_memory(true)
            .extra("-enableHT")
            .extra("-maxMem=8192")
            .build()
            .unwrap();
        assert_eq!(
            argv,
            vec![
                "-port=2302",
                "-config=/srv/a3/server.cfg",
                "-cfg=/srv/a3/basic.cfg",
                "-profiles=/srv/a3/profiles dir",
                "-name=server",
                "-mod=@cba_a3;mods/@ace",
                "-serverMod=@admin tools",
                "-bepath=/srv/a3/battleye",
                "-ip=0.0.0.0",
                "-limitFPS=50",
                "-autoInit",
                "-loadMissionToMemory",
                "-enableHT",
                "-maxMem=8192",
            ]
        );
        assert_eq!(LaunchArgs::new(2302).build().unwrap(), vec!["-port=2302"]);
    }

    #[test]
    fn rejects_bad_values_and_managed_extras() {
        for bad in [
            "-PORT=1",
            "-config=x",
            "-Mod=@evil",
            "-serverMOD=@x",
            "-autoinit",
            "-par=file.txt",
            "-NAME=x",
        ] {
            assert!(
                matches!(
                    LaunchArgs::new(2302).extra(bad).build(),
                    Err(LaunchError::ManagedParameter(_))
                ),
                "{bad}"
            );
        }
        for bad in ["noDash", "-", "-a b=1", "-x=1\n-port=3", "-=1", "-\u{7f}"] {
            assert!(
                matches!(
                    LaunchArgs::new(2302).extra(bad).build(),
                    Err(LaunchError::BadExtra { .. })
                ),
                "{bad:?}"
            );
        }
        for bad in ["@a;@b", "-port=1", "@a\n", "", " @a"] {
            let err = LaunchArgs::new(2302)
                .add_mod("@ok")
                .add_mod(bad)
                .build()
                .unwrap_err();
            assert!(
                matches!(&err, LaunchError::InvalidValue { param, .. } if param == "-mod[1]"),
                "{bad:?} {err:?}"
            );
        }
        assert!(LaunchArgs::new(2302).config("a\0b").build().is_err());
        assert!(LaunchArgs::new(2302).name("../x").build().is_err());
        assert!(LaunchArgs::new(2302).limit_fps(0).build().is_err());
        assert!(LaunchArgs::new(65_533).build().is_err());
    }

    #[test]
    fn parses_real_command_lines() {
        let pelican = [
            "-ip=0.0.0.0",
            "-port=2302",
            "-profiles=./serverprofile",
            "-bepath=./",
            "-cfg=basic.cfg",
            "-config=server.cfg",
            "\"-mod=@1;@2;\"",
            "\"-serverMod=@3;\"",
            "-noLogs",
        ];
        let p = parse_args(&pelican).unwrap();
        assert_eq!(p.port, Some(2302));
        assert_eq!(p.mods, vec!["@1", "@2"]);
        assert_eq!(p.server_mods, vec!["@3"]);
        assert_eq!(p.config.as_deref(), Some("server.cfg"));
        assert_eq!(p.bepath.as_deref(), Some("./"));
        assert_eq!(p.unknown, vec!["-noLogs"]);

        let lgsm = [
            "-ip=",
            "-port=2312",
            "-servermod=",
            "-mod='@a;@b'",
            "-autoinit",
            "-LoadMissionToMemory",
            "-MaxMem=16384",
            "\"-name=armahosts\"",
        ];
        let p = parse_args(&lgsm).unwrap();
        assert_eq!(p.ip.as_deref(), Some(""));
        assert_eq!(p.port, Some(2312));
        assert!(p.server_mods.is_empty());
        assert_eq!(p.mods, vec!["@a", "@b"]);
        assert!(p.auto_init && p.load_mission_to_memory);
        assert_eq!(p.name.as_deref(), Some("armahosts"));
        assert_eq!(p.unknown, vec!["-MaxMem=16384"]);
        assert!(parse_args(&["-port=abc"]).is_err());
        assert!(parse_args(&["-port=70000"]).is_err());
    }

    #[test]
    fn build_then_parse_round_trips() {
        let args = LaunchArgs::new(2402)
            .config("c.cfg")
            .name("srv")
            .add_mod("@a")
            .add_mod("@b")
            .limit_fps(100)
            .auto_init(true)
            .extra("-filePatching");
        let p = parse_args(&args.build().unwrap()).unwrap();
        assert_eq!(p.port, Some(2402));
        assert_eq!(p.config.as_deref(), Some("c.cfg"));
        assert_eq!(p.name.as_deref(), Some("srv"));
        assert_eq!(p.mods, vec!["@a", "@b"]);
        assert_eq!(p.limit_fps, Some(100));
        assert!(p.auto_init && !p.load_mission_to_memory);
        assert_eq!(p.unknown, vec!["-filePatching"]);
    }
}
