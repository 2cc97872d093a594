"""``python -m xmpp send`` and ``ping`` against the real Prosody of the fixtures.

The command line runs in a subprocess (bounded by ``RUN_TIMEOUT``, killed by
its pid after that) with the fixture's CA file; bob's receiving session is a
session of this library in the test's loop.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from xmpp.client import dial_client_session
from xmpp.mux import ServeMux
from xmpp.stream import NS_CLIENT

from . import servers

RUN_TIMEOUT = 60.0
TIMEOUT = 15.0


async def cli(*args: str, password: str) -> tuple[int, str, str]:
    """Run ``python -m xmpp ARGS`` with ``$XMPP_PASSWORD``; exit code, stdout, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XMPP_")}
    env["XMPP_PASSWORD"] = password
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xmpp", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"python -m xmpp {' '.join(args)} did not finish within {RUN_TIMEOUT} s")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def conn(server: servers.ProsodyServer, user: str) -> list[str]:
    """The options that log in to ``server`` as ``user``."""
    return [
        "--jid", server.jid(user), "--host", server.host, "--port", str(server.c2s_port),
        "--ca-file", str(server.ca_file), "--timeout", str(TIMEOUT),
    ]


@pytest.fixture
async def bob(prosody: servers.ProsodyServer) -> AsyncIterator[tuple[Any, list[tuple[str, str]], asyncio.Event]]:
    """Bob logged in to Prosody (resource ``cli-inbox``), keeping the messages he gets."""
    got: list[tuple[str, str]] = []
    arrived = asyncio.Event()

    def on_message(msg: Any, el: Any, s: Any) -> None:
        body = el.find("body")
        if body is not None:
            got.append((str(msg.from_), body.text))
            arrived.set()

    ctx = prosody.pki.client_context()
    s = await dial_client_session(
        prosody.jid("bob") + "/cli-inbox", prosody.users["bob"], host=prosody.host,
        port=prosody.c2s_port, tls_context=ctx, timeout=TIMEOUT,
    )
    task = asyncio.ensure_future(s.serve(ServeMux(NS_CLIENT).message_func(None, None, on_message)))
    try:
        yield s, got, arrived
    finally:
        await s.close(timeout=2.0)
        _done, pending = await asyncio.wait([task], timeout=5.0)
        for t in pending:
            t.cancel()


async def test_send(prosody: servers.ProsodyServer, bob: Any) -> None:
    session, got, arrived = bob
    code, out, err = await cli(
        "send", *conn(prosody, "alice"), str(session.local_addr), "hello from the command line",
        password=prosody.users["alice"],
    )
    assert code == 0, (out, err)
    await asyncio.wait_for(arrived.wait(), TIMEOUT)
    (frm, body), = got
    assert frm.startswith(prosody.jid("alice") + "/")
    assert body == "hello from the command line"


async def test_ping_server(prosody: servers.ProsodyServer) -> None:
    code, out, err = await cli("ping", *conn(prosody, "alice"), password=prosody.users["alice"])
    assert code == 0, (out, err)
    assert f"pong from {prosody.domain}: time=" in out


async def test_ping_wrong_password(prosody: servers.ProsodyServer) -> None:
    code, out, err = await cli("ping", *conn(prosody, "alice"), password="wrong-password")
    assert code == 3, (out, err)
    assert "Traceback" not in err and "authentication failed" in err
