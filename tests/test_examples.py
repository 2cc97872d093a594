"""The scripts in examples/ run as users run them: as processes, against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import sys

from xmpp.client import dial_client_session
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import Message, MessageType
from xmpp.stream import NS_CLIENT
from xmpp.testing import Server
from xmpp.xmlstream import CharData, Element, Name, StartElement

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
BODY = Name(NS_CLIENT, "body")


async def test_echo_bot_echoes_a_chat_message() -> None:
    async with Server(users={"bot": "bot secret", "alice": "alice secret"}) as server:
        env = dict(os.environ, XMPP_PASSWORD="bot secret")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / "echo_bot.py"),
            "--jid", "bot@localhost/echo", "--host", server.host, "--port", str(server.port),
            "--ca-file", server.ca_file, "--timeout", "20",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.decode().strip() == "online as bot@localhost/echo", line
            assert JID.parse("bot@localhost/echo") in server.sessions

            got: asyncio.Queue[Element] = asyncio.Queue()
            mux = ServeMux(NS_CLIENT)
            mux.message_func(None, BODY, lambda m, el, s: got.put_nowait(el))
            alice: Session = await dial_client_session(
                "alice@localhost", "alice secret", host=server.host, port=server.port,
                tls_context=server.client_context(), timeout=20,
            )
            async with alice:
                serving = asyncio.ensure_future(alice.serve(mux))
                b = StartElement(BODY)
                for text in ("hello, bot", "two & <three>"):
                    await alice.send_message(
                        Message(to=JID.parse("bot@localhost"), type=MessageType.CHAT),
                        [b, CharData(text), b.end()],
                    )
                    echoed = await asyncio.wait_for(got.get(), 20)
                    assert echoed.get("from") == "bot@localhost/echo"
                    assert echoed.get("type") == "chat"
                    found = echoed.find("body")
                    assert found is not None and found.text == text
                # A message that is not a chat is not echoed.
                await alice.send_message(Message(to=JID.parse("bot@localhost/echo")), [b, CharData("normal"), b.end()])
                await alice.send_message(
                    Message(to=JID.parse("bot@localhost/echo"), type=MessageType.CHAT), [b, CharData("last"), b.end()]
                )
                echoed = await asyncio.wait_for(got.get(), 20)
                assert echoed.find("body").text == "last"  # type: ignore[union-attr]
            await asyncio.wait_for(serving, 5)
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 20) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 10)


async def test_echo_bot_needs_a_password() -> None:
    env = {k: v for k, v in os.environ.items() if k != "XMPP_PASSWORD"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "echo_bot.py"), "--jid", "bot@localhost",
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
