"""PyPI `rcon` 2.4.9 (conqp/rcon, archived): a synchronous BattlEye client with known quirks.

2.4.9 returns from login() and run() only after a server message (type 0x02) follows the
response, sends every command with sequence number 0 and decodes text as ASCII. Its
login works as against the real server, which pushes "RCon admin #N logged in" after a
login. Against a real server its run() completes only as fast as console traffic
arrives, so here the simulator is asked (-sim-followup=1) to follow each reply with a
BattlEye master notice, which clients ignore. Non-ASCII player names make this client
crash (a bug of the client), so its scenario runs with ASCII-only names.
"""

import socket

import pytest
from rcon.battleye import Client
from rcon.battleye.proto import LoginRequest
from rcon.exceptions import WrongPassword

from conftest import RCON_PASSWORD


def test_login_run_players_and_receive_chat(start_sim):
    sim = start_sim("-sim-ascii-names", "-sim-followup=1")
    messages = []
    with Client("127.0.0.1", sim.rcon_port, passwd=RCON_PASSWORD, timeout=10,
                message_handler=messages.append) as client:
        # login() returns on the first server message after the answer; with players
        # joining every 150 ms that may be a join notice sent between the answer and the
        # "logged in" notice, so the latter is checked once the session has read more.
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
        # run() returns on the first server message, which may be a player's chat that
        # overtook our echo, so keep reading until both have arrived.
        for _ in range(40):
            echoed = any(m.message.endswith("(Global) hello from rcon") for m in messages)
            chatted = any(m.message.startswith("(") for m in messages)
            if echoed and chatted:
                break
            client.run("")  # keepalive; returns after the next server message
        texts = [m.message for m in messages]
        assert any("RCon admin #" in t and "logged in" in t for t in texts), texts
        assert any(t.endswith("(Global) hello from rcon") for t in texts), texts
        assert any(t.startswith("(") and ": " in t for t in texts), texts


def test_wrong_password(start_sim):
    sim = start_sim(players=0)
    # 2.4.9 waits for a server message that never follows a failed login, so a wrong
    # password surfaces as a socket timeout rather than WrongPassword (client bug).
    with pytest.raises((WrongPassword, TimeoutError)):
        with Client("127.0.0.1", sim.rcon_port, passwd="nope", timeout=2):
            pass
    # What the server actually sent: the login-failed packet (reference vector V3).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(bytes(LoginRequest("nope")), ("127.0.0.1", sim.rcon_port))
        assert s.recv(64) == bytes.fromhex("4245ffedd941ff0000")
