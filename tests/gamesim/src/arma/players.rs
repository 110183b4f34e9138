//! Simulated players: a fixed cast of identities (derived from the seed), who join,
//! chat and leave. Join sequence as on the real server (reference §10):
//! RPT `Player X connecting.` + BE `Player #n X (ip:port) connected` →
//! RPT `Player X connected (id=<steam64>).` + BE `Player #n X - BE GUID: <md5>` →
//! BE `Verified GUID (<md5>) of player #n X`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::compat::be_guid;
use super::world::{Player, Shared, Stage};

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

/// Starts the join sequence for this identity. Returns after it completes (or the
/// player left meanwhile).
pub async fn join(shared: Arc<Shared>, who: Identity) {
    let guid = be_guid(who.steam_id);
    let (uid, num, banned) = {
        let mut w = shared.lock();
        if w.players.iter().any(|p| p.steam_id == who.steam_id) {
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
        let uid = w.next_uid();
        let num = w.free_number();
        let reg: u32 = w.rng.random();
        let score = w.rng.random_range(0..12);
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
        (uid, num, w.is_banned(&guid, who.ip))
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    {
        let mut w = shared.lock();
        let Some(p) = w.player_by_uid(uid) else {
            return;
        };
        p.stage = Stage::GuidKnown;
        shared.rpt.log(&format!(
            "Player {} connected (id={}).",
            who.name, who.steam_id
        ));
        shared.be(&format!("Player #{num} {} - BE GUID: {guid}", who.name));
        if banned {
            shared.remove_player(&mut w, num, Some("Banned"));
            return;
        }
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut w = shared.lock();
    if let Some(p) = w.player_by_uid(uid) {
        p.stage = Stage::Verified;
        shared.be(&format!(
            "Verified GUID ({guid}) of player #{num} {}",
            who.name
        ));
    }
}

/// Join/leave pacing loop; runs until the process ends.
pub async fn run_roster(shared: Arc<Shared>, cast_seed: u64) {
    let max = shared.opts.players as usize;
    if max == 0 {
        return;
    }
    let interval = shared.opts.player_interval;
    let people = cast(
        &mut rand::rngs::StdRng::seed_from_u64(cast_seed),
        shared.opts.ascii_names,
        max + 3,
    );
    // Right after startup the server fills up quickly (players reconnecting after a
    // restart): one join every 100 ms until `max` is reached for the first time.
    let mut filling = true;
    let mut first = true;
    loop {
        if !first {
            let pause = if filling {
                Duration::from_millis(100).min(interval)
            } else {
                let factor = { shared.lock().rng.random_range(0.7..1.3) };
                interval.mul_f64(factor)
            };
            tokio::time::sleep(pause).await;
        }
        first = false;
        if shared.is_hung() {
            continue;
        }
        let (joiner, leaver) = {
            let mut w = shared.lock();
            let online = w.players.len();
            if online >= max {
                filling = false;
            }
            let join_now = online < max && (filling || online == 0 || w.rng.random_bool(0.6));
            let leave_now = !join_now && w.rng.random_bool(0.5);
            if join_now {
                let offline: Vec<&Identity> = people
                    .iter()
                    .filter(|i| !w.players.iter().any(|p| p.steam_id == i.steam_id))
                    .collect();
                let pick = offline.choose(&mut w.rng).map(|i| (*i).clone());
                (pick, None)
            } else if leave_now {
                let verified: Vec<u32> = w
                    .players
                    .iter()
                    .filter(|p| p.stage == Stage::Verified)
                    .map(|p| p.num)
                    .collect();
                (None, verified.choose(&mut w.rng).copied())
            } else {
                (None, None)
            }
        };
        if let Some(who) = joiner {
            tokio::spawn(join(shared.clone(), who));
        }
        if let Some(num) = leaver {
            let mut w = shared.lock();
            shared.remove_player(&mut w, num, None);
        }
    }
}

/// Chat loop: a random verified player says something on a random channel.
pub async fn run_chat(shared: Arc<Shared>) {
    let Some(interval) = shared.opts.chat_interval else {
        return;
    };
    if shared.opts.players == 0 {
        return;
    }
    loop {
        let factor = { shared.lock().rng.random_range(0.7..1.3) };
        tokio::time::sleep(interval.mul_f64(factor)).await;
        if shared.is_hung() {
            continue;
        }
        let mut w = shared.lock();
        let speakers: Vec<String> = w
            .players
            .iter()
            .filter(|p| p.stage == Stage::Verified)
            .map(|p| p.name.clone())
            .collect();
        let in_mission = w.mission.is_some();
        let Some(name) = speakers.choose(&mut w.rng).cloned() else {
            continue;
        };
        let channel = if in_mission {
            CHANNELS.choose(&mut w.rng).copied().unwrap_or("Global")
        } else {
            "Lobby"
        };
        let text = CHAT.choose(&mut w.rng).copied().unwrap_or("hi");
        shared.be(&format!("({channel}) {name}: {text}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

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
