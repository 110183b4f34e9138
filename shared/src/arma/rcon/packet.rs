//! BattlEye RCon packet codec (BERConProtocol v2), pure and allocation-light.
//!
//! Every datagram in both directions is `'B' 'E' | CRC32 (LE) | 0xFF | type | payload`,
//! where the CRC (plain CRC-32/IEEE) covers everything from the `0xFF` byte to the end.
//! Several packets are byte-identical in both directions (a client keepalive for seq 0
//! equals the server's empty ack for seq 0), so decoding is split by direction:
//! [`ClientPacket`] is what a client sends, [`ServerPacket`] what a server sends. The
//! socket, not the bytes, tells which one to use.

use thiserror::Error;

/// Bytes before the type byte: `B`, `E`, four CRC bytes and `0xFF`.
pub const HEADER_LEN: usize = 7;

/// The largest datagram we accept or produce: the largest UDP payload over IPv4.
pub const MAX_PACKET_LEN: usize = 65_507;

/// Type byte of login packets.
pub const TYPE_LOGIN: u8 = 0x00;
/// Type byte of command packets and their responses.
pub const TYPE_COMMAND: u8 = 0x01;
/// Type byte of server messages and their acknowledgements.
pub const TYPE_SERVER_MESSAGE: u8 = 0x02;

/// Why a datagram is not a valid RCon packet. Receivers drop such datagrams (and may
/// count them); they never tear a session down because of one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// Fewer bytes than the smallest packet of this kind.
    #[error("packet too short: {len} bytes, need at least {min}")]
    TooShort { len: usize, min: usize },
    /// Larger than a UDP datagram can be.
    #[error("packet too large: {len} bytes, maximum is {MAX_PACKET_LEN}")]
    TooLarge { len: usize },
    /// The first two bytes are not `BE` or byte 6 is not `0xFF`.
    #[error("not a BattlEye RCon packet (bad header)")]
    BadHeader,
    /// The CRC in the header does not match the contents.
    #[error("CRC mismatch: header says {expected:#010x}, contents give {actual:#010x}")]
    BadCrc { expected: u32, actual: u32 },
    /// A type byte this direction never carries.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// The payload does not have the shape its type requires.
    #[error("malformed {kind} packet: {reason}")]
    Malformed {
        kind: &'static str,
        reason: &'static str,
    },
}

/// The multi-part header of one part of a long command response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// How many parts the whole response has (at least 1).
    pub total: u8,
    /// This part's 0-based position.
    pub index: u8,
}

/// A packet sent by an RCon client to the server.
///
/// `Debug` is written by hand so that a logged `Login` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientPacket {
    /// Log in with the RCon password (raw bytes, no terminator).
    Login { password: Vec<u8> },
    /// Run a command; an empty `command` is the keepalive.
    Command { seq: u8, command: Vec<u8> },
    /// Acknowledge the server message with this sequence number.
    MessageAck { seq: u8 },
}

/// A packet sent by the server to an RCon client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerPacket {
    /// The answer to a login: `true` when the password was right.
    LoginResponse { success: bool },
    /// (One part of) the answer to the command with sequence number `seq`. An empty
    /// body without `part` is the plain acknowledgement of a command that printed nothing.
    CommandResponse {
        seq: u8,
        part: Option<Part>,
        body: Vec<u8>,
    },
    /// An unsolicited console message that the client must acknowledge.
    Message { seq: u8, body: Vec<u8> },
}

impl std::fmt::Debug for ClientPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// Prints its `Display` text without quotes (for the redaction marker).
        struct Bare(&'static str);
        impl std::fmt::Debug for Bare {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        match self {
            ClientPacket::Login { .. } => f
                .debug_struct("Login")
                .field("password", &Bare("<redacted>"))
                .finish(),
            ClientPacket::Command { seq, command } => f
                .debug_struct("Command")
                .field("seq", seq)
                .field("command", &String::from_utf8_lossy(command))
                .finish(),
            ClientPacket::MessageAck { seq } => {
                f.debug_struct("MessageAck").field("seq", seq).finish()
            }
        }
    }
}

