//! Simulated players: a fixed cast of identities (derived from the seed), who join,
//! chat and leave on a deterministic timeline (see [`run_script`]). Join sequence as on the real server (reference §10):
//! RPT `Player X connecting.` + BE `Player #n X (ip:port) connected` →
//! RPT `Player X connected (id=<steam64>).` + BE `Player #n X - BE GUID: <md5>` →
//! BE `Verified GUID (<md5>) of player #n X`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::compat::be_guid;
use super::world::{PING_BUCKET, Player, Shared, Stage};

/// Names as seen on real servers: UTF-8, spaces, dots, parentheses, pipes.
pub const UTF8_NAMES: &[&str] = &[
    "Максим",
    "ГНК",
    "Zoë",
    "李雷",
    "Sgt. Gonzalez",
    "Bob (Medic)",
    "Matt Fox",
    "Fritz",
    "KKD | dawkar3152",
    "Łukasz",
    "José María",
    "[TFW] Rook",
    "0dmin",
    "Müller",
    "Ztppp",
    "Sven O'Neil",
];

/// ASCII-only cast (knob `ascii-names`).
pub const ASCII_NAMES: &[&str] = &[
    "Matt Fox",
    "Sgt. Gonzalez",
    "Bob (Medic)",
    "Fritz",
    "KKD | dawkar3152",
    "[TFW] Rook",
    "0dmin",
    "Ztppp",
    "Sven O'Neil",
    "Celis",
    "Jean-Luc",
    "xX_Sn1per_Xx",
];

const CHAT: &[&str] = &[
    "hello",
    "anyone up for a convoy?",
    "medic!",
    "Привет всем",
    "rtb in 5",
    "where is the FOB?",
    "gg",
    "nice shot 🙂",
    "need a pilot at base",
    "check map: grid 045 123",
    "lag?",
    "On my way (2 min)",
];

const CHANNELS: &[&str] = &["Global", "Side", "Command", "Group", "Vehicle", "Direct"];

/// A person who may join the server.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub steam_id: u64,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub base_ping: u32,
}

/// The cast for this run: `n` identities drawn from the seed.
pub fn cast(rng: &mut impl Rng, ascii: bool, n: usize) -> Vec<Identity> {
    let pool = if ascii { ASCII_NAMES } else { UTF8_NAMES };
    (0..n.max(1))
        .map(|i| {
            let base = pool[i % pool.len()];
            let name = if i < pool.len() {
                base.to_string()
            } else {
                format!("{base} {}", i / pool.len() + 1)
            };
            let net = if rng.random_bool(0.5) {
                [198, 51, 100]
            } else {
                [203, 0, 113]
            };
            Identity {
                name,
                steam_id: 76_561_197_960_265_728 + rng.random_range(20_000_000u64..1_200_000_000),
                ip: Ipv4Addr::new(net[0], net[1], net[2], rng.random_range(1..=254)),
                port: if rng.random_bool(0.6) {
                    2304
                } else {
                    rng.random_range(49_152..=65_535)
                },
                base_ping: rng.random_range(15..=220),
            }
        })
        .collect()
}

/// Connect → `BE GUID` line.
const GUID_AFTER: Duration = Duration::from_millis(60);
/// `BE GUID` → `Verified GUID`.
const VERIFY_AFTER: Duration = Duration::from_millis(250);
/// How often BattlEye compares pings with `MaxPing`.
const PING_CHECK_EVERY: Duration = Duration::from_secs(1);

/// One scheduled step of the player script.
enum Step {
    Roster,
    Chat,
    Guid {
        uid: u64,
        num: u32,
        who: Identity,
        guid: String,
        banned: bool,
    },
    Verify {
        uid: u64,
        num: u32,
        name: String,
        guid: String,
    },
    PingCheck,
}

/// A deterministic timeline: steps at virtual offsets from the start, run in
/// (offset, insertion order) order. Wall-clock jitter and other tasks (RCon polls)
/// can delay a step but never reorder steps or change what they draw.
struct Timeline {
    steps: Vec<(Duration, u64, Step)>,
    order: u64,
}

impl Timeline {
    fn push(&mut self, at: Duration, step: Step) {
        self.order += 1;
        self.steps.push((at, self.order, step));
    }

