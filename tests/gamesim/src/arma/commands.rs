//! The BattlEye RCon command set (reference §2.4): what each command does to the
//! world and the exact text it answers with.

use std::net::SocketAddr;

use super::configs::{ServerSettings, find_file_ci};
use super::world::{Shared, Stage, World, unix_now};

/// What running a command produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The reply text (empty = plain ack).
    pub reply: String,
    /// Whether the command itself caused a console message (say echo, kick lines).
    pub printed_message: bool,
    /// `#shutdown` was accepted: exit after the reply is out.
    pub shutdown: bool,
}

impl Outcome {
    fn text(reply: impl Into<String>) -> Self {
        Outcome {
            reply: reply.into(),
            ..Outcome::default()
        }
    }
    fn ack() -> Self {
        Outcome::default()
    }
    fn printed() -> Self {
        Outcome {
            printed_message: true,
            ..Outcome::default()
        }
    }
}

/// The `players` table.
pub fn players_table(w: &mut World) -> String {
    let mut out = String::from(
        "Players on server:\n[#] [IP Address]:[Port] [Ping] [GUID] [Name]\n--------------------------------------------------\n",
    );
    let lobby = w.mission.is_none();
    let nums: Vec<u32> = w.players.iter().map(|p| p.num).collect();
    for num in &nums {
        let ping = w.ping_of(*num);
        let Some(p) = w.player(*num) else { continue };
        let addr = format!("{}:{}", p.ip, p.port);
        let guid = match p.stage {
            Stage::Connecting => "-".to_string(),
            Stage::GuidKnown => format!("{}(?)", p.guid),
            Stage::Verified => format!("{}(OK)", p.guid),
        };
        let suffix = if lobby { " (Lobby)" } else { "" };
        out.push_str(&format!(
            "{:<4}{:<22}{:<5}{} {}{}\n",
            p.num, addr, ping, guid, p.name, suffix
        ));
    }
    out.push_str(&format!("({} players in total)", nums.len()));
    out
}

/// The `admins` table.
pub fn admins_table(admins: &[(u32, SocketAddr)]) -> String {
    let mut out = String::from(
        "Connected RCon admins:\n[#] [IP Address]:[Port]\n-----------------------------",
    );
    for (id, addr) in admins {
        out.push_str(&format!("\n{id} {addr}"));
    }
    out
}

/// The `bans` table; indices continue from the GUID section into the IP section.
pub fn bans_table(w: &World) -> String {
    let now = unix_now();
    let mut out = String::from(
        "GUID Bans:\n[#] [GUID] [Minutes left] [Reason]\n----------------------------------------\n",
    );
    let mut idx = 0usize;
    for b in &w.guid_bans {
        let line = format!(
            "{:<3}{} {} {}",
            idx,
            b.target,
            b.minutes_left(now),
            b.reason
        );
        out.push_str(line.trim_end());
        out.push('\n');
        idx += 1;
    }
    out.push_str(
        "\nIP Bans:\n[#] [IP Address] [Minutes left] [Reason]\n----------------------------------------------",
    );
    for b in &w.ip_bans {
        let line = format!(
            "{:<3}{:<16}{:<7}{}",
            idx,
            b.target,
            b.minutes_left(now),
            b.reason
        );
        out.push('\n');
        out.push_str(line.trim_end());
        idx += 1;
    }
    out
}

/// `Missions on server:` + `mpmissions/*.pbo` of the server dir (cwd), or the
/// rotation's templates when that folder has none.
pub fn missions_list(w: &World) -> String {
    let mut names: Vec<String> = std::fs::read_dir("mpmissions")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.to_ascii_lowercase().ends_with(".pbo"))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = w
            .settings
            .missions
            .iter()
            .map(|m| format!("{}.pbo", m.template))
            .collect();
    }
    names.sort();
    let mut out = String::from("Missions on server:");
    for n in names {
        out.push('\n');
        out.push_str(&n);
    }
    out
}

