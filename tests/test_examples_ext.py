"""examples/disco_bot.py runs as users run it: a process, against a real (embedded) server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import sys

import pytest

from xmpp import caps, disco, ping, version
from xmpp import time as xtime
from xmpp.client import dial_client_session
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.stanza import Condition, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import Server

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
BOT = "bot@localhost/disco"
CAPS_NODE = "https://github.com/xmpp-python/examples/disco_bot"


async def test_disco_bot_answers_ping_disco_version_time() -> None:
    async with Server(users={"bot": "bot secret", "alice": "alice secret"}) as server:
        env = dict(os.environ, XMPP_PASSWORD="bot secret")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / "disco_bot.py"),
            "--jid", BOT, "--host", server.host, "--port", str(server.port),
            "--ca-file", server.ca_file, "--timeout", "20", "--name", "Test Bot",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
            prefix = f"online as {BOT} ver "
            assert line.startswith(prefix), line
            printed_ver = line[len(prefix):]
            assert JID.parse(BOT) in server.sessions

            alice = await dial_client_session(
                "alice@localhost", "alice secret", host=server.host, port=server.port,
                tls_context=server.client_context(), timeout=20,
            )
            async with alice:
                serving = asyncio.ensure_future(alice.serve(ServeMux(NS_CLIENT)))
                await asyncio.sleep(0)  # let serve start: send_iq needs it
                assert await ping.send(alice, BOT, timeout=20) >= 0.0
                info = await disco.get_info(alice, BOT, timeout=20)
                assert disco.Identity("client", "bot", "Test Bot") in info.identities
                for ns in (disco.NS_INFO, disco.NS_ITEMS, ping.NS, version.NS, xtime.NS):
                    assert info.has_feature(ns), ns
                # The ver it printed (and put in its presence) is the hash of what it answers.
                assert caps.ver(info) == printed_ver
                at_node = await disco.get_info(alice, BOT, f"{CAPS_NODE}#{printed_ver}", timeout=20)
                assert at_node.features == info.features and at_node.node == f"{CAPS_NODE}#{printed_ver}"
                assert await version.get(alice, BOT, timeout=20) == version.Version("disco_bot", "1.0")
                t = await xtime.get(alice, BOT, timeout=20)
                assert t.utc.tzinfo is not None
                assert await disco.get_items(alice, BOT, timeout=20) == []
                # What it does not implement is an error, not silence.
                with pytest.raises(StanzaError) as err:
                    await disco.get_info(alice, BOT, "no-such-node", timeout=20)
                assert err.value.condition is Condition.ITEM_NOT_FOUND
            await asyncio.wait_for(serving, 5)
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 20) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 10)


async def test_disco_bot_needs_a_password() -> None:
    env = {k: v for k, v in os.environ.items() if k != "XMPP_PASSWORD"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "disco_bot.py"), "--jid", "bot@localhost",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2
        assert b"XMPP_PASSWORD" in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
