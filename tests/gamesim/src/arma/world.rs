//! Shared server state: roster, bans, mission, lock, and the channel that carries
//! BattlEye console messages to the RCon server. Every BattlEye message also goes
//! to the RPT with the `BattlEye Server: ` prefix, like the real server.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};

use super::args::SimOptions;
use super::configs::ServerSettings;
use super::rpt_writer::Rpt;

/// How far a joining player got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Connected; BattlEye has not computed the GUID yet (`players` shows `-`).
    Connecting,
    /// GUID known but not verified (`(?)`).
    GuidKnown,
    /// `(OK)`.
    Verified,
}

#[derive(Debug, Clone)]
pub struct Player {
    /// BattlEye player number (lowest free number is reused).
    pub num: u32,
    /// Unique per run, to tell a reused number apart.
    pub uid: u64,
    pub name: String,
    pub steam_id: u64,
    pub guid: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub base_ping: u32,
    pub stage: Stage,
    pub joined: Instant,
    pub score: i32,
}

/// A GUID or IP ban. `expires` is a Unix time; `None` = permanent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub target: String,
    pub expires: Option<i64>,
    pub reason: String,
}

impl Ban {
    /// `perm`, `-` when expired, or whole minutes left (rounded up).
    pub fn minutes_left(&self, now: i64) -> String {
        match self.expires {
            None => "perm".into(),
            Some(t) if t <= now => "-".into(),
            Some(t) => (t.saturating_sub(now).saturating_add(59) / 60).to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Mission {
    /// `MyMission.Altis`
    pub template: String,
    pub name: String,
    pub world: String,
    pub difficulty: String,
}

/// `addBan` target that is neither a GUID nor an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a GUID or IP address")]
pub struct InvalidBan;

pub struct World {
    pub settings: ServerSettings,
    pub players: Vec<Player>,
    pub guid_bans: Vec<Ban>,
    pub ip_bans: Vec<Ban>,
    pub mission: Option<Mission>,
    pub locked: bool,
    pub max_ping: Option<i64>,
    pub rcon_password: Option<String>,
    pub restrict_rcon: bool,
    /// Server-side randomness (mission ids). The player script has its own stream
    /// (see `players::run_script`), so RCon traffic never shifts joins or chat.
    pub rng: StdRng,
    /// Seed of the ping jitter hash (see [`World::ping_at`]).
    pub ping_seed: u64,
    /// Start of the ping time buckets.
    pub epoch: Instant,
    next_uid: u64,
    /// BattlEye working dir (bans.txt lives here).
    pub be_dir: PathBuf,
    /// The server.cfg path, for `#init`.
    pub config_path: Option<PathBuf>,
}

impl World {
    pub fn new(settings: ServerSettings, rng: StdRng, be_dir: PathBuf) -> Self {
        World {
            settings,
            players: vec![],
            guid_bans: vec![],
            ip_bans: vec![],
            mission: None,
            locked: false,
            max_ping: None,
            rcon_password: None,
            restrict_rcon: false,
            rng,
            ping_seed: 0,
            epoch: Instant::now(),
            next_uid: 1,
            be_dir,
            config_path: None,
        }
    }

    pub fn next_uid(&mut self) -> u64 {
        let u = self.next_uid;
        self.next_uid += 1;
        u
    }

    /// The lowest player number not in use.
    pub fn free_number(&self) -> u32 {
        (0..)
            .find(|n| !self.players.iter().any(|p| p.num == *n))
            .unwrap_or(0)
    }

    pub fn player(&self, num: u32) -> Option<&Player> {
        self.players.iter().find(|p| p.num == num)
    }

    pub fn player_by_uid(&mut self, uid: u64) -> Option<&mut Player> {
        self.players.iter_mut().find(|p| p.uid == uid)
    }

    pub fn is_banned(&self, guid: &str, ip: Ipv4Addr) -> bool {
        let now = unix_now();
        let live = |b: &&Ban| b.expires.is_none_or(|t| t > now);
        self.guid_bans
            .iter()
            .filter(live)
            .any(|b| b.target.eq_ignore_ascii_case(guid))
            || self
                .ip_bans
                .iter()
                .filter(live)
                .any(|b| b.target == ip.to_string())
    }

    /// Adds a ban (GUID if 32 hex digits, IP if it parses, else `Err`).
    ///
    /// `minutes <= 0` is permanent. A duration whose expiry does not fit a Unix time
    /// (`addBan <guid> 999999999999999999 x`) is also stored as permanent: bans.txt
    /// keeps an absolute expiry, and "ends after the end of time" is "never" (our
    /// choice; the reference documents no error reply for it, so the ack stays empty).
    pub fn add_ban(&mut self, target: &str, minutes: i64, reason: &str) -> Result<(), InvalidBan> {
        let expires = if minutes > 0 {
            minutes
                .checked_mul(60)
                .and_then(|secs| unix_now().checked_add(secs))
        } else {
            None
        };
        let ban = Ban {
            target: target.to_ascii_lowercase(),
            expires,
            reason: reason.to_string(),
        };
        if target.len() == 32 && target.chars().all(|c| c.is_ascii_hexdigit()) {
            self.guid_bans.push(ban);
            Ok(())
        } else if target.parse::<Ipv4Addr>().is_ok() {
            self.ip_bans.push(ban);
            Ok(())
        } else {
            Err(InvalidBan)
        }
    }

    /// Removes the ban with this displayed index (GUID section first, IP after).
    pub fn remove_ban(&mut self, idx: usize) -> bool {
        if idx < self.guid_bans.len() {
            self.guid_bans.remove(idx);
            true
        } else if idx - self.guid_bans.len() < self.ip_bans.len() {
            let i = idx - self.guid_bans.len();
            self.ip_bans.remove(i);
            true
        } else {
            false
        }
    }

    fn bans_path(&self) -> PathBuf {
        self.be_dir.join("bans.txt")
    }

    /// bans.txt: `<guid|ip> <expiry unix time or -1> <reason>` per line.
    pub fn load_bans(&mut self) {
        self.guid_bans.clear();
        self.ip_bans.clear();
        let Ok(text) = std::fs::read_to_string(self.bans_path()) else {
            return;
        };
        let now = unix_now();
        for line in text.lines() {
            let mut it = line.trim().splitn(3, ' ');
            let (Some(target), Some(exp)) = (it.next(), it.next()) else {
                continue;
            };
            let reason = it.next().unwrap_or("").trim();
            let Ok(exp) = exp.parse::<i64>() else {
                continue;
            };
            let minutes = if exp < 0 {
                0
            } else {
                ((exp - now) / 60).max(0)
            };
            if self.add_ban(target, minutes, reason).is_ok() {
                // keep the exact expiry from the file
                let last = if target.contains('.') {
                    self.ip_bans.last_mut()
                } else {
                    self.guid_bans.last_mut()
                };
                if let Some(b) = last {
                    b.expires = (exp >= 0).then_some(exp);
                }
            }
        }
    }

    /// Writes bans.txt; `drop_expired` is `writeBans`.
    pub fn write_bans(&mut self, drop_expired: bool) {
        let now = unix_now();
        if drop_expired {
            self.guid_bans.retain(|b| b.expires.is_none_or(|t| t > now));
            self.ip_bans.retain(|b| b.expires.is_none_or(|t| t > now));
        }
        let mut out = String::new();
        for b in self.guid_bans.iter().chain(self.ip_bans.iter()) {
            out.push_str(&format!(
                "{} {} {}\n",
                b.target,
                b.expires.unwrap_or(-1),
                b.reason
            ));
        }
        let _ = std::fs::create_dir_all(&self.be_dir);
        let _ = std::fs::write(self.bans_path(), out);
    }

    /// The A2S/keyword server state: 7 playing, 1 selecting a mission.
    pub fn state_code(&self) -> u8 {
        if self.mission.is_some() { 7 } else { 1 }
    }

    /// The ping shown now (bucket of the time since start).
    pub fn ping_of(&self, num: u32) -> i64 {
        let bucket = self.epoch.elapsed().as_millis() / PING_BUCKET.as_millis();
        self.ping_at(num, u64::try_from(bucket).unwrap_or(u64::MAX))
    }

    /// The player's base ping with ±8 ms jitter, a pure function of (ping seed,
    /// player number, time bucket): asking for it (RCon `players`) draws no random
    /// numbers, so polling never changes what the simulation does later.
    pub fn ping_at(&self, num: u32, bucket: u64) -> i64 {
        let h = mix(mix(mix(self.ping_seed) ^ u64::from(num)) ^ bucket);
        let jitter = i64::try_from(h % 17).unwrap_or(0) - 8;
        match self.players.iter().find(|p| p.num == num) {
            Some(p) if p.stage == Stage::Connecting => -1,
            Some(p) => (i64::from(p.base_ping) + jitter).max(1),
            None => -1,
        }
    }
}

/// Width of the ping jitter time buckets.
pub const PING_BUCKET: std::time::Duration = std::time::Duration::from_secs(2);

/// splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0)
}

/// Everything the tasks share.
pub struct Shared {
    world: Mutex<World>,
    pub rpt: Rpt,
    pub be_tx: mpsc::UnboundedSender<String>,
    pub hung: AtomicBool,
    pub exit_tx: watch::Sender<Option<i32>>,
    pub opts: SimOptions,
    pub game_port: u16,
    pub x64: bool,
    pub started: Instant,
}

impl Shared {
    pub fn new(
        world: World,
        rpt: Rpt,
        opts: SimOptions,
        game_port: u16,
        x64: bool,
    ) -> (
        Self,
        mpsc::UnboundedReceiver<String>,
        watch::Receiver<Option<i32>>,
    ) {
        let (be_tx, be_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        (
            Shared {
                world: Mutex::new(world),
                rpt,
                be_tx,
                hung: AtomicBool::new(false),
                exit_tx,
                opts,
                game_port,
                x64,
                started: Instant::now(),
            },
            be_rx,
            exit_rx,
        )
    }

    pub fn lock(&self) -> MutexGuard<'_, World> {
        match self.world.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn is_hung(&self) -> bool {
        self.hung.load(Ordering::SeqCst)
    }

    /// A BattlEye console message: to every RCon admin and into the RPT.
    pub fn be(&self, msg: &str) {
        if self.is_hung() {
            return;
        }
        self.rpt.log(&format!("BattlEye Server: {msg}"));
        let _ = self.be_tx.send(msg.to_string());
    }

    /// Asks the main loop to exit with this code.
    pub fn request_exit(&self, code: i32) {
        let _ = self.exit_tx.send(Some(code));
    }

    /// Loads a mission and starts it, with the RPT lines the real server prints.
    pub fn start_mission(&self, w: &mut World, template: &str, difficulty: &str) {
        let template = template.trim().trim_end_matches(".pbo");
        let (name, world) = match template.rsplit_once('.') {
            Some((n, wld)) if !n.is_empty() => (n.to_string(), wld.to_string()),
            _ => (template.to_string(), "Altis".to_string()),
        };
        if w.mission.is_some() {
            self.rpt.log("Game finished.");
        }
        let mut id = [0u8; 20];
        w.rng.fill_bytes(&mut id);
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        self.rpt.log(&format!("Mission {name} read from bank."));
        self.rpt.log("Roles assigned.");
        self.rpt.log("Reading mission ...");
        self.rpt.log("Mission read.");
        self.rpt.log("Starting mission:");
        self.rpt.log(&format!(" Mission file: {name} (__cur_mp)"));
        self.rpt.log(&format!(" Mission world: {world}"));
        self.rpt.log(&format!(
            " Mission directory: mpmissions\\__cur_mp.{world}\\"
        ));
        self.rpt.log(&format!(" Mission id: {id}"));
        self.rpt.log("Game started.");
        w.mission = Some(Mission {
            template: template.to_string(),
            name,
            world,
            difficulty: if difficulty.is_empty() {
                "Regular".into()
            } else {
                difficulty.to_string()
            },
        });
    }

    /// Ends the running mission (if any): `Game finished.`
    pub fn end_mission(&self, w: &mut World) {
        if w.mission.take().is_some() {
            self.rpt.log("Game finished.");
        }
    }

    /// Removes a player; with a kick reason first prints the kick lines.
    pub fn remove_player(&self, w: &mut World, num: u32, kick_reason: Option<&str>) -> bool {
        let Some(pos) = w.players.iter().position(|p| p.num == num) else {
            return false;
        };
        let p = w.players.remove(pos);
        if let Some(reason) = kick_reason {
            let guid = if p.stage == Stage::Connecting {
                "-".to_string()
            } else {
                p.guid.clone()
            };
            self.be(&format!(
                "Player #{} {} ({}) has been kicked by BattlEye: {}",
                p.num, p.name, guid, reason
            ));
            self.rpt.log(&format!(
                "Player {} kicked off by BattlEye: {}",
                p.name, reason
            ));
        }
        self.be(&format!("Player #{} {} disconnected", p.num, p.name));
        self.rpt.log(&format!("Player {} disconnected.", p.name));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ban_indices_span_sections() {
        let mut w = World::new(
            ServerSettings::default(),
            StdRng::seed_from_u64(1),
            std::env::temp_dir(),
        );
        w.add_ban("0123456789abcdef0123456789abcdef", 0, "a")
            .unwrap();
        w.add_ban("198.51.100.7", 60, "b").unwrap();
        w.add_ban("fedcba9876543210fedcba9876543210", 0, "c")
            .unwrap();
        assert!(w.add_ban("nonsense", 0, "x").is_err());
        assert!(w.remove_ban(2)); // the IP ban
        assert_eq!(w.ip_bans.len(), 0);
        assert!(!w.remove_ban(2));
        assert_eq!(w.guid_bans[0].minutes_left(0), "perm");
        let b = Ban {
            target: "x".into(),
            expires: Some(100),
            reason: String::new(),
        };
        assert_eq!(b.minutes_left(200), "-");
        assert_eq!(b.minutes_left(41), "1");
        let far = Ban {
            target: "x".into(),
            expires: Some(i64::MAX),
            reason: String::new(),
        };
        assert!(!far.minutes_left(-5).is_empty());
    }

    #[test]
    fn absurd_ban_duration_is_permanent_not_a_panic() {
        let mut w = World::new(
            ServerSettings::default(),
            StdRng::seed_from_u64(1),
            std::env::temp_dir(),
        );
        let g = "0123456789abcdef0123456789abcdef";
        w.add_ban(g, 999_999_999_999_999_999, "x").unwrap();
        w.add_ban(g, i64::MAX, "y").unwrap();
        w.add_ban(g, i64::MIN, "z").unwrap();
        assert!(w.guid_bans.iter().all(|b| b.expires.is_none()));
        w.add_ban(g, 1_000_000_000_000, "long").unwrap();
        assert!(w.guid_bans[3].expires.is_some());
    }

    #[test]
    fn ping_is_a_pure_function() {
        let mut w = World::new(
            ServerSettings::default(),
            StdRng::seed_from_u64(1),
            std::env::temp_dir(),
        );
        w.players.push(Player {
            num: 3,
            uid: 1,
            name: "a".into(),
            steam_id: 1,
            guid: String::new(),
            ip: Ipv4Addr::LOCALHOST,
            port: 2304,
            base_ping: 100,
            stage: Stage::Verified,
            joined: Instant::now(),
            score: 0,
        });
        let a: Vec<i64> = (0..50).map(|b| w.ping_at(3, b)).collect();
        let b: Vec<i64> = (0..50).map(|b| w.ping_at(3, b)).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|p| (92..=108).contains(p)));
        assert!(a.iter().any(|p| *p != a[0]));
    }
}
