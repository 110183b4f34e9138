//! The config files the server reads: server.cfg (`-config=`), basic.cfg (`-cfg=`) and
//! the BattlEye server cfg. A small tolerant Arma-config reader is included so the
//! simulator does not depend on the shared models (integration point: swap
//! [`parse_config`] for `languard_shared::arma::config` when convenient).

use std::fmt;
use std::path::{Path, PathBuf};

use super::compat::TimeStampFormat;

/// A value in an Arma config file.
#[derive(Debug, Clone, PartialEq)]
pub enum CfgValue {
    /// A quoted string (with `""` unescaped).
    Str(String),
    /// An unquoted scalar (`64`, `0.33`, `true`).
    Raw(String),
    Array(Vec<CfgValue>),
    Class(Vec<(String, CfgValue)>),
}

impl CfgValue {
    /// Text of a scalar (quoted or not).
    pub fn text(&self) -> Option<&str> {
        match self {
            CfgValue::Str(s) | CfgValue::Raw(s) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        let t = self.text()?.trim();
        match t.to_ascii_lowercase().as_str() {
            "true" => Some(1),
            "false" => Some(0),
            _ => t
                .parse::<i64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().map(|f| f as i64)),
        }
    }

    /// Entry of a class body, by case-insensitive name.
    pub fn get(&self, key: &str) -> Option<&CfgValue> {
        match self {
            CfgValue::Class(items) => items
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A syntax error with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for CfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, CfgError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    let mut at_line_start = true;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            at_line_start = true;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if at_line_start && c == '#' {
            // preprocessor directive: skipped
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        at_line_start = false;
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                if chars[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == '"' {
            let start_line = line;
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(CfgError {
                            line: start_line,
                            message: "unterminated string".into(),
                        });
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        s.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\n') => {
                        return Err(CfgError {
                            line: start_line,
                            message: "end of line in string".into(),
                        });
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push((Tok::Str(s), start_line));
            continue;
        }
        if "={}[];,:".contains(c) {
            out.push((Tok::Punct(c), line));
            i += 1;
            continue;
        }
        if c == '+' && chars.get(i + 1) == Some(&'=') {
            out.push((Tok::Punct('='), line));
            i += 2;
            continue;
        }
        let mut w = String::new();
        while i < chars.len() {
            let ch = chars[i];
            if ch.is_whitespace() || "={}[];,:\"".contains(ch) {
                break;
            }
            if ch == '/' && matches!(chars.get(i + 1), Some('/') | Some('*')) {
                break;
            }
            w.push(ch);
            i += 1;
        }
        out.push((Tok::Word(w), line));
    }
    Ok(out)
}

/// Deepest nesting of classes and arrays the reader accepts. The reader is recursive;
/// without a cap a hostile or broken file (`class a { class a { ...`) would overflow
/// the stack. Real configs nest a handful of levels.
pub const MAX_NESTING: usize = 32;

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

impl Parser {
    /// Enters one class/array level; fails cleanly past [`MAX_NESTING`].
    fn descend(&mut self) -> Result<(), CfgError> {
        if self.depth >= MAX_NESTING {
            return self.err(format!(
                "Nesting deeper than {MAX_NESTING} levels (classes/arrays)"
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }
    fn line(&self) -> usize {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map(|(_, l)| *l)
            .unwrap_or(1)
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T, CfgError> {
        Err(CfgError {
            line: self.line(),
            message: message.into(),
        })
    }
    fn expect(&mut self, c: char) -> Result<(), CfgError> {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            Ok(())
        } else {
            let found = match self.peek() {
                Some(Tok::Word(w)) => w.clone(),
                Some(Tok::Str(s)) => format!("\"{s}\""),
                Some(Tok::Punct(p)) => p.to_string(),
                None => "end of file".into(),
            };
            self.err(format!("Missing '{c}' prior '{found}'"))
        }
    }
    fn word(&mut self) -> Result<String, CfgError> {
        match self.peek().cloned() {
            Some(Tok::Word(w)) => {
                self.pos += 1;
                Ok(w)
            }
            _ => self.err("expected a name"),
        }
    }

    fn body(&mut self, top: bool) -> Result<Vec<(String, CfgValue)>, CfgError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None if top => return Ok(items),
                None => return self.err("Missing '}' at end of file"),
                Some(Tok::Punct('}')) if !top => return Ok(items),
                Some(Tok::Punct(';')) => {
                    self.pos += 1;
                }
                _ => items.push(self.entry()?),
            }
        }
    }

    fn entry(&mut self) -> Result<(String, CfgValue), CfgError> {
        let name = self.word()?;
        if name.eq_ignore_ascii_case("class") {
            let cname = self.word()?;
            if self.peek() == Some(&Tok::Punct(':')) {
                self.pos += 1;
                self.word()?;
            }
            if self.peek() == Some(&Tok::Punct(';')) {
                self.pos += 1;
                return Ok((cname, CfgValue::Class(vec![])));
            }
            self.expect('{')?;
            self.descend()?;
            let items = self.body(false)?;
            self.depth -= 1;
            self.expect('}')?;
            self.expect(';')?;
            return Ok((cname, CfgValue::Class(items)));
        }
        let is_array = self.peek() == Some(&Tok::Punct('['));
        if is_array {
            self.pos += 1;
            self.expect(']')?;
        }
        self.expect('=')?;
        let v = if is_array || self.peek() == Some(&Tok::Punct('{')) {
            self.array()?
        } else {
            self.scalar()?
        };
        self.expect(';')?;
        Ok((name, v))
    }

    fn array(&mut self) -> Result<CfgValue, CfgError> {
        self.expect('{')?;
        self.descend()?;
        let mut vals = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Punct('}')) => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(CfgValue::Array(vals));
                }
                Some(Tok::Punct('{')) => vals.push(self.array()?),
                Some(Tok::Punct(',')) => self.pos += 1,
                None => return self.err("Missing '}' in array"),
                _ => vals.push(self.scalar()?),
            }
        }
    }

    fn scalar(&mut self) -> Result<CfgValue, CfgError> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(CfgValue::Str(s))
            }
            Some(Tok::Word(w)) => {
                self.pos += 1;
                Ok(CfgValue::Raw(w))
            }
            _ => self.err("expected a value"),
        }
    }
}

