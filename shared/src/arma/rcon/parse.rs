//! Typed parsers for BattlEye's text: command answers (`players`, `bans`, `admins`,
//! `missions`) and console messages (type 0x02 packets, and the same lines in the
//! RPT behind `BattlEye Server: `).
//!
//! BattlEye only speaks human-oriented text, so this is where it becomes data. The
//! parsers are total: they never fail or panic, rows that do not parse are skipped
//! (like berconpy) and unrecognised messages become [`ServerEvent::Unknown`].
//!
//! Player names are attacker-controlled and may contain spaces, parentheses, colons
//! and any UTF-8, so every parser anchors on the fixed parts of a line (its start, its
//! end, the last address group) and lets the name be whatever is left in between.
//! Columns are split on runs of ASCII spaces/tabs only, never on Unicode whitespace.
//!
//! All types are serde-serialisable because the agent forwards them to the controller.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------
// Small lexing helpers
// ---------------------------------------------------------------------------------

fn is_sep(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Next whitespace-delimited token and the rest after it (rest starts at the separator).
fn next_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(is_sep);
    if s.is_empty() {
        return None;
    }
    let end = s.find(is_sep).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// A non-negative decimal with digits only (no sign, no spaces).
fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Leading digits of `s` as a number, and the rest.
fn leading_u32(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    Some((parse_u32(&s[..end])?, &s[end..]))
}

/// `ip:port`, also `[v6]:port`.
fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host.parse().ok()?, port.parse().ok()?))
}

fn trim_sep(s: &str) -> &str {
    s.trim_matches(is_sep)
}

// ---------------------------------------------------------------------------------
// `players`
// ---------------------------------------------------------------------------------

/// One row of the `players` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Player {
    /// BattlEye's player number (`#`), the handle for `kick`/`ban`/`say`. Reused after
    /// a disconnect.
    pub number: u32,
    pub ip: IpAddr,
    pub port: u16,
    /// `None` when the server prints `-1` (or `-`): not measured yet.
    pub ping: Option<u32>,
    /// `None` when the server prints `-`: the GUID is not known yet.
    pub guid: Option<String>,
    /// The GUID status was `OK`; `?` (or anything else) means not verified.
    pub verified: bool,
    /// With the trailing ` (Lobby)` removed.
    pub name: String,
    /// The row ended with ` (Lobby)`. A player literally named `X (Lobby)` is
    /// indistinguishable from `X` in the lobby; berconpy has the same ambiguity.
    pub in_lobby: bool,
}

/// Parse the `players` answer. Header, dash rule, footer and any row that does not
/// parse are skipped.
///
/// Row layout: `#  ip:port  ping  guid(STATUS)  name`, columns padded with spaces;
/// the name is everything after the GUID column with surrounding spaces/tabs trimmed
/// (Arma trims profile names, so nothing real is lost).
pub fn parse_players(text: &str) -> Vec<Player> {
    text.lines().filter_map(parse_player_row).collect()
}

fn parse_player_row(line: &str) -> Option<Player> {
    let (number, rest) = next_token(line)?;
    let number = parse_u32(number)?;
    let (addr, rest) = next_token(rest)?;
    let (ip, port) = parse_addr(addr)?;
    let (ping, rest) = next_token(rest)?;
    let ping = match ping {
        "-1" | "-" => None,
        p => Some(parse_u32(p)?),
    };
    let (guid_col, rest) = next_token(rest)?;
    let (guid, status) = match guid_col.split_once('(') {
        Some((g, s)) => (g, s.strip_suffix(')')?),
        None => (guid_col, ""),
    };
    let guid = match guid {
        "" | "-" => None,
        g => Some(g.to_owned()),
    };
    let name = trim_sep(rest);
    let (name, in_lobby) = match name.strip_suffix(" (Lobby)") {
        Some(n) => (n, true),
        None => (name, false),
    };
    Some(Player {
        number,
        ip,
        port,
        ping,
        guid,
        verified: status == "OK",
        name: name.to_owned(),
        in_lobby,
    })
}

// ---------------------------------------------------------------------------------
// `bans`
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanKind {
    Guid,
    Ip,
}

/// The "Minutes left" column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanExpiry {
    /// `perm`.
    Permanent,
    /// `-`: expired, still listed until `writeBans`.
    Expired,
    Minutes(u32),
}

/// One row of the `bans` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// As printed; this is what `removeBan` takes. Never computed, because servers
    /// disagree on whether the IP section continues the GUID section's numbering.
    pub index: u32,
    pub kind: BanKind,
    /// The GUID or IP exactly as printed.
    pub target: String,
    pub minutes_left: BanExpiry,
    /// Possibly empty.
    pub reason: String,
}

/// Parse the `bans` answer (both the `GUID Bans:` and `IP Bans:` sections). Rows seen
/// before any section header get their kind from the target (an IP address → `Ip`,
/// otherwise `Guid`).
pub fn parse_bans(text: &str) -> Vec<Ban> {
    let mut section = None;
    let mut out = Vec::new();
    for line in text.lines() {
        match trim_sep(line) {
            "GUID Bans:" => section = Some(BanKind::Guid),
            "IP Bans:" => section = Some(BanKind::Ip),
            _ => {
                if let Some(ban) = parse_ban_row(line, section) {
                    out.push(ban);
                }
            }
        }
    }
    out
}

