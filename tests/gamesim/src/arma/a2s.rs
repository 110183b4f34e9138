//! Steam A2S on the query port (game port + 1): INFO, PLAYER and RULES with the
//! modern challenge flow (a request without the right challenge gets `0x41` +
//! challenge; the client repeats the request with it). RULES carries Arma 3's binary
//! ServerBrowserProtocol3 blob (version 3, no DLC, no mods, no signatures).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use md5::{Digest, Md5};
use tokio::net::UdpSocket;

use super::world::Shared;

pub const A2S_INFO: u8 = 0x54;
pub const A2S_PLAYER: u8 = 0x55;
pub const A2S_RULES: u8 = 0x56;
pub const S2C_CHALLENGE: u8 = 0x41;
/// Arma 3's Steam app id; the u16 field carries `107410 & 0xFFFF`.
pub const APP_ID: u64 = 107_410;
pub const GAME_VERSION: &str = "2.18.152302";
/// Size of a value chunk in the binary rules blob.
const RULES_CHUNK: usize = 124;

pub struct A2sServer {
    sock: UdpSocket,
    shared: Arc<Shared>,
    secret: [u8; 16],
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|b| *b != 0));
    out.push(0);
}

/// Escapes the binary rules payload: 01→01 01, 00→01 02, FF→01 03.
pub fn escape_rules(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    for &b in data {
        match b {
            0x01 => out.extend_from_slice(&[1, 1]),
            0x00 => out.extend_from_slice(&[1, 2]),
            0xFF => out.extend_from_slice(&[1, 3]),
            b => out.push(b),
        }
    }
    out
}

/// The binary rules payload (before escaping).
pub fn rules_payload(difficulty: u16) -> Vec<u8> {
    let mut p = vec![3u8, 0]; // version 3, overflow flags
    p.extend_from_slice(&0u16.to_le_bytes()); // DLC flags
    p.extend_from_slice(&difficulty.to_le_bytes());
    p.push(0); // mods
    p.push(0); // signatures
    p
}

impl A2sServer {
    pub fn new(sock: UdpSocket, shared: Arc<Shared>) -> Self {
        let secret: [u8; 16] = {
            use rand::RngCore;
            let mut s = [0u8; 16];
            shared.lock().rng.fill_bytes(&mut s);
            s
        };
        A2sServer {
            sock,
            shared,
            secret,
        }
    }

    fn challenge_for(&self, ip: IpAddr) -> u32 {
        let mut h = Md5::new();
        h.update(self.secret);
        h.update(ip.to_string().as_bytes());
        let d = h.finalize();
        let c = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        if c == 0 || c == u32::MAX {
            0x1234_5678
        } else {
            c
        }
    }

