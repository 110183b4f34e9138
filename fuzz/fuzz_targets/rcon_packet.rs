//! BattlEye RCon packet codec (`shared/src/arma/rcon/packet.rs`) and the parsers of the
//! text the packets carry (`parse.rs`).
//!
//! The first byte picks a mode, so one corpus covers three layers:
//! - raw datagrams, as a hostile peer could send them (mostly stopped by the CRC);
//! - a payload framed here with a correct CRC, so the fuzzer reaches the type and
//!   payload decoding behind the CRC check;
//! - the answer/message text parsers on the rest, read as text.
//!
//! Properties: decoding never panics; whatever decodes encodes back to the very same
//! bytes (the codec is a bijection on valid packets); `split_response` parts decode to
//! themselves and join to the original answer.
#![no_main]

use languard_shared::arma::rcon::parse;
use languard_shared::arma::rcon::{ClientPacket, ServerPacket, split_response};
use libfuzzer_sys::fuzz_target;

/// `'B' 'E' | CRC32 LE | 0xFF | rest`, as the real codec frames it.
fn framed(rest: &[u8]) -> Vec<u8> {
    let mut out = b"BE\0\0\0\0\xFF".to_vec();
    out.extend_from_slice(rest);
    let crc = crc32fast::hash(&out[6..]);
    out[2..6].copy_from_slice(&crc.to_le_bytes());
    out
}

fn check_decode(datagram: &[u8]) {
    if let Ok(p) = ServerPacket::decode(datagram) {
        assert_eq!(
            p.encode(),
            datagram,
            "server packet {p:?} re-encodes differently"
        );
        if let ServerPacket::CommandResponse { body, .. } | ServerPacket::Message { body, .. } = &p
        {
            parse_text(&String::from_utf8_lossy(body));
        }
    }
    if let Ok(p) = ClientPacket::decode(datagram) {
        assert_eq!(
            p.encode(),
            datagram,
            "client packet {p:?} re-encodes differently"
        );
        // Debug must never panic (it is hand-written to redact the password).
        let _ = format!("{p:?}");
    }
}

fn parse_text(text: &str) {
    let _ = parse::parse_players(text);
    let _ = parse::parse_bans(text);
    let _ = parse::parse_admins(text);
    let _ = parse::parse_missions(text);
    let _ = parse::strip_rpt_prefix(text);
    for line in text.lines() {
        let _ = parse::parse_server_message(line);
    }
    let _ = parse::parse_server_message(text);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => check_decode(rest),
        1 => check_decode(&framed(rest)),
        2 => parse_text(&String::from_utf8_lossy(rest)),
        _ => {
            // An answer split as a server would: every part decodes to itself and
            // the bodies join back to the answer.
            let Some((&seq, rest)) = rest.split_first() else {
                return;
            };
            let Some((&max, body)) = rest.split_first() else {
                return;
            };
            let parts = split_response(seq, body, usize::from(max));
            assert!(!parts.is_empty() && parts.len() <= 255);
            let mut joined = Vec::new();
            for p in &parts {
                let bytes = p.encode();
                assert_eq!(ServerPacket::decode(&bytes).as_ref(), Ok(p));
                match p {
                    ServerPacket::CommandResponse { seq: s, body, .. } => {
                        assert_eq!(*s, seq);
                        joined.extend_from_slice(body);
                    }
                    other => panic!("split_response made {other:?}"),
                }
            }
            assert_eq!(joined, body);
        }
    }
});