fn parse_ban_row(line: &str, section: Option<BanKind>) -> Option<Ban> {
    let (index, rest) = next_token(line)?;
    let index = parse_u32(index)?;
    let (target, rest) = next_token(rest)?;
    let (minutes, rest) = next_token(rest)?;
    let minutes_left = match minutes {
        "perm" => BanExpiry::Permanent,
        "-" => BanExpiry::Expired,
        m => BanExpiry::Minutes(parse_u32(m)?),
    };
    let kind = section.unwrap_or_else(|| {
        if target.parse::<IpAddr>().is_ok() {
            BanKind::Ip
        } else {
            BanKind::Guid
        }
    });
    Some(Ban {
        index,
        kind,
        target: target.to_owned(),
        minutes_left,
        reason: trim_sep(rest).to_owned(),
    })
}

// ---------------------------------------------------------------------------------
// `admins`, `missions`
// ---------------------------------------------------------------------------------

/// One row of the `admins` answer: a connected RCon client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RconAdmin {
    pub id: u32,
    pub ip: IpAddr,
    pub port: u16,
}

/// Parse the `admins` answer (`id ip:port` rows; everything else skipped).
pub fn parse_admins(text: &str) -> Vec<RconAdmin> {
    text.lines()
        .filter_map(|line| {
            let (id, rest) = next_token(line)?;
            let (addr, _) = next_token(rest)?;
            let (ip, port) = parse_addr(addr)?;
            Some(RconAdmin {
                id: parse_u32(id)?,
                ip,
                port,
            })
        })
        .collect()
}

/// Parse the `missions` answer: every non-empty line, trimmed, except the leading
/// `Missions on server:` header.
pub fn parse_missions(text: &str) -> Vec<String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    if lines.peek() == Some(&"Missions on server:") {
        lines.next();
    }
    lines.map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------------
// Server messages
// ---------------------------------------------------------------------------------

/// Chat channel of a player message `(<Channel>) <name>: <text>`: the game-neutral
/// channel of the wire protocol; BattlEye's names are read by `from_name` below.
pub use crate::wire::player::ChatChannel;

impl ChatChannel {
    fn from_name(s: &str) -> Self {
        match s {
            "Global" => Self::Global,
            "Side" => Self::Side,
            "Command" => Self::Command,
            "Group" => Self::Group,
            "Vehicle" => Self::Vehicle,
            "Direct" => Self::Direct,
            "Lobby" => Self::Lobby,
            "Unknown" => Self::Unknown,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// Recipient of an RCon admin's `say`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminChatTarget {
    /// `say -1 …`.
    Global,
    /// `say <#> …`: the player's name as BattlEye printed it.
    Player(String),
}

/// How a player's GUID line was worded (it changed between builds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuidNotice {
    /// Current builds: `- BE GUID: <hex>`. Verification follows as
    /// [`ServerEvent::GuidVerified`].
    BeGuid,
    /// Older builds: `- GUID: <hex>`.
    Guid,
    /// Older builds: `- GUID: <hex> (unverified)` (typically BE master unreachable).
    Unverified,
    /// Arma 2 / DayZ mod: `- Legacy GUID: <hex>`; not the BE GUID of Arma 3.
    Legacy,
}

/// A BattlEye console message, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerEvent {
    /// `RCon admin #<id> (<ip>:<port>) logged in`.
    AdminLogin {
        admin_id: u32,
        ip: IpAddr,
        port: u16,
    },
    /// `Player #<n> <name> (<ip>:<port>) connected`.
    PlayerConnected {
        number: u32,
        name: String,
        ip: IpAddr,
        port: u16,
    },
    /// `Player #<n> <name> - BE GUID: <hex>` and the older/legacy wordings.
    PlayerGuid {
        number: u32,
        name: String,
        guid: String,
        notice: GuidNotice,
    },
    /// `Verified GUID (<hex>) of player #<n> <name>`.
    GuidVerified {
        number: u32,
        name: String,
        guid: String,
    },
    /// `Player #<n> <name> disconnected`.
    PlayerDisconnected { number: u32, name: String },
    /// `Player #<n> <name> (<guid or ->) has been kicked by BattlEye: <reason>`.
    /// Bans show up here too, with a reason of `Admin Ban (…)`. When the marker
    /// appears more than once, the last one with a 32-hex GUID or `-` splits name
    /// and reason (names are player-chosen, reasons come from BattlEye or an admin).
    PlayerKicked {
        number: u32,
        name: String,
        guid: Option<String>,
        reason: String,
    },
    /// `(<Channel>) <name>: <text>`. Split at the *first* `: ` after the channel
    /// (as berconpy does): a name containing `: ` is cut there and the remainder is
    /// prepended to `text`. Callers that know the online names can re-split.
    Chat {
        channel: ChatChannel,
        name: String,
        text: String,
    },
    /// `RCon admin #<id>: (Global) <text>` or `RCon admin #<id>: (To <name>) <text>`.
    /// For `To`, the name ends at the first `) `.
    AdminChat {
        admin_id: u32,
        to: AdminChatTarget,
        text: String,
    },
    /// A filter log line, `<Filter> Log: #<n> <name> (<guid>) - #<k> "<snippet>"`;
    /// `filter` is e.g. `Script`, `RemoteExec`. Kept raw: the format varies by filter.
    FilterLog { filter: String, raw: String },
    /// `Initialized (v1.217)` (RPT only): BattlEye is up, RCon becomes reachable.
    Initialized { version: String },
    /// Known chatter without meaning for us (BE master connectivity, `Config entry:`).
    Noise(String),
    /// Anything else, verbatim.
    Unknown(String),
}