    fn pop(&mut self) -> Option<(Duration, Step)> {
        let i = self
            .steps
            .iter()
            .enumerate()
            .min_by_key(|(_, (at, order, _))| (*at, *order))
            .map(|(i, _)| i)?;
        let (at, _, step) = self.steps.swap_remove(i);
        Some((at, step))
    }
}

/// The player script; runs until the process ends. Who joins and leaves, who says
/// what on which channel, and the BattlEye registration numbers and scores all come
/// from one RNG seeded with `script_seed` (derived from `-sim-seed`), consumed in
/// timeline order; the cast (names, Steam ids, addresses) comes from `cast_seed`.
/// Nothing else draws from these streams, so two runs with the same seed produce the
/// same join/chat/leave sequence whatever RCon clients do (short of kicks and bans).
///
/// Join sequence as on the real server (reference §10). While the server is
/// `#lock`ed, a join the script decides on is refused (the player never reaches
/// BattlEye, so nothing is logged). With `MaxPing` set (> 0), verified players whose
/// ping exceeds it are kicked every second with the reason `Ping too high (<MaxPing>)`
/// (the reason text is inferred from BattlEye kick messages seen in the wild; the
/// reference does not pin it down).
pub async fn run_script(shared: Arc<Shared>, cast_seed: u64, script_seed: u64) {
    let max = shared.opts.players as usize;
    if max == 0 {
        return;
    }
    let interval = shared.opts.player_interval;
    let people = cast(
        &mut StdRng::seed_from_u64(cast_seed),
        shared.opts.ascii_names,
        max + 3,
    );
    let mut rng = StdRng::seed_from_u64(script_seed);
    let start = tokio::time::Instant::now();
    let mut tl = Timeline {
        steps: vec![],
        order: 0,
    };
    tl.push(Duration::ZERO, Step::Roster);
    if let Some(chat) = shared.opts.chat_interval {
        let factor = rng.random_range(0.7..1.3);
        tl.push(chat.mul_f64(factor), Step::Chat);
    }
    tl.push(PING_CHECK_EVERY, Step::PingCheck);
    // Right after startup the server fills up quickly (players reconnecting after a
    // restart): one join every 100 ms until `max` is reached for the first time.
    let mut filling = true;
    while let Some((at, step)) = tl.pop() {
        tokio::time::sleep_until(start + at).await;
        match step {
            Step::Roster => {
                if !shared.is_hung() {
                    roster_tick(&shared, &people, &mut rng, &mut filling, max, at, &mut tl);
                }
                // decided after the tick: the filling phase may just have ended
                let next = if filling {
                    Duration::from_millis(100).min(interval)
                } else {
                    interval.mul_f64(rng.random_range(0.7..1.3))
                };
                tl.push(at + next, Step::Roster);
            }
            Step::Chat => {
                if !shared.is_hung() {
                    chat_tick(&shared, &mut rng);
                }
                if let Some(chat) = shared.opts.chat_interval {
                    tl.push(at + chat.mul_f64(rng.random_range(0.7..1.3)), Step::Chat);
                }
            }
            Step::Guid {
                uid,
                num,
                who,
                guid,
                banned,
            } => {
                let mut w = shared.lock();
                let Some(p) = w.player_by_uid(uid) else {
                    continue;
                };
                p.stage = Stage::GuidKnown;
                shared.rpt.log(&format!(
                    "Player {} connected (id={}).",
                    who.name, who.steam_id
                ));
                shared.be(&format!("Player #{num} {} - BE GUID: {guid}", who.name));
                if banned {
                    shared.remove_player(&mut w, num, Some("Banned"));
                    continue;
                }
                tl.push(
                    at + VERIFY_AFTER,
                    Step::Verify {
                        uid,
                        num,
                        name: who.name,
                        guid,
                    },
                );
            }
            Step::Verify {
                uid,
                num,
                name,
                guid,
            } => {
                let mut w = shared.lock();
                if let Some(p) = w.player_by_uid(uid) {
                    p.stage = Stage::Verified;
                    shared.be(&format!("Verified GUID ({guid}) of player #{num} {name}"));
                }
            }
            Step::PingCheck => {
                if !shared.is_hung() {
                    ping_check(&shared, at);
                }
                tl.push(at + PING_CHECK_EVERY, Step::PingCheck);
            }
        }
    }
}

