"""examples/commands_bot.py runs as users run it: a process logged in to a real (embedded) server."""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys

import pytest

from xmpp import commands, disco
from xmpp.client import dial_client_session
from xmpp.commands import Action, Status
from xmpp.jid import JID
from xmpp.stanza import Condition, StanzaError
from xmpp.testing import Server

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
BOT = JID.parse("bot@localhost/cmd")


async def test_commands_bot_runs_its_command() -> None:
    async with Server(users={"bot": "bot secret", "alice": "alice secret"}) as server:
        env = dict(os.environ, XMPP_PASSWORD="bot secret")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / "commands_bot.py"),
            "--jid", str(BOT), "--host", server.host, "--port", str(server.port),
            "--ca-file", server.ca_file, "--timeout", "20",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.decode().strip() == f"online as {BOT}", line
            alice = await dial_client_session(
                "alice@localhost", "alice secret", host=server.host, port=server.port,
                tls_context=server.client_context(), timeout=20,
            )
            async with alice:
                serving = asyncio.ensure_future(alice.serve())
                await asyncio.sleep(0)
                listed = await commands.list_commands(alice, BOT, timeout=20)
                assert [(i.jid, i.node, i.name) for i in listed] == [(BOT, "greet", "Greet me")]
                info = await disco.get_info(alice, BOT, timeout=20)
                assert commands.NS in info.features

                first = await commands.execute(alice, BOT, "greet", timeout=20)
                assert first.status is Status.EXECUTING and first.actions == (Action.COMPLETE,)
                assert first.form is not None and first.form.form_type == "urn:example:greet"
                form = first.form.submit()
                # An invalid submission (no name, a style that is not offered) is refused.
                form["style"].value = "rude"
                with pytest.raises(StanzaError) as err:
                    await commands.execute(alice, BOT, "greet", Action.COMPLETE, form, first.sessionid, timeout=20)
                assert err.value.condition is Condition.BAD_REQUEST
                assert "name" in (err.value.text or "") and "rude" in (err.value.text or "")

                again = await commands.execute(alice, BOT, "greet", timeout=20)
                assert again.form is not None
                form = again.form.submit()
                form["name"].value = "Alice"
                form["style"].value = "cheerful"
                done = await commands.execute(alice, BOT, "greet", Action.EXECUTE, form, again.sessionid, timeout=20)
                assert done.status is Status.COMPLETED
                assert [n.text for n in done.notes] == ["Hi there, Alice!"]
                await alice.close()
                await asyncio.wait_for(serving, 20)
        finally:
            if proc.returncode is None:
                proc.terminate()
            _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr.decode()
