"""berconpy 3.1.4 (the asyncio BattlEye client most Python tools use) against the simulator."""

import asyncio
import re

import berconpy
import pytest

from conftest import RCON_PASSWORD

GUID = re.compile(r"^[0-9a-f]{32}$")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_login_players_chat_and_admin_commands(start_sim):
    sim = start_sim()

    async def scenario():
        client = berconpy.ArmaClient()
        admin_logins = []
        client.add_listener("on_admin_login", lambda admin_id, addr: admin_logins.append(admin_id))
        async with client.connect("127.0.0.1", sim.rcon_port, RCON_PASSWORD):
            # The simulated players join over a few hundred milliseconds.
            for _ in range(50):
                players = await client.fetch_players()
                if len(players) >= 2:
                    break
                await asyncio.sleep(0.2)
            assert len(players) >= 2, players
            for p in players:
                assert p.name and GUID.match(p.guid), (p.name, p.guid)
                assert p.addr.startswith(("198.51.100.", "203.0.113."))

            # A chat message from a simulated player arrives as an event.
            _player, channel, text = await client.wait_for("on_player_message", timeout=10)
            assert channel and text

            # Our own announcement comes back as an admin message.
            announcement = asyncio.ensure_future(
                client.wait_for("on_admin_announcement", timeout=10)
            )
            await client.send("Hello from interop ✓")
            admin_id, message = await announcement
            assert message == "Hello from interop ✓"
            assert admin_id == client.admin_id

            # addBan / bans / removeBan round trip.
            await client.send_command("addBan 0123456789abcdef0123456789abcdef 30 interop test")
            bans = await client.fetch_bans()
            ours = [b for b in bans if b.id == "0123456789abcdef0123456789abcdef"]
            assert len(ours) == 1 and ours[0].reason == "interop test"
            await client.unban(ours[0].index)
            assert not [b for b in await client.fetch_bans() if b.id == ours[0].id]

            missions = await client.fetch_missions()
            assert any(m.startswith("Interop.Altis") for m in missions), missions

            # Kicking a player produces BattlEye's kick message.
            victim = players[0]
            kicked = asyncio.ensure_future(client.wait_for("on_player_kick", timeout=10))
            await client.kick(victim.id, "interop kick")
            player, reason = await kicked
            assert player.id == victim.id
            assert "interop kick" in reason
        assert admin_logins, "the simulator must announce our RCon admin login"

    run(scenario())


def test_wrong_password_is_refused(start_sim):
    sim = start_sim(players=0)

    async def scenario():
        client = berconpy.ArmaClient()
        with pytest.raises(berconpy.LoginRefused):
            async with client.connect("127.0.0.1", sim.rcon_port, "wrong-password"):
                pass

    run(scenario())