fn roster_tick(
    shared: &Shared,
    people: &[Identity],
    rng: &mut StdRng,
    filling: &mut bool,
    max: usize,
    at: Duration,
    tl: &mut Timeline,
) {
    let mut w = shared.lock();
    let online = w.players.len();
    if online >= max {
        *filling = false;
    }
    let join_now = online < max && (*filling || online == 0 || rng.random_bool(0.6));
    let leave_now = !join_now && rng.random_bool(0.5);
    if join_now {
        let offline: Vec<&Identity> = people
            .iter()
            .filter(|i| !w.players.iter().any(|p| p.steam_id == i.steam_id))
            .collect();
        let Some(who) = offline.choose(rng).map(|i| (*i).clone()) else {
            return;
        };
        let reg: u32 = rng.random();
        let score = rng.random_range(0..12);
        if w.locked {
            // `#lock`: the server refuses the connection before BattlEye sees it
            return;
        }
        if let Some(m) = w
            .settings
            .missions
            .first()
            .cloned()
            .filter(|_| w.mission.is_none())
        {
            shared.start_mission(&mut w, &m.template, &m.difficulty);
        }
        let guid = be_guid(who.steam_id);
        let uid = w.next_uid();
        let num = w.free_number();
        w.players.push(Player {
            num,
            uid,
            name: who.name.clone(),
            steam_id: who.steam_id,
            guid: guid.clone(),
            ip: who.ip,
            port: who.port,
            base_ping: who.base_ping,
            stage: Stage::Connecting,
            joined: Instant::now(),
            score,
        });
        w.players.sort_by_key(|p| p.num);
        shared.rpt.log(&format!("Player {} connecting.", who.name));
        shared
            .rpt
            .log(&format!("BEServer: registering a new player #{reg}"));
        shared.be(&format!(
            "Player #{num} {} ({}:{}) connected",
            who.name, who.ip, who.port
        ));
        let banned = w.is_banned(&guid, who.ip);
        tl.push(
            at + GUID_AFTER,
            Step::Guid {
                uid,
                num,
                who,
                guid,
                banned,
            },
        );
    } else if leave_now {
        let verified: Vec<u32> = w
            .players
            .iter()
            .filter(|p| p.stage == Stage::Verified)
            .map(|p| p.num)
            .collect();
        if let Some(num) = verified.choose(rng).copied() {
            shared.remove_player(&mut w, num, None);
        }
    }
}

/// A random verified player says something on a random channel.
fn chat_tick(shared: &Shared, rng: &mut StdRng) {
    let w = shared.lock();
    let speakers: Vec<&str> = w
        .players
        .iter()
        .filter(|p| p.stage == Stage::Verified)
        .map(|p| p.name.as_str())
        .collect();
    let Some(name) = speakers.choose(rng).copied() else {
        return;
    };
    let channel = if w.mission.is_some() {
        CHANNELS.choose(rng).copied().unwrap_or("Global")
    } else {
        "Lobby"
    };
    let text = CHAT.choose(rng).copied().unwrap_or("hi");
    shared.be(&format!("({channel}) {name}: {text}"));
}

/// `MaxPing`: kicks players (GUID known or verified) whose ping is above the limit.
fn ping_check(shared: &Shared, at: Duration) {
    let mut w = shared.lock();
    let Some(limit) = w.max_ping.filter(|m| *m > 0) else {
        return;
    };
    let bucket = at.as_millis() / PING_BUCKET.as_millis();
    let bucket = u64::try_from(bucket).unwrap_or(u64::MAX);
    let over: Vec<u32> = w
        .players
        .iter()
        .filter(|p| p.stage != Stage::Connecting)
        .map(|p| p.num)
        .filter(|n| w.ping_at(*n, bucket) > limit)
        .collect();
    for num in over {
        shared.remove_player(&mut w, num, Some(&format!("Ping too high ({limit})")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_is_deterministic_and_realistic() {
        let a = cast(&mut StdRng::seed_from_u64(7), false, 20);
        let b = cast(&mut StdRng::seed_from_u64(7), false, 20);
        assert_eq!(a.len(), 20);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.name, y.name);
            assert_eq!(x.steam_id, y.steam_id);
            assert!(x.steam_id > 76_561_197_960_265_728);
            let o = x.ip.octets();
            assert!(o[..3] == [198, 51, 100] || o[..3] == [203, 0, 113]);
        }
        assert!(a.iter().any(|i| !i.name.is_ascii()));
        assert!(
            cast(&mut StdRng::seed_from_u64(7), true, 20)
                .iter()
                .all(|i| i.name.is_ascii())
        );
    }
}