impl ClientPacket {
    /// Encodes the packet into a new datagram.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ClientPacket::Login { password } => frame(TYPE_LOGIN, &[], password),
            ClientPacket::Command { seq, command } => frame(TYPE_COMMAND, &[*seq], command),
            ClientPacket::MessageAck { seq } => frame(TYPE_SERVER_MESSAGE, &[*seq], &[]),
        }
    }

    /// Decodes a datagram received from a client.
    pub fn decode(datagram: &[u8]) -> Result<Self, CodecError> {
        let (kind, payload) = unframe(datagram)?;
        match kind {
            TYPE_LOGIN => Ok(ClientPacket::Login {
                password: payload.to_vec(),
            }),
            TYPE_COMMAND => match payload.split_first() {
                Some((seq, command)) => Ok(ClientPacket::Command {
                    seq: *seq,
                    command: command.to_vec(),
                }),
                None => Err(CodecError::Malformed {
                    kind: "command",
                    reason: "missing sequence number",
                }),
            },
            TYPE_SERVER_MESSAGE => match payload {
                [seq] => Ok(ClientPacket::MessageAck { seq: *seq }),
                [] => Err(CodecError::Malformed {
                    kind: "message ack",
                    reason: "missing sequence number",
                }),
                _ => Err(CodecError::Malformed {
                    kind: "message ack",
                    reason: "trailing bytes after the sequence number",
                }),
            },
            other => Err(CodecError::UnknownType(other)),
        }
    }
}

impl ServerPacket {
    /// Encodes the packet into a new datagram.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ServerPacket::LoginResponse { success } => {
                frame(TYPE_LOGIN, &[u8::from(*success)], &[])
            }
            ServerPacket::CommandResponse { seq, part, body } => match part {
                Some(p) => frame(TYPE_COMMAND, &[*seq, 0x00, p.total, p.index], body),
                None => frame(TYPE_COMMAND, &[*seq], body),
            },
            ServerPacket::Message { seq, body } => frame(TYPE_SERVER_MESSAGE, &[*seq], body),
        }
    }

    /// Decodes a datagram received from a server.
    ///
    /// A command response carries a multi-part header when the byte after the sequence
    /// number is `0x00` (a text answer never starts with NUL); a header with a total of
    /// zero or an index outside the total is malformed.
    pub fn decode(datagram: &[u8]) -> Result<Self, CodecError> {
        let (kind, payload) = unframe(datagram)?;
        match kind {
            TYPE_LOGIN => match payload {
                [0x01] => Ok(ServerPacket::LoginResponse { success: true }),
                [0x00] => Ok(ServerPacket::LoginResponse { success: false }),
                _ => Err(CodecError::Malformed {
                    kind: "login response",
                    reason: "expected exactly one byte, 0x00 or 0x01",
                }),
            },
            TYPE_COMMAND => {
                let Some((&seq, rest)) = payload.split_first() else {
                    return Err(CodecError::Malformed {
                        kind: "command response",
                        reason: "missing sequence number",
                    });
                };
                match rest {
                    [0x00, total, index, body @ ..] => {
                        if *total == 0 || index >= total {
                            return Err(CodecError::Malformed {
                                kind: "command response",
                                reason: "multi-part index outside the part count",
                            });
                        }
                        Ok(ServerPacket::CommandResponse {
                            seq,
                            part: Some(Part {
                                total: *total,
                                index: *index,
                            }),
                            body: body.to_vec(),
                        })
                    }
                    [0x00, ..] => Err(CodecError::Malformed {
                        kind: "command response",
                        reason: "truncated multi-part header",
                    }),
                    body => Ok(ServerPacket::CommandResponse {
                        seq,
                        part: None,
                        body: body.to_vec(),
                    }),
                }
            }
            TYPE_SERVER_MESSAGE => match payload.split_first() {
                Some((&seq, body)) => Ok(ServerPacket::Message {
                    seq,
                    body: body.to_vec(),
                }),
                None => Err(CodecError::Malformed {
                    kind: "server message",
                    reason: "missing sequence number",
                }),
            },
            other => Err(CodecError::UnknownType(other)),
        }
    }
}