/// The prefix BattlEye lines carry in the RPT / console output.
pub const RPT_PREFIX: &str = "BattlEye Server: ";

/// The BattlEye message inside an RPT message (the part after the timestamp):
/// `BattlEye Server: Player #1 x connected…` → `Player #1 x connected…`. Leading
/// spaces before the prefix are tolerated. `None` for non-BattlEye lines.
pub fn strip_rpt_prefix(message: &str) -> Option<&str> {
    message.trim_start_matches(' ').strip_prefix(RPT_PREFIX)
}

const NOISE_PREFIXES: &[&str] = &[
    "Config entry:",
    "Connected to BE Master",
    "Disconnected from BE Master",
    "Failed to resolve BE Master DNS name(s)",
    "Ban check timed out, no response from BE Master",
    "Master query timed out, no response from BE Master",
    "Failed to receive from BE Master",
];

/// Classify one BattlEye console message. Total: unrecognised text is
/// [`ServerEvent::Unknown`]. A trailing `\r`/`\n` is ignored.
pub fn parse_server_message(text: &str) -> ServerEvent {
    let msg = text.trim_end_matches(['\r', '\n']);
    let parsed = if msg.starts_with("Player #") {
        parse_player_message(msg)
    } else if msg.starts_with("Verified GUID (") {
        parse_verified(msg)
    } else if msg.starts_with("RCon admin #") {
        parse_admin_message(msg)
    } else if msg.starts_with('(') {
        parse_chat(msg)
    } else {
        None
    };
    if let Some(event) = parsed {
        return event;
    }
    if NOISE_PREFIXES.iter().any(|p| msg.starts_with(p)) {
        return ServerEvent::Noise(msg.to_owned());
    }
    if let Some(event) = parse_filter_log(msg).or_else(|| parse_initialized(msg)) {
        return event;
    }
    ServerEvent::Unknown(msg.to_owned())
}

const KICKED: &str = " has been kicked by BattlEye: ";

/// `Player #<n> …`. Checks go from the most to the least constrained tail, and
/// `connected`/`disconnected` come before `kicked` because a kick reason is chosen by
/// BattlEye or an admin while a name is chosen by the player: a player named
/// `a (-) has been kicked by BattlEye: x` must still disconnect as himself.
fn parse_player_message(msg: &str) -> Option<ServerEvent> {
    let (number, rest) = leading_u32(msg.strip_prefix("Player #")?)?;
    let body = rest.strip_prefix(' ')?;
    // The address is the last parenthesised group; the name may contain others.
    if let Some(head) = body.strip_suffix(") connected")
        && let Some((name, addr)) = head.rsplit_once(" (")
        && let Some((ip, port)) = parse_addr(addr)
    {
        return Some(ServerEvent::PlayerConnected {
            number,
            name: name.to_owned(),
            ip,
            port,
        });
    }
    if let Some(name) = body.strip_suffix(" disconnected") {
        return Some(ServerEvent::PlayerDisconnected {
            number,
            name: name.to_owned(),
        });
    }
    if let Some(event) = parse_guid_tail(number, body) {
        return Some(event);
    }
    // Kick: `<name> (<guid>) has been kicked by BattlEye: <reason>`. Both the
    // name and the reason may contain that marker, so the split is a choice. The
    // name is chosen by any player joining; the reason by BattlEye (fixed texts
    // such as `Client not responding`, `Global Ban #…`) or by an admin
    // (`Admin Kick (…)`). So the LAST occurrence whose group is a real GUID (32
    // hex digits) or `-` wins: whatever a player writes into his name lies
    // before the real marker and cannot move the split; only a reason that
    // itself contains a marker could, and that text comes from BattlEye or an
    // admin.
    for (at, _) in body.rmatch_indices(KICKED) {
        let Some(head) = body[..at].strip_suffix(')') else {
            continue;
        };
        let Some((name, guid)) = head.rsplit_once(" (") else {
            continue;
        };
        let real_guid = guid.len() == 32 && guid.bytes().all(|b| b.is_ascii_hexdigit());
        if !(real_guid || guid == "-") {
            continue;
        }
        return Some(ServerEvent::PlayerKicked {
            number,
            name: name.to_owned(),
            guid: (guid != "-").then(|| guid.to_owned()),
            reason: body[at + KICKED.len()..].to_owned(),
        });
    }
    None
}

