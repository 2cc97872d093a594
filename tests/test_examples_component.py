"""examples/component.py runs as users run it: a process, against a component port.

The port is our own receiving side (:func:`xmpp.component.receive_session`
on a loopback listener started here), which then plays the server: it asks
the component for its disco#info and sends it a message to echo.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import sys
from collections.abc import AsyncIterator

from xmpp import commands, component, disco
from xmpp.commands import Action
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session, protocol_factory
from xmpp.stanza import Message, MessageType
from xmpp.stream import NS_COMPONENT, Condition, StreamError
from xmpp.xmlstream import CharData, Element, Name, StartElement

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "component.py"
DOMAIN = "echo.localhost"
SECRET = "echo secret"
BODY = Name(NS_COMPONENT, "body")
WAIT = 30.0


@contextlib.asynccontextmanager
async def listener() -> AsyncIterator[tuple[int, asyncio.Queue[Session | BaseException]]]:
    """A loopback component port; each accepted connection's session (or error) goes to the queue."""
    got: asyncio.Queue[Session | BaseException] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()

    async def accept(transport: asyncio.Transport) -> None:
        try:
            got.put_nowait(await component.receive_session(transport, secrets={DOMAIN: SECRET}, timeout=WAIT))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            got.put_nowait(exc)

    def factory() -> asyncio.BaseProtocol:
        proto = protocol_factory()
        made = proto.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            made(transport)
            t = asyncio.ensure_future(accept(transport))  # type: ignore[arg-type]
            tasks.add(t)
            t.add_done_callback(tasks.discard)

        setattr(proto, "connection_made", connection_made)  # noqa: B010
        return proto

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1]), got
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()


async def start(port: int, secret: str) -> asyncio.subprocess.Process:
    """Start the example against ``port`` with ``secret``."""
    return await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--domain", DOMAIN, "--host", "127.0.0.1", "--port", str(port),
        "--timeout", "20",
        env=dict(os.environ, XMPP_COMPONENT_SECRET=secret),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def stop(proc: asyncio.subprocess.Process) -> None:
    """End the example by its pid (SIGTERM, bounded), killing it if it does not stop."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), WAIT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def test_component_example_answers_disco_and_echoes() -> None:
    async with listener() as (port, accepted):
        proc = await start(port, SECRET)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
            assert line.decode().strip() == f"connected as {DOMAIN}", line
            session = await asyncio.wait_for(accepted.get(), WAIT)
            assert isinstance(session, Session), session
            echoed: asyncio.Queue[Element] = asyncio.Queue()
            mux = ServeMux(NS_COMPONENT).message_func(None, None, lambda m, el, s: echoed.put_nowait(el))
            serving = asyncio.ensure_future(session.serve(mux))
            async with session:
                user = JID.parse("alice@localhost/phone")
                info = await asyncio.wait_for(disco.get_info(session, JID.parse(DOMAIN)), WAIT)
                assert disco.Identity("component", "generic", "Echo component") in info.identities
                assert disco.NS_INFO in info.features
                # The ad-hoc command: listed on the commands node, then run.
                listed = await commands.list_commands(session, JID.parse(DOMAIN), timeout=WAIT)
                assert [i.node for i in listed] == ["reverse"]
                first = await commands.execute(session, JID.parse(DOMAIN), "reverse", timeout=WAIT)
                assert first.form is not None and first.sessionid
                form = first.form.submit()
                form["text"].value = "stressed"
                done = await commands.execute(
                    session, JID.parse(DOMAIN), "reverse", Action.COMPLETE, form, first.sessionid, timeout=WAIT
                )
                assert [n.text for n in done.notes] == ["desserts"]
                b = StartElement(BODY)
                for text in ("hello", "a & <b>"):
                    await session.send_message(
                        Message(to=JID.parse(f"bot@{DOMAIN}"), from_=user, type=MessageType.CHAT),
                        [b, CharData(text), b.end()],
                    )
                    el = await asyncio.wait_for(echoed.get(), WAIT)
                    assert el.get("to") == str(user)
                    assert el.get("from") == f"bot@{DOMAIN}"
                    found = el.find("body", NS_COMPONENT)
                    assert found is not None and found.text == text
            # Closing our side ends the example's stream: it exits by itself.
            assert await asyncio.wait_for(proc.wait(), WAIT) == 0
            with contextlib.suppress(Exception):
                await asyncio.wait_for(serving, WAIT)
        finally:
            await stop(proc)


async def test_component_example_with_a_wrong_secret_exits_with_an_error() -> None:
    async with listener() as (port, accepted):
        proc = await start(port, "wrong")
        try:
            _out, err = await asyncio.wait_for(proc.communicate(), WAIT)
            assert proc.returncode == 1
            assert b"not-authorized" in err
            refused = await asyncio.wait_for(accepted.get(), WAIT)
            assert isinstance(refused, StreamError) and refused.condition is Condition.NOT_AUTHORIZED
        finally:
            await stop(proc)