/// Splits a command's answer into response packets of at most `max_body` bytes each,
/// as a server does when the text does not fit one datagram. An answer that fits is a
/// single packet without a multi-part header; an empty answer is the plain ack.
///
/// `max_body` is clamped so that the answer never needs more than 255 parts. A
/// single-packet answer that starts with NUL gets a 1-of-1 header, because without one
/// a client would read its first bytes as a multi-part header.
pub fn split_response(seq: u8, body: &[u8], max_body: usize) -> Vec<ServerPacket> {
    let max_body = max_body.max(1).max(body.len().div_ceil(255));
    if body.len() <= max_body {
        let part = (body.first() == Some(&0)).then_some(Part { total: 1, index: 0 });
        return vec![ServerPacket::CommandResponse {
            seq,
            part,
            body: body.to_vec(),
        }];
    }
    let chunks: Vec<&[u8]> = body.chunks(max_body).take(255).collect();
    let total = u8::try_from(chunks.len()).unwrap_or(u8::MAX);
    chunks
        .into_iter()
        .zip(0u8..)
        .map(|(chunk, index)| ServerPacket::CommandResponse {
            seq,
            part: Some(Part { total, index }),
            body: chunk.to_vec(),
        })
        .collect()
}

/// Builds a datagram: header with CRC, then the type byte, `head` and `body`.
fn frame(kind: u8, head: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 1 + head.len() + body.len());
    out.extend_from_slice(b"BE\0\0\0\0\xFF");
    out.push(kind);
    out.extend_from_slice(head);
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[6..]);
    out[2..6].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Checks header, size and CRC; returns the type byte and the payload after it.
fn unframe(datagram: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    if datagram.len() > MAX_PACKET_LEN {
        return Err(CodecError::TooLarge {
            len: datagram.len(),
        });
    }
    if datagram.len() < HEADER_LEN + 1 {
        return Err(CodecError::TooShort {
            len: datagram.len(),
            min: HEADER_LEN + 1,
        });
    }
    if &datagram[0..2] != b"BE" || datagram[6] != 0xFF {
        return Err(CodecError::BadHeader);
    }
    let expected = u32::from_le_bytes([datagram[2], datagram[3], datagram[4], datagram[5]]);
    let actual = crc32fast::hash(&datagram[6..]);
    if expected != actual {
        return Err(CodecError::BadCrc { expected, actual });
    }
    Ok((datagram[HEADER_LEN], &datagram[HEADER_LEN + 1..]))
}

