"""PyPI `rcon` 2.4.9 (conqp/rcon, archived): a synchronous BattlEye client with known quirks.

2.4.9 returns from login() and run() only after a server message (type 0x02) follows the
response, sends every command with sequence number 0 and decodes text as ASCII. The
simulator behaves like the real server, which pushes the "RCon admin #N logged in"
message after a login and relays chat continuously, so this client works against it as
it does against a real populated server. Non-ASCII player names make this client fail
(a bug of the client), so its players scenario runs with ASCII-only names.
"""

import pytest
from rcon.battleye import Client
from rcon.exceptions import WrongPassword

from conftest import RCON_PASSWORD


def test_login_run_players_and_receive_chat(start_sim):
    sim = start_sim("-sim-ascii-names")
    messages = []
    with Client("127.0.0.1", sim.rcon_port, passwd=RCON_PASSWORD, timeout=10,
                message_handler=messages.append) as client:
        assert any("RCon admin #" in m.message and "logged in" in m.message for m in messages)
        # 2.4.9 may return early with "" when a chat message overtakes the answer; a real
        # user would retry the same way.
        text = ""
        for _ in range(20):
            text = client.run("players")
            if "players in total" in text:
                break
        assert "Players on server:" in text, text
        assert "players in total" in text
        client.run("say", "-1", "hello from rcon")
        assert any(m.message.endswith("(Global) hello from rcon") for m in messages)
        for _ in range(20):
            if any(m.message.startswith("(") for m in messages):
                break
            client.run("")  # keepalive; returns after the next server message
        chats = [m.message for m in messages if m.message.startswith("(")]
        assert chats, [m.message for m in messages]


def test_wrong_password(start_sim):
    sim = start_sim(players=0)
    # 2.4.9 waits for a server message that never follows a failed login, so a wrong
    # password surfaces as a socket timeout rather than WrongPassword (client bug).
    with pytest.raises((WrongPassword, TimeoutError)):
        with Client("127.0.0.1", sim.rcon_port, passwd="nope", timeout=2):
            pass