/// Parses an Arma config text into its top-level class body.
pub fn parse_config(text: &str) -> Result<CfgValue, CfgError> {
    let toks = tokenize(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    Ok(CfgValue::Class(p.body(true)?))
}

/// One entry of `class Missions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissionEntry {
    /// `template`, e.g. `MyMission.Altis`.
    pub template: String,
    pub difficulty: String,
}

/// What the simulator uses from server.cfg.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub hostname: String,
    pub password: String,
    pub max_players: u32,
    pub timestamp_format: TimeStampFormat,
    pub persistent: bool,
    pub battleye: bool,
    pub verify_signatures: i64,
    pub missions: Vec<MissionEntry>,
    pub motd: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            hostname: "Arma 3 Server".into(),
            password: String::new(),
            max_players: 64,
            timestamp_format: TimeStampFormat::None,
            persistent: false,
            battleye: true,
            verify_signatures: 0,
            missions: vec![],
            motd: vec![],
        }
    }
}

impl ServerSettings {
    pub fn from_text(text: &str) -> Result<Self, CfgError> {
        let root = parse_config(text)?;
        let mut s = ServerSettings::default();
        let text_of = |k: &str| root.get(k).and_then(CfgValue::text).map(String::from);
        let int_of = |k: &str| root.get(k).and_then(CfgValue::int);
        if let Some(h) = text_of("hostname") {
            s.hostname = h;
        }
        if let Some(p) = text_of("password") {
            s.password = p;
        }
        if let Some(n) = int_of("maxPlayers") {
            s.max_players = u32::try_from(n.clamp(0, 1024)).unwrap_or(64);
        }
        if let Some(f) = text_of("timeStampFormat") {
            s.timestamp_format = super::compat::timestamp_format_from_cfg(&f);
        }
        if let Some(n) = int_of("persistent") {
            s.persistent = n != 0;
        }
        if let Some(n) = int_of("BattlEye") {
            s.battleye = n != 0;
        }
        if let Some(n) = int_of("verifySignatures") {
            s.verify_signatures = n;
        }
        if let Some(CfgValue::Array(lines)) = root.get("motd") {
            s.motd = lines
                .iter()
                .filter_map(|v| v.text().map(String::from))
                .collect();
        }
        if let Some(CfgValue::Class(ms)) = root.get("Missions") {
            for (_, m) in ms {
                if let Some(t) = m.get("template").and_then(CfgValue::text) {
                    s.missions.push(MissionEntry {
                        template: t.trim().trim_end_matches(".pbo").to_string(),
                        difficulty: m
                            .get("difficulty")
                            .and_then(CfgValue::text)
                            .unwrap_or("Regular")
                            .to_string(),
                    });
                }
            }
        }
        Ok(s)
    }
}