#[cfg(test)]
mod tests {
    //! Vectors V1..V12 from reference/arma3.md §1.8, each re-computed here with an
    //! independent tool: Python's `zlib.crc32` over bytes[6..] and berconpy 3.1.4's
    //! packet classes (which produced identical datagrams); conqp/rcon's own unit test
    //! contains V2's header. tests/interop decodes our packets with berconpy again.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn v1_login_request() {
        let bytes = hex("42 45 7f ab 3d ac ff 00 74 65 73 74");
        let p = ClientPacket::Login {
            password: b"test".to_vec(),
        };
        assert_eq!(p.encode(), bytes);
        assert_eq!(ClientPacket::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn v2_v3_login_responses() {
        let ok = hex("42 45 69 dd de 36 ff 00 01");
        let bad = hex("42 45 ff ed d9 41 ff 00 00");
        assert_eq!(ServerPacket::LoginResponse { success: true }.encode(), ok);
        assert_eq!(ServerPacket::LoginResponse { success: false }.encode(), bad);
        assert_eq!(
            ServerPacket::decode(&ok).unwrap(),
            ServerPacket::LoginResponse { success: true }
        );
        assert_eq!(
            ServerPacket::decode(&bad).unwrap(),
            ServerPacket::LoginResponse { success: false }
        );
    }

    #[test]
    fn v4_keepalive_is_also_the_empty_ack() {
        let bytes = hex("42 45 be dc c2 58 ff 01 00");
        let keepalive = ClientPacket::Command {
            seq: 0,
            command: vec![],
        };
        assert_eq!(keepalive.encode(), bytes);
        assert_eq!(ClientPacket::decode(&bytes).unwrap(), keepalive);
        let ack = ServerPacket::CommandResponse {
            seq: 0,
            part: None,
            body: vec![],
        };
        assert_eq!(ack.encode(), bytes);
        assert_eq!(ServerPacket::decode(&bytes).unwrap(), ack);
    }

    #[test]
    fn v5_v6_v11_commands() {
        let cases = [
            (
                0u8,
                "players",
                "42 45 f9 37 94 ae ff 01 00 70 6c 61 79 65 72 73",
            ),
            (
                1,
                "players",
                "42 45 67 37 3e 62 ff 01 01 70 6c 61 79 65 72 73",
            ),
            // reference/arma3.md gives CRC 0x26C82A95 for V11; that is wrong. Python's
            // zlib.crc32 and berconpy's ClientCommandPacket(2, b"say -1 Hello!") both
            // give 0x1E285032.
            (
                2,
                "say -1 Hello!",
                "42 45 32 50 28 1e ff 01 02 73 61 79 20 2d 31 20 48 65 6c 6c 6f 21",
            ),
        ];
        for (seq, cmd, bytes) in cases {
            let p = ClientPacket::Command {
                seq,
                command: cmd.as_bytes().to_vec(),
            };
            assert_eq!(p.encode(), hex(bytes), "{cmd} seq {seq}");
            assert_eq!(ClientPacket::decode(&hex(bytes)).unwrap(), p);
        }
    }

    #[test]
    fn v7_server_message_and_v8_v12_acks() {
        let v7 = hex(
            "42 45 1b 0f 19 00 ff 02 00 52 43 6f 6e 20 61 64 6d 69 6e 20 23 30 20 28 31 32 37 2e \
             30 2e 30 2e 31 3a 35 34 33 32 31 29 20 6c 6f 67 67 65 64 20 69 6e",
        );
        let msg = ServerPacket::Message {
            seq: 0,
            body: b"RCon admin #0 (127.0.0.1:54321) logged in".to_vec(),
        };
        assert_eq!(msg.encode(), v7);
        assert_eq!(ServerPacket::decode(&v7).unwrap(), msg);
        for (seq, bytes) in [
            (0u8, "42 45 7d 8f ef 73 ff 02 00"),
            (1, "42 45 eb bf e8 04 ff 02 01"),
        ] {
            let ack = ClientPacket::MessageAck { seq };
            assert_eq!(ack.encode(), hex(bytes));
            assert_eq!(ClientPacket::decode(&hex(bytes)).unwrap(), ack);
        }
    }

    #[test]
    fn v9_v10_multipart() {
        let v9 = hex("42 45 5e c7 d8 84 ff 01 05 00 02 00 50 6c 61 79 65 72 73 20 6f 6e");
        let v10 = hex("42 45 96 4a 18 9c ff 01 05 00 02 01 20 73 65 72 76 65 72 3a");
        let parts = split_response(5, b"Players on server:", 10);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].encode(), v9);
        assert_eq!(parts[1].encode(), v10);
        assert_eq!(ServerPacket::decode(&v9).unwrap(), parts[0]);
        assert_eq!(ServerPacket::decode(&v10).unwrap(), parts[1]);
    }

    #[test]
    fn crc_is_crc32_ieee() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn rejects_short_packets() {
        for len in 0..HEADER_LEN + 1 {
            let bytes = &hex("42 45 be dc c2 58 ff 01 00")[..len];
            assert!(matches!(
                ServerPacket::decode(bytes),
                Err(CodecError::TooShort { .. })
            ));
            assert!(matches!(
                ClientPacket::decode(bytes),
                Err(CodecError::TooShort { .. })
            ));
        }
    }

    #[test]
    fn rejects_oversized_packets() {
        let big = vec![0u8; MAX_PACKET_LEN + 1];
        assert_eq!(
            ServerPacket::decode(&big),
            Err(CodecError::TooLarge {
                len: MAX_PACKET_LEN + 1
            })
        );
    }

    #[test]
    fn rejects_wrong_header() {
        let mut p = hex("42 45 be dc c2 58 ff 01 00");
        p[0] = b'X';
        assert_eq!(ServerPacket::decode(&p), Err(CodecError::BadHeader));
        let mut p = hex("42 45 be dc c2 58 ff 01 00");
        p[6] = 0xFE;
        assert_eq!(ClientPacket::decode(&p), Err(CodecError::BadHeader));
    }

    #[test]
    fn rejects_bad_crc_and_any_flipped_bit() {
        let good = hex("42 45 f9 37 94 ae ff 01 00 70 6c 61 79 65 72 73");
        for byte in 2..good.len() {
            if byte == 6 {
                continue; // the 0xFF marker is checked as header first
            }
            for bit in 0..8 {
                let mut p = good.clone();
                p[byte] ^= 1 << bit;
                assert!(
                    matches!(ClientPacket::decode(&p), Err(CodecError::BadCrc { .. })),
                    "flip byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn rejects_unknown_types_and_malformed_payloads() {
        assert_eq!(
            ServerPacket::decode(&frame(0x03, &[], b"x")),
            Err(CodecError::UnknownType(0x03))
        );
        assert_eq!(
            ClientPacket::decode(&frame(0x7F, &[], &[])),
            Err(CodecError::UnknownType(0x7F))
        );
        let malformed = [
            frame(TYPE_LOGIN, &[], &[]),             // login response without result
            frame(TYPE_LOGIN, &[0x02], &[]),         // result not 0/1
            frame(TYPE_LOGIN, &[0x01, 0x01], &[]),   // trailing byte
            frame(TYPE_COMMAND, &[], &[]),           // no seq
            frame(TYPE_COMMAND, &[1, 0, 2], &[]),    // truncated multi-part header
            frame(TYPE_COMMAND, &[1, 0, 0, 0], &[]), // total 0
            frame(TYPE_COMMAND, &[1, 0, 2, 2], &[]), // index == total
            frame(TYPE_SERVER_MESSAGE, &[], &[]),    // no seq
        ];
        for p in malformed {
            assert!(
                matches!(ServerPacket::decode(&p), Err(CodecError::Malformed { .. })),
                "{p:02x?}"
            );
        }
        assert!(matches!(
            ClientPacket::decode(&frame(TYPE_SERVER_MESSAGE, &[1, 2], &[])),
            Err(CodecError::Malformed { .. })
        ));
        assert!(matches!(
            ClientPacket::decode(&frame(TYPE_COMMAND, &[], &[])),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn split_response_handles_edges() {
        assert_eq!(
            split_response(7, b"", 10),
            vec![ServerPacket::CommandResponse {
                seq: 7,
                part: None,
                body: vec![]
            }]
        );
        let exact = split_response(7, &[b'a'; 10], 10);
        assert_eq!(exact.len(), 1);
        // Never more than 255 parts: the chunk size grows instead.
        let huge = vec![b'x'; 255 * 4 + 1];
        let parts = split_response(1, &huge, 1);
        assert!(parts.len() <= 255);
        let joined: Vec<u8> = parts
            .iter()
            .flat_map(|p| match p {
                ServerPacket::CommandResponse { body, .. } => body.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(joined, huge);
    }

    #[test]
    fn login_debug_redacts_password() {
        let login = ClientPacket::Login {
            password: b"hunter2".to_vec(),
        };
        assert_eq!(format!("{login:?}"), "Login { password: <redacted> }");
        let pretty = format!("{login:#?}");
        assert!(
            !pretty.contains("hunter2") && !pretty.contains("104"),
            "{pretty}"
        );
        let cmd = ClientPacket::Command {
            seq: 7,
            command: b"players".to_vec(),
        };
        assert_eq!(
            format!("{cmd:?}"),
            r#"Command { seq: 7, command: "players" }"#
        );
        assert_eq!(
            format!("{:?}", ClientPacket::MessageAck { seq: 3 }),
            "MessageAck { seq: 3 }"
        );
    }

    proptest::proptest! {
        #[test]
        fn server_packets_round_trip(seq: u8, body: Vec<u8>, max in 1usize..2000) {
            for p in split_response(seq, &body, max) {
                proptest::prop_assert_eq!(ServerPacket::decode(&p.encode()).unwrap(), p);
            }
        }

        #[test]
        fn client_packets_round_trip(seq: u8, body: Vec<u8>) {
            for p in [
                ClientPacket::Login { password: body.clone() },
                ClientPacket::Command { seq, command: body.clone() },
                ClientPacket::MessageAck { seq },
            ] {
                proptest::prop_assert_eq!(ClientPacket::decode(&p.encode()).unwrap(), p);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let _ = ServerPacket::decode(&bytes);
            let _ = ClientPacket::decode(&bytes);
        }
    }
}
