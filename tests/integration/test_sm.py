"""Stream management (XEP-0198) against Prosody (mod_smacks) and ejabberd (mod_stream_mgmt).

Our client enables stream management with resumption, loses its TCP
connection abruptly (``transport.abort()``, or the fault proxy of
``tests/adversity.py`` cutting it at a random byte), resumes on a new
connection, and a second client checks that every message arrived exactly
once after de-duplication by its XEP-0359 origin-id.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
from collections.abc import AsyncIterator

import pytest

from xmpp import sid
from xmpp.client import client_features, dial_client_session
from xmpp.jid import JID
from xmpp.session import Session, SessionClosedError
from xmpp.sm import SMState, sm
from xmpp.stanza import Message, MessageType, Presence
from xmpp.xmlstream import Element, StartElement

import adversity  # tests/adversity.py (tests/ is on sys.path, as for dnsserver)
from . import servers

TIMEOUT = 10.0


async def login_sm(
    server: servers.XMPPServer,
    pki: servers.Pki,
    user: str,
    state: SMState | None,
    *,
    port: int | None = None,
    resource: str = "sm",
) -> Session:
    """Log ``user`` in, with stream management over ``state`` when given."""
    jid = JID(user, server.domain, resource)
    password = server.users[user]
    ctx = pki.client_context()
    feats = client_features(jid, password, tls_context=ctx, timeout=TIMEOUT)
    if state is not None:
        feats.append(sm(state, ack_every=32, ack_after=1.0, timeout=TIMEOUT))
    return await asyncio.wait_for(
        dial_client_session(
            jid,
            password,
            features=feats,
            tls_context=ctx,
            host=server.host,
            port=port if port is not None else server.c2s_port,
            timeout=TIMEOUT,
        ),
        TIMEOUT + 2,
    )


class Receiver:
    """A logged-in second client counting the origin-ids of the messages it gets."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.counts: collections.Counter[str] = collections.Counter()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def handle(self, el: Element, start: StartElement) -> None:
        if start.name.local == "message":
            oid = sid.origin_id(el)
            if oid is not None:
                self.counts[oid] += 1
                self.changed.set()

    async def wait_for(self, ids: set[str], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ids <= self.counts.keys():
            left = deadline - loop.time()
            if left <= 0:
                missing = len(ids - self.counts.keys())
                pytest.fail(f"{missing} of {len(ids)} messages never arrived")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


@contextlib.asynccontextmanager
async def receiver(server: servers.XMPPServer, pki: servers.Pki) -> AsyncIterator[Receiver]:
    session = await login_sm(server, pki, "bob", None, resource="rx")
    r = Receiver(session)
    r.task = asyncio.ensure_future(session.serve(r.handle))
    await session.send(Presence())
    try:
        yield r
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.close(timeout=2), 5)
        await asyncio.wait([r.task], timeout=5)
        if not r.task.done():
            r.task.cancel()


def chat(to: JID, n: int) -> Message:
    return Message(to=to, type=MessageType.CHAT, id=f"m{n}-{random.getrandbits(40):x}")


async def send_body(session: Session, msg: Message) -> str:
    return await sid.send_message(session, msg)


async def close_quietly(session: Session, task: asyncio.Task[None] | None) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(session.close(timeout=2), 5)
    if task is not None:
        await asyncio.wait([task], timeout=5)
        if not task.done():
            task.cancel()
        else:
            task.exception()


async def test_enable_abort_and_resume(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    async with receiver(xmpp_server, pki) as rx:
        to = rx.session.local_addr
        assert to is not None
        state = SMState()
        a = await login_sm(xmpp_server, pki, "alice", state)
        task = asyncio.ensure_future(a.serve(None))
        assert a.sm is not None and state.id and state.resumable
        sent = [await send_body(a, chat(to, i)) for i in range(10)]
        await a.sm.wait_acked(TIMEOUT)
        assert state.acked == 10 and state.h_out == 10
        sent += [await send_body(a, chat(to, i)) for i in range(10, 15)]
        a.transport.abort()  # abrupt: the last five may or may not have left
        await close_quietly(a, task)
        assert len(state.unacked) == 5

        b = await login_sm(xmpp_server, pki, "alice", state)
        task = asyncio.ensure_future(b.serve(None))
        try:
            assert state.resumed, "the server should have resumed the stream"
            assert b.local_addr == JID("alice", xmpp_server.domain, "sm")
            await b.sm.wait_acked(TIMEOUT)
            # The server's h covers all fifteen: none lost, none counted twice.
            assert state.acked == 15 and state.h_out == 15 and state.peer_h == 15
            await rx.wait_for(set(sent), TIMEOUT)
            await asyncio.sleep(0.2)  # a duplicate would come right behind
            assert all(rx.counts[i] == 1 for i in sent), rx.counts
        finally:
            await close_quietly(b, task)


async def test_many_messages_through_random_cuts(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    total = 2000
    rng = random.Random(198)
    cuts = [rng.randrange(9000, 60000) for _ in range(4)]
    async with adversity.FaultProxy(xmpp_server.host, xmpp_server.c2s_port, cuts=cuts) as proxy, receiver(
        xmpp_server, pki
    ) as rx:
        to = rx.session.local_addr
        assert to is not None
        state = SMState()
        acked_ids: list[str] = []
        state.on_ack = lambda start: acked_ids.append((start.get("id") or "") if start is not None else "")
        sent: list[str] = []
        session: Session | None = None
        task: asyncio.Task[None] | None = None
        reconnects = resumed = 0

        async def connect() -> None:
            nonlocal session, task, reconnects, resumed
            for _attempt in range(5):
                try:
                    session = await login_sm(xmpp_server, pki, "alice", state, port=proxy.port)
                except (OSError, TimeoutError, SessionClosedError):
                    await asyncio.sleep(0.2)
                    continue
                task = asyncio.ensure_future(session.serve(None))
                reconnects += 1
                resumed += state.resumed
                return
            pytest.fail("could not reconnect through the proxy")

        await connect()
        i = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while i < total:
            assert loop.time() < deadline, f"only {i} of {total} sent in time"
            assert session is not None
            msg = chat(to, i)
            try:
                if session.closed:
                    raise SessionClosedError("lost")
                oid = await send_body(session, msg)
            except SessionClosedError:
                await close_quietly(session, task)
                await connect()
                continue
            sent.append(oid)
            i += 1
            if i % 20 == 0:
                await asyncio.sleep(0)  # let the stream flow
        for _ in range(5):
            assert session is not None
            try:
                assert session.sm is not None
                await session.sm.wait_acked(TIMEOUT)
                break
            except ConnectionError:
                await close_quietly(session, task)
                await connect()
        assert session is not None
        await rx.wait_for(set(sent), 60)
        await close_quietly(session, task)
        assert proxy.cut_count >= 3, "the proxy should have cut the connection several times"
        # Every cut costs a reconnection; Prosody may also end a resumed
        # stream on its own after a failed resumption (resource conflict).
        assert reconnects >= proxy.cut_count + 1
        assert resumed >= 1
        # Every message arrived, each exactly once after de-duplication by origin-id.
        assert set(rx.counts) >= set(sent) and len(set(sent)) == total
        # A's view: each stanza acknowledged once, nothing left over.
        assert not state.unacked
        assert state.acked == total
        assert sorted(acked_ids) == sorted(sent)
        print(
            f"\n{type(xmpp_server).__name__}: {total} messages, {proxy.cut_count} cuts, "
            f"{resumed} of {reconnects - 1} reconnections resumed, "
            f"{sum(c - 1 for c in rx.counts.values())} duplicates seen by B"
        )