/// Splits `"<int> rest"` when the first word is an integer.
fn leading_int(s: &str) -> (Option<i64>, &str) {
    let s = s.trim();
    let (first, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
    match first.parse::<i64>() {
        Ok(n) => (Some(n), rest.trim()),
        Err(_) => (None, s),
    }
}

/// Runs one command line from admin `admin_id`.
pub fn execute(
    shared: &Shared,
    admin_id: u32,
    admins: &[(u32, SocketAddr)],
    line: &str,
) -> Outcome {
    let line = line.trim();
    let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let lname = name.to_ascii_lowercase();
    let mut w = shared.lock();
    if w.restrict_rcon && lname.starts_with('#') {
        return Outcome::text("Disallowed command");
    }
    match lname.as_str() {
        "players" => Outcome::text(players_table(&mut w)),
        "admins" => Outcome::text(admins_table(admins)),
        "bans" => Outcome::text(bans_table(&w)),
        "missions" => Outcome::text(missions_list(&w)),
        "say" => {
            let (target, msg) = leading_int(rest);
            match target {
                Some(-1) => {
                    shared.be(&format!("RCon admin #{admin_id}: (Global) {msg}"));
                    Outcome::printed()
                }
                Some(n) => match u32::try_from(n).ok().and_then(|n| w.player(n)) {
                    Some(p) => {
                        shared.be(&format!("RCon admin #{admin_id}: (To {}) {msg}", p.name));
                        Outcome::printed()
                    }
                    None => Outcome::ack(),
                },
                None => Outcome::ack(),
            }
        }
        "kick" => {
            let (n, reason) = leading_int(rest);
            let reason = if reason.is_empty() {
                "Admin Kick".to_string()
            } else {
                format!("Admin Kick ({reason})")
            };
            match n.and_then(|n| u32::try_from(n).ok()) {
                Some(n) if shared.remove_player(&mut w, n, Some(&reason)) => Outcome::printed(),
                _ => Outcome::ack(),
            }
        }
        "ban" => {
            let (n, after) = leading_int(rest);
            let (minutes, reason) = leading_int(after);
            let reason = if reason.is_empty() { "Banned" } else { reason };
            let Some(p) = n
                .and_then(|n| u32::try_from(n).ok())
                .and_then(|n| w.player(n))
                .cloned()
            else {
                return Outcome::ack();
            };
            if w.add_ban(&p.guid, minutes.unwrap_or(0), reason).is_ok() {
                w.write_bans(false);
            }
            shared.remove_player(&mut w, p.num, Some(&format!("Admin Ban ({reason})")));
            Outcome::printed()
        }
        "addban" => {
            let (target, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let (minutes, reason) = leading_int(after);
            match w.add_ban(target, minutes.unwrap_or(0), reason) {
                Ok(()) => {
                    w.write_bans(false);
                    Outcome::ack()
                }
                Err(_) => Outcome::text("Invalid GUID or IP address"),
            }
        }
        "removeban" => match rest.parse::<usize>() {
            Ok(i) if w.remove_ban(i) => {
                w.write_bans(false);
                Outcome::ack()
            }
            _ => Outcome::text("Invalid ban number"),
        },
        "loadbans" => {
            w.load_bans();
            Outcome::ack()
        }
        "writebans" => {
            w.write_bans(true);
            Outcome::ack()
        }
        "loadscripts" | "loadevents" => Outcome::ack(),
        "maxping" => {
            w.max_ping = rest.parse().ok();
            Outcome::ack()
        }
        "rconpassword" => {
            if !rest.is_empty() {
                w.rcon_password = Some(rest.to_string());
            }
            Outcome::ack()
        }
        "#mission" => {
            let (template, difficulty) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if !template.is_empty() {
                shared.start_mission(&mut w, template, difficulty.trim());
            }
            Outcome::ack()
        }
        "#lock" => {
            w.locked = true;
            Outcome::ack()
        }
        "#unlock" => {
            w.locked = false;
            Outcome::ack()
        }
        "#restart" | "#restartserver" | "#reassign" => {
            if let Some(m) = w.mission.clone() {
                shared.start_mission(&mut w, &m.template, &m.difficulty);
            }
            Outcome::ack()
        }
        "#init" => {
            if let Some(s) = w
                .config_path
                .clone()
                .and_then(|path| std::fs::read_to_string(path).ok())
                .and_then(|t| ServerSettings::from_text(&t).ok())
            {
                shared.rpt.set_format(s.timestamp_format);
                w.settings = s;
            }
            Outcome::ack()
        }
        "#shutdown" => Outcome {
            shutdown: true,
            ..Outcome::default()
        },
        "#monitor" | "#debug" | "#login" | "#logout" | "#exec" | "#kick" | "#vote" => {
            Outcome::ack()
        }
        _ => Outcome::text("Unknown command"),
    }
}

/// Finds the BattlEye server cfg in `dir` (reference §4.4). On Linux BattlEye opens
/// exactly `beserver_x64.cfg` (`beserver.cfg` for the 32-bit exe): a `BEServer_x64.cfg`
/// is not found on a case-sensitive file system. In Windows mode the name matches
/// case-insensitively, as the Windows file system does.
pub fn be_cfg_path(dir: &std::path::Path, x64: bool, windows: bool) -> Option<std::path::PathBuf> {
    let name = if x64 {
        "beserver_x64.cfg"
    } else {
        "beserver.cfg"
    };
    if windows {
        find_file_ci(dir, name)
    } else {
        let exact = dir.join(name);
        exact.is_file().then_some(exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arma::configs::ServerSettings;
    use crate::arma::world::Player;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::time::Instant;

    fn world() -> World {
        World::new(
            ServerSettings::default(),
            StdRng::seed_from_u64(3),
            std::env::temp_dir(),
        )
    }

    #[test]
    fn players_table_layout() {
        let mut w = world();
        w.mission = None;
        w.players.push(Player {
            num: 0,
            uid: 1,
            name: "Максим".into(),
            steam_id: 76561198017965694,
            guid: "f8960b9fd7cf711046c1df2ab8d534b2".into(),
            ip: "46.149.73.255".parse().unwrap(),
            port: 2304,
            base_ping: 140,
            stage: Stage::Verified,
            joined: Instant::now(),
            score: 0,
        });
        let t = players_table(&mut w);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Players on server:");
        assert_eq!(lines[2].len(), 50);
        assert!(lines[3].starts_with("0   46.149.73.255:2304    "));
        assert!(lines[3].ends_with("f8960b9fd7cf711046c1df2ab8d534b2(OK) Максим (Lobby)"));
        assert_eq!(lines[4], "(1 players in total)");
    }

    #[test]
    fn bans_and_admins_layout() {
        let mut w = world();
        w.add_ban(
            "331e64806b30277076963283eea16438",
            0,
            "destruction of equipment",
        )
        .unwrap();
        w.add_ban("198.51.100.7", 0, "proxy").unwrap();
        let t = bans_table(&w);
        assert!(
            t.contains("\n0  331e64806b30277076963283eea16438 perm destruction of equipment\n")
        );
        assert!(t.ends_with("\n1  198.51.100.7    perm   proxy"));
        assert!(t.contains("\n\nIP Bans:\n"));
        let a = admins_table(&[(0, "46.149.73.255:58606".parse().unwrap())]);
        assert_eq!(
            a,
            "Connected RCon admins:\n[#] [IP Address]:[Port]\n-----------------------------\n0 46.149.73.255:58606"
        );
    }
}
