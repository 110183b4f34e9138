#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/corpus/<target>/) from real-looking samples.

Run from fuzz/: `python3 seeds/make_seeds.py`. Seeds are named after what they hold, so
re-running is idempotent. The samples come from the unit tests of the decoders.
Structured targets (arbitrary) get inputs laid out the way `arbitrary` 1.x reads them:
fixed-size fields from the front, a collection's length byte from the back, the last
field takes the rest.
"""
import json, os, struct, zlib

def put(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def be_packet(rest):
    body = b"\xff" + rest
    return b"BE" + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF) + body

PLAYERS = """Players on server:
[#] [IP Address]:[Port] [Ping] [GUID] [Name]
--------------------------------------------------
0   46.149.73.255:2304    140  2c65319280ac51b220aef667552a7f06(OK) 0dmin
10  37.232.159.82:2354    105  20446897121fafa82c1069ed07820f27(OK) Максим
3   1.2.3.4:2304          47   4f0c611d97e5379680d79f2f36b2e9e1(OK) Bob (Lobby)
(16 players in total)
"""
BANS = """GUID Bans:
[#] [GUID] [Minutes left] [Reason]
----------------------------------------
0  331e64806b30277076963283eea16438 perm destruction of equipment
1  8ce223565255b304f01ce5c3b3830d77 1432 GameHack

IP Bans:
[#] [IP Address] [Minutes left] [Reason]
----------------------------------------------
2  198.51.100.7    perm   proxy
"""
ADMINS = "Connected RCon admins:\n[#] [IP Address]:[Port]\n-----------------------------\n0 127.0.0.1:54321\n"
MESSAGES = [
    "RCon admin #0 (90.92.59.82:59806) logged in",
    "Player #36 Master (88.196.232.197:2304) connected",
    "Player #3 x (1.2.3.4:5) disconnected",
    "Player #5 a (-) has been kicked by BattlEye: x disconnected",
    "Verified GUID (2c65319280ac51b220aef667552a7f06) of player #0 0dmin",
    "(Global) Bob: hello there",
]

# rcon_packet: mode byte, then the datagram / framed payload / text.
put("rcon_packet", "login", b"\x00" + be_packet(b"\x00test"))
put("rcon_packet", "login_ok", b"\x00" + be_packet(b"\x00\x01"))
put("rcon_packet", "keepalive", b"\x00" + be_packet(b"\x01\x00"))
put("rcon_packet", "command", b"\x00" + be_packet(b"\x01\x02say -1 Hello!"))
put("rcon_packet", "message_ack", b"\x00" + be_packet(b"\x02\x07"))
put("rcon_packet", "multipart", b"\x00" + be_packet(b"\x01\x05\x00\x02\x00Players on"))
put("rcon_packet", "framed_players", b"\x01\x01\x03" + PLAYERS.encode())
put("rcon_packet", "framed_message", b"\x01\x02\x00" + MESSAGES[0].encode())
put("rcon_packet", "text_players", b"\x02" + PLAYERS.encode())
put("rcon_packet", "text_bans", b"\x02" + BANS.encode())
put("rcon_packet", "text_admins", b"\x02" + ADMINS.encode())
put("rcon_packet", "text_messages", b"\x02" + "\n".join(MESSAGES).encode())
put("rcon_packet", "split", b"\x03\x05\x0a" + b"Players on server:")

# Structured targets. `arbitrary` 1.x reads: ints little-endian from the front; a bool
# as one byte's low bit; a Vec as (keep-going bool, element)* then a false; an Option
# as a bool then the value; an enum's variant as a u32 scaled onto the variant count.
def vec(items):
    return b"".join(b"\x01" + i for i in items) + b"\x00"
def bytes_vec(data):
    return vec([bytes([b]) for b in data])
def variant(index, count):
    return struct.pack("<I", (index << 32) // count + 1)

# rcon_reassembly: Input::Hostile { limit: u16, pushes: Vec<Push { part, body }> } or
# Input::Honest { body, max_body: u8, order: Vec<u8>, limit: u16 }.
def push(part, body):
    p = b"\x00" if part is None else b"\x01" + bytes(part)
    return p + bytes_vec(body)
put("rcon_reassembly", "hostile_three_parts", variant(0, 2) + struct.pack("<H", 1000)
    + vec([push((3, 0), b"abc"), push((3, 2), b"ghi"), push((3, 2), b"ghi"),
           push((2, 1), b"xy"), push((3, 1), b"def"), push(None, b"single")]))
put("rcon_reassembly", "honest_players", variant(1, 2) + bytes_vec(PLAYERS.encode()[:120])
    + b"\x10" + bytes_vec(b"\x03\x01\x07\x00\x02\x01") + struct.pack("<H", 4096))
put("rcon_reassembly", "honest_over_limit", variant(1, 2) + bytes_vec(b"\x00" * 40)
    + b"\x08" + bytes_vec(b"\x02\x01") + struct.pack("<H", 20))

# wire_messages: JSON payloads of real link messages.
hello = {"hello": {"protocol_version": 1, "agent_version": "0.1.0", "inventory": [],
                   "games": ["arma3"], "last_acked_seq": 0}}
put("wire_messages", "hello", json.dumps(hello))
put("wire_messages", "heartbeat", json.dumps({"heartbeat": {"at": 1764700000000}}))
put("wire_messages", "renew", json.dumps({"renew_request": {"csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}}))
put("wire_messages", "enroll", json.dumps({"enroll": {"protocol_version": 1, "agent_version": "0.1.0",
    "token": "lgj_0123456789abcdef", "csr_pem": "x", "hostname": "host-1", "os": "linux"}}))
put("wire_messages", "ack", json.dumps({"ack": {"seq": 42}}))
put("wire_messages", "events", json.dumps({"events": {"events": []}}))
put("wire_messages", "refused", json.dumps({"refused": {"reason": "bad token"}}))

# link_frame: Input { max: u16, schedule: Vec<u8>, stream: Vec<u8> }.
def frame(payload):
    return struct.pack(">I", len(payload)) + payload
stream = frame(json.dumps(hello).encode()) + frame(b'{"heartbeat":{"at":1}}')
put("link_frame", "two_frames_chunked", struct.pack("<H", 4096)
    + bytes_vec(b"\x03\x80\x05\x00\x3f\x01\x10\x00\x81\x3f") + bytes_vec(stream))
put("link_frame", "too_large", struct.pack("<H", 8) + bytes_vec(b"\x02")
    + bytes_vec(frame(b"0123") + frame(b"0123456789")))
put("link_frame", "truncated", struct.pack("<H", 100) + bytes_vec(b"\x80\x01")
    + bytes_vec(frame(b"{}")[:-1]))

# rpt_lines: Input { max: u8, chunks: Vec<u8>, data: Vec<u8> }.
RPT = (b" 0:26:15 InitSound ...\r\n"
       b"11:59:57 SteamAPI initialization failed. Steam features won't be accessible!\r\n"
       b"2022/11/13, 11:52:47  Mission world: cam_lao_nam\r\n"
       b"12:00:05  \xe2\x9e\xa5 Context: vet\\unflipping\\stringtable.xml\n"
       b"12:00:00 caf\xe9 \xff end\n"
       b"Player Bob connected (id=76561198017145527).\n"
       b"Error in expression <_x>\r\nunterminated")
put("rpt_lines", "rpt_sample", b"\x20" + bytes_vec(b"\x05\x11\x01\x40\x02\x00\x07") + bytes_vec(RPT))
put("rpt_lines", "long_line", b"\x04" + bytes_vec(b"\x03\x01") + bytes_vec("ааааа\r\r\nb\r".encode()))

# rpt_parse: one line each.
for i, line in enumerate(RPT.split(b"\n")):
    put("rpt_parse", f"line{i}", line + b"\n")
put("rpt_parse", "file_name", "arma3server_x64_2022-11-13_11-52-47.rpt")
put("rpt_parse", "steam_id", "13:01:02 Player a connected (id=1). b connected (id=76561198017145527).")

# arma_config: the samples `render_samples` writes and hand-written imports.
put("arma_config", "server_cfg", '''// server.cfg
hostname = "[EU] Languard Invade & Annex | ACE | TFAR";
password = "joinme";
passwordAdmin = "s3cret-admin";
maxPlayers = 64;
motd[] = {"Welcome!", "", "Discord: example.invalid/languard"};
motdInterval = 5.0;
admins[] = {"76561198017145527"};
verifySignatures = 2;
BattlEye = 1;
timeStampFormat = "short";
kickDuplicate = 1;
disconnectTimeout = 5;
allowedFilePatching = 0;
class Missions
{
    class Mission1
    {
        template = "MP_Marksmen_01.Altis";
        difficulty = "veteran";
        class Params { ViewDistance = 3000; };
    };
};
''')
put("arma_config", "basic_cfg", '''MaxMsgSend = 128;
MaxSizeGuaranteed = 512;
MaxSizeNonguaranteed = 256;
MinBandwidth = 131072;
MaxBandwidth = 10000000000;
MinErrorToSend = 0.001;
MinErrorToSendNear = 0.01;
class sockets { maxPacketSize = 1400; };
adapter = -1;
3D_Performance = 1;
''')
put("arma_config", "profile", '''class DifficultyPresets
{
    class CustomDifficulty
    {
        class Options
        {
            reducedDamage = 0;
            groupIndicators = 0;
            friendlyTags = 0;
            thirdPersonView = 1;
            mapContent = 0;
        };
        aiLevelPreset = 3;
    };
    class CustomAILevel
    {
        skillAI = 0.5;
        precisionAI = 0.5;
    };
};
''')
put("arma_config", "beserver_cfg", "RConPassword s3cret\nRConPort 2306\nRConIP 127.0.0.1\nMaxPing 200\n")
put("arma_config", "syntax_mix", '''class A: B { x[] += {1, -2.5e3, 0x1F, {"q""uote"}, true, bare}; class C; };
/* block */ y = "a""b"; // line
''')