    pub async fn run(self) {
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((n, addr)) = self.sock.recv_from(&mut buf).await else {
                continue;
            };
            if self.shared.is_hung() {
                continue;
            }
            if let Some(reply) = self.answer(&buf[..n], addr) {
                let _ = self.sock.send_to(&reply, addr).await;
            }
        }
    }

    /// The reply to one request datagram, if any.
    pub fn answer(&self, req: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        let body = req.strip_prefix(&[0xFF, 0xFF, 0xFF, 0xFF])?;
        let (&kind, rest) = body.split_first()?;
        let expected = self.challenge_for(from.ip());
        let challenge_ok =
            |c: &[u8]| c.len() >= 4 && u32::from_le_bytes([c[0], c[1], c[2], c[3]]) == expected;
        let challenge = || {
            let mut out = vec![0xFF, 0xFF, 0xFF, 0xFF, S2C_CHALLENGE];
            out.extend_from_slice(&expected.to_le_bytes());
            out
        };
        match kind {
            A2S_INFO => {
                let payload = b"Source Engine Query\0";
                let c = rest.strip_prefix(payload.as_slice())?;
                if !challenge_ok(c) {
                    return Some(challenge());
                }
                Some(self.info())
            }
            A2S_PLAYER => {
                if !challenge_ok(rest) {
                    return Some(challenge());
                }
                Some(self.players())
            }
            A2S_RULES => {
                if !challenge_ok(rest) {
                    return Some(challenge());
                }
                Some(self.rules())
            }
            _ => None,
        }
    }

    fn info(&self) -> Vec<u8> {
        let w = self.shared.lock();
        let (map, game, difficulty) = match &w.mission {
            Some(m) => (m.world.clone(), m.name.clone(), m.difficulty.clone()),
            None => (String::new(), String::new(), "Regular".to_string()),
        };
        let mut out = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x49, 17];
        cstr(&mut out, &w.settings.hostname);
        cstr(&mut out, &map);
        cstr(&mut out, "Arma3");
        cstr(&mut out, &game);
        out.extend_from_slice(&((APP_ID & 0xFFFF) as u16).to_le_bytes());
        out.push(u8::try_from(w.players.len()).unwrap_or(u8::MAX));
        out.push(u8::try_from(w.settings.max_players).unwrap_or(u8::MAX));
        out.push(0); // bots
        out.push(b'd');
        out.push(if self.shared.opts.windows { b'w' } else { b'l' });
        out.push(u8::from(!w.settings.password.is_empty()));
        out.push(0); // VAC
        cstr(&mut out, GAME_VERSION);
        out.push(0x80 | 0x10 | 0x20 | 0x01);
        out.extend_from_slice(&self.shared.game_port.to_le_bytes());
        out.extend_from_slice(
            &90_000_000_000_000_000u64
                .wrapping_add(u64::from(self.shared.game_port))
                .to_le_bytes(),
        );
        let kw = format!(
            "b{},r218,n152302,s{},i{},mf,l{},v{},dt,tcoop,g65545,c0-0,p{},",
            if w.settings.battleye { "t" } else { "f" },
            w.state_code(),
            difficulty_index(&difficulty),
            if w.locked { "t" } else { "f" },
            if w.settings.verify_signatures > 0 {
                "t"
            } else {
                "f"
            },
            if self.shared.opts.windows { "w" } else { "l" },
        );
        cstr(&mut out, &kw);
        out.extend_from_slice(&APP_ID.to_le_bytes());
        out
    }

    fn players(&self) -> Vec<u8> {
        let w = self.shared.lock();
        let mut out = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x44];
        out.push(u8::try_from(w.players.len()).unwrap_or(u8::MAX));
        for (i, p) in w.players.iter().enumerate() {
            out.push(u8::try_from(i).unwrap_or(u8::MAX));
            cstr(&mut out, &p.name);
            out.extend_from_slice(&p.score.to_le_bytes());
            out.extend_from_slice(&p.joined.elapsed().as_secs_f32().to_le_bytes());
        }
        out
    }

    fn rules(&self) -> Vec<u8> {
        let difficulty = {
            let w = self.shared.lock();
            w.mission
                .as_ref()
                .map(|m| difficulty_index(&m.difficulty))
                .unwrap_or(1)
        };
        // little-a2s layout: bits 0-2 level, 3-5 AI level
        let bits = u16::from(difficulty) | (1 << 3);
        let blob = escape_rules(&rules_payload(bits));
        let chunks: Vec<&[u8]> = blob.chunks(RULES_CHUNK).collect();
        let total = u8::try_from(chunks.len()).unwrap_or(u8::MAX);
        let mut out = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x45];
        out.extend_from_slice(&u16::from(total).to_le_bytes());
        for (i, c) in chunks.iter().enumerate() {
            out.push(u8::try_from(i + 1).unwrap_or(u8::MAX));
            out.push(total);
            out.push(0);
            out.extend_from_slice(c);
            out.push(0);
        }
        out
    }
}

/// Recruit 0, Regular 1, Veteran 2, Custom 3 (as the `i` keyword).
pub fn difficulty_index(d: &str) -> u8 {
    match d.to_ascii_lowercase().as_str() {
        "recruit" => 0,
        "veteran" => 2,
        "custom" | "elite" | "mercenary" => 3,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_rules(&[0, 1, 0xFF, 5]), vec![1, 2, 1, 1, 1, 3, 5]);
        let p = escape_rules(&rules_payload(9));
        assert!(!p.contains(&0));
    }
}
