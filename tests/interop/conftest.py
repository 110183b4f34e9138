"""Fixtures that start the real arma3server-sim binary on loopback ports.

The simulator is built by cargo before this suite runs (.ci/run does it); point
LANGUARD_TARGET_DIR elsewhere when the workspace target dir is not ./target.
"""

import os
import pathlib
import socket
import subprocess
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("LANGUARD_TARGET_DIR", ROOT / "target"))
SIM = TARGET / "debug" / "arma3server-sim"
RCON_PASSWORD = "interopSecret42"


def _ports_free(ports):
    socks = []
    try:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port_block():
    """A game port P with P..P+4 and an RCon port P+10 all free on loopback."""
    base = 20000 + (os.getpid() % 200) * 100
    for game in range(base, base + 20000, 20):
        if game + 10 > 65000:
            break
        if _ports_free([*range(game, game + 5), game + 10]):
            return game, game + 10
    raise RuntimeError("no free port block")


class Sim:
    def __init__(self, proc, game_port, rcon_port, workdir):
        self.proc = proc
        self.game_port = game_port
        self.rcon_port = rcon_port
        self.query_port = game_port + 1
        self.workdir = workdir


@pytest.fixture
def start_sim(tmp_path):
    started = []

    def start(*extra, hostname="Interop Test Server", players=4):
        game, rcon = free_port_block()
        (tmp_path / "server.cfg").write_text(
            f'hostname = "{hostname}";\nmaxPlayers = 40;\npersistent = 1;\n'
            'timeStampFormat = "short";\n'
            "class Missions { class M1 { template = \"Interop.Altis\"; difficulty = \"Regular\"; }; };\n"
        )
        be = tmp_path / "battleye"
        be.mkdir(exist_ok=True)
        (be / "beserver_x64.cfg").write_text(
            f"RConPassword {RCON_PASSWORD}\nRConPort {rcon}\nRConIP 127.0.0.1\n"
        )
        args = [
            str(SIM),
            f"-port={game}",
            "-config=server.cfg",
            f"-profiles={tmp_path / 'profiles'}",
            f"-bepath={be}",
            "-name=server",
            "-autoInit",
            f"-sim-players={players}",
            "-sim-seed=7",
            "-sim-player-interval-ms=150",
            "-sim-chat-interval-ms=200",
            "-sim-startup-delay-ms=100",
            *extra,
        ]
        proc = subprocess.Popen(
            args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        started.append(proc)
        # A reader thread drains stdout for the whole run (so the simulator never
        # blocks on a full pipe) and reports readiness, so a silent simulator cannot
        # hang the suite.
        ready = threading.Event()

        def drain():
            for raw in proc.stdout:
                if b"Host identity created." in raw:
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(15):
            raise RuntimeError(f"simulator not ready after 15 s (exit code {proc.poll()})")
        return Sim(proc, game, rcon, tmp_path)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
