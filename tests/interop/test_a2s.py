"""python-a2s 1.4.2 reads the simulator's Steam query port (game port + 1)."""

import time

import a2s


def test_info_and_players(start_sim):
    sim = start_sim(hostname="Languard Interop ✓")
    addr = ("127.0.0.1", sim.query_port)
    info = a2s.info(addr, timeout=3)
    assert info.server_name == "Languard Interop ✓"
    assert info.folder == "Arma3"
    assert info.max_players == 40
    assert info.server_type == "d"
    assert info.password_protected is False
    assert info.port == sim.game_port
    for _ in range(50):
        players = a2s.players(addr, timeout=3)
        if len(players) >= 2:
            break
        time.sleep(0.2)
    assert len(players) >= 2
    assert all(p.name for p in players)
    assert 0 < a2s.info(addr, timeout=3).player_count <= 40


def test_rules_blob_is_readable(start_sim):
    sim = start_sim(players=0)
    rules = a2s.rules(("127.0.0.1", sim.query_port), timeout=3, encoding=None)
    assert rules, "Arma 3 answers A2S_RULES with its binary ServerBrowserProtocol3 blob"
    keys = sorted(rules)
    # Keys are two bytes [index, total], 1-based, the last having index == total.
    assert keys[-1][0] == keys[-1][1]
    blob = unescape(b"".join(rules[k] for k in keys))
    assert blob[0] == 3  # protocol version of Arma 3


def unescape(data: bytes) -> bytes:
    """Arma's rules escaping: 01 01 -> 01, 01 02 -> 00, 01 03 -> FF, in one pass."""
    out, i = bytearray(), 0
    while i < len(data):
        if data[i] == 1 and i + 1 < len(data):
            out.append({1: 1, 2: 0, 3: 0xFF}[data[i + 1]])
            i += 2
        else:
            out.append(data[i])
            i += 1
    return bytes(out)