/// `<name> - BE GUID: <hex>`, `<name> - GUID: <hex>[ (unverified)]`,
/// `<name> - Legacy GUID: <hex>`, anchored at the end of the message.
fn parse_guid_tail(number: u32, body: &str) -> Option<ServerEvent> {
    let (body, unverified) = match body.strip_suffix(" (unverified)") {
        Some(b) => (b, true),
        None => (body, false),
    };
    let (head, guid) = body.rsplit_once(": ")?;
    if guid.is_empty() || !guid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (name, notice) = if let Some(n) = head.strip_suffix(" - BE GUID") {
        (n, GuidNotice::BeGuid)
    } else if let Some(n) = head.strip_suffix(" - Legacy GUID") {
        (n, GuidNotice::Legacy)
    } else if let Some(n) = head.strip_suffix(" - GUID") {
        (n, GuidNotice::Guid)
    } else {
        return None;
    };
    let notice = if unverified && notice != GuidNotice::Legacy {
        GuidNotice::Unverified
    } else {
        notice
    };
    Some(ServerEvent::PlayerGuid {
        number,
        name: name.to_owned(),
        guid: guid.to_owned(),
        notice,
    })
}

fn parse_verified(msg: &str) -> Option<ServerEvent> {
    let rest = msg.strip_prefix("Verified GUID (")?;
    let (guid, rest) = rest.split_once(") of player #")?;
    let (number, rest) = leading_u32(rest)?;
    let name = rest.strip_prefix(' ')?;
    Some(ServerEvent::GuidVerified {
        number,
        name: name.to_owned(),
        guid: guid.to_owned(),
    })
}

fn parse_admin_message(msg: &str) -> Option<ServerEvent> {
    let (admin_id, rest) = leading_u32(msg.strip_prefix("RCon admin #")?)?;
    if let Some(said) = rest.strip_prefix(": ") {
        let (to, text) = if let Some(text) = said.strip_prefix("(Global)") {
            // The text follows after one space (absent when the text is empty).
            (
                AdminChatTarget::Global,
                text.strip_prefix(' ').unwrap_or(text),
            )
        } else {
            let rest = said.strip_prefix("(To ")?;
            let (name, text) = match rest.split_once(") ") {
                Some((name, text)) => (name, text),
                None => (rest.strip_suffix(')')?, ""),
            };
            (AdminChatTarget::Player(name.to_owned()), text)
        };
        return Some(ServerEvent::AdminChat {
            admin_id,
            to,
            text: text.to_owned(),
        });
    }
    let addr = rest.strip_prefix(" (")?.strip_suffix(") logged in")?;
    let (ip, port) = parse_addr(addr)?;
    Some(ServerEvent::AdminLogin { admin_id, ip, port })
}

fn parse_chat(msg: &str) -> Option<ServerEvent> {
    let rest = msg.strip_prefix('(')?;
    let (channel, rest) = rest.split_once(") ")?;
    if channel.is_empty() || channel.contains(['(', ')']) {
        return None;
    }
    let (name, text) = match rest.split_once(": ") {
        Some(split) => split,
        None => (rest.strip_suffix(':')?, ""),
    };
    Some(ServerEvent::Chat {
        channel: ChatChannel::from_name(channel),
        name: name.to_owned(),
        text: text.to_owned(),
    })
}

fn parse_filter_log(msg: &str) -> Option<ServerEvent> {
    let (filter, _) = msg.split_once(" Log: #")?;
    if filter.is_empty() || filter.contains(is_sep) {
        return None;
    }
    Some(ServerEvent::FilterLog {
        filter: filter.to_owned(),
        raw: msg.to_owned(),
    })
}