/// What the simulator uses from the BattlEye server cfg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BattlEyeSettings {
    pub rcon_password: Option<String>,
    pub rcon_port: Option<u16>,
    pub rcon_ip: Option<String>,
    pub max_ping: Option<i64>,
    pub restrict_rcon: bool,
}

impl BattlEyeSettings {
    /// `Key value` lines, keys case-insensitive; unknown lines ignored.
    pub fn from_text(text: &str) -> Self {
        let mut s = BattlEyeSettings::default();
        for line in text.lines() {
            let line = line.trim();
            let (k, v) = match line.split_once(char::is_whitespace) {
                Some((k, v)) => (k, v.trim()),
                None => continue,
            };
            match k.to_ascii_lowercase().as_str() {
                "rconpassword" if !v.is_empty() => s.rcon_password = Some(v.to_string()),
                "rconport" => s.rcon_port = v.parse().ok(),
                "rconip" if !v.is_empty() => s.rcon_ip = Some(v.to_string()),
                "maxping" => s.max_ping = v.parse().ok(),
                "restrictrcon" => s.restrict_rcon = v == "1",
                _ => {}
            }
        }
        s
    }
}

/// Finds `name` in `dir` ignoring ASCII case, the way a Windows file system resolves
/// names (used in Windows mode only; on Linux BattlEye opens the exact lowercase name).
pub fn find_file_ci(dir: &Path, name: &str) -> Option<PathBuf> {
    let exact = dir.join(name);
    if exact.is_file() {
        return Some(exact);
    }
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(name))
        .map(|e| e.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_server_cfg() {
        let text = r#"
// comment
hostname = "My ""Best"" Server";
password = "";
maxPlayers = 40;
persistent = 1;
timeStampFormat = "full";
motd[] = { "Welcome", "" };
class Missions
{
    class Mission_1 { template = "MyMission.Altis"; difficulty = "Veteran"; class Params {}; };
    class Mission_2 { template = Other.Stratis; };
};
"#;
        let s = ServerSettings::from_text(text).unwrap();
        assert_eq!(s.hostname, "My \"Best\" Server");
        assert_eq!(s.max_players, 40);
        assert!(s.persistent);
        assert_eq!(s.timestamp_format, TimeStampFormat::Full);
        assert_eq!(s.missions.len(), 2);
        assert_eq!(s.missions[0].template, "MyMission.Altis");
        assert_eq!(s.missions[1].difficulty, "Regular");
        assert_eq!(s.motd, vec!["Welcome", ""]);
    }

    #[test]
    fn rejects_broken_cfg() {
        let e = ServerSettings::from_text("hostname = \"x\"\nmaxPlayers = 3;").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(ServerSettings::from_text("class A { x = 1;").is_err());
        assert!(ServerSettings::from_text("hostname = \"unterminated;").is_err());
    }

    #[test]
    fn nesting_is_capped() {
        let nest = |n: usize| {
            let mut t = String::new();
            for _ in 0..n {
                t.push_str("class a {");
            }
            for _ in 0..n {
                t.push_str("};");
            }
            t
        };
        assert!(parse_config(&nest(MAX_NESTING)).is_ok());
        let e = parse_config(&nest(MAX_NESTING + 1)).unwrap_err();
        assert!(e.message.contains("Nesting"), "{e}");
        // far deeper than the stack could take without the cap
        assert!(parse_config(&nest(200_000)).is_err());
        let arrays = format!("x[] = {}{};", "{".repeat(200_000), "}".repeat(200_000));
        assert!(parse_config(&arrays).is_err());
        let ok = format!(
            "x[] = {}{};",
            "{".repeat(MAX_NESTING),
            "}".repeat(MAX_NESTING)
        );
        assert!(parse_config(&ok).is_ok());
    }

    #[test]
    fn reads_beserver_cfg() {
        let b =
            BattlEyeSettings::from_text("RConPassword secret\r\nRConPort 2310\nRestrictRCon 0\n");
        assert_eq!(b.rcon_password.as_deref(), Some("secret"));
        assert_eq!(b.rcon_port, Some(2310));
        assert!(!b.restrict_rcon);
        assert_eq!(
            BattlEyeSettings::from_text("RConPort 1").rcon_password,
            None
        );
    }
}
