//! RCon codec throughput: encode+decode of small command packets and of 1000-byte
//! multi-part response parts, and multi-part reassembly. Plain binary (no harness):
//! `cargo bench -p languard-shared --bench rcon_codec` prints the figures.

use std::hint::black_box;
use std::time::{Duration, Instant};

use languard_shared::arma::rcon::client::{PushOutcome, Reassembly};
use languard_shared::arma::rcon::{ClientPacket, ServerPacket, split_response};

/// Runs `round` (which handles `packets` packets of `bytes` bytes in total) until at
/// least `min` has passed, and prints packets/s and MB/s.
fn measure(name: &str, packets: u64, bytes: u64, min: Duration, mut round: impl FnMut()) {
    // Warm up caches and the allocator.
    for _ in 0..100 {
        round();
    }
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < min {
        for _ in 0..100 {
            round();
        }
        rounds += 100;
    }
    let secs = start.elapsed().as_secs_f64();
    let pps = (rounds * packets) as f64 / secs;
    let mbps = (rounds * bytes) as f64 / secs / 1e6;
    let ns = secs * 1e9 / (rounds * packets) as f64;
    println!("{name:<48} {pps:>14.0} packets/s {mbps:>10.1} MB/s {ns:>9.1} ns/packet");
}

fn main() {
    let min = Duration::from_secs(1);
    println!("rcon codec benchmark ({}s per case)", min.as_secs());

    // Small command, client side: encode, then decode as the server would.
    let cmd = b"players".to_vec();
    let len = ClientPacket::Command {
        seq: 7,
        command: cmd.clone(),
    }
    .encode()
    .len() as u64;
    measure(
        "encode+decode command `players` (16 B)",
        1,
        len,
        min,
        || {
            let p = ClientPacket::Command {
                seq: black_box(7),
                command: black_box(&cmd).clone(),
            };
            let bytes = p.encode();
            black_box(ClientPacket::decode(black_box(&bytes)).ok());
        },
    );

    // Small answer / ack, server side.
    let ack = ServerPacket::CommandResponse {
        seq: 7,
        part: None,
        body: Vec::new(),
    };
    let len = ack.encode().len() as u64;
    measure("encode+decode empty ack (9 B)", 1, len, min, || {
        let bytes = black_box(&ack).encode();
        black_box(ServerPacket::decode(black_box(&bytes)).ok());
    });

    // A 10 000-byte answer in 1000-byte parts: split, encode, decode.
    let body: Vec<u8> = (0..10_000u32).map(|i| b' ' + (i % 90) as u8).collect();
    let parts = split_response(3, &body, 1000);
    let wire: Vec<Vec<u8>> = parts.iter().map(ServerPacket::encode).collect();
    let wire_bytes: u64 = wire.iter().map(|w| w.len() as u64).sum();
    measure(
        "split+encode+decode 1000-byte parts",
        parts.len() as u64,
        wire_bytes,
        min,
        || {
            for p in split_response(3, black_box(&body), 1000) {
                let bytes = p.encode();
                black_box(ServerPacket::decode(&bytes).ok());
            }
        },
    );
    measure(
        "decode only, 1000-byte parts",
        parts.len() as u64,
        wire_bytes,
        min,
        || {
            for w in &wire {
                black_box(ServerPacket::decode(black_box(w)).ok());
            }
        },
    );

    // Reassembly of those parts, delivered in reverse order with every part twice.
    let decoded: Vec<_> = wire
        .iter()
        .rev()
        .flat_map(|w| [w, w])
        .filter_map(|w| match ServerPacket::decode(w) {
            Ok(ServerPacket::CommandResponse { part, body, .. }) => Some((part, body)),
            _ => None,
        })
        .collect();
    measure(
        "reassemble 10 parts (reversed, duplicated)",
        decoded.len() as u64,
        body.len() as u64 * 2,
        min,
        || {
            let mut r = Reassembly::new();
            let mut done = None;
            for (part, chunk) in black_box(&decoded) {
                if let PushOutcome::Complete(all) = r.push(*part, chunk.clone()) {
                    done = Some(all);
                }
            }
            assert_eq!(done.map(|d| d.len()), Some(body.len()));
        },
    );
    measure(
        "decode+reassemble+lossy UTF-8 (full response)",
        wire.len() as u64,
        wire_bytes,
        min,
        || {
            let mut r = Reassembly::new();
            for w in black_box(&wire).iter().rev() {
                if let Ok(ServerPacket::CommandResponse { part, body, .. }) =
                    ServerPacket::decode(w)
                    && let PushOutcome::Complete(all) = r.push(part, body)
                {
                    black_box(String::from_utf8_lossy(&all).len());
                }
            }
        },
    );
}