fn parse_initialized(msg: &str) -> Option<ServerEvent> {
    let v = msg.strip_prefix("Initialized (")?.strip_suffix(')')?;
    Some(ServerEvent::Initialized {
        version: v.strip_prefix('v').unwrap_or(v).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PLAYERS: &str = "Players on server:
[#] [IP Address]:[Port] [Ping] [GUID] [Name]
--------------------------------------------------
0   46.149.73.255:2304    140  2c65319280ac51b220aef667552a7f06(OK) 0dmin
10  37.232.159.82:2354    105  20446897121fafa82c1069ed07820f27(OK) Максим
3   1.2.3.4:2304          47   4f0c611d97e5379680d79f2f36b2e9e1(OK) Bob (Lobby)
(16 players in total)
";

    #[test]
    fn parse_players_reference_sample() {
        let p = parse_players(PLAYERS);
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[0],
            Player {
                number: 0,
                ip: ip("46.149.73.255"),
                port: 2304,
                ping: Some(140),
                guid: Some("2c65319280ac51b220aef667552a7f06".into()),
                verified: true,
                name: "0dmin".into(),
                in_lobby: false,
            }
        );
        assert_eq!(
            (p[1].number, p[1].name.as_str(), p[1].port),
            (10, "Максим", 2354)
        );
        assert_eq!(
            (p[2].name.as_str(), p[2].in_lobby, p[2].ping),
            ("Bob", true, Some(47))
        );
        // CRLF line endings work the same.
        assert_eq!(parse_players(&PLAYERS.replace('\n', "\r\n")), p);
    }

    #[test]
    fn parse_players_unknown_guid_and_ping() {
        let text = "Players on server:
[#] [IP Address]:[Port] [Ping] [GUID] [Name]
--------------------------------------------------
1   10.0.0.1:2304         -1   -  New Guy (x): y
2   10.0.0.2:2305         0    -(?) Zero
4   10.0.0.3:2306         12   0123456789abcdef0123456789abcdef(?) Dr. (Lobby) Who (Lobby)
5   not-an-ip:2304        12   0123456789abcdef0123456789abcdef(OK) skipped
6   10.0.0.4:2304         abc  0123456789abcdef0123456789abcdef(OK) skipped
(5 players in total)";
        let p = parse_players(text);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(
            (
                p[0].ping,
                p[0].guid.as_deref(),
                p[0].verified,
                p[0].name.as_str()
            ),
            (None, None, false, "New Guy (x): y")
        );
        assert_eq!(
            (p[1].ping, p[1].guid.as_deref(), p[1].name.as_str()),
            (Some(0), None, "Zero")
        );
        assert_eq!(
            (p[2].verified, p[2].name.as_str(), p[2].in_lobby),
            (false, "Dr. (Lobby) Who", true)
        );
        assert!(parse_players("").is_empty());
        assert!(parse_players("Players on server:\n(0 players in total)").is_empty());
    }

    #[test]
    fn parse_bans_reference_sample() {
        let text = "GUID Bans:
[#] [GUID] [Minutes left] [Reason]
----------------------------------------
0  331e64806b30277076963283eea16438 perm destruction of equipment
1  8ce223565255b304f01ce5c3b3830d77 1432 GameHack

IP Bans:
[#] [IP Address] [Minutes left] [Reason]
----------------------------------------------
2  198.51.100.7    perm   proxy
";
        let b = parse_bans(text);
        assert_eq!(
            b,
            vec![
                Ban {
                    index: 0,
                    kind: BanKind::Guid,
                    target: "331e64806b30277076963283eea16438".into(),
                    minutes_left: BanExpiry::Permanent,
                    reason: "destruction of equipment".into(),
                },
                Ban {
                    index: 1,
                    kind: BanKind::Guid,
                    target: "8ce223565255b304f01ce5c3b3830d77".into(),
                    minutes_left: BanExpiry::Minutes(1432),
                    reason: "GameHack".into(),
                },
                Ban {
                    index: 2,
                    kind: BanKind::Ip,
                    target: "198.51.100.7".into(),
                    minutes_left: BanExpiry::Permanent,
                    reason: "proxy".into(),
                },
            ]
        );
    }

    #[test]
    fn parse_bans_numbering_expired_and_empty_reason() {
        let text = "GUID Bans:\n[#] [GUID] [Minutes left] [Reason]\n---\n\
                    0  331e64806b30277076963283eea16438 -\n\
                    1  8ce223565255b304f01ce5c3b3830d77 5 a  b \n\n\
                    IP Bans:\n[#] [IP Address] [Minutes left] [Reason]\n---\n\
                    3  198.51.100.7    -      \n\
                    4  203.0.113.9     60     VPN (abuse)\n\
                    x  203.0.113.9     60     skipped\n\
                    5  203.0.113.9     soon   skipped\n";
        let b = parse_bans(text);
        let summary: Vec<_> = b
            .iter()
            .map(|b| (b.index, b.kind, b.minutes_left, b.reason.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, BanKind::Guid, BanExpiry::Expired, ""),
                (1, BanKind::Guid, BanExpiry::Minutes(5), "a  b"),
                (3, BanKind::Ip, BanExpiry::Expired, ""),
                (4, BanKind::Ip, BanExpiry::Minutes(60), "VPN (abuse)"),
            ]
        );
        // Rows without a section header: kind inferred from the target.
        let b = parse_bans("7 1.2.3.4 perm x\n8 331e64806b30277076963283eea16438 perm y");
        assert_eq!((b[0].kind, b[1].kind), (BanKind::Ip, BanKind::Guid));
    }

    #[test]
    fn parse_admins_and_missions() {
        let text = "Connected RCon admins:
[#] [IP Address]:[Port]
-----------------------------
0 46.149.73.255:58606
1 127.0.0.1:40000
";
        assert_eq!(
            parse_admins(text),
            vec![
                RconAdmin {
                    id: 0,
                    ip: ip("46.149.73.255"),
                    port: 58606
                },
                RconAdmin {
                    id: 1,
                    ip: ip("127.0.0.1"),
                    port: 40000
                },
            ]
        );
        let m = parse_missions(
            "Missions on server:\nco10_Escape.Altis.pbo\n\n  MP_Warlords.Tanoa.pbo \r\n",
        );
        assert_eq!(m, vec!["co10_Escape.Altis.pbo", "MP_Warlords.Tanoa.pbo"]);
        assert!(parse_missions("Missions on server:\n").is_empty());
    }

    fn ev(s: &str) -> ServerEvent {
        parse_server_message(s)
    }

    #[test]
    fn parse_msg_admin_login_and_chat() {
        assert_eq!(
            ev("RCon admin #0 (90.92.59.82:59806) logged in"),
            ServerEvent::AdminLogin {
                admin_id: 0,
                ip: ip("90.92.59.82"),
                port: 59806
            }
        );
        assert_eq!(
            ev("RCon admin #1: (Global) Server restarts in 5 min: be ready"),
            ServerEvent::AdminChat {
                admin_id: 1,
                to: AdminChatTarget::Global,
                text: "Server restarts in 5 min: be ready".into()
            }
        );
        assert_eq!(
            ev("RCon admin #2: (To Bob (x)) hi there"),
            ServerEvent::AdminChat {
                admin_id: 2,
                to: AdminChatTarget::Player("Bob (x)".into()),
                text: "hi there".into()
            }
        );
        assert_eq!(
            ev("RCon admin #2: (To Bob (x) y) hi"),
            ServerEvent::AdminChat {
                admin_id: 2,
                to: AdminChatTarget::Player("Bob (x".into()),
                text: "y) hi".into()
            },
            "documented ambiguity: the recipient name ends at the first ') '"
        );
        assert_eq!(
            ev("RCon admin #3: (To Bob)"),
            ServerEvent::AdminChat {
                admin_id: 3,
                to: AdminChatTarget::Player("Bob".into()),
                text: "".into()
            }
        );
        assert_eq!(
            ev("RCon admin #2: (To Максим) привет"),
            ServerEvent::AdminChat {
                admin_id: 2,
                to: AdminChatTarget::Player("Максим".into()),
                text: "привет".into()
            }
        );
    }

    #[test]
    fn parse_msg_player_chat() {
        assert_eq!(
            ev("(Side) Matt Fox: m"),
            ServerEvent::Chat {
                channel: ChatChannel::Side,
                name: "Matt Fox".into(),
                text: "m".into()
            }
        );
        assert_eq!(
            ev("(Global) x: Player #1 fake (1.2.3.4:5) connected"),
            ServerEvent::Chat {
                channel: ChatChannel::Global,
                name: "x".into(),
                text: "Player #1 fake (1.2.3.4:5) connected".into()
            }
        );
        // Ambiguity: a name with ": " is split at the first one.
        assert_eq!(
            ev("(Direct) Dr: Who (x): hello: world"),
            ServerEvent::Chat {
                channel: ChatChannel::Direct,
                name: "Dr".into(),
                text: "Who (x): hello: world".into()
            }
        );
        for (c, ch) in [
            ("Global", ChatChannel::Global),
            ("Command", ChatChannel::Command),
            ("Group", ChatChannel::Group),
            ("Vehicle", ChatChannel::Vehicle),
            ("Lobby", ChatChannel::Lobby),
            ("Unknown", ChatChannel::Unknown),
            ("Custom 1", ChatChannel::Other("Custom 1".into())),
        ] {
            assert_eq!(
                ev(&format!("({c}) Bob (Lobby): ")),
                ServerEvent::Chat {
                    channel: ch,
                    name: "Bob (Lobby)".into(),
                    text: "".into()
                }
            );
        }
        assert!(matches!(
            ev("(Side) no colon here"),
            ServerEvent::Unknown(_)
        ));
    }

    #[test]
    fn parse_msg_connect_disconnect_tricky_names() {
        assert_eq!(
            ev("Player #36 Master (88.196.232.197:2304) connected"),
            ServerEvent::PlayerConnected {
                number: 36,
                name: "Master".into(),
                ip: ip("88.196.232.197"),
                port: 2304
            }
        );
        assert_eq!(
            ev("Player #3 x (1.2.3.4:5) (5.6.7.8:2304) connected"),
            ServerEvent::PlayerConnected {
                number: 3,
                name: "x (1.2.3.4:5)".into(),
                ip: ip("5.6.7.8"),
                port: 2304
            }
        );
        assert_eq!(
            ev("Player #4 a: b (c) d disconnected (9.9.9.9:1) connected"),
            ServerEvent::PlayerConnected {
                number: 4,
                name: "a: b (c) d disconnected".into(),
                ip: ip("9.9.9.9"),
                port: 1
            }
        );
        assert_eq!(
            ev("Player #3 x (1.2.3.4:5) disconnected"),
            ServerEvent::PlayerDisconnected {
                number: 3,
                name: "x (1.2.3.4:5)".into()
            }
        );
        assert_eq!(
            ev("Player #4 Ztppp disconnected"),
            ServerEvent::PlayerDisconnected {
                number: 4,
                name: "Ztppp".into()
            }
        );
        // A spoofing name cannot turn a disconnect into a kick.
        assert_eq!(
            ev("Player #5 a (-) has been kicked by BattlEye: x disconnected"),
            ServerEvent::PlayerDisconnected {
                number: 5,
                name: "a (-) has been kicked by BattlEye: x".into()
            }
        );
        assert_eq!(
            ev("Player #6 Максим (1.2.3.4:2304) connected"),
            ServerEvent::PlayerConnected {
                number: 6,
                name: "Максим".into(),
                ip: ip("1.2.3.4"),
                port: 2304
            }
        );
    }

    #[test]
    fn parse_msg_guid_forms() {
        let g = "2854515fa6c84ca6657cd55fa8c145cb";
        let guid = |name: &str, notice| ServerEvent::PlayerGuid {
            number: 38,
            name: name.into(),
            guid: g.into(),
            notice,
        };
        assert_eq!(
            ev(&format!("Player #38 Fritz - BE GUID: {g}")),
            guid("Fritz", GuidNotice::BeGuid)
        );
        assert_eq!(
            ev(&format!("Player #38 Fritz - GUID: {g}")),
            guid("Fritz", GuidNotice::Guid)
        );
        assert_eq!(
            ev(&format!("Player #38 Fritz - GUID: {g} (unverified)")),
            guid("Fritz", GuidNotice::Unverified)
        );
        assert_eq!(
            ev(&format!(
                "Player #38 A - GUID: x (1.2.3.4:5) - BE GUID: {g}"
            )),
            guid("A - GUID: x (1.2.3.4:5)", GuidNotice::BeGuid)
        );
        assert_eq!(
            ev(&format!("Player #38 Old - Legacy GUID: {g}")),
            guid("Old", GuidNotice::Legacy)
        );
        assert_eq!(
            ev(&format!("Verified GUID ({g}) of player #8 Sgt. Gonzalez")),
            ServerEvent::GuidVerified {
                number: 8,
                name: "Sgt. Gonzalez".into(),
                guid: g.into()
            }
        );
        assert_eq!(
            ev(&format!(
                "Verified GUID ({g}) of player #8 x) of player #9 y"
            )),
            ServerEvent::GuidVerified {
                number: 8,
                name: "x) of player #9 y".into(),
                guid: g.into()
            }
        );
    }

    #[test]
    fn parse_msg_kicks() {
        assert_eq!(
            ev(
                "Player #3 MM Leon (4f0c611d97e5379680d79f2f36b2e9e1) has been kicked by BattlEye: Admin Kick (AFK too long (user_check by Ztppp))"
            ),
            ServerEvent::PlayerKicked {
                number: 3,
                name: "MM Leon".into(),
                guid: Some("4f0c611d97e5379680d79f2f36b2e9e1".into()),
                reason: "Admin Kick (AFK too long (user_check by Ztppp))".into()
            }
        );
        assert_eq!(
            ev("Player #5 x (y): z (-) has been kicked by BattlEye: Client not responding"),
            ServerEvent::PlayerKicked {
                number: 5,
                name: "x (y): z".into(),
                guid: None,
                reason: "Client not responding".into()
            }
        );
        assert_eq!(
            ev(
                "Player #0 Bob (4f0c611d97e5379680d79f2f36b2e9e1) has been kicked by BattlEye: Admin Ban (griefing)"
            ),
            ServerEvent::PlayerKicked {
                number: 0,
                name: "Bob".into(),
                guid: Some("4f0c611d97e5379680d79f2f36b2e9e1".into()),
                reason: "Admin Ban (griefing)".into()
            }
        );
    }

    #[test]
    fn parse_msg_kick_with_hostile_name() {
        let g = "4f0c611d97e5379680d79f2f36b2e9e1";
        // The player named himself like a kick message; the real marker is last.
        for (name, guid, reason) in [
            (
                "a (-) has been kicked by BattlEye: ",
                None,
                "Client not responding",
            ),
            (
                "a (-) has been kicked by BattlEye: ",
                Some(g),
                "Admin Kick (spam)",
            ),
            (
                "x (4f0c611d97e5379680d79f2f36b2e9e1) has been kicked by BattlEye: y",
                None,
                "Global Ban #abc",
            ),
            (
                "n (-) has been kicked by BattlEye: (-)",
                Some(g),
                "Admin Ban (x)",
            ),
        ] {
            let line = format!(
                "Player #7 {name} ({}) has been kicked by BattlEye: {reason}",
                guid.unwrap_or("-")
            );
            assert_eq!(
                ev(&line),
                ServerEvent::PlayerKicked {
                    number: 7,
                    name: name.into(),
                    guid: guid.map(Into::into),
                    reason: reason.into()
                },
                "{line}"
            );
        }
        // A group that is not a GUID is never the split, even when last.
        assert_eq!(
            ev(&format!(
                "Player #2 Bob ({g}) has been kicked by BattlEye: Admin Kick (see (abc) has been kicked by BattlEye: x)"
            )),
            ServerEvent::PlayerKicked {
                number: 2,
                name: "Bob".into(),
                guid: Some(g.into()),
                reason: "Admin Kick (see (abc) has been kicked by BattlEye: x)".into()
            }
        );
    }

    #[test]
    fn parse_msg_noise_filter_unknown_and_rpt() {
        for s in [
            "Connected to BE Master",
            "Disconnected from BE Master",
            "Failed to resolve BE Master DNS name(s)",
            "Ban check timed out, no response from BE Master",
            "Master query timed out, no response from BE Master",
            "Failed to receive from BE Master",
            "Config entry: MaxPing 200",
        ] {
            assert_eq!(ev(s), ServerEvent::Noise(s.into()));
        }
        let s = "Script Log: #0 Bob (4f0c611d97e5379680d79f2f36b2e9e1) - #0 \"hint 'x'\"";
        assert_eq!(
            ev(s),
            ServerEvent::FilterLog {
                filter: "Script".into(),
                raw: s.into()
            }
        );
        assert_eq!(
            ev("Initialized (v1.217)"),
            ServerEvent::Initialized {
                version: "1.217".into()
            }
        );
        for s in [
            "",
            "Player #",
            "Player #x y disconnected",
            "RCon admin #1 (bad) logged in",
            "hello",
        ] {
            assert_eq!(ev(s), ServerEvent::Unknown(s.into()));
        }
        let rpt = "BattlEye Server: Player #36 Master (88.196.232.197:2304) connected";
        let inner = strip_rpt_prefix(rpt).unwrap();
        assert!(matches!(
            ev(inner),
            ServerEvent::PlayerConnected { number: 36, .. }
        ));
        assert_eq!(strip_rpt_prefix("Player Fritz connected (id=1)."), None);
        assert_eq!(
            ev(strip_rpt_prefix("BattlEye Server: (Side) Matt Fox: m\r").unwrap()),
            ServerEvent::Chat {
                channel: ChatChannel::Side,
                name: "Matt Fox".into(),
                text: "m".into()
            }
        );
    }

    /// Renders like the server: id width 4, `ip:port` width 22, ping width 5.
    fn render_players(players: &[Player]) -> String {
        let mut s =
            String::from("Players on server:\n[#] [IP Address]:[Port] [Ping] [GUID] [Name]\n");
        s.push_str(&"-".repeat(50));
        s.push('\n');
        for p in players {
            let ping = p.ping.map_or("-1".to_owned(), |v| v.to_string());
            let guid = match &p.guid {
                Some(g) => format!("{g}({})", if p.verified { "OK" } else { "?" }),
                None => "-".to_owned(),
            };
            let lobby = if p.in_lobby { " (Lobby)" } else { "" };
            s.push_str(&format!(
                "{:<4}{:<22}{:<5}{} {}{}\n",
                p.number,
                format!("{}:{}", p.ip, p.port),
                ping,
                guid,
                p.name,
                lobby
            ));
        }
        s.push_str(&format!("({} players in total)", players.len()));
        s
    }

    fn arb_player() -> impl Strategy<Value = Player> {
        (
            0u32..1000,
            any::<[u8; 4]>(),
            any::<u16>(),
            proptest::option::of(0u32..10_000),
            proptest::option::of("[0-9a-f]{32}"),
            any::<bool>(),
            "[^\\p{Cc} ]([^\\p{Cc}]{0,20}[^\\p{Cc} ])?",
            any::<bool>(),
        )
            .prop_filter("name must not end in ' (Lobby)'", |t| {
                !t.6.ends_with(" (Lobby)")
            })
            .prop_map(
                |(number, ip, port, ping, guid, verified, name, in_lobby)| Player {
                    number,
                    ip: IpAddr::V4(Ipv4Addr::from(ip)),
                    port,
                    ping,
                    verified: verified && guid.is_some(),
                    guid,
                    name,
                    in_lobby,
                },
            )
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}", b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let lossy = String::from_utf8_lossy(&b);
            for text in [s.as_str(), lossy.as_ref()] {
                let _ = parse_players(text);
                let _ = parse_bans(text);
                let _ = parse_admins(text);
                let _ = parse_missions(text);
                let _ = parse_server_message(text);
                let _ = strip_rpt_prefix(text);
            }
        }

        #[test]
        fn parse_never_panics_on_shaped_input(
            s in "(Player #|RCon admin #|Verified GUID \\(|\\()[0-9]{0,3}[ :()a-z.#-]{0,40}"
        ) {
            let _ = parse_server_message(&s);
        }

        #[test]
        fn parse_players_round_trip(players in proptest::collection::vec(arb_player(), 0..8)) {
            let text = render_players(&players);
            prop_assert_eq!(parse_players(&text), players);
        }

        #[test]
        fn parse_connect_and_disconnect_any_name(
            name in "[^\\p{Cc}]{1,30}", n in 0u32..1000, ip4 in any::<[u8; 4]>(), port in any::<u16>()
        ) {
            let ip = IpAddr::V4(Ipv4Addr::from(ip4));
            prop_assert_eq!(
                parse_server_message(&format!("Player #{n} {name} ({ip}:{port}) connected")),
                ServerEvent::PlayerConnected { number: n, name: name.clone(), ip, port }
            );
            prop_assert_eq!(
                parse_server_message(&format!("Player #{n} {name} disconnected")),
                ServerEvent::PlayerDisconnected { number: n, name: name.clone() }
            );
            let g = "4f0c611d97e5379680d79f2f36b2e9e1";
            prop_assert_eq!(
                parse_server_message(&format!("Verified GUID ({g}) of player #{n} {name}")),
                ServerEvent::GuidVerified { number: n, name: name.clone(), guid: g.into() }
            );
        }
    }
}
